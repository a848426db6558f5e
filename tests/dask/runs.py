"""What the Dask tests run and read: three small model groups on the demo source, the run's tables and models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from flows.train_model import train_model
from tasks.adapters.blob_store import resolve_storage
from tasks.adapters.model_store import MODEL_FILE, load_model_files, read_champion_pointer, read_lstm_weights
from tasks.core.lstm_numpy import LstmWeights
from tasks.core.settings import Settings
from tests.harness.prefect_server import PrefectServer
from tests.harness.settings import promoting_settings

REPO = Path(__file__).resolve().parents[2]
AS_OF = date(2025, 6, 30)
# Three groups of two series: the demo source invents the unknown ids (DGS10, DGS2).
GROUPS = {
    "equities": ["SP500", "DJIA"],
    "risk": ["VIXCLS", "BAMLCC4A0710YTRIV"],
    "rates": ["DGS10", "DGS2"],
}
TIMEOUT = 10.0


def three_groups(**overrides: Any) -> Settings:
    """Tiny settings (tests.harness.settings) with the three groups; the gate always promotes."""
    return promoting_settings(series=None, groups=GROUPS, **overrides)


@dataclass(frozen=True)
class TrainingRun:
    """A finished training run: its summary (the flow's return value) and its output folder."""

    result: dict[str, Any]
    out: Path

    @property
    def folder(self) -> Path:
        return self.out / self.result["run_folder"]

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.folder / name)

    def ran_in_pids(self) -> dict[str, int]:
        """{group: pid of the process that trained it} ('pid <pid> on <host>')."""
        return {group: int(g["ran_in"].split()[1]) for group, g in self.result["groups"].items()}

    def champion_weights(self, group: str) -> LstmWeights:
        storage = resolve_storage(None, str(self.out))
        pointer = read_champion_pointer(storage, timeout=TIMEOUT, group=group)
        assert pointer is not None, f"no champion for {group}"
        files, _ = load_model_files(
            storage, pointer.version, card_sha256=pointer.model_card_sha256, timeout=TIMEOUT, group=group
        )
        return read_lstm_weights(files[MODEL_FILE])


def train_three_groups(server: PrefectServer, out: Path, *, dask_address: str | None, **overrides: Any) -> TrainingRun:
    """`train_model` in this process, bound to the real Prefect server, on the cluster or locally."""
    with server.settings():
        result = train_model(
            as_of=AS_OF, settings=three_groups(**overrides), output_dir=str(out), dask_address=dask_address
        )
    return TrainingRun(result, out)


def version_folders(out: Path) -> dict[str, list[Path]]:
    """{group: its model version folders} of a store."""
    return {group: sorted(p for p in (out / "models" / group).iterdir() if p.is_dir()) for group in GROUPS}
