"""Model groups: each group's work in both flows, and the task runner the training fans out to.

Training: one `train-group-<name>` task run per model group does the group's whole work (fetch,
align, train, evaluate, backtest, forecast, gate, save its model version) by calling the stages as
nested task runs, and returns its tables and model card. The task runs are submitted to a task
runner: the flow's own (Prefect's default, threads of the flow's process) or, given a Dask
scheduler address, prefect-dask's `DaskTaskRunner` connected to that existing cluster, whose
workers then run them. A worker needs the project installed and the flow's Prefect API (the task
runs report to it, and every FRED request takes its slot of the shared budget there).

Champions move only after every group has finished (`promote_champions`): a group that fails, or a
worker that dies and is not replaced, leaves every champion where it was. A version folder is
complete once its card is written (the save writes it last).

Daily: `forecast_group` runs one group's champion over the recent window; the flow publishes every
group's tables in one run folder.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.filesystems import WritableFileSystem
from prefect.futures import wait
from prefect.settings import get_current_settings
from prefect.task_runners import TaskRunner

from tasks.adapters.fred import Source
from tasks.adapters.model_store import CurrentChampion, LoadedModel
from tasks.core.contracts import GroupModel, ModelCard
from tasks.core.errors import ModelStoreError, PipelineError, TaskRunnerError
from tasks.core.settings import Settings
from tasks.stages.data import align_sessions_task, daily_fetch_start_task, fetch_all
from tasks.stages.models import (
    check_champion_unchanged_task,
    load_champion_task,
    promote_champion_task,
    save_model_task,
    serialize_model_task,
)
from tasks.stages.predict import forecast_sessions_task, predict_history_task, score_predictions_task
from tasks.stages.publish import build_outputs_task
from tasks.stages.train import (
    backtest_task,
    champion_gate_task,
    describe_model_task,
    fit_ensemble_task,
    train_lstm_task,
)

DASK_ADDRESS_VARIABLE = "MARKET_FORECAST_DASK_ADDRESS"


def this_process() -> str:
    """Where a task runs, for the log and the result: 'pid <pid> on <host>'."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class GroupTrained:
    """What one group's training produced (its model version is saved, not yet promoted).

    Attributes:
        settings: The group's settings (Settings.for_group).
        tables: Its validated output tables.
        card: Its model card (with the gate's decision).
        card_sha256: sha256 of the saved card (what champion.json records).
        data_start: First session of its aligned data.
        data_through: Last session it observed.
        ran_in: The process that trained it (`this_process()`).
    """

    group: str
    settings: Settings
    tables: dict[str, pd.DataFrame]
    card: ModelCard
    card_sha256: str
    data_start: date
    data_through: date
    ran_in: str

    def model(self) -> GroupModel:
        """The group in the run's manifest."""
        gate = self.card.champion_gate
        return GroupModel(
            series=self.settings.series,
            model_version=self.card.version,
            model_training_run=self.card.training_run_folder,
            champion=gate.promoted if gate else None,
            champion_gate=gate.reason if gate else None,
        )


@task(name="train-group", cache_policy=NO_CACHE)
def train_group_task(
    group: str,
    settings: Settings,
    *,
    source: Source,
    storage: WritableFileSystem,
    champion: CurrentChampion,
    as_of: date,
    created_utc: datetime,
    run_folder: str,
) -> GroupTrained:
    """One model group's training, from its data to its saved model version, wherever the runner puts it.

    Args:
        group: The group's name.
        settings: The group's settings (Settings.for_group): its series, its history start.
        source: Where the data comes from.
        storage: The model store (and run store) block.
        champion: The group's current champion, for the gate.
        as_of: The run's reference date.
        created_utc: The run's time (names the model version).
        run_folder: The training run's folder (recorded in the card).

    Returns:
        The group's tables, card and where it ran; the version is saved, not promoted.
    """
    where = this_process()
    get_run_logger().info("Model group %s (%s): training in %s", group, ", ".join(settings.series), where)
    raw = fetch_all(source, settings, start=settings.history_start, end=as_of)
    aligned = align_sessions_task(raw, start=settings.history_start, as_of=as_of, settings=settings)

    trained = train_lstm_task(aligned.levels, settings)
    ensemble = fit_ensemble_task(trained, aligned.levels, settings)
    predictions = predict_history_task(ensemble, aligned.levels, settings, split_dates=trained.split_dates)
    metrics = score_predictions_task(predictions, splits=("test",), mase_scale=ensemble.mase_scale)
    backtest = backtest_task(trained, ensemble, aligned.levels, settings)
    forecast = forecast_sessions_task(ensemble, aligned.levels, settings, z_quantiles=backtest.z_quantiles)
    model = serialize_model_task(trained, created_utc=created_utc)
    tables = build_outputs_task(
        aligned,
        predictions=predictions,
        metrics=metrics,
        forecast=forecast,
        history=trained.history,
        backtest=backtest.metrics,
        model_version=model.version,
        data_source=source.kind,
        as_of=as_of,
        settings=settings,
    )
    gate = champion_gate_task(
        backtest.metrics, champion, settings, data_source=source.kind, data_through=aligned.last_date
    )
    card = describe_model_task(
        trained,
        ensemble,
        backtest,
        metrics=metrics,
        version=model.version,
        files=model.hashes(),
        settings=settings,
        created_utc=created_utc,
        as_of=as_of,
        data_source=source.kind,
        training_run_folder=run_folder,
        gate=gate,
    )
    card_sha = save_model_task(storage, card, model.files, settings, group=group)
    return GroupTrained(group, settings, tables, card, card_sha, aligned.first_date, aligned.last_date, where)


def dask_address_from(parameter: str | None, env: Mapping[str, str]) -> str | None:
    """The Dask scheduler to run on: the flow parameter, else MARKET_FORECAST_DASK_ADDRESS, else none (local)."""
    address = (parameter or env.get(DASK_ADDRESS_VARIABLE, "")).strip()
    return address or None


@contextmanager
def group_task_runner(dask_address: str | None) -> Iterator[TaskRunner[Any]]:
    """The task runner the groups are submitted to, for the duration of the block.

    Without an address, the flow's own task runner (Prefect's default: threads of this process).
    With one, prefect-dask's DaskTaskRunner connected to the existing cluster at that address (the
    `dask` extra of this package); it is never started here.

    Raises:
        TaskRunnerError: prefect-dask is not installed, the flow has no Prefect server its workers
            could reach (an ephemeral API), or no scheduler answers at the address.
    """
    if not dask_address:
        context = FlowRunContext.get()
        if context is None or context.task_runner is None:
            raise TaskRunnerError("The model groups are submitted from inside a flow run only.")
        yield context.task_runner
        return
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError:
        raise TaskRunnerError(
            f"dask_address={dask_address!r} needs prefect-dask: install market-forecast[dask] "
            "(the training image has it), or run without dask_address."
        ) from None
    if not get_current_settings().api.url:
        raise TaskRunnerError(
            f"The flow runs on a temporary Prefect API that the Dask workers at {dask_address} cannot reach: set "
            "PREFECT_API_URL (for the flow and for every worker) to the Prefect server, or run without dask_address."
        )
    with DaskTaskRunner(address=dask_address) as runner:
        try:
            workers = len(runner.client.scheduler_info().get("workers", {}))
        except (OSError, TimeoutError) as exc:
            raise TaskRunnerError(
                f"No Dask scheduler answers at {dask_address} ({type(exc).__name__}: {exc}). Start the cluster, "
                "or check the address (tcp://HOST:8786), or run without dask_address."
            ) from None
        get_run_logger().info("Dask cluster at %s: %d worker(s)", dask_address, workers)
        yield runner


def train_groups(
    settings: Settings,
    *,
    source: Source,
    storage: WritableFileSystem,
    champions: Mapping[str, CurrentChampion],
    as_of: date,
    created_utc: datetime,
    run_folder: str,
    dask_address: str | None,
) -> dict[str, GroupTrained]:
    """Train every model group at once, one `train-group-<name>` task run each, on the task runner.

    Waits for all of them; if any failed, the first failure is raised (after logging every failed
    group), so that no champion is promoted.
    """
    logger = get_run_logger()
    groups = list(settings.model_groups)
    with group_task_runner(dask_address) as runner:
        logger.info("Training %d model group(s) on %s: %s", len(groups), dask_address or "this process", groups)
        futures = {
            name: runner.submit(
                train_group_task.with_options(task_run_name=f"train-group-{name}"),
                parameters={
                    "group": name,
                    "settings": settings.for_group(name),
                    "source": source,
                    "storage": storage,
                    "champion": champions.get(name, CurrentChampion(version=None, card=None)),
                    "as_of": as_of,
                    "created_utc": created_utc,
                    "run_folder": run_folder,
                },
            )
            for name in groups
        }
        wait(list(futures.values()))
        failed = [name for name, future in futures.items() if not future.state.is_completed()]
        for name in failed:
            logger.error("Model group %s failed: %s", name, futures[name].state.message)
        if failed:
            futures[failed[0]].result()  # raises the group's own error
            raise TaskRunnerError(f"Model group(s) {failed} did not complete: {futures[failed[0]].state}")
        results: dict[str, GroupTrained] = {name: future.result() for name, future in futures.items()}
    for name, trained in results.items():
        logger.info("Model group %s: model %s, trained in %s", name, trained.card.version, trained.ran_in)
    return results


def _promoted(groups: Mapping[str, GroupTrained]) -> dict[str, GroupTrained]:
    """The groups whose model the gate promoted."""
    return {
        name: trained
        for name, trained in groups.items()
        if trained.card.champion_gate is not None and trained.card.champion_gate.promoted
    }


def confirm_champions(
    storage: WritableFileSystem, groups: Mapping[str, GroupTrained], *, replacing: Mapping[str, str | None]
) -> None:
    """Fail (ChampionMovedError) before the training run publishes, if a group's champion.json moved during it.

    `replacing`: the version each group's champion.json named when the gate read it (None: none). Another
    training run may have promoted its model meanwhile; this run's gate decision is then stale, and its
    folder must not report its model as promoted.
    """
    for name, trained in _promoted(groups).items():
        check_champion_unchanged_task(
            storage, trained.card, replaces=replacing.get(name), settings=trained.settings, group=name
        )


def promote_champions(
    storage: WritableFileSystem,
    groups: Mapping[str, GroupTrained],
    *,
    replacing: Mapping[str, str | None],
    promoted_utc: datetime,
) -> None:
    """Point each group's champion.json at its new version if the gate promoted it (all groups trained).

    `replacing`: as for `confirm_champions`; a champion.json that names another version by now is left
    alone (`promote_champion`). Every group is tried: one that cannot be promoted does not keep the
    others, which the published folder already reports as promoted, from being promoted; the run then
    fails with what went wrong (ModelStoreError naming each group when several failed).
    """
    failed: dict[str, PipelineError] = {}
    for name, trained in _promoted(groups).items():
        try:
            promote_champion_task(
                storage,
                trained.card,
                trained.card_sha256,
                replaces=replacing.get(name),
                promoted_utc=promoted_utc,
                settings=trained.settings,
                group=name,
            )
        except PipelineError as exc:
            failed[name] = exc
    if len(failed) == 1:
        raise next(iter(failed.values()))
    if failed:
        raise ModelStoreError(
            f"The promotions of {len(failed)} model groups failed: "
            + "; ".join(f"{name}: {exc}" for name, exc in failed.items())
        ) from next(iter(failed.values()))


# ---------------------------------------------------------------- daily


@dataclass(frozen=True)
class GroupForecast:
    """One group's part of a daily run.

    Attributes:
        champion: The group's champion (its `settings` carry the champion's input windows).
        tables: Its validated output tables.
        data_start: First session of its actuals.
        data_through: Last session it observed.
    """

    group: str
    champion: LoadedModel
    tables: dict[str, pd.DataFrame]
    data_start: date
    data_through: date

    def model(self) -> GroupModel:
        """The group in the run's manifest."""
        return GroupModel(
            series=self.champion.settings.series,
            model_version=self.champion.version,
            model_training_run=self.champion.card.training_run_folder,
        )


def forecast_group(
    group: str,
    settings: Settings,
    *,
    storage: WritableFileSystem,
    source: Source,
    as_of: date,
    lookback_sessions: int,
) -> GroupForecast:
    """One group's daily work: its champion, its recent window, predictions, scores, forecast, tables."""
    champion = load_champion_task(storage, settings, data_source=source.kind, as_of=as_of, group=group)
    settings = champion.settings  # the champion's input windows
    start = daily_fetch_start_task(as_of, lookback_sessions=lookback_sessions, settings=settings)
    raw = fetch_all(source, settings, start=start, end=as_of)
    aligned = align_sessions_task(raw, start=start, as_of=as_of, settings=settings)
    first_date = aligned.lookback_start(lookback_sessions)
    ensemble = champion.ensemble  # built from the card once, for the predictions and the forecast
    predictions = predict_history_task(
        ensemble, aligned.levels, settings, split_dates=champion.split_dates, first_date=first_date
    )
    metrics = score_predictions_task(predictions, mase_scale=champion.card.mase_scale)
    forecast = forecast_sessions_task(
        ensemble, aligned.levels, settings, z_quantiles=champion.card.interval_quantiles()
    )
    tables = build_outputs_task(
        aligned,
        predictions=predictions,
        metrics=metrics,
        forecast=forecast,
        model_version=champion.version,
        data_source=source.kind,
        as_of=as_of,
        settings=settings,
        first_date=first_date,
    )
    return GroupForecast(group, champion, tables, first_date, aligned.last_date)
