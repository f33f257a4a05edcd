"""Data shipped with sbin (see PROVENANCE.md beside this file for sources, licences and traps)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED = {
    "supercon": "supercon_train.csv.gz",
    "emery_wolverton": "emery_wolverton_abo3.csv.gz",
    "magpie_elements": "magpie_elements.csv.gz",
}
"""Names usable as ``bundled:NAME`` in campaign configs, mapped to their files."""


def bundled_path(name: str) -> Path:
    """Return the on-disk path of a bundled table.

    Args:
        name: One of the keys of ``BUNDLED``.

    Raises:
        KeyError: If ``name`` is not a bundled table.
    """
    if name not in BUNDLED:
        raise KeyError(f"unknown bundled dataset {name!r}; available: {', '.join(sorted(BUNDLED))}")
    return Path(str(resources.files(__package__).joinpath(BUNDLED[name])))
