"""Three model groups trained on a real Dask cluster (a scheduler and two worker processes on 127.0.0.1).

The group tasks run in the worker processes, report to the real Prefect server, produce exactly what
the same groups trained in one process with the same seeds produce, and each group's champion is
stored in its own folder.
"""

from __future__ import annotations

import json
import os
from uuid import UUID

import numpy as np
import pandas as pd

from tasks.adapters.blob_store import resolve_storage
from tasks.adapters.model_store import load_champion
from tasks.core.outputs import SCHEMAS
from tests.dask.runs import GROUPS, TrainingRun, three_groups, version_folders
from tests.harness.dask_cluster import DaskCluster
from tests.harness.flow_runs import flow_run_logs
from tests.harness.prefect_server import PrefectServer


def test_every_group_task_ran_in_a_worker_process(cluster_run: TrainingRun, dask_cluster: DaskCluster) -> None:
    pids = cluster_run.ran_in_pids()
    workers = dask_cluster.worker_pids()
    assert set(pids) == set(GROUPS)
    assert set(pids.values()) <= set(workers.values()), (pids, workers)
    assert os.getpid() not in pids.values()
    # Two idle one-thread workers and three groups: both workers get work.
    assert set(pids.values()) == set(workers.values()), (pids, workers)


def test_the_local_run_trains_in_this_process(local_run: TrainingRun) -> None:
    assert set(local_run.ran_in_pids().values()) == {os.getpid()}


def test_the_workers_task_runs_report_to_the_prefect_server(
    cluster_run: TrainingRun, dask_cluster: DaskCluster, prefect_server: PrefectServer
) -> None:
    flow_run_id = json.loads((cluster_run.folder / "manifest.json").read_text())["flow_run_id"]
    messages = flow_run_logs(UUID(flow_run_id), server=prefect_server)
    for group, pid in cluster_run.ran_in_pids().items():
        assert any(m.startswith(f"Model group {group} (") and f"training in pid {pid} " in m for m in messages), group
    assert any(m.startswith("epoch 2/2: loss") for m in messages)


def test_results_equal_a_local_run_with_the_same_seeds(cluster_run: TrainingRun, local_run: TrainingRun) -> None:
    for name in SCHEMAS:
        on_dask, local = cluster_run.table(name), local_run.table(name)
        assert len(on_dask) > 0, name
        # Versions are named after the run's time and the .keras file (which records when it was saved).
        pd.testing.assert_frame_equal(
            on_dask.drop(columns="model_version", errors="ignore"), local.drop(columns="model_version", errors="ignore")
        )
    for group in GROUPS:
        a, b = cluster_run.champion_weights(group), local_run.champion_weights(group)
        for field in ("kernel", "recurrent_kernel", "bias", "dense_kernel", "dense_bias"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (group, field)


def test_each_group_has_its_champion_in_its_own_folder(cluster_run: TrainingRun) -> None:
    models = cluster_run.out / "models"
    assert not (models / "champion.json").exists()
    assert sorted(p.name for p in models.iterdir()) == sorted(GROUPS)
    storage = resolve_storage(None, str(cluster_run.out))
    settings = three_groups()
    for group, versions in version_folders(cluster_run.out).items():
        (version,) = versions
        champion = load_champion(storage, settings.for_group(group), data_source="demo", group=group)
        assert champion.version == version.name == cluster_run.result["groups"][group]["model_version"]
        assert champion.card.series == tuple(GROUPS[group])
        assert json.loads((models / group / "champion.json").read_text())["model_card"] == (
            f"models/{group}/{version.name}/model_card.json"
        )


def test_one_run_folder_holds_every_groups_rows_and_the_manifest_names_each_model(cluster_run: TrainingRun) -> None:
    manifest = json.loads((cluster_run.folder / "manifest.json").read_text())
    forecast = cluster_run.table("forecasted_data.csv")
    versions = {g: r["model_version"] for g, r in cluster_run.result["groups"].items()}
    assert list(manifest["series"]) == [s for members in GROUPS.values() for s in members]
    assert set(manifest["model_groups"]) == set(GROUPS)
    for group, members in GROUPS.items():
        entry = manifest["model_groups"][group]
        assert entry["series"] == members and entry["model_version"] == versions[group] and entry["champion"] is True
        assert set(forecast[forecast["series_id"].isin(members)]["model_version"]) == {versions[group]}
    assert manifest["model_version"] == ", ".join(f"{g}:{v}" for g, v in versions.items())
    assert manifest["model_training_run"] == cluster_run.result["run_folder"]
