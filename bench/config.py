"""The run's configuration: the project's `Settings` from the command-line options, and what differs
from the defaults (the targets are for the defaults, so the table says when a setting differs).

Both designs are measured with these settings: sequence length, epochs, batch size, LSTM units, test
fraction and seed; the forecast length is `forecast_horizon`, the backtest horizons `backtest.horizons`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from pydantic import ValidationError

from bench.errors import BenchError
from tasks.core.settings import Settings


def parse_setting(text: str) -> tuple[list[str], Any]:
    """Parse ``NAME=VALUE`` (NAME may be dotted, VALUE is JSON or else a string).

    Raises:
        BenchError: `text` has no ``=``.
    """
    if "=" not in text:
        raise BenchError(
            f"--setting {text!r} must look like NAME=VALUE, e.g. lstm_units=32 or fetch.requests_per_minute=600"
        )
    name, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return [part for part in name.strip().split(".") if part], value


def build_settings(
    *, series: Sequence[str] | None, epochs: int | None, history_start: date | None, overrides: Sequence[str]
) -> Settings:
    """The project's Settings for the run: defaults, then the options, then ``--setting`` overrides.

    Raises:
        BenchError: a value the Settings model rejects (its message names the field).
    """
    data: dict[str, Any] = Settings().model_dump(mode="json")
    if series:
        data["series"] = list(series)
    if epochs is not None:
        data["epochs"] = epochs
    if history_start is not None:
        data["history_start"] = history_start.isoformat()
    for text in overrides:
        path, value = parse_setting(text)
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise BenchError(f"invalid settings: {exc}") from None


def non_default_settings(settings: Settings) -> dict[str, Any]:
    """Fields (dotted names) whose value differs from the project's defaults."""

    def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, Mapping):
                out.update(flatten(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    mine, default = flatten(settings.model_dump(mode="json")), flatten(Settings().model_dump(mode="json"))
    return {k: v for k, v in mine.items() if default.get(k) != v}
