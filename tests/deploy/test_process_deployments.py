"""The process-pool deployments, end to end on a real local Prefect server and a process worker.

`prefect --no-prompt deploy --name daily-forecast-process --name train-model-process` from
prefect.yaml; the registered deployments read back through the API; `prefect deployment run` with
an `as_of` override through the worker; parameters of the wrong type against the deployment's
parameter schema. Prefect 3.8.8 behaviour asserted here:

- A value of the wrong JSON type (lookback_sessions="abc") is refused by the server when the run
  is created (HTTP 409, `enforce_parameter_schema` is on by default): the CLI exits 1 with
  "Validation failed for field 'lookback_sessions'" and no flow run exists.
- A string that is not a date (as_of="not-a-date") passes the server's check: its JSON schema
  validation does not apply `format: date`. The run then fails in the flow engine before any task
  runs, with a ParameterTypeError naming `as_of`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterId

from tasks.core.settings import Settings
from tests.deploy.deployments import (
    DAILY_CRON,
    MARKET_TZ,
    PAST_SESSION,
    PROCESS_POOL,
    REPO,
    TINY_SETTINGS,
    WEEKLY_CRON,
    run_deployment,
)
from tests.harness.flow_runs import wait_for_final_state

DAILY = "daily-forecast/daily-forecast-process"
TRAIN = "train-model/train-model-process"


def test_tiny_training_settings_are_valid_settings() -> None:
    settings = Settings.model_validate(TINY_SETTINGS)
    assert settings.champion_gate.max_rel_mae == 100


@pytest.mark.parametrize(
    ("name", "cron", "tag"),
    [("daily-forecast-process", DAILY_CRON, "daily"), ("train-model-process", WEEKLY_CRON, "training")],
)
def test_deploy_registers_schedule_in_new_york_time(
    process_deployments: dict[str, Any], name: str, cron: str, tag: str
) -> None:
    deployment = process_deployments[name]
    assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == [(cron, MARKET_TZ, True)]
    assert set(deployment.tags) == {"market-forecast", tag, "process"}
    assert deployment.description and "process worker" in deployment.description


@pytest.mark.parametrize("name", ["daily-forecast-process", "train-model-process"])
def test_deploy_registers_concurrency_limit_of_one(process_deployments: dict[str, Any], name: str) -> None:
    deployment = process_deployments[name]
    assert deployment.global_concurrency_limit is not None, "no concurrency limit registered"
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options is not None
    assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"


def test_deploy_registers_daily_parameters_and_schema(process_deployments: dict[str, Any]) -> None:
    deployment = process_deployments["daily-forecast-process"]
    assert deployment.parameters == {
        "output_dir": "data",
        "storage_block": None,
        "fred_block": None,
        "lookback_sessions": 365,
        "force": False,
    }
    properties = deployment.parameter_openapi_schema["properties"]
    assert set(properties) == {
        "as_of",
        "force",
        "settings",
        "lookback_sessions",
        "output_dir",
        "storage_block",
        "fred_block",
    }
    assert properties["lookback_sessions"]["type"] == "integer"
    assert deployment.enforce_parameter_schema is True


def test_deploy_registers_training_parameters(process_deployments: dict[str, Any]) -> None:
    deployment = process_deployments["train-model-process"]
    assert deployment.parameters == {
        "output_dir": "data",
        "storage_block": None,
        "fred_block": None,
        "dask_address": None,
    }
    # The Dask scheduler of the model groups, settable per run or in prefect.yaml: empty = the worker's process.
    assert deployment.job_variables["env"]["MARKET_FORECAST_DASK_ADDRESS"] == ""
    assert "lookback_sessions" not in deployment.parameter_openapi_schema["properties"]


@pytest.mark.parametrize(
    ("name", "entrypoint"),
    [
        ("daily-forecast-process", "flows/daily_forecast.py:daily_forecast"),
        ("train-model-process", "flows/train_model.py:train_model"),
    ],
)
def test_deploy_points_the_worker_at_this_checkout(
    process_deployments: dict[str, Any], name: str, entrypoint: str
) -> None:
    deployment = process_deployments[name]
    assert deployment.work_pool_name == PROCESS_POOL
    assert deployment.entrypoint == entrypoint
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]


def test_daily_run_with_as_of_override_completes_and_publishes(
    prefect_server: Any, model_store: Path, process_worker: Any
) -> None:
    run = run_deployment(
        prefect_server, DAILY, {"as_of": PAST_SESSION, "output_dir": str(model_store), "settings": TINY_SETTINGS}
    )

    assert run.command.returncode == 0, f"{run.output[-4000:]}\n--- worker ---\n{process_worker.log_tail()}"
    assert "Flow run finished successfully in 'Completed'" in run.command.stdout
    flow_run = wait_for_final_state(prefect_server, run.flow_run_id)
    assert flow_run.state.is_completed()
    assert flow_run.name == f"daily-{PAST_SESSION}"
    assert flow_run.parameters["as_of"] == PAST_SESSION

    latest = json.loads((model_store / "latest.json").read_text())
    assert latest["kind"] == "daily"
    assert latest["as_of"] == PAST_SESSION
    folder = model_store / latest["run_folder"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["flow_run_id"] == str(run.flow_run_id)
    assert manifest["as_of"] == PAST_SESSION
    published = {f["name"] for f in manifest["files"]}
    assert {"actuals.csv", "predicted.csv", "forecasted_data.csv", "model_metrics.csv"} <= published
    assert all((folder / name).is_file() for name in published)


@pytest.mark.parametrize(
    ("parameter", "value", "reason"),
    [
        ("lookback_sessions", "abc", "'abc' is not of type 'integer'"),
        ("lookback_sessions", 0, "0 is less than the minimum of 1"),
        ("force", "sometimes", "'sometimes' is not of type 'boolean'"),
        ("settings", {"epochs": "many"}, "'many' is not of type 'integer'"),
    ],
)
def test_server_refuses_a_parameter_of_the_wrong_type(
    prefect_server: Any, process_deployments: dict[str, Any], parameter: str, value: Any, reason: str
) -> None:
    of_daily = DeploymentFilter(id=DeploymentFilterId(any_=[process_deployments["daily-forecast-process"].id]))
    with prefect_server.client() as client:
        runs_before = {r.id for r in client.read_flow_runs(deployment_filter=of_daily)}

    run = run_deployment(prefect_server, DAILY, {"as_of": PAST_SESSION, parameter: value}, watch=False)

    assert run.command.returncode == 1, run.output
    field = "settings.epochs" if parameter == "settings" else parameter
    assert f"Validation failed for field '{field}'" in " ".join(run.output.split())
    assert reason in " ".join(run.output.split())
    assert run.flow_run_id is None
    with prefect_server.client() as client:
        runs_after = {r.id for r in client.read_flow_runs(deployment_filter=of_daily)}
    assert runs_after == runs_before


def test_malformed_date_fails_the_run_at_parameter_validation(
    prefect_server: Any, process_worker: Any, tmp_path: Path
) -> None:
    run = run_deployment(prefect_server, DAILY, {"as_of": "not-a-date", "output_dir": str(tmp_path)})

    # Accepted by the server (no date-format check there); the engine refuses it before any task.
    assert run.flow_run_id is not None, run.output
    assert run.command.returncode == 1, run.output
    flow_run = wait_for_final_state(prefect_server, run.flow_run_id)
    assert flow_run.state.is_failed(), f"{flow_run.state}\n{process_worker.log_tail()}"
    message = " ".join((flow_run.state.message or "").split())
    assert "Validation of flow parameters failed" in message
    assert "as_of" in message
    with prefect_server.client() as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.flow_run_id])))
    assert task_runs == []
    assert list(tmp_path.iterdir()) == []
