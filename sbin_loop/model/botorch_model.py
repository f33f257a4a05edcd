"""The BNN as a BoTorch ``Model``.

``BNNModel`` fixes ``S`` posterior weight draws of a trained ``BNNSurrogate`` and exposes them as a BoTorch
``EnsembleModel``: ``posterior(X)`` returns an ``EnsemblePosterior`` whose ``S`` members are those functions, so every
MC acquisition function (qLogEI, qLogNEI, qUCB, posterior variance...) works on it unchanged.

Scoring a large discrete pool with ``q > 1`` through the network recomputes the pending points for every candidate
(measured at about 160 s for q = 8 over 10^5 candidates). ``PosteriorSampleCache`` instead holds the ``S x N x m``
draws of a pool once and answers ``posterior(X)`` by lookup, with ``X`` the candidates' row indices (``... x n x 1``).
BoTorch's ``optimize_acqf_discrete`` then runs its sequential-greedy batch selection on the cache in well under a
second, with exactly the acquisition function's own semantics.
"""

from __future__ import annotations

import torch
from botorch.models.ensemble import EnsembleModel
from botorch.posteriors.ensemble import EnsemblePosterior
from botorch.sampling.index_sampler import IndexSampler
from torch import Tensor

from sbin_loop.model.surrogate import BNNSurrogate


class BNNModel(EnsembleModel):
    """``S`` fixed posterior functions of a BNN surrogate, in target units, as a BoTorch ensemble model.

    Gradients with respect to ``X`` are not propagated: sbin optimises acquisition functions over discrete
    candidate sets only.

    Args:
        surrogate: A trained surrogate.
        n_draws: Ensemble size ``S`` (posterior weight draws).
        seed: Seed of the draws; the same seed gives the same ensemble.
    """

    def __init__(self, surrogate: BNNSurrogate, n_draws: int, seed: int) -> None:
        super().__init__()
        self.surrogate = surrogate
        self.seed = seed
        self._weight_sets = surrogate.draw_weight_sets(n_draws, seed)
        self._num_outputs = len(surrogate.target_names)

    def forward(self, X: Tensor) -> Tensor:
        """``batch x n x d`` inputs -> ``batch x S x n x m`` ensemble outputs (``BNNSurrogate.function_draws``'s)."""
        batch_shape, n, d = X.shape[:-2], X.shape[-2], X.shape[-1]
        values = self.surrogate.function_values(X.reshape(-1, d).detach(), self._weight_sets, self.seed)  # S x bn x m
        values = values.to(X.dtype)
        n_draws = values.shape[0]
        return values.reshape(n_draws, *batch_shape, n, self._num_outputs).movedim(0, -3)


class PosteriorSampleCache(EnsembleModel):
    """Cached ensemble draws of a pool, addressed by candidate index.

    Args:
        samples: ``S x N x m`` draws for the ``N`` pool candidates.
    """

    def __init__(self, samples: Tensor) -> None:
        super().__init__()
        if samples.ndim != 3:
            raise ValueError(f"samples must be S x N x m, got shape {tuple(samples.shape)}")
        self.samples = samples
        self._num_outputs = samples.shape[-1]

    def forward(self, X: Tensor) -> Tensor:
        """``batch x n x 1`` candidate indices -> ``batch x S x n x m`` cached draws."""
        indices = X[..., 0].long()  # batch x n
        values = self.samples[:, indices]  # S x batch x n x m
        return values.movedim(0, -3)


class EnsembleMemberSampler(IndexSampler):
    """Uses every ensemble member exactly once instead of resampling members with replacement.

    BoTorch's ``IndexSampler`` draws member indices at random; with ``S`` members that adds needless Monte Carlo
    noise. Here the "samples" are simply members ``0..S-1``, so an acquisition value is the exact ensemble average.

    Args:
        ensemble_size: ``S``.
    """

    def __init__(self, ensemble_size: int) -> None:
        super().__init__(sample_shape=torch.Size([ensemble_size]))

    def _construct_base_samples(self, posterior: EnsemblePosterior) -> None:
        if posterior.ensemble_size != self.sample_shape[0]:
            raise ValueError(
                f"sampler built for {self.sample_shape[0]} members, posterior has {posterior.ensemble_size}"
            )
        shape = self.sample_shape + posterior.batch_shape
        if self.base_samples is None or self.base_samples.shape != shape:
            members = torch.arange(self.sample_shape[0], device=posterior.device)
            members = members.reshape(-1, *([1] * len(posterior.batch_shape))).expand(shape)
            self.register_buffer("base_samples", members)
