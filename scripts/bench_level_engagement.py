"""Benchmark: does a requested tension curve show up when the A* agent plays the levels?

The engagement reward (``tension_curve``, :mod:`rlcreate.levels.engagement`: fast-solver path
difficulty on the human percentile scale) selects, per request, among ``candidates`` column-LM
levels the one that best fits a *rising* curve and the one that best fits a *flat* curve. The A*
agent then plays every level once (deterministic node budget) with a trace
(:mod:`rlcreate.levels.play_trace`: ticks and take-offs per 16-column segment, where it failed):
different code and a different player from the reward. Reported, in one run:

- ``separation``: share of requests whose rising level's play-effort slope (Spearman of effort
  per segment against position) exceeds its flat level's — the target is >= 0.8;
- per-segment mean effort profiles of rising, flat, LM samples and human windows;
- the human engagement band (5th-95th percentile of means over resampled human sets of the same
  size) for effort per segment and effort slope, and whether the LM's own samples sit inside it.

    OMP_NUM_THREADS=1 python scripts/bench_level_engagement.py --out benchmarks/level_engagement.json
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
    n: int = 32
    """requests (levels) per curve"""
    candidates: int = 8
    """column-LM levels drawn per request (best-of-n selection by the reward)"""
    human: int = 32
    """human 128-column windows played for the band"""
    width: int = 128
    seed: int = 0
    out: str = "benchmarks/level_engagement.json"


def band(values: np.ndarray, size: int, draws: int = 2000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    means = [np.nanmean(values[rng.integers(0, len(values), size)]) for _ in range(draws)]
    return [float(np.percentile(means, 5)), float(np.percentile(means, 95))]


def main(cfg: Config) -> dict:
    from rlcreate.levels.corpus import corpus_windows
    from rlcreate.levels.engagement import tension
    from rlcreate.levels.generators.column_lm import ColumnLM
    from rlcreate.levels.play_trace import effort_slope, play_traces, segment_effort
    from rlcreate.rewards.registry import get_reward

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    lm = ColumnLM.load()
    cand = np.stack([np.stack(list(lm.generate(cfg.width, batch=cfg.n, seed=cfg.seed + 10 + c)))
                     for c in range(cfg.candidates)])  # (candidates, n, 14, W)
    sets: dict[str, list] = {"lm_samples": list(cand[0])}
    for curve in ("rising", "flat"):
        r = get_reward("tension_curve", curve=curve)
        s = np.stack([np.asarray(r(list(c)), np.float64) for c in cand])
        pick = s.argmax(axis=0)
        sets[curve] = [cand[pick[i], i] for i in range(cfg.n)]
    rng = np.random.default_rng(cfg.seed)
    hw = corpus_windows(cfg.width, stride=cfg.width)
    sets["human"] = [hw[i] for i in rng.choice(len(hw), min(cfg.human, len(hw)), replace=False)]
    order = [(k, i) for i in range(max(len(v) for v in sets.values())) for k, v in sets.items() if i < len(v)]
    print(f"A* plays of {len(order)} levels (sets interleaved) ...", flush=True)
    traces = play_traces([sets[k][i] for k, i in order])
    if traces is None:
        print("skipped: java / javac not found; the play judge needs a JDK (apt-get install openjdk-17-jdk-headless)")
        return {"skipped": "java / javac not found"}
    by: dict[str, list] = {k: [] for k in sets}
    for (k, _), tr in zip(order, traces):
        by[k].append(tr)
    result: dict = {"config": asdict(cfg), "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                                       "python": sys.version.split()[0], "numpy": np.__version__,
                                                       "load_avg_1min_at_start": load0},
                    "sets": {}}
    slopes = {k: np.array([effort_slope(t) for t in v]) for k, v in by.items()}
    effort = {k: np.array([segment_effort(t) for t in v]) for k, v in by.items()}
    mean_effort = {k: np.nanmean(v, axis=1) for k, v in effort.items()}
    for k in sets:
        t = tension(np.stack(sets[k]).astype(np.int8))
        result["sets"][k] = {
            "levels": len(sets[k]), "astar_won": float(np.mean([tr.won for tr in by[k]])),
            "effort_slope": float(np.mean(slopes[k])), "effort_per_segment": float(np.mean(mean_effort[k])),
            "effort_profile": np.nanmean(effort[k], axis=0).round(3).tolist(),
            "jumps_profile": np.mean([tr.jumps for tr in by[k]], axis=0).round(3).tolist(),
            "fail_segments": [tr.fail_segment for tr in by[k] if tr.fail_segment >= 0],
            "tension_profile": t.mean(axis=0).round(3).tolist(),
        }
    sep = slopes["rising"] > slopes["flat"]
    result["separation"] = {"share": float(sep.mean()), "target": 0.8, "n": int(len(sep)),
                            "rising_minus_flat_slope": float(np.mean(slopes["rising"] - slopes["flat"])),
                            "ties": int(np.sum(slopes["rising"] == slopes["flat"]))}
    n = cfg.n
    result["human_band"] = {"effort_per_segment": band(mean_effort["human"], n), "effort_slope": band(slopes["human"], n),
                            "set_size": n}
    lm_in = {m: bool(lo <= result["sets"]["lm_samples"][k] <= hi) for m, k, (lo, hi) in
             (("effort_per_segment", "effort_per_segment", result["human_band"]["effort_per_segment"]),
              ("effort_slope", "effort_slope", result["human_band"]["effort_slope"]))}
    result["lm_samples_in_human_band"] = lm_in
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps({k: result[k] for k in ("separation", "human_band", "lm_samples_in_human_band")}, indent=1))
    for k, v in result["sets"].items():
        print(f"{k:11s} won {v['astar_won']:.2f} slope {v['effort_slope']:+.2f} effort/seg {v['effort_per_segment']:.2f} "
              f"profile {v['effort_profile']} tension {v['tension_profile']}")
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
