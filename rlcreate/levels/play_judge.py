"""The ``engagement`` judge: what the A* agent's play says about a set's tension, next to human play.

The ``tension_curve`` reward reads tension from a *model* of play (or the fast solver's path). This
judge plays instead: the A* agent plays every level once with a trace
(:func:`~rlcreate.levels.play_trace.play_traces`, the Java runner, no code shared with the reward),
and so does every held-out (DEV + TEST) human window of the levels' width (once per process). Per
16-column segment the effort is ``ticks / 20 + take-offs`` with a lost play read two ways
(:data:`~rlcreate.levels.play_trace.LOST_READINGS`). Reported:

- effort per segment and the per-level effort slope (Spearman of effort against position), both
  readings, and where lost plays ended;
- the human band: 5th-95th percentile of those means over resampled sets of the held-out windows
  of the judged set's size, and whether the set sits inside it;
- the *played tension* per segment: the share of held-out human segments the agent found easier
  (penalty reading, ties half), the scale the reward's curve is written in; with the run's requested
  curve (a ``tension_curve`` term in the recipe), its mean distance to the request and their
  Spearman correlation over segments: a curve a user sets shows up here segment by segment, or not.

Costs one A* play per level, plus ten human windows once per process (about 2-3 s a play on two
cores). The audit pairs the ``tension_curve`` term with ``request_fit`` (that reward's formula on the
played tension): a term that rises along training while play does not follow is flagged.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlcreate.levels.play_trace import LOST_READINGS, PlayTrace, effort_slope, play_traces, segment_effort

__all__ = ["judge_engagement", "played_tension", "band_of_means"]


#: ``tension_curve``'s default tolerance: ``request_fit`` reads play as that reward reads its model
REWARD_TOLERANCE = 0.5


def _human_windows(width: int) -> list[np.ndarray]:
    """The held-out (DEV + TEST) human windows of ``width`` columns, one per block."""
    from rlcreate.levels.corpus import dev_windows, test_windows

    return [*dev_windows(width, stride=width), *test_windows(width, stride=width)]


@functools.lru_cache(maxsize=4)
def _human_traces(width: int, workers: int) -> list[PlayTrace] | None:
    """The A* agent's plays of :func:`_human_windows` (deterministic: played once per process, so an
    audit's checkpoints do not replay them)."""
    return play_traces(_human_windows(width), workers=workers)


def _nanmean(a: np.ndarray, axis: int | None = None) -> Any:
    """``np.nanmean`` where a segment no play reached is NaN without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def played_tension(efforts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per segment, the share of ``reference`` efforts (human segments) below it, ties counting half;
    NaN (a segment the play never reached) stays NaN."""
    from rlcreate.levels.engagement import share_below

    out = share_below(np.sort(reference[np.isfinite(reference)]), efforts)
    return np.where(np.isfinite(efforts), out, np.nan)


def band_of_means(values: np.ndarray, size: int, draws: int = 2000, seed: int = 0) -> list[float]:
    """5th and 95th percentiles of the mean of ``size`` values resampled from ``values`` (NaN, a
    window with no reading, left out)."""
    rng = np.random.default_rng(seed)
    means = [_nanmean(values[rng.integers(0, len(values), size)]) for _ in range(draws)]
    return [float(np.nanpercentile(means, 5)), float(np.nanpercentile(means, 95))]


def _readings(traces: Sequence[PlayTrace]) -> dict[str, dict]:
    out = {}
    for lost in LOST_READINGS:
        e = np.array([segment_effort(t, lost) for t in traces])
        out[lost] = {
            "per_level_effort": _nanmean(e, axis=1),
            "slopes": np.array([effort_slope(t, lost) for t in traces]),
            "efforts": e,
        }
    return out


def judge_engagement(
    levels: Sequence[np.ndarray], workers: int = 2, tension_request: str | Sequence[float] | None = None, **_
) -> dict:
    """The judge (see the module); ``tension_request``: the recipe's requested curve (a named curve
    or values per segment, as ``tension_curve`` takes it), or None."""
    from rlcreate.levels.engagement import curve_values

    levels = [np.asarray(g) for g in levels]
    widths = {g.shape[1] for g in levels}
    width = widths.pop() if len(widths) == 1 else None
    human = _human_windows(width) if width is not None else []
    if not human:
        return {"skipped": "the human band needs levels of one width that held-out human windows have (<= 128 columns)"}
    traces, human_traces = play_traces(levels, workers=workers), _human_traces(width, workers)
    if traces is None or human_traces is None:
        return {"skipped": "java / javac not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)"}
    mine, theirs = _readings(traces), _readings(human_traces)
    out: dict = {
        "levels": len(levels),
        "human_windows": len(human),
        "astar_won": float(np.mean([t.won for t in traces])),
        "fail_segments": [t.fail_segment for t in traces if t.fail_segment >= 0],
    }
    for lost in LOST_READINGS:
        tag = "" if lost == "penalty" else f"_{lost}"
        m, h = mine[lost], theirs[lost]
        effort, slope = float(_nanmean(m["per_level_effort"])), float(np.mean(m["slopes"]))
        band_e, band_s = band_of_means(h["per_level_effort"], len(levels)), band_of_means(h["slopes"], len(levels))
        out[f"effort_per_segment{tag}"] = effort
        out[f"effort_slope{tag}"] = slope
        out[f"human_effort_per_segment{tag}_band"] = band_e
        out[f"human_effort_slope{tag}_band"] = band_s
        out[f"effort_in_human_band{tag}"] = bool(band_e[0] <= effort <= band_e[1])
        out[f"slope_in_human_band{tag}"] = bool(band_s[0] <= slope <= band_s[1])
        out[f"effort_profile{tag}"] = _nanmean(m["efforts"], axis=0).round(3).tolist()
        out[f"per_level_slope{tag}"] = m["slopes"].round(3).tolist()
    tension = played_tension(mine["penalty"]["efforts"], theirs["penalty"]["efforts"].ravel())
    profile = _nanmean(tension, axis=0)
    out["tension_profile"] = profile.round(3).tolist()
    if tension_request is not None:
        from scipy.stats import spearmanr

        want = curve_values(tension_request, len(profile))
        out["tension_request"] = want.round(3).tolist()
        out["request_distance"] = float(np.nanmean(np.abs(profile - want)))
        # the tension_curve reward's own form (default tolerance) on the played tension: the audit's
        # counterpart of that term, in the same units
        out["request_fit"] = max(0.0, 1.0 - out["request_distance"] / REWARD_TOLERANCE)
        varies = np.ptp(want) > 0 and np.ptp(profile) > 0
        out["request_spearman"] = float(spearmanr(profile, want).statistic) if varies else None  # a flat request
    return out
