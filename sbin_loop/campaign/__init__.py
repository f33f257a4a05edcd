"""The persistent campaign: rounds over a store, oracle stages, resume checks, and ask/tell."""

from sbin_loop.campaign.asktell import Campaign
from sbin_loop.campaign.rounds import RoundMachine
from sbin_loop.campaign.summary import RoundSummary
from sbin_loop.campaign.tell import Measurement, MeasurementError, TellReport
from sbin_loop.engine import CampaignError

__all__ = ["Campaign", "CampaignError", "Measurement", "MeasurementError", "RoundMachine", "RoundSummary", "TellReport"]
