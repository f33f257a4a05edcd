"""Descriptors beyond the composition statistics of ``sbin_loop.features``, used by the model benchmark.

- ``element_fraction_vector``: the atomic fraction of every element (ElemNet's input, Jha et al., Sci. Rep. 8, 17593
  (2018)). Appended to the Magpie-like statistics it lets a network tell apart compositions whose averaged properties
  coincide.
- ``site_descriptors``: the elemental properties of the A and B cations of an ABO3 perovskite, side by side. The two
  site assignments of one composition (SrTiO3 versus TiSrO3) have identical composition statistics but vacancy
  energies that differ by more than 10 eV; only site-resolved inputs can separate them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymatgen.core import Composition, Element

from sbin_loop.features import element_fractions, element_property_table
from sbin_loop.space.formula import MAX_Z


def element_fraction_vector(compositions: Sequence[Composition]) -> np.ndarray:
    """``n x MAX_Z`` float32 atomic fractions, column ``Z - 1`` for element ``Z``."""
    indices, fractions = element_fractions(compositions)
    vector = np.zeros((len(compositions), MAX_Z), dtype=np.float64)
    rows = np.repeat(np.arange(len(compositions)), indices.shape[1])
    np.add.at(vector, (rows, indices.ravel()), fractions.ravel())
    return vector.astype(np.float32)


def site_descriptor_names() -> list[str]:
    """Names of the columns of ``site_descriptors``."""
    names = element_property_table().names
    return [f"{site} {name}" for site in ("A", "B") for name in names]


def site_descriptors(a_symbols: Sequence[str], b_symbols: Sequence[str]) -> np.ndarray:
    """Elemental properties of the A-site and B-site elements (``n x 2p`` float32, see ``site_descriptor_names``).

    Raises:
        ValueError: If the two sequences differ in length or a symbol is not an element up to ``MAX_Z``.
    """
    if len(a_symbols) != len(b_symbols):
        raise ValueError(f"{len(a_symbols)} A-site symbols but {len(b_symbols)} B-site symbols")
    table = element_property_table().values
    columns = []
    for symbols in (a_symbols, b_symbols):
        z = np.array([Element(symbol).Z for symbol in symbols], dtype=np.int64)
        if (z > MAX_Z).any():
            raise ValueError(f"elements beyond Z={MAX_Z} are not supported")
        columns.append(table[z - 1])
    return np.concatenate(columns, axis=1).astype(np.float32)
