"""Inspecting campaigns: DataFrames of rounds, picks, predictions and results; plots; a self-contained HTML report."""

from sbin_loop.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {"frames": "CampaignView open_view"})
