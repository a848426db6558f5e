"""Charts of a run (pure): the published tables in, PNG and SVG bytes out.

Per series a fan chart (the recent actuals, the forecast, its 80% and 95% bands, the as_of line);
for training runs a skill-by-horizon chart from the walk-forward backtest (model, random walk and
drift, and how often the bands held the actual). Charts made from the demo data carry a
watermark saying so.

Matplotlib is imported on first use only, so importing the core stays light. Figures are drawn on
their own `Figure` (never pyplot's global state) with the Agg renderer, which needs no display.
The output is a function of the input alone: the same tables give the same bytes (SVG ids are
salted with a constant and no creation date is written), so a chart's sha256 in the manifest can
be checked against a fresh rendering of the published CSVs.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

ChartFormat = Literal["png", "svg"]
CHART_FORMATS: Final[tuple[ChartFormat, ...]] = ("png", "svg")

DPI: Final = 100
FAN_SIZE_INCHES: Final = (9.0, 4.5)  # 900 x 450 pixels
# The fan chart is one axes with a known set of labels: fixed margins (in figure fractions) leave
# 0.8 inch for the value labels (7 digits at 10 points) and room for the title and the date axis.
FAN_MARGINS: Final = {"left": 0.09, "right": 0.98, "bottom": 0.1, "top": 0.91}
SKILL_PANEL_INCHES: Final = (3.2, 2.6)  # one panel; two panels (error, coverage) per series
SKILL_COLUMNS: Final = 4  # series side by side before the grid wraps

DEMO_WATERMARK: Final = "DEMO DATA"
# Red is kept for the watermark alone, so it can never be mistaken for (or hide) the data.
DEMO_COLOR: Final = "#d62728"
ACTUAL_COLOR: Final = "#222222"
FORECAST_COLOR: Final = "#1f77b4"
BAND_95_COLOR: Final = "#17becf"
DRIFT_COLOR: Final = "#ff7f0e"
REFERENCE_COLOR: Final = "#777777"

SKILL_CHART: Final = "skill_by_horizon"


def fan_chart_name(series_id: str, fmt: ChartFormat = "png") -> str:
    """File name of a series' fan chart in the run folder, e.g. fan_chart_SP500.png."""
    return f"fan_chart_{series_id}.{fmt}"


def skill_chart_name(fmt: ChartFormat = "png") -> str:
    """File name of the skill-by-horizon chart in the run folder."""
    return f"{SKILL_CHART}.{fmt}"


def _figure(width: float, height: float, *, margins: dict[str, float] | None = None) -> Figure:
    """A figure with fixed `margins` (subplot parameters), or laid out by matplotlib's constrained layout.

    Fixed margins cost nothing; the constrained layout measures every text element first, which
    costs about as much as drawing the figure: it is kept for the charts whose content varies.
    """
    from matplotlib.figure import Figure

    if margins is None:
        return Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    figure = Figure(figsize=(width, height), dpi=DPI)
    figure.subplots_adjust(**margins)
    return figure


def _render(figure: Figure, formats: Iterable[ChartFormat]) -> dict[ChartFormat, bytes]:
    """The figure's image file in each format (PNG as a palette PNG), drawn once per format.

    The constrained layout is computed on the first drawing and then frozen: laying the figure out
    again for each format would cost as much as the drawing itself.
    """
    import matplotlib as mpl

    images: dict[ChartFormat, bytes] = {}
    # A constant salt: SVG element ids would otherwise be random, and the bytes differ per call.
    with mpl.rc_context({"svg.hashsalt": "market-forecast", "svg.fonttype": "path"}):
        for fmt in formats:
            images[fmt] = _palette_png(figure) if fmt == "png" else _svg(figure)
            figure.set_layout_engine("none")
    return images


def _svg(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", dpi=DPI, metadata={"Date": None}, facecolor="white")
    return buffer.getvalue()


def _palette_png(figure: Figure) -> bytes:
    """The figure as a PNG with a 256-colour palette: the same picture in about a third of the bytes.

    A chart has few colours besides the anti-aliased edges; the summary in the dashboard carries
    every fan chart inline, so its size matters. The pixels are taken from the Agg canvas (saving
    an RGBA PNG first would compress and decompress them once more for nothing).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(figure)
    figure.patch.set_facecolor("white")
    canvas.draw()  # type: ignore[no-untyped-call]
    pixels = canvas.buffer_rgba()  # type: ignore[no-untyped-call]
    with Image.frombuffer("RGBA", canvas.get_width_height(), pixels, "raw", "RGBA", 0, 1) as image:
        palette = image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    # zlib's default level: `optimize` (level 9 and a filter search) saves a tenth of the bytes but
    # triples the time of this step.
    palette.save(buffer, format="PNG")
    return buffer.getvalue()


# matplotlib.dates has no type hints: its three calls are wrapped here, once.
def _date_numbers(dates: pd.DatetimeIndex) -> np.ndarray:
    import matplotlib.dates as mdates

    return np.asarray(mdates.date2num(dates.to_pydatetime()), dtype="float64")  # type: ignore[no-untyped-call]


def _concise_date_axis(ax: Axes) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _watermark(figure: Figure) -> None:
    figure.text(
        0.5,
        0.5,
        DEMO_WATERMARK,
        fontsize=64,
        fontweight="bold",
        color=DEMO_COLOR,
        alpha=0.22,
        rotation=20,
        ha="center",
        va="center",
        zorder=10,
    )


def fan_chart(
    actuals: pd.DataFrame,
    forecast: pd.DataFrame,
    *,
    series_id: str,
    as_of: date,
    demo: bool,
    history_sessions: int,
    fmt: ChartFormat = "png",
) -> bytes:
    """A series' forecast fan: recent actuals, the forecast, its 80% and 95% bands, the as_of line.

    Args:
        actuals: actuals.csv's table (date, series_id, value, ...), any number of series.
        forecast: forecasted_data.csv's table (date, series_id, forecast, lower_95, lower_80,
            upper_80, upper_95, ...).
        series_id: the series drawn.
        as_of: the run's reference date, drawn as a vertical line.
        demo: the data is the generated demo data: a watermark says so.
        history_sessions: how many of the last actual sessions are drawn.
        fmt: "png" (900 x 450 pixels) or "svg".

    Returns:
        The image file's bytes.

    Raises:
        ValueError: the tables hold no actuals or no forecast of `series_id`.
    """
    figure = _fan_figure(
        actuals, forecast, series_id=series_id, as_of=as_of, demo=demo, history_sessions=history_sessions
    )
    return _render(figure, (fmt,))[fmt]


def _fan_figure(
    actuals: pd.DataFrame,
    forecast: pd.DataFrame,
    *,
    series_id: str,
    as_of: date,
    demo: bool,
    history_sessions: int,
) -> Figure:
    history = actuals.loc[actuals["series_id"] == series_id, ["date", "value"]].tail(history_sessions)
    ahead = forecast.loc[forecast["series_id"] == series_id]
    if history.empty or ahead.empty:
        raise ValueError(f"no actuals or no forecast of {series_id!r} to draw")
    last_date, last_value = pd.Timestamp(history["date"].iloc[-1]), float(history["value"].iloc[-1])

    def from_last(column: str) -> np.ndarray:
        # Bands and forecast start at the last actual, so the fan opens from the observed line.
        return np.concatenate([[last_value], ahead[column].to_numpy(dtype="float64")])

    dates = _date_numbers(pd.DatetimeIndex([last_date, *pd.to_datetime(ahead["date"])]))
    as_of_x = float(_date_numbers(pd.DatetimeIndex([pd.Timestamp(as_of)]))[0])
    figure = _figure(*FAN_SIZE_INCHES, margins=FAN_MARGINS)
    ax = figure.add_subplot()
    ax.fill_between(dates, from_last("lower_95"), from_last("upper_95"), color=FORECAST_COLOR, alpha=0.15, lw=0)
    ax.fill_between(dates, from_last("lower_80"), from_last("upper_80"), color=FORECAST_COLOR, alpha=0.3, lw=0)
    ax.plot(
        _date_numbers(pd.DatetimeIndex(history["date"])),
        history["value"].to_numpy(dtype="float64"),
        color=ACTUAL_COLOR,
        lw=1.3,
        label="actual",
    )
    ax.plot(dates, from_last("forecast"), color=FORECAST_COLOR, lw=1.8, label="forecast")
    # Legend entries for the bands (fill_between's own handles would carry the zero line width).
    ax.fill_between([], [], color=FORECAST_COLOR, alpha=0.45, label="80% band")
    ax.fill_between([], [], color=FORECAST_COLOR, alpha=0.15, label="95% band")
    ax.axvline(as_of_x, color=REFERENCE_COLOR, ls="--", lw=1)
    ax.annotate(
        f"as of {as_of.isoformat()}",
        xy=(as_of_x, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(-4, -4),
        textcoords="offset points",
        ha="right",
        va="top",
        fontsize=9,
        color=REFERENCE_COLOR,
    )
    _concise_date_axis(ax)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9, frameon=False)
    horizon = len(ahead)
    title = f"{series_id}: {horizon}-session forecast as of {as_of.isoformat()}"
    # y given: matplotlib would otherwise measure the axes' decorations at every drawing to place
    # the title above them, and nothing is drawn above this axes (no top ticks, no offset text).
    ax.set_title(f"{title} (demo data, not the market)" if demo else title, fontsize=12, loc="left", y=1.0)
    if demo:
        _watermark(figure)
    return figure


def _skill_axes(ax: Axes, rows: pd.DataFrame, series_id: str) -> None:
    horizons = rows["horizon"].to_numpy(dtype="float64")
    ax.axhline(1.0, color=ACTUAL_COLOR, ls="--", lw=1.2, label="random walk")
    ax.plot(horizons, rows["rel_mae"].to_numpy(dtype="float64"), color=FORECAST_COLOR, marker="o", ms=4, label="model")
    drift = rows["drift_mae"].to_numpy(dtype="float64") / rows["naive_mae"].to_numpy(dtype="float64")
    ax.plot(horizons, drift, color=DRIFT_COLOR, marker="s", ms=4, label="drift")
    ax.set_title(series_id, fontsize=11)
    ax.set_xticks(horizons)
    ax.grid(alpha=0.3)


def coverage_axis_range(backtest: pd.DataFrame) -> tuple[float, float]:
    """The coverage panels' shared y range, in percent.

    From 5 points below the lowest coverage or calibrated-range bound drawn (down to a multiple of
    10, at least 0) to just above 100: the targets and the shaded ranges fill the panel, and a band
    that covers badly still shows.
    """
    columns = ["coverage_80", "coverage_95", "calibrated_80_low", "calibrated_95_low"]
    values = backtest.reindex(columns=columns).to_numpy(dtype="float64")
    lowest = 100.0 * float(np.nanmin(values)) if np.isfinite(values).any() else 0.0
    return max(0.0, 10.0 * math.floor((lowest - 5.0) / 10.0)), 102.0


def _coverage_axes(ax: Axes, rows: pd.DataFrame, limits: tuple[float, float]) -> None:
    horizons = rows["horizon"].to_numpy(dtype="float64")
    bands = (("coverage_80", 80.0, "o", FORECAST_COLOR), ("coverage_95", 95.0, "^", BAND_95_COLOR))
    for column, target, marker, color in bands:
        ax.axhline(target, color=color, ls=":", lw=1)
        low, high = (
            100.0 * rows[f"calibrated_{target:.0f}_{end}"].to_numpy(dtype="float64") for end in ("low", "high")
        )
        ax.fill_between(horizons, low, high, color=color, alpha=0.15, lw=0)
        values = 100.0 * rows[column].to_numpy(dtype="float64")
        ax.plot(horizons, values, color=color, marker=marker, ms=4, label=f"{target:.0f}% band")
    ax.set_ylim(*limits)
    ax.set_xticks(horizons)
    ax.set_xlabel("horizon (sessions)", fontsize=9)
    ax.grid(alpha=0.3)


def skill_chart(backtest: pd.DataFrame, *, demo: bool, fmt: ChartFormat = "png") -> bytes:
    """Skill by horizon from the walk-forward backtest, one column per series.

    Top panel: MAE relative to the random walk's on the same origins (the model's is `rel_mae`, the
    drift baseline's `drift_mae / naive_mae`; the random walk is 1, below 1 is better). Bottom panel:
    how often the actual fell inside the 80% and 95% bands, in percent, against those targets, over
    the range a perfectly calibrated band's share falls in by chance (`calibrated_*`, shaded).

    Args:
        backtest: backtest_metrics.csv's table.
        demo: the data is the generated demo data: a watermark says so.
        fmt: "png" or "svg".

    Returns:
        The image file's bytes.

    Raises:
        ValueError: the table is empty.
    """
    figure = _skill_figure(backtest, demo=demo)
    return _render(figure, (fmt,))[fmt]


def _skill_figure(backtest: pd.DataFrame, *, demo: bool) -> Figure:
    if backtest.empty:
        raise ValueError("no backtest rows to draw")
    series = list(dict.fromkeys(backtest["series_id"]))
    columns = min(len(series), SKILL_COLUMNS)
    blocks = -(-len(series) // SKILL_COLUMNS)
    width, height = SKILL_PANEL_INCHES
    figure = _figure(width * columns + 0.4, 2 * height * blocks + 0.9)
    grid = figure.add_gridspec(2 * blocks, columns, height_ratios=[3, 2] * blocks)
    limits = coverage_axis_range(backtest)
    for index, series_id in enumerate(series):
        block, column = divmod(index, SKILL_COLUMNS)
        rows = backtest.loc[backtest["series_id"] == series_id].sort_values("horizon")
        error_ax = figure.add_subplot(grid[2 * block, column])
        _skill_axes(error_ax, rows, series_id)
        coverage_ax = figure.add_subplot(grid[2 * block + 1, column], sharex=error_ax)
        _coverage_axes(coverage_ax, rows, limits)
        if index == 0:
            error_ax.set_ylabel("MAE / random walk's", fontsize=9)
            error_ax.legend(fontsize=8, frameon=False)
            coverage_ax.set_ylabel("band coverage, %", fontsize=9)
            coverage_ax.legend(fontsize=8, frameon=False, loc="lower left")
    title = (
        "Walk-forward backtest by horizon. Top: MAE relative to the random walk's (below 1 is better). "
        "Bottom: share of actuals inside the 80% and 95% bands (dotted: the targets; shaded: where a perfectly "
        "calibrated band's share falls by chance on the same origins, 9 test parts in 10)."
    )
    if demo:
        title += " Demo data, not the market."
    # About 12 characters per inch at this size: wrap so a one-series chart keeps its whole title.
    figure.suptitle(textwrap.fill(title, int(12 * (width * columns + 0.4))), fontsize=10)
    if demo:
        _watermark(figure)
    return figure


def render_charts(
    tables: dict[str, pd.DataFrame],
    *,
    as_of: date,
    demo: bool,
    history_sessions: int,
    formats: Iterable[ChartFormat] = CHART_FORMATS,
) -> dict[str, bytes]:
    """Every chart of a run folder, file name -> bytes.

    A fan chart per series of forecasted_data.csv (in its order), and the skill-by-horizon chart
    when the run has backtest_metrics.csv (training runs); each in every format of `formats`.

    Args:
        tables: the run's output tables, file name -> table (as published).
        as_of: the run's reference date.
        demo: the run was made from the generated demo data.
        history_sessions: actual sessions drawn before each forecast.
        formats: image formats written, PNG first (the summary in the dashboard shows the PNGs).
    """
    chosen = tuple(formats)
    actuals, forecast = tables["actuals.csv"], tables["forecasted_data.csv"]
    charts: dict[str, bytes] = {}
    for series_id in dict.fromkeys(forecast["series_id"]):
        figure = _fan_figure(
            actuals, forecast, series_id=series_id, as_of=as_of, demo=demo, history_sessions=history_sessions
        )
        for fmt, image in _render(figure, chosen).items():
            charts[fan_chart_name(series_id, fmt)] = image
    backtest = tables.get("backtest_metrics.csv")
    if backtest is not None and not backtest.empty:
        for fmt, image in _render(_skill_figure(backtest, demo=demo), chosen).items():
            charts[skill_chart_name(fmt)] = image
    return charts
