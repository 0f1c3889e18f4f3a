"""Benchmark: does a requested tension curve show up when the A* agent plays the levels?

The engagement reward (``tension_curve``, :mod:`rlcreate.levels.engagement`) reads tension per
16-column segment on one of two scales: ``solver`` (fast-solver path difficulty) or ``play`` (the
A* agent's effort predicted from tiles and path by a model fitted on the agent's traced plays of
human TRAINING windows, ``rlcreate/data/engagement_calibration.json``). Per request and scale,
best-of-n selection among column-LM levels picks the level that best fits a *rising* curve and the
one that best fits a *flat* curve (n = ``candidates``; and ``big_candidates`` for the play scale).
The A* agent then plays every level once (deterministic node budget) with a trace
(:mod:`rlcreate.levels.play_trace`), all sets interleaved in one run. The judge shares no code
with the reward's solver reading, and the generated levels and the held-out (DEV + TEST) human
windows are disjoint from the calibration windows. Reported:

- ``separation`` per scale and judge reading (``penalty``: +10 where a lost play ended, later
  segments missing; ``drop``: passed segments only): share of requests whose rising level's
  play-effort slope (Spearman of effort per segment against position) exceeds its flat level's
  (target >= 0.8), ties, mean slopes;
- per-segment effort profiles of every set and where lost plays ended;
- the human engagement band (5th-95th percentile of means over resampled sets of the request
  count, from the held-out human windows) and whether the LM's own samples sit inside it;
- ``calibration``: cross-validated (grouped by window) Spearman of the fitted effort model and of
  the solver's path difficulty with the agent's effort on the calibration segments.

    OMP_NUM_THREADS=1 python scripts/bench_level_engagement.py --out benchmarks/level_engagement_play.json
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class Config:
    n: int = 16
    """requests (levels) per curve"""
    candidates: int = 8
    """column-LM levels drawn per request (best-of-n selection by the reward)"""
    big_candidates: int = 32
    """a second, larger best-of-n for the play scale (0: skip)"""
    width: int = 128
    seed: int = 0
    out: str = "benchmarks/level_engagement_play.json"


def calibration_check(scale: str = "play") -> dict:
    """Grouped 5-fold CV on the calibration windows of the play scale ``scale``: does its model
    (refitted per fold on its own plays, features and target), or the solver's path difficulty,
    rank the agent's per-segment effort and per-window slope? Folds hold out whole windows, or,
    where the windows overlap (stride < width), whole training spans
    (``scripts/bench_engagement_model.py`` compares the scales on one set of span folds)."""
    from scipy.stats import spearmanr
    from sklearn.model_selection import GroupKFold

    from rlcreate.levels.corpus import training_window_origins, training_windows
    from rlcreate.levels.engagement import (
        _PLAYS,
        EFFORT_VARIANTS,
        calibration_data,
        effort_target,
        fit_effort_model,
        variant_features,
    )
    from rlcreate.levels.objectives import segment_path_difficulty
    from rlcreate.levels.play_trace import PlayTrace, segment_effort

    spec = EFFORT_VARIANTS[scale]
    data = json.loads(_PLAYS[spec["plays"]].read_text())
    rows, width, stride = data["windows"], data["config"]["width"], data["config"]["stride"]
    idx = [r["index"] for r in rows]
    w = training_windows(width, stride=stride)[idx]
    traces = [
        PlayTrace(r["status"], np.array(r["ticks"], float), np.array(r["jumps"], float), r["fail_segment"])
        for r in rows
    ]
    x = variant_features(w, scale)
    solver = segment_path_difficulty(np.asarray(w, np.int8))
    groups = training_window_origins(width, stride)[idx, 1] if stride < width else np.arange(len(rows))
    _, _, x_gen, y_gen = calibration_data(scale)  # generated levels' plays (``extra``): in every fold's fit
    out: dict = {
        "windows": len(rows),
        "won": float(np.mean([t.won for t in traces])),
        "folds": 5,
        "grouped_by": "training span" if stride < width else "window",
        "fitted_on": f"{spec['target']} target (as the shipped model)"
        + (f", plus {len(y_gen)} generated levels' plays in every fold" if len(y_gen) else ""),
        "scale": scale,
    }
    y_fit = np.array([effort_target(t, spec["target"]) for t in traces])
    pred = np.full(y_fit.shape, np.nan)
    for tr, te in GroupKFold(5).split(x, groups=groups):  # whole windows (or spans) held out
        m = fit_effort_model(np.concatenate([x[tr], x_gen]), np.concatenate([y_fit[tr], y_gen]), scale)
        pred[te] = m.predict(x[te].reshape(-1, x.shape[2])).reshape(len(te), -1)

    def slope(v, m):
        return spearmanr(np.flatnonzero(m), v[m]).statistic if m.sum() >= 3 and np.ptp(v[m]) > 0 else 0.0

    for lost in ("penalty", "drop"):
        y = np.array([segment_effort(t, lost) for t in traces])
        ok = np.isfinite(y)
        true_slopes = [slope(y[i], ok[i]) for i in range(len(rows))]
        out[lost] = {
            "segments": int(ok.sum()),
            "spearman_model_cv": float(spearmanr(pred[ok], y[ok]).statistic),
            "spearman_solver": float(spearmanr(solver[ok], y[ok]).statistic),
            "window_slope_spearman_model_cv": float(
                spearmanr([slope(pred[i], ok[i]) for i in range(len(rows))], true_slopes).statistic
            ),
            "window_slope_spearman_solver": float(
                spearmanr([slope(solver[i], ok[i]) for i in range(len(rows))], true_slopes).statistic
            ),
        }
    return out


def main(cfg: Config) -> dict:
    from rlcreate.levels.corpus import dev_windows, test_windows
    from rlcreate.levels.engagement import tension
    from rlcreate.levels.generators.column_lm import ColumnLM
    from rlcreate.levels.play_judge import band_of_means
    from rlcreate.levels.play_trace import LOST_READINGS, effort_slope, play_traces, segment_effort
    from rlcreate.rewards.registry import get_reward

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    calib = calibration_check()
    print(json.dumps({"calibration": calib}, indent=1), flush=True)
    lm = ColumnLM.load()
    n_draw = max(cfg.candidates, cfg.big_candidates)
    cand = np.stack(
        [np.stack(list(lm.generate(cfg.width, batch=cfg.n, seed=cfg.seed + 10 + c))) for c in range(n_draw)]
    )  # (draws, n, 14, W); the first `candidates` are best-of-n's pool
    sets: dict[str, list] = {"lm_samples": list(cand[0])}
    picks: dict[str, tuple[str, str, int]] = {}
    for scale in ("solver", "play"):
        for pool in (
            (cfg.candidates, cfg.big_candidates) if scale == "play" and cfg.big_candidates else (cfg.candidates,)
        ):
            for curve in ("rising", "flat"):
                picks[f"{curve}_{scale}_bo{pool}"] = (curve, scale, pool)
    scores: dict = {}
    picked: dict[str, np.ndarray] = {}
    for name, (curve, scale, pool) in picks.items():
        r = get_reward("tension_curve", curve=curve, scale=scale)
        key = (curve, scale)
        if key not in scores:
            scores[key] = np.stack([np.asarray(r(list(c)), np.float64) for c in cand])
        pick = scores[key][:pool].argmax(axis=0)
        picked[name] = pick
        sets[name] = [cand[pick[i], i] for i in range(cfg.n)]
    sets["human_heldout"] = list(dev_windows(cfg.width, stride=cfg.width)) + list(
        test_windows(cfg.width, stride=cfg.width)
    )
    order = [(k, i) for i in range(max(len(v) for v in sets.values())) for k, v in sets.items() if i < len(v)]
    print(f"A* plays of {len(order)} levels (sets interleaved) ...", flush=True)
    traces = play_traces([sets[k][i] for k, i in order])
    if traces is None:
        print("skipped: java / javac not found; the play judge needs a JDK (apt-get install openjdk-17-jdk-headless)")
        return {"skipped": "java / javac not found"}
    by: dict[str, list] = {k: [] for k in sets}
    for (k, _), tr in zip(order, traces):
        by[k].append(tr)
    from rlcreate.levels import astar

    result: dict = {
        "config": asdict(cfg),
        "astar": astar.harness_settings(),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "load_avg_1min_at_start": load0,
        },
        "calibration": calib,
        "sets": {},
        "separation": {},
    }
    for k in sets:
        stack = np.stack(sets[k]).astype(np.int8)
        result["sets"][k] = {
            "levels": len(sets[k]),
            "astar_won": float(np.mean([tr.won for tr in by[k]])),
            "jumps_profile": np.mean([tr.jumps for tr in by[k]], axis=0).round(3).tolist(),
            "fail_segments": [tr.fail_segment for tr in by[k] if tr.fail_segment >= 0],
            "tension_profile_solver": tension(stack, "solver").mean(axis=0).round(3).tolist(),
            "tension_profile_play": tension(stack, "play").mean(axis=0).round(3).tolist(),
        }
        for lost in LOST_READINGS:
            e = np.array([segment_effort(t, lost) for t in by[k]])
            result["sets"][k][lost] = {
                "effort_slope": float(np.mean([effort_slope(t, lost) for t in by[k]])),
                "slopes": [round(effort_slope(t, lost), 3) for t in by[k]],
                "effort_per_segment": float(np.nanmean(np.nanmean(e, axis=1))),
                "effort_profile": np.nanmean(e, axis=0).round(3).tolist(),
            }
    for name, (curve, scale, pool) in picks.items():
        if curve != "rising":
            continue
        flat = name.replace("rising", "flat")
        for lost in LOST_READINGS:
            r = np.array(result["sets"][name][lost]["slopes"])
            f = np.array(result["sets"][flat][lost]["slopes"])
            result["separation"][f"{scale}_bo{pool}_{lost}"] = {
                "share": float(np.mean(r > f)),
                "target": 0.8,
                "n": int(len(r)),
                "ties": int(np.sum(r == f)),
                "rising_slope": float(r.mean()),
                "flat_slope": float(f.mean()),
                "rising_minus_flat_slope": float(np.mean(r - f)),
                # requests where one draw fits both curves best: the judge cannot separate those
                "same_level_for_both": int(np.sum(picked[name] == picked[flat])),
            }
    n = cfg.n
    result["human_band"] = {}
    for lost in LOST_READINGS:
        h = by["human_heldout"]
        per = np.array([np.nanmean(segment_effort(t, lost)) for t in h])
        sl = np.array([effort_slope(t, lost) for t in h])
        lo_e, hi_e = band_of_means(per, n)
        lo_s, hi_s = band_of_means(sl, n)
        lm = result["sets"]["lm_samples"][lost]
        result["human_band"][lost] = {
            "effort_per_segment": [lo_e, hi_e],
            "effort_slope": [lo_s, hi_s],
            "set_size": n,
            "human_windows": len(h),
            "lm_samples_in_band": {
                "effort_per_segment": bool(lo_e <= lm["effort_per_segment"] <= hi_e),
                "effort_slope": bool(lo_s <= lm["effort_slope"] <= hi_s),
            },
        }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps({k: result[k] for k in ("separation", "human_band")}, indent=1))
    for k, v in result["sets"].items():
        print(
            f"{k:20s} won {v['astar_won']:.2f} slope {v['penalty']['effort_slope']:+.2f}/{v['drop']['effort_slope']:+.2f} "
            f"effort/seg {v['penalty']['effort_per_segment']:.2f} profile {v['penalty']['effort_profile']} "
            f"tension(play) {v['tension_profile_play']}"
        )
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
