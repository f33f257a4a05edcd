"""Mean-field variational layers (Bayes-by-backprop, Blundell et al., ICML 2015).

Every weight and bias has an independent Gaussian posterior ``N(mu, sigma^2)`` with ``sigma = softplus(rho)`` and a
zero-mean Gaussian prior. Training uses the local reparameterisation trick (Kingma et al., NeurIPS 2015): the
pre-activations of a minibatch are sampled directly, which lowers gradient variance. Prediction draws ``S`` whole
weight sets at once and evaluates them as a batched matmul (``S x n x d`` inputs), so one call yields ``S`` posterior
functions evaluated on the same inputs.

Prior and initial posterior scales may be divided by ``sqrt(fan_in)`` (``fan_in_scaling``): a unit prior on every
weight of a wide layer says that the layer's outputs have variance ``fan_in``, which is far from any function the data
support, and the KL term then drags the posterior towards that prior and the network underfits. Scaling by the fan-in
makes the prior the familiar He/LeCun scale, under which a network of any width produces unit-scale functions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional


def _inverse_softplus(value: float) -> float:
    return math.log(math.expm1(value))


class BayesianLinear(nn.Module):
    """A linear layer with a factorised Gaussian posterior over its weights and biases.

    Args:
        in_features: Input width (fan-in).
        out_features: Output width.
        prior_std: Standard deviation of the zero-mean Gaussian prior of the weights (and biases).
        posterior_std_init: Initial posterior standard deviation of every weight and bias.
    """

    def __init__(self, in_features: int, out_features: int, prior_std: float, posterior_std_init: float) -> None:
        super().__init__()
        self.prior_std = prior_std
        self.posterior_std_init = posterior_std_init
        self.weight_mu = nn.Parameter(torch.empty(in_features, out_features))
        self.bias_mu = nn.Parameter(torch.zeros(out_features))
        rho = _inverse_softplus(posterior_std_init)
        self.weight_rho = nn.Parameter(torch.full((in_features, out_features), rho))
        self.bias_rho = nn.Parameter(torch.full((out_features,), rho))

    def reset_parameters(self, generator: torch.Generator) -> None:
        """He-uniform initialisation of the weight means from a seeded generator; posterior stds back to their init."""
        bound = math.sqrt(6.0 / self.weight_mu.shape[0])
        rho = _inverse_softplus(self.posterior_std_init)
        with torch.no_grad():
            self.weight_mu.uniform_(-bound, bound, generator=generator)
            self.bias_mu.zero_()
            self.weight_rho.fill_(rho)
            self.bias_rho.fill_(rho)

    def sample_weights(self, n_draws: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw whole weight sets.

        Returns:
            ``(weights, biases)`` of shapes ``S x in x out`` and ``S x 1 x out``.
        """
        weight_std = functional.softplus(self.weight_rho)
        bias_std = functional.softplus(self.bias_rho)
        weights = self.weight_mu + weight_std * torch.randn(
            (n_draws, *self.weight_mu.shape), generator=generator, dtype=self.weight_mu.dtype
        )
        biases = self.bias_mu + bias_std * torch.randn(
            (n_draws, 1, self.bias_mu.shape[0]), generator=generator, dtype=self.bias_mu.dtype
        )
        return weights, biases


class VariationalMLP(nn.Module):
    """A ReLU network of ``BayesianLinear`` layers: ``d -> hidden... -> outputs``.

    Args:
        n_inputs: Input width ``d``.
        n_outputs: Output width.
        hidden: Hidden layer widths.
        prior_std: Prior standard deviation (per weight, or the numerator of ``prior_std / sqrt(fan_in)``).
        posterior_std_init: Initial posterior standard deviation (scaled like the prior).
        fan_in_scaling: Divide both by ``sqrt(fan_in)`` of each layer.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden: tuple[int, ...],
        prior_std: float,
        posterior_std_init: float,
        fan_in_scaling: bool = False,
    ) -> None:
        super().__init__()
        widths = (n_inputs, *hidden, n_outputs)
        layers = []
        for fan_in, fan_out in itertools.pairwise(widths):
            scale = 1.0 / math.sqrt(fan_in) if fan_in_scaling else 1.0
            layers.append(BayesianLinear(fan_in, fan_out, prior_std * scale, posterior_std_init * scale))
        self.layers = nn.ModuleList(layers)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Seeded initialisation of every layer."""
        for layer in self.layers:
            layer.reset_parameters(generator)

    def draw_weight_sets(self, n_draws: int, generator: torch.Generator) -> list[tuple[Tensor, Tensor]]:
        """Draw ``S`` complete weight sets from the posterior (one ``(weights, biases)`` pair per layer).

        The same generator state gives the same draws, so a fixed set of posterior functions can be evaluated on
        candidates chunk by chunk.
        """
        return [layer.sample_weights(n_draws, generator) for layer in self.layers]

    @staticmethod
    def evaluate_weight_sets(x: Tensor, weight_sets: list[tuple[Tensor, Tensor]]) -> Tensor:
        """Evaluate drawn weight sets on the same inputs.

        The first layer of all ``S`` draws is one ``n x d`` by ``d x (S * width)`` matrix product (the inputs are
        shared, so stacking the draws' weights side by side turns ``S`` thin products into one wide one, about twice
        as fast on a CPU); later layers are batched products over the draws.

        Args:
            x: ``n x d`` inputs.
            weight_sets: Output of ``draw_weight_sets``.

        Returns:
            ``S x n x outputs``, one posterior function per draw.
        """
        (first_weights, first_biases), *rest = weight_sets
        n_draws, n_inputs, width = first_weights.shape
        stacked = first_weights.permute(1, 0, 2).reshape(n_inputs, n_draws * width)  # d x (S * width)
        h = torch.addmm(first_biases.reshape(1, n_draws * width), x, stacked)  # n x (S * width)
        h = h.view(x.shape[0], n_draws, width).transpose(0, 1)  # S x n x width
        for weights, biases in rest:
            h = torch.baddbmm(biases, functional.relu(h), weights)
        return h


class StackedMembers:
    """Ensemble members as two flat stacked tensors, so that every member takes its training step in one pass.

    Row ``e`` of ``mu`` (and of ``rho``) holds member ``e``'s weight and bias means (spreads) of every layer, flattened
    and laid end to end (``E x P``); each layer's ``E x in x out`` weights and ``E x out`` biases are views of it.
    Members never interact: member ``e``'s loss depends on its row alone and Adam is elementwise, so one step on the
    sum of the members' losses is the step each member would take on its own. A small network's step costs about as
    much as the kernel launches in it, so ``E`` members train for about the price of one. Two flat tensors instead of
    four per layer let the optimiser update every parameter in one fused kernel per tensor and the KL gradient come in
    closed form in a few passes (``add_kl_gradient``), which makes a step markedly cheaper than per-layer tensors with
    the KL through autograd and a per-tensor optimiser.

    Args:
        members: Networks of one architecture; their current parameters are the starting point.
    """

    def __init__(self, members: Sequence[VariationalMLP]) -> None:
        self.members = list(members)
        template = self.members[0].layers
        self.shapes = [tuple(layer.weight_mu.shape) for layer in template]
        self.sizes = [size for fan_in, fan_out in self.shapes for size in (fan_in * fan_out, fan_out)]
        self.mu = torch.stack([self._flatten(member, "mu") for member in self.members]).requires_grad_()  # E x P
        self.rho = torch.stack([self._flatten(member, "rho") for member in self.members]).requires_grad_()  # E x P
        # Per parameter prior: KL = sum(log(prior / std) + (std^2 + mu^2) / (2 prior^2) - 1/2), in float64 then cast.
        prior = torch.cat(
            [torch.full((size,), template[k // 2].prior_std, dtype=torch.float64) for k, size in enumerate(self.sizes)]
        )
        self.half_inverse_prior_var = (0.5 / prior**2).float()  # P
        self.kl_constant = float((torch.log(prior) - 0.5).sum())

    @staticmethod
    def _flatten(member: VariationalMLP, kind: str) -> Tensor:
        """One member's weight and bias ``kind`` (``mu`` or ``rho``) of every layer as one flat vector ``P``."""
        parts = [
            getattr(layer, f"{part}_{kind}").detach().flatten()
            for layer in member.layers
            for part in ("weight", "bias")
        ]
        return torch.cat(parts)

    def _layers(self, flat: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``E x P`` (or ``P``) -> per layer ``(E x in x out weights, E x out biases)`` views."""
        pieces = flat.split(self.sizes, dim=-1)
        lead = flat.shape[:-1]
        return [
            (pieces[2 * index].view(*lead, *shape), pieces[2 * index + 1]) for index, shape in enumerate(self.shapes)
        ]

    def parameters(self) -> list[Tensor]:
        """Every stacked tensor (what the optimiser updates)."""
        return [self.mu, self.rho]

    def spreads(self) -> Tensor:
        """``E x P``: every weight's and bias's posterior standard deviation, ``softplus(rho)`` (differentiable)."""
        return functional.softplus(self.rho)

    def forward(self, x: Tensor, generator: torch.Generator | None = None, std: Tensor | None = None) -> Tensor:
        """Sampled outputs with the local reparameterisation trick (``E x n x d`` -> ``E x n x outputs``).

        ``std`` is ``spreads()`` when the caller has it already: a training step computes it once for this pass and
        for ``add_kl_gradient``.
        """
        variance = (self.spreads() if std is None else std) ** 2  # E x P
        layers = zip(self._layers(self.mu), self._layers(variance), strict=True)
        for index, ((weight_mu, bias_mu), (weight_var, bias_var)) in enumerate(layers):
            mean = torch.baddbmm(bias_mu.unsqueeze(1), x, weight_mu)  # E x n x out
            std = torch.sqrt(torch.baddbmm(bias_var.unsqueeze(1), x * x, weight_var) + 1e-16)
            x = mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            if index < len(self.shapes) - 1:
                x = functional.relu(x)
        return x

    def forward_mean(self, x: Tensor) -> Tensor:
        """Outputs with every weight at its posterior mean (``n x d`` shared inputs -> ``E x n x outputs``)."""
        h = x.expand(len(self.members), *x.shape)
        for index, (weight_mu, bias_mu) in enumerate(self._layers(self.mu)):
            h = torch.baddbmm(bias_mu.unsqueeze(1), h, weight_mu)
            if index < len(self.shapes) - 1:
                h = functional.relu(h)
        return h

    def kl_divergence(self) -> Tensor:
        """KL(q || p) of each member (``E``), in closed form for Gaussians, summed over its weights and biases."""
        std = self.spreads()  # E x P
        return ((std**2 + self.mu**2) * self.half_inverse_prior_var - torch.log(std)).sum(dim=1) + self.kl_constant

    def add_kl_gradient(self, weight: float, std: Tensor | None = None) -> None:
        """Add ``weight`` times the gradient of every member's KL to the gradients of ``mu`` and ``rho``.

        In closed form, ``dKL/dmu = mu / prior^2`` and ``dKL/drho = (std / prior^2 - 1 / std) sigmoid(rho)``: about a
        third of the passes over the parameters that differentiating ``kl_divergence`` through autograd takes, and the
        KL itself (a logarithm of every spread) is not needed to train. Call after ``backward`` of the data term, with
        ``std`` the ``spreads()`` of the current ``rho`` if the step computed them (they are recomputed otherwise).
        """
        with torch.no_grad():
            inverse_prior_var = 2 * self.half_inverse_prior_var  # P
            self.mu.grad.addcmul_(self.mu, inverse_prior_var, value=weight)
            std = self.spreads() if std is None else std.detach()
            slope = std * inverse_prior_var - std.reciprocal()
            self.rho.grad.addcmul_(slope, torch.sigmoid(self.rho), value=weight)

    def member_state(self, member: int) -> tuple[Tensor, Tensor]:
        """A copy of member ``member``'s flat ``(mu, rho)`` (to keep a checkpoint)."""
        return self.mu[member].detach().clone(), self.rho[member].detach().clone()

    def write_back(self, member: int, state: tuple[Tensor, Tensor] | None = None) -> None:
        """Copy ``state`` (default: the current stacked values) into member ``member``'s own layers."""
        mu, rho = state or self.member_state(member)
        with torch.no_grad():
            for layer, (weight_mu, bias_mu), (weight_rho, bias_rho) in zip(
                self.members[member].layers, self._layers(mu), self._layers(rho), strict=True
            ):
                layer.weight_mu.copy_(weight_mu)
                layer.bias_mu.copy_(bias_mu)
                layer.weight_rho.copy_(weight_rho)
                layer.bias_rho.copy_(bias_rho)
