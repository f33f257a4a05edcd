"""``benchmarks/scale.py --campaign-round``: one round through the loop's pool, screening and selection code."""

from benchmarks.scale import SPACE, campaign_round
from sbin_loop.space import PerovskiteSpace


def test_a_campaign_round_on_a_small_pool_trains_screens_and_picks_one_of_its_candidates():
    round_ = campaign_round(PerovskiteSpace(SPACE), 3000, 16, fractions=True)
    assert round_["n_candidates"] == 3000 and 0 < round_["shortlist"] <= 3000
    assert isinstance(round_["top_pick"], str) and round_["top_pick"]
    assert all(round_[f"{stage}_seconds"] >= 0 for stage in ("pool", "train", "screen", "select"))
