"""A Dask worker killed (SIGKILL, like a crashed machine) while it trains a model group.

The scheduler gives the group to the other worker and the flow completes; nothing of the killed
attempt is left in the store: every version folder is complete, every champion verifies, and each
group has exactly one version, the one trained to the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tasks.adapters.blob_store import resolve_storage
from tasks.adapters.model_store import MODEL_CARD, MODEL_FILES, load_champion
from tasks.core.settings import Settings
from tests.dask.runs import AS_OF, REPO
from tests.harness.dask_cluster import DaskCluster, DaskWorker
from tests.harness.prefect_server import PrefectServer

GROUPS = {"equities": ["SP500", "DJIA"], "rates": ["DGS10", "DGS2"]}
# Long enough training (a few seconds per group) to be caught in the middle of it.
EPOCHS = 250


def train_on_cluster_command(out: Path, address: str) -> list[str]:
    """The training flow from its command line, on the cluster, tiny windows, a longer training."""
    return [
        sys.executable, "-m", "flows.train_model", "--as-of", AS_OF.isoformat(), "--output-dir", str(out),
        "--dask-address", address, "--groups", json.dumps(GROUPS), "--history-start", "2023-01-01",
        "--level-window", "20", "--lstm-units", "64", "--epochs", str(EPOCHS), "--backtest.origin-step", "5",
        "--champion-gate.max-rel-mae", "100",
    ]  # fmt: skip


def log_after(worker: DaskWorker, offset: int) -> str:
    with open(worker.log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def wait_for_training(cluster: DaskCluster, offsets: dict[str, int], child: subprocess.Popen[str]) -> DaskWorker:
    """The first worker whose log shows an epoch of this run's training (and no saved model yet)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for worker in cluster.workers:
            text = log_after(worker, offsets[worker.worker_name])
            if f"epoch 3/{EPOCHS}" in text and "Saved model version" not in text:
                return worker
        assert child.poll() is None, "the training flow ended before any worker trained"
        time.sleep(0.2)
    raise AssertionError("no worker started training within 300 s")


def test_a_worker_killed_while_training_has_its_group_rescheduled_and_leaves_no_partial_model(
    dask_cluster: DaskCluster, prefect_server: PrefectServer, tmp_path: Path
) -> None:
    out = tmp_path / "store"
    offsets = {w.worker_name: w.log_path.stat().st_size for w in dask_cluster.workers}
    log_path = tmp_path / "flow.log"
    with open(log_path, "w") as log:
        child = subprocess.Popen(
            train_on_cluster_command(out, dask_cluster.address),
            cwd=REPO, env=prefect_server.env(PYTHONPATH=str(REPO)), stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        victim = wait_for_training(dask_cluster, offsets, child)
        (survivor,) = (w for w in dask_cluster.workers if w is not victim)
        survivor_pid = survivor.pid
        victim.kill()
        code = child.wait(timeout=400)
    finally:
        if child.poll() is None:
            child.kill()
        dask_cluster.start()  # the killed worker again, for the tests after this one
    output = log_path.read_text()
    assert code == 0, output[-4000:]

    killed_log = log_after(victim, offsets[victim.worker_name])
    assert f"epoch 3/{EPOCHS}" in killed_log and "Saved model version" not in killed_log
    survivor_log = log_after(survivor, offsets[survivor.worker_name])
    for group in GROUPS:
        assert f"Model group {group} (" in survivor_log and f"training in pid {survivor_pid} " in survivor_log, group
    assert survivor_log.count("Saved model version") == len(GROUPS)

    storage = resolve_storage(None, str(out))
    settings = Settings(groups=GROUPS)
    for group in GROUPS:
        folder = out / "models" / group
        versions = [p for p in folder.iterdir() if p.is_dir()]
        assert len(versions) == 1, versions
        assert {p.name for p in versions[0].iterdir()} == {*MODEL_FILES, MODEL_CARD}
        champion = load_champion(storage, settings.for_group(group), data_source="demo", group=group)
        assert champion.version == versions[0].name
