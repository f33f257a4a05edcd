"""Surrogates a campaign can learn with, behind one protocol.

The variational BNN (``sbin_loop.model.BNNSurrogate``) is the default; a random forest with conformal intervals
(``ForestSurrogate``) and an exact GP with pathwise draws (``GPSurrogate``) are its peers, used by the discovery
benchmark and selectable in a campaign; other packages add surrogates by name (``sbin_loop.surrogates.registry``).
All give draws in the objectives' own units, clamped to their supports:

- ``function_draws(features, S, seed)``: ``S x n x m`` draws of the noise-free function; the same seed gives the same
  ``S`` functions on any rows, so a pool can be scored in chunks. Acquisition rules score these.
- ``predictive_draws(features, S, seed)``: ``S x n x m`` draws of a new measurement. Intervals come from these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sbin_loop.lazy import lazy_exports

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

__getattr__, __dir__, _LAZY = lazy_exports(
    __name__, {"forest": "ForestSettings ForestSurrogate", "gp": "GPSettings GPSurrogate"}
)


@runtime_checkable
class Surrogate(Protocol):
    """What the engine needs of a model: fit on measured rows, then draw functions and measurements."""

    target_names: tuple[str, ...]
    n_features: int

    def fit(self, features: np.ndarray, targets: np.ndarray, seed: int) -> object:
        """Fit on ``n x d`` descriptors and ``n x m`` targets (NaN where not measured)."""

    def function_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` posterior function draws in target units."""

    def predictive_draws(self, features: np.ndarray | Tensor, n_draws: int, seed: int) -> Tensor:
        """``S x n x m`` posterior predictive draws in target units."""


__all__ = ["Surrogate", *_LAZY]
