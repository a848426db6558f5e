"""Output stage (pure): the published CSV tables, their contract, validation and serialisation.

File and column names are a public contract: Power BI queries depend on them (see README.md,
"Output files", and docs/pbi_integration.md). Every table is long (one row per date and series),
so adding a series to the configuration adds rows, never columns.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from tasks.core.backtest import BACKTEST_COLUMNS
from tasks.core.calendar import sessions_after
from tasks.core.errors import OutputValidationError
from tasks.core.metrics import METRIC_COLUMNS

SCHEMAS: dict[str, list[str]] = {
    "actuals.csv": ["date", "series_id", "value", "filled", "data_source"],
    "predicted.csv": ["date", "series_id", "actual", "predicted", "naive", "split", "model_version", "data_source"],
    "forecasted_data.csv": [
        "date",
        "series_id",
        "horizon",
        "forecast",
        "lower_95",
        "lower_80",
        "upper_80",
        "upper_95",
        "as_of",
        "model_version",
        "data_source",
    ],
    "model_metrics.csv": [*METRIC_COLUMNS, "model_version", "data_source"],
    "model_history.csv": ["epoch", "loss", "val_loss", "model_version"],
    "backtest_metrics.csv": [*BACKTEST_COLUMNS, "model_version", "data_source"],
}

# Columns that must never be empty, per table.
_REQUIRED = {
    "actuals.csv": ["date", "series_id", "value"],
    "predicted.csv": ["date", "series_id", "actual", "predicted", "naive", "split"],
    "forecasted_data.csv": ["date", "series_id", "horizon", "forecast", "lower_95", "lower_80", "upper_80", "upper_95"],
    # mase is empty when the model's training MASE scale is unknown (a format-1 champion); rel_mae
    # when the random walk's MAE is 0: a split whose actuals never moved, e.g. a live split of one
    # session on which a series had no value and was carried forward (the bond market's holidays).
    "model_metrics.csv": ["series_id", "split", "n", "mse", "mae", "naive_mae"],
    "model_history.csv": ["epoch", "loss", "val_loss"],
    "backtest_metrics.csv": ["series_id", "horizon", "n", "mae", "rmse", "naive_mae", "rel_mae", "mase"],
}


def actuals_table(levels: pd.DataFrame, filled: pd.DataFrame) -> pd.DataFrame:
    """Long table of the aligned levels: date, series_id, value, filled."""
    value = levels.rename_axis("date").reset_index().melt(id_vars="date", var_name="series_id", value_name="value")
    flags = filled.reindex(index=levels.index, columns=levels.columns, fill_value=False)
    value["filled"] = flags.to_numpy().T.reshape(-1)
    return value


def label_table(table: pd.DataFrame, name: str, **constants: str) -> pd.DataFrame:
    """Add constant columns (model_version, data_source, as_of) and order columns as SCHEMAS[name]."""
    labelled = table.assign(**constants)
    return labelled[SCHEMAS[name]]


def validate_outputs(tables: dict[str, pd.DataFrame], *, last_actual: date, horizon: int) -> None:
    """Check every table against its contract before anything is published.

    Args:
        tables: file name -> table.
        last_actual: last date of actuals.csv; forecasts must use the `horizon` NYSE sessions after it.
        horizon: forecast rows expected per series.

    Raises:
        OutputValidationError: with every problem found in the first failing table.
    """
    sessions = sessions_after(last_actual, horizon)
    for name, table in tables.items():
        problems = _schema_problems(name, table)
        if name in ("actuals.csv", "predicted.csv", "forecasted_data.csv") and not problems:
            problems += _date_problems(table)
        if name == "forecasted_data.csv" and not problems:
            problems += _forecast_problems(table, last_actual, horizon, sessions)
        if problems:
            raise OutputValidationError(name, problems)


def _schema_problems(name: str, table: pd.DataFrame) -> list[str]:
    expected = SCHEMAS[name]
    if list(table.columns) != expected:
        return [f"columns {list(table.columns)} differ from the contract {expected}"]
    if table.empty:
        return ["the table is empty"]
    problems = []
    for column in _REQUIRED[name]:
        empty = int(table[column].isna().sum())
        if empty:
            problems.append(f"{empty} empty value(s) in column {column!r}")
        elif pd.api.types.is_float_dtype(table[column]) and not np.isfinite(table[column]).all():
            problems.append(f"non-finite values in column {column!r}")
    return problems


def _date_problems(table: pd.DataFrame) -> list[str]:
    problems = []
    for sid, group in table.groupby("series_id", sort=False):
        dates = pd.DatetimeIndex(group["date"])
        if not dates.is_monotonic_increasing or dates.has_duplicates:
            problems.append(f"{sid}: dates are not strictly increasing")
    return problems


def _forecast_problems(table: pd.DataFrame, last_actual: date, horizon: int, sessions: pd.DatetimeIndex) -> list[str]:
    problems = []
    expected = pd.DatetimeIndex(sessions).as_unit("ns")
    for sid, group in table.groupby("series_id", sort=False):
        dates = pd.DatetimeIndex(group["date"]).as_unit("ns")
        if len(group) != horizon:
            problems.append(f"{sid}: {len(group)} forecast rows, expected {horizon}")
        elif not dates.equals(expected):
            problems.append(f"{sid}: forecast dates are not the {horizon} NYSE sessions after {last_actual}")
        if (group["forecast"] <= 0).any():
            problems.append(f"{sid}: non-positive forecasts")
        bands = group[["lower_95", "lower_80", "upper_80", "upper_95"]].to_numpy()
        if not (np.diff(bands, axis=1) >= 0).all():
            problems.append(f"{sid}: interval bounds are not ordered lower_95 <= lower_80 <= upper_80 <= upper_95")
    return problems


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    """UTF-8 CSV, ISO dates, LF line ends, booleans as true/false, full float precision."""
    out = table.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_bool_dtype(out[column]):
            out[column] = np.where(out[column], "true", "false")
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def assemble_tables(
    *,
    actuals: pd.DataFrame,
    predictions: pd.DataFrame,
    metrics: pd.DataFrame,
    forecast: pd.DataFrame,
    history: pd.DataFrame | None = None,
    backtest: pd.DataFrame | None = None,
    model_version: str,
    data_source: str,
    as_of: date,
) -> dict[str, pd.DataFrame]:
    """All tables of a run, labelled and ordered by their contract."""
    labels = {"model_version": model_version, "data_source": data_source}
    tables = {
        "actuals.csv": label_table(actuals, "actuals.csv", data_source=data_source),
        "predicted.csv": label_table(predictions, "predicted.csv", **labels),
        "forecasted_data.csv": label_table(forecast, "forecasted_data.csv", as_of=as_of.isoformat(), **labels),
        "model_metrics.csv": label_table(metrics, "model_metrics.csv", **labels),
    }
    if history is not None:
        tables["model_history.csv"] = label_table(history, "model_history.csv", model_version=model_version)
    if backtest is not None:
        tables["backtest_metrics.csv"] = label_table(backtest, "backtest_metrics.csv", **labels)
    return tables


def serialize_tables(tables: dict[str, pd.DataFrame]) -> tuple[dict[str, bytes], dict[str, int]]:
    """(file name -> CSV bytes, file name -> data rows)."""
    return {name: to_csv_bytes(t) for name, t in tables.items()}, {name: len(t) for name, t in tables.items()}


def combine_tables(parts: Sequence[Mapping[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """One run's tables from the tables of its model groups (each validated), group after group.

    The tables are long, so the groups' rows simply follow each other; one group's tables are
    returned as they are.
    """
    if len(parts) == 1:
        return dict(parts[0])
    names = [name for name in SCHEMAS if any(name in part for part in parts)]
    return {name: pd.concat([part[name] for part in parts if name in part], ignore_index=True) for name in names}
