"""Shared fixtures: a small real pool (SuperCon rows) and a fast model config."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from sbin_loop.config import CampaignConfig, parse_config
from sbin_loop.data import bundled_path
from sbin_loop.loop import Campaign

torch.set_num_threads(1)

FAST_MODEL = {"hidden": [32, 32], "epochs": 20, "min_steps": 150, "max_steps": 400}


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
