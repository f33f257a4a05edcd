"""Batch expected improvement with BoTorch's qLogEI on cached posterior draws."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.optim.optimize import optimize_acqf_discrete

from sbin_loop.model.botorch_model import EnsembleMemberSampler, PosteriorSampleCache
from sbin_loop.policies.base import PoolScores, Selection


@dataclass
class ExpectedImprovementPolicy:
    """Pick a batch by sequential-greedy maximisation of q-log expected improvement (Ament et al., NeurIPS 2023).

    The ``S`` posterior draws of the pool are computed once per round; BoTorch's ``qLogExpectedImprovement`` then
    scores candidates jointly with the picks made so far (pending points), through ``PosteriorSampleCache``, and
    ``optimize_acqf_discrete`` adds the best candidate until the batch is full. Each pick therefore maximises the
    expected improvement of the whole batch, which spreads a batch over candidates whose draws are not redundant.

    Attributes:
        batch_size: Candidates per round (q).
        max_batch_size: Candidates scored per acquisition call (memory bound).
    """

    batch_size: int
    max_batch_size: int = 4096
    name: str = "expected_improvement"
    needs_model: bool = True

    def select(self, scores: PoolScores | None, n_available: int, rng: np.random.Generator) -> Selection:
        """Greedy qLogEI batch over the available candidates (``rng`` is unused: the choice is deterministic)."""
        if scores is None:
            raise ValueError("expected improvement needs posterior draws of the pool")
        q = min(self.batch_size, n_available)
        samples = scores.samples.to(torch.float64)  # S x N
        model = PosteriorSampleCache(samples.unsqueeze(-1))  # S x N x 1
        acquisition = qLogExpectedImprovement(
            model=model, best_f=scores.best_observed, sampler=EnsembleMemberSampler(samples.shape[0])
        )
        choices = torch.arange(n_available, dtype=torch.float64).unsqueeze(-1)  # N x 1
        picks, values = optimize_acqf_discrete(
            acquisition, q=q, choices=choices, max_batch_size=self.max_batch_size, unique=True
        )
        return Selection(
            indices=[int(index) for index in picks[:, 0].tolist()],
            acquisition_values=[float(value) for value in values.reshape(-1).tolist()],
            policy=self.name,
            acquisition="qLogEI",
        )
