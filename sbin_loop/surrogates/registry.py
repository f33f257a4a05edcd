"""The surrogate a campaign config names: made, saved, loaded and wrapped for BoTorch by one set of functions.

The BNN keeps its safetensors checkpoint (``sbin_loop.model.checkpoint``); a peer's checkpoint holds its training
rows and the seed of its fit (``surrogate.json``), and loading refits it, so a resumed campaign picks with the same
model. No pickle is read either way.
"""

from __future__ import annotations

import json
from pathlib import Path

from botorch.models.ensemble import EnsembleModel

from sbin_loop.config import CampaignConfig
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.checkpoint import load_surrogate, save_surrogate
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.surrogates.botorch_model import FunctionDrawsModel
from sbin_loop.surrogates.forest import ForestSurrogate
from sbin_loop.surrogates.gp import GPSurrogate

PEERS = {"forest": ForestSurrogate, "gp": GPSurrogate}
"""Peer surrogates by the name a config gives them."""


def make_surrogate(config: CampaignConfig, n_features: int) -> object:
    """The untrained surrogate ``config.surrogate`` names, for ``n_features`` inputs and the config's objectives."""
    names = tuple(objective.name for objective in config.objectives)
    transforms = tuple(objective.transform for objective in config.objectives)
    bounds = tuple(objective.bounds for objective in config.objectives)
    if config.surrogate == "forest":
        return ForestSurrogate(n_features, names, bounds)
    if config.surrogate == "gp":
        return GPSurrogate(n_features, names, tuple(t if t == "log1p" else "none" for t in transforms), bounds)
    return BNNSurrogate(n_features, names, transforms, config.model, bounds)


def save_model(surrogate: object, directory: Path, feature_names: list[str]) -> Path:
    """Write a fitted surrogate's checkpoint into ``directory``."""
    if isinstance(surrogate, BNNSurrogate):
        return save_surrogate(surrogate, directory, feature_names)
    return surrogate.save(directory)


def load_model(directory: Path) -> object:
    """Read the checkpoint ``save_model`` wrote (a peer is refitted from its stored rows and seed)."""
    meta = directory / "surrogate.json"
    if not meta.is_file():
        return load_surrogate(directory)
    kind = json.loads(meta.read_text()).get("kind")
    if kind not in PEERS:
        raise ValueError(f"{directory}: unknown surrogate kind {kind!r}")
    return PEERS[kind].load(directory)


def posterior_model(surrogate: object, n_draws: int, seed: int) -> EnsembleModel:
    """The surrogate's ``n_draws`` posterior functions of ``seed`` as a BoTorch ensemble model."""
    if isinstance(surrogate, BNNSurrogate):
        return BNNModel(surrogate, n_draws, seed)
    return FunctionDrawsModel(surrogate, n_draws, seed)
