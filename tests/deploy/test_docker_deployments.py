"""The Docker-pool deployments registered from prefect.yaml without a Docker engine.

`prefect --no-prompt deploy --name daily-forecast-docker --name train-model-docker` runs for real
against the session's Prefect server and a work pool of type docker; only the image build and
push are replaced by recorders (tests/deploy/fake_docker_deploy.py). This proves that the
templated values resolve (image name from MARKET_FORECAST_IMAGE, tag and GIT_SHA from git, the
job variables from the build step's output), that the server accepts the job variables for a
docker pool, and what the deployments look like once registered.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deployments import (
    DAILY_CRON,
    DOCKER_DEPLOYMENTS,
    DOCKER_POOL,
    MARKET_TZ,
    REPO,
    WEEKLY_CRON,
    origin_url_without_credentials,
)
from tests.deploy.test_dockerfile import dockerfile_workdir

FAKE_REGISTRY_IMAGE = "127.0.0.1:5000/market-forecast"  # a name only: nothing is pushed or pulled


@pytest.fixture(scope="module")
def git_sha() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"the Docker deployments tag images with the commit; `git rev-parse` failed here: {proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def docker_deploy(prefect_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Deploy both Docker deployments with the recorders; return the calls and the deployments."""
    prefect_server.create_work_pool(DOCKER_POOL, type="docker")
    record = tmp_path_factory.mktemp("docker-deploy") / "calls.json"
    names = [arg for name in DOCKER_DEPLOYMENTS for arg in ("--name", name)]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.deploy.fake_docker_deploy", str(record), "--no-prompt", "deploy", *names],
        cwd=REPO,
        env=prefect_server.env(MARKET_FORECAST_IMAGE=FAKE_REGISTRY_IMAGE),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"prefect deploy failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "not found in provided values" not in proc.stdout + proc.stderr, "a template did not resolve:\n" + proc.stdout
    with prefect_server.client() as client:
        deployments = {
            name: client.read_deployment_by_name(f"{flow}/{name}") for name, flow in DOCKER_DEPLOYMENTS.items()
        }
        for deployment in deployments.values():  # never run on a schedule in this session
            for schedule in deployment.schedules:
                client.update_deployment_schedule(deployment.id, schedule.id, active=False)
    return {"calls": json.loads(record.read_text()), "deployments": deployments, "output": proc.stdout}


def test_deploy_builds_the_image_from_the_dockerfile_with_commit_tag(docker_deploy: dict[str, Any], git_sha: str) -> None:
    builds = [c for c in docker_deploy["calls"] if c["step"] == "build_docker_image"]
    assert builds, "no image build step ran"
    for call in builds:
        kwargs = call["kwargs"]
        assert Path(call["cwd"]) == REPO  # the build context
        assert kwargs["image_name"] == FAKE_REGISTRY_IMAGE
        assert kwargs["dockerfile"] == "Dockerfile"
        assert kwargs["tag"] == git_sha
        assert kwargs["platform"] == "linux/amd64"
        assert kwargs["buildargs"] == {"GIT_SHA": git_sha, "SOURCE_URL": origin_url_without_credentials()}


def test_deploy_pushes_the_image_it_built(docker_deploy: dict[str, Any], git_sha: str) -> None:
    pushes = [c["kwargs"] for c in docker_deploy["calls"] if c["step"] == "push_docker_image"]
    assert pushes and all(p == {"image_name": FAKE_REGISTRY_IMAGE, "tag": git_sha} for p in pushes)


@pytest.mark.parametrize("name", list(DOCKER_DEPLOYMENTS))
def test_deployment_runs_the_built_image_from_its_workdir(docker_deploy: dict[str, Any], git_sha: str, name: str) -> None:
    deployment = docker_deploy["deployments"][name]
    assert deployment.work_pool_name == DOCKER_POOL
    assert deployment.job_variables["image"] == f"{FAKE_REGISTRY_IMAGE}:{git_sha}"
    assert deployment.job_variables["image_pull_policy"] == "IfNotPresent"
    assert deployment.job_variables["env"] == {
        "PREFECT_HOME": "/home/app/.prefect",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "tasks,flows,blocks",
    }
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": dockerfile_workdir()}}
    ]
    assert not re.search(r"\{\{.*\}\}", json.dumps(deployment.job_variables)), "a template was left unrendered"


@pytest.mark.parametrize(("name", "cron"), [("daily-forecast-docker", DAILY_CRON), ("train-model-docker", WEEKLY_CRON)])
def test_deployment_schedule_and_concurrency(docker_deploy: dict[str, Any], name: str, cron: str) -> None:
    deployment = docker_deploy["deployments"][name]
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [(cron, MARKET_TZ)]
    assert deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1


@pytest.mark.parametrize("name", list(DOCKER_DEPLOYMENTS))
def test_production_parameters_name_the_blocks(docker_deploy: dict[str, Any], name: str) -> None:
    parameters = docker_deploy["deployments"][name].parameters
    assert parameters["storage_block"] == "azure-blob-storage-container/market-forecast"
    assert parameters["fred_block"] == "fred"
    assert "output_dir" not in parameters
