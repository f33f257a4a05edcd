"""The campaign engine without files: fit a surrogate on measured rows, propose a batch, predict intervals.

Names are imported on first use (``sbin_loop.lazy``): ``from sbin_loop.engine.errors import CampaignError`` loads
no model code.
"""

from sbin_loop.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "engine": "Engine Fit Scorer SurrogateFactory",
        "errors": "CampaignError",
        "training": "Structures TrainingInputs",
    },
)
