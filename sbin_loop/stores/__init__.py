"""Campaign stores: typed documents on interchangeable maggma backends (MontyStore embedded, MongoDB by URI)."""

from sbin_loop.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "campaign_store": "CampaignStore StoreError open_backend",
        "documents": (
            "CampaignDoc CandidateInterval JobDoc ResultDoc RoundDoc SCHEMA_VERSION SelectionEntry merged_values"
        ),
    },
)
