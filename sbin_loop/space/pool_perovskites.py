"""The perovskites of a pool of formulas, chosen by the rules of the enumerated perovskite space.

A pool's ``perovskite_filter`` section (``PoolPerovskiteFilter``) keeps the compositions that are perovskites by rule,
not by a list of names. Each formula is first placed on the A, B and X sublattices exactly as the defect workflow places
it (``site_occupancies``: cations two per formula unit, A filled by decreasing ionic radius, anions on X with at most
``MAX_ANION_DEFICIENCY`` missing), so a kept composition is screened under the assignment its supercell is built
with. It is then screened by ``sbin_loop.space.rules.screen``, the charge, Goldschmidt, octahedral and
electronegativity rules of ``PerovskiteSpace``. A composition is counted under the first reason it fails:

- ``not ABX3``: no anion, or not two cations per three anions (within the allowed anion deficiency);
- ``anion``: an X-site element outside ``x_site`` (a fluoride in an oxide campaign);
- ``ions``: an element with no oxidation state of its site's sign, or no Shannon radius for one, on the site the
  assignment puts it on;
- then the rules of ``sbin_loop.space.rules.RULES``.

The kept compositions carry the perovskite descriptors the rules computed for them under that placement
(``sbin_loop.space.rules.DESCRIPTORS``: tolerance and octahedral factors, A- and B-site radii, oxidation states,
electronegativity gaps and size mismatches), followed by the elemental properties of the A-site and B-site species
under that placement, each the occupancy-weighted mean over the site's species
(``sbin_loop.extra_descriptors.weighted_site_descriptors``; a site of one element gives exactly the
``sbin model train --sites`` inputs of that element): the very columns an enumerated perovskite space gives its
candidates (``sbin_loop.space.rules.perovskite_extra_names``). They let a model tell A-site from B-site chemistry,
which composition statistics average away.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from sbin_loop.extra_descriptors import weighted_site_descriptors
from sbin_loop.space.config import PoolPerovskiteFilter, PoolSpaceConfig
from sbin_loop.space.pool import FormulaTable
from sbin_loop.space.rules import (
    DESCRIPTORS,
    RULES,
    SiteIons,
    SiteOccupation,
    perovskite_extra_names,
    screen,
    site_ions,
)
from sbin_loop.workflows.perovskite import NotAPerovskiteError, site_occupancies

logger = logging.getLogger(__name__)

PRE_RULES = ("not ABX3", "anion", "ions")
"""Reasons a composition is rejected before the perovskite rules apply, in the order they are checked."""

_SITES = ("A", "B", "X")


@dataclass(frozen=True)
class PoolScreen:
    """What the perovskite rules made of each formula of a pool.

    Attributes:
        reasons: Per formula, ``""`` if it is kept, else the first reason it failed (``PRE_RULES`` or ``RULES``).
        occupancies: Per formula, its site occupancies (``None`` where it could not be placed on the sublattices).
        descriptors: ``n x len(DESCRIPTORS)`` float32 perovskite descriptors of each formula that reached the rules
            (NaN rows for the others).
    """

    reasons: list[str]
    occupancies: list[dict[str, dict[str, float]] | None]
    descriptors: np.ndarray

    @property
    def tolerance_factor(self) -> np.ndarray:
        """Goldschmidt tolerance factor of each formula (NaN where the rules were not reached)."""
        return self.descriptors[:, DESCRIPTORS.index("tolerance_factor")]

    @property
    def octahedral_factor(self) -> np.ndarray:
        """Octahedral factor of each formula (NaN where the rules were not reached)."""
        return self.descriptors[:, DESCRIPTORS.index("octahedral_factor")]

    @property
    def kept(self) -> np.ndarray:
        """Boolean mask of the formulas that pass."""
        return np.array([reason == "" for reason in self.reasons], dtype=bool)

    def counts(self) -> Counter:
        """Rejections per reason."""
        return Counter(reason for reason in self.reasons if reason)


def _placement(formula: str, rules: PoolPerovskiteFilter) -> tuple[dict[str, dict[str, float]] | None, float, str]:
    """A formula's site occupancies, its anions per formula unit and the pre-rule reason it fails ("" if none)."""
    try:
        occupancy = site_occupancies(formula)
    except NotAPerovskiteError:
        return None, 0.0, "not ABX3"
    if set(occupancy["X"]) - set(rules.x_site):
        return occupancy, 0.0, "anion"
    composition = Composition(formula)
    cations = sum(amount for element, amount in composition.items() if element.symbol not in occupancy["X"])
    anions = sum(composition[element] for element in occupancy["X"])
    return occupancy, 2.0 * anions / cations, ""


def _usable_ions(site: str, elements: set[str], rules: PoolPerovskiteFilter) -> SiteIons | None:
    """The ion table of the elements that can sit on ``site`` (an oxidation state and radius there), or None."""
    overrides = dict(rules.oxidation_states)
    usable = []
    for element in sorted(elements):
        try:
            site_ions(site, (element,), overrides)
        except ValueError:
            continue
        usable.append(element)
    return site_ions(site, tuple(usable), overrides) if usable else None


def _occupation(ions: SiteIons, shares: list[dict[str, float]], filling: np.ndarray) -> SiteOccupation:
    """One site of the screened rows as ``screen`` takes it (element slots and shares padded to the widest row)."""
    width = max(len(share) for share in shares)
    position = {symbol: slot for slot, symbol in enumerate(ions.symbols)}
    slots = np.zeros((len(shares), width), dtype=np.int64)
    fractions = np.zeros((len(shares), width))
    for row, share in enumerate(shares):
        for column, (element, fraction) in enumerate(sorted(share.items())):
            slots[row, column], fractions[row, column] = position[element], fraction
    return SiteOccupation(ions, slots, fractions, filling[:, None] * fractions)


def screen_formulas(formulas: list[str], rules: PoolPerovskiteFilter) -> PoolScreen:
    """Place each formula on the perovskite sublattices and apply the perovskite rules to it.

    Args:
        formulas: Parsable chemical formulas (a pool's unique compositions).
        rules: The pool's ``perovskite_filter`` section.
    """
    placed = [_placement(formula, rules) for formula in formulas]
    reasons = [reason for _, _, reason in placed]
    occupancies = [occupancy for occupancy, _, _ in placed]
    elements = {site: set() for site in _SITES}
    for occupancy, _, reason in placed:
        if not reason:
            for site in _SITES:
                elements[site] |= set(occupancy[site])
    ions = {site: _usable_ions(site, elements[site], rules) for site in _SITES}
    for row, (occupancy, _, reason) in enumerate(placed):
        usable = not reason and all(
            ions[site] is not None and set(occupancy[site]) <= set(ions[site].symbols) for site in _SITES
        )
        if not reason and not usable:
            reasons[row] = "ions"
    rows = [row for row, reason in enumerate(reasons) if not reason]
    descriptors = np.full((len(formulas), len(DESCRIPTORS)), np.nan, dtype=np.float32)
    if rows:
        anions = np.array([placed[row][1] for row in rows])
        fillings = {"A": np.ones(len(rows)), "B": np.ones(len(rows)), "X": anions}
        sites = tuple(
            _occupation(ions[site], [occupancies[row][site] for row in rows], fillings[site]) for site in _SITES
        )
        codes, descriptors[rows] = screen(sites, rules, np.zeros(len(rows)), 3.0 - anions)
        for row, code in zip(rows, codes, strict=True):
            reasons[row] = RULES[code - 1] if code else ""
    return PoolScreen(reasons, occupancies, descriptors)


def pool_extra_names(config: PoolSpaceConfig) -> tuple[str, ...]:
    """Names of a pool's own descriptors with a ``perovskite_filter`` (none without one).

    The perovskite descriptors (``perovskite <name>``), then the A-site and B-site elemental properties
    (``A <property>``, ``B <property>``, the names ``sbin model train --sites`` gives them): the
    ``perovskite_extra_names`` an enumerated perovskite space gives too. They follow from the config alone, so a
    cached pool is checked against them without reading its table.
    """
    if config.perovskite_filter is None:
        return ()
    return perovskite_extra_names()


def pool_candidates(table: FormulaTable, config: PoolSpaceConfig, rejected: Counter | None = None) -> pd.DataFrame:
    """The unique compositions of a pool's table that are candidates: all of them, or its perovskites.

    With a ``perovskite_filter``, the kept rows gain one column per ``pool_extra_names`` holding their perovskite
    descriptors and site properties.

    Args:
        table: The pool's table, read by ``read_formula_table``.
        config: The pool's space config; its ``perovskite_filter`` section, when given, selects the rows.
        rejected: If given, rejections per reason are added to it.
    """
    if config.perovskite_filter is None:
        return table.frame
    result = screen_formulas(table.frame["formula"].tolist(), config.perovskite_filter)
    counts = result.counts()
    if rejected is not None:
        rejected.update(counts)
    kept = table.frame[result.kept].reset_index(drop=True)
    placed = [occupancy for occupancy, keep in zip(result.occupancies, result.kept, strict=True) if keep]
    sites = weighted_site_descriptors(
        [occupancy["A"] for occupancy in placed], [occupancy["B"] for occupancy in placed]
    )
    kept[list(pool_extra_names(config))] = np.concatenate([result.descriptors[result.kept], sites], axis=1)
    logger.info("%s: %d perovskite compositions kept, rejected %s", table.source, len(kept), dict(counts))
    return kept
