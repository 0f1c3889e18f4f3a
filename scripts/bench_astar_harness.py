"""Benchmark: human Mario windows beaten by the A* agent under the old and the new harness settings.

Old ("engine"): the engine's own set-up, as rlcreate used it before: a 40 ms wall-clock search budget
per game tick and the window played as it is (Mario spawns in column 0, over a gap if column 0 has
no ground). New (the defaults of :func:`rlcreate.levels.astar.run_astar`): a fixed budget of search
nodes per tick (deterministic, load-independent) and a 3-column entry platform level with the
window's first floor (:func:`rlcreate.levels.astar.with_entry`).

Both arms play the same windows, interleaved (round by round, chunk by chunk, arm by arm) so that
machine load hits them alike. Sets: all human DEV windows of ``--width`` columns (held-out blocks
for tuning) and ``--n-corpus`` human windows of the same width drawn from training blocks (a larger
sample; not held out, used to diagnose the harness, not to judge a generator).

Reads top to bottom: config, windows, interleaved plays, summaries, JSON.
Run: .venv/bin/python scripts/bench_astar_harness.py --out benchmarks/astar_harness.json
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from rlcreate.scripting import parse_config


@dataclass
class Config:
    width: int = 128
    """Window width in columns (the demo's level width)."""
    n_dev: int = 5
    """DEV windows played (at most all of them; 128 columns gives 5, one per DEV block)."""
    n_corpus: int = 24
    """Human windows from training blocks played too (0: none)."""
    runs: int = 3
    """Plays per window and arm."""
    workers: int = 1
    """Java processes per call (1 keeps the 40 ms arm's wall-clock budget on an uncontended core)."""
    chunk: int = 8
    """Windows per call; arms alternate after every chunk."""
    seed: int = 0
    """Seed for drawing the training-block windows."""
    out: str = "benchmarks/astar_harness.json"
    """Where the JSON result is written."""


#: the two harness settings compared (keywords of run_astar)
ARMS = {"engine_40ms_no_pad": {"budget_nodes": None, "budget_ms": None, "start_pad": 0},
        "nodes_2000_entry_pad": {}}


def _starts(blocks, width: int, stride: int) -> list[int]:
    """First corpus column of each window ``corpus._windows_in`` cuts from these blocks, in order."""
    from rlcreate.levels import corpus

    return [s for lo, hi in corpus._merged_spans(blocks) for s in range(lo, hi - width + 1, stride)]


def _game(start: int) -> str:
    from rlcreate.levels.corpus import GAMES

    return next(g for g, (lo, hi) in GAMES.items() if lo <= start < hi)


def windows(cfg: Config) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """The windows of each set and a label per window, ``<game>@<first corpus column>``."""
    from rlcreate.levels import corpus

    dev = corpus.dev_windows(cfg.width, stride=cfg.width)[:cfg.n_dev]
    out = {"human_dev": dev}
    labels = {"human_dev": [f"{_game(s)}@{s}" for s in _starts(corpus.dev_blocks(), cfg.width, cfg.width)][:len(dev)]}
    if cfg.n_corpus > 0:
        stride = cfg.width // 2
        train = corpus.training_windows(cfg.width, stride=stride)
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(train), min(cfg.n_corpus, len(train)), replace=False))
        out["human_train_blocks"] = train[pick]
        starts = _starts(corpus.training_blocks(), cfg.width, stride)
        labels["human_train_blocks"] = [f"{_game(starts[i])}@{starts[i]}" for i in pick]
    return out, labels


def play_interleaved(levels: list[np.ndarray], cfg: Config) -> tuple[dict[str, list[list]], dict[str, float]]:
    """``plays[arm][level]`` = list of AstarResult; wall seconds per arm."""
    from rlcreate.levels.astar import run_astar

    plays = {a: [[] for _ in levels] for a in ARMS}
    seconds = {a: 0.0 for a in ARMS}
    for _ in range(cfg.runs):
        for lo in range(0, len(levels), cfg.chunk):
            chunk = levels[lo:lo + cfg.chunk]
            for arm, kw in ARMS.items():
                t0 = time.perf_counter()
                res = run_astar(chunk, runs=1, workers=cfg.workers, cache=False, **kw)
                seconds[arm] += time.perf_counter() - t0
                for i, s in enumerate(res):
                    plays[arm][lo + i].extend(s.results)
    return plays, seconds


def summarise(results: list[list], labels: list[str]) -> dict:
    """Per set: share beaten (won at least once), share of plays won, statuses, completion,
    repeatability (share of windows whose plays all ended alike), beaten per game, per-window outcomes."""
    won = [[r.won for r in rs] for rs in results]
    games = sorted({lab.split("@")[0] for lab in labels})
    by_game = {g: {"levels": sum(lab.startswith(g + "@") for lab in labels),
                   "beaten": float(np.mean([any(w) for w, lab in zip(won, labels) if lab.startswith(g + "@")]))}
               for g in games}
    same = [len({(r.status, round(r.completion, 6), r.jumps) for r in rs}) == 1 for rs in results]
    statuses = {s: sum(r.status == s for rs in results for r in rs) for s in ("WIN", "LOSE", "TIME_OUT")}
    return {"levels": len(results), "runs_per_level": len(results[0]) if results else 0,
            "beaten": float(np.mean([any(w) for w in won])), "win_rate": float(np.mean([np.mean(w) for w in won])),
            "statuses": statuses, "completion": float(np.mean([r.completion for rs in results for r in rs])),
            "all_plays_alike": float(np.mean(same)), "by_game": by_game,
            "per_level": [{"wins": int(sum(w)), "statuses": [r.status for r in rs],
                           "completion": [round(r.completion, 3) for r in rs]} for w, rs in zip(won, results)]}


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(Config, argv)
    from rlcreate.benchmark import environment, finish, write_json
    from rlcreate.levels.astar import harness_settings, java_available

    env = environment(asdict(cfg))
    sets, labels = windows(cfg)
    result = {**env, "arms": {a: harness_settings(**kw) for a, kw in ARMS.items()}, "sets": {}}
    if not java_available():
        result["skipped"] = "no java executable: the A* agent needs a Java 17 runtime"
    else:
        names = [(name, i) for name, ws in sets.items() for i in range(len(ws))]
        levels = [sets[name][i] for name, i in names]
        plays, seconds = play_interleaved(levels, cfg)
        result["arm_seconds"] = {a: round(s, 1) for a, s in seconds.items()}
        for name in sets:
            idx = [j for j, (n, _) in enumerate(names) if n == name]
            result["sets"][name] = {"windows": labels[name],
                                    **{arm: summarise([plays[arm][j] for j in idx], labels[name]) for arm in ARMS}}
    result = finish(result)
    write_json(cfg.out, result)
    for name, arms in result["sets"].items():
        for arm, s in ((k, v) for k, v in arms.items() if k in ARMS):
            games = "  ".join(f"{g} {v['beaten']:.0%} of {v['levels']}" for g, v in s["by_game"].items())
            print(f"{name:<20} {arm:<22} beaten {s['beaten']:.0%} of {s['levels']}  plays won {s['win_rate']:.0%}  "
                  f"statuses {s['statuses']}  plays alike {s['all_plays_alike']:.0%}  ({games})")
    print(f"wrote {cfg.out}")


if __name__ == "__main__":
    main()
