"""Upper bounds on config values and error messages: none that a real campaign reaches.

They turn a typo such as ``rounds: 1e20`` into an error naming the field instead of an overflow, a hang, or an
allocation that cannot succeed, and keep an error message about a huge value short.
"""

MAX_SEED = 2**32 - 1
"""Largest seed (numpy and torch both take 32-bit seeds; the store keeps 64-bit integers)."""
MAX_COUNT = 10**9
"""Largest count of candidates, rows, picks or evaluations."""
MAX_ROUNDS = 100_000
MAX_STEPS = 10**8
"""Largest count of optimiser steps, epochs or MD/SQS steps."""
MAX_DRAWS = 100_000
"""Largest count of posterior draws."""
MAX_MEMBERS = 1000
"""Largest ensemble, fold count or retry count."""
MAX_THREADS = 1024
MAX_WIDTH = 4096
"""Widest hidden layer."""
MAX_LAYERS = 32
MAX_ATOMS = 100_000
MAX_BINS = 10_000
MAX_SECONDS = 10**9
MAX_POLL_SECONDS = 3600.0
MAX_HOURS = 10**6
MAX_NAME_LENGTH = 100
"""Longest campaign name: it is a directory name, and file systems refuse components past 255 bytes."""
MAX_ERROR_VALUE = 80
"""Longest rendering of an offending value in an error message; longer ones are cut with ``...``."""
MAX_ERROR_LINES = 20
"""Most invalid fields listed in one error message."""
