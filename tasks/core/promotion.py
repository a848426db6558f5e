"""The promotion rule (pure).

When a newly trained model may replace the champion, and when a stored model may serve a run at all.
"""

from __future__ import annotations

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
    if card.data_source != data_source:
        problems.append(f"it was trained on {card.data_source} data, this run uses {data_source} data")
    if problems:
        raise ModelMismatchError(
            f"The champion model {card.version} cannot serve this run: "
            + "; ".join(problems)
            + ". Run the train-model flow with the same settings and data source to train a matching champion."
        )


def settings_for_model(card: ModelCard, settings: Settings) -> tuple[Settings, list[str]]:
    """The run's settings with the model's input windows, and what was changed.

    A model reads windows of `sequence_length` sessions and measures the level feature against a
    `level_window` mean: a run that uses it must compute its inputs the same way, whatever the run's
    own settings say (the daily deployment's defaults after a training run with other values).

    Returns:
        (settings to run the model with, one sentence per value taken from the model).
    """
    trained = {
        "sequence_length": card.sequence_length,
        **{k: card.settings[k] for k in MODEL_WINDOW_SETTINGS if k in card.settings},
    }
    changed = {k: v for k, v in trained.items() if getattr(settings, k) != v}
    notes = [
        f"{k}={v} as the model {card.version} was trained (this run's settings say {getattr(settings, k)})"
        for k, v in changed.items()
    ]
    return (settings.model_copy(update=changed) if changed else settings), notes


def gate_decision(
    backtest: pd.DataFrame, champion_card: ModelCard | None, settings: Settings, *, data_source: str
) -> GateDecision:
    """Whether a newly trained model should become champion, and why.

    The challenger's backtest MASE at `champion_gate.horizon` must be at most
    `champion_gate.max_mase` (1.0: not worse than the random walk) on every gated series, and its
    mean over those series at most the champion's (as recorded in its model card; a tie goes to the
    newer model, which has seen more recent data). A champion trained for other series or another
    data source is not compared. A series on which the network showed no skill on the validation
    slice is forecast exactly as the random walk (shrinkage 0), so it scores MASE 1.000 and passes.

    Returns:
        The decision, with a sentence for the run summary.
    """
    gate = settings.champion_gate
    series = settings.gated_series
    at_h = backtest[backtest["horizon"] == gate.horizon].set_index("series_id")["mase"]
    scores = {s: float(at_h.get(s, np.nan)) for s in series}
    failing = {s: m for s, m in scores.items() if not m <= gate.max_mase}
    if failing:
        shown = ", ".join(f"{s} {m:.3f}" for s, m in failing.items())
        return GateDecision(
            promoted=False,
            reason=f"kept the old champion: backtest MASE at {gate.horizon} session(s) must be at most "
            f"{gate.max_mase:g} on {', '.join(series)}; the new model has {shown}",
        )
    challenger = float(np.mean(list(scores.values())))
    if champion_card is None:
        return GateDecision(
            promoted=True,
            reason=f"promoted: first model, backtest mean MASE {challenger:.4f} at {gate.horizon} session(s)",
        )
    comparable = champion_card.series == settings.series and champion_card.data_source == data_source
    old = champion_card.backtest_table()
    if not comparable or old.empty or "mase" not in old:
        return GateDecision(
            promoted=True,
            reason=f"promoted: the champion {champion_card.version} was trained for other series or data, "
            f"backtest mean MASE {challenger:.4f}",
        )
    old_at_h = old[old["horizon"] == gate.horizon].set_index("series_id")["mase"]
    incumbent = float(np.mean([old_at_h.get(s, np.nan) for s in series]))
    if np.isfinite(incumbent) and not challenger <= incumbent:
        return GateDecision(
            promoted=False,
            reason=f"kept the old champion {champion_card.version}: its backtest mean MASE "
            f"{incumbent:.4f} at {gate.horizon} session(s) is better than the new model's {challenger:.4f}",
        )
    return GateDecision(
        promoted=True,
        reason=f"promoted: backtest mean MASE {challenger:.4f} at {gate.horizon} session(s), "
        f"champion's {incumbent:.4f}",
    )
