"""The training flow `train-model`: FRED -> aligned sessions -> LSTM -> honest evaluation -> model store.

Run it on the embedded demo data with `python -m flows.train_model` (see README.md). Each model
group (settings.groups; by default one group of every series) is trained as one task run, all at
once, on Prefect's default task runner or, given a Dask scheduler address, on that cluster; the
champions move only when every group has finished, and one run folder holds every group's tables.
Each stage is a task; this module only wires them.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow
from pydantic import AfterValidator, Field, ValidationInfo

from flows.cli import run_from_command_line
from flows.common import (
    AsOf,
    dask_scheduler_address,
    run_header,
    run_name,
    today_in_new_york,
    utc_now,
)
from tasks.core.settings import Settings
from tasks.core.windows import short_groups
from tasks.ops.alerts import notify_run_failure
from tasks.stages.data import resolve_source_task
from tasks.stages.groups import confirm_champions, promote_champions, train_groups
from tasks.stages.models import read_current_champion_task
from tasks.stages.publish import claimed_run_folder, publish_outputs, resolve_storage_task


def _groups_hold_their_windows(settings: Settings, info: ValidationInfo) -> Settings:
    """Parameter validation: every model group's history up to as_of (a parameter before it) is long enough."""
    problems = short_groups(settings, as_of=info.data.get("as_of") or today_in_new_york())
    if problems:
        raise ValueError("; ".join(problems))
    return settings


TrainingSettings = Annotated[Settings, AfterValidator(_groups_hold_their_windows), Field(validate_default=True)]


@flow(name="train-model", flow_run_name=lambda: run_name("train"), log_prints=True, on_failure=[notify_run_failure])
def train_model(
    as_of: AsOf = None,
    *,
    settings: TrainingSettings = Settings(),
    output_dir: str = "data",
    storage_block: str | None = None,
    fred_block: str | None = None,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Train, evaluate on held-out data, backtest, forecast, and promote each group's model if it earns it.

    Args:
        as_of: Reference date, at the latest today; no observation after it is used. Default: today in New York.
        settings: Pipeline settings (series and model groups, windows, epochs, split, ...).
        output_dir: Local folder for models and runs when no storage_block is given.
        storage_block: A saved storage block, '<block-type-slug>/<name>' (e.g.
            'azure-blob-storage-container/market-forecast'); None = output_dir.
        fred_block: Name of a saved FredCredentials block; None = FRED_API_KEY from the
            environment, or the offline demo data when that is not set.
        dask_address: Dask scheduler (tcp://HOST:8786) whose workers train the model groups;
            None = MARKET_FORECAST_DASK_ADDRESS, else this process.

    Returns:
        A summary: run folder, model version, whether it was promoted and why (each group's under `groups`).
    """
    as_of = as_of or today_in_new_york()
    created = utc_now()
    storage = resolve_storage_task(storage_block, output_dir)
    # Read the champions first: a storage problem (e.g. a missing container) fails before training.
    champions = {
        name: read_current_champion_task(storage, settings.for_group(name), group=name)
        for name in settings.model_groups
    }
    with claimed_run_folder(storage, created, settings) as folder:
        source = resolve_source_task(fred_block)
        groups = train_groups(
            settings,
            source=source,
            storage=storage,
            champions=champions,
            as_of=as_of,
            created_utc=created,
            run_folder=folder,
            dask_address=dask_scheduler_address(dask_address),
        )
        replacing = {name: champion.version for name, champion in champions.items()}
        # Before publishing: the folder must not call its model promoted if another run promoted one meanwhile.
        confirm_champions(storage, groups, replacing=replacing)
        header = run_header(
            kind="training",
            created_utc=created,
            as_of=as_of,
            data_source=source.kind,
            data_start=min(g.data_start for g in groups.values()),
            data_through=max(g.data_through for g in groups.values()),
            models={name: g.model() for name, g in groups.items()},
            run_folder=folder,
            settings=settings,
        )
        # latest.json is what Power BI shows: daily forecasts only. A training run is found through
        # models/champion.json and the daily manifests' model_training_run.
        published = publish_outputs(
            storage,
            [g.tables for g in groups.values()],
            header,
            move_latest=False,
            settings=settings,
            note=f"Champion gate: {header.champion_gate}",
        )
    # Only now, with the training run's folder complete: a champion's training_run_folder (what the
    # daily runs' model_training_run and Power BI's model tables point at) is never half-written.
    promote_champions(storage, groups, replacing=replacing, promoted_utc=utc_now())
    return {
        "run_folder": folder,
        "location": published.location,
        "model_version": header.model_version,
        "promoted": bool(header.champion),
        "reason": header.champion_gate,
        "data_source": source.kind,
        "data_through": header.data_through.isoformat(),
        "groups": {
            name: {
                "model_version": g.card.version,
                "promoted": bool(g.card.champion_gate and g.card.champion_gate.promoted),
                "reason": g.card.champion_gate.reason if g.card.champion_gate else None,
                "ran_in": g.ran_in,
            }
            for name, g in groups.items()
        },
    }


if __name__ == "__main__":
    run_from_command_line(train_model)
