"""Every shipped campaign config runs, shrunk to a round, and stores only finite values inside each objective's support.

The configs are run as shipped (model, policy, oracle and intervals settings), with a smaller budget and pool so the
suite stays fast; the force-field config runs the real CHGNet workflow on its smallest setting.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import shrunk_mission

from sbin_loop.config import parse_config
from sbin_loop.inspection.frames import open_view
from sbin_loop.loop import Campaign

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _small_defect_campaign(name: str, min_atoms: int, sites: int) -> dict:
    """Two picks then one, on small randomly decorated cells with short, single-threaded relaxations and no competing
    phases.

    The shipped config's oracle section is kept, with these settings changed; the phase diagram is left to
    tests/test_defect_physics.py (about 5 relaxations per new element).
    """
    oracle = yaml.safe_load((CONFIGS / name).read_text())["oracle"]
    defects = {**oracle.get("defects", {}), "sites_per_species": sites, "competing_phases": False}
    return {
        "budget": {"initial": 2, "rounds": 1},
        "policy": {"batch_size": 1},
        "oracle": {
            **oracle,
            "defects": defects,
            "max_steps": 100,
            "threads_per_worker": 1,  # the suite runs a test per core: 2 torch threads beside another test thrash
            "supercell": {"min_atoms": min_atoms, "decoration": "random"},
        },
    }


SHRINK = {
    "quickstart.yaml": {"space": {"sample": 300}, "budget": {"initial": 12, "rounds": 1}},
    "staged_demo.yaml": {"budget": {"initial": 8, "rounds": 1}},
    "perovskite_vacancy.yaml": {"budget": {"initial": 8, "rounds": 1}},
    # 10-atom cells (two sites a sublattice, so mixed occupancies are rounded; each job records its fraction error)
    # and one site instead of the shipped 40-atom cells and two: the same workflow at a fraction of the cost.
    "forcefield_demo.yaml": _small_defect_campaign("forcefield_demo.yaml", min_atoms=10, sites=1),
    # The melt-quench of this config costs about a minute per evaluation here: the shrink runs its campaign on
    # crystalline 10-atom cells; tests/test_defect_physics.py runs the amorphous path.
    "amorphous_defects.yaml": _small_defect_campaign("amorphous_defects.yaml", min_atoms=10, sites=2),
    "perovskite_tc_defects.yaml": None,
}
"""Per shipped config, the sections shrunk for the test (merged into the file's own), or None for the mission
config: its shrunk campaign (``conftest.shrunk_mission``) is run once and shared with
``tests/test_mission.py``."""


def test_every_shipped_config_is_covered() -> None:
    assert {path.name for path in CONFIGS.glob("*.yaml")} == set(SHRINK)


@pytest.mark.parametrize("name", sorted(SHRINK))
def test_shipped_tc_objectives_declare_their_support(name: str) -> None:
    for objective in parse_config(_shrunk(name), origin=name).objectives:
        if objective.unit == "K":
            assert objective.bounds is not None and objective.bounds[0] == 0.0, f"{name}: {objective.name}"


def _shrunk(name: str) -> dict:
    if SHRINK[name] is None:
        return shrunk_mission()
    data = yaml.safe_load((CONFIGS / name).read_text())
    for section, values in SHRINK[name].items():
        data[section] = {**data.get(section, {}), **values}
    return data


@pytest.mark.parametrize("name", sorted(SHRINK))
def test_shipped_config_stores_values_inside_the_support(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = _shrunk(name)
    kinds = [oracle.get("kind") for oracle in data.get("oracles", [data.get("oracle", {})])]
    if "forcefield" in kinds and importlib.util.find_spec("chgnet") is None:
        pytest.skip("the forcefield extra is not installed")
    config = parse_config(data, origin=name)
    if SHRINK[name] is None:
        directory = request.getfixturevalue("mission_campaign")
    else:
        directory = tmp_path / "campaign"
        Campaign.from_config(config, directory, CONFIGS).run()
    view = open_view(directory)
    stored = view.intervals()
    assert not stored.empty, "no interval was stored"
    picks = view.selections()
    for objective in config.objectives:
        low, high = objective.bounds or (None, None)
        columns = ["mean", "median", "lower", "upper", "t_lower", "t_upper", "mc_mean_lower", "mc_mean_upper"]
        rows = stored[stored["objective"] == objective.name]
        values = rows[columns].to_numpy(float)
        assert np.isfinite(values).all(), f"{name}: non-finite stored interval for {objective.name}"
        assert (rows["lower"] <= rows["median"]).all() and (rows["median"] <= rows["upper"]).all()
        if low is not None:
            assert values.min() >= low, f"{name}: {objective.name} below {low}"
        if high is not None:
            assert values.max() <= high, f"{name}: {objective.name} above {high}"
    predicted = picks[[column for column in picks.columns if column.startswith("pred_")]].select_dtypes("number")
    predicted = predicted.to_numpy(float)
    assert np.isfinite(predicted[~np.isnan(predicted)]).all()
    bounded = config.policy_objective.bounds
    if bounded and bounded[0] is not None:
        for column in ("pred_mean", "pred_lower", "pred_median"):
            assert (picks[column].dropna() >= bounded[0]).all(), f"{name}: {column} below the support"
