"""Competing phases computed once per element and energy model, kept in the campaign directory.

Each element's phases (its elemental references and, for a cation, its binary-oxide prototypes) are one JSON file
``<element>.json`` in a directory named after the energy model and its relaxation settings, so that every candidate
sharing the element reuses them. Files are written atomically; a file that does not parse as a list of
``CompetingPhase`` (truncated, edited, from another version) is ignored and recomputed, never trusted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from sbin_loop.safe_files import UnsafeEntry, open_directory, read_regular, write_file
from sbin_loop.workflows.chempots import CompetingPhase

_MAX_BYTES = 1 << 20


class PhaseCache:
    """Competing phases per element, in ``directory`` (created when first written).

    Args:
        directory: Cache directory of one energy model and relaxation setting.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(*parts: object) -> str:
        """A directory name from an energy model's settings (characters outside ``[A-Za-z0-9_.-]`` become ``_``)."""
        return re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(str(part) for part in parts))

    def load(self, elements: Iterable[str]) -> list[CompetingPhase]:
        """The cached phases of ``elements`` (an element without a valid file contributes none)."""
        phases: list[CompetingPhase] = []
        try:
            with open_directory(self.directory) as directory:
                for element in elements:
                    phases += self._read(directory, element)
        except (FileNotFoundError, UnsafeEntry):
            return []
        return phases

    def store(self, phases: Iterable[CompetingPhase]) -> None:
        """Write the phases of every element they cover (an element's file is replaced as a whole)."""
        by_element: dict[str, list[CompetingPhase]] = {}
        for phase in phases:
            by_element.setdefault(phase.element, []).append(phase)
        if not by_element:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with open_directory(self.directory) as directory:
            for element, members in by_element.items():
                data = json.dumps([phase.model_dump(mode="json") for phase in members], indent=1).encode()
                write_file(directory, f"{element}.json", data)

    @staticmethod
    def _read(directory: int, element: str) -> list[CompetingPhase]:
        try:
            rows = json.loads(read_regular(directory, f"{element}.json", _MAX_BYTES))
            phases = [CompetingPhase.model_validate(row) for row in rows]
        except (OSError, UnsafeEntry, ValueError, TypeError, ValidationError):
            return []
        return [phase for phase in phases if phase.element == element]
