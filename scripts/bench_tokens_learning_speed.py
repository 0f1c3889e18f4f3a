"""Benchmark: does a cheaper PPO update learn as well? The demo recipe vs variants of its learning values.

Trains each recipe (``--recipes``: the demo's ``mario_tokens_variety.yaml`` and variants of its
PPO update, e.g. fewer epochs, larger minibatches, fused Adam) for each seed through ``rlcreate
train`` (one training at a time, seeds interleaved so machine load hits every recipe alike),
records each training's wall time and CPU seconds, then judges every trained policy with
``scripts/bench_profile_sets.py`` (rates calibrated after training as the demo does; ``sets`` x
``n`` requests; PPO minus its calibrated start and minus best-of-4 from it on the recipe's
objective with paired 95% CIs, and the element profile's sets inside the human band), and each
run's policy against the first recipe's of the same seed on the same requests
(``steered_minus_reference``, paired 95% CI).

The comparison is at equal env steps (the recipe's budget, or ``--steps``): a variant that is not
worse at equal steps and takes less CPU time is at least as good at equal wall-clock time; per-recipe
``--steps`` give a variant the steps it takes in the reference's time instead. The
variants' per-step speed next to the bare column LM is measured in one run by
``bench_level_tokens_speed.py --hyper ...``. Existing run folders are reused (their recorded times
kept), so an interrupted benchmark resumes.

    OMP_NUM_THREADS=1 python scripts/bench_tokens_learning_speed.py \\
        --recipes rlcreate/recipes/mario_tokens_variety.yaml,benchmarks/recipes/demo_variety_e3_fused.yaml,benchmarks/recipes/demo_variety_e2_b512_fused.yaml \\
        --labels current,e3_fused,e2_b512_fused --seeds 0,1 --out benchmarks/level_tokens_speed_learning.json
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_RECIPE = "rlcreate/recipes/mario_tokens_variety.yaml"


@dataclass
class Config:
    recipes: str = DEMO_RECIPE
    """comma-separated recipe files; the first is the reference the others are compared with"""
    labels: str = ""
    """comma-separated short names, one per recipe ("" = the recipe files' stems)"""
    seeds: str = "0,1"
    """comma-separated training seeds"""
    steps: str = "0"
    """env steps per training: one number for every recipe or comma-separated, one per recipe (for an
    equal-time comparison); 0 = the recipe's trainer.total_timesteps"""
    runs_dir: str = "runs/learning_speed"
    """where the run folders go (<label>_s<seed>; an existing one is reused, not retrained)"""
    judge: int = 1
    """1: judge the trained runs with bench_profile_sets.py (0: train and time only)"""
    sets: int = 6
    """bench_profile_sets: sets per policy"""
    n: int = 64
    """bench_profile_sets: levels per set"""
    calibrate: int = 1
    """bench_profile_sets: calibrate the element rates after training (the demo does)"""
    calibration_levels: int = 192
    """bench_profile_sets: selection levels per calibration round"""
    out: str = "benchmarks/level_tokens_speed_learning.json"
    """where the JSON result is written"""


def _labels(cfg: Config, recipes: list[str]) -> list[str]:
    labels = [s for s in cfg.labels.split(",") if s] or [Path(r).stem for r in recipes]
    if len(labels) != len(recipes) or len(set(labels)) != len(labels):
        raise SystemExit(f"error: --labels {cfg.labels!r}: give one distinct name per recipe ({len(recipes)} recipes)")
    return labels


def train(recipe: str, seed: int, folder: Path, steps: int) -> dict:
    """Train one run through ``rlcreate train``; its wall time and the child's CPU seconds,
    kept in ``folder/timing.json`` so a reused run reports the times it was trained in."""
    timing = folder / "timing.json"
    if timing.is_file():
        return {**json.loads(timing.read_text()), "reused": True}
    cmd = [sys.executable, "-c", "from rlcreate.cli import main; main()", "train", recipe,
           "--out", str(folder.parent), "--name", folder.name, "--seed", str(seed), "--quiet", "--overwrite"]
    if steps:
        cmd += ["--steps", str(steps)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, t = os.getloadavg()[0], time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    state = json.loads((folder / "model" / "trainer_state.json").read_text())
    row = {"recipe": recipe, "seed": seed, "env_steps": int(state["num_timesteps"]), "wall_s": round(wall, 1),
           "cpu_s": round(cpu, 1), "load_avg_1min_at_start": load0, "load_avg_1min_at_end": os.getloadavg()[0]}
    row["env_steps_per_cpu_s"] = round(row["env_steps"] / cpu, 1)
    timing.write_text(json.dumps(row, indent=2))
    return {**row, "reused": False}


def main(cfg: Config) -> dict:
    import torch

    recipes = [r for r in cfg.recipes.split(",") if r]
    if not recipes:
        raise SystemExit("error: --recipes '': give at least one recipe file, e.g. " + DEMO_RECIPE)
    labels = _labels(cfg, recipes)
    for r in recipes:
        if not Path(r).is_file():
            raise SystemExit(f"error: --recipes {r!r}: no such recipe file (paths are relative to the working directory)")
    try:
        seeds = [int(s) for s in cfg.seeds.split(",") if s]
    except ValueError:
        raise SystemExit(f"error: --seeds {cfg.seeds!r}: write comma-separated integers, e.g. 0,1") from None
    try:
        steps = [int(s) for s in cfg.steps.split(",")]
    except ValueError:
        steps = []
    if len(steps) == 1:
        steps *= len(recipes)
    if len(steps) != len(recipes) or min(steps) < 0:
        raise SystemExit(f"error: --steps {cfg.steps!r}: write one number of env steps, or one per recipe (0 = the recipe's)")
    result: dict = {"config": asdict(cfg), "machine": {
        "platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_avg_1min_at_start": os.getloadavg()[0]}, "runs": {}}
    runs_dir = Path(cfg.runs_dir)
    for seed in seeds:  # seeds outermost: each seed's recipes train back to back, under about the same load
        for recipe, label, budget in zip(recipes, labels, steps):
            folder = runs_dir / f"{label}_s{seed}"
            print(f"training {label} (seed {seed}) -> {folder} ...", flush=True)
            row = train(recipe, seed, folder, budget)
            result["runs"][folder.name] = {"label": label, **row}
            print(f"  {row['env_steps']} env steps in {row['wall_s']} s wall, {row['cpu_s']} CPU s", flush=True)
    ref = labels[0]
    for row in result["runs"].values():
        base = result["runs"][f"{ref}_s{row['seed']}"]
        row["cpu_s_over_reference"] = round(row["cpu_s"] / base["cpu_s"], 3)
        row["wall_s_over_reference"] = round(row["wall_s"] / base["wall_s"], 3)
    if cfg.judge:
        sys.path.insert(0, str(ROOT / "scripts"))
        import bench_profile_sets

        judged = bench_profile_sets.main(bench_profile_sets.Config(
            runs=",".join(str(runs_dir / name) for name in result["runs"]), starts="", sets=cfg.sets, n=cfg.n,
            calibrate=cfg.calibrate, calibration_levels=cfg.calibration_levels,
            out=str(Path(cfg.out).with_name(Path(cfg.out).stem + "_profile_sets.json"))))
        for name, row in result["runs"].items():
            p = judged["policies"][str(runs_dir / name)]
            sh = p["ppo_share"]
            row["judged"] = {
                "profile_all_inside": p["all_inside"], "profile_all_but_one_inside": p["all_but_one_inside"],
                "element_means": {e: round(x["mean"], 3) for e, x in p["elements"].items()},
                "objective": sh["objective"], "share": sh["share"],
                "start_profile_all_inside": {k: v["all_inside"] for k, v in sh["profile_sets"].items()},
            }
        from rlcreate.levels.share import paired_diff

        for row in result["runs"].values():  # each run against the reference of its seed, request by request
            ref_scores = judged["policies"][str(runs_dir / f"{ref}_s{row['seed']}")]["ppo_share"]["scores"]
            own = judged["policies"][str(runs_dir / f"{row['label']}_s{row['seed']}")]["ppo_share"]["scores"]
            row["judged"]["steered_minus_reference"] = paired_diff(own["steered"], ref_scores["steered"])
        result["profile_sets_file"] = str(Path(cfg.out).with_name(Path(cfg.out).stem + "_profile_sets.json"))
    result["machine"]["load_avg_1min_at_end"] = os.getloadavg()[0]
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    for name, row in result["runs"].items():
        line = f"{name}: {row['env_steps']} steps, {row['cpu_s']} CPU s (x{row['cpu_s_over_reference']:.2f} of {ref})"
        if "judged" in row:
            j = row["judged"]
            diffs = {**j["share"], f"steered_minus_{ref}": j["steered_minus_reference"]}
            line += "; PPO minus " + ", ".join(
                f"{k.removeprefix('steered_minus_')} {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"
                for k, d in diffs.items()) + f"; profile all five {j['profile_all_inside']:.0%}"
        print(line)
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
