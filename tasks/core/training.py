"""Training (pure): fit the LSTM on the training part and describe the result in a model card.

`fit_lstm` is deterministic for a given seed and sees only the training part: the scaler is fitted
on its rows, the network on its windows, and the shrinkage towards the random walk on its
validation slice (the last `validation_fraction` of it). The test part is left for evaluation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from tasks.core.contracts import CardDataRange, GateDecision, ModelCard, table_records
from tasks.core.ensemble import Ensemble, fit_ensemble
from tasks.core.features import Scaler, Split, SplitDates, chronological_split, make_features, training_arrays
from tasks.core.model import (
    EpochCallback,
    Predictor,
    build_model,
    fit_shrinkage,
    predictor_for,
    set_determinism,
    train_network,
)
from tasks.core.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    import keras

# set_determinism resets process-wide random state (Python, NumPy, TensorFlow): one fit at a time
# per process, so a fit in flight never has it reset under it (model groups trained by a task
# runner's threads). The weights and dropout draw from seeds of their own (build_model's `seed`).
_FIT_LOCK = threading.RLock()


@dataclass(frozen=True)
class TrainedModel:
    """A fitted network with everything needed to use and describe it."""

    model: keras.Model
    scaler: Scaler
    history: pd.DataFrame
    split: Split
    split_dates: SplitDates
    data_start: date

    @property
    def predictor(self) -> Predictor:
        """The network as a batch predictor (one traced TensorFlow function)."""
        return predictor_for(self.model)


def training_split(n_rows: int, settings: Settings, *, hold_out: bool = True) -> Split:
    """The chronological split of `n_rows` feature rows that `fit_lstm` trains and holds out by.

    hold_out=False: no test part (`settings.test_fraction` is not held out).
    """
    return chronological_split(
        n_rows,
        sequence_length=settings.sequence_length,
        test_fraction=settings.test_fraction if hold_out else 0.0,
        validation_fraction=settings.validation_fraction,
    )


def fit_lstm(
    levels: pd.DataFrame,
    settings: Settings,
    *,
    on_epoch_end: EpochCallback | None = None,
    hold_out: bool = True,
) -> TrainedModel:
    """Fit scaler, network and shrinkage on the training part of `levels`.

    Args:
        levels: aligned levels (consecutive sessions), columns = settings.series.
        settings: pipeline settings (sequence length, split fractions, epochs, seed, ...).
        on_epoch_end: progress callback, see tasks.core.model.train_network.
        hold_out: hold the last `settings.test_fraction` out as the test part. False for a
            backtest's refit (`refit_ensemble`): it trains on every session up to its origin, and
            its split dates then put the test part after the data (no row is labelled test).

    Returns:
        The trained model, its scaler (with shrinkage), per-epoch history and split.
    """
    features = make_features(levels, settings.level_window)
    split = training_split(len(features), settings, hold_out=hold_out)
    scaler = Scaler.fit(features.iloc[: split.train_end])
    scaled = scaler.transform(features.to_numpy())
    n_series = levels.shape[1]
    train = training_arrays(scaled, n_series, split, "train")
    validation = training_arrays(scaled, n_series, split, "validation")

    with _FIT_LOCK:
        set_determinism(settings.seed)
        model = build_model(
            sequence_length=settings.sequence_length,
            n_features=scaled.shape[1],
            n_outputs=n_series,
            units=settings.lstm_units,
            learning_rate=settings.learning_rate,
            dropout=settings.lstm_dropout,
            loss=settings.loss,
            seed=settings.seed,
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
    data_end = dates[-1].date()
    split_dates = SplitDates(
        validation_start=dates[split.validation_start].date(),
        test_start=dates[split.train_end].date() if split.train_end < len(dates) else data_end + timedelta(days=1),
        data_end=data_end,
    )
    return TrainedModel(model, scaler, history, split, split_dates, levels.index[0].date())


def refit_ensemble(history: pd.DataFrame, settings: Settings) -> Ensemble:
    """The ensemble refitted at a backtest origin: network, scaler, shrinkage and weights on `history`.

    `history` is every session up to the origin (an expanding window); nothing of it is held out,
    so the refit has seen more recent data than the model it replaces, never less.
    """
    refitted = fit_lstm(history, settings, hold_out=False)
    return fit_ensemble(refitted.predictor, refitted.scaler, history, split=refitted.split, settings=settings)


def model_version_name(created_utc: datetime, model_sha256: str) -> str:
    """'YYYYMMDD_HHMMSS-<first 8 hex of the model file's sha256>'."""
    return f"{created_utc:%Y%m%d_%H%M%S}-{model_sha256[:8]}"


def build_model_card(
    trained: TrainedModel,
    ensemble: Ensemble,
    *,
    version: str,
    settings: Settings,
    created_utc: datetime,
    as_of: date,
    data_source: str,
    metrics: pd.DataFrame,
    backtest: pd.DataFrame,
    z_quantiles: pd.DataFrame,
    files: dict[str, str],
    library_versions: dict[str, str],
    training_run_folder: str,
    gate: GateDecision,
) -> ModelCard:
    """The model card: what the model is, its ensemble, what it saw, how good it is, and its files' sha256."""
    n = len(settings.series)
    return ModelCard(
        version=version,
        created_utc=created_utc,
        as_of=as_of,
        data_source=data_source,  # type: ignore[arg-type]  # validated by the model
        series=settings.series,
        sequence_length=settings.sequence_length,
        architecture=f"Input({settings.sequence_length}, {2 * n}) -> LSTM({settings.lstm_units}, dropout "
        f"{settings.lstm_dropout:g}) -> Dense({n}); target: next-session log-returns, {settings.loss} loss",
        data=CardDataRange(
            start=trained.data_start,
            validation_start=trained.split_dates.validation_start,
            test_start=trained.split_dates.test_start,
            end=trained.split_dates.data_end,
        ),
        shrinkage=dict(zip(settings.series, trained.scaler.shrinkage_array().tolist(), strict=True)),
        settings=settings.model_dump(mode="json"),
        metrics_test=table_records(metrics),
        backtest=table_records(backtest),
        interval_z_quantiles=table_records(z_quantiles),
        library_versions=library_versions,
        files=files,
        training_run_folder=training_run_folder,
        champion_gate=gate,
        ensemble=ensemble.card,
        mase_scale=ensemble.mase_scale,
    )
