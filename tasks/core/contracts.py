"""The stored JSON contracts (pure): model card, run manifest, latest.json and champion.json.

Every JSON file the pipeline stores is written and read through one of these pydantic models
(`to_bytes` / `from_bytes`), never as a hand-built dict. Each carries a `format` string naming its
layout and version; a reader refuses a layout it does not know, with a message saying so. Files
written before `format` existed (latest.json, champion.json) read as version 1.

The README's "Stored JSON" section documents the fields of each model, and a test checks that it
documents exactly these fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from typing import Any, Final, Literal, Self

import numpy as np
import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tasks.core.features import SplitDates
from tasks.core.members import LSTM, MemberName

# Format 2 (issue 12) adds the ensemble and the MASE scale; format-1 cards are still read (the LSTM alone).
CARD_FORMAT_1: Final = "market-forecast-model-card/1"
CARD_FORMAT: Final = "market-forecast-model-card/2"
MANIFEST_FORMAT: Final = "market-forecast-run/1"
LATEST_FORMAT: Final = "market-forecast-latest/1"
CHAMPION_FORMAT: Final = "market-forecast-champion/1"
CLAIM_FORMAT: Final = "market-forecast-run-claim/1"

DataSource = Literal["fred", "demo"]
RunKind = Literal["training", "daily"]
# A table stored inside a JSON file: one JSON object per row (see `table_records`).
Records = list[dict[str, Any]]


def sha256_hex(content: bytes) -> str:
    """Hex sha256 of `content`."""
    return hashlib.sha256(content).hexdigest()


def table_records(frame: pd.DataFrame) -> Records:
    """A frame as JSON-ready records: dates as ISO text, NaN and infinities as None."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
    return [
        {str(k): (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in out.to_dict("records")
    ]


class StoredJson(BaseModel):
    """Base of the stored JSON files: frozen, no unknown fields, UTF-8 JSON with 2-space indent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_bytes(self) -> bytes:
        """The file's content."""
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_bytes(cls, content: bytes | str) -> Self:
        """Parse a stored file (pydantic's ValidationError says which field is wrong)."""
        return cls.model_validate_json(content)


# ---------------------------------------------------------------- model card


class CardDataRange(BaseModel):
    """The sessions a model saw.

    Trained before validation_start, validated up to test_start, evaluated (never trained on) from
    test_start to end.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: date = Field(description="First session of the aligned data.")
    validation_start: date = Field(description="First session of the validation slice (inside the training part).")
    test_start: date = Field(description="First session of the held-out test part.")
    end: date = Field(description="Last session of the data the model was built from.")

    def split_dates(self) -> SplitDates:
        """The boundaries as used to label prediction rows."""
        return SplitDates(validation_start=self.validation_start, test_start=self.test_start, data_end=self.end)


class GateDecision(BaseModel):
    """The champion gate's verdict on a trained model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    promoted: bool = Field(description="Whether the model became the champion.")
    reason: str = Field(description="Why, as shown in the run summary.")


class MemberWeights(BaseModel):
    """The ensemble's weights of one series at one fitted horizon (they sum to 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    series_id: str = Field(description="FRED series id.")
    horizon: int = Field(ge=1, description="Sessions ahead the weights were fitted for.")
    weights: dict[MemberName, float] = Field(description="Member -> weight; members not named weigh 0.")
    skill: float | None = Field(
        default=None,
        description="Rolling-origin MSE of the weighted forecast over the random walk's (training part); null if none.",
    )


class EnsembleCard(BaseModel):
    """Which members a model combines, how they are estimated, and their weights by series and horizon."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    members: tuple[MemberName, ...] = Field(description="Members the weights could choose from.")
    estimation_sessions: int = Field(ge=2, description="Most sessions a classical member is estimated on.")
    min_estimation_sessions: int = Field(ge=2, description="Fewest sessions a classical member needs.")
    method: str = Field(description="How the weights were fitted, in words.")
    weights: tuple[MemberWeights, ...] = Field(
        description="Weights per series and fitted horizon (interpolated between horizons)."
    )

    @classmethod
    def lstm_only(cls, series: tuple[str, ...]) -> EnsembleCard:
        """The ensemble a format-1 card describes: its LSTM alone, at every horizon."""
        return cls(
            members=(LSTM,),
            estimation_sessions=2,
            min_estimation_sessions=2,
            method="format-1 model card: the LSTM alone (with its shrinkage), as the model was trained",
            weights=tuple(MemberWeights(series_id=s, horizon=1, weights={LSTM: 1.0}) for s in series),
        )


class ModelCard(StoredJson):
    """models/<version>/model_card.json: what a model is, what it saw, how good it is, its files."""

    format: Literal["market-forecast-model-card/1", "market-forecast-model-card/2"] = Field(
        default=CARD_FORMAT, description="Layout version."
    )
    version: str = Field(description="Model version: YYYYMMDD_HHMMSS-<first 8 hex of the model file's sha256>.")
    created_utc: AwareDatetime = Field(description="When the training run started (UTC).")
    as_of: date = Field(description="The training run's reference date.")
    data_source: DataSource = Field(description="`fred` or `demo`.")
    series: tuple[str, ...] = Field(description="FRED series ids, in the model's output order.")
    sequence_length: int = Field(description="Sessions per input window.")
    architecture: str = Field(description="The network, its inputs and its target, in words.")
    data: CardDataRange = Field(description="Sessions trained on, validated on and held out.")
    shrinkage: dict[str, float] = Field(description="Per-series factor towards the random walk (0 = random walk).")
    settings: dict[str, Any] = Field(description="The settings the model was trained with (a snapshot).")
    metrics_test: Records = Field(description="model_metrics.csv rows of the test part.")
    backtest: Records = Field(description="backtest_metrics.csv rows.")
    interval_z_quantiles: Records = Field(description="Standardised error quantiles by series and horizon (intervals).")
    library_versions: dict[str, str] = Field(description="Versions of Python and the libraries that shaped it.")
    files: dict[str, str] = Field(description="sha256 of each model file (lstm_model.keras, scaler.json).")
    training_run_folder: str | None = Field(default=None, description="The run folder its training published.")
    champion_gate: GateDecision | None = Field(default=None, description="The promotion decision at training time.")
    ensemble: EnsembleCard | None = Field(
        default=None,
        description="Members, how they are estimated and their weights by series and horizon (null in format 1).",
    )
    mase_scale: dict[str, float] | None = Field(
        default=None,
        description=(
            "Per series, the training part's in-sample one-session naive MAE: MASE's denominator (null in format 1)."
        ),
    )

    @model_validator(mode="after")
    def _format_2_has_an_ensemble(self) -> ModelCard:
        if self.format == CARD_FORMAT and (self.ensemble is None or self.mase_scale is None):
            raise ValueError(f"a {CARD_FORMAT} card needs `ensemble` and `mase_scale`")
        return self

    def split_dates(self) -> SplitDates:
        """The split boundaries of its data."""
        return self.data.split_dates()

    def ensemble_card(self) -> EnsembleCard:
        """The ensemble the model forecasts with; for a format-1 card, its LSTM alone."""
        return self.ensemble if self.ensemble is not None else EnsembleCard.lstm_only(self.series)

    def interval_quantiles(self) -> pd.DataFrame:
        """The standardised error quantiles the forecast's bands are built from."""
        return pd.DataFrame(self.interval_z_quantiles)

    def backtest_table(self) -> pd.DataFrame:
        """Its backtest metrics as a frame (empty when none were recorded), in format 2's column names.

        A format-1 card's `mase` was the model's MAE over the random walk's on the same rows:
        today's `rel_mae` (and `mase_vs_drift` today's `rel_mae_vs_drift`).
        """
        table = pd.DataFrame(self.backtest)
        if self.format == CARD_FORMAT_1:
            table = table.rename(columns={"mase": "rel_mae", "mase_vs_drift": "rel_mae_vs_drift"})
        return table


# ---------------------------------------------------------------- pointers


class ChampionPointer(StoredJson):
    """models/champion.json: the model version the daily flow uses."""

    format: Literal["market-forecast-champion/1"] = Field(default=CHAMPION_FORMAT, description="Layout version.")
    version: str = Field(description="The champion's model version.")
    model_card: str = Field(description="Path of its model card, models/<version>/model_card.json.")
    model_card_sha256: str = Field(description="sha256 of that card, checked before the model is used.")
    training_run_folder: str | None = Field(default=None, description="The training run folder that promoted it.")
    promoted_utc: AwareDatetime = Field(description="When it was promoted (UTC).")
    reason: str = Field(description="The champion gate's reason.")


class ManifestFile(BaseModel):
    """One published file of a run folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="File name inside the run folder.")
    rows: int | None = Field(description="Data rows of a CSV file; null for a chart.")
    bytes: int = Field(description="Size in bytes.")
    sha256: str = Field(description="sha256 of the content.")


def manifest_files(files: dict[str, bytes], rows: dict[str, int]) -> tuple[ManifestFile, ...]:
    """The manifest entries of files about to be published, in their order."""
    return tuple(
        ManifestFile(name=name, rows=rows.get(name), bytes=len(content), sha256=sha256_hex(content))
        for name, content in files.items()
    )


class GroupModel(BaseModel):
    """One model group of a run with several: its series and the model that served them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    series: tuple[str, ...] = Field(description="FRED series ids of the group.")
    model_version: str = Field(description="The group's model (the model_version of its series' rows).")
    model_training_run: str | None = Field(description="The training run folder of that model.")
    champion: bool | None = Field(default=None, description="Training runs: whether the group's model was promoted.")
    champion_gate: str | None = Field(default=None, description="Training runs: the group's champion gate reason.")


def run_models(groups: Mapping[str, GroupModel]) -> dict[str, Any]:
    """The manifest's model fields of a run made by `groups` (RunHeader keyword arguments).

    One group: its model, exactly the fields a run had before groups existed, and no model_groups.
    Several: model_version lists `<group>:<version>` of each, model_training_run is theirs when they
    share it, champion says whether any was promoted, and model_groups has each group's.
    """
    if len(groups) == 1:
        (only,) = groups.values()
        return {
            "model_version": only.model_version,
            "model_training_run": only.model_training_run,
            "champion": only.champion,
            "champion_gate": only.champion_gate,
            "model_groups": None,
        }
    training_runs = {g.model_training_run for g in groups.values()}
    decided = [g.champion for g in groups.values() if g.champion is not None]
    gates = [f"{name}: {g.champion_gate}" for name, g in groups.items() if g.champion_gate is not None]
    return {
        "model_version": ", ".join(f"{name}:{g.model_version}" for name, g in groups.items()),
        "model_training_run": training_runs.pop() if len(training_runs) == 1 else None,
        "champion": any(decided) if decided else None,
        "champion_gate": "; ".join(gates) or None,
        "model_groups": dict(groups),
    }


class RunHeader(StoredJson):
    """What a run's manifest says about the run, before its files are known."""

    format: Literal["market-forecast-run/1"] = Field(default=MANIFEST_FORMAT, description="Layout version.")
    kind: RunKind = Field(description="`training` or `daily`.")
    created_utc: AwareDatetime = Field(description="When the run started (UTC); names the folder.")
    as_of: date = Field(description="The run's reference date.")
    data_source: DataSource = Field(description="`fred` or `demo`.")
    demo_data: bool = Field(description="True when made from the generated demo data.")
    data_start: date = Field(description="First session in actuals.csv.")
    data_through: date = Field(description="Last session observed.")
    model_version: str = Field(
        description="The model that made the predictions and the forecast (several model groups: "
        "`<group>:<version>` of each, comma-separated)."
    )
    model_training_run: str | None = Field(
        description="The training run folder of that model (its model_history.csv and backtest_metrics.csv); "
        "several model groups: the one they share, else null."
    )
    series: tuple[str, ...] = Field(description="FRED series ids in the run.")
    code_version: str = Field(description="Package version, plus the commit when known.")
    flow_run_id: str | None = Field(description="The Prefect flow run that published it.")
    run_folder: str = Field(description="runs/YYYYMMDD_HHMMSS.")
    forced: bool = Field(default=False, description="Daily runs: run with force=True on a day the NYSE was closed.")
    champion: bool | None = Field(
        default=None, description="Training runs: whether its model (several groups: any group's) was promoted."
    )
    champion_gate: str | None = Field(default=None, description="Training runs: the champion gate's reason.")
    model_groups: dict[str, GroupModel] | None = Field(
        default=None,
        description="Runs of several model groups only: each group's series, model and (training runs) gate.",
    )

    def to_bytes(self) -> bytes:
        """The file's content; without model_groups for a run of one group (as before groups existed)."""
        exclude = {"model_groups"} if self.model_groups is None else None
        return self.model_dump_json(indent=2, exclude=exclude).encode()


class RunManifest(RunHeader):
    """runs/<folder>/manifest.json: written after every data file; a folder without it is incomplete."""

    files: tuple[ManifestFile, ...] = Field(
        description=(
            "Every file of the folder but the manifest and `claim.json` (CSVs, then charts), in the order written."
        )
    )

    @classmethod
    def for_files(cls, header: RunHeader, files: dict[str, bytes], rows: dict[str, int]) -> RunManifest:
        """The manifest of `header`'s run holding `files` (name -> content; rows of each CSV)."""
        fields = {name: getattr(header, name) for name in RunHeader.model_fields}
        return cls(**fields, files=manifest_files(files, rows))


class LatestPointer(StoredJson):
    """latest.json: the complete daily run with the latest as_of; written only after its manifest."""

    format: Literal["market-forecast-latest/1"] = Field(default=LATEST_FORMAT, description="Layout version.")
    run_folder: str = Field(description="The run folder, runs/YYYYMMDD_HHMMSS.")
    manifest: str = Field(description="Path of its manifest.json.")
    kind: RunKind = Field(description="Always `daily` (training runs never move it).")
    created_utc: AwareDatetime = Field(description="When that run started (UTC).")
    as_of: date = Field(description="Its reference date.")
    data_through: date = Field(description="Last session it observed.")
    model_version: str = Field(description="The model that made it.")

    @classmethod
    def for_run(cls, manifest: RunManifest) -> LatestPointer:
        """The pointer at a published run."""
        return cls(
            run_folder=manifest.run_folder,
            manifest=f"{manifest.run_folder}/manifest.json",
            kind=manifest.kind,
            created_utc=manifest.created_utc,
            as_of=manifest.as_of,
            data_through=manifest.data_through,
            model_version=manifest.model_version,
        )

    def supersedes(self, current: LatestPointer | None) -> bool:
        """Whether this run replaces `current` as latest: a later as_of, or the same as_of started later.

        A replay of a past day, or an attempt overtaken by a later run of the same day, publishes its
        folder but leaves latest.json on the newer forecast, so Power BI never goes back in time. Two
        runs started in the same second (the second claimed the next folder) are ordered by folder:
        whichever publishes last, latest.json ends on the later one. The same run replaces itself (a
        retried publish).
        """
        if current is None:
            return True
        return (self.as_of, self.created_utc, self.run_folder) >= (
            current.as_of,
            current.created_utc,
            current.run_folder,
        )


class RunClaim(StoredJson):
    """runs/<folder>/claim.json: the first file of a run folder, created only where none exists.

    Two runs started in the same second (two deployments, or a manual run beside a scheduled one)
    never share a folder: the second finds the claim and takes the next second.
    """

    format: Literal["market-forecast-run-claim/1"] = Field(default=CLAIM_FORMAT, description="Layout version.")
    run_folder: str = Field(description="The run folder it claims, runs/YYYYMMDD_HHMMSS.")
    created_utc: AwareDatetime = Field(description="When the claiming run started (UTC).")
    flow_run_id: str | None = Field(description="The Prefect flow run that claimed it.")


STORED_JSON: dict[str, type[StoredJson]] = {
    "model_card.json": ModelCard,
    "manifest.json": RunManifest,
    "latest.json": LatestPointer,
    "champion.json": ChampionPointer,
    "claim.json": RunClaim,
}
