"""Model store stages: read the champion, save a new version, promote it.

Each is retried on transient storage failures. Each works on one model group's models (`group`,
default: the one group of a run without groups, stored in models/).
"""

from __future__ import annotations

from datetime import date, datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.filesystems import WritableFileSystem

from tasks.adapters.blob_store import describe_storage
from tasks.adapters.model_store import (
    CurrentChampion,
    LoadedModel,
    SerializedModel,
    check_champion_unchanged,
    load_champion,
    promote_champion,
    read_current_champion,
    save_model_version,
    serialize_model,
)
from tasks.core.contracts import ModelCard
from tasks.core.promotion import uncalibrated_horizons
from tasks.core.settings import DEFAULT_GROUP, Settings
from tasks.core.training import TrainedModel
from tasks.ops.alerts import PROMOTE_TASK
from tasks.stages.retry import retry_options


def _of_group(group: str) -> str:
    return "" if group == DEFAULT_GROUP else f" of model group {group}"


@task(name="load-champion-model", cache_policy=NO_CACHE)
def _load_champion(
    storage: WritableFileSystem, settings: Settings, *, data_source: str, group: str, as_of: date
) -> LoadedModel:
    loaded = load_champion(storage, settings, data_source=data_source, group=group)
    logger = get_run_logger()
    for note in loaded.adopted:
        logger.warning("Using %s", note)
    beyond = uncalibrated_horizons(loaded.card, loaded.settings)
    if beyond is not None:
        logger.warning("Champion%s: %s", _of_group(group), beyond)
    if loaded.card.data.end > as_of:
        logger.warning(
            "The champion model%s %s was built from data through %s, after this run's as_of %s: it has seen "
            "sessions this run forecasts, so a replay of %s with it is not the forecast that day would have "
            "had. For an honest replay, train with as_of %s or earlier into another output folder or storage.",
            _of_group(group),
            loaded.version,
            loaded.card.data.end,
            as_of,
            as_of,
            as_of,
        )
    logger.info(
        "Champion model%s %s (trained on %s data %s .. %s, test part from %s)",
        _of_group(group),
        loaded.version,
        loaded.card.data_source,
        loaded.card.data.start,
        loaded.card.data.end,
        loaded.card.data.test_start,
    )
    return loaded


def load_champion_task(
    storage: WritableFileSystem, settings: Settings, *, data_source: str, as_of: date, group: str = DEFAULT_GROUP
) -> LoadedModel:
    """Load and verify the group's champion, and log which version it is (warning when it saw data after as_of).

    The returned model's `settings` are the run's with the champion's input windows: use them for
    everything that computes the model's inputs.
    """
    return _load_champion.with_options(**retry_options(settings.storage))(
        storage, settings, data_source=data_source, group=group, as_of=as_of
    )


@task(name="read-champion-card", cache_policy=NO_CACHE)
def _read_current_champion(storage: WritableFileSystem, settings: Settings, group: str) -> CurrentChampion:
    logger = get_run_logger()
    champion = read_current_champion(storage, timeout=settings.storage.timeout_seconds, group=group)
    if champion.unusable is not None:
        logger.warning("The current champion %s; the new model is compared with nothing", champion.unusable)
    elif champion.card is None:
        logger.info("No champion%s yet in %s", _of_group(group), describe_storage(storage))
    return champion


def read_current_champion_task(
    storage: WritableFileSystem, settings: Settings, *, group: str = DEFAULT_GROUP
) -> CurrentChampion:
    """The group's current champion: its card for the gate (None if there is none or it is unusable) and version."""
    return _read_current_champion.with_options(**retry_options(settings.storage))(storage, settings, group)


@task(name="serialize-model", cache_policy=NO_CACHE)
def serialize_model_task(trained: TrainedModel, *, created_utc: datetime) -> SerializedModel:
    """The model's files as bytes (lstm_model.keras, scaler.json) and its version name."""
    serialized = serialize_model(trained.model, trained.scaler, created_utc=created_utc)
    get_run_logger().info("Model version %s", serialized.version)
    return serialized


@task(name="save-model-version", cache_policy=NO_CACHE)
def _save_model(
    storage: WritableFileSystem, card: ModelCard, files: dict[str, bytes], settings: Settings, group: str
) -> str:
    card_sha = save_model_version(storage, card, files, timeout=settings.storage.timeout_seconds, group=group)
    get_run_logger().info("Saved model version %s%s to %s", card.version, _of_group(group), describe_storage(storage))
    return card_sha


def save_model_task(
    storage: WritableFileSystem,
    card: ModelCard,
    files: dict[str, bytes],
    settings: Settings,
    *,
    group: str = DEFAULT_GROUP,
) -> str:
    """Write the group's model version (files, then its card); returns the card's sha256."""
    return _save_model.with_options(**retry_options(settings.storage))(storage, card, files, settings, group)


@task(name="check-champion-unchanged", cache_policy=NO_CACHE)
def _check_unchanged(
    storage: WritableFileSystem, card: ModelCard, *, replaces: str | None, settings: Settings, group: str
) -> None:
    check_champion_unchanged(storage, card, replaces=replaces, timeout=settings.storage.timeout_seconds, group=group)


def check_champion_unchanged_task(
    storage: WritableFileSystem,
    card: ModelCard,
    *,
    replaces: str | None,
    settings: Settings,
    group: str = DEFAULT_GROUP,
) -> None:
    """Fail (ChampionMovedError) if the group's champion.json no longer names `replaces`, the gate's champion."""
    _check_unchanged.with_options(**retry_options(settings.storage))(
        storage, card, replaces=replaces, settings=settings, group=group
    )


@task(name=PROMOTE_TASK, cache_policy=NO_CACHE)
def _promote(
    storage: WritableFileSystem,
    card: ModelCard,
    card_sha256: str,
    *,
    replaces: str | None,
    promoted_utc: datetime,
    settings: Settings,
    group: str,
) -> None:
    promote_champion(
        storage,
        card,
        card_sha256,
        replaces=replaces,
        promoted_utc=promoted_utc,
        timeout=settings.storage.timeout_seconds,
        group=group,
    )
    get_run_logger().info("Model %s is the champion%s now", card.version, _of_group(group))


def promote_champion_task(
    storage: WritableFileSystem,
    card: ModelCard,
    card_sha256: str,
    *,
    replaces: str | None,
    promoted_utc: datetime,
    settings: Settings,
    group: str = DEFAULT_GROUP,
) -> None:
    """Point the group's champion.json at the new version, if it still names `replaces` (the gate's champion)."""
    _promote.with_options(**retry_options(settings.storage))(
        storage, card, card_sha256, replaces=replaces, promoted_utc=promoted_utc, settings=settings, group=group
    )
