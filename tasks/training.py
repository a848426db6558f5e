"""Training stage: fit the LSTM on the training part, describe it in a model card, gate promotion.

`fit_lstm` is deterministic for a given seed and sees only the training part: the scaler is fitted
on its rows, the network on its windows, and the shrinkage towards the random walk on its
validation slice (the last `validation_fraction` of it). The test part is left for evaluation.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from tasks.errors import ModelMismatchError
from tasks.features import Scaler, Split, chronological_split, make_features, training_arrays
from tasks.forecast import SplitDates
from tasks.model import EpochCallback, build_model, fit_shrinkage, predictor_for, set_determinism, train_network
from tasks.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    import keras

CARD_FORMAT = "market-forecast-model-card/1"


@dataclass(frozen=True)
class TrainedModel:
    """A fitted network with everything needed to use and describe it."""

    model: keras.Model
    scaler: Scaler
    history: pd.DataFrame
    split: Split
    split_dates: SplitDates
    data_start: date


def fit_lstm(levels: pd.DataFrame, settings: Settings, *, on_epoch_end: EpochCallback | None = None) -> TrainedModel:
    """Fit scaler, network and shrinkage on the training part of `levels`.

    Args:
        levels: aligned levels (consecutive sessions), columns = settings.series.
        settings: pipeline settings (sequence length, split fractions, epochs, seed, ...).
        on_epoch_end: progress callback, see tasks.model.train_network.

    Returns:
        The trained model, its scaler (with shrinkage), per-epoch history and split.
    """
    features = make_features(levels, settings.level_window)
    split = chronological_split(
        len(features),
        sequence_length=settings.sequence_length,
        test_fraction=settings.test_fraction,
        validation_fraction=settings.validation_fraction,
    )
    scaler = Scaler.fit(features.iloc[: split.train_end])
    scaled = scaler.transform(features.to_numpy())
    n_series = levels.shape[1]
    train = training_arrays(scaled, n_series, split, "train")
    validation = training_arrays(scaled, n_series, split, "validation")

    set_determinism(settings.seed)
    model = build_model(
        sequence_length=settings.sequence_length,
        n_features=scaled.shape[1],
        n_outputs=n_series,
        units=settings.lstm_units,
        learning_rate=settings.learning_rate,
        dropout=settings.lstm_dropout,
        loss=settings.loss,
    )
    history = train_network(
        model,
        train,
        validation,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        on_epoch_end=on_epoch_end,
    )
    mean, scale = scaler.return_moments()
    predicted = predictor_for(model)(validation[0]) * scale + mean
    actual = validation[1] * scale + mean
    scaler = scaler.with_shrinkage(fit_shrinkage(predicted, actual, confidence_z=settings.shrinkage_confidence_z))
    dates = features.index
    split_dates = SplitDates(
        validation_start=dates[split.validation_start].date(),
        test_start=dates[split.train_end].date(),
        data_end=dates[-1].date(),
    )
    return TrainedModel(model, scaler, history, split, split_dates, levels.index[0].date())


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's numbers, for its card."""
    versions = {"python": platform.python_version()}
    for package in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "pandas", "scikit-learn", "prefect", "market-forecast"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_model_card(
    trained: TrainedModel,
    *,
    version: str,
    settings: Settings,
    created_utc: str,
    as_of: date,
    data_source: str,
    metrics: pd.DataFrame,
    backtest: pd.DataFrame,
    z_quantiles: pd.DataFrame,
    files: dict[str, str],
) -> dict[str, Any]:
    """The model card: what the model is, what it saw, how good it is, and its files' sha256."""
    return {
        "format": CARD_FORMAT,
        "version": version,
        "created_utc": created_utc,
        "as_of": as_of.isoformat(),
        "data_source": data_source,
        "series": list(settings.series),
        "sequence_length": settings.sequence_length,
        "architecture": f"Input({settings.sequence_length}, {2 * len(settings.series)}) -> "
        f"LSTM({settings.lstm_units}, dropout {settings.lstm_dropout:g}) -> Dense({len(settings.series)}); "
        f"target: next-session log-returns, {settings.loss} loss",
        "data": {
            "start": trained.data_start.isoformat(),
            "validation_start": trained.split_dates.validation_start.isoformat(),
            "test_start": trained.split_dates.test_start.isoformat(),
            "end": trained.split_dates.data_end.isoformat(),
        },
        "shrinkage": dict(zip(settings.series, trained.scaler.shrinkage_array().tolist())),
        "settings": settings.model_dump(mode="json"),
        "metrics_test": json_records(metrics),
        "backtest": json_records(backtest),
        "interval_z_quantiles": json_records(z_quantiles),
        "library_versions": library_versions(),
        "files": files,
    }


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-ready records: dates as ISO text, NaN and infinities as None."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in out.to_dict("records")
    ]


def split_dates_from_card(card: dict[str, Any]) -> SplitDates:
    """The split boundaries recorded in a model card."""
    data = card["data"]
    return SplitDates(
        validation_start=date.fromisoformat(data["validation_start"]),
        test_start=date.fromisoformat(data["test_start"]),
        data_end=date.fromisoformat(data["end"]),
    )


def interval_quantiles_from_card(card: dict[str, Any]) -> pd.DataFrame:
    """The standardised error quantiles the card's backtest recorded (for forecast intervals)."""
    return pd.DataFrame(card["interval_z_quantiles"])


def check_model_card(card: dict[str, Any], settings: Settings, *, data_source: str) -> None:
    """Fail clearly when a stored model does not fit this run's settings or data.

    Raises:
        ModelMismatchError: series, sequence length or data source differ.
    """
    problems = []
    if tuple(card.get("series", ())) != settings.series:
        problems.append(f"it was trained on series {card.get('series')}, this run asks for {list(settings.series)}")
    if card.get("sequence_length") != settings.sequence_length:
        problems.append(
            f"its sequence_length is {card.get('sequence_length')}, this run asks for {settings.sequence_length}"
        )
    if card.get("data_source") != data_source:
        problems.append(f"it was trained on {card.get('data_source')} data, this run uses {data_source} data")
    if problems:
        raise ModelMismatchError(
            f"The champion model {card.get('version')} cannot serve this run: " + "; ".join(problems)
            + ". Run the train-model flow with the same settings and data source to train a matching champion."
        )


def gate_decision(backtest: pd.DataFrame, champion_card: dict[str, Any] | None, settings: Settings, *, data_source: str) -> tuple[bool, str]:
    """Whether a newly trained model should become champion, and why.

    The challenger's backtest MASE at `champion_gate.horizon` must be at most
    `champion_gate.max_mase` (1.0: not worse than the random walk) on every gated series, and its
    mean over those series at most the champion's (as recorded in its model card; a tie goes to the
    newer model, which has seen more recent data). A champion trained for other series or another
    data source is not compared. A series on which the network showed no skill on the validation
    slice is forecast exactly as the random walk (shrinkage 0), so it scores MASE 1.000 and passes.

    Returns:
        (promote, reason) where reason is a sentence for the run summary.
    """
    gate = settings.champion_gate
    series = settings.gated_series
    at_h = backtest[backtest["horizon"] == gate.horizon].set_index("series_id")["mase"]
    scores = {s: float(at_h.get(s, np.nan)) for s in series}
    failing = {s: m for s, m in scores.items() if not m <= gate.max_mase}
    if failing:
        shown = ", ".join(f"{s} {m:.3f}" for s, m in failing.items())
        return False, (
            f"kept the old champion: backtest MASE at {gate.horizon} session(s) must be at most "
            f"{gate.max_mase:g} on {', '.join(series)}; the new model has {shown}"
        )
    challenger = float(np.mean(list(scores.values())))
    if champion_card is None:
        return True, f"promoted: first model, backtest mean MASE {challenger:.4f} at {gate.horizon} session(s)"
    comparable = (
        tuple(champion_card.get("series", ())) == settings.series and champion_card.get("data_source") == data_source
    )
    old = pd.DataFrame(champion_card.get("backtest") or [])
    if not comparable or old.empty or "mase" not in old:
        return True, (
            f"promoted: the champion {champion_card.get('version')} was trained for other series or data, "
            f"backtest mean MASE {challenger:.4f}"
        )
    old_at_h = old[old["horizon"] == gate.horizon].set_index("series_id")["mase"]
    incumbent = float(np.mean([old_at_h.get(s, np.nan) for s in series]))
    if np.isfinite(incumbent) and not challenger <= incumbent:
        return False, (
            f"kept the old champion {champion_card.get('version')}: its backtest mean MASE "
            f"{incumbent:.4f} at {gate.horizon} session(s) is better than the new model's {challenger:.4f}"
        )
    return True, f"promoted: backtest mean MASE {challenger:.4f} at {gate.horizon} session(s), champion's {incumbent:.4f}"


# ---------------------------------------------------------------- tasks


@task(name="train-lstm", cache_policy=NO_CACHE)
def train_lstm_task(levels: pd.DataFrame, settings: Settings) -> TrainedModel:
    """Fit the model, logging each epoch's losses and showing progress in the Prefect UI."""
    logger = get_run_logger()
    progress = create_progress_artifact(progress=0.0, description="LSTM training epochs")
    last_update = [time.monotonic()]

    def on_epoch_end(epoch: int, logs: dict[str, float]) -> None:
        logger.info(
            "epoch %d/%d: loss %.5f, val_loss %.5f", epoch, settings.epochs, logs.get("loss", float("nan")), logs.get("val_loss", float("nan"))
        )
        # One API call per second at most: an epoch can take a few milliseconds.
        if progress is not None and (epoch == settings.epochs or time.monotonic() - last_update[0] >= 1.0):
            update_progress_artifact(progress, progress=100.0 * epoch / settings.epochs)
            last_update[0] = time.monotonic()

    trained = fit_lstm(levels, settings, on_epoch_end=on_epoch_end)
    logger.info(
        "Trained on %s up to %s (validation slice from %s); test part %s .. %s held out; shrinkage %s",
        trained.data_start,
        trained.split_dates.test_start,
        trained.split_dates.validation_start,
        trained.split_dates.test_start,
        trained.split_dates.data_end,
        ", ".join(f"{s}={a:.2f}" for s, a in zip(settings.series, trained.scaler.shrinkage_array())),
    )
    return trained


@task(name="champion-gate", cache_policy=NO_CACHE)
def champion_gate_task(backtest: pd.DataFrame, champion_card: dict[str, Any] | None, settings: Settings, *, data_source: str) -> tuple[bool, str]:
    """Decide whether the new model replaces the champion, and log why."""
    promote, reason = gate_decision(backtest, champion_card, settings, data_source=data_source)
    get_run_logger().info("Champion gate: %s", reason)
    return promote, reason
