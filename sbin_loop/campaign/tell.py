"""Measurements told to a campaign: read and check them, match them to candidates, store them.

A measurement names a candidate by ``formula`` (matched by composition, so ``TiSrO3`` is ``SrTiO3``) or by
``candidate_id``, gives a value per objective (empty: not measured) and optionally ``status: failed``. Reading is
all-or-nothing: every problem (an unparsable number, an unknown status, a formula outside the candidate pool, a
candidate twice in one file) is one line naming the row and column, and a file with any problem stores nothing.
Values then pass ``ingestible_outcome`` like every oracle's: a non-finite or out-of-support value is recorded as a
failure with the reason, never ingested.

Storing is idempotent: a measurement already stored (the same candidate with the same values, or the same failure)
is skipped, so a tell interrupted by a crash is completed by telling the same file again.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sbin_loop.candidates import CandidatePool
from sbin_loop.config import ObjectiveConfig
from sbin_loop.measurements import ingestible_outcome
from sbin_loop.oracles import OracleOutcome
from sbin_loop.space.pool import InvalidFormulaError, candidate_id, composition_key, parse_formula

ID_COLUMNS = ("candidate_id", "formula")
"""Columns that name a measurement's candidate (a candidate id is matched exactly first, then by composition)."""
STATUS_COLUMN = "status"
ERROR_COLUMN = "error"
COMPLETED_STATUSES = ("", "ok", "completed", "measured")
FAILED_STATUS = "failed"
MAX_TELL_BYTES = 64 * 2**20
"""Largest results file read (64 MiB): far above any hand-measured batch."""


class MeasurementError(ValueError):
    """Measurements that cannot be told; one line per problem, naming its row and column."""


@dataclass(frozen=True)
class Measurement:
    """One told measurement, checked and matched to a pool candidate.

    Attributes:
        candidate_id: The pool candidate it measures.
        formula: That candidate's formula.
        values: Measured value per objective (only those measured).
        failed: Whether the measurement failed (its values are then not stored).
        error: Why it failed, as told.
        where: Row it came from, for messages (``results.csv line 3``).
    """

    candidate_id: str
    formula: str
    values: dict[str, float]
    failed: bool
    error: str | None
    where: str

    def outcome(self, job_id: str, objectives: tuple[ObjectiveConfig, ...]) -> OracleOutcome:
        """The outcome to store for it, checked like every oracle's (``ingestible_outcome``)."""
        provenance = {"oracle": "told", "source": self.where}
        if self.failed:
            error = self.error or "told as failed"
            return OracleOutcome(job_id=job_id, status="failed", error=error, provenance=provenance)
        outcome = OracleOutcome(job_id=job_id, status="completed", values=self.values, provenance=provenance)
        return ingestible_outcome(outcome, objectives)

    def digest(self) -> str:
        """Identity of what was told (candidate, status, values), for idempotent storing."""
        told = json.dumps([self.candidate_id, self.failed, self.error, sorted(self.values.items())], default=str)
        return hashlib.sha256(told.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _Row:
    name: str
    name_column: str
    values: dict[str, float]
    failed: bool
    error: str | None
    where: str


def _number(value: object, where: str, column: str) -> float | None:
    """A cell as a number; ``None`` where empty (an empty text cell, or a NaN from a data frame's empty cell)."""
    if isinstance(value, bool):
        raise MeasurementError(f"{where}, column {column}: {value!r} is not a number")
    if isinstance(value, int | float):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    text = _text(value)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise MeasurementError(f"{where}, column {column}: {text[:40]!r} is not a number") from None


def _text(value: object) -> str:
    """A cell as text; empty for a missing cell (``None``, or a data frame's NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _row(record: Mapping[str, object], where: str, objectives: tuple[ObjectiveConfig, ...]) -> _Row:
    """One record checked: a candidate name, a status, and the objective values it gives."""
    name_column = next((column for column in ID_COLUMNS if _text(record.get(column))), None)
    if name_column is None:
        raise MeasurementError(f"{where}, column formula: no formula or candidate_id given")
    status = _text(record.get(STATUS_COLUMN)).lower()
    if status not in (*COMPLETED_STATUSES, FAILED_STATUS):
        raise MeasurementError(
            f"{where}, column {STATUS_COLUMN}: {status[:40]!r} is not a status (leave empty, or write failed)"
        )
    values = {}
    for objective in objectives:
        value = _number(record.get(objective.name), where, objective.name)
        if value is not None:
            values[objective.name] = value
    failed = status == FAILED_STATUS
    if not failed and not values:
        names = ", ".join(objective.name for objective in objectives)
        raise MeasurementError(f"{where}, columns {names}: no value given (write status failed for a failure)")
    error = _text(record.get(ERROR_COLUMN)) or None
    return _Row(_text(record[name_column]), name_column, values, failed, error, where)


def read_rows(
    records: Iterable[tuple[str, Mapping[str, object]]], objectives: tuple[ObjectiveConfig, ...]
) -> tuple[list[_Row], list[str]]:
    """Check every record (``where``, mapping): the good rows, and one line per problem of the others."""
    rows, problems = [], []
    for where, record in records:
        try:
            rows.append(_row(record, where, objectives))
        except MeasurementError as error:
            problems.append(str(error))
    return rows, problems


def csv_records(path: Path, objectives: tuple[ObjectiveConfig, ...]) -> Iterable[tuple[str, dict]]:
    """The rows of a results CSV as (``FILE line N``, row) pairs, after checking its header.

    Raises:
        MeasurementError: If the file is too large, not text, or its header lacks a name or objective column.
    """
    path = Path(path)
    if path.stat().st_size > MAX_TELL_BYTES:
        raise MeasurementError(f"{path}: larger than {MAX_TELL_BYTES // 2**20} MiB")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise MeasurementError(f"{path}: not a UTF-8 text file ({error.reason})") from None
    reader = csv.DictReader(text.splitlines())
    header = [column.strip() for column in reader.fieldnames or []]
    reader.fieldnames = header
    if not any(column in header for column in ID_COLUMNS):
        raise MeasurementError(f"{path} line 1: needs a formula or candidate_id column (got {header[:10]})")
    if not any(objective.name in header for objective in objectives):
        names = [objective.name for objective in objectives]
        raise MeasurementError(f"{path} line 1: needs a column per objective {names} (got {header[:10]})")
    return [(f"{path.name} line {reader.line_num}", row) for row in reader]


class CandidateMatcher:
    """Finds the pool candidate a told name means: its id exactly, else the same composition."""

    def __init__(self, pool: CandidatePool) -> None:
        self.pool = pool
        self._by_key: dict[str, str] | None = None

    def _keys(self) -> dict[str, str]:
        if self._by_key is None:
            self._by_key = {}
            for block in self.pool.blocks(65536):
                for identifier in block.ids.tolist():
                    try:
                        self._by_key.setdefault(composition_key(parse_formula(identifier)), identifier)
                    except InvalidFormulaError:
                        continue
        return self._by_key

    def match(self, rows: list[_Row], problems: list[str]) -> list[Measurement]:
        """The rows as measurements of pool candidates.

        Raises:
            MeasurementError: Listing ``problems`` (of reading the rows) and every row that matches no candidate.
        """
        names = {row.name for row in rows}
        exact = self.pool.rows_of(names)
        problems, matched, seen = list(problems), [], {}
        for row in rows:
            found = row.name if row.name in exact else None
            if found is None:
                try:
                    composition = parse_formula(row.name)
                except InvalidFormulaError as error:
                    problems.append(f"{row.where}, column {row.name_column}: {row.name[:60]!r}: {error}")
                    continue
                normalised = candidate_id(composition)
                key = composition_key(composition)
                found = normalised if self.pool.rows_of({normalised}) else self._keys().get(key)
            if found is None:
                problems.append(
                    f"{row.where}, column {row.name_column}: {row.name[:60]!r} is not a candidate of this campaign's "
                    "space"
                )
                continue
            if found in seen:
                problems.append(f"{row.where}, column {row.name_column}: {found} is also told on {seen[found]}")
                continue
            seen[found] = row.where
            matched.append((row, found))
        if problems:
            raise MeasurementError("\n".join(problems))
        formulas = self.pool.take(list(self.pool.rows_of({found for _, found in matched}).values()))
        formula_of = dict(zip(formulas.ids.tolist(), formulas.formulas.tolist(), strict=True))
        return [
            Measurement(found, str(formula_of[found]), row.values, row.failed, row.error, row.where)
            for row, found in matched
        ]


@dataclass
class TellReport:
    """What a tell stored.

    Attributes:
        picks: Measurements of pending picks.
        new: Measurements of candidates that were not pending picks.
        failed: Measurements stored as failures (told failed, or a value refused, with the reason).
        skipped: Measurements already stored by an earlier tell.
        errors: The reason of each failure, ``candidate: reason``.
    """

    picks: int = 0
    new: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One human-readable line."""
        return (
            f"told {self.picks} pending picks and {self.new} other candidates ({self.failed} recorded as failed); "
            f"{self.skipped} already stored"
        )
