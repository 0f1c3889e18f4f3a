"""Benchmark: where the time of ``rlcreate demo --generator latent`` goes, per step budget.

Runs the demo's own code (:func:`rlcreate.levels.demo.run_demo`, the latent path) once per budget
in ``--work``/STEPS, with the library calls it makes wrapped in timers: training, sampling the
policy sets, the recipe's objective, the generator's own samples, the judges, the A* agent. Writes
per budget the wall time end to end, each phase's seconds, the 1-minute load sampled every 5 s
during the run, and the demo's own summary (its table, PPO's share with CIs).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_latent_demo.py --steps 12288,24576 \\
        --out benchmarks/latent_demo_budget.json
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rlcreate.scripting import parse_config


@dataclass
class Config:
    steps: str = "12288"
    """Comma-separated env-step budgets (one demo run each)."""
    recipe: str = ""
    """A recipe file for the latent path (empty: the demo's default, ``DEMO_RECIPES['latent']``)."""
    seed: int = 0
    """Training seed (``rlcreate demo --seed``)."""
    n_levels: int = 64
    """Levels per set for the judges (the demo's default)."""
    objective_levels: int = 0
    """Levels per set for the objective and PPO's share (0: the demo's default)."""
    astar_levels: int = -1
    """Levels per set the A* agent plays (-1: the demo's default)."""
    work: str = "runs/bench_latent_demo"
    """Folder for the demo runs (one sub-folder per budget, replaced)."""
    out: str = "benchmarks/latent_demo_budget.json"
    """Output JSON."""


#: (module, attribute) -> phase: the calls run_demo makes, timed where they are looked up
PHASES = {
    ("rlcreate.train.runner", "train_run"): "train",
    ("rlcreate.levels.share", "sample_levels"): "sample_policy_sets",
    ("rlcreate.levels.share", "recipe_scores"): "objective",
    ("rlcreate.levels.demo", "greedy_levels"): "sample_greedy",
    ("rlcreate.levels.gan.ColumnLMLatent", "sample_levels"): "sample_generator",
    ("rlcreate.levels.quality", "quality_table"): "judges_total",
    ("rlcreate.levels.quality", "astar_interleaved"): "astar",
    ("rlcreate.levels.demo", "control_error"): "control",
}


SECONDS: dict = {}  # phase -> seconds of the current run (cleared per run)


def _install_timers() -> None:
    import importlib

    for (mod, attr), phase in PHASES.items():
        owner_path, _, cls = mod.rpartition(".") if mod.endswith("ColumnLMLatent") else (mod, "", "")
        owner = getattr(importlib.import_module(owner_path), cls) if cls else importlib.import_module(mod)
        fn = getattr(owner, attr, None)
        if fn is None or getattr(fn, "_timed", False):
            continue

        def timed(*a, _fn=fn, _phase=phase, **kw):
            t0 = time.perf_counter()
            try:
                return _fn(*a, **kw)
            finally:
                SECONDS[_phase] = SECONDS.get(_phase, 0.0) + time.perf_counter() - t0

        timed._timed = True  # type: ignore[attr-defined]
        setattr(owner, attr, timed)


def _load_sampler(samples: list, stop: threading.Event) -> None:
    while not stop.is_set():
        samples.append(round(os.getloadavg()[0], 2))
        stop.wait(5.0)


def main(cfg: Config) -> dict:
    import torch

    from rlcreate.benchmark import environment, finish, write_json
    from rlcreate.levels.demo import run_demo

    torch.set_num_threads(1)
    env = environment(asdict(cfg))
    result: dict = {"what": "rlcreate demo --generator latent, phases timed, one run per budget", "runs": {}}
    for steps in [int(s) for s in cfg.steps.split(",") if s]:
        SECONDS.clear()
        _install_timers()
        load: list = []
        stop = threading.Event()
        sampler = threading.Thread(target=_load_sampler, args=(load, stop), daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        summary = run_demo(
            Path(cfg.work) / str(steps),
            timesteps=steps,
            progress_bar=False,
            overwrite=True,
            seed=cfg.seed,
            generator="latent",
            recipe_path=cfg.recipe or None,
            n_levels=cfg.n_levels,
            objective_levels=cfg.objective_levels or None,
            astar_levels=None if cfg.astar_levels < 0 else cfg.astar_levels,
        )
        wall = time.perf_counter() - t0
        seconds = dict(SECONDS)
        stop.set()
        sampler.join()
        seconds["judges_without_astar"] = seconds.get("judges_total", 0.0) - seconds.get("astar", 0.0)
        seconds["other"] = wall - sum(v for k, v in seconds.items() if k != "judges_total")  # astar + the rest
        result["runs"][str(steps)] = {
            "wall_seconds_end_to_end": round(wall, 1),
            "phase_seconds": {k: round(v, 1) for k, v in seconds.items()},
            "load_avg_1min_samples": load,
            "summary": summary,
        }
        print(steps, round(wall, 1), {k: round(v, 1) for k, v in seconds.items()}, "load", load[:1], load[-1:],
              flush=True)
        write_json(cfg.out, {**finish(env), **result})
    out = {**finish(env), **result}
    write_json(cfg.out, out)
    print(f"wrote {cfg.out}")
    return out


if __name__ == "__main__":
    main(parse_config(Config))
