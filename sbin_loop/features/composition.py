"""Vectorised Magpie composition descriptors.

Each composition is turned into padded arrays of element rows and atomic fractions (``n x k``); descriptors
are then computed for all compositions at once by gathering rows of the element-property table (``n x k x p``)
and reducing over the ``k`` elements: minimum, maximum, range, fraction-weighted mean, average deviation and
mode (the value of the most abundant element, the smallest on ties), as matminer's
``ElementProperty.from_preset("magpie")`` (Ward et al., npj Comput. Mater. 2, 16028 (2016)), followed by the
stoichiometric p-norms of matminer's ``Stoichiometry``.

The same padded arrays give the element-fraction vector (``fraction_vector``: the atomic fraction of every element,
ElemNet's input, Jha et al., Sci. Rep. 8, 17593 (2018)), which ``composition_inputs`` appends to the descriptors when
a campaign (``features.element_fractions``) or ``sbin model train`` asks for it (both do by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymatgen.core import Composition, Element

from sbin_loop.features.elements import element_property_table
from sbin_loop.space.formula import MAX_Z, formula_fractions

STATISTICS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
"""Statistics per property, in matminer's order."""

STOICHIOMETRY_NORMS = (0, 2, 3, 5, 7, 10)
"""p of the stoichiometric p-norms (0: number of elements)."""


def descriptor_names() -> list[str]:
    """Names of the columns of ``featurize_fractions``, in order (matminer's labels without prefix)."""
    table = element_property_table()
    names = [f"{statistic} {name}" for name in table.names for statistic in STATISTICS]
    return names + [f"{norm}-norm" for norm in STOICHIOMETRY_NORMS]


def fraction_names() -> list[str]:
    """Names of the columns of ``fraction_vector``: ``fraction <symbol>`` for Z = 1 .. ``MAX_Z``."""
    return [f"fraction {Element.from_Z(z).symbol}" for z in range(1, MAX_Z + 1)]


def fraction_columns(names: Sequence[str]) -> tuple[int, ...]:
    """Positions of the element-fraction columns (``fraction_names``) among input ``names``."""
    fractions = set(fraction_names())
    return tuple(index for index, name in enumerate(names) if name in fractions)


def composition_input_names(with_fractions: bool = False) -> list[str]:
    """Names of the columns of ``composition_inputs``: the descriptors, then the element fractions if asked for."""
    return [*descriptor_names(), *(fraction_names() if with_fractions else [])]


def element_fractions(compositions: Sequence[Composition]) -> tuple[np.ndarray, np.ndarray]:
    """Return padded element rows (``Z - 1``) and atomic fractions of parsed compositions.

    Args:
        compositions: Parsed compositions of real elements.

    Returns:
        ``(indices, fractions)``, both ``n x k`` with ``k`` the largest number of elements; padding has
        fraction 0 and index 0.

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


def featurize_fractions(indices: np.ndarray, fractions: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """Composition descriptors from padded element rows and fractions.

    Padding slots are pointed at the composition's first element, which leaves minimum and maximum unchanged
    and contributes nothing to weighted sums (its fraction is 0), so every statistic is a plain reduction.

    Args:
        indices: ``n x k`` element rows of the property table.
        fractions: ``n x k`` atomic fractions (rows sum to 1; padding 0; column 0 present).
        dtype: Output dtype (float32 for models; float64 to compare with other implementations).

    Returns:
        ``n x (6 p + 6)`` array, columns as ``descriptor_names()``.

    """
    table = element_property_table().values
    present = fractions > 0
    filled = np.where(present, indices, indices[:, :1])
    values = table[filled]  # n x k x p
    mean = np.einsum("nk,nkp->np", fractions, values)
    avg_dev = np.einsum("nk,nkp->np", fractions, np.abs(values - mean[:, None, :]))
    minimum = values.min(axis=1)
    maximum = values.max(axis=1)
    # Mode: property of the most abundant element; among equally abundant elements, the smallest value.
    is_top = np.isclose(fractions, fractions.max(axis=1, keepdims=True)) & present
    top = np.take_along_axis(indices, fractions.argmax(axis=1)[:, None], axis=1)
    mode = table[np.where(is_top, indices, top)].min(axis=1)
    stats = np.stack([minimum, maximum, maximum - minimum, mean, avg_dev, mode], axis=2)  # n x p x 6
    norms = [present.sum(axis=1).astype(np.float64)]
    norms += [(fractions**p).sum(axis=1) ** (1.0 / p) for p in STOICHIOMETRY_NORMS[1:]]
    return np.concatenate([stats.reshape(len(fractions), -1), np.stack(norms, axis=1)], axis=1).astype(dtype)


def fraction_vector(indices: np.ndarray, fractions: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """``n x MAX_Z`` atomic fractions, column ``Z - 1`` for element ``Z``, from padded element rows and fractions.

    A scatter of each row's fractions into its element columns; padding (fraction 0) adds nothing, and an element
    listed twice in a row gets the sum of its fractions.

    Args:
        indices: ``n x k`` element rows (``Z - 1``), any integer dtype.
        fractions: ``n x k`` atomic fractions.
        dtype: Output dtype.
    """
    n = len(indices)
    flat = (np.arange(n, dtype=np.int64)[:, None] * MAX_Z + indices.astype(np.int64)).ravel()
    summed = np.bincount(flat, weights=np.asarray(fractions, dtype=np.float64).ravel(), minlength=n * MAX_Z)
    return summed.reshape(n, MAX_Z).astype(dtype)


def composition_inputs(indices: np.ndarray, fractions: np.ndarray, with_fractions: bool = False) -> np.ndarray:
    """``n x d`` float32 model inputs of compositions: ``featurize_fractions``, then ``fraction_vector`` if asked.

    Columns as ``composition_input_names(with_fractions)``. Every path that builds a candidate's composition inputs
    (table pools, enumerated chunks, ``sbin model train/predict``) calls this.
    """
    descriptors = featurize_fractions(indices, fractions)
    if not with_fractions:
        return descriptors
    return np.concatenate([descriptors, fraction_vector(indices, fractions)], axis=1)


def featurize_compositions(compositions: Sequence[Composition]) -> np.ndarray:
    """Composition descriptors (``n x n_descriptors`` float32) for parsed compositions."""
    return featurize_fractions(*element_fractions(compositions))


def featurize_formulas(formulas: Sequence[str]) -> np.ndarray:
    """Composition descriptors (``n x n_descriptors`` float32) straight from formula strings (fast parser)."""
    return featurize_fractions(*formula_fractions(formulas))
