"""Training stages: fit the LSTM and its ensemble, backtest walk-forward, decide promotion, describe it in a card."""

from __future__ import annotations

import platform
from datetime import date, datetime
from importlib import metadata

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.adapters.model_store import CurrentChampion
from tasks.core.backtest import BacktestResult, run_backtest
from tasks.core.contracts import GateDecision, ModelCard
from tasks.core.ensemble import Ensemble, fit_ensemble
from tasks.core.promotion import gate_decision
from tasks.core.settings import Settings
from tasks.core.training import TrainedModel, build_model_card, fit_lstm, refit_ensemble
from tasks.ops.artifacts import progress_reporter


@task(name="train-lstm", cache_policy=NO_CACHE)
def train_lstm_task(levels: pd.DataFrame, settings: Settings) -> TrainedModel:
    """Fit the model, logging each epoch's losses and showing progress in the Prefect UI."""
    logger = get_run_logger()
    progress = progress_reporter("LSTM training epochs")

    def on_epoch_end(epoch: int, logs: dict[str, float]) -> None:
        logger.info(
            "epoch %d/%d: loss %.5f, val_loss %.5f",
            epoch,
            settings.epochs,
            logs.get("loss", float("nan")),
            logs.get("val_loss", float("nan")),
        )
        progress(epoch, settings.epochs)

    trained = fit_lstm(levels, settings, on_epoch_end=on_epoch_end)
    logger.info(
        "Trained on the sessions from %s up to (not including) %s (validation slice from %s); test part "
        "%s .. %s held out; shrinkage %s",
        trained.data_start,
        trained.split_dates.test_start,
        trained.split_dates.validation_start,
        trained.split_dates.test_start,
        trained.split_dates.data_end,
        ", ".join(f"{s}={a:.2f}" for s, a in zip(settings.series, trained.scaler.shrinkage_array(), strict=True)),
    )
    return trained


@task(name="fit-ensemble", cache_policy=NO_CACHE)
def fit_ensemble_task(trained: TrainedModel, levels: pd.DataFrame, settings: Settings) -> Ensemble:
    """Fit the ensemble's weights on rolling origins of the training part, and log them."""
    ensemble = fit_ensemble(trained.predictor, trained.scaler, levels, split=trained.split, settings=settings)
    get_run_logger().info(
        "Ensemble weights by series and horizon (training part only):\n%s",
        "\n".join(
            f"{row.series_id} h={row.horizon}: "
            + ", ".join(f"{member} {weight:.2f}" for member, weight in sorted(row.weights.items()))
            for row in ensemble.card.weights
        ),
    )
    return ensemble


@task(name="walk-forward-backtest", cache_policy=NO_CACHE)
def backtest_task(
    trained: TrainedModel, ensemble: Ensemble, levels: pd.DataFrame, settings: Settings
) -> BacktestResult:
    """Backtest the freshly trained ensemble over its test part; refit on schedule if configured.

    A backtest still running after `settings.backtest.progress_after_seconds` shows its progress
    (origins forecast) in the Prefect UI; refits make it take minutes.
    """
    logger = get_run_logger()
    show_progress = progress_reporter(
        "Walk-forward backtest origins", show_after=settings.backtest.progress_after_seconds
    )

    def on_progress(done: int, total: int) -> None:
        logger.info("Backtest: %d/%d origins forecast", done, total)
        show_progress(done, total)

    def refit(history: pd.DataFrame) -> Ensemble:
        logger.info("Backtest refit on %d sessions up to %s", len(history), history.index[-1].date())
        return refit_ensemble(history, settings)

    result = run_backtest(
        ensemble,
        levels,
        test_start_row=trained.split.train_end,
        horizons=settings.backtest.horizons,
        origin_step=settings.backtest.origin_step,
        refit_every=settings.backtest.refit_every,
        refit=refit,
        calibration_start_row=trained.split.validation_start,
        on_progress=on_progress,
    )
    table = result.metrics.pivot(index="series_id", columns="horizon", values="rel_mae")
    pvalues = result.metrics.pivot(index="series_id", columns="horizon", values="dm_pvalue")
    logger.info(
        "Backtest over %d origins, rel_mae (MAE / random-walk MAE) by horizon:\n%s\nDiebold-Mariano p-value "
        "against the random walk:\n%s",
        result.n_origins,
        table.round(3).to_string(),
        pvalues.round(3).to_string(),
    )
    return result


@task(name="champion-gate", cache_policy=NO_CACHE)
def champion_gate_task(
    backtest: pd.DataFrame,
    champion: CurrentChampion,
    settings: Settings,
    *,
    data_source: str,
    data_through: date,
) -> GateDecision:
    """Decide whether the new model replaces the group's current champion, and log why."""
    decision = gate_decision(
        backtest,
        champion.card,
        settings,
        data_source=data_source,
        data_through=data_through,
        unusable_champion=champion.unusable,
    )
    get_run_logger().info("Champion gate: %s", decision.reason)
    return decision


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's numbers, for its card."""
    versions = {"python": platform.python_version()}
    packages = ("tensorflow", "tensorflow-cpu", "keras", "numpy", "pandas", "prefect", "market-forecast")
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


@task(name="describe-model", cache_policy=NO_CACHE)
def describe_model_task(
    trained: TrainedModel,
    ensemble: Ensemble,
    backtest: BacktestResult,
    *,
    metrics: pd.DataFrame,
    version: str,
    files: dict[str, str],
    settings: Settings,
    created_utc: datetime,
    as_of: date,
    data_source: str,
    training_run_folder: str,
    gate: GateDecision,
) -> ModelCard:
    """The model card of the trained model."""
    return build_model_card(
        trained,
        ensemble,
        version=version,
        settings=settings,
        created_utc=created_utc,
        as_of=as_of,
        data_source=data_source,
        metrics=metrics,
        backtest=backtest.metrics,
        z_quantiles=backtest.z_quantiles,
        files=files,
        library_versions=library_versions(),
        training_run_folder=training_run_folder,
        gate=gate,
    )
