"""The campaign engine without files: fit a surrogate on measured rows, propose a batch, predict intervals."""

from sbin_loop.engine.engine import Engine, Fit, Scorer, SurrogateFactory
from sbin_loop.engine.errors import CampaignError
from sbin_loop.engine.training import Structures, TrainingInputs

__all__ = ["CampaignError", "Engine", "Fit", "Scorer", "Structures", "SurrogateFactory", "TrainingInputs"]
