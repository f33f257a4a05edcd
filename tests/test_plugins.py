"""Third-party oracles, policies and surrogates, registered through entry points, run in a campaign."""

import textwrap
from pathlib import Path

import pytest
import torch
from conftest import campaign_config

from sbin_loop.campaign import Campaign
from sbin_loop.config import ConfigError, parse_config
from sbin_loop.plugins import PluginError, load
from sbin_loop.space.pool import composition_key_of
from sbin_loop.surrogates.registry import load_model, surrogate_by_name

PLUGIN = '''
"""A toy lab, a toy policy and a toy surrogate, as a third-party package would ship them."""

from pathlib import Path

import numpy as np
import torch

from sbin_loop.oracles import OracleOutcome
from sbin_loop.policies import Selection
from sbin_loop.space.pool import composition_key_of
from sbin_loop.surrogates.data import FitSummary, PeerSurrogate, clamp_to_bounds, load_rows


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


class ToyNeighbours(PeerSurrogate):
    """Mean and spread of the 3 nearest measured rows; a draw shifts every row by the same multiple of its spread."""

    kind = "toy_neighbours"

    @classmethod
    def from_config(cls, config, n_features):
        objectives = config.objectives
        return cls(n_features, tuple(o.name for o in objectives), tuple(o.bounds for o in objectives))

    def fit(self, features, targets, seed, groups=None, warm_start=None):
        self._check_rows(features, targets, seed)
        return FitSummary(n_train=len(self.rows.targets), kind=self.kind)

    def _moments(self, features):
        x = self.rows.imputed(np.asarray(features, dtype=np.float64))
        train = self.rows.imputed(self.rows.features)
        distance = ((x[:, None, :] - train[None, :, :]) ** 2).sum(axis=-1)
        means, spreads = [], []
        for j in range(len(self.target_names)):
            measured = np.flatnonzero(~np.isnan(self.rows.targets[:, j]))
            nearest = measured[np.argsort(distance[:, measured], axis=1, kind="stable")[:, :3]]
            values = self.rows.targets[nearest, j]
            means.append(values.mean(axis=1))
            spreads.append(values.std(axis=1) + 1.0)
        return torch.as_tensor(np.stack(means, -1)), torch.as_tensor(np.stack(spreads, -1))

    def function_draws(self, features, n_draws, seed):
        mean, spread = self._moments(features)
        generator = torch.Generator().manual_seed(seed)
        shift = torch.randn((n_draws, 1, mean.shape[1]), generator=generator, dtype=mean.dtype)
        return clamp_to_bounds(mean + shift * spread, self.bounds, self.target_names)

    def predictive_draws(self, features, n_draws, seed):
        mean, spread = self._moments(features)
        noise = torch.randn((n_draws, *mean.shape), generator=torch.Generator().manual_seed(seed), dtype=mean.dtype)
        return clamp_to_bounds(mean + noise * spread, self.bounds, self.target_names)

    def save(self, directory):
        return self._save(directory, {})

    @classmethod
    def load(cls, directory):
        rows, settings, names, bounds = load_rows(directory, cls.kind)
        surrogate = cls(rows.features.shape[1], names, bounds)
        surrogate.fit(rows.features, rows.targets, settings["fit_seed"])
        return surrogate
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
        "[sbin.policies]\ntoy_spread = toy_sbin_plugin:make_policy\nbroken = toy_sbin_plugin:missing\n\n"
        "[sbin.surrogates]\ntoy_neighbours = toy_sbin_plugin:ToyNeighbours\nnot_a_model = toy_sbin_plugin:tc\n"
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
    known = r"\(sbin's own: bnn, forest, gp; installed plugins: not_a_model, toy_neighbours\)"
    with pytest.raises(ConfigError, match=rf"  surrogate: unknown kind 'toy_neighbors' {known}"):
        campaign_config(pool_csv, surrogate="toy_neighbors")
    with pytest.raises(PluginError, match=r"'not_a_model' has no from_config or load method"):
        surrogate_by_name(campaign_config(pool_csv, surrogate="not_a_model").surrogate)


def test_a_third_party_surrogate_learns_a_campaign_and_is_reloaded_by_its_kind(
    plugin_package: Path, pool_csv: Path, tmp_path: Path
):
    objectives = [{"name": "Tc_K", "unit": "K", "bounds": [0, None]}]
    config = campaign_config(pool_csv, surrogate="toy_neighbours", objectives=objectives)
    campaign = Campaign.from_config(config, tmp_path / "c")
    campaign.run()
    rounds = campaign.store.rounds()
    assert [doc.state for doc in rounds] == ["complete"] * 3
    assert [(doc.training or {}).get("kind") for doc in rounds] == ["toy_neighbours"] * 3
    assert len(campaign.store.results()) == 6 + 2 * 4
    intervals = [c.interval for doc in rounds for group in doc.intervals.values() for c in group]
    assert intervals and all(0 <= i.lower <= i.median <= i.upper for i in intervals)

    stored = load_model(tmp_path / "c" / rounds[-1].checkpoint)  # found by the kind its surrogate.json names
    assert type(stored).__name__ == "ToyNeighbours"
    assert len(stored.rows.targets) == rounds[-1].training["n_train"]
    x = stored.rows.features[:5]
    refit = surrogate_by_name("toy_neighbours").make(config, x.shape[1])
    refit.fit(stored.rows.features, stored.rows.targets, seed=0)
    assert torch.equal(stored.function_draws(x, 8, seed=1), refit.function_draws(x, 8, seed=1))
