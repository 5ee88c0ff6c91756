"""The pydantic schema of every setting, and profile loading.

One model tree; every model forbids unknown keys so a typo is an error.
Money is in quote currency (USD for USDT pairs), rates in basis points,
durations in milliseconds unless the name says otherwise.

Loading (`resolve`, `load_settings`): defaults -> profile chain (`extends:`, base
first) -> env (`MMBOT_A__B=..`, plus the flat MMBOT_REDIS_URL / MMBOT_ARTIFACTS_URL)
-> `--set a.b=<yaml>`. Mappings merge key by key; lists are replaced whole; in a
mapping of named entries (symbols, fee tiers, KPI bounds, tuning bounds) `null`
removes an entry. Every leaf keeps its source: `default`, `profile:<path>`,
`env:MMBOT_..`, `cli:--set a.b=c`. Rules across fields live on the models
(InconsistentSettings), so a Settings built by hand obeys them too.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from bot.model import Instrument

SECRET_MASK: Final = "**********"

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
    queue_model: Literal["risk_averse", "probabilistic"] = "risk_averse"
    queue_power: float = Field(default=3.0, gt=0)
    partial_fills: bool = True
    faults: FaultConfig = FaultConfig()


class SynthConfig(Section):
    symbol: str = "BTCUSDT"
    start: str = "2024-08-08T00:00:00Z"
    duration: str = "1h"
    initial_mid: float = Field(default=60_000.0, gt=0)
    book_rate_hz: float = Field(default=50.0, gt=0)
    trade_rate_hz: float = Field(default=5.0, gt=0)
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
    return {
        "net_bps": Bound(warn=2.7, fail=2.0, direction="min"),
        "maker_share": Bound(warn=0.90, fail=0.85, direction="min"),
        "order_latency_p95_ms": Bound(warn=350, fail=400, direction="max"),
        "inventory_ratio_p95": Bound(warn=0.40, fail=0.50, direction="max"),
        "adverse_p95_bps": Bound(warn=4, fail=6, direction="max"),
        "cancel_ratio": Bound(warn=0.55, fail=0.70, direction="max"),
    }


class AccuracyConfig(Section):
    interval: str = "5m"
    min_windows: int = Field(default=24, gt=0)
    mape_pass: float = 0.15
    mape_warn: float = 0.30
    median_delta_warn_bps: float = 1.5

    @model_validator(mode="after")
    def _pass_within_warn(self) -> AccuracyConfig:
        if self.mape_pass > self.mape_warn:
            raise InconsistentSettings(
                ("mape_pass",),
                f"mape_pass {self.mape_pass} is above mape_warn {self.mape_warn}",
                (("mape_warn",),),
            )
        return self


class GateConfig(Section):
    kpi: dict[str, Bound] = Field(default_factory=_default_kpi_bounds)
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
    max_rss_growth_mb: float = Field(default=64, gt=0)
    auto_tune: bool = True


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
    confidence: float = Field(default=0.95, gt=0, lt=1)
    pass_score: float = 95
    marginal_score: float = 75
    metrics: dict[str, CanaryMetric] = Field(default_factory=_default_canary_metrics)
    rollback: list[RollbackTrigger] = Field(default_factory=_default_rollback)

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


class StorageConfig(Section):
    artifacts_url: str = "file://./artifacts"
    redis_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_retry_attempts: int = Field(
        default=5, ge=1, description="tries per S3 request, transient errors only"
    )
    journal_segment_rows: int = Field(default=200_000, gt=0)


class SecretsConfig(Section):
    provider: Literal["none", "env", "file"] = "none"
    path: str | None = Field(default=None, description="for provider=file")
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
    storage: StorageConfig = StorageConfig()
    secrets: SecretsConfig = SecretsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()

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
            "(env or file), not 'none'",
            (("mode",),),
        )


def _tuning_targets_exist(settings: Settings) -> None:
    # A bound on a key that does not exist would tune nothing, silently.
    for name in settings.tuning.bounds:
        if _leaf_annotation(tuple(name.split("."))) not in (float, int):
            raise InconsistentSettings(
                ("tuning", "bounds", name),
                f"tuning bound {name!r} does not name a numeric setting",
            )


_SETTINGS_RULES: Final = (_real_money_needs_credentials, _tuning_targets_exist)


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


# --------------------------------------------------------------------------- loading
#
# Layers, lowest first: defaults -> profile chain (base first) -> env -> `--set`.
# The raw layers are merged as plain data and validated once, so pydantic sees the
# final picture and every error can be traced back to the layer that set its key.

ENV_PREFIX: Final = "MMBOT_"
# Flat names from DESIGN §1, kept because deployments already export them.
ENV_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "MMBOT_ARTIFACTS_URL": ("storage", "artifacts_url"),
    "MMBOT_REDIS_URL": ("storage", "redis_url"),
}
PACKAGED_PROFILES: Final = Path(__file__).resolve().parents[1] / "profiles"
DEFAULT_SOURCE: Final = "default"

Path_ = tuple[str, ...]


class ConfigError(Exception):
    """A setting that cannot be used, with what to fix and where.

    `key` is the dotted setting (None for file-level problems), `file` the profile
    path that set it last, or "defaults", "env", "cli"; `line` is 1-based when known.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        file: str | None = None,
        line: int | None = None,
        suggestion: str | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.key = key
        self.file = file
        self.line = line
        self.suggestion = suggestion
        self.source = source
        self.others: tuple[ConfigError, ...] = ()
        super().__init__(self.describe())

    def describe(self) -> str:
        """This error alone, without the count of the others."""
        where = f"{self.file}:{self.line}" if self.file and self.line else self.file
        if self.source and self.source.startswith(("env:", "cli:")):
            where = self.source  # names the variable or the --set that did it
        text = f"{where}: {self.message}" if where else self.message
        if self.suggestion:
            text += f" (did you mean {self.suggestion!r}?)"
        return text

    def __str__(self) -> str:
        more = f" (and {len(self.others)} more)" if self.others else ""
        return self.describe() + more

    def all(self) -> tuple[ConfigError, ...]:
        return (self, *self.others)


@dataclass(frozen=True, slots=True)
class Resolved:
    """Settings and, for every dotted leaf key, the layer that set it."""

    settings: Settings
    sources: dict[str, str]
    files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    old: Any
    new: Any
    old_source: str
    new_source: str


# ---- the schema as a tree of annotations


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X; other unions stay as they are (they are leaves)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _kind(annotation: Any) -> tuple[str, Any]:
    inner = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return "model", inner
    if get_origin(inner) is dict:
        return "mapping", get_args(inner)[1]
    if get_origin(inner) is list:
        return "sequence", get_args(inner)[0]
    return "leaf", inner


def _child(annotation: Any, segment: str) -> Any | None:
    if annotation is None:
        return None
    kind, inner = _kind(annotation)
    if kind == "model":
        spec = inner.model_fields.get(segment)
        return spec.annotation if spec is not None else None
    if kind == "mapping":
        return inner
    if kind == "sequence" and segment.isdigit():
        return inner
    return None


def _annotation_at(path: Sequence[str]) -> Any | None:
    annotation: Any = Settings
    for segment in path:
        annotation = _child(annotation, str(segment))
    return annotation


def _leaf_annotation(path: Path_) -> Any:
    return _unwrap(_annotation_at(path))


def _is_path_in(annotation: Any, segments: Sequence[str]) -> bool:
    for segment in segments:
        annotation = _child(annotation, segment)
        if annotation is None:
            return False
    return True


def _is_secret_path(path: Sequence[str]) -> bool:
    # Anything under `secrets` but its two plain fields, so a mistyped secret key is
    # still treated as secret.
    return bool(path) and path[0] == "secrets" and tuple(path[1:]) not in (("provider",), ("path",))


def _suggest(path: Path_) -> str | None:
    kind, model = _kind(_annotation_at(path[:-1]))
    if kind != "model":
        return None
    match = difflib.get_close_matches(path[-1], list(model.model_fields), n=1, cutoff=0.6)
    return ".".join((*path[:-1], match[0])) if match else None


# ---- YAML: no implicit timestamps (a start time stays a string), no duplicate keys


class _ProfileLoader(yaml.SafeLoader):
    pass


_ProfileLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_ProfileLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _yaml_error(exc: yaml.YAMLError, label: str, what: str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return ConfigError(
        f"malformed YAML {what}: {problem}",
        file=label,
        line=mark.line + 1 if mark is not None else None,
    )


def _key_lines(node: yaml.Node | None, prefix: Path_ = ()) -> dict[Path_, int]:
    lines: dict[Path_, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                path = (*prefix, str(key_node.value))
                lines[path] = key_node.start_mark.line + 1
                lines.update(_key_lines(value_node, path))
    return lines


# ---- profiles


@dataclass(frozen=True, slots=True)
class _Profile:
    path: Path
    label: str
    data: dict[str, Any]
    lines: dict[Path_, int]
    extends: str | None


def _display(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def profile_dirs() -> tuple[Path, ...]:
    """Where profile names are looked up: ./profiles, then the packaged profiles."""
    dirs = [Path.cwd() / "profiles", PACKAGED_PROFILES]
    unique: list[Path] = []
    for folder in dirs:
        if folder.resolve() not in unique:
            unique.append(folder.resolve())
    return tuple(unique)


def _looks_like_path(ref: str | Path) -> bool:
    text = str(ref)
    return (
        isinstance(ref, Path) or "/" in text or os.sep in text or text.endswith((".yaml", ".yml"))
    )


def find_profile(ref: str | Path, near: Path | None = None) -> Path:
    """A profile name ('demo') or a YAML path -> the file. `near` is the directory of
    a profile that `extends:` this one; it is searched first."""
    if _looks_like_path(ref):
        given = Path(ref).expanduser()
        candidates = [near / given] if near is not None and not given.is_absolute() else []
        candidates.append(given)
    else:
        folders = ([near] if near is not None else []) + list(profile_dirs())
        candidates = [folder / f"{ref}{ext}" for folder in folders for ext in (".yaml", ".yml")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    searched = ", ".join(_display(c.parent) for c in candidates[::2] or candidates)
    raise ConfigError(f"profile {str(ref)!r} not found (searched {searched})", file=str(ref))


def _read_profile(path: Path) -> _Profile:
    label = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read profile: {exc.strerror}", file=label) from None
    loader = _ProfileLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, label, "in profile") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"a profile is a mapping of settings, not a {type(data).__name__}", file=label, line=1
        )
    extends = data.pop("extends", None)
    if extends is not None and not isinstance(extends, str):
        raise ConfigError(
            "extends must name one profile or YAML file",
            key="extends",
            file=label,
            line=_key_lines(node).get(("extends",)),
        )
    return _Profile(path, label, data, _key_lines(node), extends)


def _profile_chain(ref: str | Path) -> list[_Profile]:
    """The profile and every profile it extends, base first."""
    chain: list[_Profile] = []
    path = find_profile(ref)
    while True:
        if any(profile.path == path for profile in chain):
            cycle = " -> ".join([*(p.label for p in chain), _display(path)])
            raise ConfigError(
                f"extends cycle: {cycle}",
                key="extends",
                file=chain[-1].label,
                line=chain[-1].lines.get(("extends",)),
            )
        profile = _read_profile(path)
        chain.append(profile)
        if profile.extends is None:
            return chain[::-1]
        try:
            path = find_profile(profile.extends, near=profile.path.parent)
        except ConfigError as exc:
            raise ConfigError(
                exc.message, key="extends", file=profile.label, line=profile.lines.get(("extends",))
            ) from None


# ---- merging layers with their sources


def _get(container: Any, segment: str) -> Any:
    if isinstance(container, dict):
        return container.get(segment)
    if isinstance(container, list) and segment.isdigit() and int(segment) < len(container):
        return container[int(segment)]
    return None


def _leaf_paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Dotted leaves: nested mappings are walked, lists and empty mappings are leaves."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaf_paths(child, (*prefix, str(key)))
    else:
        yield prefix


def _flat(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in _leaf_paths(value):
        node: Any = value
        for segment in path:
            node = node[segment]
        out[".".join(path)] = node
    return out


@dataclass
class _Layers:
    data: dict[str, Any]
    sources: dict[Path_, str] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=lambda: {DEFAULT_SOURCE: 0})
    lines: dict[str, dict[Path_, int]] = field(default_factory=dict)

    def rank(self, source: str) -> int:
        return self.ranks.get(source, 0)

    def put(self, path: Path_, value: Any, source: str) -> None:
        """Set one key (a leaf or a whole subtree), replacing what lower layers set."""
        self.ranks.setdefault(source, len(self.ranks))
        container: Any = self.data
        for depth, segment in enumerate(path[:-1]):
            nxt = _get(container, segment)
            if not isinstance(nxt, dict | list):
                if not isinstance(container, dict):
                    raise ConfigError(
                        f"{'.'.join(path[: depth + 1])}: no such list item",
                        key=".".join(path),
                        file=_file_of(source),
                        source=source,
                    )
                nxt = container[segment] = {}
            container = nxt
        last = path[-1]
        mapping_entry = _kind(_annotation_at(path[:-1]))[0] == "mapping"
        if isinstance(container, list):
            if not (last.isdigit() and int(last) < len(container)):
                raise ConfigError(
                    f"{'.'.join(path)}: no such list item",
                    key=".".join(path),
                    file=_file_of(source),
                    source=source,
                )
            container[int(last)] = value
        elif value is None and mapping_entry:
            container.pop(last, None)  # null removes an entry a lower layer added
        else:
            container[last] = value
        self.sources = {p: s for p, s in self.sources.items() if p[: len(path)] != path}
        # A removal is remembered too: an emptied mapping then names who emptied it.
        self.sources.update((leaf, source) for leaf in _leaf_paths(value, path))

    def merge(self, mapping: dict[Any, Any], source: str, prefix: Path_ = ()) -> None:
        for key, value in mapping.items():
            path = (*prefix, str(key))
            existing = _get(_node_at(self.data, prefix), str(key))
            if isinstance(value, dict) and isinstance(existing, dict):
                self.ranks.setdefault(source, len(self.ranks))
                self.merge(value, source, path)
            else:
                self.put(path, value, source)

    def source_of(self, path: Path_) -> str:
        if path in self.sources:
            return self.sources[path]
        for size in range(len(path) - 1, 0, -1):
            if path[:size] in self.sources:
                return self.sources[path[:size]]
        below = [s for p, s in self.sources.items() if p[: len(path)] == path]
        return max(below, key=self.rank) if below else DEFAULT_SOURCE

    def nearest(self, path: Path_) -> str:
        """For a key nobody set (a missing field): the layer that set its closest
        relatives, which is the layer that created the entry around it."""
        for size in range(len(path), 0, -1):
            source = self.source_of(path[:size])
            if source != DEFAULT_SOURCE:
                return source
        return DEFAULT_SOURCE

    def line_of(self, path: Path_, source: str) -> int | None:
        lines = self.lines.get(source, {})
        for size in range(len(path), 0, -1):
            if path[:size] in lines:
                return lines[path[:size]]
        return None


def _node_at(data: Any, path: Path_) -> Any:
    for segment in path:
        data = _get(data, segment)
    return data


def _file_of(source: str) -> str:
    if source.startswith("profile:"):
        return source.removeprefix("profile:")
    if source.startswith("env:"):
        return "env"
    if source.startswith("cli:"):
        return "cli"
    return "defaults"


# ---- env and --set


def _env_value(text: str) -> Any:
    # Strings go to pydantic as they are (it coerces numbers and booleans); JSON only for
    # lists and mappings; an empty value unsets an optional setting.
    if text == "":
        return None
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _env_path(segments: Sequence[str], data: Any) -> Path_:
    # Env names are upper case; field names are lower case, mapping keys keep their case.
    path: list[str] = []
    annotation: Any = Settings
    for segment in segments:
        name = segment.lower()
        if annotation is not None and _kind(annotation)[0] == "mapping" and isinstance(data, dict):
            name = next((key for key in data if key.lower() == segment.lower()), segment)
        path.append(name)
        annotation = _child(annotation, name)
        data = _get(data, name)
    return tuple(path)


def _top_level_leaves() -> frozenset[str]:
    return frozenset(
        name for name, spec in Settings.model_fields.items() if _kind(spec.annotation)[0] == "leaf"
    )


def _env_entries(env: Mapping[str, str], data: dict[str, Any]) -> list[tuple[str, Path_, Any]]:
    """(variable, key, value) for every env variable that is configuration, aliases
    first so that the nested spelling wins. Other MMBOT_ names (MMBOT_API_KEY,
    MMBOT_FREEZE_UTC, ...) belong to their own readers and are skipped."""
    entries = [
        (name, path, _env_value(env[name]))
        for name, path in sorted(ENV_ALIASES.items())
        if name in env
    ]
    top = _top_level_leaves()
    for name in sorted(env):
        rest = name.removeprefix(ENV_PREFIX)
        if not name.startswith(ENV_PREFIX) or name in ENV_ALIASES:
            continue
        if "__" in rest or rest.lower() in top:
            entries.append((name, _env_path(rest.split("__"), data), _env_value(env[name])))
    return entries


def _mapping_key_end(segments: Sequence[str], start: int, data: Any, value_type: Any) -> int:
    """Where a mapping key ends in a dotted path: keys may hold dots themselves
    ('tuning.bounds.strategy.min_half_spread_bps.max')."""
    if isinstance(data, dict):
        for end in range(len(segments), start, -1):
            if ".".join(segments[start:end]) in data:
                return end
    for end in range(start + 1, len(segments)):
        if _is_path_in(value_type, segments[end:]):
            return end
    return len(segments)


def _split_key(dotted: str, data: dict[str, Any]) -> Path_:
    segments = dotted.split(".")
    path: list[str] = []
    annotation: Any = Settings
    node: Any = data
    start = 0
    while start < len(segments):
        kind, inner = _kind(annotation) if annotation is not None else ("leaf", None)
        end = _mapping_key_end(segments, start, node, inner) if kind == "mapping" else start + 1
        name = ".".join(segments[start:end])
        path.append(name)
        annotation = _child(annotation, name)
        node = _get(node, name)
        start = end
    return tuple(path)


def _parse_override(text: str, data: dict[str, Any]) -> tuple[Path_, Any, str]:
    dotted, sep, raw = text.partition("=")
    dotted = dotted.strip()
    if not sep or not dotted:
        raise ConfigError(
            f"--set {text!r}: expected key=value, e.g. risk.max_inventory_usd=5000", file="cli"
        )
    path = _split_key(dotted, data)
    shown = SECRET_MASK if _is_secret_path(path) else mask_url_passwords(raw)
    label = f"cli:--set {dotted}={shown}"
    try:
        value = yaml.load(raw, Loader=_ProfileLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        error = _yaml_error(exc, "cli", f"value for {dotted}")
        raise ConfigError(error.message, key=dotted, file="cli", source=label) from None
    return path, value, label


# ---- validation errors back to keys and files


def _one_error(error: Mapping[str, Any], layers: _Layers) -> ConfigError:
    loc = tuple(str(part) for part in error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, InconsistentSettings):
        path = (*loc, *cause.path)
        involved = [path, *((*loc, *other) for other in cause.related)]
        # Blame the file that set the latest of the keys in the rule: that is the edit
        # that broke it (max keeps the first, the rule's own key, on ties).
        source = layers.source_of(max(involved, key=lambda p: layers.rank(layers.source_of(p))))
        # The rule's message speaks of fields of one model; the key says which one.
        key = ".".join(path)
        message = str(cause) if key in str(cause) else f"{key}: {cause}"
        hint = cause.suggestion
        suggestion = ".".join((*loc, *hint)) if isinstance(hint, tuple) else hint
        return _error_at(path, message, source, layers, suggestion)
    source = layers.nearest(loc) if error["type"] == "missing" else layers.source_of(loc)
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        return _error_at(loc, f"unknown key {key!r}", source, layers, _suggest(loc))
    message = f"{key}: {error['msg']}"
    shown = error.get("input")
    if isinstance(shown, str):
        shown = mask_url_passwords(shown)
    if not _is_secret_path(loc) and isinstance(shown, str | int | float | bool | Decimal):
        message += f" (got {shown!r})"
    return _error_at(loc, message, source, layers)


def _error_at(
    path: Path_, message: str, source: str, layers: _Layers, suggestion: str | None = None
) -> ConfigError:
    return ConfigError(
        message,
        key=".".join(path),
        file=_file_of(source),
        line=layers.line_of(path, source),
        suggestion=suggestion,
        source=source,
    )


def _validate(layers: _Layers) -> Settings:
    try:
        return Settings.model_validate(layers.data)
    except ValidationError as exc:
        errors = [_one_error(error, layers) for error in exc.errors()]
        first = errors[0]
        first.others = tuple(errors[1:])
        raise first from None


# ---- public API


def resolve(
    profile: str | Path | None = "base",
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Resolved:
    """Settings from defaults, a profile chain, env (`os.environ` when None) and
    `--set` overrides, with the source of every leaf. Raises ConfigError."""
    env = os.environ if env is None else env
    if isinstance(overrides, str):
        overrides = (overrides,)
    layers = _Layers(Settings().model_dump())
    chain = _profile_chain(profile) if profile is not None else []
    for item in chain:
        source = f"profile:{item.label}"
        layers.lines[source] = item.lines
        layers.ranks.setdefault(source, len(layers.ranks))
        layers.merge(item.data, source)
    for name, path, value in _env_entries(env, layers.data):
        layers.put(path, value, f"env:{name}")
    for text in overrides:
        path, value, source = _parse_override(text, layers.data)
        layers.put(path, value, source)
    settings = _validate(layers)
    sources = {
        ".".join(path): layers.source_of(path)
        for path in _leaf_paths(settings.model_dump(mode="json"))
    }
    return Resolved(settings, sources, tuple(item.label for item in chain))


def load_settings(
    profile: str | Path | None = "base",
    *,
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The settings of a run; see `resolve` for the layers."""
    return resolve(profile, overrides, env).settings


def diff(a: Resolved, b: Resolved) -> list[Change]:
    """Every leaf whose value differs, in schema order; secrets compare by value but
    show masked. A key on one side only has value None and source 'absent'."""
    old, new = _flat(a.settings.model_dump()), _flat(b.settings.model_dump())
    old_shown, new_shown = redacted_leaves(a.settings), redacted_leaves(b.settings)
    changes = []
    for key in dict.fromkeys([*old, *new]):
        if key in old and key in new and old[key] == new[key]:
            continue
        changes.append(
            Change(
                key,
                old_shown.get(key),
                new_shown.get(key),
                a.sources.get(key, "absent"),
                b.sources.get(key, "absent"),
            )
        )
    return changes


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<password>[^@/\s]+)@")


def mask_url_passwords(text: str) -> str:
    """`scheme://user:PW@host` -> `scheme://user:**********@host`, anywhere in text."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}:{SECRET_MASK}@", text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_url_passwords(value)
    if isinstance(value, dict):
        return {key: _mask(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_mask(child) for child in value]
    return value


def redacted_dict(settings: Settings) -> dict[str, Any]:
    """JSON-safe dump for manifests and `config show`: SecretStr values and passwords
    inside URLs are replaced by the mask."""
    masked: dict[str, Any] = _mask(settings.model_dump(mode="json"))
    return masked


def redacted_leaves(settings: Settings) -> dict[str, Any]:
    """`redacted_dict` flattened to dotted keys (the keys of `Resolved.sources`)."""
    return _flat(redacted_dict(settings))
