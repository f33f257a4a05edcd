"""Rebuild ``sbin_loop/data/magpie_elements.csv.gz`` from the Magpie element tables shipped with matminer.

Usage: ``python scripts/build_magpie_table.py`` (needs matminer installed; sbin itself does not). Reads the 22
properties of matminer's ``ElementProperty.from_preset("magpie")`` for Z = 1..118 exactly as matminer's
``MagpieData`` reads them (a line that is not a number, such as ``Missing``, becomes an empty cell) and writes
one row per element. Imputation of empty cells happens when sbin loads the table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matminer.featurizers.composition import ElementProperty
from matminer.utils import data as matminer_data
from pymatgen.core import Element

OUTPUT = Path(__file__).resolve().parents[1] / "sbin_loop" / "data" / "magpie_elements.csv.gz"


def _read_table(path: Path) -> list[float]:
    lines = path.read_text().splitlines()
    values = []
    for z in range(1, 119):
        try:
            values.append(float(lines[z - 1]))
        except (ValueError, IndexError):
            values.append(float("nan"))
    return values


def main() -> None:
    """Write the table."""
    properties = ElementProperty.from_preset("magpie").features
    directory = Path(matminer_data.__file__).parent / "data_files" / "magpie_elementdata"
    frame = pd.DataFrame({"symbol": [Element.from_Z(z).symbol for z in range(1, 119)]})
    for name in properties:
        frame[name] = _read_table(directory / f"{name}.table")
    frame.to_csv(OUTPUT, index=False, compression={"method": "gzip", "mtime": 0})
    print(f"wrote {OUTPUT} ({len(frame)} elements x {len(properties)} properties)")


if __name__ == "__main__":
    main()
