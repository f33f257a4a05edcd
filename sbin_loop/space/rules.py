"""Perovskite rules: ion tables per site and the charge, Goldschmidt, octahedral and electronegativity screens.

Both kinds of candidate space use them: the enumerated perovskite space (``sbin_loop.space.perovskite``) on its
fraction grid, and a pool of formulas filtered to its perovskites (``sbin_loop.space.pool_perovskites``). Rules,
applied in this order (a candidate is counted under the first rule it fails):

1. ``charge``: neutrality must be reachable with the allowed oxidation states. Mixed valence is allowed, so
   each element's mean oxidation state may lie anywhere between its lowest and highest allowed state; the
   candidate passes if ``Σ n_i min_i <= 0 <= Σ n_i max_i``.
2. ``tolerance_low`` / ``tolerance_high``: Goldschmidt ``t = (r_A + r_X) / (√2 (r_B + r_X))`` within bounds.
3. ``octahedral_low`` / ``octahedral_high``: ``μ = r_B / r_X`` within bounds.
4. ``electronegativity`` (optional): ``χ_X - χ_A`` and ``χ_X - χ_B`` at least the configured gap.

Oxidation states used for radii: the neutral assignment that moves every element the same share ``λ`` of the
way from its lowest to its highest allowed state (``λ = -Σ n min / Σ n (max - min)``); an element with one
allowed state keeps it. Radii are Shannon ionic radii at coordination XII (A) and VI (B, X), interpolated
linearly between allowed integer states; where pymatgen has no radius at that coordination, the nearest listed
coordination is used (ties: the higher one), and the space's ``notes`` say so. High-spin radii are used where
pymatgen lists both spins. Site radii and electronegativities are fraction-weighted means over the site's
elements.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Element

from sbin_loop.extra_descriptors import site_descriptor_names
from sbin_loop.space.config import PerovskiteRulesConfig

RULES = (
    "charge",
    "tolerance_low",
    "tolerance_high",
    "octahedral_low",
    "octahedral_high",
    "electronegativity",
)
"""Rejection reasons, in the order rules are applied."""

DESCRIPTORS = (
    "tolerance_factor",
    "octahedral_factor",
    "electronegativity_gap_AX",
    "electronegativity_gap_BX",
    "oxidation_state_A",
    "oxidation_state_B",
    "radius_A",
    "radius_B",
    "radius_X",
    "size_mismatch_A",
    "size_mismatch_B",
    "a_deficiency",
    "anion_deficiency",
)
"""Perovskite descriptors of every candidate (the first ``CandidateChunk.extra`` columns, before the site properties of
``perovskite_extra_names``); size mismatch is the fraction-weighted standard deviation of the site's ionic radii."""

DESCRIPTOR_NAMES = tuple(f"perovskite {name}" for name in DESCRIPTORS)
"""The model-input names of ``DESCRIPTORS``, for every space whose candidates carry them (enumerated perovskites and
pools filtered to their perovskites)."""


def perovskite_extra_names() -> tuple[str, ...]:
    """Model-input names of the descriptors every perovskite candidate carries beside its composition descriptors.

    ``DESCRIPTOR_NAMES``, then the A-site and B-site elemental properties (``A <property>``, ``B <property>``, from
    ``sbin_loop.extra_descriptors.site_descriptor_names``). Enumerated perovskite spaces and pools filtered to their
    perovskites both give them, in this order, so a model, checkpoint or cached pool sees one set of names whichever
    kind of space its candidates came from.
    """
    return (*DESCRIPTOR_NAMES, *site_descriptor_names())


COORDINATION = {"A": 12, "B": 6, "X": 6}
"""Coordination numbers whose Shannon radii are used per site."""

_ROMAN = {"I": 1, "V": 5, "X": 10}
_SPIN_PREFERENCE = ("High Spin", "", "Low Spin")
_CHARGE_TOLERANCE = 1e-9


def _roman(text: str) -> int | None:
    """Read a Shannon coordination label as an integer (``XII`` -> 12); None for ``IVSQ`` and the like."""
    if not re.fullmatch(r"[IVX]+", text):
        return None
    values = [_ROMAN[char] for char in text]
    following = [*values[1:], 0]
    return sum(-value if value < after else value for value, after in zip(values, following, strict=True))


def shannon_radius(symbol: str, state: int, coordination: int) -> tuple[float, int] | None:
    """Shannon ionic radius (Å) of an ion and the coordination it was taken at.

    Args:
        symbol: Element symbol.
        state: Oxidation state.
        coordination: Wanted coordination number; the nearest listed one is used if pymatgen lacks it (ties:
            higher).

    Returns:
        ``(radius, coordination used)``, or None if pymatgen lists no radius for the ion.

    """
    table = Element(symbol).data.get("Shannon radii", {}).get(str(state), {})
    listed = {number: label for label in table if (number := _roman(label)) is not None}
    if not listed:
        return None
    used = min(listed, key=lambda number: (abs(number - coordination), -number))
    spins = table[listed[used]]
    spin = next(spin for spin in _SPIN_PREFERENCE if spin in spins)
    return float(spins[spin]["ionic_radius"]), used


def default_oxidation_states(symbol: str, sign: int) -> tuple[int, ...]:
    """Pymatgen's common and ICSD oxidation states of the given sign that have a Shannon radius, ascending."""
    element = Element(symbol)
    states = set(element.common_oxidation_states) | set(element.icsd_oxidation_states)
    return tuple(sorted(s for s in states if s * sign > 0 and shannon_radius(symbol, s, 6) is not None))


@dataclass(frozen=True)
class SiteIons:
    """Per-element data of one site, as arrays indexed by the element's position in the site list.

    Attributes:
        symbols: Element symbols of the site.
        rows: Element rows (``Z - 1``).
        min_state: Lowest allowed oxidation state.
        max_state: Highest allowed oxidation state.
        state_knots: ``m x s`` allowed states, ascending, padded by repeating the last.
        radius_knots: ``m x s`` Shannon radii at those states.
        electronegativity: Pauling electronegativity.
        notes: Radius fallbacks used (coordination not listed by pymatgen).

    """

    symbols: tuple[str, ...]
    rows: np.ndarray
    min_state: np.ndarray
    max_state: np.ndarray
    state_knots: np.ndarray
    radius_knots: np.ndarray
    electronegativity: np.ndarray
    notes: tuple[str, ...]

    def radius(self, slots: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Radii of elements ``slots`` at (possibly fractional) oxidation ``states``, linear between knots."""
        knots, radii = self.state_knots[slots], self.radius_knots[slots]  # ... x s
        result = radii[..., 0].copy()
        for j in range(knots.shape[-1] - 1):
            width = knots[..., j + 1] - knots[..., j]
            share = np.clip((states - knots[..., j]) / np.where(width > 0, width, 1.0), 0.0, 1.0)
            result += np.where(width > 0, share * (radii[..., j + 1] - radii[..., j]), 0.0)
        return result


def site_ions(site: str, symbols: tuple[str, ...], overrides: dict[str, tuple[int, ...]]) -> SiteIons:
    """Oxidation states, radii and electronegativities of a site's elements.

    Args:
        site: ``A``, ``B`` or ``X``.
        symbols: Elements allowed on the site.
        overrides: Oxidation states per element replacing ``default_oxidation_states``.

    Raises:
        ValueError: If an element is unknown, has no allowed state of the site's sign, or has no Shannon
            radius for an allowed state.

    """
    sign = -1 if site == "X" else 1
    coordination = COORDINATION[site]
    states_per_element, radii_per_element, notes = [], [], []
    for symbol in symbols:
        if not Element.is_valid_symbol(symbol):
            raise ValueError(f"{site} site: {symbol!r} is not an element")
        states = tuple(sorted(overrides.get(symbol, default_oxidation_states(symbol, sign))))
        if not states or any(state * sign <= 0 for state in states):
            raise ValueError(f"{site} site: {symbol} needs oxidation states of sign {sign:+d}, got {list(states)}")
        radii = []
        for state in states:
            found = shannon_radius(symbol, state, coordination)
            if found is None:
                raise ValueError(f"{site} site: pymatgen has no Shannon radius for {symbol}{state:+d}")
            radii.append(found[0])
            if found[1] != coordination:
                notes.append(f"{symbol}{state:+d} on {site}: no CN {coordination} radius, used CN {found[1]}")
        states_per_element.append(states)
        radii_per_element.append(radii)
    width = max(len(states) for states in states_per_element)
    state_knots = np.array([[*s, *[s[-1]] * (width - len(s))] for s in states_per_element], dtype=np.float64)
    radius_knots = np.array([[*r, *[r[-1]] * (width - len(r))] for r in radii_per_element], dtype=np.float64)
    return SiteIons(
        symbols=tuple(symbols),
        rows=np.array([Element(symbol).Z - 1 for symbol in symbols], dtype=np.int64),
        min_state=state_knots[:, 0].copy(),
        max_state=state_knots[:, -1].copy(),
        state_knots=state_knots,
        radius_knots=radius_knots,
        electronegativity=np.array([Element(symbol).X for symbol in symbols], dtype=np.float64),
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class SiteOccupation:
    """Which elements fill one site of a block of candidates, and how much of them.

    Attributes:
        ions: The site's element table.
        slots: ``n x k`` positions in ``ions`` (padding 0, with fraction 0).
        fractions: ``n x k`` shares of the site (rows sum to 1).
        amounts: ``n x k`` atoms per formula unit (fractions times the site's filling: ``1 - δ_A``, 1, ``3 - δ_X``).
    """

    ions: SiteIons
    slots: np.ndarray
    fractions: np.ndarray
    amounts: np.ndarray


def screen(
    sites: tuple[SiteOccupation, SiteOccupation, SiteOccupation],
    rules: PerovskiteRulesConfig,
    d_a: np.ndarray,
    d_x: np.ndarray,
    rejected: Counter | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the rules to a block of candidates.

    Args:
        sites: The A, B and X site occupations of the block.
        rules: Bounds and oxidation states of the rules.
        d_a: A-site deficiency of each candidate.
        d_x: Anion deficiency of each candidate.
        rejected: If given, rejection counts per rule (``RULES``) are added to it.

    Returns:
        ``(reason, descriptors)``: per candidate, 0 if it passes, else 1 + the position in ``RULES`` of the first rule
        it fails; and the ``n x len(DESCRIPTORS)`` float32 descriptors of every candidate.
    """
    q_min = sum((site.amounts * site.ions.min_state[site.slots]).sum(axis=1) for site in sites)
    q_max = sum((site.amounts * site.ions.max_state[site.slots]).sum(axis=1) for site in sites)
    neutral = (q_min <= _CHARGE_TOLERANCE) & (q_max >= -_CHARGE_TOLERANCE)
    spread = q_max - q_min
    share = np.clip(np.where(spread > 0, -q_min / np.where(spread > 0, spread, 1.0), 0.0), 0.0, 1.0)

    site_state, site_radius, site_mismatch, site_chi = [], [], [], []
    for site in sites:
        ions, slots, fractions = site.ions, site.slots, site.fractions
        states = ions.min_state[slots] + share[:, None] * (ions.max_state[slots] - ions.min_state[slots])
        radii = ions.radius(slots, states)
        mean_radius = (fractions * radii).sum(axis=1)
        site_state.append((fractions * states).sum(axis=1))
        site_radius.append(mean_radius)
        site_mismatch.append(np.sqrt((fractions * (radii - mean_radius[:, None]) ** 2).sum(axis=1)))
        site_chi.append((fractions * ions.electronegativity[slots]).sum(axis=1))
    r_a, r_b, r_x = site_radius
    tolerance = (r_a + r_x) / (math.sqrt(2.0) * (r_b + r_x))
    octahedral = r_b / r_x
    gap_a, gap_b = site_chi[2] - site_chi[0], site_chi[2] - site_chi[1]
    gap = rules.min_electronegativity_gap
    failures = (
        ~neutral,
        tolerance < rules.tolerance_factor[0],
        tolerance > rules.tolerance_factor[1],
        octahedral < rules.octahedral_factor[0],
        octahedral > rules.octahedral_factor[1],
        np.zeros_like(neutral) if gap is None else (np.minimum(gap_a, gap_b) < gap),
    )
    reason = np.select(failures, np.arange(1, len(RULES) + 1), default=0)
    if rejected is not None:
        counts = np.bincount(reason, minlength=len(RULES) + 1)
        rejected.update({rule: int(count) for rule, count in zip(RULES, counts[1:], strict=True) if count})
    columns = (tolerance, octahedral, gap_a, gap_b, site_state[0], site_state[1], r_a, r_b, r_x)
    extra = np.stack([*columns, site_mismatch[0], site_mismatch[1], d_a, d_x], axis=1).astype(np.float32)
    return reason, extra
