"""Static checks of prefect.yaml, read the way `prefect deploy` reads it, without a server.

The Docker deployments' steps are checked without building: every step function imports and
accepts its inputs, every `{{ }}` template names an environment variable we document or an output
an earlier step really returns, the real `run_shell_script` steps run, and the rendered job
variables validate against the Docker worker's job template.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any, get_type_hints
from zoneinfo import ZoneInfo

import docker.api.build
import pytest
from prefect.cli.deploy._models import DeploymentConfig, PrefectYamlModel, WorkPoolConfig
from prefect.utilities.importtools import import_object
from prefect.utilities.schema_tools.validation import validate
from prefect.utilities.templating import apply_values, find_placeholders

from tests.deploy.deployments import (
    DAILY_CRON,
    DOCKER_DEPLOYMENTS,
    DOCKER_POOL,
    MARKET_TZ,
    PROCESS_DEPLOYMENTS,
    PROCESS_POOL,
    REPO,
    WEEKLY_CRON,
    deployment_configs,
    load_prefect_yaml,
    origin_url_without_credentials,
)
from tests.deploy.test_dockerfile import dockerfile_base_image_default, dockerfile_stages

ENTRYPOINT_FLOWS = {
    "daily-forecast": "flows/daily_forecast.py:daily_forecast",
    "train-model": "flows/train_model.py:train_model",
}
# Environment variables the Docker deployments read at deploy time (documented in docs/deployment.md).
DEPLOY_ENV = {"MARKET_FORECAST_IMAGE": "127.0.0.1:5000/market-forecast"}
RESERVED_STEP_KEYS = {"id", "requires"}


def _steps(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(config.get("build") or []), *(config.get("push") or []), *(config.get("pull") or [])]


def _step(step: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((fqn, inputs),) = step.items()
    return fqn, dict(inputs)


def _run(coro: Any) -> Any:
    return asyncio.run(coro) if inspect.iscoroutine(coro) else coro


# -- structure -------------------------------------------------------------------------------
def test_prefect_yaml_validates_with_prefects_own_model() -> None:
    raw = load_prefect_yaml()
    model = PrefectYamlModel.model_validate(raw)
    assert len(model.deployments) == 4
    # Prefect ignores unknown keys silently: a typo (e.g. `concurency_limit`) would be lost.
    known_top = set(PrefectYamlModel.model_fields) | {"prefect-version", "definitions"}
    assert set(raw) <= known_top, set(raw) - known_top
    for deployment in raw["deployments"]:
        assert set(deployment) <= set(DeploymentConfig.model_fields), set(deployment) - set(
            DeploymentConfig.model_fields
        )
        assert set(deployment["work_pool"]) <= set(WorkPoolConfig.model_fields)


def test_deployment_names_are_distinct_and_expected() -> None:
    names = [d["name"] for d in load_prefect_yaml()["deployments"]]
    assert sorted(names) == sorted({**DOCKER_DEPLOYMENTS, **PROCESS_DEPLOYMENTS})
    assert len(set(names)) == len(names)


def test_no_project_wide_steps() -> None:
    raw = load_prefect_yaml()
    assert raw["build"] is None and raw["push"] is None and raw["pull"] is None


@pytest.mark.parametrize("name", list(PROCESS_DEPLOYMENTS))
def test_process_deployments_never_build_an_image(name: str) -> None:
    config = deployment_configs()[name]
    assert config["build"] is None and config["push"] is None
    assert "pull" not in config, "no pull step: `prefect deploy` records the checkout it runs in"
    assert config["work_pool"]["name"] == PROCESS_POOL


@pytest.mark.parametrize("name", [*DOCKER_DEPLOYMENTS, *PROCESS_DEPLOYMENTS])
def test_entrypoint_is_the_flow_and_parameters_fit_its_schema(name: str) -> None:
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    config = deployment_configs()[name]
    flow_name = {**DOCKER_DEPLOYMENTS, **PROCESS_DEPLOYMENTS}[name]
    assert config["entrypoint"] == ENTRYPOINT_FLOWS[flow_name]
    flow = load_flow_from_entrypoint(f"{REPO}/{config['entrypoint']}")
    assert flow.name == flow_name
    schema = parameter_schema(flow).model_dump_for_openapi()
    assert set(config["parameters"]) <= set(schema["properties"])
    validate(config["parameters"], schema, raise_on_error=True, ignore_required=True)


@pytest.mark.parametrize(
    ("name", "cron"),
    [
        ("daily-forecast-docker", DAILY_CRON),
        ("daily-forecast-process", DAILY_CRON),
        ("train-model-docker", WEEKLY_CRON),
        ("train-model-process", WEEKLY_CRON),
    ],
)
def test_schedule_and_concurrency(name: str, cron: str) -> None:
    config = deployment_configs()[name]
    assert config["schedules"] == [{"cron": cron, "timezone": MARKET_TZ, "active": True}]
    assert config["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert config["description"] and config["tags"][0] == "market-forecast"


@pytest.mark.parametrize("name", [*DOCKER_DEPLOYMENTS, *PROCESS_DEPLOYMENTS])
def test_only_the_training_deployments_carry_an_empty_dask_address(name: str) -> None:
    from tasks.stages.groups import DASK_ADDRESS_VARIABLE

    config = deployment_configs()[name]
    env = config["work_pool"]["job_variables"]["env"]
    if config["entrypoint"] == ENTRYPOINT_FLOWS["train-model"]:
        assert env[DASK_ADDRESS_VARIABLE] == "" and config["parameters"]["dask_address"] is None
    else:
        assert DASK_ADDRESS_VARIABLE not in env and "dask_address" not in config["parameters"]


def test_training_deployments_keep_the_pools_other_job_variables() -> None:
    configs = deployment_configs()
    for daily, train in (
        ("daily-forecast-docker", "train-model-docker"),
        ("daily-forecast-process", "train-model-process"),
    ):
        daily_vars, train_vars = configs[daily]["work_pool"], configs[train]["work_pool"]
        assert train_vars["name"] == daily_vars["name"]
        train_jobs = dict(train_vars["job_variables"], env=dict(train_vars["job_variables"]["env"]))
        train_jobs["env"].pop("MARKET_FORECAST_DASK_ADDRESS")
        assert train_jobs == daily_vars["job_variables"]


def test_daily_schedule_fires_at_0930_new_york_on_weekdays_across_dst() -> None:
    from prefect.server.schemas.schedules import CronSchedule

    schedule = CronSchedule(cron=DAILY_CRON, timezone=MARKET_TZ)
    dates = _run(schedule.get_dates(n=120, start=datetime(2027, 1, 4, tzinfo=ZoneInfo("UTC"))))
    local = [d.astimezone(ZoneInfo(MARKET_TZ)) for d in dates]
    assert {(d.hour, d.minute) for d in local} == {(9, 30)}
    assert {d.weekday() for d in local} == {0, 1, 2, 3, 4}
    assert {d.utcoffset().total_seconds() / 3600 for d in local} == {-5, -4}  # EST and EDT both covered


def test_weekly_schedule_fires_sunday_1800_new_york() -> None:
    from prefect.server.schemas.schedules import CronSchedule

    dates = _run(
        CronSchedule(cron=WEEKLY_CRON, timezone=MARKET_TZ).get_dates(
            n=10, start=datetime(2027, 3, 1, tzinfo=ZoneInfo("UTC"))
        )
    )
    local = [d.astimezone(ZoneInfo(MARKET_TZ)) for d in dates]
    assert {(d.weekday(), d.hour, d.minute) for d in local} == {(6, 18, 0)}


# -- the Docker deployments' steps -------------------------------------------------------------
@pytest.mark.parametrize("name", list(DOCKER_DEPLOYMENTS))
def test_docker_step_functions_import_and_accept_their_inputs(name: str) -> None:
    config = deployment_configs()[name]
    fqns = []
    for step in _steps(config):
        fqn, inputs = _step(step)
        fqns.append(fqn)
        if "requires" in inputs:
            importlib.import_module(re.split(r"[<>=!~]", inputs["requires"])[0].replace("-", "_"))
        function = import_object(fqn)
        arguments = {k: v for k, v in inputs.items() if k not in RESERVED_STEP_KEYS}
        bound = inspect.signature(function).bind(**arguments)
        extra = bound.arguments.get("build_kwargs")
        if extra:  # prefect-docker forwards these to docker-py's APIClient.build
            inspect.signature(docker.api.build.BuildApiMixin.build).bind(None, **extra)
    assert fqns == [
        "prefect.deployments.steps.run_shell_script",
        "prefect.deployments.steps.run_shell_script",
        "prefect.deployments.steps.run_shell_script",
        "prefect.deployments.steps.run_shell_script",
        "prefect_docker.deployments.steps.build_docker_image",
        "prefect_docker.deployments.steps.push_docker_image",
        "prefect.deployments.steps.set_working_directory",
    ]
    assert config["work_pool"]["name"] == DOCKER_POOL


@pytest.mark.parametrize("name", list(DOCKER_DEPLOYMENTS))
def test_every_template_names_a_deploy_variable_or_an_earlier_step_output(name: str) -> None:
    config = deployment_configs()[name]
    outputs: dict[str, set[str]] = {}
    for step in [*config["build"], *config["push"]]:
        fqn, inputs = _step(step)
        for placeholder in find_placeholders(str({k: v for k, v in inputs.items() if k not in RESERVED_STEP_KEYS})):
            _check_placeholder(placeholder.name, outputs, where=f"{fqn} inputs")
        if "id" in inputs:
            outputs[inputs["id"]] = set(get_type_hints(import_object(fqn))["return"].__annotations__)
    for placeholder in find_placeholders(str(config["work_pool"]["job_variables"])):
        _check_placeholder(placeholder.name, outputs, where="work_pool.job_variables")


def _check_placeholder(name: str, outputs: dict[str, set[str]], *, where: str) -> None:
    if name.startswith("$"):
        assert name[1:] in DEPLOY_ENV, f"{where}: undocumented environment variable {name}"
        return
    step_id, _, key = name.partition(".")
    assert step_id in outputs, f"{where}: {{{{ {name} }}}} names no earlier step id (known: {sorted(outputs)})"
    assert key in outputs[step_id], f"{where}: step {step_id!r} returns {sorted(outputs[step_id])}, not {key!r}"


DOCKER_TARGETS = {"daily-forecast-docker": "daily", "train-model-docker": "training"}


@pytest.fixture(params=sorted(DOCKER_TARGETS))
def docker_render(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A Docker deployment's values rendered as `prefect deploy` would, without building.

    The two run_shell_script steps run for real; the build step's output is what
    build_docker_image returns for the rendered inputs.
    """
    from prefect.deployments.steps import run_shell_script

    for key, value in DEPLOY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MARKET_FORECAST_BASE_IMAGE", raising=False)  # the default base
    monkeypatch.chdir(REPO)  # where `prefect deploy` runs
    config = deployment_configs()[request.param]
    outputs: dict[str, Any] = {}
    rendered_inputs = {}
    for step in config["build"]:
        fqn, inputs = _step(step)
        step_id = inputs.pop("id")
        inputs.pop("requires", None)
        inputs = apply_values(apply_values(inputs, outputs), dict(os.environ))  # as run_step: outputs, then env
        rendered_inputs[step_id] = inputs
        if fqn.endswith("run_shell_script"):
            outputs[step_id] = _run(run_shell_script(**inputs))
        else:
            image = f"{inputs['image_name']}:{inputs['tag']}"
            outputs[step_id] = {
                "image_name": inputs["image_name"],
                "tag": inputs["tag"],
                "image": image,
                "image_id": "sha256:0",
                "additional_tags": [],
            }
    push_inputs = apply_values({k: v for k, v in _step(config["push"][0])[1].items() if k != "requires"}, outputs)
    job_variables = apply_values(config["work_pool"]["job_variables"], outputs, skip_prefixes=["ctx."])
    return {
        "inputs": rendered_inputs,
        "push": push_inputs,
        "job_variables": job_variables,
        "outputs": outputs,
        "target": DOCKER_TARGETS[request.param],
    }


def test_image_name_tag_and_build_args_render(docker_render: dict[str, Any]) -> None:
    sha = docker_render["outputs"]["git-sha"]["stdout"]
    assert re.fullmatch(r"[0-9a-f]{12}", sha), sha
    build = docker_render["inputs"]["build-image"]
    target = docker_render["target"]
    assert build["image_name"] == DEPLOY_ENV["MARKET_FORECAST_IMAGE"]
    assert build["target"] == target  # the Dockerfile's daily (no TensorFlow) or training image
    assert target in dockerfile_stages()
    assert build["tag"] == f"{sha}-{target}"
    assert build["buildargs"] == {
        "BASE_IMAGE": dockerfile_base_image_default(),
        "GIT_SHA": sha,
        "SOURCE_URL": origin_url_without_credentials(),
    }
    assert docker_render["push"] == {"image_name": DEPLOY_ENV["MARKET_FORECAST_IMAGE"], "tag": f"{sha}-{target}"}


def _base_image_step() -> dict[str, Any]:
    step = next(
        s for s in deployment_configs()["daily-forecast-docker"]["build"] if _step(s)[1].get("id") == "base-image"
    )
    _, inputs = _step(step)
    inputs.pop("id")
    return inputs


def test_base_image_defaults_to_the_dockerfiles_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.deployments.steps import run_shell_script

    monkeypatch.delenv("MARKET_FORECAST_BASE_IMAGE", raising=False)
    assert (
        _run(run_shell_script(**_base_image_step()))["stdout"] == dockerfile_base_image_default() == "python:3.11-slim"
    )


def test_base_image_can_be_replaced_by_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.deployments.steps import run_shell_script

    monkeypatch.setenv("MARKET_FORECAST_BASE_IMAGE", "registry.example.com/python:3.11.7-slim")
    assert _run(run_shell_script(**_base_image_step()))["stdout"] == "registry.example.com/python:3.11.7-slim"


def test_job_variables_render_and_fit_the_docker_worker_template(docker_render: dict[str, Any]) -> None:
    from prefect_docker.worker import DockerWorker

    job_variables = docker_render["job_variables"]
    sha = docker_render["outputs"]["git-sha"]["stdout"]
    assert job_variables["image"] == f"{DEPLOY_ENV['MARKET_FORECAST_IMAGE']}:{sha}-{docker_render['target']}"
    assert "{{" not in str(job_variables)
    # What lets a killed container end its run Crashed (tests/docker/test_container_faults.py
    # runs with these production values).
    assert (job_variables["stream_output"], job_variables["auto_remove"]) == (True, False)
    template = DockerWorker.get_default_base_job_template()
    validate(job_variables, template["variables"], raise_on_error=True, ignore_required=True)


def test_process_job_variables_fit_the_process_worker_template() -> None:
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    for name in PROCESS_DEPLOYMENTS:
        validate(
            deployment_configs()[name]["work_pool"]["job_variables"],
            template["variables"],
            raise_on_error=True,
            ignore_required=True,
        )


def test_missing_image_name_stops_the_build_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.deployments.steps import run_shell_script

    monkeypatch.delenv("MARKET_FORECAST_IMAGE", raising=False)
    _fqn, inputs = _step(deployment_configs()["daily-forecast-docker"]["build"][0])
    assert inputs.pop("id") == "check-image-name"
    with pytest.raises(RuntimeError, match="MARKET_FORECAST_IMAGE is not set"):
        _run(run_shell_script(**inputs))


def test_source_label_drops_credentials_from_the_remote_url(tmp_path: Path) -> None:
    from prefect.deployments.steps import run_shell_script

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(tmp_path),
            "remote",
            "add",
            "origin",
            "https://ci-token:s3cret@example.invalid/acme/market-forecast.git",
        ],
        check=True,
    )
    step = next(
        s for s in deployment_configs()["daily-forecast-docker"]["build"] if _step(s)[1].get("id") == "source-url"
    )
    _, inputs = _step(step)
    inputs.pop("id")
    result = _run(run_shell_script(**inputs, directory=str(tmp_path)))
    assert result["stdout"] == "https://example.invalid/acme/market-forecast.git"


def test_block_names_and_tag_are_the_ones_the_block_setup_and_automations_use() -> None:
    from blocks.automations import DEFAULT_TAG
    from blocks.setup import FRED_BLOCK, STORAGE_BLOCK

    for name in DOCKER_DEPLOYMENTS:
        config = deployment_configs()[name]
        assert config["parameters"]["storage_block"] == f"azure-blob-storage-container/{STORAGE_BLOCK}"
        assert config["parameters"]["fred_block"] == FRED_BLOCK
    for config in deployment_configs().values():
        assert DEFAULT_TAG in config["tags"], "the failure and deadline automations watch runs with this tag"
