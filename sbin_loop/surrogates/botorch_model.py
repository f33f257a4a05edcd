"""Any surrogate's posterior functions as a BoTorch ensemble model.

``FunctionDrawsModel`` fixes a seed and a number of draws ``S``; ``posterior(X)`` returns an ``EnsemblePosterior``
whose ``S`` members are the surrogate's function draws at ``X``. A surrogate's ``function_draws`` gives the same
functions for the same seed on any rows, so every MC acquisition function of BoTorch (and sbin's pool scoring in
chunks) works on it unchanged. The BNN has its own, faster equivalent (``sbin_loop.model.botorch_model.BNNModel``),
which keeps its drawn weight sets instead of recomputing them.
"""

from __future__ import annotations

from botorch.models.ensemble import EnsembleModel
from torch import Tensor


class FunctionDrawsModel(EnsembleModel):
    """``S`` fixed posterior functions of a surrogate, in target units.

    Args:
        surrogate: A fitted surrogate (``sbin_loop.surrogates.Surrogate``).
        n_draws: Ensemble size ``S``.
        seed: Seed of the draws; the same seed gives the same functions.
    """

    def __init__(self, surrogate: object, n_draws: int, seed: int) -> None:
        super().__init__()
        self.surrogate = surrogate
        self.n_draws = n_draws
        self.seed = seed
        self._num_outputs = len(surrogate.target_names)

    def forward(self, X: Tensor) -> Tensor:
        """``batch x n x d`` inputs -> ``batch x S x n x m`` ensemble outputs."""
        batch_shape, n, d = X.shape[:-2], X.shape[-2], X.shape[-1]
        values = self.surrogate.function_draws(X.reshape(-1, d).detach().numpy(), self.n_draws, self.seed)  # S x bn x m
        values = values.to(X.dtype)
        return values.reshape(self.n_draws, *batch_shape, n, self._num_outputs).movedim(0, -3)
