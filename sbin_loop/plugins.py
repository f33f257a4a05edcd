"""Oracles, policies and surrogates found by name: sbin's own, and those other packages register as entry points.

A package adds an oracle kind by declaring an entry point in the group ``sbin.oracles`` (a policy: ``sbin.policies``;
a surrogate: ``sbin.surrogates``) whose name is the ``kind`` a config gives and whose object makes it:

```toml
[project.entry-points."sbin.oracles"]
my_lab = "my_package.oracle:make_oracle"      # make_oracle(settings, context) -> Oracle
[project.entry-points."sbin.policies"]
my_rule = "my_package.policy:make_policy"     # make_policy(policy_config) -> Policy
[project.entry-points."sbin.surrogates"]
my_model = "my_package.model:MyModel"         # MyModel.from_config(config, n_features), MyModel.load(directory)
```

The config then says ``oracle: {kind: my_lab, options: {...}}``, ``policy: {kind: my_rule, options: {...}}`` or
``surrogate: my_model``; ``options`` is passed through untouched (``settings.options``). Names of sbin's own kinds
cannot be taken over. How a surrogate is made, saved and reloaded: ``sbin_loop.surrogates.registry``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

ORACLES = "sbin.oracles"
POLICIES = "sbin.policies"
SURROGATES = "sbin.surrogates"


class PluginError(ValueError):
    """A plugin kind that is not installed or cannot be loaded; the message names it and what is installed."""


def installed(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name (read afresh: packages may be installed while sbin runs)."""
    return {entry.name: entry for entry in entry_points(group=group)}


def check_installed(group: str, name: str, builtin: tuple[str, ...]) -> str:
    """``name`` if a plugin of ``group`` has it; else a ``PluginError`` listing sbin's own kinds and the plugins."""
    plugins = installed(group)
    if name in plugins:
        return name
    names = ", ".join(builtin)
    extra = f"; installed plugins: {', '.join(sorted(plugins))}" if plugins else f"; no {group} plugin is installed"
    raise PluginError(f"unknown kind {name!r} (sbin's own: {names}{extra})")


def load(group: str, name: str) -> Callable:
    """The factory a plugin registers under ``name`` in ``group``.

    Raises:
        PluginError: If no installed package registers ``name``, or its entry point cannot be imported.
    """
    entry = installed(group).get(name)
    if entry is None:
        raise PluginError(f"{group}: no installed package registers {name!r}")
    try:
        factory = entry.load()
    except Exception as error:
        raise PluginError(f"{group}: {name!r} ({entry.value}) cannot be loaded: {error}") from None
    if not callable(factory):
        raise PluginError(f"{group}: {name!r} ({entry.value}) is not callable")
    return factory
