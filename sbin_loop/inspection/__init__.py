"""Inspecting campaigns: DataFrames of rounds, picks, predictions and results; plots; a self-contained HTML report."""

from sbin_loop.inspection.frames import CampaignView, open_view

__all__ = ["CampaignView", "open_view"]
