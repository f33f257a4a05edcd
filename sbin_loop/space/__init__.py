"""Candidate spaces: dataset pools of formulas and enumerated perovskite spaces, streamed in chunks."""

from sbin_loop.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "chunks": "CandidateChunk rechunk",
        "formula": "canonical_formulas formula_fractions",
        "perovskite": "PerovskiteSpace",
        "pool": (
            "DataSourceError FormulaTable InvalidFormulaError MAX_FORMULA_LENGTH RejectedRow candidate_id "
            "parse_formula read_formula_table resolve_source sample_rows"
        ),
        "spaces": "CandidateSpace PoolSpace open_space",
        "summary": "SpaceSummary summarize_space",
    },
)
