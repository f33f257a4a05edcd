"""Frames of what the oracles declare they produce: their outputs, the defect quantities and the structures.

Which values are defect energies, which are densities and where a relaxed structure is kept is read from each oracle
stage's declaration (``sbin_loop.oracles.outputs.declared_outputs`` of the campaign's stored config), and each value
from the location the declaration names in the stored result, so a campaign shows what its oracles wrote whatever
the values are called.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pymatgen.core import Structure

from sbin_loop.oracles import replayed_columns
from sbin_loop.oracles.config import DatasetOracleConfig
from sbin_loop.oracles.outputs import OracleOutput, declared_outputs, resolve

if TYPE_CHECKING:
    from sbin_loop.inspection.frames import CampaignView

DEFECT_KINDS = ("defect_energy", "defect_density")
"""Declared kinds shown as defect quantities."""

INTERVAL_FIELDS = ("mean", "median", "lower", "upper")
"""Fields of a model interval shown beside the defect quantities an objective learns."""

STRUCTURE_COLUMNS = ("round", "candidate_id", "formula", "stage", "output", "structure", "space_group", "n_sites")
"""Columns of ``structure_frame`` (then ``a``, ``b``, ``c`` and ``volume``)."""


def stage_outputs(view: CampaignView) -> dict[int, list[OracleOutput]]:
    """Declared outputs of each oracle stage of the campaign, by stage index.

    A dataset stage declares the objectives it replays when its table can be read from here (a bundled table or an
    absolute path), else every objective.
    """
    config, outputs = view.config, {}
    for stage, settings in enumerate(config.oracles):
        columns = None
        if isinstance(settings, DatasetOracleConfig):
            with contextlib.suppress(ValueError, OSError):
                columns = set(replayed_columns(settings, config, None, stage).values())
        outputs[stage] = declared_outputs(settings, config.objectives, columns)
    return outputs


def output_table(view: CampaignView) -> pd.DataFrame:
    """One row per declared output of every stage: ``stage``, ``oracle`` and the declaration's fields."""
    rows = [
        {"stage": stage, "oracle": view.config.oracles[stage].kind, **output.model_dump()}
        for stage, outputs in stage_outputs(view).items()
        for output in outputs
    ]
    return pd.DataFrame(rows)


def defect_outputs(view: CampaignView) -> list[OracleOutput]:
    """Distinct declared defect quantities (energies per site, statistics, densities), in declaration order.

    The copies declared as objectives are left out: they are the same numbers as the quantity they select.
    """
    seen: dict[str, OracleOutput] = {}
    for outputs in stage_outputs(view).values():
        for output in outputs:
            if output.kind in DEFECT_KINDS and output.objective is None:
                seen.setdefault(output.name, output)
    return list(seen.values())


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _cell(output: OracleOutput, value: object) -> object:
    """A resolved value as a frame cell: a list of floats per site, else a float (NaN when absent)."""
    if output.per_site:
        return [_number(item) for item in value] if isinstance(value, list) else []
    return _number(value)


def defect_frame(view: CampaignView) -> pd.DataFrame:
    """Defect quantities of every result of a stage that declares them, with the model's intervals where learnt.

    One row per such result: ``round``, ``stage``, ``candidate_id``, ``formula``, a column per declared defect
    quantity (per-site ones hold a list), then for each objective that is a defect quantity the interval of the model
    retrained at the end of the result's round (``<objective> model mean/median/lower/upper``). Empty without
    such results.
    """
    outputs = stage_outputs(view)
    names = [output.name for output in defect_outputs(view)]
    every = [output for group in outputs.values() for output in group]
    learnt = sorted({o.objective for o in every if o.objective is not None and o.kind in DEFECT_KINDS})
    intervals = view.intervals()
    if not intervals.empty:
        intervals = intervals[intervals["group"] == "selected"].set_index(["round", "candidate_id", "objective"])
    rows = []
    for result in view.results:
        declared = [o for o in outputs.get(result.stage, []) if o.kind in DEFECT_KINDS and o.objective is None]
        if not declared:
            continue
        stored = {"values": result.values, "document": result.document or {}}
        row = {"round": result.round, "stage": result.stage, "candidate_id": result.candidate_id}
        row |= {"formula": result.formula, **{o.name: _cell(o, resolve(stored, o.location)) for o in declared}}
        for objective in learnt:
            key = (result.round, result.candidate_id, objective)
            found = not intervals.empty and key in intervals.index
            for field in INTERVAL_FIELDS:
                row[f"{objective} model {field}"] = float(intervals.loc[key, field]) if found else math.nan
        rows.append(row)
    columns = ["round", "stage", "candidate_id", "formula", *names]
    columns += [f"{objective} model {field}" for objective in learnt for field in INTERVAL_FIELDS]
    return pd.DataFrame(rows, columns=columns)


def structure_frame(view: CampaignView) -> pd.DataFrame:
    """Structures the oracles declared and stored (e.g. the relaxed bulk cell at ``document.bulk.structure``).

    Returns:
        One row per structure: ``round``, ``candidate_id``, ``formula``, ``stage``, ``output`` (the declared name),
        ``structure`` (a ``pymatgen.core.Structure``), ``space_group``, ``n_sites``, ``a``, ``b``, ``c`` (Å) and
        ``volume`` (Å³); empty when no result holds one.
    """
    outputs = stage_outputs(view)
    rows = []
    for result in view.results:
        for output in outputs.get(result.stage, []):
            if output.kind != "structure":
                continue
            value = resolve({"values": result.values, "document": result.document or {}}, output.location)
            if not isinstance(value, dict):
                continue
            structure = Structure.from_dict(value)
            a, b, c = structure.lattice.abc
            rows.append(
                {
                    "round": result.round,
                    "candidate_id": result.candidate_id,
                    "formula": result.formula,
                    "stage": result.stage,
                    "output": output.name,
                    "structure": structure,
                    "space_group": structure.get_space_group_info()[0],
                    "n_sites": len(structure),
                    "a": a,
                    "b": b,
                    "c": c,
                    "volume": structure.volume,
                }
            )
    return pd.DataFrame(rows, columns=[*STRUCTURE_COLUMNS, "a", "b", "c", "volume"])


def site_values(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Rounds and values of every site in a per-site column of ``defect_frame`` (one point per site)."""
    pairs = [(r, v) for r, values in zip(frame["round"], frame[column], strict=True) for v in values if np.isfinite(v)]
    return np.array([r for r, _ in pairs], dtype=float), np.array([v for _, v in pairs], dtype=float)
