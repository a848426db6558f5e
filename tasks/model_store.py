"""Model store stage: save a trained model version, promote it, load the champion.

A version is `models/<version>/` in the storage block: `lstm_model.keras` (Keras native format),
`scaler.json` and `model_card.json` (series, data range, settings, metrics, backtest, library
versions, sha256 of the two other files). `models/champion.json` names the version the daily flow
uses and records the card's sha256, so every file is checked before a model is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.filesystems import WritableFileSystem

from tasks.errors import ModelStoreError
from tasks.features import Scaler
from tasks.forecast import SplitDates
from tasks.model import model_from_bytes, model_to_bytes
from tasks.settings import Settings
from tasks.storage import (
    describe_storage,
    load_model_files,
    promote_champion,
    read_champion_pointer,
    save_model_version,
    sha256_hex,
)
from tasks.training import TrainedModel, check_model_card, split_dates_from_card

if TYPE_CHECKING:  # pragma: no cover
    import keras


@dataclass(frozen=True)
class LoadedModel:
    """A stored model ready to predict."""

    model: keras.Model
    scaler: Scaler
    card: dict[str, Any]
    version: str
    split_dates: SplitDates


def model_version_name(created_utc: datetime, model_bytes: bytes) -> str:
    """'YYYYMMDD_HHMMSS-<first 8 hex of the model's sha256>'."""
    return f"{created_utc:%Y%m%d_%H%M%S}-{sha256_hex(model_bytes)[:8]}"


def serialize_model(trained: TrainedModel) -> dict[str, bytes]:
    """The model's files as bytes: lstm_model.keras and scaler.json."""
    return {"lstm_model.keras": model_to_bytes(trained.model), "scaler.json": trained.scaler.to_json().encode()}


def load_champion(storage: WritableFileSystem, settings: Settings, *, data_source: str) -> LoadedModel:
    """Load and verify the champion model.

    Raises:
        ModelStoreError: no champion was ever promoted, or its files are missing.
        ModelIntegrityError: a file's sha256 differs from the card (or the card from champion.json).
        ModelMismatchError: the champion was trained for other series, windows or data source.
    """
    pointer = read_champion_pointer(storage, policy=settings.storage)
    if pointer is None:
        raise ModelStoreError(
            f"No champion model in {describe_storage(storage)} (models/champion.json is missing). "
            "Run the train-model flow against the same storage first; if it ran, its summary says "
            "why its model was not promoted."
        )
    files, card = load_model_files(
        storage, pointer["version"], card_sha256=pointer.get("model_card_sha256"), policy=settings.storage
    )
    check_model_card(card, settings, data_source=data_source)
    scaler = Scaler.from_json(files["scaler.json"])
    if scaler.series != settings.series:
        raise ModelStoreError(f"scaler.json of {pointer['version']} is for series {scaler.series}, its card says {card['series']}")
    return LoadedModel(
        model=model_from_bytes(files["lstm_model.keras"]),
        scaler=scaler,
        card=card,
        version=pointer["version"],
        split_dates=split_dates_from_card(card),
    )


@task(name="load-champion-model", cache_policy=NO_CACHE)
def load_champion_task(storage: WritableFileSystem, settings: Settings, *, data_source: str) -> LoadedModel:
    """Load the champion and log which version it is."""
    loaded = load_champion(storage, settings, data_source=data_source)
    get_run_logger().info(
        "Champion model %s (trained on %s data %s .. %s, test part from %s)",
        loaded.version,
        loaded.card.get("data_source"),
        loaded.card["data"]["start"],
        loaded.card["data"]["end"],
        loaded.card["data"]["test_start"],
    )
    return loaded


@task(name="read-champion-card", cache_policy=NO_CACHE)
def read_champion_card_task(storage: WritableFileSystem, settings: Settings) -> dict[str, Any] | None:
    """The current champion's model card (for the gate), or None if there is none or it is unreadable."""
    logger = get_run_logger()
    pointer = read_champion_pointer(storage, policy=settings.storage)
    if pointer is None:
        logger.info("No champion yet in %s", describe_storage(storage))
        return None
    try:
        _, card = load_model_files(storage, pointer["version"], card_sha256=pointer.get("model_card_sha256"), policy=settings.storage)
    except ModelStoreError as exc:
        logger.warning("The current champion %s cannot be used (%s); the new model is compared with nothing", pointer.get("version"), exc)
        return None
    return card


@task(name="save-model-version", cache_policy=NO_CACHE)
def save_model_task(storage: WritableFileSystem, version: str, files: dict[str, bytes], card: dict[str, Any], settings: Settings) -> str:
    """Write the model version; returns the card's sha256."""
    card_sha = save_model_version(storage, version, files, card, policy=settings.storage)
    get_run_logger().info("Saved model version %s to %s", version, describe_storage(storage))
    return card_sha


@task(name="promote-champion", cache_policy=NO_CACHE)
def promote_champion_task(
    storage: WritableFileSystem,
    version: str,
    card_sha256: str,
    *,
    promoted_utc: str,
    reason: str,
    training_run_folder: str,
    settings: Settings,
) -> None:
    """Point models/champion.json at the new version."""
    promote_champion(
        storage,
        version,
        card_sha256,
        promoted_utc=promoted_utc,
        reason=reason,
        training_run_folder=training_run_folder,
        policy=settings.storage,
    )
    get_run_logger().info("Model %s is the champion now", version)
