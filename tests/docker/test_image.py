"""The images `prefect deploy` built from Dockerfile and pushed, and the deployments it registered.

`prefect --no-prompt deploy --name daily-forecast-docker --name train-model-docker` ran for real
(tests/docker/conftest.py): each deployment built its Dockerfile target (`daily`, without
TensorFlow; `training`), named from MARKET_FORECAST_IMAGE, tagged <commit>-<target>, with GIT_SHA
from git and the base from MARKET_FORECAST_BASE_IMAGE (the stand-in for python:3.11-slim); both
were pushed to the session's registry and the deployments registered with them.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from tests.deploy.deployments import (
    DAILY_CRON,
    DOCKER_DEPLOYMENTS,
    DOCKER_POOL,
    IMAGE_LOCK_FILES,
    MARKET_TZ,
    PROJECT_VERSION,
    REPO,
    WEEKLY_CRON,
    origin_url_without_credentials,
)
from tests.deploy.test_dockerfile import TEST_TOOLS, TRAINING_ONLY, dockerfile_workdir, lock_pins
from tests.docker.stack import IMAGE_REPOSITORY, DockerStack

pytestmark = pytest.mark.timeout(1200)
TARGETS = ("daily", "training")


def _run_in_image(stack: DockerStack, target: str, *command: str) -> str:
    """`docker run --rm <image> <command>` as the image's user; its output."""
    with stack.engine.session() as client:
        return client.containers.run(stack.images[target], list(command), network_mode="none", remove=True).decode()


@pytest.fixture(scope="module", params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def image(stack: DockerStack, target: str) -> Any:
    with stack.engine.session() as client:
        return client.images.get(stack.images[target])


def test_deploy_pushed_both_images_tagged_with_the_commit_to_the_registry(stack: DockerStack) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{stack.engine.registry}/v2/{IMAGE_REPOSITORY}/tags/list", timeout=10) as response:
        tags = json.loads(response.read())["tags"]
    assert sorted(tags) == [f"{stack.git_sha}-daily", f"{stack.git_sha}-training"]
    assert re.fullmatch(r"[0-9a-f]{12}", stack.git_sha)


def test_the_training_image_is_the_daily_images_dependencies_plus_its_own_layers(stack: DockerStack) -> None:
    with stack.engine.session() as client:
        daily, training = (client.images.get(stack.images[t]) for t in TARGETS)
        sizes = {t: client.images.get(stack.images[t]).attrs["Size"] for t in TARGETS}
    daily_layers, training_layers = daily.attrs["RootFS"]["Layers"], training.attrs["RootFS"]["Layers"]
    shared = next(i for i, (a, b) in enumerate(zip(daily_layers, training_layers, strict=False)) if a != b)
    assert shared >= 3, "base, user and the daily dependencies are one set of layers in both images"
    assert sizes["daily"] < sizes["training"]


def test_image_is_built_on_the_base_image_given_to_deploy(stack: DockerStack, image: Any) -> None:
    with stack.engine.session() as client:
        base_layers = client.images.get(stack.base_image).attrs["RootFS"]["Layers"]
    layers = image.attrs["RootFS"]["Layers"]
    assert layers[: len(base_layers)] == base_layers and len(layers) > len(base_layers)


def test_image_labels_name_version_revision_and_source(stack: DockerStack, image: Any, target: str) -> None:
    labels = image.attrs["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == f"market-forecast-{target}"
    assert labels["org.opencontainers.image.version"] == PROJECT_VERSION
    assert labels["org.opencontainers.image.revision"] == stack.git_sha
    assert labels["org.opencontainers.image.source"] == origin_url_without_credentials()


def test_image_runs_as_uid_10001_with_a_healthcheck(stack: DockerStack, image: Any, target: str) -> None:
    assert image.attrs["Config"]["User"] == "10001:10001"
    assert image.attrs["Config"]["Healthcheck"]["Test"][0] == "CMD"
    assert _run_in_image(stack, target, "id", "-u").strip() == "10001"
    assert image.attrs["Config"]["WorkingDir"] == dockerfile_workdir()


def test_image_holds_exactly_its_lock_and_no_test_tools(stack: DockerStack, target: str) -> None:
    script = (
        "import json, packaging.markers, importlib.metadata as m;"
        "print(json.dumps([packaging.markers.default_environment(),"
        " {d.metadata['Name']: d.version for d in m.distributions()}]))"
    )
    environment, installed = json.loads(_run_in_image(stack, target, "python", "-c", script))
    assert environment["python_full_version"].startswith("3.11.")
    installed = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in installed.items()}
    expected = lock_pins(IMAGE_LOCK_FILES[target], environment)
    assert {n: v for n, v in installed.items() if n not in ("pip", "market-forecast")} == expected
    assert installed["market-forecast"] == PROJECT_VERSION
    assert not TEST_TOOLS & set(installed)
    if target == "daily":
        assert not TRAINING_ONLY & set(installed), "the daily image holds TensorFlow, Keras or jax"
    else:
        assert {"tensorflow-cpu", "keras"} <= set(installed)


def test_the_projects_modules_in_the_workdir_are_compiled_for_the_runtime_user(stack: DockerStack, target: str) -> None:
    # The deployments load their entrypoints from the working directory, which the runtime user
    # cannot write (and PYTHONDONTWRITEBYTECODE is set): without valid .pyc files there, every
    # flow-run container compiles the project again. Valid = the header Python checks (magic
    # number, timestamp mode, the source's mtime and size).
    script = """
import importlib.util, json, pathlib, struct
sources = sorted(p for d in ("blocks", "flows", "tasks") for p in pathlib.Path(d).rglob("*.py"))
stale = []
for source in sources:
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    stat = source.stat()
    fields = struct.pack("<III", 0, int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF)
    header = importlib.util.MAGIC_NUMBER + fields
    if not cached.exists() or cached.read_bytes()[:16] != header:
        stale.append(str(source))
print(json.dumps([len(sources), stale]))
"""
    count, stale = json.loads(_run_in_image(stack, target, "python", "-c", script))
    assert count == sum(1 for d in ("blocks", "flows", "tasks") for _ in (REPO / d).rglob("*.py"))
    assert stale == []


def test_pip_check_passes_in_the_image(stack: DockerStack, target: str) -> None:
    assert "No broken requirements found" in _run_in_image(stack, target, "python", "-m", "pip", "check")


@pytest.mark.parametrize("name", list(DOCKER_DEPLOYMENTS))
def test_deployment_runs_the_pushed_image_from_its_workdir(stack: DockerStack, name: str) -> None:
    deployment = stack.deployments[name]
    assert deployment.work_pool_name == DOCKER_POOL
    job_variables = deployment.job_variables
    assert job_variables["image"] == stack.image_of(name)
    assert job_variables["image_pull_policy"] == "IfNotPresent"
    assert (job_variables["stream_output"], job_variables["auto_remove"]) == (True, False)
    env = {"PREFECT_HOME": "/home/app/.prefect", "PREFECT_LOGGING_EXTRA_LOGGERS": "tasks,flows,blocks"}
    if name.startswith("train-model"):
        env["MARKET_FORECAST_DASK_ADDRESS"] = ""  # the model groups' Dask scheduler: none by default
    assert job_variables["env"] == env
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": dockerfile_workdir()}}
    ]
    assert not re.search(r"\{\{.*\}\}", json.dumps(job_variables)), "a template was left unrendered"


@pytest.mark.parametrize(("name", "cron"), [("daily-forecast-docker", DAILY_CRON), ("train-model-docker", WEEKLY_CRON)])
def test_deployment_schedule_and_concurrency(stack: DockerStack, name: str, cron: str) -> None:
    deployment = stack.deployments[name]
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [(cron, MARKET_TZ)]
    assert deployment.global_concurrency_limit is not None and deployment.global_concurrency_limit.limit == 1


@pytest.mark.parametrize("name", list(DOCKER_DEPLOYMENTS))
def test_production_parameters_name_the_blocks(stack: DockerStack, name: str) -> None:
    parameters = stack.deployments[name].parameters
    assert parameters["storage_block"] == "azure-blob-storage-container/market-forecast"
    assert parameters["fred_block"] == "fred"
    assert "output_dir" not in parameters
