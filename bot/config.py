"""The pydantic schema of every setting.

One model tree; every model forbids unknown keys so a typo is an error.
Money is in quote currency (USD for USDT pairs), rates in basis points,
durations in milliseconds unless the name says otherwise. Rules across fields
live on the models (InconsistentSettings), so a Settings built by hand obeys
them too. Loading profiles, env and `--set` into this tree is `bot/profiles.py`.
"""

from __future__ import annotations

import difflib
import itertools
import types
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from bot.model import Instrument
from bot.runtime.clock import parse_duration

SECRET_MASK: Final = "**********"
# renewals a lease must fit in its ttl (StateConfig): a late poll or two must not lose it
LEASE_POLLS: Final = 3

# Every KPI gates/kpi.py computes: the only keys a `gates.kpi` bound may name.
KPI_NAMES: Final = (
    "gross_bps",
    "fee_bps",
    "adverse_bps",
    "net_bps",
    "adverse_p95_bps",
    "maker_share",
    "fills",
    "turnover_usd",
    "pnl_usd",
    "max_drawdown_usd",
    "inventory_ratio_p95",
    "order_latency_p95_ms",
    "cancel_ratio",
    "quote_uptime",
    "freezes",
    "adverse_5s_bps",
    "net_5s_bps",
)
# Columns of the per-interval series: what canary metrics and rollback triggers read.
SERIES_NAMES: Final = (
    "net_bps",
    "maker_share",
    "fills",
    "order_latency_ms",
    "inventory_ratio",
    "pnl_usd",
    "turnover_usd",
    "error_rate",
)


class InconsistentSettings(ValueError):
    """A rule across fields broke. `path` is relative to the model that checked it;
    `related` names the other fields of the rule, so the loader can blame the file
    that set the latest of them."""

    def __init__(
        self,
        path: tuple[str, ...],
        message: str,
        related: tuple[tuple[str, ...], ...] = (),
        suggestion: tuple[str, ...] | str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.related = related
        # A tuple is a key path relative to the model (the loader prefixes where the
        # model sits); a str is a value to suggest as it is.
        self.suggestion = suggestion


def _closest(name: str, known: Sequence[str]) -> str | None:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return match[0] if match else None


def _check_names(
    names: Sequence[str], known: Sequence[str], where: tuple[str, ...], what: str
) -> None:
    """A name outside `known` would be judged as missing (or never judged): refuse it."""
    for name in names:
        if name not in known:
            close = _closest(name, known)
            raise InconsistentSettings(
                (*where, name),
                f"unknown {what} {name!r}; known: {', '.join(known)}",
                suggestion=(*where, close) if close else None,
            )


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SymbolSpec(Section):
    """Venue rules for one symbol."""

    tick_size: Decimal = Field(gt=0)
    lot_size: Decimal = Field(gt=0)
    min_qty: Decimal = Field(ge=0)
    min_notional: Decimal = Field(ge=0)


def _default_symbols() -> dict[str, SymbolSpec]:
    return {
        "BTCUSDT": SymbolSpec(
            tick_size=Decimal("0.1"),
            lot_size=Decimal("0.001"),
            min_qty=Decimal("0.001"),
            min_notional=Decimal("5"),
        )
    }


class VenueConfig(Section):
    name: str = "bybit"
    category: Literal["linear", "inverse", "spot"] = "linear"
    symbols: dict[str, SymbolSpec] = Field(default_factory=_default_symbols, min_length=1)
    testnet: bool = False


class StrategyConfig(Section):
    fair_value: Literal["mid", "microprice"] = "microprice"
    order_qty: Decimal = Field(default=Decimal("0.01"), gt=0, description="base units per level")
    levels: int = Field(default=1, ge=1, le=20)
    level_spacing_bps: float = Field(default=1.0, ge=0)
    min_half_spread_bps: float = Field(default=1.0, ge=0)
    vol_window_ms: int = Field(default=60_000, gt=0)
    vol_multiplier: float = Field(default=1.0, ge=0)
    min_edge_bps: float = Field(
        default=0.5, description="spread + rebate - expected adverse, per quote"
    )
    expected_adverse_bps: float = Field(default=1.0, ge=0)
    skew_model: Literal["linear", "avellaneda_stoikov"] = "linear"
    skew_bps_per_inventory: float = Field(
        default=5.0, ge=0, description="bps per full max_inventory"
    )
    risk_aversion: float = Field(default=0.1, ge=0, description="Avellaneda-Stoikov gamma")
    skew_cap_bps: float = Field(default=10.0, ge=0)
    target_inventory: Decimal = Decimal("0")
    requote_threshold_bps: float = Field(default=0.5, ge=0)
    max_quote_age_ms: int = Field(default=5_000, gt=0)
    min_interval_ms: int = Field(default=50, ge=0)
    max_quote_distance_bps: float = Field(default=10.0, gt=0, description="for quote_uptime")
    post_only: bool = True


class RiskConfig(Section):
    max_order_qty: Decimal = Field(default=Decimal("0.1"), gt=0)
    max_order_notional: float = Field(default=10_000.0, gt=0)
    max_inventory_usd: float = Field(default=20_000.0, gt=0, description="per symbol")
    max_total_inventory_usd: float = Field(default=50_000.0, gt=0)
    price_band_bps: float = Field(default=50.0, gt=0)
    max_open_orders: int = Field(default=20, gt=0)
    max_orders_per_s: float = Field(default=20.0, gt=0)
    max_cancels_per_s: float = Field(default=20.0, gt=0)
    daily_loss_limit_usd: float = Field(default=1_000.0, gt=0)
    max_drawdown_usd: float = Field(default=1_500.0, gt=0)
    stale_data_ms: int = Field(default=5_000, gt=0)
    reject_rate_max: float = Field(default=0.2, gt=0, le=1)
    reject_window: int = Field(default=50, gt=0, description="orders")
    edge_freeze_bps: float = 1.5
    edge_window_fills: int = Field(default=100, gt=0)
    edge_horizon_ms: int = Field(default=1_000, gt=0)
    freeze_cooldown_ms: int | None = Field(default=60_000, description="None: manual unfreeze only")
    reduce_only_inventory_ratio: float = Field(default=0.8, gt=0, le=1)

    @model_validator(mode="after")
    def _total_covers_symbol(self) -> RiskConfig:
        if self.max_total_inventory_usd < self.max_inventory_usd:
            raise InconsistentSettings(
                ("max_total_inventory_usd",),
                f"max_total_inventory_usd {self.max_total_inventory_usd} is below the per-symbol "
                f"max_inventory_usd {self.max_inventory_usd}",
                (("max_inventory_usd",),),
            )
        return self


class FeeTier(Section):
    maker_bps: float = Field(description="negative: a rebate")
    taker_bps: float


def _default_fee_tiers() -> dict[str, FeeTier]:
    return {
        "vip0": FeeTier(maker_bps=2.0, taker_bps=5.5),
        "mm1": FeeTier(maker_bps=-0.5, taker_bps=3.0),
        "mm2": FeeTier(maker_bps=-0.75, taker_bps=2.5),
        "mm3": FeeTier(maker_bps=-1.0, taker_bps=2.0),
    }


class FeeConfig(Section):
    tier: str = "mm1"
    tiers: dict[str, FeeTier] = Field(default_factory=_default_fee_tiers, min_length=1)

    @model_validator(mode="after")
    def _tier_is_known(self) -> FeeConfig:
        if self.tier not in self.tiers:
            raise InconsistentSettings(
                ("tier",),
                f"fee tier {self.tier!r} is not one of the tiers {sorted(self.tiers)}",
                (("tiers",),),
            )
        return self


class FaultConfig(Section):
    """Seeded fault injection in the simulated venue; probabilities per message."""

    reject_prob: float = Field(default=0.0, ge=0, le=1)
    timeout_prob: float = Field(default=0.0, ge=0, le=1)
    duplicate_prob: float = Field(default=0.0, ge=0, le=1)
    reorder_prob: float = Field(default=0.0, ge=0, le=1)
    delay_ms: int = Field(default=0, ge=0)
    stale_book_prob: float = Field(default=0.0, ge=0, le=1)
    crossed_book_prob: float = Field(default=0.0, ge=0, le=1)
    disconnect_prob: float = Field(default=0.0, ge=0, le=1)


class SimConfig(Section):
    entry_latency_ms: float = Field(default=20.0, ge=0)
    response_latency_ms: float = Field(default=10.0, ge=0)
    cancel_latency_ms: float = Field(default=20.0, ge=0)
    latency_jitter_ms: float = Field(default=5.0, ge=0)
    # exchange -> bot latency of the fastest market row: the part of the smallest
    # ts_local - ts_exch gap that is not clock offset (bot/market/clocks.py)
    feed_latency_ms: float = Field(default=0.0, ge=0)
    queue_model: Literal["risk_averse", "probabilistic"] = "risk_averse"
    queue_power: float = Field(default=3.0, gt=0)
    partial_fills: bool = True
    faults: FaultConfig = FaultConfig()


class SynthConfig(Section):
    symbol: str = "BTCUSDT"
    start: str = "2024-08-08T00:00:00Z"
    duration: str = "1h"
    initial_mid: float = Field(default=60_000.0, gt=0)
    # the real Binance BTCUSDT capture of 2024-08-08: 1 292 book rows/s, 62 trades/s
    book_rate_hz: float = Field(default=1_300.0, gt=0)
    trade_rate_hz: float = Field(default=60.0, gt=0)
    depth_levels: int = Field(default=20, ge=20)
    annual_vol: float = Field(default=0.6, gt=0)
    jump_rate_per_h: float = Field(default=0.5, ge=0)
    toxic_burst_rate_per_h: float = Field(default=1.0, ge=0)


class ValidationConfig(Section):
    on_error: Literal["raise", "skip"] = "raise"
    max_gap_ms: int = Field(default=60_000, gt=0)


class DataConfig(Section):
    source: Literal["synth", "replay", "live"] = "synth"
    path: str | None = None
    format: Literal["auto", "parquet", "tardis", "bybit"] = "auto"
    chunk_rows: int = Field(default=262_144, gt=0)
    synth: SynthConfig = SynthConfig()
    validation: ValidationConfig = ValidationConfig()


class Bound(Section):
    """A gate threshold: `direction` says which way is bad."""

    warn: float
    fail: float
    direction: Literal["min", "max"] = Field(description="min: value below bound is bad")

    @model_validator(mode="after")
    def _warn_before_fail(self) -> Bound:
        # WARN must trip first: for "min" the warn bound sits above fail, for "max" below.
        looser = self.warn < self.fail if self.direction == "min" else self.warn > self.fail
        if looser:
            must = ">=" if self.direction == "min" else "<="
            raise InconsistentSettings(
                ("warn",),
                f"warn {self.warn} is looser than fail {self.fail} "
                f"(direction {self.direction!r} needs warn {must} fail)",
                (("fail",), ("direction",)),
            )
        return self


def _default_kpi_bounds() -> dict[str, Bound]:
    # net_bps is judged per fee tier (GateConfig.net_bps_by_tier); the floors on fills
    # and quote_uptime fail a bot that barely trades or barely quotes, whatever its edge.
    return {
        "fills": Bound(warn=50, fail=20, direction="min"),
        "quote_uptime": Bound(warn=0.50, fail=0.25, direction="min"),
        "maker_share": Bound(warn=0.90, fail=0.85, direction="min"),
        "order_latency_p95_ms": Bound(warn=350, fail=400, direction="max"),
        "inventory_ratio_p95": Bound(warn=0.40, fail=0.50, direction="max"),
        "adverse_p95_bps": Bound(warn=4, fail=6, direction="max"),
        "cancel_ratio": Bound(warn=0.55, fail=0.70, direction="max"),
    }


def _default_net_bounds() -> dict[str, Bound]:
    # A rebate maker's net edge is its rebate plus the spread it keeps (~0.01 bps on a
    # one-tick book) minus adverse selection (the touch's 1 s markout is ~0.7 bps), so
    # the bounds follow the tier: FAIL below 0 (the fills lose money after fees and the
    # 1 s markout), WARN below a tenth of the tier's maker rebate (so close to break-even
    # that a handful of fills flips the sign; half the rebate asked for a forecasting
    # edge). A paying tier (vip0) must earn its fee back: WARN below 0.5 bps.
    return {
        "vip0": Bound(warn=0.5, fail=0.0, direction="min"),
        "mm1": Bound(warn=0.05, fail=0.0, direction="min"),
        "mm2": Bound(warn=0.075, fail=0.0, direction="min"),
        "mm3": Bound(warn=0.1, fail=0.0, direction="min"),
    }


def _check_interval(value: str, where: tuple[str, ...]) -> None:
    try:
        step = parse_duration(value)
    except ValueError as exc:
        raise InconsistentSettings(where, f"interval {value!r}: {exc}") from None
    if step <= 0:
        raise InconsistentSettings(where, f"interval {value!r} must be positive")


class AccuracyConfig(Section):
    interval: str = "5m"
    min_windows: int = Field(default=24, gt=0)
    mape_pass: float = 0.15
    mape_warn: float = 0.30
    # net_bps is judged in bps (gates/accuracy.py): the median per-window |delta|
    median_delta_pass_bps: float = Field(default=0.25, ge=0)
    median_delta_warn_bps: float = Field(default=1.5, ge=0)

    @model_validator(mode="after")
    def _interval_is_a_duration(self) -> AccuracyConfig:
        _check_interval(self.interval, ("interval",))
        return self

    @model_validator(mode="after")
    def _pass_within_warn(self) -> AccuracyConfig:
        if self.mape_pass > self.mape_warn:
            raise InconsistentSettings(
                ("mape_pass",),
                f"mape_pass {self.mape_pass} is above mape_warn {self.mape_warn}",
                (("mape_warn",),),
            )
        if self.median_delta_pass_bps > self.median_delta_warn_bps:
            raise InconsistentSettings(
                ("median_delta_pass_bps",),
                f"median_delta_pass_bps {self.median_delta_pass_bps} is above "
                f"median_delta_warn_bps {self.median_delta_warn_bps}",
                (("median_delta_warn_bps",),),
            )
        return self


class GateConfig(Section):
    kpi: dict[str, Bound] = Field(default_factory=_default_kpi_bounds)
    # net_bps bound of each fee tier, picked by the policy's fees.tier; a net_bps entry
    # in `kpi` overrides it for every tier
    net_bps_by_tier: dict[str, Bound] = Field(default_factory=_default_net_bounds)
    horizon_ms: int = Field(default=1_000, gt=0)
    accuracy: AccuracyConfig = AccuracyConfig()
    readiness_ready: float = 90
    readiness_hold: float = 70

    @model_validator(mode="after")
    def _kpis_are_known(self) -> GateConfig:
        _check_names(list(self.kpi), KPI_NAMES, ("kpi",), "KPI")
        return self

    @model_validator(mode="after")
    def _hold_below_ready(self) -> GateConfig:
        if self.readiness_hold > self.readiness_ready:
            raise InconsistentSettings(
                ("readiness_hold",),
                f"readiness_hold {self.readiness_hold} is above readiness_ready "
                f"{self.readiness_ready}",
                (("readiness_ready",),),
            )
        return self


class SoakConfig(Section):
    hours: float = Field(default=24, gt=0)
    iterations: int = Field(default=6, gt=0)
    auto_tune: bool = True
    stop_on_fail: bool = Field(
        default=True,
        description="a FAIL of the in-run gate after the warm-up stops the soak; false only "
        "for measurements (profiles/stability.yaml): the final gate still judges",
    )


class TuningBound(Section):
    min: float
    max: float
    max_step: float = Field(gt=0, description="largest change per revision")

    @model_validator(mode="after")
    def _min_below_max(self) -> TuningBound:
        if self.min > self.max:
            raise InconsistentSettings(
                ("min",), f"min {self.min} is above max {self.max}", (("max",),)
            )
        return self


def _default_tuning_bounds() -> dict[str, TuningBound]:
    return {
        "strategy.min_half_spread_bps": TuningBound(min=0.5, max=5.0, max_step=0.5),
        "strategy.skew_bps_per_inventory": TuningBound(min=1.0, max=20.0, max_step=2.0),
        "strategy.requote_threshold_bps": TuningBound(min=0.1, max=2.0, max_step=0.2),
    }


class TuningConfig(Section):
    bounds: dict[str, TuningBound] = Field(default_factory=_default_tuning_bounds)
    grid_points: int = Field(default=3, ge=2)
    objective: Literal["net_bps", "pnl_usd"] = "net_bps"


class RollbackTrigger(Section):
    metric: str
    bound: float
    direction: Literal["min", "max"]
    for_ms: int = Field(gt=0)

    @model_validator(mode="after")
    def _metric_is_a_series(self) -> RollbackTrigger:
        # A trigger on a column the series lacks fails every canary as "missing".
        if self.metric not in SERIES_NAMES:
            raise InconsistentSettings(
                ("metric",),
                f"unknown series metric {self.metric!r}; known: {', '.join(SERIES_NAMES)}",
                suggestion=_closest(self.metric, SERIES_NAMES),
            )
        return self


def _default_rollback() -> list[RollbackTrigger]:
    return [
        RollbackTrigger(metric="maker_share", bound=0.70, direction="min", for_ms=300_000),
        RollbackTrigger(metric="order_latency_ms", bound=500, direction="max", for_ms=180_000),
        RollbackTrigger(metric="inventory_ratio", bound=0.60, direction="max", for_ms=120_000),
        RollbackTrigger(metric="error_rate", bound=0.05, direction="max", for_ms=60_000),
    ]


class CanaryMetric(Section):
    bad: Literal["increase", "decrease"]
    weight: float = Field(default=1.0, gt=0)
    tolerance: float = Field(default=0.1, ge=0, description="relative effect size ignored")
    critical: bool = False


def _default_canary_metrics() -> dict[str, CanaryMetric]:
    return {
        "net_bps": CanaryMetric(bad="decrease", weight=3, critical=True),
        "inventory_ratio": CanaryMetric(bad="increase", weight=2, critical=True),
        "maker_share": CanaryMetric(bad="decrease", weight=1),
        "order_latency_ms": CanaryMetric(bad="increase", weight=1),
        "fills": CanaryMetric(bad="decrease", weight=1, tolerance=0.25),
    }


class CanaryConfig(Section):
    fraction: float = Field(default=0.05, gt=0, le=1, description="size multiplier, in (0, 1]")
    duration_ms: int = Field(default=3_600_000, gt=0)
    interval: str = "1m"
    min_intervals: int = Field(
        default=24, gt=0, description="intervals each side needs before a PASS"
    )
    confidence: float = Field(default=0.95, gt=0, lt=1)
    pass_score: float = 95
    marginal_score: float = 75
    metrics: dict[str, CanaryMetric] = Field(default_factory=_default_canary_metrics)
    rollback: list[RollbackTrigger] = Field(default_factory=_default_rollback)

    @model_validator(mode="after")
    def _interval_is_a_duration(self) -> CanaryConfig:
        _check_interval(self.interval, ("interval",))
        return self

    @model_validator(mode="after")
    def _metrics_are_series(self) -> CanaryConfig:
        _check_names(list(self.metrics), SERIES_NAMES, ("metrics",), "series metric")
        return self

    @model_validator(mode="after")
    def _marginal_below_pass(self) -> CanaryConfig:
        if self.marginal_score > self.pass_score:
            raise InconsistentSettings(
                ("marginal_score",),
                f"marginal_score {self.marginal_score} is above pass_score {self.pass_score}",
                (("pass_score",),),
            )
        return self


def _default_ramp() -> list[float]:
    return [0.05, 0.25, 0.5, 1.0]


class PromoteConfig(Section):
    """The promotion of a candidate revision to live: evidence, approval, ramp."""

    # stages whose PASS the promotion requires (report stage names, gates/promotion.py)
    required_stages: list[str] = Field(
        default_factory=lambda: ["shadow", "accuracy", "soak-final", "canary"], min_length=1
    )
    # `--approve auto` approves without a person: only a profile that says so (demo)
    auto_approve: bool = False
    approval_timeout_s: int = Field(default=86_400, gt=0, description="wait for a person")
    # live size fraction of each ramp step, rising to 1.0; rollback triggers are checked
    # over every step before the next
    ramp: list[float] = Field(default_factory=_default_ramp, min_length=1)
    ramp_step: str = Field(default="1h", description="time at each step before the next")

    @model_validator(mode="after")
    def _ramp_rises_to_full_size(self) -> PromoteConfig:
        steps = self.ramp
        if any(not 0 < f <= 1 for f in steps) or any(b <= a for a, b in itertools.pairwise(steps)):
            raise InconsistentSettings(
                ("ramp",), f"ramp {steps} must rise strictly, each step in (0, 1]"
            )
        if steps[-1] != 1:
            raise InconsistentSettings(("ramp",), f"ramp {steps} must end at full size 1.0")
        _check_interval(self.ramp_step, ("ramp_step",))
        return self


class StorageConfig(Section):
    artifacts_url: str = "file://./artifacts"
    redis_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_retry_attempts: int = Field(
        default=5, ge=1, description="tries per S3 request, transient errors only"
    )
    journal_segment_rows: int = Field(default=200_000, gt=0)
    journal_segment: str = Field(
        default="1h", description="data time a journal part spans at most (a live run's parts)"
    )

    @model_validator(mode="after")
    def _segment_is_a_duration(self) -> StorageConfig:
        _check_interval(self.journal_segment, ("journal_segment",))
        return self

    @property
    def journal_segment_ns(self) -> int:
        return parse_duration(self.journal_segment)


class StateConfig(Section):
    """The leader lease in the shared state (bot/runtime/control.py, health.py)."""

    lease_ttl_ms: int = Field(
        default=5_000, gt=0, description="how long the lease lasts unrenewed (failover delay)"
    )
    poll_ms: int = Field(
        default=250, gt=0, description="wall time between renewals, heartbeats and metrics"
    )

    @model_validator(mode="after")
    def _renewals_fit_the_ttl(self) -> StateConfig:
        if self.lease_ttl_ms < LEASE_POLLS * self.poll_ms:
            raise InconsistentSettings(
                ("lease_ttl_ms",),
                f"lease_ttl_ms {self.lease_ttl_ms} is under {LEASE_POLLS} x poll_ms "
                f"({self.poll_ms}): a lease needs a few renewals before it expires",
                (("poll_ms",),),
            )
        return self


class SecretsConfig(Section):
    provider: Literal["none", "env", "file", "aws"] = "none"
    path: str | None = Field(default=None, description="for provider=file")
    cache_ttl_s: float = Field(
        default=300, ge=0, description="how long a read secret is reused (rotation delay)"
    )
    aws_secret_id: str | None = Field(default=None, description="for provider=aws")
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = Field(default=None, description="a non-AWS endpoint (tests)")
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None

    @model_validator(mode="after")
    def _file_has_path(self) -> SecretsConfig:
        if self.provider == "file" and not self.path:
            raise InconsistentSettings(
                ("path",), "secrets provider 'file' needs secrets.path", (("provider",),)
            )
        if self.provider == "aws" and not self.aws_secret_id:
            raise InconsistentSettings(
                ("aws_secret_id",),
                "secrets provider 'aws' needs secrets.aws_secret_id",
                (("provider",),),
            )
        return self


class TelemetryConfig(Section):
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_port: int | None = None
    health_port: int | None = None
    book_sample_ms: int = Field(default=100, gt=0)
    position_sample_ms: int = Field(default=1_000, gt=0)


class RunConfig(Section):
    seed: int = 7
    duration: str = "1h"
    timer_ms: int = Field(default=100, gt=0)


class LiveConfig(Section):
    """Trading on a real exchange (modes live and canary)."""

    enabled: bool = Field(
        default=False,
        description="the profile's arm; MMBOT_LIVE_ARMED=1 in the environment is the other",
    )
    exchange_url: str | None = Field(
        default=None, description="another server for REST and streams (a local rehearsal)"
    )
    orphans: Literal["cancel", "refuse", "adopt"] = Field(
        default="cancel",
        description="open orders found at start: cancel them, refuse to start, or adopt the "
        "account's previous run's (by its ledger in the shared state) and cancel the rest",
    )
    position_tolerance_lots: int = Field(default=0, ge=0)
    confirm_ms: int = Field(
        default=2_000, gt=0, description="order-stream silence before a REST lookup of an order"
    )
    dead_man_s: int | None = Field(
        default=10,
        ge=3,
        le=300,
        description="the venue cancels all orders this long after the bot vanishes; null: off",
    )
    reconcile_every_s: float | None = Field(
        default=60,
        gt=0,
        description="period of the financial reconciliation with the venue's trade history "
        "and position; two rounds in a row that differ halt the run; null: off",
    )
    shutdown_patience_s: float = Field(
        default=30,
        ge=0,
        description="how long the stop keeps trying to cancel everything while the venue "
        "fails (5xx, unreachable) before it exits with orders open (the dead-man switch's)",
    )


class Settings(Section):
    """The root of the tree: everything a run of mmbot can be told."""

    mode: Literal["shadow", "paper", "canary", "live"] = "paper"
    run: RunConfig = RunConfig()
    venue: VenueConfig = VenueConfig()
    strategy: StrategyConfig = StrategyConfig()
    risk: RiskConfig = RiskConfig()
    fees: FeeConfig = FeeConfig()
    sim: SimConfig = SimConfig()
    data: DataConfig = DataConfig()
    gates: GateConfig = GateConfig()
    soak: SoakConfig = SoakConfig()
    tuning: TuningConfig = TuningConfig()
    canary: CanaryConfig = CanaryConfig()
    promote: PromoteConfig = PromoteConfig()
    storage: StorageConfig = StorageConfig()
    state: StateConfig = StateConfig()
    secrets: SecretsConfig = SecretsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    live: LiveConfig = LiveConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for rule in _SETTINGS_RULES:
            rule(self)
        return self


def _real_money_needs_credentials(settings: Settings) -> None:
    if settings.mode in ("live", "canary") and settings.secrets.provider == "none":
        raise InconsistentSettings(
            ("secrets", "provider"),
            f"mode {settings.mode!r} sends real orders and needs a secrets provider "
            "(env, file or aws), not 'none'",
            (("mode",),),
        )


def _tuning_targets_exist(settings: Settings) -> None:
    # A bound on a key that does not exist would tune nothing, silently.
    for name in settings.tuning.bounds:
        if leaf_annotation(tuple(name.split("."))) not in (float, int):
            raise InconsistentSettings(
                ("tuning", "bounds", name),
                f"tuning bound {name!r} does not name a numeric setting",
            )


_SETTINGS_RULES: Final = (_real_money_needs_credentials, _tuning_targets_exist)


# ---- the schema as a tree of annotations (for sources, env paths and errors)


def unwrap_optional(annotation: Any) -> Any:
    """`X | None` -> X; other unions stay as they are (they are leaves)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def annotation_kind(annotation: Any) -> tuple[str, Any]:
    inner = unwrap_optional(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return "model", inner
    if get_origin(inner) is dict:
        return "mapping", get_args(inner)[1]
    if get_origin(inner) is list:
        return "sequence", get_args(inner)[0]
    return "leaf", inner


def child_annotation(annotation: Any, segment: str) -> Any | None:
    if annotation is None:
        return None
    kind, inner = annotation_kind(annotation)
    if kind == "model":
        spec = inner.model_fields.get(segment)
        return spec.annotation if spec is not None else None
    if kind == "mapping":
        return inner
    if kind == "sequence" and segment.isdigit():
        return inner
    return None


def annotation_at(path: Sequence[str]) -> Any | None:
    annotation: Any = Settings
    for segment in path:
        annotation = child_annotation(annotation, str(segment))
    return annotation


def leaf_annotation(path: Sequence[str]) -> Any:
    return unwrap_optional(annotation_at(path))


def instruments(settings: Settings) -> dict[str, Instrument]:
    """The venue rules of every configured symbol in engine units (ticks, lots)."""
    return {
        symbol: Instrument(
            symbol=symbol,
            tick_size=spec.tick_size,
            lot_size=spec.lot_size,
            min_qty_lots=int(spec.min_qty / spec.lot_size),
            min_notional=spec.min_notional,
        )
        for symbol, spec in settings.venue.symbols.items()
    }
