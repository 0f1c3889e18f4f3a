"""Engagement from what the player must do, calibrated on human levels, against a requested tension curve.

Per 16-column segment, :func:`rlcreate.levels.objectives.segment_path_difficulty` reads the fast
solver's reachable states: forced jumps and their length, enemies on Mario's path, places where the
solver loses him. :func:`tension` maps that onto the human scale: the share of human *training*
segments (16-column windows of the training blocks) that are easier, so 0.5 is a median human
segment, 0.9 harder than nine in ten. The reward ``tension_curve`` asks for a curve of that
tension along the level ("rising", "flat", "peak" or one value per segment).

The judge is play by another player and other code: :mod:`rlcreate.levels.play_trace` (the A*
agent's ticks and take-offs per segment).

:class:`TensionOffers` (the reward's ``offer_features()``) gives a column-by-column writer, per
offered column, the current segment's tension with that column appended against the curve's
requested value for the segment (``rlcreate/MarioTokens-v1``'s ``offer_objective``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.rewards.base import RewardModule
from rlcreate.rewards.registry import register

__all__ = [
    "human_segment_difficulty",
    "tension",
    "curve_values",
    "TensionCurve",
    "CURVES",
    "SCALES",
    "segment_play_features",
    "play_effort_model",
    "predicted_effort",
    "TensionOffers",
    "ground_features",
    "PLAY_SCALES",
    "generated_plays",
    "calibration_data",
]

SEGMENT = 16
#: how a segment's tension is read: "solver" (fast-solver path difficulty), "play" (the A*
#: agent's effort predicted from the segment's tiles and path, fitted on human training windows) or
#: "play_ground" (the same plays, the tiles' height read from the ground up: see GROUND_FEATURES) or
#: "play_ground32" (the "play_ground" features and the neighbouring segments' tile features, fitted
#: on 3x the plays: training windows at stride 32) or "play_ground32_gen" (the same, fitted also on
#: the agent's plays of levels that PPO policies trained on "play_ground32" wrote: a DAgger-style round)
SCALES = ("solver", "play", "play_ground", "play_ground32", "play_ground32_gen")
#: the play scales (effort models fitted on the A* agent's plays; see EFFORT_VARIANTS)
PLAY_SCALES = ("play", "play_ground", "play_ground32", "play_ground32_gen")
#: ``segment_features`` columns that floating tiles move (the count of bricks and ?-blocks anywhere,
#: the mean height of each column's highest solid tile and its steps) without changing the ground
#: Mario walks on; PPO on the "play" scale met its curve with bricks and pipes hung in the sky.
#: "play_ground" replaces them by the ground stack's features (:func:`ground_features`).
TOP_FEATURES = (2, 6, 7)
#: the A* agent's traced plays of human training windows (``scripts/calibrate_engagement.py``):
#: 46 windows of 128 columns at stride 128, and 154 at stride 32 (the 46 among them)
CALIBRATION = Path(__file__).resolve().parents[1] / "data" / "engagement_calibration.json"
CALIBRATION_STRIDE32 = CALIBRATION.with_name("engagement_calibration_stride32.json")
#: the agent's plays of generated levels (``scripts/calibrate_engagement_gen.py``): levels of the
#: "play_ground32" PPO policies, drawn at env seeds disjoint from the benchmarks' judged requests
CALIBRATION_GEN = CALIBRATION.with_name("engagement_calibration_gen.json")
#: named tension curves (human percentile per position p in [0, 1])
CURVES = {
    "rising": lambda p: 0.15 + 0.7 * p,
    "flat": lambda p: np.full_like(p, 0.5),
    "peak": lambda p: 0.2 + 0.6 * np.sin(np.pi * p),
}


@functools.lru_cache(maxsize=1)
def human_segment_difficulty() -> np.ndarray:
    """Sorted path difficulty of the human training segments (16-column windows, stride 4)."""
    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.objectives import segment_path_difficulty

    w = training_windows(SEGMENT, stride=4)
    return np.sort(segment_path_difficulty(np.asarray(w, np.int8))[:, 0])


def ground_features(segments: np.ndarray) -> np.ndarray:
    """Per segment of a stack ``(m, 14, w)``, shape ``(m, 6)``: the ground Mario walks on, read as the
    solid tiles stacked from the bottom of each column (pits are 0): mean height / 14, mean absolute
    step between neighbouring columns / 4, mean step up / 4, pit share, share of columns where the
    height changes, highest stack / 14. Floating tiles count for nothing."""
    st = _stack_height(np.asarray(segments).transpose(0, 2, 1)).astype(np.float64)  # (m, w)
    d = np.diff(st, axis=1)
    w1 = max(st.shape[1] - 1, 1)
    return np.stack(
        [
            st.mean(axis=1) / 14.0,
            np.abs(d).sum(axis=1) / w1 / 4.0,
            np.maximum(d, 0).sum(axis=1) / w1 / 4.0,
            (st == 0).mean(axis=1),
            (d != 0).sum(axis=1) / w1,
            st.max(axis=1) / 14.0,
        ],
        axis=1,
    )


def _tile_part(segments: np.ndarray, scale: str) -> np.ndarray:
    """The tile features of 16-column segments ``(m, 14, 16)`` on a play scale: ``segment_features``
    ("play"), or those without :data:`TOP_FEATURES` and with :func:`ground_features` ("play_ground")."""
    from rlcreate.levels.features import segment_features

    tiles = segment_features(segments)
    if _FEATURES.get(scale, scale) in ("play_ground", "play_ground_ctx"):
        keep = [i for i in range(tiles.shape[1]) if i not in TOP_FEATURES]
        tiles = np.concatenate([tiles[:, keep], ground_features(segments)], axis=1)
    return tiles


def segment_play_features(grids: np.ndarray, scale: str = "play") -> np.ndarray:
    """Per 16-column segment of a stack ``(n, 14, W)``, shape ``(n, W // 16, 21)`` (24 for
    ``scale="play_ground"``): the segment's tile features (:func:`_tile_part`; for "play"
    :func:`rlcreate.levels.features.segment_features`: enemies, gap columns, blocks, coins, pipes,
    cannons, height, height variation, tile difficulty) and the fast solver's path
    (forced-air share, enemies-on-path share, lost share, longest forced jump / 9) of the segment,
    the one before and the one after (zeros beyond the level): a take-off for a pit at a segment's
    start happens in the segment before it."""
    from rlcreate.levels.objectives import path_descriptors

    g = np.ascontiguousarray(np.asarray(grids, np.int8))
    n, h, w = g.shape
    k = w // SEGMENT
    d = path_descriptors(g)
    air = d["air"][:, : k * SEGMENT].reshape(n, k, SEGMENT)
    longest = np.zeros((n, k))
    run = np.zeros((n, k))
    for c in range(SEGMENT):
        run = np.where(air[:, :, c], run + 1, 0)
        longest = np.maximum(longest, run)
    share = lambda x: x[:, : k * SEGMENT].reshape(n, k, SEGMENT).mean(axis=2)  # noqa: E731
    path = np.stack([share(d["air"]), share(d["enemy_on_path"]), share(d["lost"]), longest / 9.0], axis=2)
    prev = np.concatenate([np.zeros((n, 1, 4)), path[:, :-1]], axis=1)
    nxt = np.concatenate([path[:, 1:], np.zeros((n, 1, 4))], axis=1)
    segs = g[:, :, : k * SEGMENT].reshape(n, h, k, SEGMENT).transpose(0, 2, 1, 3).reshape(n * k, h, SEGMENT)
    tiles = _tile_part(segs, scale).reshape(n, k, -1)
    return np.concatenate([tiles, path, prev, nxt], axis=2)


#: the effort model's settings (chosen by cross-validation over calibration windows, see BENCHMARKS.md)
EFFORT_MODEL_PARAMS = {
    "n_estimators": 150,
    "max_depth": 2,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "loss": "huber",
    "random_state": 0,
}
#: a larger gradient-boosted model for the stride-32 plays (3x the segments)
EFFORT_MODEL_PARAMS_BIG = {**EFFORT_MODEL_PARAMS, "n_estimators": 300, "max_depth": 3, "min_samples_leaf": 10}
#: effort-model variants compared by ``scripts/bench_engagement_model.py`` (span-grouped CV on the
#: calibration plays); the play scales are the shipped ones. ``plays``: which calibration file;
#: ``features``: "play" (all tile features), "play_ground" (the ground stack instead of
#: TOP_FEATURES), "play_ground_ctx" (plus the neighbouring segments' tile features); ``target``:
#: see :func:`effort_target`; ``model``: "gbr", "gbr_big" (gradient boosting) or "forest"; ``extra``
#: (optional): "gen", the plays of generated levels in :data:`CALIBRATION_GEN` added to the fit (the
#: human scale, the reference, stays the human windows' predictions).
EFFORT_VARIANTS: dict[str, dict[str, str]] = {
    "play": {"plays": "stride128", "features": "play", "target": "penalty", "model": "gbr"},
    "play_ground": {"plays": "stride128", "features": "play_ground", "target": "penalty", "model": "gbr"},
    "play_ground32": {"plays": "stride32", "features": "play_ground_ctx", "target": "penalty", "model": "gbr"},
    "play_ground32_gen": {
        "plays": "stride32",
        "features": "play_ground_ctx",
        "target": "penalty",
        "model": "gbr",
        "extra": "gen",
    },
    "ground32": {"plays": "stride32", "features": "play_ground", "target": "penalty", "model": "gbr"},
    "ground32_big": {"plays": "stride32", "features": "play_ground", "target": "penalty", "model": "gbr_big"},
    "ground32_forest": {"plays": "stride32", "features": "play_ground", "target": "penalty", "model": "forest"},
    "ground32_capped": {"plays": "stride32", "features": "play_ground", "target": "capped", "model": "gbr"},
    "ground32_centred": {"plays": "stride32", "features": "play_ground", "target": "centred", "model": "gbr"},
    "play32": {"plays": "stride32", "features": "play", "target": "penalty", "model": "gbr"},
}
_FEATURES = {k: v["features"] for k, v in EFFORT_VARIANTS.items()}
_PLAYS = {"stride128": CALIBRATION, "stride32": CALIBRATION_STRIDE32}


def effort_target(trace, target: str = "penalty") -> np.ndarray:
    """The regression target per segment of one traced play: "penalty" (the judge's penalty
    reading, :func:`rlcreate.levels.play_trace.segment_effort`), "capped" (the same with the lost
    segment's +10 cut to +3, so one loss weighs less against the passed segments' differences) or
    "centred" (penalty minus the play's mean over its read segments: effort relative to the level)."""
    from rlcreate.levels.play_trace import segment_effort

    e = segment_effort(trace, "penalty")
    if target == "capped" and trace.fail_segment >= 0:
        e = e.copy()
        e[trace.fail_segment] -= 7.0
    elif target == "centred":
        e = e - np.nanmean(e)
    elif target != "penalty" and target != "capped":
        raise ValueError(f"target = {target!r}: use penalty, capped or centred")
    return e


def variant_features(grids: np.ndarray, variant: str) -> np.ndarray:
    """:func:`segment_play_features` for an :data:`EFFORT_VARIANTS` entry ("play_ground_ctx" appends
    the previous and the next segment's tile features, zeros beyond the level)."""
    feats = EFFORT_VARIANTS[variant]["features"]
    if feats != "play_ground_ctx":
        return segment_play_features(grids, feats)
    x = segment_play_features(grids, "play_ground")
    t = x[:, :, : x.shape[2] - 12]  # the tile part (the path part is 3 x 4 columns)
    z = np.zeros_like(t[:, :1])
    return np.concatenate([x, np.concatenate([z, t[:, :-1]], axis=1), np.concatenate([t[:, 1:], z], axis=1)], axis=2)


def fit_effort_model(x: np.ndarray, y: np.ndarray, variant: str):
    """The variant's regressor (scikit-learn) fitted on features ``(n, k, f)`` and targets ``(n, k)``
    (segments with no reading, NaN, left out)."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

    kind = EFFORT_VARIANTS[variant]["model"]
    ok = np.isfinite(y)
    if kind == "forest":
        model = RandomForestRegressor(n_estimators=300, min_samples_leaf=10, max_features=0.5, random_state=0)
    else:
        model = GradientBoostingRegressor(**(EFFORT_MODEL_PARAMS_BIG if kind == "gbr_big" else EFFORT_MODEL_PARAMS))
    return model.fit(x[ok], y[ok])


def generated_plays(path: Path | None = None) -> tuple[np.ndarray, list]:
    """The generated levels ``(n, 14, W)`` and the A* agent's traces of them in a
    ``scripts/calibrate_engagement_gen.py`` file (default :data:`CALIBRATION_GEN`)."""
    from rlcreate.levels.play_trace import PlayTrace
    from rlcreate.levels.tiles import parse_level

    rows = json.loads((path or CALIBRATION_GEN).read_text())["levels"]
    grids = np.stack([parse_level(r["level"]) for r in rows])
    traces = [
        PlayTrace(r["status"], np.array(r["ticks"], float), np.array(r["jumps"], float), r["fail_segment"])
        for r in rows
    ]
    return grids, traces


def calibration_data(scale: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The effort model's fit data for a play scale: features ``(n, k, f)`` and targets ``(n, k)``
    of the human training windows, then of the extra (generated) levels (empty unless the
    variant has ``extra``)."""
    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.play_trace import PlayTrace

    spec = EFFORT_VARIANTS[scale]
    data = json.loads(_PLAYS[spec["plays"]].read_text())
    cfg, rows = data["config"], data["windows"]
    windows = training_windows(cfg["width"], stride=cfg["stride"])[[r["index"] for r in rows]]
    x = variant_features(windows, scale)
    traces = [
        PlayTrace(r["status"], np.array(r["ticks"], float), np.array(r["jumps"], float), r["fail_segment"])
        for r in rows
    ]
    y = np.array([effort_target(t, spec["target"]) for t in traces])
    if spec.get("extra") == "gen":
        grids, gtraces = generated_plays()
        xg = variant_features(grids, scale)
        yg = np.array([effort_target(t, spec["target"]) for t in gtraces])
    else:
        xg, yg = np.zeros((0, *x.shape[1:])), np.zeros((0, y.shape[1]))
    return x, y, xg, yg


@functools.lru_cache(maxsize=4)
def play_effort_model(scale: str = "play"):
    """``(model, reference)``: a gradient-boosted regressor (scikit-learn) from
    :func:`segment_play_features` to the A* agent's effort per segment
    (:func:`rlcreate.levels.play_trace.segment_effort`: ticks / 20 + take-offs, +10 where a lost
    play ended), fitted on the traced plays of human *training* windows in :data:`CALIBRATION`
    (segments after a loss are unobserved and left out), and the sorted predictions for all those
    windows' segments: the human scale. ``scale`` picks the :data:`EFFORT_VARIANTS` entry: the
    calibration plays (:data:`CALIBRATION`, 46 windows at stride 128, for "play" and "play_ground";
    :data:`CALIBRATION_STRIDE32`, 154 windows, for "play_ground32"; those and the generated levels'
    plays in :data:`CALIBRATION_GEN` for "play_ground32_gen"), the tile features
    (:func:`segment_play_features`), the target and the regressor. The reference is always the
    human windows' predictions: generated levels are fitted, never the scale."""
    x, y, xg, yg = calibration_data(scale)
    model = fit_effort_model(np.concatenate([x, xg]), np.concatenate([y, yg]), scale)
    return model, np.sort(model.predict(x.reshape(-1, x.shape[2])))


def predicted_effort(grids: np.ndarray, scale: str = "play") -> np.ndarray:
    """The A* agent's effort per segment predicted by :func:`play_effort_model`, shape ``(n, W // 16)``."""
    model, _ = play_effort_model(scale)
    x = variant_features(grids, scale)
    return model.predict(x.reshape(-1, x.shape[2])).reshape(x.shape[:2])


def tension(grids: np.ndarray, scale: str = "solver") -> np.ndarray:
    """Per segment of a stack ``(n, 14, W)``: the share of human training segments that are easier
    (ties count half), shape ``(n, W // 16)``, in [0, 1]. ``scale="solver"`` reads difficulty as the
    fast solver's path difficulty; ``scale="play"`` as the A* agent's predicted effort
    (:func:`predicted_effort`); ``scale="play_ground"`` as the same with the tiles' height read from
    the ground up (:func:`ground_features`)."""
    if scale in PLAY_SCALES:
        ref, d = play_effort_model(scale)[1], predicted_effort(grids, scale)
    else:
        from rlcreate.levels.objectives import segment_path_difficulty

        ref, d = human_segment_difficulty(), segment_path_difficulty(grids)
    return share_below(ref, d)


def share_below(ref: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per value, the share of the sorted reference ``ref`` below it, ties counting half: the human
    scale a tension is read on (the reward's from modelled effort, the play judge's from played)."""
    lo = np.searchsorted(ref, values, side="left")
    hi = np.searchsorted(ref, values, side="right")
    return (lo + hi) / (2.0 * len(ref))


def curve_values(curve: str | Sequence[float], k: int, total: int | None = None) -> np.ndarray:
    """The requested tension of the first ``k`` segments of a level of ``total`` segments (default
    ``k``): a named curve sampled at segment centres, or the given values, the last repeated."""
    if isinstance(curve, str):
        if curve not in CURVES:
            from rlcreate.errors import UserError

            raise UserError(
                f"tension_curve: curve = {curve!r}: use one of {sorted(CURVES)} or a list of values in [0, 1]"
            )
        return CURVES[curve]((np.arange(k) + 0.5) / max(total or k, k))
    v = np.asarray(curve, np.float64)
    return np.concatenate([v, np.full(max(k - len(v), 0), v[-1])])[:k]


@register("tension_curve")
class TensionCurve(RewardModule):
    """Engagement as a tension curve a designer sets: ``1 - mean |tension - curve| / tolerance``
    (floored at 0), tension per 16-column segment on the human scale (:func:`tension`: the share
    of human training segments the segment is harder than), difficulty read from the fast solver's
    path (``scale="solver"``, default) or from the A* agent's effort as predicted by a model fitted
    on its plays of human training windows (``scale="play"``, :func:`play_effort_model`; or
    ``scale="play_ground"``, the same plays with the tiles' height read from the ground up, so tiles
    in the sky do not count; ``scale="play_ground32"``, those features and the neighbouring
    segments' tile features, fitted on 3x the plays: overlapping training windows at stride 32;
    ``scale="play_ground32_gen"``, the same fitted also on the agent's plays of levels written by
    PPO policies trained on "play_ground32", so the model learns where such policies fooled it).
    ``curve``:
    "rising" (default: from the 15th to the 85th human percentile), "flat" (the median
    throughout), "peak", or values per segment. ``width``: the full level's columns, so a partial
    level (per-segment shaping) is held to the start of the curve rather than the whole curve
    squeezed into it. On the play scales, ``offer_features()`` (:class:`TensionOffers`) shows a
    column-by-column writer what each offered column does to the current segment's tension
    against the curve. Range [0, 1]. Gamed by: either reading is a model of play, not play: the
    solver's path ignores timing and moving enemies, and the play model (Spearman ~0.34 with the
    agent's effort, cross-validated over calibration windows; 0.43 for "play_ground"; 0.39 per
    segment and 0.43 per-window slope for "play_ground32" on span folds) can be met by the tile
    patterns it weights placed to move the number: PPO met the "play" curve with bricks and pipes
    hung in the sky, the "play_ground" one with floating platforms over long pits, and the
    "play_ground32" one with staircases late in "rising" levels and floating platforms over an
    open bottom in "flat" ones (still there on "play_ground32_gen": the refit ranks the policies'
    own levels no better, 0.48 per-level slope); the A* play judge (:mod:`rlcreate.levels.play_trace`) checks it by
    play."""

    artifact = "level"

    def __init__(
        self,
        curve: str | Sequence[float] = "rising",
        tolerance: float = 0.5,
        scale: str = "solver",
        width: int | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        self.curve = curve if isinstance(curve, str) else [float(v) for v in curve]
        curve_values(self.curve, 1)  # validate now, not at the first reward call
        if scale not in SCALES:
            from rlcreate.errors import UserError

            raise UserError(f"tension_curve: scale = {scale!r}: use one of {list(SCALES)}")
        self.tolerance = float(tolerance)
        self.scale = scale
        self.width = None if width is None else int(width)

    def score(self, samples: Sequence[np.ndarray], **context: Any):
        from rlcreate.levels.objectives import _per_sample

        def fn(g):
            t = tension(g, self.scale)
            want = curve_values(self.curve, t.shape[1], None if self.width is None else self.width // SEGMENT)
            return np.maximum(0.0, 1 - np.abs(t - want).mean(axis=1) / self.tolerance)

        return _per_sample(samples, fn)

    def offer_features(self) -> TensionOffers:
        return TensionOffers(self)


def _stack_height(cols: np.ndarray) -> np.ndarray:
    """Solid tiles stacked from the bottom of columns ``(..., H)``."""
    from rlcreate.levels import tiles as T

    solid = T.IS_SOLID[cols.astype(np.intp)]
    return np.cumprod(solid[..., ::-1], axis=-1).sum(axis=-1)


def _plain(heights: np.ndarray, h: int) -> np.ndarray:
    """Plain ground columns ``(..., H)`` of the given stack heights (nothing above the ground)."""
    from rlcreate.levels import tiles as T

    rows = np.arange(h)[::-1]  # row r holds ground when it is among the lowest ``height`` rows
    return np.where(rows < heights[..., None], T.GROUND, T.EMPTY).astype(np.int8)


class TensionOffers:
    """:class:`TensionCurve`'s per-offer features for a level written left to right (an
    :class:`rlcreate.levels.objectives.OfferFeatures`). The current 16-column segment is read as
    finished by plain ground at the last stack height (the level "goes on flat"), once as it stands
    (``base``) and once per offer with the offer appended (then plain ground at the offer's stack
    height, or the last height after a pit), on the reward's own scale: :func:`tension`'s tile
    features, the fast solver's path (exact for the columns written and the offer; the plain rest
    counts as walked) and the previous segment's path. Per offer (1) whether it raises or lowers
    the segment's tension, ``0.5 + 0.5 clip((tension_j - base) / 0.25, -1, 1)``, with context
    ``0.5 + 0.5 tanh((wanted - base) / 0.25)`` (> 0.5: the curve wants this segment harder); (2)
    how close it brings the segment to the wanted tension, ``1 - |tension_j - wanted|`` (the
    segment's own part of the reward's mean distance, unfloored), with context ``tanh(|base -
    wanted| / 0.25)`` (high: the segment is off).
    The solver state along the prefix is carried from call to call while the prefix grows by one
    column (recomputed otherwise), so a step costs one solver column for the prefix and one per
    offer, plus one effort-model prediction per offer. Only the play scales ("play",
    "play_ground") are offered per column (the solver scale's path difficulty is another measure)."""

    size = 2
    STEP = 0.25  # tension change read as a full raise or drop

    def __init__(self, module: TensionCurve):
        if module.scale not in PLAY_SCALES:
            from rlcreate.errors import UserError

            raise UserError(
                f"tension_curve offer features: scale = {module.scale!r}: per-offer features read the "
                "play scales only; set scale: play (or play_ground) or drop offer_objective"
            )
        self.module = module
        self._prefix: np.ndarray | None = None  # the prefix seen last call and its solver sweep
        self._state: np.ndarray | None = None
        self._path: np.ndarray | None = None  # (n, t, 3): air, enemy on path, lost per column

    def _sweep(self, prefix: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Solver exit state after the prefix and its per-column path (air, enemy on path, lost),
        carried over from the last call when the prefix only grew by one column."""
        n, h, t = prefix.shape
        old = self._prefix
        state: np.ndarray | None = None
        path: np.ndarray = np.zeros((n, 0, 3), bool)
        old_t = 0
        if (
            old is not None
            and self._path is not None
            and old.shape[0] == n
            and old.shape[2] <= t
            and np.array_equal(old, prefix[:, :, : old.shape[2]])
        ):
            old_t, state, path = old.shape[2], self._state, self._path
        cols = []
        for c in range(old_t, t):
            state, cols_c = _path_step(prefix[:, :, c], state)
            cols.append(cols_c)
        if cols:
            path = np.concatenate([path, np.stack(cols, axis=1)], axis=1)
        self._prefix, self._state, self._path = prefix.copy(), state, path
        return state, path

    def tensions(self, prefix: np.ndarray, offered: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray, float]:
        """The current segment's tension as it stands, ``(n,)``, with each offer appended, ``(n, k)``
        (both finished by plain ground), and the curve's wanted tension for the segment."""
        prefix = np.asarray(prefix, np.int8)
        n, k, h = offered.shape
        t = prefix.shape[2]
        s, o = t // SEGMENT, t % SEGMENT
        total = (self.module.width or n_columns) // SEGMENT
        wanted = curve_values(self.module.curve, s + 1, max(total, s + 1))[s]
        state, path = self._sweep(prefix)
        # the offers' own solver column, from the prefix's exit state
        _, per_off = _path_step(
            offered.reshape(n * k, h), None if state is None else np.repeat(state, k, axis=0)
        )  # (n * k, 3)
        per_off = per_off.reshape(n, k, 3)
        cur = prefix[:, :, s * SEGMENT : t]  # (n, H, o)
        cur_path = path[:, s * SEGMENT : t]  # (n, o, 3)
        last = np.full(n, 2)  # the last ground column's stack height (2 before any ground)
        if t:
            stack = _stack_height(prefix.transpose(0, 2, 1))
            ground = stack > 0
            at = t - 1 - np.argmax(ground[:, ::-1], axis=1)
            last = np.where(ground.any(axis=1), stack[np.arange(n), at], 2)
        off_h = _stack_height(offered)  # (n, k)
        off_h = np.where(off_h > 0, off_h, last[:, None])
        # the segment as it stands (base) and with each offer, finished by plain ground
        base = np.concatenate([cur, np.repeat(_plain(last, h)[:, :, None], SEGMENT - o, axis=2)], axis=2)
        with_off = np.empty((n, k, h, SEGMENT), np.int8)
        with_off[:, :, :, :o] = cur[:, None]
        with_off[:, :, :, o] = offered
        with_off[:, :, :, o + 1 :] = _plain(off_h, h)[:, :, :, None]
        tiles = _tile_part(np.concatenate([base, with_off.reshape(n * k, h, SEGMENT)]), self.module.scale)
        # path of the segment: shares over 16 columns and the longest forced jump (/ 9)
        run, longest = np.zeros(n), np.zeros(n)
        for c in range(o):
            run = np.where(cur_path[:, c, 0], run + 1, 0)
            longest = np.maximum(longest, run)
        sums = cur_path.sum(axis=1).astype(np.float64)  # (n, 3)
        base_path = np.concatenate([sums / SEGMENT, longest[:, None] / 9.0], axis=1)
        off_run = np.where(per_off[:, :, 0], run[:, None] + 1, 0)
        off_path = np.concatenate(
            [(sums[:, None] + per_off) / SEGMENT, np.maximum(longest[:, None], off_run)[:, :, None] / 9.0], axis=2
        )
        prev = _segment_path(path[:, (s - 1) * SEGMENT : s * SEGMENT]) if s else np.zeros((n, 4))
        ctx_path = np.concatenate([prev, np.zeros((n, 4))], axis=1)  # previous segment, next unknown
        parts = [
            tiles,
            np.concatenate([base_path, off_path.reshape(n * k, 4)]),
            np.concatenate([ctx_path, np.repeat(ctx_path, k, axis=0)]),
        ]
        if _FEATURES[self.module.scale] == "play_ground_ctx":  # the neighbours' tiles: previous, next unknown
            f = tiles.shape[1]
            pt = _tile_part(prefix[:, :, (s - 1) * SEGMENT : s * SEGMENT], self.module.scale) if s else np.zeros((n, f))
            ctx_t = np.concatenate([pt, np.zeros((n, f))], axis=1)
            parts.append(np.concatenate([ctx_t, np.repeat(ctx_t, k, axis=0)]))
        x = np.concatenate(parts, axis=1)
        model, ref = play_effort_model(self.module.scale)
        e = model.predict(x)
        lo, hi = np.searchsorted(ref, e, side="left"), np.searchsorted(ref, e, side="right")
        ten = (lo + hi) / (2.0 * len(ref))
        return ten[:n], ten[n:].reshape(n, k), float(wanted)

    def observe(self, prefix, offered, n_columns):
        tb, tj, wanted = self.tensions(prefix, offered, n_columns)
        raise_ = 0.5 + 0.5 * np.clip((tj - tb[:, None]) / self.STEP, -1.0, 1.0)
        close = 1.0 - np.abs(tj - wanted)  # the segment's own term in the reward's mean |tension - curve|
        off = np.tanh(np.abs(tb - wanted) / self.STEP)
        ctx = np.stack([0.5 + 0.5 * np.tanh((wanted - tb) / self.STEP), off], axis=1)
        return ctx, np.stack([raise_, close], axis=2)


def _path_step(col: np.ndarray, state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """One column ``(n, H)`` of :func:`rlcreate.levels.objectives.path_descriptors` from the solver
    state before it: the state after it and ``(n, 3)`` bools (forced air, enemy on path, lost)."""
    from rlcreate.levels import tiles as T
    from rlcreate.levels.solver import solve_batch

    *_, after = solve_batch(np.ascontiguousarray(col[:, :, None]), state)
    state = np.asarray(after, bool)
    rows: np.ndarray = np.any(state, axis=2)
    stand = np.any(state[:, :, 0], axis=1)
    alive = np.any(rows, axis=1)
    near = rows.copy()
    near[:, 1:] |= rows[:, :-1]
    enemy = (near & (col == T.ENEMY)).any(axis=1)
    return state, np.stack([alive & ~stand, enemy, ~alive], axis=1)


def _segment_path(path: np.ndarray) -> np.ndarray:
    """:func:`segment_play_features`' path part of one segment from its per-column path ``(n, 16, 3)``."""
    run, longest = np.zeros(len(path)), np.zeros(len(path))
    for c in range(path.shape[1]):
        run = np.where(path[:, c, 0], run + 1, 0)
        longest = np.maximum(longest, run)
    return np.concatenate([path.mean(axis=1), longest[:, None] / 9.0], axis=1)
