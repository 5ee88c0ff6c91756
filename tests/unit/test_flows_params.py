"""A stage's `--set` overrides change the candidate, never the release policy that
judges it (gates.stage.POLICY_SECTIONS)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.params import CompareParams, ReleaseParams, SoakParams, StageParams

OWN = ("strategy.min_half_spread_bps=0.3", "risk.max_inventory_usd=20000", "run.duration=5m")


@pytest.mark.parametrize(
    "override",
    ["sim.entry_latency_ms=0", "fees.tiers.mm1.maker_bps=-3", "gates.kpi.fills.fail=0",
     "promote.auto_approve=true", " venue.symbols.BTCUSDT.tick_size=0.01",
     "tuning.grid_points=1", "soak.auto_tune=false", "canary.fraction=1"],
)  # fmt: skip
@pytest.mark.parametrize("params", [StageParams, CompareParams, SoakParams, ReleaseParams])
def test_a_candidate_cannot_override_the_release_policy(
    params: type[StageParams], override: str
) -> None:
    with pytest.raises(ValidationError, match="cannot set the release policy") as caught:
        params(overrides=(*OWN, override))
    assert override.strip() in str(caught.value)  # names the one it refused
    assert "strategy.min_half_spread_bps" not in str(caught.value)


def test_a_candidate_keeps_its_own_settings() -> None:
    assert CompareParams(overrides=OWN).overrides == OWN
