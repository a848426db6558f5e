"""The benchmark's plumbing (bench/), on synthetic data: never its timings.

The end-to-end test runs the real command (local FRED server, both child processes, both flows) on
demo series written as FRED CSVs, with a tiny network and short horizons, and checks the printed
table and the JSON: structure, ratios computed from the children's own numbers, PASS/MISS
consistent with the measured values. The other tests cover input errors and the report logic
without starting anything.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from bench.processes import REPO_ROOT
from bench.report import build_report, coverage_lines, format_report, run_main
from bench.run import main
from bench.targets import HEADLINE, ISSUE12_HORIZONS, ISSUE12_SERIES, compute_ratios
from tasks.core.demo import generate_demo_series
from tasks.core.settings import DEFAULT_SERIES

TINY = [
    "--epochs",
    "1",
    "--history-start",
    "2023-06-01",
    "--lookback",
    "40",
    "--setting",
    "lstm_units=4",
    "--setting",
    "batch_size=64",
    "--setting",
    "level_window=20",
    "--setting",
    "forecast_horizon=5",
    "--setting",
    "backtest.horizons=[1,5]",
    "--setting",
    "backtest.origin_step=5",
    "--setting",
    "fetch.requests_per_minute=6000",
]


def write_fred_csvs(folder: Path, series: tuple[str, ...], end: date) -> None:
    """Demo series in FRED's download format: observation_date,<ID>, empty value when missing."""
    folder.mkdir(parents=True, exist_ok=True)
    for sid, values in generate_demo_series(series, end).items():
        lines = [f"observation_date,{sid}"]
        lines += [f"{day:%Y-%m-%d},{'' if math.isnan(v) else repr(float(v))}" for day, v in values.items()]
        (folder / f"{sid}.csv").write_text("\n".join(lines) + "\n")


def _child(role: str, **values: float) -> dict:
    base = {"train_seconds": 10.0, "daily_seconds": 5.0, "peak_rss_mb": 800.0, "backtest": []}
    if role == "project":
        base.update(forecast_ms_first=200.0, forecast_ms_warm=20.0)
    else:
        base.update(forecast_ms=4000.0)
    base.update(values)
    return base


def test_missing_data_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_missing_series_names_it_and_what_the_folder_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_fred_csvs(tmp_path / "fred", ("SP500",), date(2024, 6, 28))
    assert main(["--data", str(tmp_path / "fred"), "--series", "SP500,VIXCLS"]) == 2
    err = capsys.readouterr().err
    assert "lacks series VIXCLS" in err and "it holds SP500" in err


def test_malformed_csv_is_a_clear_error_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "fred"
    folder.mkdir()
    (folder / "SP500.csv").write_text("when,SP500\n2024-06-28,5460.48\n")
    assert main(["--data", str(folder), "--series", "SP500"]) == 2
    err = capsys.readouterr().err
    assert "SP500.csv" in err and "observation_date,<SERIES_ID>" in err


def test_a_benchmark_command_prints_its_report_writes_its_json_and_reports_an_interruption(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = {"created_utc": "2026-12-02T15:04:38Z", "rows": 3}
    assert run_main(lambda: report, lambda r: f"table of {r['rows']}", out=tmp_path, prefix="x", stopped="-") == 0
    out = capsys.readouterr().out
    assert out.startswith("table of 3\n") and "x-20261202_150438.json" in out
    assert json.loads((tmp_path / "x-20261202_150438.json").read_text()) == report

    def interrupted() -> dict:
        raise KeyboardInterrupt

    assert run_main(interrupted, str, out=tmp_path, prefix="x", stopped="cluster stopped") == 130
    assert "interrupted: cluster stopped" in capsys.readouterr().err


def test_bench_replaces_no_project_code() -> None:
    """It measures the project through its public flows and functions: nothing is patched."""
    for path in sorted(Path(__file__).resolve().parent.parent.joinpath("bench").glob("*.py")):
        source = path.read_text()
        for pattern in ("setattr(", "monkeypatch", "mock.patch"):
            assert pattern not in source, f"{path.name} uses {pattern}"


def test_ratios_and_verdicts_follow_the_measured_numbers() -> None:
    project = _child("project", train_seconds=4.0, daily_seconds=12.0, peak_rss_mb=900.0)
    project["backtest"] = [
        {
            "series_id": "VIXCLS",
            "horizon": 1,
            "n": 50,
            "rel_mae": 0.99,
            "coverage_80": 0.78,
            "coverage_95": 0.91,
            "rel_pinball": 0.9,
        },
        {
            "series_id": "VIXCLS",
            "horizon": 20,
            "n": 30,
            "rel_mae": 0.89,
            "coverage_80": 0.80,
            "coverage_95": 0.95,
            "rel_pinball": 1.1,
        },
        {"series_id": "VIXCLS", "horizon": 30, "n": 20, "rel_mae": 1.01, "coverage_80": math.nan, "coverage_95": 0.95},
    ]
    peers = {
        "rel_mae": [
            {
                "series_id": "VIXCLS",
                "horizon": 1,
                "drift": 1.0,
                "ar1_log_level": 0.98,
                "ar1_log_level_dm_pvalue": 0.41,
                "auto_ets": 1.0,
                "auto_arima": 1.0,
            },
            {
                "series_id": "VIXCLS",
                "horizon": 20,
                "drift": 1.0,
                "ar1_log_level": 0.95,
                "auto_ets": 1.0,
                "auto_arima": 1.0,
            },
            {
                "series_id": "VIXCLS",
                "horizon": 30,
                "drift": 1.0,
                "ar1_log_level": 0.90,
                "auto_ets": math.nan,
                "auto_arima": 1.0,
            },
        ]
    }
    seed = _child("seed", train_seconds=10.0, daily_seconds=6.0, peak_rss_mb=600.0)
    config = {"settings": {"series": ["VIXCLS"]}, "horizons": [1, 20, 30]}
    report = build_report({"project": project, "seed": seed, "peers": peers}, config=config, machine={})

    assert report["ratios"] == compute_ratios({"project": project, "seed": seed})
    assert report["ratios"]["train_seconds"] == pytest.approx(0.4)
    assert report["ratios"]["forecast_ms_warm"] == pytest.approx(20.0 / 4000.0)
    assert report["ratios"]["daily_seconds"] == pytest.approx(2.0)
    assert report["ratios"]["peak_rss_mb"] == pytest.approx(1.5)
    verdicts = {t["id"]: t["result"] for t in report["targets"]}
    assert verdicts["train_ratio"] == "PASS"
    assert verdicts["forecast_ms"] == "PASS"
    assert verdicts["daily_seconds"] == "MISS"
    assert verdicts["peak_rss_ratio"] == "MISS"
    assert verdicts["rel_mae:VIXCLS:h1"] == "PASS" and verdicts["rel_mae:VIXCLS:h30"] == "MISS"
    assert verdicts["peers:VIXCLS:h1"] == "MISS"  # the AR(1) peer's 0.98 beats 0.99
    assert verdicts["peers:VIXCLS:h20"] == "PASS"
    # The best peer's own DM p-value against the random walk is carried beside it (none for the random walk).
    cells = {row["horizon"]: row for row in report["rel_mae"]}
    assert cells[1]["best_peer"] == "ar1_log_level" and cells[1]["best_peer_dm_pvalue"] == 0.41
    assert cells[20]["best_peer"] == "ar1_log_level" and math.isnan(cells[20]["best_peer_dm_pvalue"])
    assert verdicts["peers:VIXCLS:h30"] == "MISS"  # a peer not measured: a miss, never a pass
    assert verdicts["vix_rel_mae_h20"] == "PASS"
    assert verdicts["vix_rel_mae_h30"] == "MISS"
    assert verdicts["vix_rel_mae_h10"] == "MISS"  # horizon 10 not run
    assert verdicts["coverage_80:VIXCLS:h1"] == "PASS"  # 2 points below nominal
    assert verdicts["coverage_95:VIXCLS:h1"] == "MISS"  # 4 points below nominal
    assert verdicts["coverage_80:VIXCLS:h30"] == "MISS"  # not measured is a miss
    # The pinball target is a mean over issue 12's four series: with three not measured, a miss.
    assert verdicts["pinball_h1"] == "MISS" and verdicts["pinball_h20"] == "MISS" and verdicts["pinball_h30"] == "MISS"
    assert verdicts["rel_mae:SP500:h5"] == "MISS"  # a cell of the issue's grid the run lacks
    # Each judged headline row says what its target measures: the ratio, or the project's own number.
    measured = {t["id"]: t["measured"] for t in report["targets"]}
    judged = [c for c in HEADLINE if c.target_id is not None]
    assert {c.judged for c in judged} == {"ratio", "project"}
    for c in judged:
        value, shown = measured[c.target_id], report["headline"][c.id][c.judged]
        assert value == shown or (math.isnan(value) and math.isnan(shown)), c.id


def _grid_backtest(rel_mae: float = 0.99, pinball: float = 0.95) -> list[dict]:
    return [
        {
            "series_id": sid,
            "horizon": h,
            "n": 100,
            "rel_mae": rel_mae,
            "coverage_80": 0.80,
            "coverage_95": 0.95,
            "rel_pinball": pinball,
        }
        for sid in ISSUE12_SERIES
        for h in ISSUE12_HORIZONS
    ]


def test_the_targets_cover_issue_12s_grid_whatever_the_run_measured() -> None:
    project = _child("project")
    project["backtest"] = _grid_backtest()
    config = {"settings": {"series": list(ISSUE12_SERIES)}, "horizons": list(ISSUE12_HORIZONS)}
    full = build_report({"project": project, "seed": _child("seed")}, config=config, machine={})["targets"]
    assert all(t["result"] == "PASS" for t in full if t["id"].startswith(("rel_mae:", "pinball_h", "coverage_")))

    project["backtest"] = [row for row in project["backtest"] if row["horizon"] in (1, 5)]
    fewer = {**config, "horizons": [1, 5]}
    cut = build_report({"project": project, "seed": _child("seed")}, config=fewer, machine={})["targets"]
    assert [t["id"] for t in cut] == [t["id"] for t in full]  # the same targets: none disappears
    verdicts = {t["id"]: t["result"] for t in cut}
    assert verdicts["rel_mae:DJIA:h5"] == "PASS" and verdicts["rel_mae:DJIA:h10"] == "MISS"
    assert verdicts["pinball_h5"] == "PASS" and verdicts["pinball_h30"] == "MISS"


def test_a_printed_row_shows_the_digits_its_verdict_turns_on() -> None:
    project = _child("project", train_seconds=5.03)  # 0.503x against a 0.5 target
    project["backtest"] = _grid_backtest(rel_mae=0.99405)
    project["backtest"][1]["rel_mae"] = 0.9925  # SP500 h5: 3 decimals show its verdict
    project["backtest"][0]["coverage_80"] = 0.7699  # SP500 h1: prints as 77.0% but misses 77%
    peers = {
        "rel_mae": [
            {"series_id": sid, "horizon": h, "drift": 0.994, "ar1_log_level": 1.1, "auto_ets": 1.1, "auto_arima": 1.1}
            for sid in ISSUE12_SERIES
            for h in ISSUE12_HORIZONS
        ]
    }
    config = {
        "settings": {"series": list(ISSUE12_SERIES), "history_start": "2020-01-01", "test_fraction": 0.2, "epochs": 2},
        "horizons": list(ISSUE12_HORIZONS),
        "data_folder": "fred",
        "as_of": "2025-03-31",
        "sessions": 1000,
        "forecast_sessions": 30,
    }
    machine = {"cpu_count": 2, "python": "3.11"}
    report = build_report({"project": project, "seed": _child("seed"), "peers": peers}, config=config, machine=machine)
    lines = coverage_lines(report)
    assert any(line.startswith("SP500                  1") and "76.99%" in line and "MISS" in line for line in lines)
    printed = format_report(report).splitlines()
    sp500_h1 = next(line for line in printed if line.split()[:2] == ["SP500", "1"] and "drift" in line)
    assert (
        sp500_h1.split()[2:4] == ["0.99405", "n/a"]
        and "0.99400" in sp500_h1
        and sp500_h1.rstrip().endswith("PASS  MISS")
    )
    sp500_h5 = next(line for line in printed if line.split()[:2] == ["SP500", "5"] and "drift" in line)
    assert sp500_h5.split()[2:3] == ["0.993"]  # 3 decimals show 0.9925 beating 0.994
    assert next(line for line in printed if line.startswith("training seconds")).split()[4] == "0.503x"


def test_the_daily_run_alone_is_judged_from_process_start_to_completed() -> None:
    """Issue 11's target is start to Completed; the time until the command exits is printed beside it."""
    children = {
        "project": _child("project"),
        "seed": _child("seed"),
        # The engine exits a second after Completed (log flush, heartbeat join); the seed's script is done.
        "project-daily": {
            "import_seconds": 2.0,
            "run_seconds": 1.0,
            "completed_seconds": 3.0,
            "process_seconds": 4.0,
            "peak_rss_mb": 300.0,
        },
        "seed-daily": {
            "import_seconds": 4.0,
            "run_seconds": 1.0,
            "completed_seconds": 5.0,
            "process_seconds": 5.0,
            "peak_rss_mb": 700.0,
        },
    }
    report = build_report(children, config={"settings": {"series": []}, "horizons": []}, machine={})

    assert report["ratios"]["daily_completed_seconds"] == pytest.approx(0.6)
    assert report["ratios"]["daily_process_seconds"] == pytest.approx(0.8)
    verdicts = {t["id"]: t for t in report["targets"]}
    assert verdicts["daily_process_ratio"]["measured"] == pytest.approx(0.6)
    assert verdicts["daily_process_ratio"]["result"] == "PASS"  # 0.6 is the threshold, inclusive
    assert verdicts["daily_rss_ratio"]["result"] == "PASS"
    assert report["headline"]["daily_completed_seconds"]["project"] == 3.0
    assert report["headline"]["daily_process_seconds"]["project"] == 4.0


@pytest.mark.timeout(900)  # the first run also makes the daily and training venvs (pip, about 2 minutes)
def test_benchmark_command_end_to_end_on_synthetic_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = tmp_path / "fred", tmp_path / "results"
    write_fred_csvs(data, DEFAULT_SERIES, date(2024, 6, 28))

    assert main(["--data", str(data), "--out", str(out), "--parallel", *TINY]) == 0

    printed = capsys.readouterr().out
    for heading in (
        "Headline (ratio = project / seed",
        "training seconds",
        "daily flow seconds",
        "peak RSS MB",
        "rel_mae on the walk-forward backtest",
        "Interval coverage",
        "Pinball loss",
        "Targets met:",
    ):
        assert heading in printed
    files = list(out.glob("bench-*.json"))
    assert len(files) == 1
    report = json.loads(files[0].read_text())

    assert report["format"] == "market-forecast-bench/1"
    assert report["config"]["as_of"] == "2024-06-28"  # the last date in the data
    assert report["config"]["horizons"] == [1, 5] and report["config"]["forecast_sessions"] == 5
    assert {"cpu_count", "python", "tensorflow"} <= set(report["machine"])
    project, seed = report["project"], report["seed"]
    assert project["same_data_as_seed"] is True
    assert project["forecast_shape"] == [5, len(DEFAULT_SERIES)] and project["forecast_finite"]
    for measured in (
        project["train_seconds"],
        project["forecast_ms_first"],
        project["forecast_ms_warm"],
        project["daily_seconds"],
        project["peak_rss_mb"],
        seed["train_seconds"],
        seed["forecast_ms"],
        seed["daily_seconds"],
        seed["peak_rss_mb"],
    ):
        assert measured > 0

    # Ratios are the children's own numbers divided, nothing else.
    ratios = report["ratios"]
    assert ratios["train_seconds"] == pytest.approx(project["train_seconds"] / seed["train_seconds"])
    assert ratios["forecast_ms_warm"] == pytest.approx(project["forecast_ms_warm"] / seed["forecast_ms"])
    assert ratios["forecast_ms_first"] == pytest.approx(project["forecast_ms_first"] / seed["forecast_ms"])
    assert ratios["daily_seconds"] == pytest.approx(project["daily_seconds"] / seed["daily_seconds"])
    assert ratios["peak_rss_mb"] == pytest.approx(project["peak_rss_mb"] / seed["peak_rss_mb"])
    for name, values in report["headline"].items():
        assert values["ratio"] == pytest.approx(ratios[name])

    # rel_mae for both designs and the peers (on the project's origins), and coverage, per series and horizon.
    assert [(m["series_id"], m["horizon"]) for m in report["rel_mae"]] == [
        (s, h) for s in DEFAULT_SERIES for h in (1, 5)
    ]
    for row in report["rel_mae"]:
        assert row["project"] > 0 and row["seed"] > 0 and row["n_project"] > 0 and row["n_seed"] > 0
        assert row["n_peers"] == row["n_project"] and row["drift"] > 0 and row["ar1_log_level"] > 0
        assert row["auto_ets"] > 0 and row["auto_arima"] > 0
    for peer_row in report["peers"]["rel_mae"]:
        for name in ("drift", "ar1_log_level", "auto_ets", "auto_arima"):
            assert 0 <= peer_row[f"{name}_dm_pvalue"] <= 1, peer_row
    assert len(report["coverage"]) == len(DEFAULT_SERIES) * 2
    # Beside the coverage target, the calibrated band's range on the same origins (origin_step 5 here).
    reference = report["coverage_reference"]
    assert reference["cells"] == 2 * len(report["coverage"]) and reference["origin_step"] == 5
    # (This tiny test part leaves no origin with enough earlier errors to calibrate a band: no range either.)
    for row in report["coverage"]:
        if row["n_coverage"]:
            assert row["calibrated_80"][0] < 0.8 < row["calibrated_80"][1]
        else:
            assert row["calibrated_80"] is None and row["calibrated_95"] is None
    assert f"inside that range in {reference['inside_calibrated_range']} of {reference['cells']}" in printed

    # Verdicts agree with the measured values they report.
    verdicts = {t["id"]: t for t in report["targets"]}
    assert verdicts["train_ratio"]["measured"] == pytest.approx(ratios["train_seconds"])
    assert verdicts["train_ratio"]["result"] == ("PASS" if ratios["train_seconds"] <= 0.5 else "MISS")
    assert verdicts["daily_seconds"]["result"] == ("PASS" if project["daily_seconds"] <= 10 else "MISS")
    for row in report["rel_mae"]:
        sid, h = row["series_id"], row["horizon"]
        assert verdicts[f"rel_mae:{sid}:h{h}"]["result"] == ("PASS" if row["project"] <= 1.0 else "MISS")
        best = min(1.0, row["drift"], row["ar1_log_level"], row["auto_ets"], row["auto_arima"])
        assert verdicts[f"peers:{sid}:h{h}"]["result"] == ("PASS" if row["project"] <= best else "MISS")
    assert verdicts["vix_rel_mae_h20"]["result"] == "MISS"  # horizon 20 not run: a miss, never a pass
    assert report["summary"]["passed"] == sum(t["result"] == "PASS" for t in report["targets"])
    assert format_report(report).splitlines()[0] == printed.splitlines()[0]

    # The daily runs alone; the project's as a worker starts a flow run of its deployment.
    deployed, engine = report["project-daily"], report["project-daily-engine"]
    assert deployed["flow_run_state"] == engine["flow_run_state"] == "COMPLETED"
    assert deployed["command"] == "prefect flow-run execute" and deployed["flow_run_id"] != engine["flow_run_id"]
    assert deployed["supervisor_peak_rss_mb"] > 50 and deployed["engine_peak_rss_mb"] > 100
    assert deployed["peak_rss_mb"] == pytest.approx(deployed["supervisor_peak_rss_mb"] + deployed["engine_peak_rss_mb"])
    assert engine["heavy_libraries_loaded"] == []  # reported; the daily venv has none of them (below)
    # Each design ran in the packages it is deployed with, not in the tests' venv: the project's daily
    # run in the daily image's lock (no TensorFlow, no pyarrow), training and the seed in the training
    # image's (with TensorFlow); the peers (statsforecast) in the tests' venv.
    environments = report["config"]["environments"]
    assert {run["python"] for run in (deployed, engine, report["prefect-floor"])} == {environments["daily"]}
    assert {report[role]["python"] for role in ("seed", "project", "seed-daily")} == {environments["training"]}
    assert report["peers"]["python"] == sys.executable not in environments.values()
    modules = ("prefect", "pandas", "keras", "tensorflow", "sklearn", "pyarrow")
    assert _importable(environments["daily"], *modules) == [True, True, False, False, False, False]
    assert _importable(environments["training"], *modules) == [True, True, True, True, True, False]
    # Prefect's floor: an empty flow's run, deployed and started the same way.
    floor = report["prefect-floor"]
    assert floor["flow_run_state"] == "COMPLETED" and floor["command"] == "prefect flow-run execute"
    assert floor["flow_run_id"] not in (deployed["flow_run_id"], engine["flow_run_id"])
    assert floor["peak_rss_mb"] == pytest.approx(floor["supervisor_peak_rss_mb"] + floor["engine_peak_rss_mb"])
    assert floor["engine_peak_rss_mb"] < deployed["engine_peak_rss_mb"]  # no pandas, no charts: a smaller engine
    assert "an empty flow the same way (floor), s" in printed
    for run in (deployed, engine, floor, report["seed-daily"]):
        assert 0 < run["import_seconds"] < run["completed_seconds"] <= run["process_seconds"]
        assert run["run_seconds"] > 0
    for run in (deployed, engine, floor):  # start-up + run = start to Completed, all from the same flow run
        assert run["import_seconds"] + run["run_seconds"] == pytest.approx(run["completed_seconds"])
    seed_daily = report["seed-daily"]
    assert ratios["daily_completed_seconds"] == pytest.approx(
        deployed["completed_seconds"] / seed_daily["completed_seconds"]
    )
    assert verdicts["daily_process_ratio"]["measured"] == pytest.approx(ratios["daily_completed_seconds"])
    assert ratios["daily_process_seconds"] == pytest.approx(deployed["process_seconds"] / seed_daily["process_seconds"])

    # Metrics and timings only: no list long enough to hold a series (270 sessions here).
    assert _longest_list(report) < 100


def _importable(python: str, *modules: str) -> list[bool]:
    code = f"import importlib.util as u; print([u.find_spec(m) is not None for m in {list(modules)!r}])"
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.lower())


def test_a_small_child_of_a_large_process_reports_its_own_peak_rss() -> None:
    """Linux carries a parent's RSS into its child's ru_maxrss across exec; the benchmark's children
    (and a flow run's supervisor, smaller than the benchmark) must report their own peak."""
    ballast = bytes(range(256)) * (300 * 2**20 // 256)  # 300 MB written: resident in this process
    code = "from bench.results import peak_rss_mb; print(peak_rss_mb())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert len(ballast) == 300 * 2**20
    assert 5 < float(child.stdout) < 150  # an interpreter with the standard library, not 300 MB


def _longest_list(value: object) -> int:
    if isinstance(value, dict):
        return max((_longest_list(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max([len(value), *(_longest_list(v) for v in value)])
    return 0
