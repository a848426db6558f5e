"""The flows' command line (flows/cli.py): bad values stop before a run exists; the pipeline's own
errors end with one line saying what to do."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from flows.cli import (
    INTERRUPT_GRACE_SECONDS,
    INTERRUPTED_STATUS,
    RUN_LOGGERS,
    _pipeline_errors_without_traceback,
    parse_command_line,
    run_from_command_line,
)
from flows.common import today_in_new_york
from flows.daily_forecast import daily_forecast
from flows.train_model import train_model
from tasks.core.settings import Settings
from tests.deploy.deployments import REPO


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        parse_command_line(daily_forecast, argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_a_bad_series_id_is_one_error_without_the_long_usage(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["--series", "sp500"], capsys)
    assert "series.0: Value error, 'sp500' is not a FRED series id" in err
    assert "at least 1 item" not in err  # pydantic's echo of the rejected item is left out
    assert "usage:" not in err and len(err.splitlines()) == 3, err


def test_a_check_of_several_settings_is_named_settings(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["--backtest.horizons", "1", "5", "40"], capsys)
    assert "\n  settings: Value error, backtest.horizons go up to 40 sessions, beyond forecast_horizon" in err, err


def test_the_daily_help_says_which_settings_it_takes_from_the_champion_or_ignores(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_command_line(daily_forecast, ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    windows = "sequence_length, level_window, ensemble.estimation_sessions and ensemble.min_estimation_sessions"
    assert f"input windows ({windows}) are taken from the champion" in text
    assert "(epochs, batch_size, lstm_*," in text and "champion_gate.*) have no effect here" in text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--lookback-sessions", "0"], "lookback_sessions: Input should be greater than or equal to 1"),
        (["--as-of", "20-11-2026"], "as_of: Input should be a valid date"),
    ],
)
def test_bad_flow_parameters_are_usage_errors(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(argv, capsys)
    assert "invalid flow parameters:" in err and expected in err, err


def test_a_setting_whose_none_means_something_takes_none() -> None:
    argv = [
        "--storage.incomplete-folder-days",
        "none",
        "--champion-gate.series",
        "None",
        "--fetch.rate-limit-name",
        "null",
    ]
    settings = parse_command_line(daily_forecast, argv)["settings"]
    assert settings.storage.incomplete_folder_days is None and settings.champion_gate.series is None
    assert settings.fetch.rate_limit_name is None
    assert parse_command_line(daily_forecast, [])["settings"].storage.incomplete_folder_days == 7
    assert parse_command_line(daily_forecast, ["--champion-gate.series", "SP500"])["settings"].champion_gate.series == (
        "SP500",
    )


async def flow_run_count() -> int:
    async with get_client() as client:
        return await client.count_flow_runs()


def test_a_date_after_today_starts_no_run_so_no_failure_alert(
    prefect_harness: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import asyncio

    later = (today_in_new_york() + timedelta(days=2)).isoformat()
    before = asyncio.run(flow_run_count())
    with pytest.raises(SystemExit) as exited:
        run_from_command_line(daily_forecast, ["--as-of", later, "--output-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert f"as_of: Value error, as_of {later} is after today" in capsys.readouterr().err
    assert asyncio.run(flow_run_count()) == before


def test_a_history_too_short_for_the_as_of_starts_no_training_run(
    prefect_harness: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The training settings' check reads as_of, an earlier parameter: the parameters are validated
    # together, as Prefect validates them.
    import asyncio

    before = asyncio.run(flow_run_count())
    argv = ["--as-of", "2025-03-31", "--history-start", "2024-09-01", "--output-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exited:
        run_from_command_line(train_model, argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "settings: Value error, model group 'default' is too short for its windows: 2024-09-01 .. " in err, err
    assert "move its history_start earlier" in err
    assert asyncio.run(flow_run_count()) == before


def test_a_pipeline_error_ends_with_what_to_do_and_status_1(
    prefect_harness: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    as_of = (today_in_new_york() - timedelta(days=1)).isoformat()
    with pytest.raises(SystemExit) as exited:
        run_from_command_line(daily_forecast, ["--as-of", as_of, "--force", "--output-dir", str(tmp_path)])
    assert exited.value.code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: daily-forecast Failed: No champion model in local folder"), last
    assert "Run the train-model flow" in last


@flow(name="fails-unexpectedly")
def fails_unexpectedly(settings: Settings = Settings()) -> None:
    raise RuntimeError("a bug, not a pipeline error")


def test_the_log_names_a_pipeline_error_without_a_traceback_but_keeps_any_other_errors(
    prefect_harness: None, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    def failure() -> logging.LogRecord:
        [record] = [r for r in caplog.records if r.getMessage().startswith("Encountered exception during execution")]
        caplog.clear()
        return record

    daily = ["--as-of", (today_in_new_york() - timedelta(days=1)).isoformat(), "--force", "--output-dir", str(tmp_path)]
    with pytest.raises(SystemExit):
        run_from_command_line(daily_forecast, daily)
    record = failure()
    assert "ModelStoreError('No champion model in local folder" in record.getMessage()
    assert record.exc_info is None, "a pipeline error's message says what to do: no traceback"

    with pytest.raises(RuntimeError, match="a bug"):
        run_from_command_line(fails_unexpectedly, [])
    record = failure()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)

    with caplog.at_level(logging.DEBUG, logger="prefect.flow_runs"), pytest.raises(SystemExit):
        run_from_command_line(daily_forecast, daily)
    assert failure().exc_info is not None, "at DEBUG the traceback is kept"
    for name in RUN_LOGGERS:
        assert _pipeline_errors_without_traceback not in logging.getLogger(name).filters, "removed after the run"


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_ends_a_training_run_promptly_with_status_130_and_publishes_nothing(
    tmp_path: Path, presses: int
) -> None:
    # As a terminal's Ctrl-C: SIGINT to the whole process group, Prefect's temporary server included.
    # Before, Prefect retried reporting the crash to that stopped server for minutes while the
    # training thread ran on; the run now has INTERRUPT_GRACE_SECONDS to stop, then the process ends.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "FRED_"))}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env |= {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90", "PYTHONPATH": str(REPO)}
    out = tmp_path / "store"
    command = [
        sys.executable, "-m", "flows.train_model", "--as-of", "2025-06-30", "--output-dir", str(out),
        "--history-start", "2023-01-01", "--level-window", "20", "--lstm-units", "4", "--epochs", "1000",
    ]  # fmt: skip
    log = tmp_path / "run.log"
    with open(log, "w") as stdout, open(tmp_path / "stderr.log", "w") as stderr:
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "epoch 2/1000" not in (tmp_path / "stderr.log").read_text() + log.read_text():
            assert child.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.log").read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(child.pid, signal.SIGINT)
        if presses == 2:  # "Ctrl-C again to quit at once": it waited for the grace period's end before
            time.sleep(1)
            os.killpg(child.pid, signal.SIGINT)
            code = child.wait(timeout=INTERRUPT_GRACE_SECONDS - 2)
        else:
            code = child.wait(timeout=INTERRUPT_GRACE_SECONDS + 60)  # it took over 200 s before
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    err = (tmp_path / "stderr.log").read_text()
    assert code == INTERRUPTED_STATUS, err[-3000:]
    assert "train-model: interrupted, stopping (Ctrl-C again to quit at once)" in err
    assert err.count("error: train-model interrupted (Ctrl-C): nothing more is published.") == 1, err[-3000:]
    assert not list(out.glob("runs/*/manifest.json")) and not (out / "models" / "champion.json").exists()
