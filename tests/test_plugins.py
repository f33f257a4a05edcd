"""Third-party oracles and policies, registered through entry points, run in a campaign."""

import textwrap
from pathlib import Path

import pytest
from conftest import campaign_config

from sbin_loop.campaign import Campaign
from sbin_loop.config import ConfigError, parse_config
from sbin_loop.plugins import PluginError, load
from sbin_loop.space.pool import composition_key_of

PLUGIN = '''
"""A toy lab and a toy policy, as a third-party package would ship them."""

from pathlib import Path

import numpy as np

from sbin_loop.oracles import OracleOutcome
from sbin_loop.policies import Selection
from sbin_loop.space.pool import composition_key_of


def tc(formula):
    """The toy lab's "measurement": a number fixed by the composition."""
    return float(sum(map(ord, composition_key_of(formula))) % 97)


class ToyLab:
    name, version = "toy_lab", "0.1"

    def __init__(self, scale, work_dir):
        self.scale, self.work_dir, self.requests = scale, Path(work_dir), {}

    def submit(self, requests):
        self.requests.update({request.job_id: request for request in requests})

    def known(self, requests):
        return {request.job_id for request in requests if request.job_id in self.requests}

    def poll(self, requests):
        return {
            r.job_id: OracleOutcome(job_id=r.job_id, status="completed", values={"Tc_K": self.scale * tc(r.formula)})
            for r in requests
        }

    def close(self):
        (self.work_dir / "toy_lab_closed").write_text("closed")


def make_oracle(settings, context):
    return ToyLab(settings.options["scale"], context.work_dir)


class MostUncertain:
    name, needs_model = "toy_spread", True

    def __init__(self, config):
        self.batch_size = config.batch_size

    def select(self, scores, n_available, rng):
        spread = scores.samples[..., 0].std(dim=0).numpy()
        picks = [int(i) for i in np.argsort(-spread, kind="stable")[: self.batch_size]]
        n = len(picks)
        reasons = [f"largest spread {spread[i]:.3g}" for i in picks]
        return Selection(picks, [float(spread[i]) for i in picks], [self.name] * n, ["std"] * n, reasons, [{}] * n)


def make_policy(config):
    return MostUncertain(config)
'''


@pytest.fixture()
def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``toy_sbin_plugin`` installed into a directory on ``sys.path``, with its entry points in a dist-info."""
    site = tmp_path / "site"
    (site / "toy_sbin_plugin").mkdir(parents=True)
    (site / "toy_sbin_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "toy_sbin_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-sbin-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[sbin.oracles]\ntoy_lab = toy_sbin_plugin:make_oracle\n\n"
        "[sbin.policies]\ntoy_spread = toy_sbin_plugin:make_policy\nbroken = toy_sbin_plugin:missing\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_third_party_oracle_and_policy_run_a_campaign(plugin_package: Path, pool_csv: Path, tmp_path: Path):
    config = campaign_config(
        pool_csv,
        oracle={"kind": "toy_lab", "options": {"scale": 2.0}, "poll_seconds": 0.01},
        policy={"kind": "toy_spread", "batch_size": 3, "mc_samples": 16},
        budget={"initial": 5, "rounds": 1},
    )
    campaign = Campaign.from_config(config, tmp_path / "c")
    campaign.run()
    results = campaign.store.results()
    assert len(results) == 8 and {result.oracle for result in results} == {"toy_lab"}
    for result in results:  # the plugin's values, through the same checks as every oracle
        expected = 2.0 * (sum(map(ord, composition_key_of(result.formula))) % 97)
        assert result.values == {"Tc_K": expected}
    last = campaign.store.rounds()[-1]
    assert [entry.policy for entry in last.selected] == ["toy_spread"] * 3
    assert all(entry.reason.startswith("largest spread") for entry in last.selected)
    assert (tmp_path / "c" / "toy_lab_closed").read_text() == "closed"  # Oracle.close at the end


def test_unknown_and_broken_plugins_are_one_line_errors(plugin_package: Path, pool_csv: Path):
    with pytest.raises(ConfigError, match=r"oracle\.kind: unknown kind 'toy_lib' .*installed plugins: toy_lab"):
        campaign_config(pool_csv, oracle={"kind": "toy_lib"})
    with pytest.raises(ConfigError, match=r"policy: options are only used by a plugin policy"):
        campaign_config(pool_csv, policy={"kind": "greedy", "options": {"x": 1}})
    config = parse_config(
        {"name": "b", "objectives": [{"name": "Tc_K"}], "policy": {"kind": "broken"}, "oracle": {"kind": "manual"}}
    )
    with pytest.raises(PluginError, match=r"'broken' \(toy_sbin_plugin:missing\) cannot be loaded"):
        load("sbin.policies", config.policy.kind)
