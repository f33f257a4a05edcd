"""Empty voids of a periodic structure: candidate interstitial sites.

The points farthest from every atom (local maxima of the nearest-atom distance) are vertices of the atoms' Voronoi
tessellation. ``find_voids`` tessellates the atoms of the cell with their 26 neighbouring periodic images
(``scipy.spatial.Voronoi``), keeps the vertices inside the home cell, scores each by its clearance (distance to the
nearest atom, from a k-d tree of the same images) and takes the largest greedily, skipping any vertex closer than
``min_separation`` to one already taken, so that every returned void is distinct. Clearances equal to 0.1 mÅ are ties,
broken by a seeded random order. The image shell is exact when the clearances are smaller than the cell's widths
(true for any cell of a few angstrom and more).
"""

from __future__ import annotations

import itertools

import numpy as np
from pymatgen.core import Structure
from scipy.spatial import KDTree, Voronoi

_SHIFTS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)


def find_voids(
    structure: Structure, count: int, seed: int, min_separation: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest distinct voids of a structure, largest first.

    Args:
        structure: Periodic structure.
        count: Voids wanted.
        seed: Seed of the tie-break between voids of equal clearance.
        min_separation: Smallest distance (angstrom) between two returned voids.

    Returns:
        Fractional coordinates in [0, 1) (``count`` x 3) and clearances in angstrom (``count``).

    Raises:
        ValueError: If the structure has fewer than ``count`` distinct voids.
    """
    lattice = structure.lattice
    images = lattice.get_cartesian_coords((structure.frac_coords % 1.0)[None, :, :] + _SHIFTS[:, None, :]).reshape(
        -1, 3
    )
    vertices = lattice.get_fractional_coords(Voronoi(images).vertices)
    inside = np.round(vertices[np.all((vertices > -1e-8) & (vertices < 1 - 1e-8), axis=1)], 10)
    candidates = np.unique(inside % 1.0, axis=0)
    clearance = KDTree(images).query(lattice.get_cartesian_coords(candidates))[0]
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(candidates)), -np.round(clearance, 4)))
    candidates, clearance = candidates[order], clearance[order]
    available = np.ones(len(candidates), dtype=bool)
    chosen: list[int] = []
    while len(chosen) < count and available.any():
        best = int(np.argmax(available))
        chosen.append(best)
        available &= lattice.get_all_distances(candidates[best], candidates)[0] >= min_separation
    if len(chosen) < count:
        raise ValueError(f"{structure.composition.formula}: {len(chosen)} distinct voids, {count} wanted")
    return candidates[chosen], clearance[chosen]
