"""How often does the fast grid solver agree with the real A* agent on which levels are playable?

Reads top to bottom: config, seeding, level sets (corpus blocks or pieces; optionally a folder of
generated ``.txt`` levels), solver verdicts, A* verdicts (``runs`` plays per level), agreement
statistics, JSON. A level counts as A*-playable when the agent wins at least ``win_threshold`` of
its plays.

    python scripts/playability_agreement.py runs/agreement.json --runs 3
    python scripts/playability_agreement.py out.json --levels-dir samples/levels --runs 3

Reported per level set: the confusion matrix (solver x A*), agreement rate, the solver's precision
with respect to A* wins (of the levels the solver calls playable, the fraction A* wins) and recall,
and per-level rows. With ``--jar-timing-levels N`` it also plays the first N levels once with
``PlayAstar.jar``'s own (paced) entry point and once with the fast runner, both uncached, to record
the speed ratio in the same run.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcreate.levels import astar, solver
from rlcreate.levels.corpus import blocks, full_corpus
from rlcreate.levels.tiles import read_level
from rlcreate.scripting import Positional, parse_config


@dataclass
class Config:
    out: Positional[Path]
    """where the JSON report is written"""
    levels_dir: Path | None = None
    """optional folder of generated levels (*.txt, VGLC text, 14 rows) judged as a second set"""
    piece_width: int = 0
    """0: use the corpus' 128-column blocks; otherwise cut the corpus into non-overlapping pieces of this
    many columns"""
    max_levels: int = 0
    """if > 0, judge a random sample of at most this many levels per set (chosen with --seed)"""
    runs: int = 3
    """A* plays per level (the agent is noisy)"""
    win_threshold: float = 0.5
    """a level is A*-playable when its win rate is >= this"""
    workers: int = 2
    """Java processes in parallel"""
    timer: int | None = None
    """game-seconds per play; default width // 10 + 5"""
    cache: bool = True
    """reuse cached A* results (--no-cache to replay)"""
    jar_timing_levels: int = 0
    """time this many levels with PlayAstar.jar's own main vs the fast runner (uncached)"""
    seed: int = 0
    """seed for level sampling"""


def corpus_levels(cfg: Config) -> list[tuple[str, np.ndarray]]:
    if cfg.piece_width <= 0:
        return [(b.name, b.grid()) for b in blocks()]
    corpus, w = full_corpus(), cfg.piece_width
    return [(f"corpus[{s}:{s + w}]", corpus[:, s:s + w]) for s in range(0, corpus.shape[1] - w + 1, w)]


def folder_levels(folder: Path) -> list[tuple[str, np.ndarray]]:
    files = sorted(folder.glob("*.txt"))
    if not files:
        sys.exit(f"--levels-dir {folder}: no *.txt level files there; write levels with rlcreate.levels.tiles.write_level")
    return [(p.name, read_level(p)) for p in files]


def agreement(solver_ok: np.ndarray, astar_ok: np.ndarray) -> dict:
    tp = int(np.sum(solver_ok & astar_ok))
    fp = int(np.sum(solver_ok & ~astar_ok))
    fn = int(np.sum(~solver_ok & astar_ok))
    tn = int(np.sum(~solver_ok & ~astar_ok))
    n = tp + fp + fn + tn
    return {
        "confusion": {"solver_yes_astar_yes": tp, "solver_yes_astar_no": fp,
                      "solver_no_astar_yes": fn, "solver_no_astar_no": tn},
        "agreement": (tp + tn) / n if n else None,
        "solver_precision": tp / (tp + fp) if tp + fp else None,
        "solver_recall": tp / (tp + fn) if tp + fn else None,
        "solver_playable_rate": (tp + fp) / n if n else None,
        "astar_playable_rate": (tp + fn) / n if n else None,
    }


def judge(name: str, levels: list[tuple[str, np.ndarray]], cfg: Config) -> dict:
    grids = [g for _, g in levels]
    solver.solve(grids[0])  # load the compiled kernel before timing
    start = time.perf_counter()
    verdicts = [solver.solve(g) for g in grids]
    solver_s = time.perf_counter() - start
    start = time.perf_counter()
    summaries = astar.run_astar(grids, runs=cfg.runs, workers=cfg.workers, cache=cfg.cache, timer=cfg.timer)
    astar_s = time.perf_counter() - start
    solver_ok = np.array([v.reached_end for v in verdicts])
    astar_ok = np.array([s.win_rate >= cfg.win_threshold for s in summaries])
    rows = [{
        "name": n, "width": int(g.shape[1]), "solver_playable": bool(v.reached_end),
        "solver_completion": (v.furthest_col + 1) / g.shape[1], "astar_win_rate": s.win_rate,
        "astar_mean_completion": s.mean_completion, "astar_statuses": s.statuses,
        "astar_mean_play_s": s.mean_runtime_s,
    } for (n, g), v, s in zip(levels, verdicts, summaries)]
    report = {"set": name, "levels": len(levels), **agreement(solver_ok, astar_ok),
              "astar_any_win": agreement(solver_ok, np.array([s.wins > 0 for s in summaries])),
              "solver_us_per_level": 1e6 * solver_s / len(levels),
              "astar_wall_s_total": astar_s, "rows": rows}
    print(f"[{name}] {len(levels)} levels: agreement {report['agreement']:.3f}, "
          f"solver precision {report['solver_precision']}, recall {report['solver_recall']}, "
          f"confusion {report['confusion']}")
    return report


def jar_timing(levels: list[tuple[str, np.ndarray]], cfg: Config) -> dict:
    grids = [g for _, g in levels[:cfg.jar_timing_levels]]
    out = {}
    for runner in ("fast", "jar"):
        start = time.perf_counter()
        summaries = astar.run_astar(grids, runs=1, workers=1, cache=False, timer=cfg.timer, runner=runner)
        out[runner] = {"wall_s": time.perf_counter() - start,
                       "play_s": [s.mean_runtime_s for s in summaries],
                       "won": [s.wins > 0 for s in summaries]}
    out["levels"], out["widths"] = len(grids), [int(g.shape[1]) for g in grids]
    out["jar_over_fast_wall"] = out["jar"]["wall_s"] / out["fast"]["wall_s"]
    print(f"[timing] {len(grids)} levels, one JVM worker: fast {out['fast']['wall_s']:.1f} s, "
          f"jar {out['jar']['wall_s']:.1f} s ({out['jar_over_fast_wall']:.1f}x)")
    return out


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(Config, argv)
    rng = np.random.default_rng(cfg.seed)  # the only randomness: which levels a capped run samples
    if not astar.java_available():
        sys.exit(f"java not found: {astar.JavaMissingError.__doc__}")

    sets = {"corpus": corpus_levels(cfg)}
    if cfg.levels_dir is not None:
        sets["generated"] = folder_levels(cfg.levels_dir)
    if cfg.max_levels > 0:
        sets = {k: [v[i] for i in sorted(rng.choice(len(v), min(cfg.max_levels, len(v)), replace=False))]
                for k, v in sets.items()}

    from rlcreate.benchmark import environment, finish, write_json

    env = environment({k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()})
    report = {
        "solver_constants": {"JUMP_HEIGHT": solver.JUMP_HEIGHT, "APEX_STEPS": solver.APEX_STEPS,
                             "START_COLUMNS": solver.START_COLUMNS},
        "sets": {name: judge(name, levels, cfg) for name, levels in sets.items()},
    }
    if cfg.jar_timing_levels > 0:
        report["jar_timing"] = jar_timing(sets["corpus"], cfg)
    report = {**finish(env), **report}
    write_json(cfg.out, report)
    print(f"wrote {cfg.out}")
    return report


if __name__ == "__main__":
    main()
