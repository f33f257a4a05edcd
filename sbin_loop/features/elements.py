"""The element-property table behind the composition descriptors: Magpie's elemental data for Z = 1..118.

The table is shipped in ``sbin_loop/data/magpie_elements.csv.gz`` (provenance in ``PROVENANCE.md``). Missing
values are imputed with the property's mean over the elements that have one, as matminer's ``MagpieData``
does, so sbin's descriptors equal matminer's ``ElementProperty.from_preset("magpie")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from sbin_loop.data import bundled_path
from sbin_loop.space.formula import MAX_Z


@dataclass(frozen=True)
class ElementPropertyTable:
    """Elemental properties for Z = 1..``MAX_Z`` (row ``Z - 1``).

    Attributes:
        names: Property names (columns), as in matminer's Magpie preset.
        values: ``MAX_Z x p`` float64 array, missing values imputed.
        imputed: ``(symbol, property)`` pairs that were imputed, so the choice is inspectable.

    """

    names: tuple[str, ...]
    values: np.ndarray
    imputed: tuple[tuple[str, str], ...]


@cache
def element_property_table() -> ElementPropertyTable:
    """Load (once per process) the Magpie element-property table, imputing missing values by column means."""
    frame = pd.read_csv(bundled_path("magpie_elements"))
    if len(frame) != MAX_Z:
        raise RuntimeError(f"magpie_elements table has {len(frame)} rows, expected {MAX_Z}")
    names = tuple(column for column in frame.columns if column != "symbol")
    values = frame[list(names)].to_numpy(dtype=np.float64, copy=True)
    missing = np.isnan(values)
    values = np.where(missing, np.nanmean(values, axis=0), values)
    imputed = tuple(
        (str(frame["symbol"].iat[row]), names[column]) for row, column in zip(*np.nonzero(missing), strict=True)
    )
    return ElementPropertyTable(names, values, imputed)
