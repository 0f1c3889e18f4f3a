"""Benchmark: are generated Mario levels new, Mario-like and diverse, by judges no policy saw?

Compares, in one run: held-out human windows (DEV blocks), the column LM's own samples (no RL), the level
VAE's prior samples (random latents) and, with ``--run``, a trained policy's levels. For each set:
element profile per 128 columns against the human band, distinct tiles, set diversity,
human-likeness AUC (classifier two-sample test against the TEST split), novelty / copy share
against training windows and, when java exists, the A* agent's verdict with every set
interleaved in one run (3 plays per level). Writes JSON with machine, versions and load.

    OMP_NUM_THREADS=1 python scripts/bench_level_quality.py --run runs/demo --out benchmarks/level_quality.json
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
    run: str | None = None
    """run folder with the trained policy's levels: ``levels.npy`` (written by ``rlcreate demo``) or
    ``samples/level_*.txt`` (any run); None: only the reference sets."""
    n: int = 64
    """levels per generated set (the LM and VAE sets; a run's set is used as it is)"""
    width: int = 128
    """columns per generated reference level (the run's width wins when a run is given)"""
    astar_levels: int = 16
    """levels per set played by the A* agent (0: skip)"""
    astar_runs: int = 3
    """A* plays per level"""
    seed: int = 0
    """seed of the LM / VAE samples and of the judges' subsampling"""
    untrained: int = 0
    """1: also judge the run recipe's policy before any training (``config.yaml`` of ``--run``), sampled
    like the trained one: what RL started from (for mario_tokens.yaml the LM plus its control prior)"""
    out: str = "benchmarks/level_quality.json"
    """where the JSON result is written"""


def load_run_levels(folder: Path) -> list[np.ndarray]:
    """The levels of a run folder: ``levels.npy`` when present, else ``samples/level_*.txt``."""
    from rlcreate.levels.tiles import read_level

    if (folder / "levels.npy").is_file():
        return list(np.load(folder / "levels.npy"))
    files = sorted((folder / "samples").glob("level_*.txt"))
    if not files:
        print(f"error: --run {folder}: no levels.npy and no samples/level_*.txt; pass a run folder", file=sys.stderr)
        raise SystemExit(2)
    return [read_level(f) for f in files]


def reference_sets(n: int, width: int, seed: int) -> dict[str, list[np.ndarray]]:
    """Held-out human (DEV) windows, column-LM samples and VAE prior samples of ``width`` columns."""
    from rlcreate.levels.corpus import dev_windows
    from rlcreate.levels.generators.column_lm import ColumnLM
    from rlcreate.levels.generators.latent import LatentLevelGenerator

    lm = ColumnLM.load()
    lm_levels = list(lm.generate(width, batch=n, seed=seed))
    vae = LatentLevelGenerator.load()
    per = width // vae.segment_width
    z = np.random.default_rng(seed).standard_normal((n * per, vae.latent_dim)).astype(np.float32)
    segs = np.asarray(vae.decode(z)).reshape(n, per, 14, vae.segment_width)
    vae_levels = list(segs.transpose(0, 2, 1, 3).reshape(n, 14, per * vae.segment_width))
    # the human reference set is DEV: the judge's human side is TEST, and TEST against itself says nothing
    return {"human_dev": list(dev_windows(width, stride=width)), "column_lm_samples": lm_levels,
            "vae_prior": vae_levels}


def untrained_levels(folder: Path, n: int) -> tuple[list[np.ndarray], list[dict]]:
    """``n`` levels (and their targets) of the run recipe's untrained policy, sampled with the
    demo's seed and env."""
    from stable_baselines3.common.vec_env import VecMonitor

    from rlcreate.assemble import assemble
    from rlcreate.recipe import load_recipe
    from rlcreate.sb3 import make_algo
    from rlcreate.train.runner import rollout

    recipe = load_recipe(folder / "config.yaml")
    asm = assemble(recipe)
    model = make_algo(recipe, VecMonitor(asm.make_env()), None)
    infos = rollout(model, asm.make_env(min(n, 16), recipe.seed + 1, "eval"), n, deterministic=False)
    return [i["level"] for i in infos], [i.get("targets", {}) for i in infos]


def machine() -> dict:
    import sklearn
    import torch

    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "torch": torch.__version__, "sklearn": sklearn.__version__, "numpy": np.__version__,
            "load_avg_1min": os.getloadavg()[0], "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def main(cfg: Config) -> dict:
    from rlcreate.levels.quality import format_table, quality_table

    t0 = time.perf_counter()
    if cfg.untrained and not cfg.run:
        print("error: --untrained 1 judges the policy of a --run folder before training; pass --run RUN", file=sys.stderr)
        raise SystemExit(2)
    run_levels = load_run_levels(Path(cfg.run)) if cfg.run else None
    width = run_levels[0].shape[1] if run_levels else cfg.width
    groups = reference_sets(cfg.n, width, cfg.seed)
    control = {}
    if run_levels and cfg.untrained:
        from rlcreate.levels.demo import control_error

        groups["policy_untrained"], targets = untrained_levels(Path(cfg.run), len(run_levels))
        control["policy_untrained"] = control_error(groups["policy_untrained"], targets)
    if run_levels:
        groups["policy"] = run_levels
    load0 = os.getloadavg()[0]
    table = quality_table(groups, human_split="test", seed=cfg.seed, astar_levels=cfg.astar_levels,
                          astar_runs=cfg.astar_runs)
    result = {"config": asdict(cfg), "machine": {**machine(), "load_avg_1min_at_start": load0},
              "seconds": round(time.perf_counter() - t0, 1), **table, **({"control": control} if control else {})}
    print(format_table(table))
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
