"""Surrogates found by name: made for a campaign, saved, loaded and wrapped for BoTorch by one set of functions.

sbin's own kinds are ``bnn``, ``forest`` and ``gp``; any other name a config's ``surrogate`` gives is looked up among
the ``sbin.surrogates`` entry points of installed packages (``sbin_loop.plugins``). Such an entry point names a class
with ``from_config(config, n_features)`` (the untrained surrogate for a campaign's objectives) and ``load(directory)``
(the fitted surrogate its ``save`` wrote there).

The BNN keeps its safetensors checkpoint (``sbin_loop.model.checkpoint``); every other surrogate's checkpoint holds a
``surrogate.json`` naming its kind, by which ``load_model`` finds the class that reads it back (sbin's peers store
their training rows and the seed of their fit there, and refit on loading, so a resumed campaign picks with the same
model). No pickle is read either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botorch.models.ensemble import EnsembleModel

from sbin_loop import plugins
from sbin_loop.config import CampaignConfig
from sbin_loop.features import composition_input_names, fraction_columns
from sbin_loop.model.botorch_model import BNNModel
from sbin_loop.model.checkpoint import load_surrogate, save_surrogate
from sbin_loop.model.surrogate import BNNSurrogate
from sbin_loop.surrogates.botorch_model import FunctionDrawsModel
from sbin_loop.surrogates.gp import GPSurrogate

if TYPE_CHECKING:
    from sbin_loop.surrogates.forest import ForestSurrogate

KIND_FILE = "surrogate.json"
"""The file of a checkpoint other than the BNN's that names its surrogate kind (``{"kind": NAME, ...}``)."""


@dataclass(frozen=True)
class SurrogateKind:
    """How one kind of surrogate is made for a campaign and read back from its checkpoint.

    Attributes:
        make: ``make(config, n_features)``: the untrained surrogate for the campaign's objectives.
        load: ``load(directory)``: the fitted surrogate whose checkpoint is in ``directory``.
    """

    make: Callable[[CampaignConfig, int], object]
    load: Callable[[Path], object]


def _bnn(config: CampaignConfig, n_features: int) -> BNNSurrogate:
    objectives = config.objectives
    # Every pool's inputs start with the composition descriptors and, if asked for, the element fractions.
    leading = composition_input_names(config.features.element_fractions)
    return BNNSurrogate(
        n_features,
        tuple(o.name for o in objectives),
        tuple(o.transform for o in objectives),
        config.model,
        tuple(o.bounds for o in objectives),
        fraction_columns(leading),
    )


def _forest(config: CampaignConfig, n_features: int) -> ForestSurrogate:
    from sbin_loop.surrogates.forest import ForestSurrogate  # scikit-learn loads only for a campaign that uses it

    objectives = config.objectives
    return ForestSurrogate(n_features, tuple(o.name for o in objectives), tuple(o.bounds for o in objectives))


def _load_forest(directory: Path) -> ForestSurrogate:
    from sbin_loop.surrogates.forest import ForestSurrogate

    return ForestSurrogate.load(directory)


def _gp(config: CampaignConfig, n_features: int) -> GPSurrogate:
    objectives = config.objectives
    transforms = tuple(o.transform if o.transform == "log1p" else "none" for o in objectives)
    return GPSurrogate(n_features, tuple(o.name for o in objectives), transforms, tuple(o.bounds for o in objectives))


SURROGATES: dict[str, SurrogateKind] = {
    "bnn": SurrogateKind(_bnn, load_surrogate),
    "forest": SurrogateKind(_forest, _load_forest),
    "gp": SurrogateKind(_gp, GPSurrogate.load),
}
"""sbin's own surrogates by the name a config gives them (``BUILTIN_SURROGATES``)."""


def surrogate_by_name(name: str) -> SurrogateKind:
    """The surrogate ``name``: sbin's own, else the class a package registers under it in ``sbin.surrogates``.

    Raises:
        PluginError: If no installed package registers ``name``, or its class lacks ``from_config`` or ``load``.
    """
    if name in SURROGATES:
        return SURROGATES[name]
    registered = plugins.load(plugins.SURROGATES, name)
    missing = [method for method in ("from_config", "load") if not callable(getattr(registered, method, None))]
    if missing:
        raise plugins.PluginError(f"{plugins.SURROGATES}: {name!r} has no {' or '.join(missing)} method")
    return SurrogateKind(registered.from_config, registered.load)


def make_surrogate(config: CampaignConfig, n_features: int) -> object:
    """The untrained surrogate ``config.surrogate`` names, for ``n_features`` inputs and the config's objectives."""
    return surrogate_by_name(config.surrogate).make(config, n_features)


def _stored_kind(directory: Path) -> object:
    try:
        return json.loads((directory / KIND_FILE).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def save_model(surrogate: object, directory: Path, feature_names: list[str]) -> Path:
    """Write a fitted surrogate's checkpoint into ``directory``.

    Raises:
        ValueError: If a surrogate other than the BNN wrote no ``surrogate.json`` naming its kind: it could not be
            loaded back.
    """
    if isinstance(surrogate, BNNSurrogate):
        return save_surrogate(surrogate, directory, feature_names)
    path = surrogate.save(directory)
    if not isinstance(_stored_kind(Path(directory)), str):
        raise ValueError(f"{type(surrogate).__name__}.save wrote no {KIND_FILE} naming its kind into {directory}")
    return path


def load_model(directory: Path) -> object:
    """Read the checkpoint ``save_model`` wrote, with the class of the kind it names (the BNN's has no kind file).

    Raises:
        ValueError: If the checkpoint names a surrogate kind that is neither sbin's nor an installed plugin's.
    """
    directory = Path(directory)
    if not (directory / KIND_FILE).is_file():
        return load_surrogate(directory)
    kind = _stored_kind(directory)
    try:
        found = surrogate_by_name(kind if isinstance(kind, str) else "")
    except plugins.PluginError as error:
        raise ValueError(f"{directory}: unknown surrogate kind {kind!r} ({error})") from None
    return found.load(directory)


def posterior_model(surrogate: object, n_draws: int, seed: int) -> EnsembleModel:
    """The surrogate's ``n_draws`` posterior functions of ``seed`` as a BoTorch ensemble model."""
    if isinstance(surrogate, BNNSurrogate):
        return BNNModel(surrogate, n_draws, seed)
    return FunctionDrawsModel(surrogate, n_draws, seed)
