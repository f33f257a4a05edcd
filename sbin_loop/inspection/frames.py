"""A campaign read once, read-only, and served as pandas DataFrames.

``open_view`` loads every document of a campaign (campaign, rounds, jobs, results) into a frozen ``CampaignView`` and
closes the store at once: no document is ever written, and a notebook may keep a view while the campaign runs on.
Every frame is built from those documents on demand, so later document fields (more objectives) appear as columns
without this module knowing their names; defect quantities and structures are found where the oracles declare them
(``sbin_loop.inspection.declared``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from sbin_loop.config import CampaignConfig, ObjectiveConfig, parse_config
from sbin_loop.inspection.declared import defect_frame, output_table, structure_frame
from sbin_loop.model.intervals import Interval
from sbin_loop.status import open_campaign
from sbin_loop.stores import CampaignDoc, CampaignStore, JobDoc, ResultDoc, RoundDoc, merged_values
from sbin_loop.stores.config import StoreConfig

MONGODB_SCHEMES = ("mongodb://", "mongodb+srv://")

CALIBRATION_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Central levels at which ``CampaignView.calibration`` compares expected and observed coverage."""


def _log1p_floored(values: np.ndarray) -> np.ndarray:
    """``log1p`` clipped at its domain floor: a bound of exactly -1 (expm1 of a very low draw) maps low, not to -inf."""
    return np.log1p(np.maximum(values, -1 + 1e-12))


_MODELLED_SPACE = {"log1p": _log1p_floored}
"""Objective transform name -> map to the space the model works in; any other transform (``none``) is the identity."""


def interval_columns(interval: Interval | None) -> dict[str, float]:
    """The fields of an interval as flat columns (``NaN`` when there is none), plus its ``width``."""
    if interval is None:
        return dict.fromkeys([*Interval.model_fields, "width"], np.nan)
    return {**interval.model_dump(), "width": interval.width}


@dataclass(frozen=True)
class CampaignView:
    """Every document of one campaign, as read at one moment.

    Attributes:
        campaign: The campaign document (validated config, ``created_at``, ``sbin_version``).
        rounds: Round documents in round order.
        jobs: Job documents.
        results: Result documents in round and job order.
        source: Where the documents were read from (directory or ``mongodb://`` address, for the report).
    """

    campaign: CampaignDoc
    rounds: list[RoundDoc]
    jobs: list[JobDoc]
    results: list[ResultDoc]
    source: str

    @cached_property
    def config(self) -> CampaignConfig:
        """The campaign's validated config."""
        return parse_config(self.campaign.config, f"campaign {self.campaign.campaign!r}")

    @property
    def objective(self) -> ObjectiveConfig:
        """The objective the policy optimised (the one every pick was predicted for)."""
        return self.config.policy_objective

    def unit(self, name: str) -> str:
        """Unit of a value from the config's objectives (empty for values that are not objectives)."""
        return next((objective.unit for objective in self.config.objectives if objective.name == name), "")

    def rounds_frame(self) -> pd.DataFrame:
        """One row per round: state, counts, the best measured candidate with its model interval, and timings."""
        rows = []
        for doc in self.rounds:
            best = doc.best_observed
            best_interval = interval_columns(best.interval if best else None)
            rows.append(
                {
                    "round": doc.round,
                    "state": doc.state,
                    "n_picks": len(doc.selected),
                    "n_evaluations": doc.n_evaluations,
                    "n_failed": doc.n_failed,
                    "best_candidate": best.candidate_id if best else None,
                    "best_formula": best.formula if best else None,
                    "best_observed": best.observed if best else np.nan,
                    **{f"best_{name}": best_interval[name] for name in ("mean", "lower", "upper", "level")},
                    **{f"seconds_{step}": seconds for step, seconds in doc.timings.items()},
                    "created_at": doc.created_at,
                    "updated_at": doc.updated_at,
                }
            )
        return pd.DataFrame(rows)

    def evaluations(self) -> pd.DataFrame:
        """One row per result (by round, then job id), with a column for every value any result carries.

        ``oracle`` and ``stage`` say which oracle stage of the round produced the result. ``evaluation`` counts results
        from 1; ``best_so_far`` is the best policy-objective value up to that row (in
        the objective's direction) and ``best_candidate`` the candidate holding it.
        """
        rows = [
            {
                "evaluation": position + 1,
                "round": result.round,
                "job_id": result.job_id,
                "candidate_id": result.candidate_id,
                "formula": result.formula,
                "oracle": result.oracle,
                "stage": result.stage,
                "created_at": result.created_at,
                **result.values,
            }
            for position, result in enumerate(self.results)
        ]
        frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["evaluation", "round", "candidate_id"])
        name = self.objective.name
        values = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
        best = values.cummax() if self.objective.goal == "maximize" else values.cummin()
        frame["best_so_far"] = best
        holder = values.eq(best) & values.notna()
        frame["best_candidate"] = frame["candidate_id"].where(holder).ffill()
        return frame

    def value_columns(self) -> list[str]:
        """Names of every value the results carry (objectives first, then any other value an oracle returned)."""
        present = {name for result in self.results for name in result.values}
        objectives = [objective.name for objective in self.config.objectives if objective.name in present]
        return objectives + sorted(present - set(objectives))

    def selections(self) -> pd.DataFrame:
        """One row per pick, in round and pick order (``rank``), with why and what came of it.

        Columns: ``policy``, ``acquisition`` and ``acquisition_value`` (``NaN`` for random picks), ``reason`` (the
        rule's one-line account of the pick; empty for random picks), the prediction made
        at pick time for the policy objective (``pred_*``, ``NaN`` in round 0), ``job_state`` (of the first oracle
        stage's job), ``oracles`` (the oracles that returned a result for the pick, in stage order) and ``observed``
        (the policy-objective value measured later, the latest stage's where several measured it; ``NaN`` if none).
        """
        observed = merged_values(self.results)
        job_state = {(job.round, job.candidate_id): job.state for job in self.jobs if job.stage == 0}
        oracles: dict[str, list[str]] = {}
        for result in sorted(self.results, key=lambda result: result.stage):
            oracles.setdefault(result.candidate_id, []).append(result.oracle)
        rows = []
        for doc in self.rounds:
            for rank, entry in enumerate(doc.selected):
                key = (doc.round, entry.candidate_id)
                rows.append(
                    {
                        "round": doc.round,
                        "rank": rank,
                        "candidate_id": entry.candidate_id,
                        "formula": entry.formula,
                        "policy": entry.policy,
                        "acquisition": entry.acquisition,
                        "acquisition_value": np.nan if entry.acquisition_value is None else entry.acquisition_value,
                        "reason": entry.reason or "",
                        **{f"pred_{name}": value for name, value in interval_columns(entry.prediction).items()},
                        "job_state": job_state.get(key),
                        "oracles": ", ".join(oracles.get(entry.candidate_id, [])),
                        "observed": observed.get(entry.candidate_id, {}).get(self.objective.name, np.nan),
                    }
                )
        return pd.DataFrame(rows)

    def predictions(self) -> pd.DataFrame:
        """Prospective predictions: picks with both a prediction made before their result and that result.

        Adds ``inside`` (the observed value lies in the stored interval) and ``z``, the standardised residual under
        the calibration assumption: the predictive distribution is normal in the objective's transformed space
        (``log1p`` for Tc), centred on and scaled to the stored quantile interval (which starts at 0 K where the
        prediction puts enough mass there, ``intervals.bounded_quantiles``). Under that assumption the central
        interval at level ``p`` contains the observation exactly when ``|z| <= Φ⁻¹((1 + p) / 2)``, and at the stored
        level this is the same test as ``inside``.
        """
        frame = self.selections()
        if frame.empty:
            return frame.assign(inside=pd.Series(dtype=bool), z=pd.Series(dtype=float))
        frame = frame[frame["pred_mean"].notna() & frame["observed"].notna()].reset_index(drop=True)
        forward = _MODELLED_SPACE.get(self.objective.transform, np.asarray)
        with np.errstate(invalid="ignore", divide="ignore"):
            low, high, value = (
                forward(frame[name].to_numpy(float)) for name in ("pred_lower", "pred_upper", "observed")
            )
            half = stats.norm.ppf((1 + frame["pred_level"].to_numpy(float)) / 2)
            z = (value - (low + high) / 2) / ((high - low) / (2 * half))
        frame["inside"] = (frame["observed"] >= frame["pred_lower"]) & (frame["observed"] <= frame["pred_upper"])
        frame["z"] = z
        return frame

    def calibration(self, levels: tuple[float, ...] = CALIBRATION_LEVELS) -> pd.DataFrame:
        """Expected vs observed coverage of the prospective predictions at several central levels.

        Args:
            levels: Nominal probabilities of the central intervals.

        Returns:
            A frame with ``level``, ``observed`` (fraction of observations inside the interval, from ``z``; see
            ``predictions``), ``n`` and ``band_lower``/``band_upper``: the 95% range of the observed fraction that a
            calibrated model would give for ``n`` independent picks (binomial quantiles).
        """
        z = np.abs(self.predictions()["z"].to_numpy(float))
        n = int(np.isfinite(z).sum())
        level = np.asarray(levels, dtype=float)
        covered = (z[None, :] <= stats.norm.ppf((1 + level) / 2)[:, None]).sum(axis=1)
        return pd.DataFrame(
            {
                "level": level,
                "observed": covered / n if n else np.nan,
                "n": n,
                "band_lower": stats.binom.ppf(0.025, n, level) / n if n else np.nan,
                "band_upper": stats.binom.ppf(0.975, n, level) / n if n else np.nan,
            }
        )

    def stages(self) -> pd.DataFrame:
        """One row per configured oracle stage, with counts of its jobs so far.

        Columns: ``stage``, ``oracle`` (its kind), ``top_k`` and ``rank_by`` (both empty for a stage evaluating every
        pick its previous stage completed), ``jobs``, ``completed`` and ``failed``.
        """
        rows = []
        for stage, settings in enumerate(self.config.oracles):
            states = [job.state for job in self.jobs if job.stage == stage]
            rows.append(
                {
                    "stage": stage,
                    "oracle": settings.kind,
                    "top_k": settings.select.top_k,
                    "rank_by": (settings.select.rank_by or self.objective.name) if settings.select.top_k else None,
                    "jobs": len(states),
                    "completed": states.count("completed"),
                    "failed": states.count("failed"),
                }
            )
        return pd.DataFrame(rows).astype({"top_k": "Int64"})

    def training(self) -> pd.DataFrame:
        """Model training metrics per retrained round (every key the loop stored, e.g. ``n_train``, ``final_nll``)."""
        return pd.DataFrame([{"round": doc.round, **doc.training} for doc in self.rounds if doc.training])

    def intervals(self) -> pd.DataFrame:
        """Every stored Monte Carlo interval: one row per round, group, candidate and objective.

        ``group`` is ``selected`` (the round's picks), ``best_observed`` or ``top_predicted`` (best not yet measured),
        all from the model retrained at the end of that round.
        """
        rows = [
            {
                "round": doc.round,
                "group": group,
                "candidate_id": entry.candidate_id,
                "formula": entry.formula,
                "objective": entry.objective,
                "observed": np.nan if entry.observed is None else entry.observed,
                **interval_columns(entry.interval),
            }
            for doc in self.rounds
            for group, entries in doc.intervals.items()
            for entry in entries
        ]
        return pd.DataFrame(rows)

    def interval_widths(self) -> pd.DataFrame:
        """Mean interval width of the policy objective per round, indexed by round.

        Columns: ``picks before measurement`` (predictions made at pick time), then one per stored group
        (``selected``, ``best_observed``, ``top_predicted``) from the model retrained at the end of the round.
        """
        picks = self.selections()
        if picks.empty:
            return pd.DataFrame()
        frame = picks.groupby("round")["pred_width"].mean().rename("picks before measurement").to_frame()
        stored = self.intervals()
        if not stored.empty:
            stored = stored[stored["objective"] == self.objective.name]
            frame = frame.join(stored.pivot_table(index="round", columns="group", values="width"), how="outer")
        return frame.dropna(axis="columns", how="all")

    def outputs(self) -> pd.DataFrame:
        """What each oracle stage declares it produces, one row per output (``output_table``).

        Columns: ``stage``, ``oracle``, ``name``, ``kind``, ``unit``, ``location`` (where a stored result holds it),
        ``per_site``, ``statistic``, ``statistic_of`` and ``objective``.
        """
        return output_table(self)

    def defects(self) -> pd.DataFrame:
        """Defect quantities the oracles declared, per result, with the model's intervals (``defect_frame``)."""
        return defect_frame(self)

    def structures(self) -> pd.DataFrame:
        """Structures the oracles declared and stored, one row per structure (``structure_frame``)."""
        return structure_frame(self)


def open_view(source: str | Path, campaign: str | None = None, database: str = "sbin") -> CampaignView:
    """Read a campaign, read-only, from its directory or from MongoDB.

    Args:
        source: A campaign directory (its ``campaign.json`` names the campaign and store; a MongoDB-backed directory
            needs ``SBIN_STORE_URI``), or a ``mongodb://`` / ``mongodb+srv://`` URI.
        campaign: Campaign name; required with a URI, ignored for a directory.
        database: Database name, with a URI.

    Raises:
        NotACampaignError: If the directory holds no campaign.
        ValueError: If a URI is given without a campaign name, or the store has no such campaign.
    """
    text = str(source)
    if text.startswith(MONGODB_SCHEMES):
        if not campaign:
            raise ValueError("a campaign name is needed to open a campaign by MongoDB URI")
        store = CampaignStore.open(campaign, StoreConfig(uri=text, database=database), None)
        doc = store.campaign_doc()
        if doc is None:
            store.close()
            raise ValueError(f"no campaign {campaign!r} in database {database!r}")
        text = f"{StoreConfig.redact(text)} (database {database})"  # never show credentials
    else:
        store, doc = open_campaign(Path(source))
    try:
        return CampaignView(
            campaign=doc, rounds=store.rounds(), jobs=store.jobs(), results=store.results(), source=text
        )
    finally:
        store.close()
