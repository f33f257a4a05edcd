"""Observation models of the surrogate: masked, censored negative log-likelihoods and seeded unit noise.

A quantity with a physical support (``ObjectiveConfig.bounds``, e.g. Tc >= 0) is modelled as a censored observation
of an unbounded latent value: ``y = clamp(f + noise, low, high)`` (a Tobit model). A measurement strictly inside the
support contributes the noise density at ``y - f``; a measurement at a bound (Tc = 0: no superconducting transition
found, a quarter of the SuperCon rows) contributes the probability mass beyond that bound, ``P(f + noise <= low)``.
Draws from the model are clamped by the same observation model, so every draw, mean, median and interval lies in the
support by construction, and a point mass at the bound is predicted where the model expects "no transition".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LIKELIHOODS = ("gaussian", "laplace")
"""Noise models: ``noise_scale`` is the standard deviation (``gaussian``) or the scale ``b`` (``laplace``)."""


def log_cdf(standardised: Tensor, likelihood: str) -> Tensor:
    """``log F(u)`` of the unit-scale noise distribution, stable in both tails.

    Laplace: ``F(u) = exp(u) / 2`` for ``u < 0`` and ``1 - exp(-u) / 2`` above.
    """
    if likelihood == "laplace":
        below = standardised.clamp(max=0.0) - math.log(2.0)
        above = torch.log1p(-0.5 * torch.exp(-standardised.clamp(min=0.0)))
        return torch.where(standardised < 0, below, above)
    return torch.special.log_ndtr(standardised)


def masked_nll(
    mean: Tensor,
    noise_scale: Tensor,
    target: Tensor,
    mask: Tensor,
    likelihood: str = "gaussian",
    beta: float = 0.0,
    censored: Tensor | None = None,
) -> Tensor:
    """Mean negative log-likelihood over the observed (``mask``) entries of each ``n x m`` slice (``... -> ...``).

    ``gaussian``: ``noise_scale`` is the standard deviation. ``laplace``: it is the scale ``b`` (standard deviation
    ``b sqrt 2``); the Laplace likelihood's maximum is the conditional median, which is what absolute errors reward, and
    it does not chase outliers (duplicates of one composition with different measured values) as a squared error does.

    With ``beta > 0`` each entry is weighted by ``noise_scale^(p beta)`` (held constant in the gradient; ``p`` = 2 for
    ``gaussian``, 1 for ``laplace``): the beta-NLL of Seitzer et al. (ICLR 2022), which stops a heteroscedastic model
    from fitting the mean only where it claims to be certain; at ``beta = 1`` the mean's gradient is that of the
    squared (Gaussian) or absolute (Laplace) error. ``beta = 0`` is the plain NLL.

    Args:
        mean: ``... x n x m`` latent means.
        noise_scale: Same shape, the noise scales.
        target: ``n x m`` (or broadcastable) observed values, in the same units.
        mask: True where a target is observed.
        likelihood: One of ``LIKELIHOODS``.
        beta: The beta-NLL exponent.
        censored: Optional ``n x m`` integers: ``-1`` where the target sits at the lower bound of its support (its
            term is ``-log P(f + noise <= target)``), ``+1`` at the upper bound (``-log P(f + noise >= target)``),
            0 for an ordinary density term.
    """
    residual = (target - mean) / noise_scale
    if likelihood == "laplace":  # twice the NLL, as the Gaussian errors below (halved at the end)
        errors = 2 * (residual.abs() + torch.log(2 * noise_scale))
        power = 1
    else:
        errors = residual**2 + 2 * torch.log(noise_scale) + math.log(2 * math.pi)
        power = 2
    if censored is not None:
        at_low, at_high = censored < 0, censored > 0
        if at_low.any() or at_high.any():
            # At the lower bound the mass is F(residual); at the upper bound 1 - F(residual) = F(-residual).
            mass = -2 * log_cdf(torch.where(at_high, -residual, residual), likelihood)
            errors = torch.where(at_low | at_high, mass, errors)
    if beta > 0:
        errors = errors * noise_scale.detach() ** (power * beta)
    return 0.5 * (errors * mask).sum(dim=(-2, -1)) / mask.sum(dim=(-2, -1)).clamp(min=1)


def standard_noise(shape: torch.Size, likelihood: str, generator: torch.Generator) -> Tensor:
    """Seeded draws of the unit-scale observation noise of a likelihood (standard normal, or Laplace with ``b = 1``)."""
    if likelihood == "laplace":
        uniform = torch.rand(shape, generator=generator) - 0.5  # U(-1/2, 1/2); inverse CDF of the Laplace
        return -torch.sign(uniform) * torch.log1p(-2 * uniform.abs()).clamp(min=-80.0)
    return torch.randn(shape, generator=generator)


def predictive_noise(
    shape: torch.Size, likelihood: str, transforms: tuple[str, ...], generator: torch.Generator
) -> Tensor:
    """Seeded unit-scale observation noise for ``S x n x m`` predictive draws, to be multiplied by the noise scales.

    The likelihood's own shape, except for ``log1p`` outputs of a Laplace model: there the draws are Gaussian with
    the Laplace's standard deviation (``b sqrt 2``). Mapped back by ``expm1``, Laplace noise has no mean once its
    scale reaches 1 in log units (intervals widened for a small campaign get there), and one draw made the predictive
    mean of a 81 K cuprate 2,433 K. The per-level tail factors, fitted on held-out errors with this same noise, then
    set the tails' shape.
    """
    noise = standard_noise(shape, likelihood, generator)
    if likelihood == "laplace":
        for j, kind in enumerate(transforms):
            if kind == "log1p":
                noise[..., j] = math.sqrt(2) * torch.randn(shape[:-1], generator=generator)
    return noise
