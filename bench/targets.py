"""The targets (issues 6, 11 and 12), the headline comparisons they are judged on, and PASS/MISS.

A headline row is a `Comparison`: which child's number is the project's, which is the seed design's,
and the target that judges it. A value that was not measured (a horizon not run, a coverage with no
calibrated origin) is a MISS, never a PASS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bench.results import number

# Issue 12: accuracy at every series and horizon, on the shared data's test part. Its targets are
# judged on this grid whatever a run measures: a series or horizon the run lacks is a MISS.
ISSUE12_SERIES = ("SP500", "VIXCLS", "DJIA", "BAMLCC4A0710YTRIV")
ISSUE12_HORIZONS = (1, 5, 10, 20, 30)
REL_MAE_MAX = 1.00
VIX_SERIES = "VIXCLS"
VIX_HORIZONS = (10, 20, 30)
VIX_REL_MAE_MAX = 0.90
COVERAGE_TOLERANCE = 0.03
REL_PINBALL_MAX = 1.00
PEERS = ("drift", "ar1_log_level", "auto_ets", "auto_arima")  # and the random walk (1.0)
TRAIN_RATIO_MAX = 0.5
FORECAST_MS_MAX = 50.0
DAILY_SECONDS_MAX = 10.0
RSS_RATIO_MAX = 1.0
# Issue 11: the daily run on its own, in a fresh process (process start to Completed, and its RSS).
DAILY_PROCESS_RATIO_MAX = 0.6
DAILY_RSS_RATIO_MAX = 0.5

Results = Mapping[str, Mapping[str, Any]]  # role -> that child's result


@dataclass(frozen=True)
class Comparison:
    """One headline measurement: the project's number against the seed design's, from this run's children.

    Attributes:
        id: Key in the report's `headline` and `ratios`.
        label: Printed name; ``{steps}`` is replaced by the forecast length.
        project: (role, key) of the project's number in the children's results.
        seed: (role, key) of the seed design's number.
        digits: Decimals printed.
        target: Printed target, or an "(info: ...)" note.
        target_id: The target that judges the row (see `evaluate_targets`), None for information.
        judged: What that target judges: the ratio, or the project's own number.
    """

    id: str
    label: str
    project: tuple[str, str]
    seed: tuple[str, str]
    digits: int
    target: str
    target_id: str | None = None
    judged: Literal["ratio", "project"] = "ratio"


HEADLINE = (
    Comparison(
        "train_seconds",
        "training seconds",
        ("project", "train_seconds"),
        ("seed", "train_seconds"),
        2,
        f"ratio <= {TRAIN_RATIO_MAX}",
        "train_ratio",
    ),
    Comparison(
        "forecast_ms_warm",
        "{steps}-session forecast ms (warm)",
        ("project", "forecast_ms_warm"),
        ("seed", "forecast_ms"),
        1,
        f"project <= {FORECAST_MS_MAX:.0f} ms",
        "forecast_ms",
        "project",
    ),
    Comparison(
        "forecast_ms_first",
        "{steps}-session forecast ms (1st call)",
        ("project", "forecast_ms_first"),
        ("seed", "forecast_ms"),
        1,
        "(info: includes tracing)",
    ),
    Comparison(
        "daily_seconds",
        "daily flow seconds (after imports)",
        ("project", "daily_seconds"),
        ("seed", "daily_seconds"),
        2,
        f"project <= {DAILY_SECONDS_MAX:.0f} s",
        "daily_seconds",
        "project",
    ),
    Comparison(
        "peak_rss_mb",
        "peak RSS MB",
        ("project", "peak_rss_mb"),
        ("seed", "peak_rss_mb"),
        0,
        f"ratio <= {RSS_RATIO_MAX:.2f}",
        "peak_rss_ratio",
    ),
    Comparison(
        "daily_completed_seconds",
        "daily run alone, as a worker starts it, s",
        ("project-daily", "completed_seconds"),
        ("seed-daily", "completed_seconds"),
        2,
        f"ratio <= {DAILY_PROCESS_RATIO_MAX}",
        "daily_process_ratio",
    ),
    Comparison(
        "daily_engine_completed_seconds",
        "  the flow engine alone (one process), s",
        ("project-daily-engine", "completed_seconds"),
        ("seed-daily", "completed_seconds"),
        2,
        "(info)",
    ),
    Comparison(
        "floor_completed_seconds",
        "  an empty flow the same way (floor), s",
        ("prefect-floor", "completed_seconds"),
        ("seed-daily", "completed_seconds"),
        2,
        "(info)",
    ),
    Comparison(
        "daily_import_seconds",
        "daily run alone: start-up, s",
        ("project-daily", "import_seconds"),
        ("seed-daily", "import_seconds"),
        2,
        "(info)",
    ),
    Comparison(
        "daily_run_seconds",
        "daily run alone: the run itself, s",
        ("project-daily", "run_seconds"),
        ("seed-daily", "run_seconds"),
        2,
        "(info)",
    ),
    Comparison(
        "daily_process_seconds",
        "daily run alone: until its command exits, s",
        ("project-daily", "process_seconds"),
        ("seed-daily", "process_seconds"),
        2,
        "(info)",
    ),
    Comparison(
        "daily_peak_rss_mb",
        "daily run alone, as a worker starts it, MB",
        ("project-daily", "peak_rss_mb"),
        ("seed-daily", "peak_rss_mb"),
        0,
        f"ratio <= {DAILY_RSS_RATIO_MAX:.2f}",
        "daily_rss_ratio",
    ),
    Comparison(
        "daily_engine_peak_rss_mb",
        "  the flow engine alone (one process), MB",
        ("project-daily-engine", "peak_rss_mb"),
        ("seed-daily", "peak_rss_mb"),
        0,
        "(info)",
    ),
    Comparison(
        "floor_peak_rss_mb",
        "  an empty flow the same way (floor), MB",
        ("prefect-floor", "peak_rss_mb"),
        ("seed-daily", "peak_rss_mb"),
        0,
        "(info)",
    ),
)


def measured(results: Results, where: tuple[str, str]) -> float:
    """The number at (role, key) of the children's results; NaN if that child or key is missing."""
    role, key = where
    return number(results.get(role, {}).get(key))


def ratio(a: float, b: float) -> float:
    """a / b, NaN unless both are finite and b is positive."""
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


def compute_ratios(results: Results) -> dict[str, float]:
    """Project / seed for each headline comparison, from the children's own numbers."""
    return {c.id: ratio(measured(results, c.project), measured(results, c.seed)) for c in HEADLINE}


def by_series_horizon(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], Mapping[str, Any]]:
    """Backtest rows keyed by (series_id, horizon)."""
    return {(str(r["series_id"]), int(r["horizon"])): r for r in rows}


def _target(target_id: str, description: str, value: float, threshold: float, passed: bool) -> dict[str, Any]:
    return {
        "id": target_id,
        "target": description,
        "measured": value,
        "threshold": threshold,
        "result": "PASS" if passed and math.isfinite(value) else "MISS",
    }


def best_peer(row: Mapping[str, Any]) -> tuple[str, float]:
    """The peer with the lowest rel_mae in a peers row (the random walk, 1.0, included); NaN if a peer is missing."""
    values = {"random_walk": 1.0, **{p: number(row.get(p)) for p in PEERS}}
    if not all(math.isfinite(v) for v in values.values()):
        return "n/a", math.nan
    name = min(values, key=lambda p: values[p])
    return name, values[name]


def evaluate_targets(
    project: Mapping[str, Any],
    ratios: Mapping[str, float],
    *,
    series: Sequence[str],
    horizons: Sequence[int],
    peers: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Every target with its measured value and PASS/MISS (a missing value is a MISS).

    The accuracy and interval targets cover issue 12's series and horizons and the run's own: a run
    that lacks one of the issue's (other data, fewer horizons) misses those targets, and so never
    reports fewer targets than the issue set.
    """
    bt = by_series_horizon(project["backtest"])
    peer_rows = by_series_horizon(peers)
    series = list(dict.fromkeys([*ISSUE12_SERIES, *series]))
    horizons = sorted({*ISSUE12_HORIZONS, *horizons})
    targets = []
    for sid in series:
        for h in horizons:
            rel = number(bt.get((sid, h), {}).get("rel_mae"))
            targets.append(
                _target(
                    f"rel_mae:{sid}:h{h}",
                    f"{sid} rel_mae at {h} sessions <= {REL_MAE_MAX:.2f}",
                    rel,
                    REL_MAE_MAX,
                    rel <= REL_MAE_MAX,
                )
            )
            name, best = best_peer(peer_rows.get((sid, h), {}))
            targets.append(
                _target(
                    f"peers:{sid}:h{h}",
                    f"{sid} rel_mae at {h} sessions <= the best peer's ({name})",
                    rel,
                    best,
                    rel <= best,
                )
            )
    for h in VIX_HORIZONS:
        rel = number(bt.get((VIX_SERIES, h), {}).get("rel_mae"))
        targets.append(
            _target(
                f"vix_rel_mae_h{h}",
                f"{VIX_SERIES} rel_mae at {h} sessions <= {VIX_REL_MAE_MAX:.2f}",
                rel,
                VIX_REL_MAE_MAX,
                rel <= VIX_REL_MAE_MAX,
            )
        )
    for h in horizons:
        values = [number(bt.get((sid, h), {}).get("rel_pinball")) for sid in series]
        mean = sum(values) / len(values) if values and all(math.isfinite(v) for v in values) else math.nan
        targets.append(
            _target(
                f"pinball_h{h}",
                f"pinball loss at {h} sessions (mean over series of model / random walk with empirical bands) <= "
                f"{REL_PINBALL_MAX:.2f}",
                mean,
                REL_PINBALL_MAX,
                mean <= REL_PINBALL_MAX,
            )
        )
    for sid in series:
        for h in horizons:
            row = bt.get((sid, h), {})
            for nominal, column in ((0.80, "coverage_80"), (0.95, "coverage_95")):
                cover = number(row.get(column))
                targets.append(
                    _target(
                        f"{column}:{sid}:h{h}",
                        f"{sid} {int(nominal * 100)}% interval coverage at {h} sessions within "
                        f"{COVERAGE_TOLERANCE * 100:.0f} points",
                        cover,
                        nominal,
                        abs(cover - nominal) <= COVERAGE_TOLERANCE + 1e-12,
                    )
                )
    train = number(ratios["train_seconds"])
    targets.append(
        _target(
            "train_ratio",
            f"training time <= {TRAIN_RATIO_MAX}x the seed design's",
            train,
            TRAIN_RATIO_MAX,
            train <= TRAIN_RATIO_MAX,
        )
    )
    forecast = number(project["forecast_ms_warm"])
    targets.append(
        _target(
            "forecast_ms",
            f"forecast of the full horizon (median warm call) <= {FORECAST_MS_MAX:.0f} ms",
            forecast,
            FORECAST_MS_MAX,
            forecast <= FORECAST_MS_MAX,
        )
    )
    daily = number(project["daily_seconds"])
    targets.append(
        _target(
            "daily_seconds",
            f"daily flow <= {DAILY_SECONDS_MAX:.0f} s after imports",
            daily,
            DAILY_SECONDS_MAX,
            daily <= DAILY_SECONDS_MAX,
        )
    )
    rss = number(ratios["peak_rss_mb"])
    targets.append(
        _target("peak_rss_ratio", "peak RSS no higher than the seed design's", rss, RSS_RATIO_MAX, rss <= RSS_RATIO_MAX)
    )
    alone = number(ratios["daily_completed_seconds"])
    targets.append(
        _target(
            "daily_process_ratio",
            f"daily run alone, process start to Completed <= {DAILY_PROCESS_RATIO_MAX}x the seed design's daily script",
            alone,
            DAILY_PROCESS_RATIO_MAX,
            alone <= DAILY_PROCESS_RATIO_MAX,
        )
    )
    daily_rss = number(ratios["daily_peak_rss_mb"])
    targets.append(
        _target(
            "daily_rss_ratio",
            f"daily run alone, peak RSS <= {DAILY_RSS_RATIO_MAX}x the seed design's daily script",
            daily_rss,
            DAILY_RSS_RATIO_MAX,
            daily_rss <= DAILY_RSS_RATIO_MAX,
        )
    )
    return targets
