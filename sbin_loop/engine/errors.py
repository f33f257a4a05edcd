"""The error a campaign (or its engine) raises when it cannot proceed."""


class CampaignError(RuntimeError):
    """A campaign that cannot proceed; the message says why and what to do."""
