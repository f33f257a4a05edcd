"""Structural descriptors of a pymatgen ``Structure`` (for relaxed or amorphous cells returned by an oracle).

Sites are grouped by role (for perovskites ``A``, ``B``, ``X``); a site's weight in a group is the summed
occupancy of its species in that group, so compositionally disordered sites are handled without choosing one
species. All quantities come from one periodic neighbour list, reduced with ``bincount`` and histograms:

- partial radial distribution functions ``g_ab(r)`` on a fixed grid, for every unordered pair of groups;
- coordination numbers: neighbours within ``(1 + bond_tolerance)`` times the bond length of the site's group
  (the median over the group's sites of their nearest-neighbour distance, so one short bond in a distorted
  cell does not shrink the cut-off), counted by occupancy; mean, standard deviation, minimum and maximum per
  group;
- bond-angle distributions at a centre group between two bonded neighbours of another group (``B-X-B`` at X
  and ``X-B-X`` at B for perovskites): normalised histogram on 0-180° plus the mean;
- density (g/cm³) and volume per site (Å³).

A statistic of a group that has no site in the structure is NaN (missing, not zero).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure


def _pairs_within_groups(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(p, q)`` of positions with equal labels, each pair once (vectorised; no n x n matrix)."""
    order = np.argsort(labels, kind="stable")
    _, starts, sizes = np.unique(labels[order], return_index=True, return_counts=True)
    rank = np.arange(len(order)) - np.repeat(starts, sizes)
    partners = np.repeat(sizes, sizes) - 1 - rank
    first = np.repeat(np.arange(len(order)), partners)
    offset = np.arange(len(first)) - np.repeat(np.cumsum(partners) - partners, partners)
    return order[first], order[first + 1 + offset]


@dataclass(frozen=True)
class StructureFeaturizer:
    """Fixed-length structural descriptors for structures whose species fall into named groups.

    Attributes:
        groups: Group name -> element symbols (e.g. ``{"A": ("Sr",), "B": ("Ti",), "X": ("O",)}``).
        angles: ``(centre group, neighbour group)`` pairs whose bond angles are histogrammed.
        r_max: Largest distance of the radial distribution functions (Å).
        n_bins: Bins of the radial distribution functions on ``(0, r_max]``.
        angle_bins: Bins of the bond-angle histograms on 0-180°.
        bond_tolerance: Neighbours within ``(1 + bond_tolerance) x`` the group's bond length are bonded.

    """

    groups: Mapping[str, Sequence[str]]
    angles: tuple[tuple[str, str], ...] = (("X", "B"), ("B", "X"))
    r_max: float = 6.0
    n_bins: int = 60
    angle_bins: int = 18
    bond_tolerance: float = 0.2

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Unordered group pairs of the partial RDFs."""
        return list(itertools.combinations_with_replacement(self.groups, 2))

    @property
    def r_grid(self) -> np.ndarray:
        """Bin centres of the radial distribution functions (Å)."""
        edges = np.linspace(0.0, self.r_max, self.n_bins + 1)
        return 0.5 * (edges[1:] + edges[:-1])

    def names(self) -> list[str]:
        """Names of the columns of ``featurize``, in order."""
        names = [f"rdf {a}-{b} {r:.2f}" for a, b in self.pairs for r in self.r_grid]
        names += [f"cn {group} {stat}" for group in self.groups for stat in ("mean", "std", "min", "max")]
        for centre, neighbour in self.angles:
            width = 180.0 / self.angle_bins
            label = f"angle {neighbour}-{centre}-{neighbour}"
            names += [f"{label} {width * (i + 0.5):.0f}" for i in range(self.angle_bins)] + [f"{label} mean"]
        return [*names, "density", "volume_per_site"]

    def _weights(self, structure: Structure) -> np.ndarray:
        """``n_sites x n_groups`` occupancy of each site's species in each group."""
        weights = np.zeros((len(structure), len(self.groups)))
        for column, members in enumerate(self.groups.values()):
            members = set(members)
            for row, site in enumerate(structure):
                weights[row, column] = sum(
                    amount for species, amount in site.species.items() if species.symbol in members
                )
        return weights

    def featurize(self, structure: Structure) -> np.ndarray:
        """Descriptors of one structure (float64, columns as ``names()``).

        Args:
            structure: An ordered or disordered periodic structure.

        """
        weights = self._weights(structure)
        occupancy = np.array([site.species.num_atoms for site in structure])
        centre, neighbour, images, distance = structure.get_neighbor_list(self.r_max + 1e-8)
        keep = distance > 1e-8
        centre, neighbour, images, distance = centre[keep], neighbour[keep], images[keep], distance[keep]
        features = [self._rdfs(structure, weights, centre, neighbour, distance)]
        bonded = self._bonded(weights, centre, distance)
        features.append(self._coordination(weights, occupancy, centre, neighbour, bonded))
        points = structure.cart_coords
        vectors = points[neighbour] + images @ structure.lattice.matrix - points[centre]
        for centre_group, neighbour_group in self.angles:
            features.append(self._angles(weights, centre, neighbour, bonded, vectors, centre_group, neighbour_group))
        features.append(np.array([structure.density, structure.volume / len(structure)]))
        return np.concatenate(features)

    def _rdfs(
        self,
        structure: Structure,
        weights: np.ndarray,
        centre: np.ndarray,
        neighbour: np.ndarray,
        dist: np.ndarray,
    ) -> np.ndarray:
        """Partial RDFs ``g_ab(r)`` (symmetrised over a and b) on the fixed grid."""
        edges = np.linspace(0.0, self.r_max, self.n_bins + 1)
        shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
        bins = np.minimum((dist / self.r_max * self.n_bins).astype(np.int64), self.n_bins - 1)
        names = list(self.groups)
        totals = weights.sum(axis=0)
        rows = []
        for a, b in self.pairs:
            i, j = names.index(a), names.index(b)
            pair_weight = weights[centre, i] * weights[neighbour, j]
            if i != j:
                pair_weight = pair_weight + weights[centre, j] * weights[neighbour, i]
            counts = np.bincount(bins, weights=pair_weight, minlength=self.n_bins)
            pairs_per_volume = totals[i] * totals[j] * (1 if i == j else 2) / structure.volume
            rows.append(counts / (pairs_per_volume * shell) if pairs_per_volume > 0 else np.full(self.n_bins, np.nan))
        return np.concatenate(rows)

    def _bonded(self, weights: np.ndarray, centre: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """Mask of neighbour-list pairs within ``(1 + bond_tolerance)`` of the centre group's bond length."""
        nearest = np.full(len(weights), np.inf)
        np.minimum.at(nearest, centre, distance)
        # Dominant group of each site; sites of no group form their own group (last index).
        group = np.where(weights.sum(axis=1) > 0, weights.argmax(axis=1), weights.shape[1])
        bond = np.full(weights.shape[1] + 1, np.inf)
        for g in np.unique(group):
            finite = nearest[(group == g) & np.isfinite(nearest)]
            bond[g] = np.median(finite) if len(finite) else np.inf
        return distance <= (1.0 + self.bond_tolerance) * bond[group[centre]]

    def _coordination(
        self,
        weights: np.ndarray,
        occupancy: np.ndarray,
        centre: np.ndarray,
        neighbour: np.ndarray,
        bonded: np.ndarray,
    ) -> np.ndarray:
        """Occupancy-weighted coordination-number statistics per group: mean, std, min, max."""
        numbers = np.bincount(centre[bonded], weights=occupancy[neighbour[bonded]], minlength=len(weights))
        stats = []
        for column in range(weights.shape[1]):
            w = weights[:, column]
            if w.sum() <= 0:
                stats += [np.nan] * 4
                continue
            mean = np.average(numbers, weights=w)
            std = np.sqrt(np.average((numbers - mean) ** 2, weights=w))
            stats += [mean, std, numbers[w > 0].min(), numbers[w > 0].max()]
        return np.array(stats)

    def _angles(
        self,
        weights: np.ndarray,
        centre: np.ndarray,
        neighbour: np.ndarray,
        bonded: np.ndarray,
        vectors: np.ndarray,
        centre_group: str,
        neighbour_group: str,
    ) -> np.ndarray:
        """Normalised histogram and mean of neighbour-centre-neighbour angles over bonded neighbour pairs."""
        names = list(self.groups)
        if centre_group not in names or neighbour_group not in names:
            return np.full(self.angle_bins + 1, np.nan)
        c, n = names.index(centre_group), names.index(neighbour_group)
        use = bonded & (weights[centre, c] > 0) & (weights[neighbour, n] > 0)
        sites, vec = centre[use], vectors[use]
        pair_weight = weights[sites, c] * weights[neighbour[use], n]
        first, second = _pairs_within_groups(sites)
        if len(first) == 0:
            return np.full(self.angle_bins + 1, np.nan)
        u, v = vec[first], vec[second]
        cosine = np.einsum("ij,ij->i", u, v) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
        angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
        w = pair_weight[first] * pair_weight[second] / weights[sites[first], c]
        histogram, _ = np.histogram(angle, bins=self.angle_bins, range=(0.0, 180.0 + 1e-9), weights=w)
        return np.append(histogram / w.sum(), np.average(angle, weights=w))
