"""Vectorised composition descriptors.

Each composition is turned into padded arrays of element indices and atomic fractions (``n x k``); descriptors are
then computed for all compositions at once by gathering rows of an element-property table (``n x k x p``) and reducing
over the ``k`` elements: fraction-weighted mean, average deviation, minimum, maximum, range and mode (the value of the
most abundant element, the smallest on ties), in the spirit of Magpie (Ward et al., npj Comput. Mater. 2, 16028
(2016)). Stoichiometric p-norms of the fractions are appended. All elemental data come from pymatgen.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from pymatgen.core import Composition, Element

MAX_Z = 103
"""Elements up to lawrencium are supported."""

_ORBITAL = re.compile(r"(\d+)([spdf])(\d+)")
_CAPACITY = {"s": 2, "p": 6, "d": 10, "f": 14}


def _valence_counts(element: Element) -> dict[str, float]:
    """Electrons outside the preceding noble-gas core, per orbital type, and unfilled states of occupied types.

    Follows Magpie's NsValence/NpValence/NdValence/NfValence (filled d and f shells outside the core count) and
    NsUnfilled/... (capacity minus occupation for each occupied orbital type).
    """
    configuration = element.electronic_structure.split(".")
    shells = [part for part in configuration if not part.startswith("[")]
    counts = dict.fromkeys("spdf", 0.0)
    for shell in shells:
        match = _ORBITAL.fullmatch(shell)
        if match:
            counts[match.group(2)] += float(match.group(3))
    features = {f"N{kind}Valence": counts[kind] for kind in "spdf"}
    features["NValence"] = sum(counts.values())
    unfilled = {f"N{kind}Unfilled": (_CAPACITY[kind] - counts[kind]) if counts[kind] > 0 else 0.0 for kind in "spdf"}
    features.update(unfilled)
    features["NUnfilled"] = sum(unfilled.values())
    return features


def _scalar(value: object) -> float:
    """A pymatgen property as a float (NaN when pymatgen has none)."""
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


_SCALAR_PROPERTIES = {
    "Number": lambda el: el.Z,
    "MendeleevNumber": lambda el: el.mendeleev_no,
    "AtomicWeight": lambda el: el.atomic_mass,
    "MeltingT": lambda el: el.melting_point,
    "Column": lambda el: el.group,
    "Row": lambda el: el.row,
    "AtomicRadius": lambda el: el.atomic_radius,
    "Electronegativity": lambda el: el.X,
    "IonizationEnergy": lambda el: el.ionization_energy,
    "ElectronAffinity": lambda el: el.electron_affinity,
    "MolarVolume": lambda el: el.molar_volume,
}
"""Elemental properties read from pymatgen, by descriptor name."""

STATISTICS = ("mean", "avg_dev", "minimum", "maximum", "range", "mode")
STOICHIOMETRY_NORMS = (0, 2, 3, 5, 7, 10)


@dataclass(frozen=True)
class ElementPropertyTable:
    """Elemental properties for Z = 1..``MAX_Z`` (row ``Z - 1``).

    Attributes:
        names: Property names (columns).
        values: ``MAX_Z x p`` array. Missing values are imputed with the property's median over elements, and the
            imputed cells are listed in ``imputed`` so the choice is inspectable.
        imputed: ``(symbol, property)`` pairs that were imputed.
    """

    names: tuple[str, ...]
    values: np.ndarray
    imputed: tuple[tuple[str, str], ...]


@cache
def element_property_table() -> ElementPropertyTable:
    """Build (once per process) the element-property table from pymatgen's element data."""
    elements = [Element.from_Z(z) for z in range(1, MAX_Z + 1)]
    rows = []
    with warnings.catch_warnings():
        # pymatgen warns for each property it lacks (e.g. noble-gas electronegativity); those cells are imputed below.
        warnings.simplefilter("ignore", UserWarning)
        for element in elements:
            row = {name: _scalar(getter(element)) for name, getter in _SCALAR_PROPERTIES.items()}
            row.update(_valence_counts(element))
            rows.append(row)
    names = tuple(rows[0])
    values = np.array([[row[name] for name in names] for row in rows], dtype=np.float64)
    imputed = []
    for column, name in enumerate(names):
        missing = np.isnan(values[:, column])
        values[missing, column] = np.nanmedian(values[:, column])
        imputed.extend((elements[index].symbol, name) for index in np.flatnonzero(missing))
    return ElementPropertyTable(names, values, tuple(imputed))


def descriptor_names() -> list[str]:
    """Names of the columns returned by ``featurize_compositions``, in order."""
    table = element_property_table()
    names = [f"{statistic} {name}" for name in table.names for statistic in STATISTICS]
    names += [f"{norm}-norm" for norm in STOICHIOMETRY_NORMS]
    return names


def element_fractions(compositions: Sequence[Composition]) -> tuple[np.ndarray, np.ndarray]:
    """Padded element indices and atomic fractions.

    Args:
        compositions: Parsed compositions (real elements, Z <= ``MAX_Z``).

    Returns:
        ``(indices, fractions)``, both ``n x k`` with ``k`` the largest number of elements; padding has fraction 0 and
        index 0.

    Raises:
        ValueError: If an element beyond ``MAX_Z`` occurs.
    """
    width = max((len(composition) for composition in compositions), default=1)
    indices = np.zeros((len(compositions), width), dtype=np.int64)
    fractions = np.zeros((len(compositions), width), dtype=np.float64)
    for row, composition in enumerate(compositions):
        total = composition.num_atoms
        for column, (element, amount) in enumerate(composition.items()):
            if element.Z > MAX_Z:
                raise ValueError(f"{composition.formula}: element {element} (Z={element.Z}) is beyond Z={MAX_Z}")
            indices[row, column] = element.Z - 1
            fractions[row, column] = amount / total
    return indices, fractions


def featurize_fractions(indices: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Composition descriptors from padded element indices and fractions.

    Args:
        indices: ``n x k`` element rows of the property table.
        fractions: ``n x k`` atomic fractions (rows sum to 1; padding 0).

    Returns:
        ``n x (6 p + 6)`` float32 array, columns as ``descriptor_names()``.
    """
    table = element_property_table().values
    present = fractions > 0  # n x k
    values = table[indices]  # n x k x p
    weights = fractions[..., None]  # n x k x 1
    mean = (weights * values).sum(axis=1)  # n x p
    avg_dev = (weights * np.abs(values - mean[:, None, :])).sum(axis=1)
    minimum = np.where(present[..., None], values, np.inf).min(axis=1)
    maximum = np.where(present[..., None], values, -np.inf).max(axis=1)
    # Mode: property of the most abundant element; among equally abundant elements, the smallest value.
    is_top = np.isclose(fractions, fractions.max(axis=1, keepdims=True)) & present
    mode = np.where(is_top[..., None], values, np.inf).min(axis=1)
    stats = np.stack([mean, avg_dev, minimum, maximum, maximum - minimum, mode], axis=2)  # n x p x 6
    norms = [present.sum(axis=1).astype(np.float64)]
    norms += [(fractions**p).sum(axis=1) ** (1.0 / p) for p in STOICHIOMETRY_NORMS[1:]]
    return np.concatenate([stats.reshape(len(fractions), -1), np.stack(norms, axis=1)], axis=1).astype(np.float32)


def featurize_compositions(compositions: Sequence[Composition]) -> np.ndarray:
    """Composition descriptors (``n x n_descriptors`` float32) for parsed compositions."""
    return featurize_fractions(*element_fractions(compositions))
