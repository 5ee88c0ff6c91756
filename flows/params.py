"""Typed flow parameters: one frozen pydantic model per flow, all built on `StageParams`.

Prefect validates a flow's parameters against its signature, so a flow taking
`params: ShadowParams` refuses an unknown key or a bad value before it runs, and a
deployment's UI form is generated from the same model. Every stage names its
profile (the candidate's settings and the release policy), its `--set` overrides
(the candidate only) and a run key, which keys its artifacts and, for the soak,
its checkpoints.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gates.stage import POLICY_SECTIONS, policy_overrides

# Prefect artifact keys: lowercase letters, digits and dashes
_KEY: Final = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class ParamsError(ValueError):
    """A flow parameter that cannot be used as given (the message names it)."""


class DataSource(BaseModel):
    """Where a stage's market data comes from: `synth` (a seeded synthetic market),
    `replay` (a recorded file or directory) or `live` (the exchange, issue 10)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["synth", "replay", "live"] = "synth"
    seed: int | None = Field(default=None, description="synth: the market's seed")
    path: Path | None = Field(default=None, description="replay: the recorded data")

    @model_validator(mode="after")
    def _path_for_replay(self) -> DataSource:
        if self.kind == "replay" and self.path is None:
            raise ValueError("data source kind 'replay' needs a path")
        if self.kind != "replay" and self.path is not None:
            raise ValueError(f"data source kind {self.kind!r} takes no path (only 'replay')")
        return self

    def label(self) -> str:
        if self.kind == "replay":
            return f"replay:{self.path}"
        return f"{self.kind}:seed={self.seed}" if self.seed is not None else self.kind


class StageParams(BaseModel):
    """What every stage flow takes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str = "demo"
    run_key: str = Field(
        default="demo", description="names this run's artifacts (lowercase, digits, dashes)"
    )
    overrides: tuple[str, ...] = Field(default=(), description="`--set` key=value, candidate only")
    artifacts_url: str | None = Field(
        default=None, description="file:// or s3:// store; default storage.artifacts_url"
    )
    work_dir: Path = Field(default=Path("artifacts/flows"), description="journals go here")

    @field_validator("run_key")
    @classmethod
    def _key_shape(cls, value: str) -> str:
        if not _KEY.match(value):
            raise ValueError(f"run_key {value!r}: use lowercase letters, digits and dashes")
        return value

    @field_validator("overrides")
    @classmethod
    def _candidate_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        reaching = policy_overrides(value)
        if reaching:
            sections = ", ".join(s + ".*" for s in POLICY_SECTIONS)
            raise ValueError(
                f"{', '.join(reaching)}: the candidate's overrides cannot set the release "
                f"policy ({sections}); change the policy's profile instead"
            )
        return value


class ShadowParams(StageParams):
    source: DataSource = DataSource()
    duration: str | None = Field(default=None, description="e.g. 30m; default the profile's")


class CompareParams(StageParams):
    source: DataSource = DataSource()
    duration: str | None = None


class SoakParams(StageParams):
    profile: str = "soak"
    source: DataSource = DataSource()
    hours: float | None = Field(default=None, gt=0, description="default soak.hours")
    iteration: str = Field(default="1h", description="data time per iteration")


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from parts: lowercased, anything else than letters and
    digits becomes a dash (`artifact_key("soak", "Run_7")` -> "soak-run-7")."""
    key = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    if not key:
        raise ParamsError(f"artifact key from {parts!r} is empty")
    return key


class ReleaseParams(StageParams):
    """The whole lifecycle on one profile and one market: each stage's own length."""

    source: DataSource = DataSource()
    shadow_duration: str | None = Field(default=None, description="default the profile's")
    compare_duration: str | None = Field(default=None, description="default the profile's")
    soak_hours: float | None = Field(default=None, gt=0, description="default soak.hours")
    soak_iteration: str = "1h"
    approve: Literal["person", "auto"] = Field(
        default="person", description="auto: only where the profile allows it (promote)"
    )
