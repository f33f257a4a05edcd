"""Site-resolved inputs of ABO3 rows for ``sbin model train/predict --sites A_COLUMN,B_COLUMN``.

The two site assignments of one perovskite composition (SrTiO3 with Sr on A, against Ti on A) share every
composition statistic but differ in their defect energetics by electronvolts. With ``--sites`` the model takes the
elemental properties of the A and B cations beside the composition descriptors, and rows of one composition with
different site assignments are different inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Element

from sbin_loop.config import ConfigError
from sbin_loop.extra_descriptors import site_descriptor_names, site_descriptors
from sbin_loop.features import composition_input_names, composition_inputs, element_fractions
from sbin_loop.space import DataSourceError, InvalidFormulaError, parse_formula
from sbin_loop.space.pool import composition_key


def parse_sites(text: str | None) -> tuple[str, str] | None:
    """``--sites A_COLUMN,B_COLUMN`` as two column names, or None.

    Raises:
        ConfigError: Naming ``--sites`` when it is not two non-empty names.
    """
    if text is None:
        return None
    columns = tuple(part.strip() for part in text.split(","))
    if len(columns) != 2 or not all(columns):
        raise ConfigError(f"--sites: expected A_COLUMN,B_COLUMN, got {text!r}")
    return columns[0], columns[1]


def input_names(sites: bool, with_fractions: bool = False) -> list[str]:
    """The model's input names: composition descriptors, element fractions, then the A and B site descriptors.

    The element fractions (``--element-fractions``) come with ``with_fractions``, the site descriptors with ``sites``.
    """
    return [*composition_input_names(with_fractions), *(site_descriptor_names() if sites else [])]


def formula_inputs(formulas: pd.Series, with_fractions: bool = False) -> np.ndarray:
    """``n x d`` model inputs of valid formulas: ``composition_inputs``, as ``input_names(False, with_fractions)``."""
    compositions = [parse_formula(str(formula)) for formula in formulas]
    return composition_inputs(*element_fractions(compositions), with_fractions)


def site_problem(formula: str, a_symbol: str, b_symbol: str) -> str | None:
    """Why a row's A and B species cannot be used (not elements, or absent from the formula), else None.

    Both sites may hold one element (MnMnO3 is an entry of the Emery-Wolverton table).
    """
    try:
        elements = {element.symbol for element in parse_formula(formula)}
    except InvalidFormulaError as error:
        return str(error)
    for site, symbol in (("A", a_symbol), ("B", b_symbol)):
        if not Element.is_valid_symbol(symbol):
            return f"{site}-site species {symbol!r} is not an element"
        if symbol not in elements:
            return f"{site}-site species {symbol} is not in {formula}"
    return None


def site_rows(
    frame: pd.DataFrame, formula_column: str, sites: tuple[str, str], source: Path
) -> tuple[pd.DataFrame, list[str]]:
    """Rows with usable formulas and site species, and the reason for each row left out.

    Args:
        frame: The table as text.
        formula_column: Column of formulas.
        sites: The A- and B-site columns.
        source: The file, for messages.

    Raises:
        DataSourceError: If a site column is missing.
    """
    missing = [column for column in sites if column not in frame.columns]
    if missing:
        raise DataSourceError(f"{source}: no column(s) {missing} for --sites; columns are {list(frame.columns)}")
    keep, skipped = [], []
    for position, (formula, a_symbol, b_symbol) in enumerate(
        zip(frame[formula_column], frame[sites[0]].astype(str), frame[sites[1]].astype(str), strict=True)
    ):
        problem = site_problem(str(formula), a_symbol.strip(), b_symbol.strip())
        if problem is None:
            keep.append(position)
        else:
            skipped.append(f"line {position + 2}: {formula!r}: {problem}")
    return frame.iloc[keep].reset_index(drop=True), skipped


def site_inputs(
    frame: pd.DataFrame, formula_column: str, sites: tuple[str, str], with_fractions: bool = False
) -> np.ndarray:
    """``n x d`` model inputs of usable rows, as ``input_names(True, with_fractions)``.

    The composition descriptors, the element fractions with ``with_fractions``, then the A and B cations' properties.
    """
    a_symbols = [str(symbol).strip() for symbol in frame[sites[0]]]
    b_symbols = [str(symbol).strip() for symbol in frame[sites[1]]]
    composition = formula_inputs(frame[formula_column], with_fractions)
    return np.hstack([composition, site_descriptors(a_symbols, b_symbols)])


def merged_site_rows(
    frame: pd.DataFrame, formula_column: str, target: str, sites: tuple[str, str]
) -> tuple[pd.DataFrame, int]:
    """One row per composition and site assignment (median target), and how many duplicate rows were merged."""
    values = pd.to_numeric(frame[target], errors="coerce")
    table = pd.DataFrame(
        {
            "key": [composition_key(parse_formula(str(f))) for f in frame[formula_column]],
            "a": frame[sites[0]].astype(str).str.strip(),
            "b": frame[sites[1]].astype(str).str.strip(),
            formula_column: frame[formula_column],
            sites[0]: frame[sites[0]],
            sites[1]: frame[sites[1]],
            target: values,
        }
    ).dropna(subset=[target])
    grouped = table.groupby(["key", "a", "b"], sort=False)
    merged = grouped.first()[[formula_column, sites[0], sites[1]]]
    merged[target] = grouped[target].median()
    return merged.reset_index(drop=True), len(table) - len(merged)
