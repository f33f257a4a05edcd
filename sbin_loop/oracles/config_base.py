"""Settings every oracle section shares: which picks it evaluates, retries, polling and timeouts."""

from __future__ import annotations

from pydantic import Field

from sbin_loop import limits
from sbin_loop.config_base import Section


class OracleSelection(Section):
    """Which picks of a round an oracle stage evaluates: all of them, or the best few.

    A later stage only sees the picks whose job in the stage before it completed (failed picks are never promoted).
    They are ranked in the direction of the ``rank_by`` objective's goal by the latest value an earlier stage of the
    round measured for it, else by the model's predicted mean stored with the pick; picks with neither (random picks
    of round 0 before anything measured ``rank_by``) come last. Ties keep pick order.

    Attributes:
        top_k: Evaluate only the ``top_k`` best-ranked picks; ``None`` for every pick the previous stage completed.
        rank_by: Objective that ranks the picks; the policy objective if not given.
    """

    top_k: int | None = Field(default=None, gt=0, le=limits.MAX_COUNT)
    rank_by: str | None = None


class OracleBase(Section):
    """Settings every oracle shares.

    Attributes:
        max_attempts: How often a failed job is tried before it is recorded as failed for good.
        poll_seconds: Pause between polls of jobs that are still running.
        timeout_seconds: A job attempt running longer than this fails with a timeout (and may be retried).
        select: Which picks of a round this oracle evaluates.
    """

    max_attempts: int = Field(default=2, gt=0, le=limits.MAX_MEMBERS)
    poll_seconds: float = Field(default=1.0, gt=0, le=limits.MAX_POLL_SECONDS)
    timeout_seconds: float = Field(default=86400.0, gt=0, le=limits.MAX_SECONDS)
    select: OracleSelection = OracleSelection()
