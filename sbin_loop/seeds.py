"""One way of deriving seeds: every random stream of a campaign comes from its master seed and named parts.

Integer parts name a purpose and a round; text parts (a job attempt, a request id) are mixed in through CRC-32. The
result is a 31-bit integer, so it fits every library's seed argument (torch, numpy, BoTorch samplers).
"""

from __future__ import annotations

import zlib

import numpy as np

SELECT, DRAWS, TRAIN, INTERVALS, POOL, SCREEN, TELL_TRAIN = range(7)
"""Purposes mixed into derived seeds so that no two random streams coincide."""


def derive_seed(seed: int, *parts: int | str) -> int:
    """A 31-bit seed derived from ``seed`` and the parts naming its purpose (round, step, job attempt...)."""
    words = [seed, *(part if isinstance(part, int) else zlib.crc32(part.encode()) for part in parts)]
    return int(np.random.SeedSequence(words).generate_state(1)[0] >> 1)


def derived_rng(seed: int, *parts: int | str) -> np.random.Generator:
    """A numpy generator seeded with ``derive_seed(seed, *parts)``."""
    return np.random.default_rng(derive_seed(seed, *parts))
