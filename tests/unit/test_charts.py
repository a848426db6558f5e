"""The charts of a run folder: pure functions from the published tables to PNG and SVG bytes."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from datetime import date

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.core.calendar import sessions_after
from tasks.core.charts import (
    coverage_axis_range,
    fan_chart,
    fan_chart_name,
    render_charts,
    skill_chart,
    skill_chart_name,
)
from tasks.core.outputs import actuals_table
from tests.harness.settings import demo_levels

AS_OF = date(2025, 6, 30)
SERIES = ("SP500", "VIXCLS")


def forecast_table(actuals: pd.DataFrame, *, width: float = 0.01, horizon: int = 30) -> pd.DataFrame:
    """A fan around a flat forecast from each series' last value; bands grow with sqrt(horizon)."""
    last_date = pd.Timestamp(actuals["date"].max()).date()
    dates = sessions_after(last_date, horizon)
    frames = []
    for sid, group in actuals.groupby("series_id", sort=False):
        last = float(group["value"].iloc[-1])
        steps = np.arange(1, horizon + 1)
        spread = width * np.sqrt(steps)
        frames.append(
            pd.DataFrame(
                {
                    "date": dates,
                    "series_id": sid,
                    "horizon": steps,
                    "forecast": last,
                    "lower_95": last * np.exp(-1.96 * spread),
                    "lower_80": last * np.exp(-1.28 * spread),
                    "upper_80": last * np.exp(1.28 * spread),
                    "upper_95": last * np.exp(1.96 * spread),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def backtest_table(series: tuple[str, ...] = SERIES) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "series_id": sid,
                "horizon": h,
                "rel_mae": 1 - 0.002 * h,
                "naive_mae": 2.0,
                "drift_mae": 2.0 + 0.01 * h,
                "coverage_80": 0.8,
                "coverage_95": np.nan if h == 30 else 0.95,  # too few origins: not scored
                "calibrated_80_low": 0.8 - 0.01 * h,
                "calibrated_80_high": 0.8 + 0.005 * h,
                "calibrated_95_low": np.nan if h == 30 else 0.95 - 0.005 * h,
                "calibrated_95_high": np.nan if h == 30 else min(0.95 + 0.002 * h, 1.0),
            }
            for sid in series
            for h in (1, 5, 10, 20, 30)
        ]
    )


@pytest.fixture(scope="module")
def actuals() -> pd.DataFrame:
    levels = demo_levels(series=SERIES)
    return actuals_table(levels, pd.DataFrame(False, index=levels.index, columns=levels.columns))


def draw(actuals: pd.DataFrame, forecast: pd.DataFrame | None = None, **options: object) -> bytes:
    arguments: dict[str, object] = {"series_id": "SP500", "as_of": AS_OF, "demo": False, "history_sessions": 120}
    arguments.update(options)
    return fan_chart(actuals, forecast_table(actuals) if forecast is None else forecast, **arguments)  # type: ignore[arg-type]


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype="int32")


def reddish(png: bytes) -> int:
    """Pixels clearly red (green and blue alike, unlike the drift line's orange): the demo watermark's."""
    rgb = pixels(png)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((r - g > 25) & (np.abs(g - b) < 20)).sum())


def bluish(png: bytes) -> int:
    """Pixels of the forecast's colour family: the bands (and the forecast line)."""
    rgb = pixels(png)
    r, b = rgb[..., 0], rgb[..., 2]
    return int(((b - r > 25) & (b > 150)).sum())


def test_a_fan_chart_is_a_900_by_450_png(actuals: pd.DataFrame) -> None:
    png = draw(actuals)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        image.load()  # decodes every pixel: a truncated file raises here
        assert image.size == (900, 450)


def test_a_fan_chart_as_svg_is_an_svg_document(actuals: pd.DataFrame) -> None:
    root = ET.fromstring(draw(actuals, fmt="svg"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == "648pt" and root.get("height") == "324pt"  # 9 x 4.5 inches


def test_the_demo_watermark_is_drawn_only_on_demo_data(actuals: pd.DataFrame) -> None:
    assert reddish(draw(actuals, demo=False)) == 0
    assert reddish(draw(actuals, demo=True)) > 5000


def test_wider_bands_paint_a_wider_fan(actuals: pd.DataFrame) -> None:
    narrow = bluish(draw(actuals, forecast_table(actuals, width=0.002)))
    wide = bluish(draw(actuals, forecast_table(actuals, width=0.02)))
    assert narrow > 0 and wide > 2 * narrow


def test_only_the_last_history_sessions_are_drawn(actuals: pd.DataFrame) -> None:
    forecast = forecast_table(actuals)
    drawn = draw(actuals, forecast, history_sessions=60)
    sp500 = actuals.index[actuals["series_id"] == "SP500"]
    old, recent = actuals.copy(), actuals.copy()
    old.loc[sp500[-61], "value"] *= 1.5  # just outside the window
    recent.loc[sp500[-2], "value"] *= 1.5
    assert draw(old, forecast, history_sessions=60) == drawn
    assert draw(recent, forecast, history_sessions=60) != drawn


def test_the_same_tables_give_the_same_bytes(actuals: pd.DataFrame) -> None:
    tables = {
        "actuals.csv": actuals,
        "forecasted_data.csv": forecast_table(actuals),
        "backtest_metrics.csv": backtest_table(),
    }
    first = render_charts(tables, as_of=AS_OF, demo=True, history_sessions=120)
    assert render_charts(tables, as_of=AS_OF, demo=True, history_sessions=120) == first


def test_a_series_without_a_forecast_is_refused(actuals: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'DJIA'"):
        draw(actuals, series_id="DJIA")


# Panels of 3.2 x 2.6 inches at 100 dpi, two per series (error above coverage), four series a row, plus
# 0.4 inch of width and 0.9 of height for labels. Two series: 2 columns, 1 row of blocks = (2*3.2+0.4,
# 2*2.6+0.9) inches; five: 4 columns, 2 rows = (4*3.2+0.4, 2*2*2.6+0.9).
@pytest.mark.parametrize(("series", "size"), [(SERIES, (680, 610)), (("A", "B", "C", "D", "E"), (1320, 1130))])
def test_the_skill_chart_has_a_column_per_series_wrapping_after_four(
    series: tuple[str, ...], size: tuple[int, int]
) -> None:
    with Image.open(io.BytesIO(skill_chart(backtest_table(series), demo=False))) as image:
        image.load()
        assert image.size == size


def test_the_skill_chart_shades_the_range_of_a_calibrated_bands_coverage() -> None:
    narrow = backtest_table().assign(
        calibrated_80_low=0.79, calibrated_80_high=0.81, calibrated_95_low=0.94, calibrated_95_high=0.96
    )
    wide = narrow.assign(calibrated_80_low=0.60, calibrated_80_high=0.95, calibrated_95_low=0.80)
    assert tinted(skill_chart(wide, demo=False)) > tinted(skill_chart(narrow, demo=False)) + 5000


def tinted(png: bytes) -> int:
    """Pale pixels, neither white nor grey: the shaded ranges (15% of the bands' colours over white)."""
    rgb = pixels(png)
    return int(((rgb.min(axis=-1) > 180) & (rgb.max(axis=-1) - rgb.min(axis=-1) > 12)).sum())


def test_the_skill_chart_is_watermarked_on_demo_data() -> None:
    assert reddish(skill_chart(backtest_table(), demo=False)) == 0
    assert reddish(skill_chart(backtest_table(), demo=True)) > 5000


def test_a_daily_run_gets_fan_charts_and_a_training_run_the_skill_chart_too(actuals: pd.DataFrame) -> None:
    daily = {"actuals.csv": actuals, "forecasted_data.csv": forecast_table(actuals)}
    fans = [fan_chart_name(s, fmt) for s in SERIES for fmt in ("png", "svg")]
    assert list(render_charts(daily, as_of=AS_OF, demo=False, history_sessions=120)) == fans
    training = {**daily, "backtest_metrics.csv": backtest_table()}
    charts = render_charts(training, as_of=AS_OF, demo=False, history_sessions=120, formats=("png",))
    assert list(charts) == [fan_chart_name(s) for s in SERIES] + [skill_chart_name()]


@pytest.mark.parametrize(("coverage", "bottom"), [(0.8, 60.0), (0.62, 50.0), (0.3, 20.0), (0.02, 0.0)])
def test_the_coverage_panels_start_just_below_the_lowest_share_drawn(coverage: float, bottom: float) -> None:
    table = backtest_table()
    table.loc[table["horizon"] == 20, "coverage_80"] = coverage
    table["calibrated_80_low"] = table["calibrated_80_low"].clip(lower=0.7)  # the lowest bound drawn: 70%
    assert coverage_axis_range(table) == (bottom, 102.0)


def test_the_coverage_panels_of_an_unscored_table_show_0_to_100() -> None:
    columns = ["coverage_80", "coverage_95", "calibrated_80_low", "calibrated_95_low"]
    assert coverage_axis_range(backtest_table().assign(**dict.fromkeys(columns, np.nan))) == (0.0, 102.0)
