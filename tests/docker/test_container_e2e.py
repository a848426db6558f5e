"""Both flows, each in its own container of the project's image, through the Docker work pool.

`prefect deployment run 'train-model/train-model-docker'` (tiny settings) and then
`prefect deployment run 'daily-forecast/daily-forecast-docker' -p as_of=... --watch`, with the
deployments' production parameters: the storage block `azure-blob-storage-container/market-forecast`
(a container on Azurite) and the FRED block `fred` (the FRED-compatible server), both made by
`python -m blocks setup`. The worker pulls the image from the registry for each run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tasks.core.contracts import sha256_hex
from tests.deploy.deployments import PAST_SESSION, PROJECT_VERSION, TINY_SETTINGS
from tests.docker.stack import AZURE_CONTAINER, DAILY, IMAGE_REPOSITORY, TRAIN, DockerStack

pytestmark = pytest.mark.timeout(2400)

RUNTIME_UID = 10001
DAILY_FILES = {"actuals.csv", "predicted.csv", "forecasted_data.csv", "model_metrics.csv"}


@dataclass
class Runs:
    train: Any  # the flow runs, read back from the API once final
    daily: Any
    daily_output: str  # what `prefect deployment run --watch` printed
    train_process_uid: tuple[int, int]  # real and effective uid of the training container's process
    registry_offset: int  # the registry log's size before the runs


def _process_uid(stack: DockerStack, flow_run_id: UUID, timeout: float = 300) -> tuple[int, int]:
    """Real and effective uid of a flow run's container process, read while the container runs."""
    deadline = time.monotonic() + timeout
    last = "no container yet"
    while time.monotonic() < deadline:
        for container in stack.containers(flow_run_id):
            pid = container.attrs["State"].get("Pid") or 0
            last = f"container {container.name} {container.status}, pid {pid}"
            if container.status == "running" and pid:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError as exc:
                    last += f" ({exc})"
                    continue
                uids = next(line.split()[1:3] for line in status.splitlines() if line.startswith("Uid:"))
                return int(uids[0]), int(uids[1])
            if container.status == "exited":
                raise AssertionError(f"the container exited before it could be observed\n{stack.worker_log()}")
        time.sleep(0.2)
    raise AssertionError(
        f"no running container for flow run {flow_run_id} within {timeout:.0f} s: {last}\n{stack.worker_log()}"
    )


@pytest.fixture(scope="module")
def runs(stack: DockerStack) -> Runs:
    offset = stack.engine.registry_log_size()
    train_id, started = stack.run(TRAIN, {"as_of": PAST_SESSION, "settings": TINY_SETTINGS})
    assert train_id is not None, started.stdout + started.stderr
    uid = _process_uid(stack, train_id)
    train = stack.wait_final(train_id)
    assert train.state.is_completed(), f"training run {train.state}\n{stack.worker_log()}"

    daily_id, watched = stack.run(DAILY, {"as_of": PAST_SESSION}, watch=True)
    assert daily_id is not None, watched.stdout + watched.stderr
    daily = stack.wait_final(daily_id)
    return Runs(train, daily, watched.stdout + watched.stderr, uid, offset)


def _blob(stack: DockerStack, name: str) -> bytes:
    with stack.azurite.blob_service_client(retry_total=0) as service:
        return service.get_blob_client(AZURE_CONTAINER, name).download_blob().readall()


def _blob_names(stack: DockerStack) -> set[str]:
    with stack.azurite.blob_service_client(retry_total=0) as service:
        return {b.name for b in service.get_container_client(AZURE_CONTAINER).list_blobs()}


def test_training_run_completes_in_its_container_and_promotes_a_champion(stack: DockerStack, runs: Runs) -> None:
    assert runs.train.state.name == "Completed"
    champion = json.loads(_blob(stack, "models/champion.json"))
    version = champion["version"]
    assert {
        f"models/{version}/{name}" for name in ("lstm_model.keras", "scaler.json", "model_card.json")
    } <= _blob_names(stack)
    card = json.loads(_blob(stack, f"models/{version}/model_card.json"))
    assert sha256_hex(_blob(stack, f"models/{version}/model_card.json")) == champion["model_card_sha256"]
    assert card["version"] == version
    assert runs.train.parameters["storage_block"] == "azure-blob-storage-container/market-forecast"


def test_daily_run_completes_and_publishes_a_complete_run_folder_to_azure(stack: DockerStack, runs: Runs) -> None:
    assert runs.daily.state.name == "Completed", (
        f"{runs.daily.state}\n{runs.daily_output[-3000:]}\n{stack.worker_log()}"
    )
    assert "Flow run finished successfully in 'Completed'" in runs.daily_output
    latest = json.loads(_blob(stack, "latest.json"))
    assert latest["kind"] == "daily" and latest["as_of"] == PAST_SESSION
    manifest = json.loads(_blob(stack, f"{latest['run_folder']}/manifest.json"))
    assert manifest["flow_run_id"] == str(runs.daily.id)
    assert manifest["kind"] == "daily" and manifest["data_source"] == "fred"
    files = {f["name"]: f for f in manifest["files"]}
    assert set(files) >= DAILY_FILES
    for name, entry in files.items():
        content = _blob(stack, f"{latest['run_folder']}/{name}")
        assert (len(content), sha256_hex(content)) == (entry["bytes"], entry["sha256"]), name


def test_daily_container_found_the_champion_only_through_the_storage_block(stack: DockerStack, runs: Runs) -> None:
    container = stack.container(runs.daily.id)
    assert container.attrs["Mounts"] == []
    assert not container.attrs["HostConfig"].get("Binds") and not container.attrs["Config"].get("Volumes")
    assert runs.daily.parameters["storage_block"] == "azure-blob-storage-container/market-forecast"
    latest = json.loads(_blob(stack, "latest.json"))
    manifest = json.loads(_blob(stack, f"{latest['run_folder']}/manifest.json"))
    assert manifest["model_version"] == json.loads(_blob(stack, "models/champion.json"))["version"]
    with stack.engine.session() as client:  # the image itself carries no model or output
        listing = client.containers.run(
            stack.images["daily"], ["ls", "-A", "/opt/market-forecast/data"], network_mode="host", remove=True
        )
    assert listing.decode().split() == []


def test_manifest_code_version_is_the_commit_the_image_was_built_from(stack: DockerStack, runs: Runs) -> None:
    latest = json.loads(_blob(stack, "latest.json"))
    manifest = json.loads(_blob(stack, f"{latest['run_folder']}/manifest.json"))
    assert manifest["code_version"] == f"{PROJECT_VERSION}+{stack.git_sha}"
    container = stack.container(runs.daily.id)
    assert container.attrs["Config"]["Image"] == stack.images["daily"]
    assert container.attrs["Config"]["Labels"]["org.opencontainers.image.revision"] == stack.git_sha


def test_containers_ran_as_the_non_root_user(stack: DockerStack, runs: Runs) -> None:
    assert runs.train_process_uid == (RUNTIME_UID, RUNTIME_UID)
    for flow_run in (runs.train, runs.daily):
        assert stack.container(flow_run.id).attrs["Config"]["User"] == f"{RUNTIME_UID}:{RUNTIME_UID}"


def test_each_run_pulled_the_image_from_the_registry(stack: DockerStack, runs: Runs) -> None:
    for flow_run, target in ((runs.train, "training"), (runs.daily, "daily")):
        pulls = stack.engine.manifest_pulls(IMAGE_REPOSITORY, f"{stack.git_sha}-{target}", since=runs.registry_offset)
        log = stack.engine.registry_log(runs.registry_offset)[-3000:]
        assert pulls >= 1, f"the registry never served the {target} image's manifest\n{log}"
        assert stack.container(flow_run.id).attrs["Config"]["Image"] == stack.images[target]
