"""Package namespaces whose names are imported on first use.

A package whose ``__init__`` imported its modules eagerly would load pandas, torch or maggma for anyone importing one
light submodule of it, such as its ``config``: Python runs a package's ``__init__`` before any of its submodules.
Those packages list their public names by the module that defines them, and ``lazy_exports`` imports the module when
the name is first read (``from sbin_loop.space import PoolSpace`` works as before).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(
    package: str, names_by_module: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """The module ``__getattr__``, ``__dir__`` and ``__all__`` of ``package``, its names read from their modules.

    Args:
        package: The package's ``__name__``.
        names_by_module: Submodule (relative to the package: ``"pool"`` for ``.pool``) -> the public names it
            defines, separated by spaces.
    """
    homes = {name: module for module, names in names_by_module.items() for name in names.split()}

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(homes))

    return __getattr__, __dir__, sorted(homes)
