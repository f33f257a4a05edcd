"""Site-disordered ABX3 perovskite supercells for a composition.

A composition such as ``La0.6Sr0.4Co0.8Fe0.2O3`` is split into sublattices: anions (O, N, F, ...) on X, cations
filled onto A by decreasing ionic radius until A holds one per formula unit, the rest on B. Each sublattice of the
cubic supercell is then decorated at random (seeded), optionally followed by swaps that bring nearest-neighbour pair
counts on each sublattice to their random-alloy values (a special-quasirandom-like structure).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Composition, Element, Lattice, Structure

ANIONS = frozenset({"O", "N", "F", "S", "Cl", "Br", "I", "Se", "Te"})
"""Elements that may sit on the X sublattice: the most electronegative of them does, and so do the others as
electronegative as bromine or more (in an oxide Te or S is a cation; in BaZrS3 S is the anion)."""

_CUBIC_SITES = {
    "A": [(0.0, 0.0, 0.0)],
    "B": [(0.5, 0.5, 0.5)],
    "X": [(0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5)],
}
_TOLERANCE = 0.05
MAX_ANION_DEFICIENCY = 0.1
"""Most anions per formula unit a composition may lack and still be placed on the perovskite sublattices."""


class NotAPerovskiteError(ValueError):
    """A composition that cannot be placed on the ABX3 perovskite sublattices."""


def site_occupancies(formula: str) -> dict[str, dict[str, float]]:
    """Fractional occupancy of each sublattice (``A``, ``B``, ``X``) per formula unit.

    Cations are counted two per formula unit (A and B sublattices full); the anions may then fall short of three by up
    to ``MAX_ANION_DEFICIENCY`` (oxygen-deficient ``Ba0.6K0.4BiO2.926`` is a perovskite with anion vacancies), and the
    X occupancy gives the anions' shares of the X site.

    Args:
        formula: Chemical formula of an ABX3 composition (fractional amounts allowed).

    Raises:
        NotAPerovskiteError: If there are no anions or the cation:anion ratio is not 2:3 within that deficiency.
    """
    composition = Composition(formula)
    candidates = [str(el) for el in composition if str(el) in ANIONS]
    strongest = max((Element(el).X for el in candidates), default=math.inf)
    x_site = {el for el in candidates if Element(el).X >= min(strongest, 2.9)}
    anions = {str(el): amount for el, amount in composition.items() if str(el) in x_site}
    cations = {str(el): amount for el, amount in composition.items() if str(el) not in x_site}
    if not anions or not cations:
        raise NotAPerovskiteError(f"{formula}: needs both cations and anions ({sorted(ANIONS)}) for ABX3")
    scale = 2.0 / sum(cations.values())
    cations = {el: amount * scale for el, amount in cations.items()}
    x_amount = sum(anions.values()) * scale
    if not 3.0 - MAX_ANION_DEFICIENCY - 1e-9 <= x_amount <= 6.0 / (2.0 - _TOLERANCE):  # >= 1.95 cations per 3 anions
        raise NotAPerovskiteError(
            f"{formula}: {6.0 / x_amount:.3f} cations per 3 anions; an ABX3 perovskite has 2 (anion deficiency at "
            f"most {MAX_ANION_DEFICIENCY} per formula unit)"
        )
    a_site: dict[str, float] = {}
    b_site: dict[str, float] = {}
    room = 1.0
    for element in sorted(cations, key=lambda el: (-_radius(el), el)):
        on_a = min(room, cations[element])
        if on_a > 1e-9:
            a_site[element] = on_a
        if cations[element] - on_a > 1e-9:
            b_site[element] = cations[element] - on_a
        room -= on_a
    norm_b = sum(b_site.values())
    return {
        "A": a_site,
        "B": {el: amount / norm_b for el, amount in b_site.items()},
        "X": {el: amount / sum(anions.values()) for el, amount in anions.items()},
    }


def _radius(element: str) -> float:
    el = Element(element)
    radius = el.average_ionic_radius or el.atomic_radius
    return float(radius) if radius else 1.0


def estimated_lattice_parameter(occupancies: dict[str, dict[str, float]]) -> float:
    """Cubic lattice parameter (angstrom) from ionic radii: mean of the B-X and A-X contact estimates."""
    r = {site: sum(fraction * _radius(el) for el, fraction in occ.items()) for site, occ in occupancies.items()}
    return 0.5 * (2.0 * (r["B"] + r["X"]) + math.sqrt(2.0) * (r["A"] + r["X"]))


def supercell_shape(min_atoms: int) -> tuple[int, int, int]:
    """Most compact repetition (n1 <= n2 <= n3) of the 5-atom cubic cell with at least ``min_atoms`` atoms."""
    best = None
    limit = max(1, math.ceil((min_atoms / 5) ** (1 / 3)) + 2)
    for shape in itertools.combinations_with_replacement(range(1, 2 * limit + 1), 3):
        atoms = 5 * math.prod(shape)
        if atoms >= min_atoms:
            key = (atoms, shape[2] - shape[0])
            if best is None or key < best[0]:
                best = (key, shape)
    assert best is not None
    return best[1]


def _counts(fractions: dict[str, float], n_sites: int) -> list[str]:
    """Element labels for ``n_sites`` sites, rounded by largest remainder."""
    exact = {el: fraction * n_sites for el, fraction in sorted(fractions.items())}
    counts = {el: math.floor(value) for el, value in exact.items()}
    by_remainder = sorted(exact, key=lambda el: counts[el] - exact[el])
    for el in by_remainder[: n_sites - sum(counts.values())]:
        counts[el] += 1
    return [el for el, count in counts.items() for _ in range(count)]


@dataclass(frozen=True)
class DecoratedSupercell:
    """A decorated supercell and how far its composition is from the requested one.

    Attributes:
        structure: The supercell (cubic, unrelaxed).
        shape: Repetitions of the 5-atom cell.
        sublattice: Sublattice label (``A``, ``B``, ``X``) of every site.
        max_fraction_error: Largest difference between requested and realised site fractions.
    """

    structure: Structure
    shape: tuple[int, int, int]
    sublattice: tuple[str, ...]
    max_fraction_error: float


def build_supercell(
    formula: str,
    min_atoms: int = 40,
    decoration: str = "sqs",
    seed: int = 0,
    sqs_steps: int = 2000,
    lattice_parameter: float | None = None,
) -> DecoratedSupercell:
    """Build a site-disordered cubic perovskite supercell for a composition.

    Args:
        formula: ABX3 composition.
        min_atoms: Smallest acceptable number of atoms.
        decoration: ``random`` or ``sqs`` (random, then pair-correlation-matching swaps).
        seed: Seed of the decoration.
        sqs_steps: Swap attempts for ``sqs``.
        lattice_parameter: Cubic lattice parameter in angstrom; estimated from ionic radii if ``None``.

    Raises:
        NotAPerovskiteError: If the composition is not ABX3.
    """
    occupancies = site_occupancies(formula)
    shape = supercell_shape(min_atoms)
    a = lattice_parameter or estimated_lattice_parameter(occupancies)
    rng = np.random.default_rng(seed)
    species: list[str] = []
    coords: list[np.ndarray] = []
    labels: list[str] = []
    error = 0.0
    for site, positions in _CUBIC_SITES.items():
        frac = np.array(
            [
                (np.array(position) + np.array(cell)) / np.array(shape)
                for cell in itertools.product(*(range(n) for n in shape))
                for position in positions
            ]
        )
        elements = np.array(_counts(occupancies[site], len(frac)))
        rng.shuffle(elements)
        if decoration == "sqs":
            elements = _quasirandom(elements, frac, np.array(shape) * a, sqs_steps, rng)
        realised = {el: float(np.mean(elements == el)) for el in occupancies[site]}
        error = max(error, *(abs(realised[el] - fraction) for el, fraction in occupancies[site].items()))
        species += list(elements)
        coords += list(frac)
        labels += [site] * len(frac)
    lattice = Lattice.orthorhombic(*(n * a for n in shape))
    structure = Structure(lattice, species, coords)
    return DecoratedSupercell(structure, shape, tuple(labels), error)


def _neighbour_pairs(frac: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Index pairs (i < j) of nearest neighbours within one sublattice (minimum image, orthorhombic cell)."""
    delta = frac[:, None, :] - frac[None, :, :]
    delta -= np.round(delta)
    distance = np.linalg.norm(delta * lengths, axis=-1)
    np.fill_diagonal(distance, np.inf)
    nearest = distance.min()
    i, j = np.nonzero(np.triu(distance < nearest * 1.01))
    return np.stack([i, j], axis=1)


def _quasirandom(
    elements: np.ndarray, frac: np.ndarray, lengths: np.ndarray, steps: int, rng: np.random.Generator
) -> np.ndarray:
    """Swap sites (keeping swaps that do not worsen it) to match nearest-neighbour pair counts of a random alloy."""
    kinds = sorted(set(elements))
    if len(kinds) < 2 or len(elements) < 3:
        return elements
    pairs = _neighbour_pairs(frac, lengths)
    codes = np.searchsorted(kinds, elements)
    x = np.bincount(codes, minlength=len(kinds)) / len(codes)
    target = np.outer(x, x) * len(pairs)

    def mismatch(c: np.ndarray) -> float:
        counts = np.zeros((len(kinds), len(kinds)))
        np.add.at(counts, (c[pairs[:, 0]], c[pairs[:, 1]]), 1.0)
        return float(np.sum((0.5 * (counts + counts.T) - target) ** 2))

    current = mismatch(codes)
    for _ in range(steps):
        i, j = rng.integers(len(codes), size=2)
        if codes[i] == codes[j]:
            continue
        codes[[i, j]] = codes[[j, i]]
        trial = mismatch(codes)
        if trial <= current:
            current = trial
        else:
            codes[[i, j]] = codes[[j, i]]
    return np.array(kinds)[codes]
