"""Model store adapter: save a trained model version, promote it, load and verify the champion.

A version is `models/<version>/` in the storage block: `lstm_model.keras` (Keras native format: a
zip of JSON config and weights, no pickle), `scaler.json` and `model_card.json` (series, data
range, settings, metrics, backtest, library versions, sha256 of the two other files).
`models/champion.json` names the version the daily flow uses and records the card's sha256, so
every file is checked before a model is used. A version is complete once its card exists: the card
is written last, and the files of a save that fails are removed.

Each model group has its own folder: `models/<group>/<version>/` and `models/<group>/champion.json`;
the group `default` (a run without groups) lives in `models/` itself, where the single model always
was, so a store written before groups existed is the default group's store as it is.

Training writes the `.keras` file with Keras; the champion is loaded for inference without
TensorFlow: its weights are read from the same file (a zip holding `config.json` and
`model.weights.h5`) and run by the NumPy forward pass of `tasks.core.lstm_numpy`.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from prefect.filesystems import WritableFileSystem
from pydantic import ValidationError

from tasks.adapters.blob_store import (
    delete_paths,
    describe_storage,
    list_paths,
    read_bytes,
    read_optional,
    read_stored,
    update_bytes,
    validation_problems,
    write_bytes,
)
from tasks.core.contracts import ChampionPointer, ModelCard, sha256_hex
from tasks.core.ensemble import Ensemble
from tasks.core.errors import (
    ChampionMovedError,
    ModelIncompleteError,
    ModelIntegrityError,
    ModelStoreError,
    StorageError,
    StorageNotFoundError,
)
from tasks.core.features import Scaler, SplitDates
from tasks.core.lstm_numpy import LstmWeights, numpy_predictor
from tasks.core.model import Predictor
from tasks.core.promotion import check_model_card, settings_for_model
from tasks.core.settings import DEFAULT_GROUP, Settings
from tasks.core.training import model_version_name

if TYPE_CHECKING:  # pragma: no cover
    import keras

MODELS = "models"
MODEL_FILE = "lstm_model.keras"
SCALER_FILE = "scaler.json"
MODEL_FILES = (MODEL_FILE, SCALER_FILE)
MODEL_CARD = "model_card.json"
CHAMPION_FILE = "champion.json"


def group_folder(group: str = DEFAULT_GROUP) -> str:
    """Where a model group's versions and champion pointer live: models/ or models/<group>."""
    return MODELS if group == DEFAULT_GROUP else f"{MODELS}/{group}"


def champion_path(group: str = DEFAULT_GROUP) -> str:
    """The group's champion pointer: models/champion.json or models/<group>/champion.json."""
    return f"{group_folder(group)}/{CHAMPION_FILE}"


@dataclass(frozen=True)
class LoadedModel:
    """A stored model ready to predict (without TensorFlow).

    Attributes:
        settings: The run's settings with the model's own input windows (settings_for_model).
        adopted: What `settings` took from the model rather than from the run, for the log.
    """

    predictor: Predictor
    scaler: Scaler
    card: ModelCard
    version: str
    settings: Settings
    adopted: tuple[str, ...] = ()

    @property
    def split_dates(self) -> SplitDates:
        """Its data's split boundaries (to label prediction rows)."""
        return self.card.split_dates()

    @property
    def ensemble(self) -> Ensemble:
        """The model as it forecasts: the LSTM and the members its card weights (a format-1 card: the LSTM alone)."""
        return Ensemble.from_model_card(self.predictor, self.scaler, self.card)


@dataclass(frozen=True)
class SerializedModel:
    """A trained model's files as stored, and the version named after them."""

    version: str
    files: dict[str, bytes]

    def hashes(self) -> dict[str, str]:
        """sha256 of each file (recorded in the model card)."""
        return {name: sha256_hex(content) for name, content in self.files.items()}


def serialize_model(model: keras.Model, scaler: Scaler, *, created_utc: datetime) -> SerializedModel:
    """lstm_model.keras and scaler.json as bytes; the version is the run's time and the model's hash."""
    files = {MODEL_FILE: model_to_bytes(model), SCALER_FILE: scaler.to_json().encode()}
    return SerializedModel(model_version_name(created_utc, sha256_hex(files[MODEL_FILE])), files)


def model_to_bytes(model: keras.Model) -> bytes:
    """The model in Keras' native .keras format (Keras can only save to a path)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_FILE
        model.save(path)
        return path.read_bytes()


def model_from_bytes(content: bytes) -> keras.Model:
    """Load a model written by `model_to_bytes` (Keras safe mode: no arbitrary code)."""
    from tasks.core.model import keras_runtime

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_FILE
        path.write_bytes(content)
        return keras_runtime().models.load_model(path, safe_mode=True, compile=False)


# The saved architecture the NumPy runtime can run: what tasks.core.model.build_model builds.
_LSTM_EXPECTED = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "use_bias": True,
    "return_sequences": False,
    "go_backwards": False,
    "stateful": False,
}


def read_lstm_weights(content: bytes) -> LstmWeights:
    """The weights of a `.keras` file, checked to be the Input -> LSTM -> Dense network.

    Reads the zip's `config.json` (the layers) and `model.weights.h5` (the arrays, with h5py);
    no Keras, no TensorFlow.

    Raises:
        ModelStoreError: the file is not a `.keras` zip of that architecture; the message says what
            differs.
    """
    import h5py

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            config = json.loads(archive.read("config.json"))
            weights_file = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ModelStoreError(f"{MODEL_FILE} is not a Keras .keras file ({exc})") from None
    layers = [(layer["class_name"], layer["config"]) for layer in config.get("config", {}).get("layers", [])]
    kinds = [kind for kind, _ in layers]
    if kinds != ["InputLayer", "LSTM", "Dense"]:
        raise ModelStoreError(
            f"{MODEL_FILE} holds the layers {kinds}; the light runtime runs InputLayer -> LSTM -> Dense only"
        )
    lstm, dense = layers[1][1], layers[2][1]
    differs = {k: lstm.get(k) for k, v in _LSTM_EXPECTED.items() if lstm.get(k) != v}
    if differs or dense.get("activation") != "linear" or not dense.get("use_bias"):
        raise ModelStoreError(
            f"{MODEL_FILE}'s LSTM/Dense options {differs or dense} differ from what the light runtime computes"
        )
    with h5py.File(io.BytesIO(weights_file), "r") as weights:
        cell, out = weights["layers/lstm/cell/vars"], weights["layers/dense/vars"]
        loaded = LstmWeights(
            kernel=np.asarray(cell["0"]),
            recurrent_kernel=np.asarray(cell["1"]),
            bias=np.asarray(cell["2"]),
            dense_kernel=np.asarray(out["0"]),
            dense_bias=np.asarray(out["1"]),
        )
    try:
        loaded.check()
    except ValueError as exc:
        raise ModelStoreError(f"{MODEL_FILE}'s weights do not form one LSTM and one Dense layer: {exc}") from None
    return loaded


def save_model_version(
    storage: WritableFileSystem,
    card: ModelCard,
    files: Mapping[str, bytes],
    *,
    timeout: float,
    group: str = DEFAULT_GROUP,
) -> str:
    """Write the group's <version>/ folder (model files first, the card last); returns the card's sha256.

    If a write fails, the files already written are removed where possible (a folder without its card
    is never a model version) and the storage error is raised.
    """
    folder = f"{group_folder(group)}/{card.version}"
    card_bytes = card.to_bytes()
    written: list[str] = []
    for name, content in [*files.items(), (MODEL_CARD, card_bytes)]:
        path = f"{folder}/{name}"
        try:
            write_bytes(storage, path, content, timeout=timeout)
        except StorageError:
            delete_paths(storage, [*written, path], timeout=timeout)
            raise
        written.append(path)
    return sha256_hex(card_bytes)


def read_champion_pointer(
    storage: WritableFileSystem, *, timeout: float, group: str = DEFAULT_GROUP
) -> ChampionPointer | None:
    """The group's champion.json, or None when no model of the group was ever promoted.

    Raises:
        InvalidStoredFileError: it is not a valid pointer (it is never taken for "no champion").
    """
    return read_stored(
        storage,
        champion_path(group),
        ChampionPointer,
        timeout=timeout,
        remedy="Restore it, or delete it to let the next training run promote a new champion.",
    )


def promote_champion(
    storage: WritableFileSystem,
    card: ModelCard,
    card_sha256: str,
    *,
    replaces: str | None,
    promoted_utc: datetime,
    timeout: float,
    group: str = DEFAULT_GROUP,
) -> ChampionPointer:
    """Point the group's champion.json at the card's version (and the run folder its training published).

    Only if champion.json still names `replaces`, the champion the gate compared the model with (None:
    there was none), when it is written: a training run that promoted another model meanwhile is never
    undone by one gated against the older champion. Promoting the same version again (a retried
    promotion whose first write landed) changes nothing.

    Raises:
        ChampionMovedError: champion.json names another version now (or is not a valid pointer).
    """
    pointer = ChampionPointer(
        version=card.version,
        model_card=f"{group_folder(group)}/{card.version}/{MODEL_CARD}",
        model_card_sha256=card_sha256,
        training_run_folder=card.training_run_folder,
        promoted_utc=promoted_utc,
        reason=card.champion_gate.reason if card.champion_gate else "promoted",
    )
    content = pointer.to_bytes()
    now, written = update_bytes(
        storage,
        champion_path(group),
        lambda current: content if _named_version(current) == replaces else None,
        timeout=timeout,
    )
    if written:
        return pointer
    if now is not None and _named_version(now) == card.version:
        return ChampionPointer.from_bytes(now)
    raise _champion_moved(card, replaces=replaces, now=now, group=group)


def check_champion_unchanged(
    storage: WritableFileSystem, card: ModelCard, *, replaces: str | None, timeout: float, group: str = DEFAULT_GROUP
) -> None:
    """Whether `promote_champion` could still promote `card`: champion.json names `replaces` (or `card` itself).

    A training run checks this before it publishes its folder, so that the folder never reports as
    promoted a model that another run's promotion (during the training) has since made stale.

    Raises:
        ChampionMovedError: champion.json names another version now (or is not a valid pointer).
    """
    now = read_optional(storage, champion_path(group), timeout=timeout)
    if _named_version(now) not in (replaces, card.version):
        raise _champion_moved(card, replaces=replaces, now=now, group=group)


def _named_version(content: bytes | None) -> str | None:
    """The version a champion.json names (None: there is none; "" when it is not a valid pointer)."""
    if content is None:
        return None
    try:
        return ChampionPointer.from_bytes(content).version
    except ValidationError:
        return ""


def _champion_moved(card: ModelCard, *, replaces: str | None, now: bytes | None, group: str) -> ChampionMovedError:
    path, found = champion_path(group), _named_version(now)
    return ChampionMovedError(
        f"{path} changed during this training run: its champion gate decided on model {card.version} when "
        + (f"{path} named {replaces}" if replaces else "there was no champion")
        + f", and {path} now "
        + ("does not exist" if found is None else f"names {found}" if found else "is not a valid pointer")
        + ". The model was saved but not promoted (another training run promoted its model meanwhile, or "
        "the file was edited). Re-run the train-model flow to gate a model against the current champion."
    )


def load_model_files(
    storage: WritableFileSystem,
    version: str,
    *,
    card_sha256: str | None,
    timeout: float,
    group: str = DEFAULT_GROUP,
) -> tuple[dict[str, bytes], ModelCard]:
    """Read a model version of the group, its files and card, checking every sha256.

    Raises:
        ModelStoreError: a file is missing or the card is not a model card this code can read.
        ModelIntegrityError: a hash does not match.
    """
    folder = f"{group_folder(group)}/{version}"
    try:
        card_bytes = read_bytes(storage, f"{folder}/{MODEL_CARD}", timeout=timeout)
        files = {name: read_bytes(storage, f"{folder}/{name}", timeout=timeout) for name in MODEL_FILES}
    except StorageNotFoundError as exc:
        where = describe_storage(storage)
        raise ModelIncompleteError(f"Model version {version} is incomplete in {where}: {exc}") from None
    if card_sha256 is not None and sha256_hex(card_bytes) != card_sha256:
        raise ModelIntegrityError(
            f"{folder}/{MODEL_CARD} does not match the sha256 recorded in {champion_path(group)}: the card was "
            "changed after promotion. Retrain (run the train-model flow) or restore the file."
        )
    try:
        card = ModelCard.from_bytes(card_bytes)
    except ValidationError as exc:
        raise ModelStoreError(
            f"{folder}/{MODEL_CARD} is not a model card this version can read ({validation_problems(exc)}). "
            "Retrain with this version."
        ) from None
    for name, content in files.items():
        expected = card.files.get(name)
        if expected != sha256_hex(content):
            raise ModelIntegrityError(
                f"{folder}/{name} has sha256 {sha256_hex(content)[:12]}..., its model card says "
                f"{str(expected)[:12]}...: the file is corrupt or was replaced. Retrain (run the "
                "train-model flow) or restore the file."
            )
    return files, card


@dataclass(frozen=True)
class CurrentChampion:
    """A group's champion as a training run finds it before training.

    Attributes:
        version: The version champion.json names (None: there is no champion.json). The new model is
            promoted only if champion.json still names it then (`promote_champion`).
        card: Its verified model card, for the champion gate; None when there is no champion or it
            cannot be used.
        problem: Why it cannot be used (a missing or changed file); None when it can.
    """

    version: str | None
    card: ModelCard | None
    problem: str | None = None

    @property
    def unusable(self) -> str | None:
        """'<version> cannot be used (<problem>)' when it cannot be used; None otherwise."""
        return f"{self.version} cannot be used ({self.problem})" if self.problem is not None else None


def read_current_champion(
    storage: WritableFileSystem, *, timeout: float, group: str = DEFAULT_GROUP
) -> CurrentChampion:
    """The group's champion and its verified card; a champion whose files are unusable comes with the problem.

    Raises:
        InvalidStoredFileError: champion.json is not a valid pointer (never taken for "no champion").
    """
    pointer = read_champion_pointer(storage, timeout=timeout, group=group)
    if pointer is None:
        return CurrentChampion(version=None, card=None)
    try:
        _, card = load_model_files(
            storage, pointer.version, card_sha256=pointer.model_card_sha256, timeout=timeout, group=group
        )
    except ModelStoreError as exc:
        return CurrentChampion(version=pointer.version, card=None, problem=str(exc))
    return CurrentChampion(version=pointer.version, card=card)


def _other_champions(storage: WritableFileSystem, *, timeout: float) -> str:
    """A sentence naming the champions the storage holds for other model groups ('' for none or no listing).

    A daily run whose settings.groups differ from the training run's looks for champions that are
    not there; the ones that are say what to pass.
    """
    try:
        paths = list_paths(storage, f"{MODELS}/", timeout=timeout) or []
    except StorageError:
        return ""  # only a hint: the missing champion is the error
    groups = sorted(
        DEFAULT_GROUP if path == champion_path() else path.split("/")[1]
        for path in paths
        if path.endswith(f"/{CHAMPION_FILE}") and path.count("/") in (1, 2)
    )
    if not groups:
        return ""
    if groups == [DEFAULT_GROUP]:
        return "It holds a champion trained without model groups: run without settings.groups, as that training did. "
    named = ", ".join(repr(g) for g in groups)
    return (
        f"It holds champions of the model group(s) {named}: give this run the settings.groups the training "
        "run had (on the command line --groups). "
    )


def load_champion(
    storage: WritableFileSystem, settings: Settings, *, data_source: str, group: str = DEFAULT_GROUP
) -> LoadedModel:
    """Load and verify the champion model of a group (`settings` are the group's: Settings.for_group).

    Raises:
        ModelStoreError: no champion was ever promoted, or its files are missing.
        ModelIntegrityError: a file's sha256 differs from the card (or the card from champion.json).
        ModelMismatchError: the champion was trained for other series or another data source.
    """
    timeout = settings.storage.timeout_seconds
    pointer = read_champion_pointer(storage, timeout=timeout, group=group)
    if pointer is None:
        of_group = "" if group == DEFAULT_GROUP else f" of model group {group!r}"
        raise ModelStoreError(
            f"No champion model{of_group} in {describe_storage(storage)} ({champion_path(group)} is missing). "
            + _other_champions(storage, timeout=timeout)
            + "Run the train-model flow with the same settings against the same storage first; if it ran, "
            "its summary says why its model was not promoted."
        )
    try:
        files, card = load_model_files(
            storage, pointer.version, card_sha256=pointer.model_card_sha256, timeout=timeout, group=group
        )
    except ModelIncompleteError as exc:
        raise ModelIncompleteError(
            f"The champion cannot be used: {exc}. Restore the file, or run the train-model flow: it replaces "
            "a champion whose files cannot be used."
        ) from None
    check_model_card(card, settings, data_source=data_source)
    scaler = Scaler.from_json(files[SCALER_FILE])
    if scaler.series != settings.series:
        raise ModelStoreError(
            f"{SCALER_FILE} of {pointer.version} is for series {scaler.series}, its card says {list(card.series)}"
        )
    predictor = numpy_predictor(read_lstm_weights(files[MODEL_FILE]))
    run_settings, adopted = settings_for_model(card, settings)
    return LoadedModel(predictor, scaler, card, pointer.version, run_settings, tuple(adopted))
