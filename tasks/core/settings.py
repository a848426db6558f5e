"""The pipeline's one typed settings object, passed to the flows as their `settings` parameter.

Everything a run can be tuned with lives here, validated by pydantic when Prefect validates the flow
parameters, so a bad value fails before any work starts, with a message naming the field. Nothing
happens at import time; no field reads the clock, the environment or the disk.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_SERIES: tuple[str, ...] = ("SP500", "VIXCLS", "DJIA", "BAMLCC4A0710YTRIV")
# The model group of a run without `groups`: all of `series`, stored where the one model always was.
DEFAULT_GROUP = "default"

# FRED series ids are upper-case letters, digits and underscores (e.g. "SP500", "BAMLH0A0HYM2").
_SERIES_ID = re.compile(r"^[A-Z0-9][A-Z0-9_]{0,39}$")


def _check_series_id(value: str) -> str:
    if not _SERIES_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a FRED series id: use upper-case letters, digits and underscores, "
            "as FRED spells it (e.g. 'SP500', 'VIXCLS')"
        )
    return value


SeriesId = Annotated[str, AfterValidator(_check_series_id)]

# Lower-case, starting with a letter: never a model version (those start with a digit), never a file.
_GROUP_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def _check_group_name(value: str) -> str:
    if not _GROUP_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a model group name: use lower-case letters, digits, '-' and '_', starting "
            "with a letter (e.g. 'equities', 'rates')"
        )
    return value


GroupName = Annotated[str, AfterValidator(_check_group_name)]

# The first day of the NYSE calendar the series are aligned on (tasks.core.calendar builds it from here).
CALENDAR_START = date(1989, 1, 1)


def _check_history_start(value: date) -> date:
    if value < CALENDAR_START:
        raise ValueError(
            f"{value} is before {CALENDAR_START}, where the NYSE calendar the series are aligned on begins: "
            f"use {CALENDAR_START} or later"
        )
    return value


HistoryStart = Annotated[date, AfterValidator(_check_history_start)]


class ModelGroup(BaseModel):
    """A named group of series, trained, backtested, gated and stored as one model of its own.

    Given as an object, or as a bare list of series ids (`["DGS10", "DGS2"]`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    series: tuple[SeriesId, ...] = Field(description="FRED series ids of the group, in the model's output order.")
    history_start: HistoryStart | None = Field(
        default=None, description="First observation date used for this group's training; None = history_start."
    )

    @model_validator(mode="before")
    @classmethod
    def _series_list(cls, value: object) -> object:
        return {"series": value} if isinstance(value, list | tuple) else value


class FetchSettings(BaseModel):
    """How the fetch stage talks to FRED: timeout, retries of transient errors, rate limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description=(
            "Time limit of one HTTP request to FRED, in seconds: to connect, for the answer to begin, and for the "
            "whole answer to arrive."
        ),
    )
    retries: int = Field(
        default=4,
        ge=0,
        le=20,
        description="Retries of a transient failure (timeout, connection error, HTTP 5xx or 429).",
    )
    retry_backoff_seconds: float = Field(
        default=5.0,
        ge=0,
        le=600,
        description="First retry delay; each further retry doubles it (with jitter).",
    )
    retry_jitter_factor: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "Randomness of each retry delay: at most this fraction longer, and about as much shorter "
            "(Prefect's retry_jitter_factor)."
        ),
    )
    rate_limit_name: str | None = Field(
        default="fred-api",
        min_length=1,
        description=(
            "Prefect global concurrency limit (with a slot decay) that every request takes a slot from, "
            "so all processes, containers and Dask workers share one FRED budget; `python -m blocks setup` "
            "creates it. When the server has no such limit, requests_per_minute and burst apply per process."
        ),
    )
    requests_per_minute: float = Field(
        default=100.0,
        gt=0,
        description=(
            "Rate limit of this process when no global limit exists; FRED allows about 120 requests per minute per key."
        ),
    )
    burst: int = Field(
        default=5,
        ge=1,
        le=60,
        description="Requests that may go out at once before the per-process rate limit spaces them.",
    )


class StorageSettings(BaseModel):
    """How reads and writes of the storage block (local folder or Azure Blob) are retried."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(default=3, ge=1, le=10, description="Attempts per file on transient errors.")
    timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Time limit of one read or write of one file."
    )
    retry_delay_seconds: float = Field(
        default=2.0, ge=0, le=300, description="Delay before the first retry; doubled for each further one."
    )
    incomplete_folder_days: int | None = Field(
        default=7,
        ge=1,
        le=3650,
        description=(
            "A run folder without manifest.json (its run was killed, or lost the storage, before it was "
            "complete) is removed by the next run that publishes once it is this many days old; looked for "
            "in local folders and Azure containers, up to two months further back. None = keep them."
        ),
    )


class BacktestSettings(BaseModel):
    """Walk-forward backtest over the test period (training flow)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizons: tuple[int, ...] = Field(
        default=(1, 5, 10, 20, 30),
        min_length=1,
        description=(
            "Forecast horizons (in NYSE sessions) reported in backtest_metrics.csv; the ensemble's weights and "
            "the interval quantiles are fitted at them (interpolated between, the last one's held beyond)."
        ),
    )
    refit_every: int = Field(
        default=0,
        ge=0,
        description=(
            "Refit the scaler and the model every N sessions of the test period (expanding window). "
            "0 = never refit: every origin uses the model fitted on the training part only."
        ),
    )
    origin_step: int = Field(default=1, ge=1, description="Sessions between two forecast origins of the backtest.")
    progress_after_seconds: float = Field(
        default=3.0,
        ge=0,
        le=3600,
        description=(
            "A backtest still running after this many seconds shows its progress in the Prefect UI "
            "(a progress artifact); a quicker one adds none."
        ),
    )

    @field_validator("horizons")
    @classmethod
    def _horizons_positive_increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(h < 1 for h in value) or list(value) != sorted(set(value)):
            raise ValueError(f"horizons must be distinct positive integers in increasing order, got {value}")
        return value


class ChartSettings(BaseModel):
    """The charts of every run folder (fan chart per series, skill by horizon for training runs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    history_sessions: int = Field(
        default=120, ge=5, le=5000, description="Sessions of actuals drawn before the forecast in each fan chart."
    )


class EnsembleSettings(BaseModel):
    """The ensemble around the LSTM: its members and how their weights are fitted (training part only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    members: tuple[Literal["drift", "mean_reversion", "lstm"], ...] = Field(
        default=("drift", "mean_reversion", "lstm"),
        description="Members besides the random walk (always one) that the weights may choose from.",
    )
    estimation_sessions: int = Field(
        default=1000,
        ge=20,
        le=5000,
        description="Most sessions (the last ones up to an origin) a classical member is estimated on.",
    )
    min_estimation_sessions: int = Field(
        default=250,
        ge=10,
        le=5000,
        description=(
            "Fewest sessions a classical member needs; with less history it lends its weight to the random walk."
        ),
    )
    skill_z: float = Field(
        default=1.0,
        ge=0,
        le=5,
        description=(
            "A member's weight is its rolling-origin least-squares slope minus this many HAC standard "
            "errors, clipped to 0..1 (0 = trust the slope, higher = closer to the random walk)."
        ),
    )


class ChampionGateSettings(BaseModel):
    """When a newly trained model may replace the champion the daily flow uses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    series: tuple[SeriesId, ...] | None = Field(
        default=None,
        description="Series whose backtest rel_mae must pass the gate; None = every configured series.",
    )
    horizons: tuple[int, ...] | None = Field(
        default=None,
        min_length=1,
        description="Horizons (sessions) whose backtest rel_mae is gated; None = every backtest horizon.",
    )
    max_rel_mae: float = Field(
        default=1.0,
        gt=0,
        description=(
            "A challenger's rel_mae (MAE / random-walk MAE) must be at most this plus `tolerance` on every "
            "gated series and horizon (1.0 = as good as the random walk)."
        ),
    )
    tolerance: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Allowance above max_rel_mae for noise: the backtest's test part is a few hundred origins.",
    )


class Settings(BaseModel):
    """Pipeline settings shared by the training and the daily flow."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    series: tuple[SeriesId, ...] = Field(
        default=DEFAULT_SERIES,
        min_length=1,
        description=(
            "FRED series ids, in this order: modelled together, or, with groups, every group's series "
            "(then it may be left out)."
        ),
    )
    groups: dict[GroupName, ModelGroup] = Field(
        default_factory=dict,
        description=(
            "Model groups, name -> series (or {series, history_start}): each is trained, backtested, gated and "
            "stored as a model of its own (models/<group>/). Empty = one group 'default' holding series, "
            "stored in models/ as always."
        ),
    )
    history_start: HistoryStart = Field(
        default=date(2020, 1, 1), description="First observation date used for training (1989-01-01 or later)."
    )
    sequence_length: int = Field(default=10, ge=1, le=250, description="Sessions in one input window of the LSTM.")
    level_window: int = Field(
        default=120,
        ge=2,
        le=500,
        description="Sessions of the rolling mean that the log-level feature is measured against.",
    )
    forecast_horizon: int = Field(
        default=30, ge=1, le=250, description="NYSE sessions forecast after the last observation."
    )
    epochs: int = Field(default=20, ge=1, le=1000, description="Training epochs.")
    batch_size: int = Field(
        default=64, ge=1, le=4096, description="Training batch size (64 trains twice as fast as 32, same skill)."
    )
    lstm_units: int = Field(default=64, ge=1, le=1024, description="Units of the LSTM layer.")
    lstm_dropout: float = Field(
        default=0.3, ge=0, lt=1, description="Dropout on the LSTM's inputs during training (regularisation)."
    )
    loss: Literal["huber", "mse"] = Field(
        default="huber",
        description="Training loss on standardised returns; Huber is robust to crash days such as March 2020.",
    )
    learning_rate: float = Field(default=1e-3, gt=0, le=1, description="Adam learning rate.")
    test_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Last fraction of the sessions held out for evaluation."
    )
    validation_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Last fraction of the training part used as validation slice (never the test part).",
    )
    shrinkage_confidence_z: float = Field(
        default=1.0,
        ge=0,
        le=5,
        description=(
            "Predicted returns are scaled by the validation slice's least-squares slope minus this "
            "many standard errors (clipped to 0..1): 0 = trust the slope, higher = closer to the "
            "random walk unless the model shows skill."
        ),
    )
    seed: int = Field(default=42, ge=0, description="Random seed; training is repeatable for a given seed.")
    max_fill_sessions: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Longest run of missing sessions inside a series filled forward; a longer gap is an error.",
    )
    max_stale_sessions: int = Field(
        default=5,
        ge=1,
        le=60,
        description=(
            "A series whose last observation is more sessions before as_of than this is stale; up to that, its "
            "last value is carried forward to the newest session of the others."
        ),
    )
    fetch: FetchSettings = Field(default_factory=FetchSettings, description="FRED client behaviour.")
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="Retries and time limits of storage reads and writes."
    )
    backtest: BacktestSettings = Field(
        default_factory=BacktestSettings, description="Walk-forward backtest of the training flow."
    )
    ensemble: EnsembleSettings = Field(
        default_factory=EnsembleSettings, description="The ensemble around the LSTM (members, weights)."
    )
    champion_gate: ChampionGateSettings = Field(
        default_factory=ChampionGateSettings, description="Promotion rule for newly trained models."
    )
    charts: ChartSettings = Field(default_factory=ChartSettings, description="The charts published with every run.")

    @model_validator(mode="before")
    @classmethod
    def _series_of_the_groups(cls, data: object) -> object:
        """With groups and no series, series is every group's series, in group order."""
        if not isinstance(data, dict) or data.get("series") is not None or not data.get("groups"):
            return data
        groups = data["groups"]
        if not isinstance(groups, dict):
            return data
        series: list[object] = []
        for group in groups.values():
            members = group.series if isinstance(group, ModelGroup) else group
            if isinstance(members, dict):
                members = members.get("series", ())
            if isinstance(members, list | tuple):
                series += [s for s in members if s not in series]
        return {**data, "series": tuple(series)} if series else data

    @field_validator("series")
    @classmethod
    def _series_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        duplicated = sorted({s for s in value if value.count(s) > 1})
        if duplicated:
            raise ValueError(f"series ids must be unique, repeated: {duplicated}")
        return value

    @model_validator(mode="after")
    def _groups_partition_the_series(self) -> Settings:
        owner: dict[str, str] = {}
        for name, group in self.groups.items():
            if not group.series:
                raise ValueError(f"model group {name!r} is empty: give it at least one series id")
            for sid in group.series:
                if sid in owner:
                    raise ValueError(
                        f"series {sid} is in model groups {owner[sid]!r} and {name!r}: a series belongs to one group"
                    )
                owner[sid] = name
        if self.groups and set(owner) != set(self.series):
            raise ValueError(
                f"series {list(self.series)} differ from the series of the model groups {list(owner)}: "
                "leave series out when you give groups (it is then every group's series)"
            )
        return self

    @model_validator(mode="after")
    def _gate_series_configured(self) -> Settings:
        unknown = [s for s in (self.champion_gate.series or ()) if s not in self.series]
        if unknown:
            raise ValueError(f"champion_gate.series names series not in settings.series: {unknown}")
        if not set(self.gated_horizons) <= set(self.backtest.horizons):
            raise ValueError(
                f"champion_gate.horizons ({self.champion_gate.horizons}) must be among "
                f"backtest.horizons {self.backtest.horizons}"
            )
        if self.ensemble.min_estimation_sessions > self.ensemble.estimation_sessions:
            raise ValueError(
                f"ensemble.min_estimation_sessions ({self.ensemble.min_estimation_sessions}) must be at most "
                f"ensemble.estimation_sessions ({self.ensemble.estimation_sessions})"
            )
        if max(self.backtest.horizons) > self.forecast_horizon:
            shorter = [h for h in self.backtest.horizons if h <= self.forecast_horizon] or [self.forecast_horizon]
            raise ValueError(
                f"backtest.horizons go up to {max(self.backtest.horizons)} sessions, beyond "
                f"forecast_horizon ({self.forecast_horizon}): give backtest.horizons that end at or before it too "
                f"(e.g. {shorter}; on the command line --backtest.horizons {' '.join(map(str, shorter))})"
            )
        return self

    @property
    def gated_series(self) -> tuple[str, ...]:
        """Series the champion gate checks."""
        return self.champion_gate.series or self.series

    @property
    def gated_horizons(self) -> tuple[int, ...]:
        """Horizons the champion gate checks."""
        return self.champion_gate.horizons or self.backtest.horizons

    @property
    def model_groups(self) -> dict[str, ModelGroup]:
        """The run's model groups: `groups`, or the one group 'default' holding every series."""
        return dict(self.groups) or {DEFAULT_GROUP: ModelGroup(series=self.series)}

    def for_group(self, name: str) -> Settings:
        """The settings one group's model is trained and run with: its series, its history start.

        The champion gate checks the gated series of the group, or all of its series when the gate
        names none of them.

        Raises:
            KeyError: no such group.
        """
        group = self.model_groups[name]
        gated = tuple(s for s in self.champion_gate.series or () if s in group.series) or None
        return self.model_copy(
            update={
                "series": group.series,
                "groups": {},
                "history_start": group.history_start or self.history_start,
                "champion_gate": self.champion_gate.model_copy(update={"series": gated}),
            }
        )
