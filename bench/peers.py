"""Measures what a user would pick instead of the project: classical peers on the project's own origins.

Run in its own child on the aligned levels the parent wrote, with the project's settings: the same
features, the same chronological split, the same test origins (every `backtest.origin_step`
sessions from the first test target) and the same horizons as the project's walk-forward backtest.
Each peer is fitted once on the training part (the rows before the first test target; nothing of
the test part), then forecasts from every test origin with the data up to that origin:

- `random_walk`: the level at the origin (the denominator of every `rel_mae`);
- `drift`: the origin's log-level plus h times the mean daily log-return of all data up to the
  origin (the project's drift baseline);
- `ar1_log_level`: an AR(1) with intercept on the log-level, fitted by least squares on the
  training part;
- `auto_ets`, `auto_arima`: statsforecast's AutoETS and AutoARIMA on the log-level, fitted on the
  training part; each origin's forecast is the fitted model run forward over the data up to it
  (`forward`). statsforecast is a bench/test-only dependency; without it these two are missing
  (and the targets that need them are MISS).

`rel_mae` = MAE of the peer's level forecast / MAE of the random walk's on the same targets, and
`<peer>_dm_pvalue` the Diebold-Mariano p-value of the peer's absolute errors against the random
walk's (the project's own test, `tasks.core.significance`): whether a peer's gain is more than the
test year's luck.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PEERS = ("drift", "ar1_log_level", "auto_ets", "auto_arima")


def measure_peers(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The peers child: rel_mae of every peer by series and horizon, on the project's test origins."""
    started = time.perf_counter()
    import numpy as np

    from bench.data import read_levels_csv
    from tasks.core.features import make_features
    from tasks.core.metrics import relative_mae
    from tasks.core.settings import Settings
    from tasks.core.significance import diebold_mariano
    from tasks.core.training import training_split

    settings = Settings.model_validate(spec["settings"])
    levels = read_levels_csv(Path(spec["levels_csv"]))[list(settings.series)]
    features = make_features(levels, settings.level_window)
    split = training_split(len(features), settings)  # the project's own split
    offset = len(levels) - len(features)
    end = offset + split.train_end  # first level row of the test part
    origins = np.arange(split.train_end - 1, len(features) - 1, settings.backtest.origin_step) + offset
    horizons = list(spec["horizons"])
    h_max = max(horizons)
    notes: list[str] = []
    try:
        from statsforecast.models import AutoARIMA, AutoETS

        models: dict[str, Any] = {"auto_ets": AutoETS, "auto_arima": AutoARIMA}
        version = metadata.version("statsforecast")
    except ImportError:
        models, version = {}, None
        notes.append("statsforecast is not installed (pip install -e '.[test]'): no AutoETS/AutoARIMA peers")

    rows = []
    for sid in settings.series:
        x = np.log(levels[sid].to_numpy(dtype="float64"))
        paths = {"random_walk": np.repeat(x[origins, None], h_max, axis=1)}
        steps = np.arange(1, h_max + 1)
        paths["drift"] = x[origins, None] + steps * ((x[origins] - x[0]) / origins)[:, None]
        z, y = x[: end - 1], x[1:end]
        phi = float(np.sum((z - z.mean()) * (y - y.mean())) / np.sum((z - z.mean()) ** 2))
        intercept = float(y.mean() - phi * z.mean())
        if phi < 1:
            mean = intercept / (1 - phi)
            paths["ar1_log_level"] = mean + phi ** steps[None, :] * (x[origins, None] - mean)
        else:
            paths["ar1_log_level"] = paths["random_walk"]
        for name, model_type in models.items():
            fitted = model_type().fit(x[:end])
            paths[name] = np.vstack([fitted.forward(y=x[: o + 1], h=h_max)["mean"] for o in origins])
        for h in horizons:
            valid = origins + h < len(levels)
            actual = np.exp(x[origins[valid] + h])
            naive = np.exp(paths["random_walk"][valid, h - 1])
            overlap = math.ceil(h / settings.backtest.origin_step)  # as the project's backtest tests its own
            row: dict[str, Any] = {"series_id": sid, "horizon": h, "n": int(valid.sum())}
            for name in PEERS:
                row[name] = row[f"{name}_dm_pvalue"] = math.nan
                if name in paths:
                    forecast = np.exp(paths[name][valid, h - 1])
                    row[name] = relative_mae(actual, forecast, naive)
                    test = diebold_mariano(np.abs(actual - forecast), np.abs(actual - naive), horizon=overlap)
                    row[f"{name}_dm_pvalue"] = test.p_value
            rows.append(row)
    return {
        "role": "peers",
        "statsforecast": version,
        "fitted_on": "training part (rows before the first test target)",
        "origins": len(origins),
        "seconds": time.perf_counter() - started,
        "rel_mae": rows,
        "notes": notes,
    }
