"""Candidate spaces: dataset pools of formulas and enumerated perovskite spaces, streamed in chunks."""

from sbin_loop.space.chunks import CandidateChunk, rechunk
from sbin_loop.space.formula import canonical_formulas, formula_fractions
from sbin_loop.space.perovskite import PerovskiteSpace
from sbin_loop.space.pool import (
    MAX_FORMULA_LENGTH,
    DataSourceError,
    FormulaTable,
    InvalidFormulaError,
    RejectedRow,
    candidate_id,
    parse_formula,
    read_formula_table,
    resolve_source,
    sample_rows,
)
from sbin_loop.space.spaces import CandidateSpace, PoolSpace, open_space
from sbin_loop.space.summary import SpaceSummary, summarize_space

__all__ = [
    "MAX_FORMULA_LENGTH",
    "CandidateChunk",
    "CandidateSpace",
    "DataSourceError",
    "FormulaTable",
    "InvalidFormulaError",
    "PerovskiteSpace",
    "PoolSpace",
    "RejectedRow",
    "SpaceSummary",
    "candidate_id",
    "canonical_formulas",
    "formula_fractions",
    "open_space",
    "parse_formula",
    "read_formula_table",
    "rechunk",
    "resolve_source",
    "sample_rows",
    "summarize_space",
]
