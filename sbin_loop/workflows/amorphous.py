"""Is a melt-quenched cell amorphous? Long-range order against the crystal it came from, and coordination statistics.

Long-range order is read from the Bragg peaks of the starting crystal. For a reflection ``h`` (integers in the
supercell's reciprocal basis) and the atoms ``j`` of one element at fractional coordinates ``f_j``, the element's order
is ``|mean_j exp(2 pi i h.f_j)|^2``: 1 for atoms on one sublattice of a perfect crystal, about ``1 / N_el`` for random
positions. ``S(h)`` is its mean over elements weighted by their atom counts, with the noise floor ``n_elements / N``.
The crystal's peaks are the reflections with ``S >= 0.5`` (up to |G| = 2 pi / 1.8 angstrom); the cell's order is
``(S_cell - floor) / (S_crystal - floor)`` averaged over those peaks: about 1 for the crystal (a little less with
thermal displacements or tilts), about 0 for a glass or liquid. Fractional coordinates keep the comparison valid
through the isotropic volume changes and cell relaxation of the melt-quench. Thermal displacements lower the
intensity too (a hot crystal reads as disordered), so the check is made on the relaxed cell.

Coordination statistics (anions around each cation within 1.25 x the cation's median nearest-anion distance) are
recorded beside it: a glass has a spread of coordination numbers where the crystal has one per sublattice.
"""

from __future__ import annotations

import itertools

import numpy as np
from jobflow import job
from pydantic import BaseModel, ConfigDict
from pymatgen.core import Structure

from sbin_loop.workflows.defect_settings import MAX_LONG_RANGE_ORDER

_PEAK = 0.5
_SHORTEST_SPACING = 1.8
_ANIONS = frozenset({"O", "N", "F", "S", "Cl", "Br", "I", "Se"})


def random_packing(structure: Structure, seed: int, min_distance: float = 1.8, attempts: int = 10_000) -> Structure:
    """The structure's sites (same species, order and cell) at seeded random positions: the melt-quench's start.

    No two sites are closer than ``min_distance`` angstrom. MPMorph starts from a random packing (atomate2 builds it
    with packmol, an external program not installed here) because a small periodic crystal superheats: heated from
    the crystal, the cell vibrates without melting and relaxes back to the crystal. Sites are placed one by one by
    rejection sampling.

    Raises:
        ValueError: If a site finds no place after ``attempts`` draws (cell too dense for ``min_distance``).
    """
    rng = np.random.default_rng(seed)
    lattice = structure.lattice
    placed = np.empty((0, 3))
    for index in range(len(structure)):
        for _ in range(attempts):
            trial = rng.random(3)
            if not len(placed) or lattice.get_all_distances(trial, placed).min() >= min_distance:
                placed = np.vstack([placed, trial])
                break
        else:
            raise ValueError(f"{structure.composition.reduced_formula}: no room for site {index} at {min_distance} A")
    return Structure(lattice, structure.species, placed)


class NotAmorphousError(ValueError):
    """A melt-quenched cell that kept the crystal's long-range order."""


class CoordinationStatistics(BaseModel):
    """Anion coordination numbers of one cation element.

    Attributes:
        mean: Mean coordination number.
        std: Its standard deviation over the element's sites.
        counts: Sites per coordination number.
    """

    model_config = ConfigDict(extra="forbid")

    mean: float
    std: float
    counts: dict[int, int]


class AmorphousCheck(BaseModel):
    """Loss of long-range order of a melt-quenched cell against its starting crystal.

    Attributes:
        long_range_order: Bragg intensity at the crystal's peaks, above noise, relative to the crystal (0: none).
        n_peaks: Crystal reflections compared.
        noise_floor: Intensity of randomly placed atoms (``n_elements / N``).
        threshold: Largest ``long_range_order`` accepted as amorphous.
        amorphous: ``long_range_order <= threshold``.
        coordination: Per cation element, anion coordination statistics of the cell.
        crystal_coordination: The same for the starting crystal.
    """

    model_config = ConfigDict(extra="forbid")

    long_range_order: float
    n_peaks: int
    noise_floor: float
    threshold: float
    amorphous: bool
    coordination: dict[str, CoordinationStatistics]
    crystal_coordination: dict[str, CoordinationStatistics]


def bragg_intensity(structure: Structure, reflections: np.ndarray) -> np.ndarray:
    """Count-weighted mean over elements of ``|mean_j exp(2 pi i h.f_j)|^2`` for each reflection (rows of ``h``)."""
    symbols = np.array([site.specie.symbol for site in structure])
    phases = np.exp(2j * np.pi * structure.frac_coords @ reflections.T)
    total = np.zeros(len(reflections))
    for element in np.unique(symbols):
        members = symbols == element
        total += members.sum() * np.abs(phases[members].mean(axis=0)) ** 2
    return total / len(structure)


def crystal_peaks(crystal: Structure) -> np.ndarray:
    """Reflections (supercell reciprocal basis) where the crystal's intensity is at least 0.5, one of each +-h pair."""
    limits = [int(np.ceil(length / _SHORTEST_SPACING)) for length in crystal.lattice.abc]
    grid = np.array(list(itertools.product(*(range(-n, n + 1) for n in limits))), dtype=float)
    first_nonzero = np.array([next((v for v in row if v), 0.0) for row in grid])
    grid = grid[first_nonzero > 0]
    return grid[bragg_intensity(crystal, grid) >= _PEAK]


def coordination_statistics(structure: Structure) -> dict[str, CoordinationStatistics]:
    """Anion coordination of each cation element (anions within 1.25 x its median nearest-anion distance)."""
    symbols = np.array([site.specie.symbol for site in structure])
    anions = np.isin(symbols, list(_ANIONS))
    if not anions.any() or anions.all():
        return {}
    distances = structure.lattice.get_all_distances(structure.frac_coords[~anions], structure.frac_coords[anions])
    nearest = distances.min(axis=1)
    result = {}
    for element in sorted(set(symbols[~anions])):
        rows = symbols[~anions] == element
        cutoff = 1.25 * float(np.median(nearest[rows]))
        numbers = (distances[rows] <= cutoff).sum(axis=1)
        values, counts = np.unique(numbers, return_counts=True)
        result[element] = CoordinationStatistics(
            mean=float(numbers.mean()),
            std=float(numbers.std()),
            counts={int(v): int(c) for v, c in zip(values, counts, strict=True)},
        )
    return result


def amorphous_check(crystal: Structure, cell: Structure, threshold: float = MAX_LONG_RANGE_ORDER) -> AmorphousCheck:
    """Long-range order and coordination of ``cell`` (same sites as ``crystal``, any volume) against ``crystal``.

    Raises:
        ValueError: If the two structures have different numbers of sites.
    """
    if len(crystal) != len(cell):
        raise ValueError(f"cell has {len(cell)} sites, the crystal {len(crystal)}")
    peaks = crystal_peaks(crystal)
    floor = len({site.specie.symbol for site in crystal}) / len(crystal)
    reference = bragg_intensity(crystal, peaks) - floor
    order = float(np.mean((bragg_intensity(cell, peaks) - floor) / reference)) if len(peaks) else 0.0
    return AmorphousCheck(
        long_range_order=order,
        n_peaks=len(peaks),
        noise_floor=floor,
        threshold=threshold,
        amorphous=order <= threshold,
        coordination=coordination_statistics(cell),
        crystal_coordination=coordination_statistics(crystal),
    )


@job
def check_amorphous(crystal: Structure, cell: Structure, threshold: float) -> dict:
    """The cell and its ``AmorphousCheck``; a cell that kept the crystal's order fails the job.

    A crystalline cell fails rather than being marked because its vacancy energies would otherwise enter the campaign
    as amorphous values beside truly amorphous ones, with nothing in the objective to tell them apart.

    Raises:
        NotAmorphousError: If ``long_range_order`` exceeds ``threshold``.
    """
    check = amorphous_check(crystal, cell, threshold)
    if not check.amorphous:
        raise NotAmorphousError(
            f"{cell.composition.reduced_formula}: melt-quenched cell kept {check.long_range_order:.2f} of the "
            f"crystal's long-range order (amorphous at <= {threshold}); lengthen or heat the melt"
        )
    return {"structure": cell, "check": check.model_dump(mode="json")}
