"""Benchmark: the A* agent's plays with and without the stall cut (``stall_ticks``), level by level.

A stuck agent spends its whole search budget on every tick until the game timer runs out, so one
TIME_OUT costs as much as many won plays. ``run_astar(stall_ticks=N)`` ends a play as TIME_OUT once
Mario has not passed his furthest x for N ticks. This plays the same levels both ways (node budget:
deterministic, so each arm's plays are exact) and reports, per set, how often the verdict (won or
not), the status and the completion agree, and the seconds each arm's plays took. Sets: human
windows of the DEV and TEST blocks and ``--n-train`` of the training blocks (128 columns, no
overlap), ``--n-lm`` column-LM samples, and the levels in ``--levels`` (default: 64 levels of the
token demo's policies, shipped and capped variety recipes, seeds 0 and 1, committed as
``benchmarks/astar_stall_policy_levels.npy``).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_astar_stall.py --out benchmarks/astar_stall.json
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from rlcreate.scripting import parse_config


@dataclass
class Config:
    stall_ticks: int = 200
    """The cut compared with playing to the timer."""
    n_human: int = 10
    """Held-out human windows (DEV then TEST blocks; 10 in all at 128 columns)."""
    n_train: int = 20
    """Human windows from training blocks (128 columns, stride 128)."""
    n_lm: int = 32
    """Column-LM samples (128 columns, seed 0)."""
    levels: str = "benchmarks/astar_stall_policy_levels.npy"
    """An .npy stack of (14, 128) levels to add (empty: none)."""
    workers: int = 2
    """Java processes per call."""
    out: str = "benchmarks/astar_stall.json"


def _sets(cfg: Config) -> dict[str, list[np.ndarray]]:
    from rlcreate.levels.corpus import dev_windows, test_windows, training_windows
    from rlcreate.levels.generators.column_lm import ColumnLM

    sets = {
        "human_dev_test": (list(dev_windows(128, stride=128)) + list(test_windows(128, stride=128)))[: cfg.n_human],
        "human_train": list(training_windows(128, stride=128))[: cfg.n_train],
    }
    if cfg.n_lm:
        sets["column_lm"] = list(ColumnLM.load().generate(128, batch=cfg.n_lm, seed=0))
    if cfg.levels:
        sets["policy_levels"] = list(np.load(cfg.levels))
    return sets


def _arm(levels: list[np.ndarray], stall: int | None, workers: int) -> tuple[list, float]:
    from rlcreate.levels.astar import run_astar

    t0 = time.perf_counter()
    res = run_astar(levels, runs=1, workers=workers, cache=False, stall_ticks=stall)
    return [r.results[0] for r in res], time.perf_counter() - t0


def main(cfg: Config) -> dict:
    from rlcreate.benchmark import environment, finish, write_json
    from rlcreate.levels.astar import harness_settings

    env = environment(asdict(cfg))
    result: dict = {"harness": harness_settings(stall_ticks=cfg.stall_ticks), "sets": {}}
    for name, levels in _sets(cfg).items():
        if not levels:
            continue
        full, full_s = _arm(levels, None, cfg.workers)
        cut, cut_s = _arm(levels, cfg.stall_ticks, cfg.workers)
        pairs = list(zip(full, cut))
        row = {
            "levels": len(levels),
            "won_to_timer": sum(a.won for a in full),
            "won_with_cut": sum(b.won for b in cut),
            "verdict_agrees": sum(a.won == b.won for a, b in pairs),
            "status_agrees": sum(a.status == b.status for a, b in pairs),
            "time_outs_to_timer": sum(a.status == "TIME_OUT" for a in full),
            "max_completion_diff": round(max(abs(a.completion - b.completion) for a, b in pairs), 4),
            "play_seconds_to_timer": round(sum(a.runtime_s for a in full), 1),
            "play_seconds_with_cut": round(sum(b.runtime_s for b in cut), 1),
            "wall_seconds_to_timer": round(full_s, 1),
            "wall_seconds_with_cut": round(cut_s, 1),
            "per_level": [
                {
                    "to_timer": [a.status, round(a.completion, 4), a.jumps],
                    "with_cut": [b.status, round(b.completion, 4), b.jumps],
                }
                for a, b in pairs
            ],
        }
        result["sets"][name] = row
        print(name, {k: v for k, v in row.items() if k != "per_level"}, flush=True)
        write_json(cfg.out, {**finish(env), **result})
    out = {**finish(env), **result}
    write_json(cfg.out, out)
    print(f"wrote {cfg.out}")
    return out


if __name__ == "__main__":
    main(parse_config(Config))
