"""The defect settings an oracle configuration may set, with their defaults: defined here once.

``DefectWorkflowMaker`` (``workflows/defects.py``) takes its defaults from ``DEFECT_DEFAULTS``, and the campaign
configuration (``DefectConfig``, ``SupercellConfig``) and the VASP path read the same values. This module imports
nothing heavy, so a campaign without a defect oracle validates its configuration without jobflow or atomate2.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

MAX_LONG_RANGE_ORDER = 0.25
"""Largest long-range order (fraction of the crystal's Bragg intensity above noise) of a cell taken as amorphous."""


@dataclass(frozen=True)
class DefectSettings:
    """What a defect calculation computes, and at which conditions (field meanings: ``DefectWorkflowMaker``)."""

    vacancies: tuple[str, ...] = ("O",)
    sites_per_species: int = 4
    antisites: int = 0
    antisite_pairs: tuple[tuple[str, str], ...] = ()
    interstitials: tuple[str, ...] = ()
    temperature_K: float = 1000.0
    oxygen_partial_pressure_atm: float = 0.21
    formation_energy_bounds: tuple[float, float] = (-3.0, 15.0)
    chemical_potentials: dict[str, float] = field(default_factory=dict)
    competing_phases: bool = True
    max_long_range_order: float = MAX_LONG_RANGE_ORDER


DEFECT_DEFAULTS = DefectSettings()
"""The defaults of every defect setting."""

DEFECT_SETTINGS = tuple(f.name for f in fields(DefectSettings) if f.name != "max_long_range_order")
"""The Maker fields that oracle configurations set (``DefectConfig``), and take their defaults from."""


def setting_default(name: str) -> Any:
    """The default of the defect setting ``name`` (a fresh copy of a mutable one)."""
    value = getattr(DEFECT_DEFAULTS, name)
    return dict(value) if isinstance(value, dict) else value
