"""Candidate spaces: the compositions a campaign may pick from.

A dataset pool is a table of formulas. Every formula is parsed with pymatgen; rows that cannot be used are reported
with their line number and reason and skipped (never silently). Candidates get a stable id, the reduced formula, so
that duplicates of one composition collapse to one candidate and results, rounds and notebooks agree on names.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Element
from pymatgen.util.string import formula_double_format

from sbin_loop.data import bundled_path

logger = logging.getLogger(__name__)

_SYMBOL = re.compile(r"[A-Z][a-z]?")
_ISOTOPES = {"D": "H", "T": "H"}
"""Isotope symbols pymatgen accepts and files as hydrogen."""

MAX_FORMULA_LENGTH = 200
"""Formulas longer than this are rejected before parsing (no real composition needs more)."""


class InvalidFormulaError(ValueError):
    """A formula that does not describe a real composition; the message says why."""


class DataSourceError(ValueError):
    """A table of candidates or results that cannot be read; the message names the file and the problem."""


def parse_formula(formula: object) -> Composition:
    """Parse a chemical formula into a pymatgen ``Composition`` of real elements with positive amounts.

    Args:
        formula: The formula as written in the input (e.g. ``"Ba0.4K0.6Fe2As2"``).

    Raises:
        InvalidFormulaError: If the formula is empty, too long, unparsable, contains a symbol that is not an element,
            or has a non-positive or non-finite amount.
    """
    if not isinstance(formula, str) or not formula.strip():
        raise InvalidFormulaError("empty formula")
    text = formula.strip()
    if len(text) > MAX_FORMULA_LENGTH:
        raise InvalidFormulaError(f"formula longer than {MAX_FORMULA_LENGTH} characters")
    try:
        composition = Composition(text)
    except Exception as error:  # pymatgen raises several types for malformed text
        raise InvalidFormulaError(f"cannot parse: {error}") from None
    if len(composition) == 0:
        raise InvalidFormulaError("no elements")
    for species, amount in composition.items():
        if not isinstance(species, Element):
            raise InvalidFormulaError(f"{species} is not a chemical element")
        if not math.isfinite(amount) or amount <= 0:
            raise InvalidFormulaError(f"amount of {species} must be positive and finite, got {amount}")
    written = {_ISOTOPES.get(symbol, symbol) for symbol in _SYMBOL.findall(text)}
    dropped = written - {element.symbol for element in composition}
    if dropped:  # pymatgen silently drops elements written with a zero amount ("Fe0O" -> "O")
        raise InvalidFormulaError(f"zero amount of {', '.join(sorted(dropped))} (leave absent elements out)")
    return composition


def candidate_id(composition: Composition) -> str:
    """Candidate id: the formula as written, normalised (``Bi2Sr2CaCu2O8``, ``K3C60``, ``Ba1.6Sr0.4Ca2Cu3O8``).

    Elements keep the order they were written in and their amounts are not reduced, so a scientist recognises the
    compound; amounts of one are left out and others are written as pymatgen writes numbers. Spellings of one
    composition (``SrTiO3``, ``TiSrO3``, ``Sr2Ti2O6``) share a ``composition_key``, which deduplicates them.
    """
    return "".join(f"{element.symbol}{formula_double_format(amount)}" for element, amount in composition.items())


def composition_key(composition: Composition) -> str:
    """The same text for every way of writing one composition (pymatgen's reduced formula)."""
    return composition.reduced_formula


def composition_key_of(formula: str) -> str:
    """``composition_key`` of a formula or candidate id (raises ``InvalidFormulaError`` like ``parse_formula``)."""
    return composition_key(parse_formula(formula))


def resolve_source(source: str, base_dir: Path | None = None) -> Path:
    """Turn a config ``source`` into a file path.

    Args:
        source: ``bundled:NAME`` or a path.
        base_dir: Directory that relative paths are resolved against (the config file's directory). A relative path
            may not climb out of it (``../..``): a shared config cannot make sbin read files elsewhere unless it
            names them by absolute path.

    Raises:
        DataSourceError: For an unknown bundled table or an escaping relative path.
    """
    if source.startswith("bundled:"):
        try:
            return bundled_path(source.removeprefix("bundled:"))
        except KeyError as error:
            raise DataSourceError(str(error).strip("'\"")) from None
    path = Path(source).expanduser()
    if path.is_absolute() or base_dir is None:
        return path
    resolved = (base_dir / path).resolve()
    if not resolved.is_relative_to(base_dir.resolve()):
        raise DataSourceError(
            f"{source}: a relative path may not leave the config's directory {base_dir}; give an absolute path"
        )
    return resolved


@dataclass(frozen=True)
class RejectedRow:
    """A row of an input table that was skipped, with its 1-based line number in the file (header is line 1)."""

    line: int
    formula: str
    reason: str


@dataclass
class FormulaTable:
    """Unique compositions read from a table, with the values measured for them.

    Attributes:
        frame: One row per unique composition: ``composition_key``, ``candidate_id`` and ``formula`` (of the first
            spelling seen) and each requested value column (median over duplicate rows).
        rejected: Rows that were skipped and why.
        n_duplicate_rows: Rows that repeated a composition already seen.
        source: The file read.
    """

    frame: pd.DataFrame
    rejected: list[RejectedRow] = field(default_factory=list)
    n_duplicate_rows: int = 0
    source: Path | None = None

    def summary(self) -> str:
        """One line saying how many rows became candidates and why the others did not."""
        return (
            f"{self.source}: {len(self.frame)} unique compositions, {self.n_duplicate_rows} duplicate rows merged, "
            f"{len(self.rejected)} rows rejected"
        )


def read_formula_table(
    source: str,
    formula_column: str = "formula",
    value_columns: tuple[str, ...] = (),
    base_dir: Path | None = None,
    require_values: bool = False,
    where: dict[str, object] | None = None,
) -> FormulaTable:
    """Read a CSV of formulas (and optionally measured values) into unique compositions.

    Args:
        source: ``bundled:NAME`` or a CSV path (plain or gzip-compressed).
        formula_column: Column holding formulas.
        value_columns: Numeric columns to carry along (median over duplicates).
        base_dir: Directory for relative paths.
        require_values: Reject rows whose value columns are all missing.
        where: Keep only rows whose columns equal these values (filtered rows are neither candidates nor rejected).

    Raises:
        DataSourceError: If the file is missing or a named column does not exist.
    """
    path = resolve_source(source, base_dir)
    if not path.is_file():
        raise DataSourceError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path, dtype={formula_column: str}, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise DataSourceError(f"{path}: cannot read as CSV: {error}") from None
    missing = [column for column in (formula_column, *value_columns, *(where or {})) if column not in raw.columns]
    if missing:
        raise DataSourceError(f"{path}: missing column(s) {missing}; columns are {list(raw.columns)}")
    for column, value in (where or {}).items():
        raw = raw[raw[column] == value]

    values = raw[list(value_columns)].apply(pd.to_numeric, errors="coerce") if value_columns else None
    ids, keys, keep, rejected = [], [], [], []
    lines = raw.index.to_numpy() + 2  # line numbers in the file (header is line 1), kept through ``where``
    for position, formula in enumerate(raw[formula_column].tolist()):
        line = int(lines[position])
        try:
            composition = parse_formula(formula)
        except InvalidFormulaError as error:
            rejected.append(RejectedRow(line, formula if isinstance(formula, str) else "", str(error)))
            continue
        if values is not None and require_values and values.iloc[position].isna().all():
            rejected.append(RejectedRow(line, formula, f"no numeric value in {list(value_columns)}"))
            continue
        ids.append(candidate_id(composition))
        keys.append(composition_key(composition))
        keep.append(position)
    _warn_once(path, rejected)

    frame = pd.DataFrame({"key": keys, "candidate_id": ids, "formula": raw[formula_column].to_numpy()[keep]})
    if values is not None:
        for column in value_columns:
            frame[column] = values[column].to_numpy(dtype=float)[keep]
    grouped = frame.groupby("key", sort=False)  # spellings of one composition: the first one names it
    unique = grouped.first()[["candidate_id", "formula"]]
    for column in value_columns:
        unique[column] = grouped[column].median()
    unique = unique.reset_index(names="composition_key")
    return FormulaTable(unique, rejected, n_duplicate_rows=len(frame) - len(unique), source=path)


_WARNED: set[tuple[Path, int, str, str]] = set()
"""Rejected rows already logged by this process: a campaign reads its pool source more than once (pool, oracle)."""


def _warn_once(path: Path, rejected: list[RejectedRow]) -> None:
    """Log each rejected row of ``path`` once per process, however often the file is read."""
    for row in rejected:
        key = (path, row.line, row.formula, row.reason)
        if key not in _WARNED:
            _WARNED.add(key)
            logger.warning("%s line %d: skipped %r: %s", path.name, row.line, row.formula, row.reason)


def sample_rows(frame: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    """A seeded random subset of ``size`` rows in their original order (all rows if ``size`` is None or larger)."""
    if size is None or size >= len(frame):
        return frame.reset_index(drop=True)
    chosen = np.sort(np.random.default_rng(seed).choice(len(frame), size=size, replace=False))
    return frame.iloc[chosen].reset_index(drop=True)
