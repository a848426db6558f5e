"""The ensemble (pure): the LSTM and classical members, weighted per series and horizon.

Members (`tasks.core.members`): the random walk, the drift, a mean-reverting AR(1) on the log-level,
and the LSTM (its recursive forecast, with its shrinkage). The forecast of a series h sessions
ahead is the weighted mean of the members' log-level forecasts, with weights fitted per series at
each backtest horizon and interpolated linearly in between (the nearest fitted horizon outside).

The weights are fitted on rolling origins inside the training part only, never the test part:

- the classical members are re-estimated at every origin from the sessions up to it, so every
  training origin with enough history (`min_estimation_sessions`) gives an honest forecast;
- the LSTM is honest only on the validation slice (the network never trained on it), so it is
  scored on the origins of that slice alone.

For each member m and horizon h, the random walk's error u = x[o+h] - x[o] is regressed on the
member's departure from the random walk d = m[o, h] - x[o] (through the origin): the slope says how
much of the departure is borne out. Its standard error is HAC (h - 1 lags: the targets of
neighbouring origins overlap); the weight is the slope minus `skill_z` standard errors, clipped to
[0, 1]. The same rule as the LSTM's own shrinkage (`tasks.core.model.fit_shrinkage`), applied to
every member and horizon.

The members are combined stage by stage (`stagewise_weights`): the member with the largest validated
reduction of the squared error takes its weight, then the rule is applied again to the error it
left, for the members not yet chosen, until none shows validated skill on the remainder or the
weights reach 1; the random walk holds the rest. The weights are non-negative and sum to 1, so the
forecast is a convex combination of the members' forecasts, each weight shrunk by its own HAC
standard error. A series and horizon where no member shows validated skill is the random walk.
Choosing one member only would ignore, e.g., what the LSTM adds on top of the VIX's reversion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.core.contracts import EnsembleCard, MemberWeights, ModelCard
from tasks.core.features import Scaler, Split, level_history, make_features, window_inputs
from tasks.core.members import LSTM, RANDOM_WALK, MemberName, classical_paths
from tasks.core.metrics import insample_naive_mae
from tasks.core.model import Predictor, forecast_log_levels
from tasks.core.settings import Settings
from tasks.core.significance import long_run_variance

# Below this the random walk holds nothing (the weights are sums of floats).
_NOTHING_LEFT = 1e-12
METHOD = (
    "per series and horizon, stage by stage on rolling origins of the training part (classical members "
    "re-estimated at every origin; the LSTM on its validation slice): the member whose departure from the "
    "random walk best explains the error still left takes its least-squares slope minus {z:g} HAC standard "
    "error(s), clipped to what is left of 0..1, until no member shows validated skill; the rest on the "
    "random walk"
)


@dataclass(frozen=True)
class Ensemble:
    """A model ready to forecast: the network, its scaler, and the ensemble's members and weights.

    Attributes:
        predictor: the LSTM's batch predictor (TensorFlow, or the NumPy forward pass).
        scaler: its scaler, with the LSTM's shrinkage.
        card: members, estimation windows and weights.
        sequence_length: the LSTM's window.
        level_window: the level feature's rolling mean.
        mase_scale: per series, the training part's in-sample naive MAE (None when unknown).
    """

    predictor: Predictor
    scaler: Scaler
    card: EnsembleCard
    sequence_length: int
    level_window: int
    mase_scale: dict[str, float] | None = None

    @classmethod
    def from_model_card(cls, predictor: Predictor, scaler: Scaler, card: ModelCard) -> Ensemble:
        """The ensemble a stored model describes (a format-1 card: its LSTM alone)."""
        level_window = int(card.settings.get("level_window", Settings().level_window))
        return cls(predictor, scaler, card.ensemble_card(), card.sequence_length, level_window, card.mase_scale)

    @property
    def series(self) -> tuple[str, ...]:
        """Series ids, in the model's order."""
        return self.scaler.series

    @property
    def uses_lstm(self) -> dict[str, bool]:
        """Per series, whether the LSTM has any weight at any horizon."""
        used = dict.fromkeys(self.series, False)
        for row in self.card.weights:
            used[row.series_id] = used.get(row.series_id, False) or row.weights.get(LSTM, 0.0) > 0
        return used

    def weights(self, horizon: int) -> dict[MemberName, np.ndarray]:
        """Member -> (horizon, n_series) weights of steps 1..horizon (interpolated between fitted horizons)."""
        return weight_arrays(self.card, self.series, horizon)

    def member_paths(self, levels: pd.DataFrame, origins: np.ndarray, horizon: int) -> dict[MemberName, np.ndarray]:
        """Each member's (len(origins), horizon, n_series) log-level forecasts from rows `origins` of `levels`.

        A member that cannot forecast from an origin (too little history) is NaN there.
        """
        log_levels = np.log(levels.to_numpy(dtype="float64"))
        paths = classical_paths(
            log_levels,
            origins,
            horizon,
            window=self.card.estimation_sessions,
            min_window=self.card.min_estimation_sessions,
        )
        paths[LSTM] = self.lstm_paths(levels, origins, horizon)
        return paths

    def lstm_paths(self, levels: pd.DataFrame, origins: np.ndarray, horizon: int) -> np.ndarray:
        """The LSTM's recursive forecasts from rows `origins` of `levels` (NaN without a complete window)."""
        features = make_features(levels, self.level_window)
        offset = len(levels) - len(features)
        rows = np.asarray(origins) - offset  # feature row of each origin
        usable = rows + 1 >= self.sequence_length
        out = np.full((len(rows), horizon, levels.shape[1]), np.nan)
        if usable.any():
            scaled = self.scaler.transform(features.to_numpy())
            selected = rows[usable]
            windows = window_inputs(scaled, self.sequence_length, selected + 1)
            history = level_history(levels, features.index[selected], self.level_window)
            out[usable] = forecast_log_levels(self.predictor, windows, history, self.scaler, horizon)
        return out

    def paths(self, levels: pd.DataFrame, origins: np.ndarray, horizon: int) -> np.ndarray:
        """The ensemble's (len(origins), horizon, n_series) log-level forecasts from rows `origins` of `levels`."""
        return combine(self.member_paths(levels, origins, horizon), self.weights(horizon))


def weight_arrays(card: EnsembleCard, series: tuple[str, ...], horizon: int) -> dict[MemberName, np.ndarray]:
    """Member -> (horizon, n_series) weights for steps 1..horizon, interpolated between fitted horizons."""
    members: list[MemberName] = sorted({m for row in card.weights for m in row.weights} | {RANDOM_WALK})
    out: dict[MemberName, np.ndarray] = {m: np.zeros((horizon, len(series))) for m in members}
    steps = np.arange(1, horizon + 1)
    for j, sid in enumerate(series):
        rows = sorted((r for r in card.weights if r.series_id == sid), key=lambda r: r.horizon)
        if not rows:
            out[RANDOM_WALK][:, j] = 1.0
            continue
        fitted = np.array([r.horizon for r in rows])
        for m in members:
            out[m][:, j] = np.interp(steps, fitted, [r.weights.get(m, 0.0) for r in rows])
    return out


def combine(paths: dict[MemberName, np.ndarray], weights: dict[MemberName, np.ndarray]) -> np.ndarray:
    """Weighted mean of the members' paths; a member without a forecast lends its weight to the random walk."""
    walk = paths[RANDOM_WALK]
    total = np.zeros_like(walk)
    for member, weight in weights.items():
        path = paths[member]
        total += weight[None, :, :] * np.where(np.isfinite(path), path, walk)
    return total


def slope_weight(departure: np.ndarray, error: np.ndarray, *, lags: int, skill_z: float) -> tuple[float, float]:
    """(weight, MSE ratio) of one member: slope of `error` on `departure` minus `skill_z` HAC SEs, in [0, 1].

    The MSE ratio is that of the random walk moved by weight * departure over the random walk's, on
    the same origins (1.0 when the weight is 0).
    """
    denominator = float(departure @ departure)
    n = len(departure)
    if n < 10 or denominator <= 0:
        return 0.0, 1.0
    slope = float(departure @ error) / denominator
    residual = error - slope * departure
    variance = n * long_run_variance(departure * residual, lags) / denominator**2
    weight = float(np.clip(slope - skill_z * math.sqrt(max(variance, 0.0)), 0.0, 1.0))
    if weight == 0.0:
        return 0.0, 1.0
    baseline = float(error @ error)
    ratio = float(np.sum((error - weight * departure) ** 2)) / baseline if baseline > 0 else 1.0
    return weight, ratio


def stagewise_weights(
    departures: Mapping[MemberName, np.ndarray], error: np.ndarray, *, lags: int, skill_z: float
) -> tuple[dict[MemberName, float], float | None]:
    """Weights of the members combined stage by stage on what the ones before left unexplained.

    Each stage fits every member not yet chosen with `slope_weight` (its HAC-shrunk slope) on the
    error still left, where that member has a forecast (NaN departures are left out: the LSTM has
    them on its validation slice only), and keeps the one with the lowest MSE ratio; its weight is
    capped at what the random walk still holds. Stages stop when no member shows validated skill on
    the remainder or the random walk holds nothing. With one member this is `slope_weight` itself.

    Args:
        departures: member -> its forecast minus the random walk's, per origin (NaN: no forecast).
        error: the random walk's error per origin (the target minus the level at the origin).
        lags: HAC lags (horizon - 1: the targets of neighbouring origins overlap).
        skill_z: standard errors taken off each slope.

    Returns:
        Member -> weight (the random walk included, only weights > 0; they sum to 1), and the MSE
        of the combination over the random walk's on the origins where every chosen member forecasts
        (None when the random walk holds everything).
    """
    error = np.asarray(error, dtype=np.float64)
    remaining = error.copy()
    chosen: dict[MemberName, float] = {}
    left = 1.0
    while left > _NOTHING_LEFT:
        best: tuple[float, MemberName | None, float] = (1.0, None, 0.0)
        for member, departure in departures.items():
            if member in chosen or member == RANDOM_WALK:
                continue
            usable = np.isfinite(departure)
            weight, ratio = slope_weight(departure[usable], remaining[usable], lags=lags, skill_z=skill_z)
            if weight > 0 and ratio < best[0]:
                best = (ratio, member, min(weight, left))
        _, pick, weight = best
        if pick is None:
            break
        chosen[pick] = weight
        left = max(left - weight, 0.0)
        # Where this member has no forecast, `combine` falls back on the random walk: nothing moves.
        remaining = remaining - weight * np.nan_to_num(departures[pick], nan=0.0)
    if not chosen:
        return {RANDOM_WALK: 1.0}, None
    common = np.logical_and.reduce([np.isfinite(departures[m]) for m in chosen])
    combined = error[common].copy()
    for member, weight in chosen.items():
        combined -= weight * departures[member][common]
    baseline = float(error[common] @ error[common])
    skill = float(combined @ combined) / baseline if baseline > 0 else 1.0
    weights: dict[MemberName, float] = {RANDOM_WALK: left, **chosen} if left > _NOTHING_LEFT else dict(chosen)
    return weights, skill


def fit_ensemble(
    predictor: Predictor, scaler: Scaler, levels: pd.DataFrame, *, split: Split, settings: Settings
) -> Ensemble:
    """Fit the weights on rolling origins of the training part of `levels` (the test part is never read).

    Args:
        predictor: the trained LSTM.
        scaler: its scaler (with its shrinkage).
        levels: aligned levels, the frame the model was trained on (test part included: only the rows
            before `split.train_end` are used).
        split: the model's split (feature rows).
        settings: sequence_length, level_window, ensemble.*, backtest.horizons.

    Returns:
        The fitted ensemble, with the training part's MASE scale.
    """
    config = settings.ensemble
    features = make_features(levels, settings.level_window)
    offset = len(levels) - len(features)
    end = offset + split.train_end  # first level row of the test part: never read
    training = levels.iloc[:end]
    series = tuple(levels.columns)
    horizons = settings.backtest.horizons
    h_max = max(horizons)
    log_levels = np.log(training.to_numpy(dtype="float64"))
    mase_scale = {s: insample_naive_mae(training[s].to_numpy()) for s in series}
    draft = Ensemble(
        predictor,
        scaler,
        EnsembleCard(
            members=config.members,
            estimation_sessions=config.estimation_sessions,
            min_estimation_sessions=config.min_estimation_sessions,
            method="",
            weights=(),
        ),
        settings.sequence_length,
        settings.level_window,
        mase_scale,
    )
    classical_origins = np.arange(0, end - 1)
    paths: dict[MemberName, np.ndarray] = dict(
        classical_paths(
            log_levels,
            classical_origins,
            h_max,
            window=config.estimation_sessions,
            min_window=config.min_estimation_sessions,
        )
    )
    validation_origins = np.arange(offset + split.validation_start - 1, end - 1)
    lstm = np.full_like(paths[RANDOM_WALK], np.nan)
    if LSTM in config.members:
        lstm[validation_origins] = draft.lstm_paths(training, validation_origins, h_max)
    paths[LSTM] = lstm

    rows = []
    for j, sid in enumerate(series):
        for h in horizons:
            inside = classical_origins + h < end
            origins = classical_origins[inside]
            error = log_levels[origins + h, j] - log_levels[origins, j]
            departures: dict[MemberName, np.ndarray] = {
                m: paths[m][inside, h - 1, j] - log_levels[origins, j] for m in config.members
            }
            weights, skill = stagewise_weights(departures, error, lags=h - 1, skill_z=config.skill_z)
            rows.append(MemberWeights(series_id=sid, horizon=h, weights=weights, skill=skill))
    card = draft.card.model_copy(update={"weights": tuple(rows), "method": METHOD.format(z=config.skill_z)})
    return Ensemble(predictor, scaler, card, settings.sequence_length, settings.level_window, mase_scale)
