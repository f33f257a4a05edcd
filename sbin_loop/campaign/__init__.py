"""The persistent campaign: rounds over a store, oracle stages, resume checks, and ask/tell.

Names are imported on first use (``sbin_loop.lazy``), so a command that only reads a campaign's status or reports
an error does not load torch.
"""

from sbin_loop.engine.errors import CampaignError as CampaignError
from sbin_loop.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "asktell": "Campaign",
        "rounds": "RoundMachine",
        "summary": "RoundSummary",
        "tell": "Measurement MeasurementError TellReport",
    },
)
__all__ = sorted([*__all__, "CampaignError"])
