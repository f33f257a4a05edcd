"""Fast formula handling without a pymatgen ``Composition`` per formula.

``formula_fractions`` parses plain formulas (element symbols, decimal amounts, nested parentheses) with one
regular expression and falls back to pymatgen for anything else, so it agrees with pymatgen on every formula
pymatgen reads. ``canonical_formulas`` writes the stable candidate id (pymatgen's reduced formula) of many
compositions at once from element indices and amounts, with string operations on whole arrays.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from functools import cache

import numpy as np
from pymatgen.core import Element
from pymatgen.util.string import formula_double_format

MAX_Z = 118
"""Element indices are ``Z - 1`` for Z = 1..``MAX_Z``."""

AMOUNT_TOLERANCE = 1e-8
"""pymatgen's tolerance for treating an amount as an integer (``Composition.amount_tolerance``)."""

_PLAIN = re.compile(r"(?:(?:[A-Z][a-z]?|[()])(?:\d+\.?\d*|\.\d+)?)+")
_TOKEN = re.compile(r"([A-Z][a-z]?|[()])(\d+\.?\d*|\.\d+)?")


@cache
def symbol_index() -> dict[str, int]:
    """Element symbol -> row of the element tables (``Z - 1``)."""
    return {Element.from_Z(z).symbol: z - 1 for z in range(1, MAX_Z + 1)}


@cache
def symbols() -> np.ndarray:
    """Element symbols by row (``Z - 1``), as a numpy string array."""
    return np.array([Element.from_Z(z).symbol for z in range(1, MAX_Z + 1)])


@cache
def _sort_keys() -> np.ndarray:
    """Pymatgen's formula order as one integer per element: by electronegativity (NaN last), then symbol."""
    with warnings.catch_warnings():  # pymatgen warns for each element without a Pauling electronegativity
        warnings.simplefilter("ignore", UserWarning)
        electronegativity = [Element.from_Z(z).X for z in range(1, MAX_Z + 1)]
    keys = [(math.inf if math.isnan(x) else x, symbol) for x, symbol in zip(electronegativity, symbols(), strict=True)]
    order = sorted(range(MAX_Z), key=keys.__getitem__)
    rank = np.empty(MAX_Z, dtype=np.int64)
    rank[order] = np.arange(MAX_Z)
    return rank


def _parse_plain(text: str) -> dict[int, float] | None:
    """Element rows and amounts of a plain formula, or None when it needs pymatgen (or is invalid)."""
    if not _PLAIN.fullmatch(text):
        return None
    table = symbol_index()
    stack: list[dict[int, float]] = [{}]
    for symbol, amount_text in _TOKEN.findall(text):
        amount = float(amount_text) if amount_text else 1.0
        if symbol == "(":
            if amount_text:
                return None
            stack.append({})
        elif symbol == ")":
            if len(stack) == 1:
                return None
            group = stack.pop()
            for row, value in group.items():
                stack[-1][row] = stack[-1].get(row, 0.0) + value * amount
        elif symbol in table:
            stack[-1][table[symbol]] = stack[-1].get(table[symbol], 0.0) + amount
        else:
            return None
    if len(stack) != 1 or not stack[0] or min(stack[0].values()) <= 0:
        return None
    return stack[0]


def _parse_with_pymatgen(text: str) -> dict[int, float]:
    """Element rows and amounts through ``parse_formula`` (raises ``InvalidFormulaError``)."""
    from sbin_loop.space.pool import parse_formula  # local import: pool imports this module

    composition = parse_formula(text)
    table = symbol_index()
    return {table[element.symbol]: float(amount) for element, amount in composition.items()}


def formula_fractions(formulas: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse formulas into padded element rows and atomic fractions, without pymatgen where possible.

    Args:
        formulas: Chemical formulas (e.g. ``"Ba0.4K0.6Fe2As2"``, ``"Ca(OH)2"``).

    Returns:
        ``(indices, fractions)``, both ``n x k`` (``k`` the most elements in one formula); padding has index 0
        and fraction 0. Elements appear in order of first occurrence.

    Raises:
        InvalidFormulaError: For a formula pymatgen cannot read or that has a non-element or non-positive
            amount.

    """
    parsed = []
    for formula in formulas:
        text = formula.strip() if isinstance(formula, str) else formula
        amounts = _parse_plain(text) if isinstance(text, str) else None
        parsed.append(amounts if amounts is not None else _parse_with_pymatgen(formula))
    sizes = np.fromiter((len(amounts) for amounts in parsed), dtype=np.int64, count=len(parsed))
    rows = np.repeat(np.arange(len(parsed)), sizes)
    columns = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    elements = np.fromiter((row for amounts in parsed for row in amounts), dtype=np.int64, count=len(rows))
    values = np.fromiter((value for amounts in parsed for value in amounts.values()), dtype=np.float64, count=len(rows))
    totals = np.bincount(rows, weights=values, minlength=len(parsed))
    width = int(sizes.max(initial=1))
    indices = np.zeros((len(parsed), width), dtype=np.int64)
    fractions = np.zeros((len(parsed), width), dtype=np.float64)
    indices[rows, columns] = elements
    fractions[rows, columns] = values / totals[rows]
    return indices, fractions


def _amount_strings(amounts: np.ndarray, ignore_ones: bool) -> np.ndarray:
    """Pymatgen's ``formula_double_format`` for every amount, evaluated once per distinct value."""
    distinct, inverse = np.unique(amounts, return_inverse=True)
    text = np.array([str(formula_double_format(float(value), ignore_ones=ignore_ones)) for value in distinct])
    return text[inverse.reshape(amounts.shape)]


def canonical_formulas(indices: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """Candidate ids (pymatgen's ``Composition.reduced_formula``) of many compositions at once.

    Compositions whose amounts are all integers are divided by their greatest common divisor and written
    without ones (``SrTiO3``); others are written as they are, with ones (``Sr0.5La0.5Ti1O3``), exactly as
    pymatgen does. pymatgen's special molecular names (``O2``, ``H2O2``, ...) and polyanion brackets are not
    reproduced: they do not arise for compositions of three or more elements with a single-atom site, such
    as perovskites.

    Args:
        indices: ``n x k`` element rows; each row lists distinct elements.
        amounts: ``n x k`` amounts (padding: 0, left out of the formula).

    Returns:
        ``n`` formulas as a numpy string array.

    """
    order = np.argsort(np.where(amounts > 0, _sort_keys()[indices], MAX_Z), axis=1, kind="stable")
    indices = np.take_along_axis(indices, order, axis=1)
    amounts = np.take_along_axis(amounts, order, axis=1)
    present = amounts > 0
    rounded = np.round(amounts)
    integral = (np.abs(amounts - rounded) < AMOUNT_TOLERANCE).all(axis=1)
    divisor = np.gcd.reduce(np.where(present, rounded, 0).astype(np.int64), axis=1)
    scaled = np.where(integral[:, None], rounded / np.maximum(divisor, 1)[:, None], amounts)
    text = np.where(
        integral[:, None],
        _amount_strings(scaled, ignore_ones=True),
        _amount_strings(scaled, ignore_ones=False),
    )
    names = np.where(present, symbols()[indices], "")
    text = np.where(present, text, "")
    result = np.full(len(indices), "", dtype=np.dtypes.StringDType())
    for column in range(indices.shape[1]):
        result = np.strings.add(np.strings.add(result, names[:, column]), text[:, column])
    return result
