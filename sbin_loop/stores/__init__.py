"""Campaign stores: typed documents on interchangeable maggma backends (MontyStore embedded, MongoDB by URI)."""

from sbin_loop.stores.campaign_store import CampaignStore, StoreError, open_backend
from sbin_loop.stores.documents import (
    SCHEMA_VERSION,
    CampaignDoc,
    CandidateInterval,
    JobDoc,
    ResultDoc,
    RoundDoc,
    SelectionEntry,
    merged_values,
)

__all__ = [
    "SCHEMA_VERSION",
    "CampaignDoc",
    "CampaignStore",
    "CandidateInterval",
    "JobDoc",
    "ResultDoc",
    "RoundDoc",
    "SelectionEntry",
    "StoreError",
    "merged_values",
    "open_backend",
]
