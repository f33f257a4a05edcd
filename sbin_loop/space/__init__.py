"""Candidate spaces: dataset pools of formulas and enumerated perovskite spaces, streamed in chunks."""

from sbin_loop.lazy import lazy_exports

_HOMES = {
    "CandidateChunk": "chunks",
    "CandidateSpace": "spaces",
    "DataSourceError": "pool",
    "FormulaTable": "pool",
    "InvalidFormulaError": "pool",
    "MAX_FORMULA_LENGTH": "pool",
    "PerovskiteSpace": "perovskite",
    "PoolSpace": "spaces",
    "RejectedRow": "pool",
    "SpaceSummary": "summary",
    "candidate_id": "pool",
    "canonical_formulas": "formula",
    "formula_fractions": "formula",
    "open_space": "spaces",
    "parse_formula": "pool",
    "read_formula_table": "pool",
    "rechunk": "chunks",
    "resolve_source": "pool",
    "sample_rows": "pool",
    "summarize_space": "summary",
}
"""Public names, by the module they are defined in (imported on first use)."""

__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
