"""A run without its champion says what the storage holds instead (the model groups it was trained with)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.adapters.blob_store import resolve_storage
from tasks.adapters.model_store import load_champion
from tasks.core.errors import ModelStoreError
from tests.harness.settings import tiny_settings


def missing_champion(root: Path, *, group: str = "default") -> str:
    with pytest.raises(ModelStoreError) as caught:
        load_champion(resolve_storage(None, str(root)), tiny_settings(), data_source="demo", group=group)
    return str(caught.value)


def test_an_empty_store_says_to_train_first(tmp_path: Path) -> None:
    message = missing_champion(tmp_path)
    assert "(models/champion.json is missing). Run the train-model flow" in message
    assert "It holds" not in message


def test_a_store_trained_with_model_groups_names_them(tmp_path: Path) -> None:
    for group in ("risk", "equities"):
        (tmp_path / "models" / group / "20250630_120000-abcd1234").mkdir(parents=True)
        (tmp_path / "models" / group / "champion.json").write_text("{}")
        (tmp_path / "models" / group / "20250630_120000-abcd1234" / "model_card.json").write_text("{}")
    message = missing_champion(tmp_path)
    assert (
        "(models/champion.json is missing). It holds champions of the model group(s) 'equities', 'risk': give "
        "this run the settings.groups the training run had (on the command line --groups). Run the" in message
    )


def test_a_store_trained_without_groups_says_so_to_a_run_with_groups(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "champion.json").write_text("{}")
    message = missing_champion(tmp_path, group="equities")
    assert "No champion model of model group 'equities'" in message
    assert "It holds a champion trained without model groups: run without settings.groups" in message
