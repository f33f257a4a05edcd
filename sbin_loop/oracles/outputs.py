"""What each oracle produces: names, units, kinds and where a stored result holds them.

Every oracle kind declares its outputs from its config (``declared_outputs``), so that readers of a campaign (the
report, the plots, the notebook) find defect energies, densities and structures by what the oracle says it wrote,
not by guessing from value names. A declaration's ``location`` is a path into a stored ``ResultDoc``:

- ``values.NAME``: a value the model learns (an objective);
- ``document.a.b.c``: a field of the oracle's result document (``document.statistics.O.mean``);
- ``document.vacancies[element=O].formation_energy``: the field of every list entry whose ``element`` is ``O`` (one
  value per sampled site).

``resolve`` reads a location from a result document. Declarations cover what the oracle itself computes; the defect
workflow's are built from its ``defects`` settings (vacancies, antisites, interstitials), with the quantity names of
``DefectWorkflowDoc.quantities`` (``Ef_vac_O_mean``, ``log10_vac_O_site_fraction``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from sbin_loop.config import ObjectiveConfig
from sbin_loop.oracles.config import (
    DatasetOracleConfig,
    ForceFieldOracleConfig,
    OracleConfig,
    SynthesisOracleConfig,
    VaspOracleConfig,
)

OutputKind = Literal["target", "defect_energy", "defect_density", "structure", "property"]
"""What an output is: a measured target property (Tc), a defect formation energy, a defect density, a structure, or
another property of the computed cell (energy per atom)."""

STATISTICS = ("mean", "std", "min", "median", "max")
"""Statistics over sampled sites that the defect workflow reports for each kind of defect."""

_FILTERED = re.compile(r"^(?P<field>\w+)\[(?P<key>\w+)=(?P<value>[^\]]+)\]$")


class OracleOutput(BaseModel):
    """One output of an oracle.

    Attributes:
        name: Its name (for defect-workflow quantities, the name objectives select it by in ``values``).
        kind: What it is (``OutputKind``).
        unit: Its unit (empty for a structure).
        location: Where a stored result holds it (see the module docstring).
        per_site: The location holds one value per sampled site (a list).
        statistic: For a statistic over sites, which one (``STATISTICS``).
        statistic_of: For a statistic over sites, the name of the per-site output it summarises.
        objective: The campaign objective this output is stored and learnt as (``values.<objective>``), if any.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: OutputKind
    unit: str = ""
    location: str
    per_site: bool = False
    statistic: str | None = None
    statistic_of: str | None = None
    objective: str | None = None


def resolve(result: Mapping, location: str) -> object:
    """The value at ``location`` in a stored result (``values`` and ``document`` mappings), or None if absent.

    A step into a list applies the rest of the path to each entry, giving a list; a filtered step
    (``vacancies[element=O]``) keeps only the entries whose field has that value.
    """
    current: object = result
    for step in location.split("."):
        match = _FILTERED.match(step)
        field = match["field"] if match else step
        if isinstance(current, list):
            current = [entry.get(field) for entry in current if isinstance(entry, Mapping)]
        elif isinstance(current, Mapping):
            current = current.get(field)
        else:
            return None
        if match:
            entries = current if isinstance(current, list) else []
            current = [e for e in entries if isinstance(e, Mapping) and str(e.get(match["key"])) == match["value"]]
        if current is None:
            return None
    return current


def _objective_outputs(objectives: tuple[ObjectiveConfig, ...], measured: set[str] | None) -> list[OracleOutput]:
    """Objectives an oracle measures directly, as targets (``measured`` None: every objective)."""
    return [
        OracleOutput(name=o.name, kind="target", unit=o.unit, location=f"values.{o.name}", objective=o.name)
        for o in objectives
        if measured is None or o.name in measured
    ]


def _per_site(name: str, location: str) -> OracleOutput:
    """The formation energies of every sampled site of one kind of defect."""
    return OracleOutput(name=name, kind="defect_energy", unit="eV", location=location, per_site=True)


def _defect_group(label: str, statistics: str, density: str) -> list[OracleOutput]:
    """Statistics and density outputs of one kind of defect (``vac_O``, ``int_O``, ``antisite``)."""
    sites = f"Ef_{label}_sites"
    outputs = [
        OracleOutput(
            name=f"Ef_{label}_{key}",
            kind="defect_energy",
            unit="eV",
            location=f"document.{statistics}.{key}",
            statistic=key,
            statistic_of=sites,
        )
        for key in STATISTICS
    ]
    outputs.append(
        OracleOutput(
            name=f"log10_{label}_site_fraction",
            kind="defect_density",
            unit="log10(site fraction)",
            location=f"document.{density}.log10_site_fraction",
        )
    )
    per_cm3 = f"document.{density}.per_cm3"
    outputs.append(OracleOutput(name=f"{label}_per_cm3", kind="defect_density", unit="cm^-3", location=per_cm3))
    return outputs


def defect_workflow_outputs(
    settings: ForceFieldOracleConfig | VaspOracleConfig, objectives: tuple[ObjectiveConfig, ...]
) -> list[OracleOutput]:
    """Outputs of the defect workflow (force field or VASP) under ``settings.defects``.

    Per kind of defect: the formation energy of every sampled site, its statistics over sites and the equilibrium
    density; then the relaxed bulk supercell and its energy and volume per atom. An output an objective selects
    through ``values`` (or by its own name) is also declared as that objective.
    """
    defects = settings.defects
    outputs: list[OracleOutput] = []
    for element in defects.vacancies:
        site = f"document.vacancies[element={element}].formation_energy"
        outputs.append(_per_site(f"Ef_vac_{element}_sites", site))
        outputs += _defect_group(f"vac_{element}", f"statistics.{element}", f"densities.{element}")
    if defects.antisites:
        site = "document.antisites.formation_energy"
        outputs.append(_per_site("Ef_antisite_sites", site))
        outputs += _defect_group("antisite", "antisite_statistics", "antisite_density")
    for element in defects.interstitials:
        site = f"document.interstitials[element={element}].formation_energy"
        outputs.append(_per_site(f"Ef_int_{element}_sites", site))
        stats, density = f"interstitial_statistics.{element}", f"interstitial_densities.{element}"
        outputs += _defect_group(f"int_{element}", stats, density)
    outputs.append(OracleOutput(name="relaxed bulk supercell", kind="structure", location="document.bulk.structure"))
    for name, unit in (("energy_per_atom", "eV/atom"), ("volume_per_atom", "Å^3/atom")):
        outputs.append(OracleOutput(name=name, kind="property", unit=unit, location=f"document.bulk.{name}"))
    by_name = {output.name: output for output in outputs}
    for objective in objectives:
        source = by_name.get(settings.values.get(objective.name, objective.name))
        if source is not None:
            update = {"name": objective.name, "location": f"values.{objective.name}", "objective": objective.name}
            outputs.append(source.model_copy(update=update))
    return outputs


def declared_outputs(
    settings: OracleConfig, objectives: tuple[ObjectiveConfig, ...], columns: set[str] | None = None
) -> list[OracleOutput]:
    """What an oracle configured by ``settings`` produces, for a campaign with these objectives.

    A dataset replay measures the objectives whose column its table has (every objective when ``columns``, the
    table's columns, is not given); a synthesis lab measures the objectives its ``values`` map, or every objective
    when it maps none; the defect workflows produce ``defect_workflow_outputs``; a manual lab (``sbin tell``) and a
    plugin oracle are taken to measure every objective.
    """
    if isinstance(settings, ForceFieldOracleConfig | VaspOracleConfig):
        return defect_workflow_outputs(settings, objectives)
    if isinstance(settings, SynthesisOracleConfig):
        measured = set(settings.values) or {objective.name for objective in objectives}
        return _objective_outputs(objectives, measured)
    if isinstance(settings, DatasetOracleConfig) and columns is not None:
        return _objective_outputs(objectives, {o.name for o in objectives if o.data_column in columns})
    return _objective_outputs(objectives, None)  # a replay of every column, a manual lab, a plugin
