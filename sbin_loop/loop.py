"""The campaign loop's public names, kept importable from here.

The loop lives in ``sbin_loop.campaign`` (rounds, stages, resume checks, ask/tell) and ``sbin_loop.engine`` (fitting
and proposing in memory); seeds derive in ``sbin_loop.seeds``.
"""

from sbin_loop.campaign import Campaign, CampaignError, RoundSummary
from sbin_loop.seeds import SELECT as _SELECT
from sbin_loop.seeds import derive_seed

__all__ = ["_SELECT", "Campaign", "CampaignError", "RoundSummary", "derive_seed"]
