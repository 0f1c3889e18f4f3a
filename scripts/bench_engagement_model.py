"""Benchmark: how well does the engagement reward's effort model rank the A* agent's effort?

The play scales of ``tension_curve`` (:mod:`rlcreate.levels.engagement`) predict the A* agent's
effort per 16-column segment from the segment's tiles and the fast solver's path, with a model
fitted on the agent's traced plays of human TRAINING windows (``scripts/calibrate_engagement.py``).
This script compares model variants (which plays, which tile features, which target, which
regressor) by 5-fold cross-validation **grouped by contiguous training span**: windows that overlap
(stride < width) share a span, so no tile a fold is tested on was in its training data. Every fold
refits each variant on its own training spans' windows and predicts the same held-out windows:

- ``eval_stride128``: the 46 non-overlapping windows every variant can be compared on;
- ``eval_all``: every played window of the held-out spans (stride 32 where played; overlapping
  windows, so the per-window numbers are correlated).

Per variant and lost-play reading (``penalty``: +10 where a lost play ended; ``drop``: passed
segments only): Spearman of predicted with actual effort per segment, and Spearman of the predicted
per-window slope (Spearman of effort with position) with the actual one, with 95% bootstrap CIs
over spans. All of it is human training data: a check of the fit, not a held-out claim about
generated levels. A variant fitted also on generated levels' plays (``extra``) gets them in every
fold's fit (they are never held out: the held-out windows are human ones).

    OMP_NUM_THREADS=1 python scripts/bench_engagement_model.py --out benchmarks/engagement_model_cv.json
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class Config:
    base: str = "rlcreate/data/engagement_calibration.json"
    """the stride-128 calibration plays (the shipped "play" / "play_ground" scales)"""
    more: str = "rlcreate/data/engagement_calibration_stride32.json"
    """the stride-32 calibration plays ('' to compare the base variants only)"""
    folds: int = 5
    boot: int = 1000
    """bootstrap draws over spans for the CIs"""
    variants: str = ""
    """comma-separated subset of VARIANTS ('' for all)"""
    out: str = "benchmarks/engagement_model_cv.json"


def load_plays(path: str) -> dict:
    """Windows, spans, first columns and traces of a calibration file (played windows only)."""
    from rlcreate.levels.corpus import training_window_origins, training_windows
    from rlcreate.levels.play_trace import PlayTrace

    data = json.loads(Path(path).read_text())
    cfg, rows = data["config"], data["windows"]
    idx = [r["index"] for r in rows]
    origins = training_window_origins(cfg["width"], cfg["stride"])[idx]
    return {
        "windows": np.asarray(training_windows(cfg["width"], stride=cfg["stride"])[idx], np.int8),
        "start": origins[:, 0],
        "span": origins[:, 1],
        "traces": [
            PlayTrace(r["status"], np.array(r["ticks"], float), np.array(r["jumps"], float), r["fail_segment"])
            for r in rows
        ],
        "stride": cfg["stride"],
    }


def _slope(v: np.ndarray, ok: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(np.flatnonzero(ok), v[ok]).statistic) if ok.sum() >= 3 and np.ptp(v[ok]) > 0 else 0.0


def _metrics(pred: np.ndarray, y: np.ndarray, span: np.ndarray, boot: int, seed: int = 0) -> dict:
    """Per-segment and per-window-slope Spearman (pooled), with 95% bootstrap CIs over spans."""
    from scipy.stats import spearmanr

    ok = np.isfinite(y)
    ps = np.array([_slope(pred[i], ok[i]) for i in range(len(y))])
    ts = np.array([_slope(y[i], ok[i]) for i in range(len(y))])

    def both(sel: np.ndarray) -> tuple[float, float]:
        m = ok[sel]
        seg = spearmanr(pred[sel][m], y[sel][m]).statistic
        return float(seg), float(spearmanr(ps[sel], ts[sel]).statistic)

    seg, win = both(np.arange(len(y)))
    spans = np.unique(span)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(boot):
        pick = rng.choice(spans, len(spans))
        draws.append(both(np.concatenate([np.flatnonzero(span == s) for s in pick])))
    d = np.array(draws)
    return {
        "segment_spearman": round(seg, 3),
        "segment_spearman_ci": np.nanpercentile(d[:, 0], [2.5, 97.5]).round(3).tolist(),
        "window_slope_spearman": round(win, 3),
        "window_slope_spearman_ci": np.nanpercentile(d[:, 1], [2.5, 97.5]).round(3).tolist(),
        "windows": len(y),
        "segments": int(ok.sum()),
    }


def main(cfg: Config) -> dict:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_level_objectives import machine
    from sklearn.model_selection import GroupKFold

    from rlcreate.levels.engagement import (
        EFFORT_VARIANTS,
        calibration_data,
        effort_target,
        fit_effort_model,
        variant_features,
    )
    from rlcreate.levels.objectives import segment_path_difficulty
    from rlcreate.levels.play_trace import segment_effort

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    base = load_plays(cfg.base)
    more = load_plays(cfg.more) if cfg.more and Path(cfg.more).exists() else None
    names = [v.strip() for v in cfg.variants.split(",") if v.strip()] or list(EFFORT_VARIANTS)
    if more is None:
        names = [n for n in names if EFFORT_VARIANTS[n]["plays"] == "stride128"]
    pools = {"stride128": base, "stride32": more}
    ev_all = more if more is not None else base
    evals = {"eval_stride128": base, "eval_all": ev_all}
    # the spans' folds, shared by every variant and both evaluation sets
    spans = np.unique(np.concatenate([p["span"] for p in pools.values() if p is not None]))
    folds = list(GroupKFold(cfg.folds).split(spans, groups=spans))
    y = {
        e: {lost: np.array([segment_effort(t, lost) for t in d["traces"]]) for lost in ("penalty", "drop")}
        for e, d in evals.items()
    }
    result: dict = {
        "config": asdict(cfg),
        "machine": {**machine(), "load_avg_1min_at_start": load0},
        "plays": {k: len(p["traces"]) for k, p in pools.items() if p is not None},
        "spans": len(spans),
        "folds": [[int(s) for s in spans[te]] for _, te in folds],
        "variants": {},
    }
    for name in names:
        spec = EFFORT_VARIANTS[name]
        pool = pools[spec["plays"]]
        x_pool = variant_features(pool["windows"], name)
        t_pool = np.array([effort_target(t, spec["target"]) for t in pool["traces"]])
        # generated levels' plays (a variant's ``extra``) join every fold's fit; only human windows are held out
        _, _, x_gen, t_gen = calibration_data(name)
        preds = {e: np.full(y[e]["penalty"].shape, np.nan) for e in evals}
        x_eval = {e: variant_features(d["windows"], name) for e, d in evals.items()}
        for _, te in folds:
            held = spans[te]
            tr = ~np.isin(pool["span"], held)
            model = fit_effort_model(np.concatenate([x_pool[tr], x_gen]), np.concatenate([t_pool[tr], t_gen]), name)
            for e, d in evals.items():
                m = np.isin(d["span"], held)
                xe = x_eval[e][m]
                preds[e][m] = model.predict(xe.reshape(-1, xe.shape[2])).reshape(xe.shape[:2])
        result["variants"][name] = {
            "spec": spec,
            **{
                e: {lost: _metrics(preds[e], y[e][lost], evals[e]["span"], cfg.boot) for lost in ("penalty", "drop")}
                for e in evals
            },
        }
        r = result["variants"][name]
        print(
            f"{name:22s} 128: seg {r['eval_stride128']['penalty']['segment_spearman']:+.2f}/"
            f"{r['eval_stride128']['drop']['segment_spearman']:+.2f} slope "
            f"{r['eval_stride128']['penalty']['window_slope_spearman']:+.2f}/"
            f"{r['eval_stride128']['drop']['window_slope_spearman']:+.2f} | all: seg "
            f"{r['eval_all']['penalty']['segment_spearman']:+.2f}/{r['eval_all']['drop']['segment_spearman']:+.2f} "
            f"slope {r['eval_all']['penalty']['window_slope_spearman']:+.2f}/"
            f"{r['eval_all']['drop']['window_slope_spearman']:+.2f}",
            flush=True,
        )
    result["solver"] = {
        e: {
            lost: _metrics(segment_path_difficulty(d["windows"]), y[e][lost], d["span"], cfg.boot)
            for lost in ("penalty", "drop")
        }
        for e, d in evals.items()
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
