"""Site-resolved descriptors of ABO3 perovskites beside the composition statistics of ``sbin_loop.features``.

- ``weighted_site_descriptors``: the elemental properties of the A-site and B-site species of an ABO3 perovskite, side
  by side, each the occupancy-weighted mean over its site's species ((Ba0.6K0.4)BiO3: 0.6 Ba + 0.4 K on A, Bi on B).
  The two site assignments of one composition (SrTiO3 versus TiSrO3) have identical composition statistics but
  vacancy energies that differ by more than 10 eV; only site-resolved inputs can separate them. The means are
  computed by ``site_property_means``, which enumerated perovskite spaces call directly on their site arrays.
- ``site_descriptors``: the same for one element per site (occupancy ``{X: 1}``), the inputs of ``--sites``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pymatgen.core import Element

from sbin_loop.features import element_property_table
from sbin_loop.space.formula import MAX_Z


def site_descriptor_names() -> list[str]:
    """Names of the columns of ``weighted_site_descriptors`` (and ``site_descriptors``): ``A <property>``, then B."""
    names = element_property_table().names
    return [f"{site} {name}" for site in ("A", "B") for name in names]


def site_property_means(rows: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Occupancy-weighted mean elemental properties of one site of each row (``n x p`` float64).

    The one computation behind every A-site and B-site descriptor: ``weighted_site_descriptors`` calls it for sites
    given as mappings, and enumerated perovskite spaces call it on the site arrays their chunks already hold, since
    they stream millions of candidates and build no mapping per candidate. Each row is the ``shares``-weighted sum of
    the rows of ``element_property_table``, a matrix product of shares and properties done one column at a time.

    Args:
        rows: ``n x k`` element rows (``Z - 1``) on the site; a padding column may hold any row with share 0.
        shares: ``n x k`` shares of the site, each row summing to one.
    """
    table = element_property_table().values
    means = np.zeros((len(rows), table.shape[1]), dtype=np.float64)
    for column in range(rows.shape[1]):
        part = np.take(table, rows[:, column], axis=0)
        part *= shares[:, column, None]
        means += part
    return means


def weighted_site_descriptors(
    a_sites: Sequence[Mapping[str, float]], b_sites: Sequence[Mapping[str, float]]
) -> np.ndarray:
    """Occupancy-weighted mean elemental properties of each row's A-site and B-site species (``n x 2p`` float32).

    Args:
        a_sites: Per row, the A-site occupancy (element symbol to amount); amounts are normalized to sum to one.
        b_sites: Per row, the B-site occupancy.

    Raises:
        ValueError: If the two sequences differ in length, a site is empty or has a non-positive amount, or a symbol
            is not an element up to ``MAX_Z``.
    """
    if len(a_sites) != len(b_sites):
        raise ValueError(f"{len(a_sites)} A-site rows but {len(b_sites)} B-site rows")
    blocks = [
        site_property_means(*_site_arrays(site, occupancies)) for site, occupancies in (("A", a_sites), ("B", b_sites))
    ]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _site_arrays(site: str, occupancies: Sequence[Mapping[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """One site's occupancies as ``site_property_means`` takes them: element rows and normalized shares, padded."""
    width = max((len(occupancy) for occupancy in occupancies), default=1)
    rows = np.zeros((len(occupancies), width), dtype=np.int64)
    shares = np.zeros((len(occupancies), width), dtype=np.float64)
    for row, occupancy in enumerate(occupancies):
        if not occupancy or min(occupancy.values()) <= 0.0:
            raise ValueError(f"row {row}: {site}-site occupancy {dict(occupancy)} needs positive amounts")
        total = sum(occupancy.values())
        for column, (symbol, amount) in enumerate(occupancy.items()):
            rows[row, column] = Element(symbol).Z - 1
            shares[row, column] = amount / total
    if (rows >= MAX_Z).any():
        raise ValueError(f"elements beyond Z={MAX_Z} are not supported")
    return rows, shares


def site_descriptors(a_symbols: Sequence[str], b_symbols: Sequence[str]) -> np.ndarray:
    """Elemental properties of one A-site and one B-site element per row (``weighted_site_descriptors`` of ``{X: 1}``).

    Raises:
        ValueError: If the two sequences differ in length or a symbol is not an element up to ``MAX_Z``.
    """
    return weighted_site_descriptors([{symbol: 1.0} for symbol in a_symbols], [{symbol: 1.0} for symbol in b_symbols])
