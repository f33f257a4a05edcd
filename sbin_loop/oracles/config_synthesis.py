"""Settings of the synthesis oracle: its conditions and its lab, a file queue or a simulated lab."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import Discriminator, Field, field_validator

from sbin_loop import limits
from sbin_loop.config_base import Section, kind_or, tagged
from sbin_loop.oracles.config_base import OracleBase


class SynthesisConditions(Section):
    """Conditions a synthesis request asks for.

    Attributes:
        temperature_C: Firing temperature.
        dwell_hours: Time at temperature.
        atmosphere: Furnace atmosphere.
        batch_mmol: Amount of product per request, in millimoles of formula units.
    """

    temperature_C: float = Field(default=1000.0, gt=0)
    dwell_hours: float = Field(default=12.0, gt=0)
    atmosphere: str = "air"
    batch_mmol: float = Field(default=5.0, gt=0)


CAMPAIGN_ENTRIES = frozenset(
    {
        "campaign.json",
        "checkpoints",
        "daemon.out",
        "forcefield",
        "oracle",
        "pool",
        "report.html",
        "sbin.lock",
        "sbin.log",
        "store",
        "vasp",
    }
)
"""Entries of a campaign directory that sbin writes itself; a lab's queue directory may be none of them, nor inside."""


def queue_directory_problem(parts: tuple[str, ...]) -> str | None:
    """Why a directory (its path components, relative to the campaign directory) cannot be a lab's queue, or None.

    A lab writes into its queue directories and sbin moves what it finds there, so a queue must be a directory of its
    own: not the campaign directory, not above it, and not one of (or inside) the campaign's own entries.
    """
    if not parts:
        return "is the campaign directory itself; name a directory inside it (e.g. synthesis/inbox)"
    if ".." in parts:
        return "has a '..' component; name a directory inside the campaign directory"
    top = parts[0]
    if top in CAMPAIGN_ENTRIES or top.startswith("sbin.log."):
        return f"is (or is inside) the campaign's own {top!r}; give the lab a directory of its own (synthesis/inbox)"
    return None


class FileQueueConfig(Section):
    """A lab served through directories: requests written to ``outbox``, results read from ``inbox``.

    The files, their schema and what survives a restart: ``sbin_loop.oracles.file_queue`` and the README.

    Attributes:
        kind: Discriminator, ``file_queue``.
        outbox: Directory requests are written to, relative to the campaign directory and inside it.
        inbox: Directory results are read from, relative to the campaign directory and inside it.
    """

    kind: Literal["file_queue"] = "file_queue"
    outbox: str = "synthesis/outbox"
    inbox: str = "synthesis/inbox"

    @field_validator("outbox", "inbox")
    @classmethod
    def _inside_the_campaign(cls, value: str) -> str:
        if PurePosixPath(value).is_absolute() or value.startswith("~"):
            raise ValueError(f"{value!r} must be relative to the campaign directory, not absolute")
        problem = queue_directory_problem(PurePosixPath(value).parts)
        if problem is not None:
            raise ValueError(f"{value!r} {problem}")
        return value

    @property
    def parts(self) -> dict[str, tuple[str, ...]]:
        """Path components of ``outbox`` and ``inbox``, by field."""
        return {"outbox": PurePosixPath(self.outbox).parts, "inbox": PurePosixPath(self.inbox).parts}


class SimulatedLabConfig(Section):
    """A simulated lab replaying a table with noise, delays and failures (for tests and rehearsals).

    Attributes:
        kind: Discriminator, ``simulated``.
        source: Table replayed (as the pool's ``source``); the pool's source if not given.
        formula_column: Formula column of that table.
        noise_std: Standard deviation of Gaussian noise added to each measured value.
        delay_seconds: Range of the uniform random delay before a result arrives.
        failure_rate: Probability that a synthesis fails.
        seed: Seed of noise, delays and failures (combined with each request's id).
    """

    kind: Literal["simulated"] = "simulated"
    source: str | None = None
    formula_column: str = "formula"
    noise_std: float = Field(default=0.0, ge=0)
    delay_seconds: tuple[float, float] = (0.0, 0.0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int = Field(default=0, ge=0, le=limits.MAX_SEED)


class SynthesisOracleConfig(OracleBase):
    """Robot (or human) synthesis and measurement.

    Attributes:
        kind: Discriminator, ``synthesis``.
        backend: Where requests go and results come from.
        conditions: Synthesis conditions sent with every request.
        values: Objective name -> measured quantity (``Tc_K``, ``phase_purity``); same-named ones need no mapping.
    """

    kind: Literal["synthesis"] = "synthesis"
    backend: Annotated[
        tagged(FileQueueConfig, "file_queue") | tagged(SimulatedLabConfig, "simulated"),
        Discriminator(kind_or("file_queue")),
    ] = FileQueueConfig()
    conditions: SynthesisConditions = SynthesisConditions()
    values: dict[str, str] = Field(default_factory=dict)
