"""Record the A* agent's traced plays of levels written by PPO policies trained on a tension curve:
the generated part of the "play_ground32_gen" effort model's calibration (a DAgger-style round).

A policy trained against the effort model (``tension_curve``, ``rlcreate/levels/engagement.py``)
finds levels where the model and the agent disagree; fitting the model on the agent's plays of such
levels teaches it those places. This script takes the policies of one training run of
``scripts/bench_level_engagement_ppo.py`` (per curve, ``<runs>/rising`` and ``<runs>/flat``;
trained or resumed first with that script's settings), draws ``n`` levels per policy at env
seeds from ``env_seed`` on (one seed per policy, each seed's requests a stream of its own; the
benchmark's judged requests are env seed ``seed + 1``, so keep ``env_seed`` well above the seeds
it is run with), plays each once with the traced A* runner and writes the levels (VGLC text) and
traces to ``out``. No human level and no level the benchmark judges is in it.

It also measures what the round is for, on these plays (generated levels; the human windows are
training data): how the model the policies were trained on (``scale``, which never saw these
levels) ranks the agent's effort per segment and per-level slope, against the model refitted on
the human plays and the other folds' generated levels (5 folds grouped by level):
``model_check``.

    OMP_NUM_THREADS=1 python scripts/calibrate_engagement_gen.py --runs runs/eng_g32_s0 \\
        --out rlcreate/data/engagement_calibration_gen.json      # 64 plays (+ training if missing)
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
    runs: str = "runs/eng_g32_s0"
    """the training run folder of the policies (``<runs>/rising``, ``<runs>/flat``)"""
    scale: str = "play_ground32"
    """the tension scale the policies were trained on"""
    seed: int = 0
    """the policies' training seed (as ``bench_level_engagement_ppo.py --seed``)"""
    timesteps: int = 196608
    """PPO env steps per curve when the policies must be trained first"""
    train: int = 1
    """1: train (or resume) the policies first; 0: they must exist"""
    n: int = 32
    """levels per policy"""
    env_seed: int = 1000
    """the first policy's env seed (requests); the next policy uses env_seed + 1"""
    folds: int = 5
    """folds (grouped by level) of the refit check"""
    out: str = "rlcreate/data/engagement_calibration_gen.json"


def model_check(scale: str, grids: np.ndarray, traces: list, folds: int = 5) -> dict:
    """On the generated plays: Spearman of the agent's effort with ``scale``'s model (fitted on its
    own calibration data, which holds none of these levels) and with the model refitted per fold on
    that data plus the other folds' generated levels, per segment and per-level slope, both
    lost-play readings."""
    from scipy.stats import spearmanr
    from sklearn.model_selection import KFold

    from rlcreate.levels.engagement import (
        EFFORT_VARIANTS,
        calibration_data,
        effort_target,
        fit_effort_model,
        predicted_effort,
        variant_features,
    )
    from rlcreate.levels.play_trace import LOST_READINGS, segment_effort

    x_h, y_h, _, _ = calibration_data(scale)
    xg = variant_features(grids, scale)
    yg = np.array([effort_target(t, EFFORT_VARIANTS[scale]["target"]) for t in traces])
    before = predicted_effort(grids, scale)
    after = np.full(before.shape, np.nan)
    for tr, te in KFold(folds, shuffle=True, random_state=0).split(xg):
        m = fit_effort_model(np.concatenate([x_h, xg[tr]]), np.concatenate([y_h, yg[tr]]), scale)
        after[te] = m.predict(xg[te].reshape(-1, xg.shape[2])).reshape(len(te), -1)

    def slope(v: np.ndarray, ok: np.ndarray) -> float:
        return float(spearmanr(np.flatnonzero(ok), v[ok]).statistic) if ok.sum() >= 3 and np.ptp(v[ok]) > 0 else 0.0

    out: dict = {"levels": len(traces), "folds": folds}
    for lost in LOST_READINGS:
        y = np.array([segment_effort(t, lost) for t in traces])
        ok = np.isfinite(y)
        true = [slope(y[i], ok[i]) for i in range(len(y))]
        out[lost] = {
            name: {
                "segment_spearman": round(float(spearmanr(p[ok], y[ok]).statistic), 3),
                "level_slope_spearman": round(
                    float(spearmanr([slope(p[i], ok[i]) for i in range(len(y))], true).statistic), 3
                ),
            }
            for name, p in (("trained_on", before), ("refit_with_generated_cv", after))
        }
    return out


def main(cfg: Config) -> dict:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_level_engagement_ppo import Config as BenchConfig
    from bench_level_engagement_ppo import curve_recipe
    from bench_level_objectives import machine

    from rlcreate.assemble import assemble
    from rlcreate.levels import astar
    from rlcreate.levels.play_trace import play_traces
    from rlcreate.levels.share import sample_levels
    from rlcreate.levels.tiles import level_to_text
    from rlcreate.train.runner import restore, train_run

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    bench = BenchConfig(offers=1, scale=cfg.scale, timesteps=cfg.timesteps, seed=cfg.seed, runs=cfg.runs)
    judged = cfg.seed + 1  # bench_level_engagement_ppo.py's env seed for its judged requests
    if cfg.env_seed <= judged + 100 + 64:  # its start draws use policy seeds env_seed + 100 + k
        from rlcreate.errors import UserError

        raise UserError(f"env_seed = {cfg.env_seed}: use a seed above {judged + 164}, away from the judged requests")
    levels, meta = [], []
    for j, curve in enumerate(("rising", "flat")):
        run = Path(cfg.runs) / curve
        if cfg.train:  # as the benchmark: resumes a run that exists (a finished one trains no more)
            train_run(curve_recipe(curve, bench), run, progress_bar=False, resume=(run / "config.yaml").is_file())
        asm, model = restore(run, asm=assemble(curve_recipe(curve, bench)))
        got, _ = sample_levels(model, asm, cfg.n, cfg.env_seed + j, cfg.env_seed + j)
        levels += got
        meta += [{"policy": curve, "env_seed": cfg.env_seed + j, "request": i} for i in range(cfg.n)]
    print(f"A* plays of {len(levels)} generated levels ...", flush=True)
    traces = play_traces(levels)
    if traces is None:
        raise SystemExit("error: java / javac not found; the traced A* runner needs a JDK")
    grids = np.stack(levels).astype(np.int8)
    result: dict = {
        "config": asdict(cfg),
        "source": (
            f"PPO policies of {cfg.runs} (tension_curve on {cfg.scale!r}, per-offer features, training seed "
            f"{cfg.seed}), one level per request at env seeds {cfg.env_seed} (rising) and {cfg.env_seed + 1} "
            f"(flat); bench_level_engagement_ppo.py judges env seed --seed + 1's requests"
        ),
        "astar": astar.harness_settings(),
        "machine": {**machine(), "load_avg_1min_at_start": load0},
        "levels": [
            {
                **m,
                "level": level_to_text(g),
                "status": t.status,
                "ticks": t.ticks.astype(int).tolist(),
                "jumps": t.jumps.astype(int).tolist(),
                "fail_segment": t.fail_segment,
            }
            for m, g, t in zip(meta, grids, traces)
        ],
    }
    result["won"] = float(np.mean([t.won for t in traces]))
    result["model_check"] = model_check(cfg.scale, grids, traces, cfg.folds)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["model_check"], indent=1))
    print(f"wrote {cfg.out}: {result['won']:.2f} won, {result['seconds']} s")
    return result


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
