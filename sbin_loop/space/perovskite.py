"""Enumerated perovskite space ``(A_{1-x} A'_x)_{1-δ_A} (B_{1-y} B'_y) X_{3-δ_X}``, screened and streamed.

Enumeration is vectorised: every site has a small table of mixing configurations (which elements, which
fractions on the ``1 / fraction_denominator`` grid); candidates are the product of the A, B and X
configurations and deficiencies, generated block by block as numpy arrays. No pymatgen object is made per
candidate; pymatgen is read once per element (oxidation states, Shannon radii, Pauling electronegativity).

The rules every candidate must pass (charge neutrality, Goldschmidt tolerance and octahedral factors, optional
electronegativity gap) and the ion tables behind them are in ``sbin_loop.space.rules``.

Each kept candidate carries, beside its composition, the descriptors the rules computed (``DESCRIPTORS``) and the
elemental properties of its A-site and B-site species, each the occupancy-weighted mean over the site
(``sbin_loop.extra_descriptors.site_property_means`` on the block's site arrays, the computation behind
``weighted_site_descriptors``): the columns ``perovskite_extra_names`` names, the same a pool filtered to its
perovskites gives. Composition statistics average the sites together; these let a model tell A-site from B-site
chemistry.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterator

import numpy as np

from sbin_loop.extra_descriptors import site_property_means
from sbin_loop.space.chunks import CandidateChunk, rechunk
from sbin_loop.space.config import PerovskiteSpaceConfig
from sbin_loop.space.formula import canonical_formulas
from sbin_loop.space.rules import (
    COORDINATION,
    DESCRIPTORS,
    RULES,
    SiteIons,
    SiteOccupation,
    default_oxidation_states,
    perovskite_extra_names,
    screen,
    shannon_radius,
    site_ions,
)

__all__ = [
    "COORDINATION",
    "DESCRIPTORS",
    "RULES",
    "PerovskiteSpace",
    "SiteIons",
    "default_oxidation_states",
    "estimated_size",
    "shannon_radius",
    "site_configuration_count",
    "site_configurations",
    "site_ions",
]


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
    def extra_names(self) -> tuple[str, ...]:
        """Names of the ``CandidateChunk.extra`` columns: ``perovskite_extra_names``."""
        return perovskite_extra_names()

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
        """Apply the rules to one block of enumerated candidates and build the survivors' chunk.

        The survivors' ``extra`` holds their rule descriptors, then the A-site and B-site property means, computed
        for the survivors only.
        """
        ions = self.sites
        sites = (
            SiteOccupation(ions["A"], a_slots, a_fractions, (1.0 - d_a)[:, None] * a_fractions),
            SiteOccupation(ions["B"], b_slots, b_fractions, b_fractions),
            SiteOccupation(ions["X"], x_slots, x_fractions, (3.0 - d_x)[:, None] * x_fractions),
        )
        reason, extra = screen(sites, self.config, d_a, d_x, rejected)
        keep = reason == 0
        rows = [site.ions.rows[site.slots[keep]] for site in sites]
        indices = np.concatenate(rows, axis=1)
        amounts = np.concatenate([site.amounts[keep] for site in sites], axis=1)
        site_means = [site_property_means(rows[i], sites[i].fractions[keep]) for i in (0, 1)]
        extra = np.concatenate([extra[keep], *site_means], axis=1, dtype=np.float32)
        return CandidateChunk(
            ids=canonical_formulas(indices, amounts),
            indices=indices,
            fractions=amounts / amounts.sum(axis=1, keepdims=True),
            extra=extra,
        )
