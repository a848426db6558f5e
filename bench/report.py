"""The report of a run: the JSON document, the printed table, the machine the numbers come from.

`build_report` puts the children's results, the headline comparisons and their ratios, MASE and
coverage by series and horizon and the targets' verdicts into one JSON-ready dict (metrics and
timings only, never the series); `format_report` prints it; `write_report` saves it.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.coverage_reference import CalibratedCoverage, calibrated_coverage
from bench.daily import HEAVY_LIBRARIES
from bench.dm_size import ALPHA as DM_ALPHA
from bench.dm_size import REPS as DM_REPS
from bench.dm_size import dm_size
from bench.errors import BenchError
from bench.processes import REPO_ROOT
from bench.results import number, to_json
from bench.targets import (
    COVERAGE_TOLERANCE,
    HEADLINE,
    PEERS,
    REL_MAE_MAX,
    REL_PINBALL_MAX,
    VIX_HORIZONS,
    VIX_REL_MAE_MAX,
    VIX_SERIES,
    Results,
    best_peer,
    by_series_horizon,
    compute_ratios,
    evaluate_targets,
)
from tasks.core.intervals import CHANCE_REPS

RESULT_FORMAT = "market-forecast-bench/1"
# The code measured, hashed into `machine.code_sha256` (HEAD may not be what ran).
CODE_PACKAGES = ("flows", "tasks", "blocks", "bench")


def build_report(results: Results, *, config: Mapping[str, Any], machine: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document of a run: configuration, machine, ratios, MASE, coverage, targets, each child's result.

    Args:
        results: role -> that child's result ("project" and "seed").
        config: What was run (data, dates, settings, command).
        machine: `machine_info()` and the load average after the run.
    """
    project, seed = results["project"], results["seed"]
    ratios = compute_ratios(results)
    series, horizons = config["settings"]["series"], config["horizons"]
    peer_rows = list(results.get("peers", {}).get("rel_mae") or [])
    targets = evaluate_targets(project, ratios, series=series, horizons=horizons, peers=peer_rows)
    pbt, sbt = by_series_horizon(project["backtest"]), by_series_horizon(seed["backtest"])
    peers = by_series_horizon(peer_rows)
    rel_mae = [
        {
            "series_id": sid,
            "horizon": h,
            **_rel_mae_row(pbt.get((sid, h), {}), sbt.get((sid, h), {}), peers.get((sid, h), {})),
        }
        for sid in series
        for h in horizons
    ]
    origin_step = int(config["settings"].get("backtest", {}).get("origin_step", 1))
    coverage = [
        {
            "series_id": sid,
            "horizon": h,
            "coverage_80": number(pbt.get((sid, h), {}).get("coverage_80")),
            "coverage_95": number(pbt.get((sid, h), {}).get("coverage_95")),
            "n_coverage": pbt.get((sid, h), {}).get("n_coverage"),
            "rel_pinball": number(pbt.get((sid, h), {}).get("rel_pinball")),
        }
        for sid in series
        for h in horizons
    ]
    reference = coverage_reference(coverage, origin_step=origin_step)
    origins = {
        h: [int(row["n"]) for row in project["backtest"] if row["horizon"] == h and row.get("n")] for h in horizons
    }
    significance = {
        str(h): {"n": max(ns), "size": dm_size(h, max(ns), origin_step=origin_step)} for h, ns in origins.items() if ns
    }
    headline = {
        c.id: {
            "project": results.get(c.project[0], {}).get(c.project[1]),
            "seed": results.get(c.seed[0], {}).get(c.seed[1]),
            "ratio": ratios[c.id],
        }
        for c in HEADLINE
    }
    return {
        "format": RESULT_FORMAT,
        "created_utc": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "config": dict(config),
        "machine": dict(machine),
        "headline": headline,
        "ratios": ratios,
        "rel_mae": rel_mae,
        "coverage": coverage,
        "coverage_reference": reference,
        "dm_size": significance,
        "targets": targets,
        "summary": {
            "passed": sum(t["result"] == "PASS" for t in targets),
            "missed": [t["id"] for t in targets if t["result"] != "PASS"],
        },
        **{role: dict(result) for role, result in results.items()},
    }


def _rel_mae_row(project: Mapping[str, Any], seed: Mapping[str, Any], peers: Mapping[str, Any]) -> dict[str, Any]:
    """One cell of the rel_mae table: the project, the seed, each peer, the best peer and its DM p-value."""
    best = best_peer(peers)[0]
    return {
        "project": number(project.get("rel_mae")),
        "seed": number(seed.get("rel_mae")),
        **{name: number(peers.get(name)) for name in PEERS},
        "best_peer": best,
        "best_peer_dm_pvalue": number(peers.get(f"{best}_dm_pvalue")),  # NaN when the random walk is best
        "dm_pvalue": number(project.get("dm_pvalue")),
        "mase": number(project.get("mase")),
        "n_project": project.get("n"),
        "n_seed": seed.get("n"),
        "n_peers": peers.get("n"),
    }


def coverage_reference(coverage: list[dict[str, Any]], *, origin_step: int) -> dict[str, Any]:
    """Beside the coverage target: what a perfectly calibrated band scores on the same origins.

    Adds each row's calibrated 5-95% range (`calibrated_80`, `calibrated_95`: [low, high], None where
    the cell has no coverage) and returns the summary: how many cells a calibrated band lands within
    the target's tolerance on average, and how many of the project's cells lie inside that range.
    """
    expected, inside, cells, outside = 0.0, 0, 0, []
    for row in coverage:
        n = number(row["n_coverage"])
        simulated: dict[float, CalibratedCoverage] = (
            calibrated_coverage(
                row["horizon"], int(n), (0.80, 0.95), tolerance=COVERAGE_TOLERANCE, origin_step=origin_step
            )
            if n >= 1
            else {}
        )
        for nominal, column in ((0.80, "coverage_80"), (0.95, "coverage_95")):
            calibrated = simulated.get(nominal)
            row[f"calibrated_{column.removeprefix('coverage_')}"] = (
                [calibrated.low, calibrated.high] if calibrated else None
            )
            cells += 1
            if calibrated is None:
                outside.append(f"{column}:{row['series_id']}:h{row['horizon']}")
                continue
            expected += calibrated.within_tolerance
            if calibrated.contains(number(row[column])):
                inside += 1
            else:
                outside.append(f"{column}:{row['series_id']}:h{row['horizon']}")
    return {
        "cells": cells,
        "calibrated_expected_within_tolerance": expected,
        "inside_calibrated_range": inside,
        "outside_calibrated_range": outside,
        "simulated_test_parts": CHANCE_REPS,
        "origin_step": origin_step,
    }


def _decisive(digits: int, verdict: Callable[[Callable[[float], float]], object], *, scale: float = 1.0) -> int:
    """The fewest decimals, from `digits` up to 6, at which the printed numbers give the verdict the raw ones do.

    `verdict(shown)` computes the row's verdict(s) with every number passed through `shown`: first
    the raw numbers, then as printed with d decimals (of the number times `scale`, e.g. 100 for a
    percentage). So a value just past its threshold (0.9945 against a best peer of 0.9940) never
    prints as the same number as the threshold beside a verdict it does not explain.
    """
    raw = verdict(lambda x: x)
    for d in range(digits, 7):
        if verdict(lambda x, d=d: float(f"{x * scale:.{d}f}") / scale if math.isfinite(x) else x) == raw:
            return d
    return 6


def _seed_caveat(rows: Sequence[Mapping[str, Any]]) -> str:
    """What the seed column is: the old design as it ran, on its own test windows (n beside the project's)."""

    def counts(key: str) -> str:
        values = [int(r[key]) for r in rows if r.get(key) is not None]
        return f"{min(values)}-{max(values)}" if values else "n/a"

    return (
        "seed = the old design as it ran: its scaler was fitted on every row, test part included, and it is "
        f"scored on its own test windows (n {counts('n_seed')} per cell; the project's and the peers' "
        f"{counts('n_project')})"
    )


def _pinball_digits(value: Any) -> int:
    mean = number(value)
    return _decisive(3, lambda shown: shown(mean) <= REL_PINBALL_MAX)


def _fmt(value: Any, digits: int = 2) -> str:
    n = number(value)
    return f"{n:,.{digits}f}" if math.isfinite(n) else "n/a"


def _percent(value: Any, digits: int = 1) -> str:
    n = number(value)
    return f"{100 * n:.{digits}f}%" if math.isfinite(n) else "n/a"


def _range(bounds: Sequence[float] | None) -> str:
    """'61-96%' for a coverage range, 'n/a' without one."""
    if not bounds:
        return "n/a"
    return f"{bounds[0] * 100:.0f}-{bounds[1] * 100:.0f}%"


def _ratio_text(value: Any, digits: int | None = None) -> str:
    n = number(value)
    if not math.isfinite(n):
        return "n/a"
    return f"{n:.{digits if digits is not None else 3 if n < 0.1 else 2}f}x"


def coverage_lines(report: Mapping[str, Any]) -> list[str]:
    """The coverage table: each cell's coverage, verdict, rel pinball and the calibrated band's range."""
    targets = {t["id"]: t for t in report["targets"]}
    lines = [
        "Interval coverage of the project's backtest (nominal 80% / 95%, target within "
        f"{COVERAGE_TOLERANCE * 100:.0f} points)",
    ]
    row = "{:<20} {:>3} {:>8} {:>8} {:>6}  {:<6} {:>11}  {:>21}"
    lines.append(row.format("series", "h", "cov 80", "cov 95", "n", "result", "rel pinball", "calibrated 80 / 95"))
    for item in report["coverage"]:
        sid, h = item["series_id"], item["horizon"]
        verdicts = [targets.get(f"coverage_80:{sid}:h{h}"), targets.get(f"coverage_95:{sid}:h{h}")]
        result = "PASS" if all(v and v["result"] == "PASS" for v in verdicts) else "MISS"
        cover = (number(item["coverage_80"]), number(item["coverage_95"]))
        digits = _decisive(
            1,
            lambda shown, cover=cover: [
                abs(shown(c) - nominal) <= COVERAGE_TOLERANCE + 1e-12
                for c, nominal in zip(cover, (0.80, 0.95), strict=True)
            ],
            scale=100,
        )
        lines.append(
            row.format(
                sid,
                h,
                _percent(cover[0], digits),
                _percent(cover[1], digits),
                item["n_coverage"] if item["n_coverage"] is not None else "n/a",
                result,
                _fmt(item["rel_pinball"], 3),
                f"{_range(item.get('calibrated_80'))} / {_range(item.get('calibrated_95'))}",
            )
        )
    reference = report.get("coverage_reference")
    if reference:
        cells = reference["cells"]
        lines += [
            "calibrated 80 / 95 (information, not a target): the 5-95% range of the coverage a perfectly calibrated",
            f"band scores on the same origins, by chance alone ({reference['simulated_test_parts']} simulated test "
            f"parts). Such a band is within {COVERAGE_TOLERANCE * 100:.0f} points in "
            f"{_fmt(reference['calibrated_expected_within_tolerance'], 1)} of {cells} cells on average;",
            f"the project's coverage lies inside that range in {reference['inside_calibrated_range']} of {cells}.",
        ]
    return lines


def format_report(report: Mapping[str, Any]) -> str:
    """The printed table: headline ratios, MASE by series and horizon, interval coverage, targets."""
    config, machine, head = report["config"], report["machine"], report["headline"]
    project, seed = report["project"], report["seed"]
    targets = {t["id"]: t for t in report["targets"]}
    settings = config["settings"]
    lines = [
        "Benchmark: project pipeline vs seed design and classical peers (issues 6, 11, 12), same data, same "
        "process tree",
        f"data      {config['data_folder']}: {', '.join(settings['series'])}",
        f"          history from {settings['history_start']} to as_of {config['as_of']} ({config['sessions']} "
        "aligned sessions), "
        f"last {settings['test_fraction']:.0%} test, {settings['epochs']} epochs, "
        f"{config['forecast_sessions']}-session forecast",
        f"machine   {machine['cpu_count']} CPUs (load {machine.get('load_before', 'n/a')} before, "
        f"{machine.get('load_after', 'n/a')} after), "
        f"Python {machine['python']}, TensorFlow {machine.get('tensorflow') or 'n/a'}, code HEAD "
        f"{machine.get('git_commit') or 'n/a'}, "
        f"sources sha256 {machine.get('code_sha256') or 'n/a'}",
    ]
    if config.get("parallel_children"):
        lines.append(
            "NOTE      --parallel: both children ran at once and competed for the CPUs; timings and ratios are "
            "NOT comparable"
        )
    if config.get("non_default_settings"):
        lines.append(f"NOTE      non-default settings, targets are for the defaults: {config['non_default_settings']}")

    lines += ["", "Headline (ratio = project / seed, both measured in this run)"]
    row = "{:<42} {:>11} {:>11} {:>9}  {:<26} {}"
    lines.append(row.format("measurement", "project", "seed", "ratio", "target", "result"))
    for c in HEADLINE:
        values, verdict = head[c.id], targets.get(c.target_id or "")
        digits, ratio_digits = c.digits, None
        if verdict is not None:  # the judged number (the ratio, or the project's own) shows its verdict
            judged, threshold = number(verdict["measured"]), number(verdict["threshold"])
            on_ratio = c.judged == "ratio"
            decided = _decisive(
                2 if on_ratio else c.digits,
                lambda shown, judged=judged, threshold=threshold: shown(judged) <= threshold,
            )
            digits, ratio_digits = (c.digits, decided if decided > 2 else None) if on_ratio else (decided, None)
        lines.append(
            row.format(
                c.label.format(steps=config["forecast_sessions"]),
                _fmt(values["project"], digits),
                _fmt(values["seed"], digits),
                _ratio_text(values["ratio"], ratio_digits),
                c.target,
                verdict["result"] if verdict else "",
            )
        )
    lines.append(
        f"(info) project: imports {_fmt(project.get('import_seconds'), 1)} s, training flow "
        f"{_fmt(project.get('train_flow_seconds'), 1)} s "
        f"(Prefect server ready in {_fmt(config.get('prefect_server_start_seconds'), 1)} s, before the children), "
        f"warm forecast min {_fmt(project.get('forecast_ms_warm_min'), 1)} ms of "
        f"{len(project.get('forecast_ms_warm_calls') or [])} calls, RSS after imports "
        f"{_fmt(project.get('rss_after_imports_mb'), 0)} MB;\n       "
        f"seed: imports {_fmt(seed.get('import_seconds'), 1)} s, RSS after imports "
        f"{_fmt(seed.get('rss_after_imports_mb'), 0)} MB"
    )
    phases = []
    for label, child in (("project", project), ("seed", seed)):
        points = child.get("peak_rss_checkpoints_mb") or {}
        if points:
            phases.append(
                f"{label}: "
                + ", ".join(f"{k.removeprefix('after_').replace('_', ' ')} {_fmt(v, 0)}" for k, v in points.items())
            )
    if phases:
        lines.append("(info) peak RSS MB after each phase: " + "; ".join(phases))
    alone = [
        f"{role}: "
        f"{', '.join(report[role].get('heavy_libraries_loaded') or []) or 'none of ' + ', '.join(HEAVY_LIBRARIES)}"
        for role in ("project-daily-engine", "seed-daily")
        if role in report
    ]
    if alone:
        lines.append("(info) daily run alone, heavy libraries loaded: " + "; ".join(alone))
    environments = config.get("environments") or {}
    if environments:
        lines.append(
            "(info) children ran in the packages each design is deployed with (bench/environments.py): "
            + "; ".join(f"{name}: {python}" for name, python in environments.items())
        )
    deployed = report.get("project-daily") or {}
    if deployed:
        lines.append(
            f"(info) daily run alone, project: `{deployed.get('command')}` (a worker's command) is a supervisor "
            f"of {_fmt(deployed.get('supervisor_peak_rss_mb'), 0)} MB starting a second process (Prefect's "
            f"workspace supervisor, then the engine, {_fmt(deployed.get('engine_peak_rss_mb'), 0)} MB); "
            "s = process start to the flow run's Completed; start-up = to its Running"
        )
    floor = report.get("prefect-floor") or {}
    if floor:
        lines.append(
            f"(info) Prefect's floor: an empty flow's run started with `{floor.get('command')}` took "
            f"{_fmt(floor.get('import_seconds'), 2)} s to start and {_fmt(floor.get('run_seconds'), 2)} s to run; "
            f"supervisor {_fmt(floor.get('supervisor_peak_rss_mb'), 0)} MB + engine "
            f"{_fmt(floor.get('engine_peak_rss_mb'), 0)} MB. Any flow started this way pays it."
        )

    peers_info = report.get("peers") or {}
    lines += [
        "",
        "rel_mae on the walk-forward backtest (MAE / random-walk MAE on the same targets; < 1 beats 'tomorrow "
        "equals today').",
        "Peers fitted on the training part, forecasting from the project's test origins (statsforecast "
        f"{peers_info.get('statsforecast') or 'n/a'}); "
        f"dm p = the project's Diebold-Mariano p-value against the random walk, peer p = the best peer's; targets: "
        f"<= {REL_MAE_MAX:.2f}, <= best peer, {VIX_SERIES} <= {VIX_REL_MAE_MAX:.2f} at "
        f"{', '.join(map(str, VIX_HORIZONS))}; a row prints more decimals where 3 would hide its verdict",
        _seed_caveat(report["rel_mae"]),
    ]
    row = "{:<18} {:>3} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>13} {:>6} {:>6} {:>5}  {:<5} {:<5} {}"
    lines.append(
        row.format(
            "series",
            "h",
            "project",
            "seed",
            "drift",
            "AR(1)",
            "ETS",
            "ARIMA",
            "best peer",
            "peer p",
            "dm p",
            "n",
            "<=1",
            "peers",
            "VIX",
        )
    )
    for item in report["rel_mae"]:
        sid, h = item["series_id"], item["horizon"]
        vix = targets.get(f"vix_rel_mae_h{h}") if sid == VIX_SERIES else None
        project_rel, best = number(item["project"]), number(targets[f"peers:{sid}:h{h}"]["threshold"])
        digits = _decisive(
            3,
            lambda shown, p=project_rel, b=best, vix=vix: (
                shown(p) <= REL_MAE_MAX,
                shown(p) <= shown(b),
                vix is not None and shown(p) <= VIX_REL_MAE_MAX,
            ),
        )
        lines.append(
            row.format(
                sid,
                h,
                _fmt(item["project"], digits),
                _fmt(item["seed"], digits),
                *(_fmt(item[name], digits) for name in PEERS),
                item["best_peer"],
                _fmt(item["best_peer_dm_pvalue"], 3),
                _fmt(item["dm_pvalue"], 3),
                item["n_project"] if item["n_project"] is not None else "n/a",
                targets[f"rel_mae:{sid}:h{h}"]["result"],
                targets[f"peers:{sid}:h{h}"]["result"],
                vix["result"] if vix else "",
            )
        )

    sizes = report.get("dm_size") or {}
    if sizes:
        lines.append(
            f"(info) dm p on these origins: with two equally accurate forecasts ({DM_REPS} simulated test parts), "
            f"a {DM_ALPHA:.0%} test rejects "
            + ", ".join(f"{_percent(cell['size'])} at h={h} (n {cell['n']})" for h, cell in sizes.items())
            + "; a p-value just below 0.05 where this exceeds 5% is weak evidence"
        )
    lines += ["", *coverage_lines(report)]
    pinball = [t for t in report["targets"] if t["id"].startswith("pinball_h")]
    if pinball:
        lines.append(
            "Pinball loss, mean over series of model / random walk with empirical bands (target <= 1.00): "
            + ", ".join(
                f"h={t['id'].removeprefix('pinball_h')} {_fmt(t['measured'], _pinball_digits(t['measured']))} "
                f"{t['result']}"
                for t in pinball
            )
        )

    stages = project.get("stages") or {}
    for flow, label in (("train_flow", "training flow"), ("daily_flow", "daily flow")):
        runs = stages.get(flow) or []
        if runs:
            shown = ", ".join(f"{r['name']} {_fmt(r['seconds'], 2)}" for r in runs)
            lines += ["", f"Project {label} task runs, seconds (Prefect API): {shown}"]

    notes = list(project.get("notes") or []) + list(peers_info.get("notes") or [])
    if not project.get("same_data_as_seed", True):
        notes.append("the project's training levels differ from the seed's input levels")
    if notes:
        lines += ["", *[f"NOTE      {n}" for n in notes]]
    lines += ["", summary_line(report["targets"])]
    return "\n".join(lines)


def summary_line(targets: Sequence[Mapping[str, Any]]) -> str:
    """'Targets met: P of N.' plus what was missed, the coverage cells counted rather than listed."""
    passed = sum(t["result"] == "PASS" for t in targets)
    counted = {"coverage_": "interval coverage", "rel_mae:": "rel_mae <= 1.00", "peers:": "rel_mae <= best peer"}
    missed = [t["id"] for t in targets if t["result"] != "PASS" and not t["id"].startswith(tuple(counted))]
    for prefix, label in counted.items():
        cells = [t for t in targets if t["id"].startswith(prefix)]
        cells_missed = sum(t["result"] != "PASS" for t in cells)
        if cells_missed:
            missed.append(f"{label} in {cells_missed} of {len(cells)} cells")
    return f"Targets met: {passed} of {len(targets)}." + (f" Missed: {'; '.join(missed)}." if missed else "")


def run_main(
    produce: Callable[[], Mapping[str, Any]],
    formatter: Callable[[Mapping[str, Any]], str],
    *,
    out: Path,
    prefix: str,
    stopped: str,
) -> int:
    """A benchmark command: produce the report, print it, write its JSON; returns the exit status.

    2 on a benchmark error (its message on stderr), 130 when interrupted (Ctrl-C or SIGTERM, after
    `produce` has stopped what it started; `stopped` says what that was).
    """
    # SIGTERM as Ctrl-C: `produce` stops its children and servers on KeyboardInterrupt.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = produce()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {stopped}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(formatter(report))
    path = write_report(report, out, prefix=prefix)
    print(f"\nJSON: {path}")
    return 0


def write_report(report: Mapping[str, Any], out: Path, *, prefix: str = "bench") -> Path:
    """Write the report as JSON to out/<prefix>-<UTC time>.json and return the path."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = report["created_utc"].replace("-", "").replace(":", "").replace("T", "_").rstrip("Z")
    path = out / f"{prefix}-{stamp}.json"
    path.write_text(to_json(report) + "\n")
    return path


def machine_info() -> dict[str, Any]:
    """CPU count, Python and library versions, load average, code commit (read-only git) and code hash."""

    def version(*names: str) -> str | None:
        for name in names:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return None

    commit = None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
        commit = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_count": affinity,
        "cpu_count_total": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow", "tensorflow-cpu"),
        "keras": version("keras"),
        "numpy": version("numpy"),
        "pandas": version("pandas"),
        "prefect": version("prefect"),
        "market_forecast": version("market-forecast"),
        "git_commit": commit,
        "code_sha256": code_sha256(),
        "load_before": load_average(),
    }


def code_sha256() -> str:
    """First 12 hex of a sha256 over every .py file of CODE_PACKAGES (subpackages included), by path."""
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            digest.update(f"{path.relative_to(REPO_ROOT).as_posix()}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def load_average() -> str | None:
    """The 1, 5 and 15 minute load averages, or None where the platform has none."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return None
