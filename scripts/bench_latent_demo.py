"""Benchmark: where the time of ``rlcreate demo`` goes (``--generator latent`` by default), per step budget.

Runs the demo's own code (:func:`rlcreate.levels.demo.run_demo`) once per budget in
``--work``/STEPS, with the library calls it makes wrapped in timers: training, calibration,
sampling the policy sets, the recipe's objective, the generator's own samples, the judges, the A*
agent, ``rlcreate eval``. Writes per budget the wall time end to end, each phase's seconds, the
1-minute load sampled every 5 s during the run, the A* agent's plays (``--cold_cache 1``: each run
starts with no cached plays, as on a fresh machine, and the plays it made are counted from its
cache: how many, how many ran out of time, their seconds) and the demo's own summary (its table,
PPO's share with CIs).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_latent_demo.py --steps 12288,24576 \\
        --out benchmarks/latent_demo_budget.json
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_latent_demo.py --generator tokens --steps 0 \\
        --cold_cache 1 --out benchmarks/demo_time.json   # the token demo at its recipe's budget
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
    """Comma-separated env-step budgets (one demo run each; 0: the demo's default budget)."""
    generator: str = "latent"
    """The demo's ``--generator``: latent or tokens."""
    recipe: str = ""
    """A recipe file of the generator's env (empty: the demo's default, ``DEMO_RECIPES``)."""
    cold_cache: int = 0
    """1: every run starts with an empty A* results cache (``$RLCREATE_CACHE`` set to a fresh folder
    holding the current cache's other files), and its plays are counted."""
    seed: int = 0
    """Training seed (``rlcreate demo --seed``)."""
    n_levels: int = 64
    """Levels per set for the judges (the demo's default)."""
    objective_levels: int = 0
    """Levels per set for the objective and PPO's share (0: the demo's default)."""
    astar_levels: int = -1
    """Levels per set the A* agent plays (-1: the demo's default)."""
    parallel: int = 1
    """1: as the demo runs (its start's side in a second process during training: its calls are not
    timed here, the wait for it is ``start_side_wait``); 0: everything in this process, timed."""
    work: str = "runs/bench_latent_demo"
    """Folder for the demo runs (one sub-folder per budget, replaced)."""
    out: str = "benchmarks/latent_demo_budget.json"
    """Output JSON."""


#: (module, attribute) -> phase: the calls run_demo makes, timed where they are looked up
PHASES = {
    ("rlcreate.train.runner", "train_run"): "train",
    ("rlcreate.levels.calibrate", "calibrate_element_bias"): "calibrate",
    ("rlcreate.levels.share", "sample_levels"): "sample_policy_sets",
    ("rlcreate.levels.share", "recipe_scores"): "objective",
    ("rlcreate.levels.demo", "greedy_levels"): "sample_greedy",
    ("rlcreate.levels.gan.ColumnLMLatent", "sample_levels"): "sample_generator",
    ("rlcreate.levels.quality", "quality_table"): "judges_total",
    ("rlcreate.levels.quality", "astar_interleaved"): "astar",
    ("rlcreate.levels.demo", "control_error"): "control",
    ("rlcreate.evaluation.report", "evaluate_run"): "evaluate",
}


def _cold_cache(folder: Path) -> Path:
    """A fresh cache folder with the current cache's files except the A* results (the compiled
    runner and models stay: only plays start cold)."""
    import shutil

    from rlcreate.levels.astar import cache_dir

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    src = cache_dir()
    for item in src.iterdir() if src.is_dir() else []:
        if item.name != "astar_results.json":
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, folder / item.name)
    return folder


def _plays(folder: Path) -> dict:
    """The A* plays a run with a cold cache made: count, how many ran out of time, their seconds."""
    import json

    f = folder / "astar_results.json"
    plays = [r for v in (json.loads(f.read_text()) if f.is_file() else {}).values() for r in v]
    return {
        "plays": len(plays),
        "time_outs": sum(r["status"] == "TIME_OUT" for r in plays),
        "play_seconds": round(sum(r["runtime_s"] for r in plays), 1),
        "time_out_seconds": round(sum(r["runtime_s"] for r in plays if r["status"] == "TIME_OUT"), 1),
    }


SECONDS: dict = {}  # phase -> seconds of the current run (cleared per run)
#: phases whose inner calls (calibration and the greedy picker sample levels; eval judges) count as theirs only
OUTER = {"calibrate", "evaluate", "sample_greedy"}
_INSIDE: list = []  # the outer phases running now


def _install_timers() -> None:
    import importlib

    for (mod, attr), phase in PHASES.items():
        owner_path, _, cls = mod.rpartition(".") if mod.endswith("ColumnLMLatent") else (mod, "", "")
        owner = getattr(importlib.import_module(owner_path), cls) if cls else importlib.import_module(mod)
        fn = getattr(owner, attr, None)
        if fn is None or getattr(fn, "_timed", False):
            continue

        def timed(*a, _fn=fn, _phase=phase, **kw):
            if _INSIDE and _phase not in OUTER:
                return _fn(*a, **kw)
            t0 = time.perf_counter()
            _INSIDE.extend([_phase] if _phase in OUTER else [])
            try:
                return _fn(*a, **kw)
            finally:
                if _phase in OUTER:
                    _INSIDE.pop()
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
    result: dict = {"what": f"rlcreate demo --generator {cfg.generator}, phases timed, one run per budget", "runs": {}}
    if cfg.generator not in ("latent", "tokens"):
        raise SystemExit(f"error: --generator {cfg.generator!r}: use latent or tokens")
    for steps in [int(s) for s in cfg.steps.split(",") if s]:
        SECONDS.clear()
        _install_timers()
        cache = _cold_cache(Path(cfg.work) / f"{steps}_astar_cache") if cfg.cold_cache else None
        if cache is not None:
            os.environ["RLCREATE_CACHE"] = str(cache)
        load: list = []
        stop = threading.Event()
        sampler = threading.Thread(target=_load_sampler, args=(load, stop), daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        summary = run_demo(
            Path(cfg.work) / str(steps),
            timesteps=steps or None,
            progress_bar=False,
            overwrite=True,
            seed=cfg.seed,
            generator=cfg.generator,
            recipe_path=cfg.recipe or None,
            n_levels=cfg.n_levels,
            objective_levels=cfg.objective_levels or None,
            astar_levels=None if cfg.astar_levels < 0 else cfg.astar_levels,
            parallel=bool(cfg.parallel),
        )
        wall = time.perf_counter() - t0
        seconds = dict(SECONDS)
        if cfg.parallel:
            seconds["start_side_wait"] = summary["start_side_wait_seconds"]
        stop.set()
        sampler.join()
        seconds["judges_without_astar"] = seconds.get("judges_total", 0.0) - seconds.get("astar", 0.0)
        seconds["other"] = wall - sum(v for k, v in seconds.items() if k != "judges_total")  # astar + the rest
        result["runs"][str(steps)] = {
            "wall_seconds_end_to_end": round(wall, 1),
            "phase_seconds": {k: round(v, 1) for k, v in seconds.items()},
            "load_avg_1min_samples": load,
            **({"astar_plays": _plays(cache)} if cache is not None else {}),
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
