"""Campaign stores: typed documents on interchangeable maggma backends (MontyStore embedded, MongoDB by URI)."""

from sbin_loop.lazy import lazy_exports

_HOMES = {
    "CampaignDoc": "documents",
    "CampaignStore": "campaign_store",
    "CandidateInterval": "documents",
    "JobDoc": "documents",
    "ResultDoc": "documents",
    "RoundDoc": "documents",
    "SCHEMA_VERSION": "documents",
    "SelectionEntry": "documents",
    "StoreError": "campaign_store",
    "merged_values": "documents",
    "open_backend": "campaign_store",
}
"""Public names, by the module they are defined in (imported on first use)."""

__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
