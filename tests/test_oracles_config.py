"""Oracle sections of the campaign config and building oracles from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbin_loop.config import ConfigError, load_config, parse_config
from sbin_loop.oracles import build_oracles
from sbin_loop.oracles.process import ProcessOracle
from sbin_loop.oracles.synthesis import SynthesisOracle

CONFIGS = Path(__file__).parent.parent / "configs"


def _config(**extra) -> dict:
    return {"name": "x", "objectives": [{"name": "Ef_vac_O"}, {"name": "Tc_K"}], **extra}


def test_single_oracle_shorthand_and_default_kind():
    assert parse_config(_config()).oracle.kind == "dataset"
    config = parse_config(_config(oracle={"poll_seconds": 0.5}))
    assert config.oracle.kind == "dataset" and config.oracle.poll_seconds == 0.5 and len(config.oracles) == 1


def test_mixed_oracles():
    config = parse_config(
        _config(
            oracles=[
                {"kind": "forcefield", "values": {"Ef_vac_O": "Ef_vac_O_mean"}, "timeout_seconds": 600},
                {"kind": "synthesis", "select": {"top_k": 2, "rank_by": "Tc_K"}, "backend": {"kind": "simulated"}},
            ]
        )
    )
    assert config.oracle.kind == "forcefield" and config.oracle.supercell.min_atoms == 40
    assert config.oracles[1].select.top_k == 2 and config.oracles[1].backend.kind == "simulated"


@pytest.mark.parametrize(
    ("oracles", "message"),
    [
        ([{"kind": "forcefield", "supercel": {}}], "oracles.0.supercel: unknown key"),
        ([{"kind": "quantum"}], "oracles.0"),
        ([{"kind": "forcefield", "values": {"Ef": "Ef_vac_O_mean"}}], "not objectives"),
        ([{"kind": "synthesis", "select": {"top_k": 1}}], "first oracle must evaluate every pick"),
        ([{"kind": "dataset"}, {"kind": "synthesis", "select": {"rank_by": "Hc2"}}], "rank_by"),
        (
            [{"kind": "dataset"}, {"kind": "synthesis"}, {"kind": "synthesis", "backend": {"outbox": "x/"}}],
            r"oracles\.2\.backend\.inbox: 'synthesis/inbox' is also oracles\.1\.backend\.inbox",
        ),
    ],
)
def test_bad_oracle_sections_are_named(oracles, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_config(oracles=oracles))
    with pytest.raises(ConfigError, match="not both"):
        parse_config(_config(oracle={}, oracles=[{}]))


def test_build_oracles_from_the_demo_config(tmp_path: Path):
    config, base = load_config(CONFIGS / "forcefield_demo.yaml")
    oracle = build_oracles(config, base, tmp_path)[0].oracle
    assert isinstance(oracle, ProcessOracle) and oracle.name == "forcefield:CHGNet"
    mixed = config.model_copy(
        update={"oracles": (*config.oracles, parse_config(_config(oracles=[{}, {"kind": "synthesis"}])).oracles[1])}
    )
    stages = build_oracles(mixed, base, tmp_path)
    assert isinstance(stages[1].oracle, SynthesisOracle) and (tmp_path / "synthesis" / "outbox").is_dir()
