"""Shared fixtures: a small real pool (SuperCon rows), a fast model config, the shrunk mission campaign."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from sbin_loop.config import CampaignConfig, parse_config
from sbin_loop.data import bundled_path
from sbin_loop.loop import Campaign

torch.set_num_threads(1)

FAST_MODEL = {"hidden": [32, 32], "epochs": 20, "min_steps": 150, "max_steps": 400, "ensemble_size": 2}
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def shrunk_mission() -> dict:
    """``configs/perovskite_tc_defects.yaml`` with the smallest campaign that still makes one composite batch.

    2 random picks, then one round of 2 (1 by EI on Tc, 1 by uncertainty on the vacancy energy); 10-atom cells and
    short relaxations, so the real CHGNet workflow runs 4 times; a one-member model (no cross-fitting).
    """
    data = yaml.safe_load((CONFIGS / "perovskite_tc_defects.yaml").read_text())
    data["budget"] = {"initial": 2, "rounds": 1}
    data["policy"]["batch_size"] = 2
    data["policy"]["components"][0]["count"] = 1
    data["model"].update({"ensemble_size": 1, "min_steps": 100, "max_steps": 200})
    data["intervals"] = {"n_draws": 200, "top_k": 2}
    forcefield = data["oracles"][0]
    forcefield.update({"fmax": 0.2, "max_steps": 40, "workers": 2, "threads_per_worker": 1})
    forcefield["supercell"].update({"min_atoms": 10, "sqs_steps": 100})
    forcefield["defects"]["competing_phases"] = False  # tests/test_defect_physics.py covers the phase diagram
    return data


@pytest.fixture(scope="session")
def mission_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the finished ``shrunk_mission`` campaign (real CHGNet), shared read-only by tests."""
    pytest.importorskip("chgnet", reason="the forcefield extra is not installed")
    directory = tmp_path_factory.mktemp("mission") / "campaign"
    Campaign.from_config(parse_config(shrunk_mission(), origin="mission"), directory, CONFIGS).run()
    return directory


@pytest.fixture(scope="session")
def supercon() -> pd.DataFrame:
    return pd.read_csv(bundled_path("supercon"))


def write_pool(directory: Path, supercon: pd.DataFrame) -> Path:
    """80 real SuperCon rows (a fixed slice) plus one unparsable row, as ``directory/pool.csv``."""
    rows = supercon.iloc[:80][["formula", "Tc_K"]]
    rows = pd.concat([rows, pd.DataFrame({"formula": ["Xx2O"], "Tc_K": [1.0]})], ignore_index=True)
    path = directory / "pool.csv"
    rows.to_csv(path, index=False)
    return path


@pytest.fixture()
def pool_csv(tmp_path: Path, supercon: pd.DataFrame) -> Path:
    return write_pool(tmp_path, supercon)


@pytest.fixture(scope="session")
def finished_campaign(tmp_path_factory: pytest.TempPathFactory, supercon: pd.DataFrame) -> Path:
    """Directory of a finished 3-round campaign (``campaign_config`` defaults), shared read-only by tests."""
    base = tmp_path_factory.mktemp("finished")
    directory = base / "campaign"
    Campaign.from_config(campaign_config(write_pool(base, supercon)), directory).run()
    return directory


def campaign_config(pool_csv: Path, **overrides: object) -> CampaignConfig:
    """A small, fast campaign over ``pool_csv``; ``overrides`` replace top-level sections (``oracles`` the oracle)."""
    data: dict = {
        "name": "test",
        "seed": 3,
        "space": {"kind": "pool", "source": str(pool_csv)},
        "objectives": [{"name": "Tc_K", "transform": "log1p", "unit": "K"}],
        "model": FAST_MODEL,
        "policy": {"kind": "expected_improvement", "batch_size": 4, "mc_samples": 32},
        "oracle": {"kind": "dataset", "poll_seconds": 0.01},
        "budget": {"initial": 6, "rounds": 2},
        "intervals": {"n_draws": 200, "top_k": 3},
    }
    data.update(overrides)
    if "oracles" in overrides:
        del data["oracle"]
    return parse_config(data)


class OracleWrapper:
    """Delegates everything to a real oracle; a test subclasses it to change what one call does."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.version = inner, inner.name, inner.version

    def submit(self, requests: list) -> None:
        self.inner.submit(requests)

    def known(self, requests: list) -> set[str]:
        return self.inner.known(requests)

    def poll(self, requests: list) -> dict:
        return self.inner.poll(requests)
