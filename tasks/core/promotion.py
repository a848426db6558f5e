"""The promotion rule (pure).

When a newly trained model may replace the champion, and when a stored model may serve a run at all.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from tasks.core.contracts import GateDecision, ModelCard
from tasks.core.errors import ModelMismatchError
from tasks.core.settings import Settings

# The settings that define a model's inputs: a run that uses the model uses the model's values.
MODEL_WINDOW_SETTINGS = ("sequence_length", "level_window")


def check_model_card(card: ModelCard, settings: Settings, *, data_source: str) -> None:
    """Fail clearly when a stored model cannot serve this run's series or data.

    Raises:
        ModelMismatchError: series or data source differ.
    """
    problems = []
    if card.series != settings.series:
        problems.append(f"it was trained on series {list(card.series)}, this run asks for {list(settings.series)}")
    advice = "Run the train-model flow with the same settings and data source to train a matching champion."
    if card.data_source != data_source:
        problems.append(f"it was trained on {card.data_source} data, this run uses {data_source} data")
        if data_source == "demo":  # what a run without FRED credentials uses
            advice = (
                "This run found no FRED credentials: give it FRED_API_KEY, or a FredCredentials block as "
                "fred_block, as the training run had. " + advice
            )
    if problems:
        reasons = "; ".join(problems)
        raise ModelMismatchError(f"The champion model {card.version} cannot serve this run: {reasons}. {advice}")


def settings_for_model(card: ModelCard, settings: Settings) -> tuple[Settings, list[str]]:
    """The run's settings with the model's input windows, and what was changed.

    A model reads windows of `sequence_length` sessions and measures the level feature against a
    `level_window` mean, and its classical members are estimated on the last `estimation_sessions`
    (at least `min_estimation_sessions`) sessions: a run that uses it must compute its inputs the
    same way, and fetch enough history for them, whatever the run's own settings say (the daily
    deployment's defaults after a training run with other values).

    Returns:
        (settings to run the model with, one sentence per value taken from the model).
    """
    trained = {
        "sequence_length": card.sequence_length,
        **{k: card.settings[k] for k in MODEL_WINDOW_SETTINGS if k in card.settings},
    }
    changed = {k: v for k, v in trained.items() if getattr(settings, k) != v}
    notes = [_taken(card, k, v, getattr(settings, k)) for k, v in changed.items()]
    if card.ensemble is not None:
        estimation = {
            "estimation_sessions": card.ensemble.estimation_sessions,
            "min_estimation_sessions": card.ensemble.min_estimation_sessions,
        }
        differ = {k: v for k, v in estimation.items() if getattr(settings.ensemble, k) != v}
        if differ:
            changed["ensemble"] = settings.ensemble.model_copy(update=differ)
            notes += [_taken(card, f"ensemble.{k}", v, getattr(settings.ensemble, k)) for k, v in differ.items()]
    return (settings.model_copy(update=changed) if changed else settings), notes


def uncalibrated_horizons(card: ModelCard, settings: Settings) -> str | None:
    """Why the run forecasts sessions its model never calibrated, or None when it does not.

    The intervals (and the ensemble's weights) are fitted at the model's backtest horizons and
    interpolated between them; beyond the last one they hold its values, which no backtest scored.
    """
    horizons = [int(row["horizon"]) for row in card.interval_z_quantiles]
    last = max(horizons, default=0)
    if settings.forecast_horizon <= last:
        return None
    return (
        f"forecast_horizon={settings.forecast_horizon} goes beyond the last horizon the model {card.version} "
        f"was backtested and calibrated at ({last}): the intervals and ensemble weights of sessions "
        f"{last + 1}..{settings.forecast_horizon} repeat horizon {last}'s, which no backtest scored. Train "
        f"with backtest.horizons that reach {settings.forecast_horizon} to calibrate them."
    )


def _taken(card: ModelCard, name: str, value: object, run_value: object) -> str:
    """The log's sentence for a setting a run takes from its model."""
    return f"{name}={value} as the model {card.version} was trained (this run's settings say {run_value})"


def gate_decision(
    backtest: pd.DataFrame,
    champion_card: ModelCard | None,
    settings: Settings,
    *,
    data_source: str,
    data_through: date,
    unusable_champion: str | None = None,
) -> GateDecision:
    """Whether a newly trained model should become champion, and why.

    `unusable_champion`: when champion_card is None because the champion's files cannot be used,
    which version that is and why (said in the reason instead of "first model").

    The challenger's backtest `rel_mae` (MAE over the random walk's on the same origins) must be at
    most `champion_gate.max_rel_mae` plus `champion_gate.tolerance` at every gated horizon of every
    gated series (not worse than the random walk, within the tolerance), and its mean over those
    cells at most the champion's on the same cells (as recorded in its model card; a format-1 card's
    `mase` is read as `rel_mae`; a tie goes to the newer model, which has seen more recent data). A
    champion trained for other series or another data source is not compared, with one exception: a
    model of the built-in demo data never replaces a champion of real (FRED) data (a training run
    started without the FRED credentials against the production storage). A model whose data
    ends before the champion's (`data_through`, e.g. a replay of a past as_of) never replaces it.

    Returns:
        The decision, with a sentence for the run summary.
    """
    gate = settings.champion_gate
    series, horizons = settings.gated_series, settings.gated_horizons
    limit = gate.max_rel_mae + gate.tolerance
    where = f"at {_horizons_text(horizons)} session(s) on {', '.join(series)}"
    scores = _cells(backtest, series, horizons)
    failing = {cell: value for cell, value in scores.items() if not value <= limit}
    if failing:
        shown = ", ".join(f"{s} h={h} {v:.3f}" for (s, h), v in failing.items())
        return GateDecision(
            promoted=False,
            reason=f"kept the old champion: backtest rel_mae must be at most {limit:g} (random walk "
            f"{gate.max_rel_mae:g} + tolerance {gate.tolerance:g}) {where}; the new model has {shown}",
        )
    challenger = float(np.mean(list(scores.values())))
    if champion_card is None:
        replaced = f"the champion {unusable_champion}" if unusable_champion else "first model"
        return GateDecision(
            promoted=True, reason=f"promoted: {replaced}, backtest mean rel_mae {challenger:.4f} {where}"
        )
    comparable = champion_card.series == settings.series and champion_card.data_source == data_source
    stands = _champion_stands(champion_card, comparable=comparable, data_source=data_source, data_through=data_through)
    if stands:
        return GateDecision(
            promoted=False,
            reason=f"kept the old champion {champion_card.version}: {stands}; the new model has backtest mean "
            f"rel_mae {challenger:.4f} {where}",
        )
    old = champion_card.backtest_table()
    if not comparable or old.empty or "rel_mae" not in old:
        return GateDecision(
            promoted=True,
            reason=f"promoted: the champion {champion_card.version} was trained for other series or data, "
            f"backtest mean rel_mae {challenger:.4f} {where}",
        )
    old_scores = _cells(old, series, horizons)
    common = [cell for cell, value in old_scores.items() if np.isfinite(value)]
    incumbent = float(np.mean([old_scores[c] for c in common])) if common else float("nan")
    challenger_common = float(np.mean([scores[c] for c in common])) if common else challenger
    if np.isfinite(incumbent) and not challenger_common <= incumbent:
        return GateDecision(
            promoted=False,
            reason=f"kept the old champion {champion_card.version}: its backtest mean rel_mae "
            f"{incumbent:.4f} {where} is better than the new model's {challenger_common:.4f}",
        )
    return GateDecision(
        promoted=True,
        reason=f"promoted: backtest mean rel_mae {challenger:.4f} {where}, not worse than the random walk "
        f"at any of them; champion's {incumbent:.4f}",
    )


def _champion_stands(champion_card: ModelCard, *, comparable: bool, data_source: str, data_through: date) -> str:
    """Why the champion stays whatever the new model's scores (empty: the scores decide)."""
    if data_source == "demo" and champion_card.data_source != "demo":
        return (
            f"it was trained on {champion_card.data_source} data, the new model on the built-in demo data, which "
            "never replaces a model of real data (give the run the FRED API key or block to train on FRED)"
        )
    if comparable and data_through < champion_card.data.end:
        return (
            f"it was built from data through {champion_card.data.end}, the new model only through {data_through} "
            "(a replay of a past as_of never replaces a newer champion)"
        )
    return ""


def _cells(backtest: pd.DataFrame, series: tuple[str, ...], horizons: tuple[int, ...]) -> dict[tuple[str, int], float]:
    """rel_mae by (series, horizon) for every gated cell; NaN where the table has none."""
    if backtest.empty or "rel_mae" not in backtest:
        return {(s, h): float("nan") for s in series for h in horizons}
    table = backtest.set_index(["series_id", "horizon"])["rel_mae"]
    return {(s, h): float(table.get((s, h), np.nan)) for s in series for h in horizons}


def _horizons_text(horizons: tuple[int, ...]) -> str:
    return ", ".join(str(h) for h in horizons)
