"""Surrogate names a campaign config may give: sbin's own, and those third-party packages register.

The names are checked here without importing any surrogate (no torch, no scikit-learn), so a config validates
cheaply; ``sbin_loop.surrogates.registry`` makes and loads the surrogate a name stands for.
"""

from __future__ import annotations

from sbin_loop import plugins

BUILTIN_SURROGATES = ("bnn", "forest", "gp")
"""Surrogate kinds sbin itself provides; any other name is a plugin's (entry point group ``sbin.surrogates``)."""


def surrogate_kind(kind: str) -> str:
    """``kind`` if sbin or an installed plugin provides it; else a ``PluginError`` listing the known names."""
    if kind in BUILTIN_SURROGATES:
        return kind
    return plugins.check_installed(plugins.SURROGATES, kind, BUILTIN_SURROGATES)
