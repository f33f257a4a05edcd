"""Enumerated perovskite space ``(A_{1-x} A'_x)_{1-δ_A} (B_{1-y} B'_y) X_{3-δ_X}``, screened and streamed.

Enumeration is vectorised: every site has a small table of mixing configurations (which elements, which
fractions on the ``1 / fraction_denominator`` grid); candidates are the product of the A, B and X
configurations and deficiencies, generated block by block as numpy arrays. No pymatgen object is made per
candidate; pymatgen is read once per element (oxidation states, Shannon radii, Pauling electronegativity).

Rules, applied in this order (a candidate is counted under the first rule it fails):

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

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Element

from sbin_loop.config import PerovskiteSpaceConfig
from sbin_loop.space.chunks import CandidateChunk, rechunk
from sbin_loop.space.formula import canonical_formulas

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
"""Perovskite descriptors of every candidate (``CandidateChunk.extra`` columns); size mismatch is the
fraction-weighted standard deviation of the site's ionic radii."""

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


def site_configurations(n_elements: int, max_species: int, denominator: int) -> tuple[np.ndarray, np.ndarray]:
    """Every way to occupy a site with 1..``max_species`` of its elements on a fraction grid.

    Args:
        n_elements: Elements allowed on the site.
        max_species: Most elements mixed on the site.
        denominator: Fractions are positive multiples of ``1 / denominator`` summing to 1.

    Returns:
        ``(slots, fractions)``, both ``c x max_species``: element positions in the site list (padding 0) and
        their fractions (padding 0).

    """
    width = min(max_species, n_elements, denominator)
    slots, fractions = [], []
    for count in range(1, width + 1):
        splits = [np.diff([0, *cuts, denominator]) for cuts in itertools.combinations(range(1, denominator), count - 1)]
        for members in itertools.combinations(range(n_elements), count):
            for split in splits:
                slots.append([*members, *[0] * (max_species - count)])
                fractions.append([*(split / denominator), *[0.0] * (max_species - count)])
    return np.array(slots, dtype=np.int64), np.array(fractions, dtype=np.float64)


def site_configuration_count(n_elements: int, max_species: int, denominator: int) -> int:
    """How many rows ``site_configurations`` returns, computed without enumerating them.

    ``k`` of ``n_elements`` elements (``C(n, k)`` ways) split ``denominator`` grid steps into ``k`` positive parts
    (``C(denominator - 1, k - 1)`` ways), for ``k`` from 1 to the widest mix.
    """
    width = min(max_species, n_elements, denominator)
    return sum(math.comb(n_elements, k) * math.comb(denominator - 1, k - 1) for k in range(1, width + 1))


def estimated_size(config: PerovskiteSpaceConfig) -> int:
    """Candidates a perovskite space enumerates before its rules (its ``raw_size``), without building anything."""
    denominator = config.fraction_denominator
    sites = (
        (config.a_site, config.max_species_a),
        (config.b_site, config.max_species_b),
        (config.x_site, config.max_species_x),
    )
    size = len(config.a_deficiency) * len(config.anion_deficiency)
    for elements, max_species in sites:
        size *= site_configuration_count(len(elements), max_species, denominator)
    return size


class PerovskiteSpace:
    """A perovskite candidate space defined by a ``PerovskiteSpaceConfig``.

    Args:
        config: The space section of a campaign config.

    Raises:
        ValueError: If an element or oxidation state cannot be used (see ``site_ions``).

    """

    extra_names = tuple(f"perovskite {name}" for name in DESCRIPTORS)
    """Names of the ``CandidateChunk.extra`` columns."""

    def __init__(self, config: PerovskiteSpaceConfig) -> None:
        self.config = config
        overrides = dict(config.oxidation_states)
        self.sites = {
            "A": site_ions("A", config.a_site, overrides),
            "B": site_ions("B", config.b_site, overrides),
            "X": site_ions("X", config.x_site, overrides),
        }
        denominator = config.fraction_denominator
        self._a = site_configurations(len(config.a_site), config.max_species_a, denominator)
        b_slots, b_fractions = site_configurations(len(config.b_site), config.max_species_b, denominator)
        x_slots, x_fractions = site_configurations(len(config.x_site), config.max_species_x, denominator)
        # Inner product: every B configuration x X configuration x anion deficiency.
        b, x, d = np.meshgrid(
            np.arange(len(b_slots)),
            np.arange(len(x_slots)),
            np.arange(len(config.anion_deficiency)),
            indexing="ij",
        )
        b, x, d = b.ravel(), x.ravel(), d.ravel()
        self._inner = (
            b_slots[b],
            b_fractions[b],
            x_slots[x],
            x_fractions[x],
            np.asarray(config.anion_deficiency)[d],
        )

    @property
    def notes(self) -> tuple[str, ...]:
        """Radius fallbacks used by this space."""
        return tuple(note for site in self.sites.values() for note in site.notes)

    @property
    def raw_size(self) -> int:
        """Candidates enumerated before the rules."""
        return len(self._a[0]) * len(self.config.a_deficiency) * len(self._inner[0])

    def chunks(self, chunk_size: int = 65536, rejected: Counter | None = None) -> Iterator[CandidateChunk]:
        """Stream the candidates that pass every rule, ``chunk_size`` at a time, in a fixed order.

        Args:
            chunk_size: Candidates per chunk (the last chunk may be shorter).
            rejected: If given, rejection counts per rule (``RULES``) are added to it as the stream advances.

        """
        return rechunk(self._blocks(rejected), chunk_size)

    def _blocks(self, rejected: Counter | None, target: int = 32768) -> Iterator[CandidateChunk]:
        """Screened blocks of about ``target`` enumerated candidates."""
        a_slots, a_fractions = self._a
        a_deficiency = np.asarray(self.config.a_deficiency)
        n_inner, n_outer = len(self._inner[0]), len(a_slots) * len(a_deficiency)
        step = max(1, target // n_inner)
        for start in range(0, n_outer, step):
            outer = np.arange(start, min(start + step, n_outer))
            a_rows = np.repeat(outer // len(a_deficiency), n_inner)
            inner_rows = np.tile(np.arange(n_inner), len(outer))
            b_slots, b_fractions, x_slots, x_fractions, d_x = (part[inner_rows] for part in self._inner)
            block = self._screen(
                a_slots[a_rows],
                a_fractions[a_rows],
                np.repeat(a_deficiency[outer % len(a_deficiency)], n_inner),
                b_slots,
                b_fractions,
                x_slots,
                x_fractions,
                d_x,
                rejected,
            )
            yield block

    def _screen(
        self,
        a_slots: np.ndarray,
        a_fractions: np.ndarray,
        d_a: np.ndarray,
        b_slots: np.ndarray,
        b_fractions: np.ndarray,
        x_slots: np.ndarray,
        x_fractions: np.ndarray,
        d_x: np.ndarray,
        rejected: Counter | None,
    ) -> CandidateChunk:
        """Apply the rules to one block of enumerated candidates and build the survivors' chunk."""
        cfg = self.config
        ions = self.sites
        parts = (
            (ions["A"], a_slots, a_fractions, (1.0 - d_a)[:, None] * a_fractions),
            (ions["B"], b_slots, b_fractions, b_fractions),
            (ions["X"], x_slots, x_fractions, (3.0 - d_x)[:, None] * x_fractions),
        )
        q_min = sum((amounts * site.min_state[slots]).sum(axis=1) for site, slots, _, amounts in parts)
        q_max = sum((amounts * site.max_state[slots]).sum(axis=1) for site, slots, _, amounts in parts)
        neutral = (q_min <= _CHARGE_TOLERANCE) & (q_max >= -_CHARGE_TOLERANCE)
        spread = q_max - q_min
        share = np.clip(np.where(spread > 0, -q_min / np.where(spread > 0, spread, 1.0), 0.0), 0.0, 1.0)

        site_state, site_radius, site_mismatch, site_chi = [], [], [], []
        for site, slots, fractions, _ in parts:
            states = site.min_state[slots] + share[:, None] * (site.max_state[slots] - site.min_state[slots])
            radii = site.radius(slots, states)
            mean_radius = (fractions * radii).sum(axis=1)
            site_state.append((fractions * states).sum(axis=1))
            site_radius.append(mean_radius)
            site_mismatch.append(np.sqrt((fractions * (radii - mean_radius[:, None]) ** 2).sum(axis=1)))
            site_chi.append((fractions * site.electronegativity[slots]).sum(axis=1))
        r_a, r_b, r_x = site_radius
        tolerance = (r_a + r_x) / (math.sqrt(2.0) * (r_b + r_x))
        octahedral = r_b / r_x
        gap_a, gap_b = site_chi[2] - site_chi[0], site_chi[2] - site_chi[1]
        gap = cfg.min_electronegativity_gap
        failures = (
            ~neutral,
            tolerance < cfg.tolerance_factor[0],
            tolerance > cfg.tolerance_factor[1],
            octahedral < cfg.octahedral_factor[0],
            octahedral > cfg.octahedral_factor[1],
            np.zeros_like(neutral) if gap is None else (np.minimum(gap_a, gap_b) < gap),
        )
        reason = np.select(failures, np.arange(1, len(RULES) + 1), default=0)
        if rejected is not None:
            counts = np.bincount(reason, minlength=len(RULES) + 1)
            rejected.update({rule: int(count) for rule, count in zip(RULES, counts[1:], strict=True) if count})
        keep = reason == 0

        indices = np.concatenate([site.rows[slots[keep]] for site, slots, _, _ in parts], axis=1)
        amounts = np.concatenate([amounts[keep] for _, _, _, amounts in parts], axis=1)
        extra = np.stack(
            [
                tolerance,
                octahedral,
                gap_a,
                gap_b,
                site_state[0],
                site_state[1],
                r_a,
                r_b,
                r_x,
                site_mismatch[0],
                site_mismatch[1],
                d_a,
                d_x,
            ],
            axis=1,
        )[keep].astype(np.float32)
        return CandidateChunk(
            ids=canonical_formulas(indices, amounts),
            indices=indices,
            fractions=amounts / amounts.sum(axis=1, keepdims=True),
            extra=extra,
        )
