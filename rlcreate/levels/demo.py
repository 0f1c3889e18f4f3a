"""The README's main job: steer the column LM toward levels that are new, Mario-like and diverse.

1. Train MaskablePPO on ``rlcreate/MarioTokens-v1`` with ``rlcreate/recipes/mario_tokens.yaml`` for
   its fixed step budget (so the numbers reproduce): the ``lm_prior`` policy starts at the column
   LM's own distribution and a KL-to-LM penalty keeps it near it, while value terms no noise or
   flat floor satisfies (element profile, human-typical LM likelihood), playability, control
   targets and a batch diversity reward steer it.
2. Sample 64 levels from the policy (with randomness on: a greedy policy writes one level type)
   and write 16 of them (txt + png + montage) with their metrics.
3. Put them side by side with the generator's own samples (the column LM, no RL) and held-out
   human levels (DEV blocks) of the same width: element profile against the human band, human-likeness
   AUC (a classifier two-sample test no reward uses), novelty and copies against training windows,
   set diversity, control error per target, the recipe's objective, and the A* agent's verdict
   (Java; all sets interleaved in one run).
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

import numpy as np

from rlcreate.recipe import load_recipe

__all__ = ["run_demo", "demo_recipe_path", "control_error"]


#: ``--generator`` -> the demo's recipe: the column LM's token path, or the latent path (MarioLatent-v1)
DEMO_RECIPES = {"tokens": "mario_tokens.yaml", "latent": "mario_latent.yaml"}


def demo_recipe_path(generator: str = "tokens") -> Path:
    return Path(str(resources.files("rlcreate") / "recipes" / DEMO_RECIPES[generator]))


def level_novelty(levels: list[np.ndarray]) -> np.ndarray:
    from rlcreate.levels.rewards import corpus_neighbours

    nn = corpus_neighbours(16)
    return np.array([nn.level_distance(g) for g in levels])


def control_error(levels: list[np.ndarray], targets: list[dict]) -> dict:
    """Per control target (per 16 columns): mean absolute error and the correlation between the
    requested and the achieved value over the levels."""
    from rlcreate.levels.rewards import TARGET_MEASURES

    out = {}
    names = sorted({k for t in targets for k in t})
    for name in names:
        fn, _ = TARGET_MEASURES[name]
        want = np.array([t[name] for t in targets], np.float64)
        got = np.array([float(fn(g[None])[0]) * 16 / g.shape[1] for g in levels])
        corr = float(np.corrcoef(want, got)[0, 1]) if want.std() > 0 and got.std() > 0 else 0.0
        out[name] = {"mae": float(np.abs(want - got).mean()), "corr": corr,
                     "target_mean": float(want.mean()), "achieved_mean": float(got.mean())}
    return out


def _objective(reward_set_factory, levels: list[np.ndarray], targets: list[dict], batch: int = 16) -> dict:
    """The recipe's composite reward of whole levels (fresh reward state, batches of ``batch`` as
    the env scores them, the given targets): mean and std of the totals, and each term's mean."""
    totals, terms = [], {}
    rs = reward_set_factory()
    for a in range(0, len(levels), batch):
        chunk = levels[a:a + batch]
        t = {k: np.array([x[k] for x in targets[a:a + batch]]) for k in (targets[0] if targets else {})}
        res = rs(list(chunk), progress=1.0, targets=t)
        totals.extend(res.total.tolist())
        for k, v in res.terms.items():
            terms.setdefault(k, []).extend(np.asarray(v, np.float64).tolist())
    return {"mean": float(np.mean(totals)), "std": float(np.std(totals)),
            "terms": {k: float(np.nanmean(v)) for k, v in terms.items()}}


def run_demo(out: Path, minutes: float | None = None, timesteps: int | None = None, progress_bar: bool = True,
             n_levels: int = 64, astar_levels: int = 8, astar_runs: int = 1, generator: str = "tokens") -> dict:
    """Train, sample and compare (see the module docstring); writes ``out/summary.json``,
    ``out/levels.npy`` (the steered levels), ``out/samples/`` and the policy in ``out/model/``.

    ``timesteps``: env steps (default the recipe's ``trainer.total_timesteps``). The budget is a
    step count, never a wall-clock stop, so a run reproduces; ``minutes`` is accepted for the old
    command line and ignored."""
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import VecMonitor

    from rlcreate.assemble import assemble
    from rlcreate.levels.generators.column_lm import ColumnLM
    from rlcreate.levels.corpus import dev_windows
    from rlcreate.levels.quality import quality_table
    from rlcreate.levels.samples import write_levels
    from rlcreate.recipe import build_reward_set
    from rlcreate.sb3 import save_checkpoint
    from rlcreate.train.runner import rollout
    from rlcreate.sb3 import make_algo, trainer_extra, training_callbacks

    recipe = load_recipe(demo_recipe_path(generator))
    latent = generator == "latent"  # residual policies act by their mean; the prior draws give variety
    out.mkdir(parents=True, exist_ok=True)
    recipe.dump(out / "config.yaml")
    budget = int(timesteps or recipe.trainer["total_timesteps"])
    print(f"[1/4] training {recipe.trainer['algo']} on {recipe.env_id} for {budget} env steps "
          f"({recipe.trainer['n_envs']} levels in parallel) ...")
    asm = assemble(recipe)
    model = make_algo(recipe, VecMonitor(asm.make_env()), out / "tb")
    t0 = time.perf_counter()
    model.learn(total_timesteps=budget, callback=CallbackList(training_callbacks(recipe, budget)),
                progress_bar=progress_bar)
    train_s = time.perf_counter() - t0
    save_checkpoint(out / "model", model, asm.reward_set, dict(recipe.trainer["hyper"]), recipe.trainer["algo"],
                    extra=trainer_extra(model))
    print(f"      {model.num_timesteps} env steps in {train_s:.0f} s")

    print(f"[2/4] sampling {n_levels} levels from the policy ...")
    infos = rollout(model, asm.make_env(min(n_levels, 16), recipe.seed + 1, "eval"), n_levels, deterministic=latent)
    steered = [i["level"] for i in infos]
    targets = [i.get("targets", {}) for i in infos]
    np.save(out / "levels.npy", np.stack(steered))
    write_levels([{"level": g, "targets": t} for g, t in zip(steered[:16], targets[:16])], out / "samples")

    print("[3/4] the generator's own samples (no RL) and held-out human (DEV) levels ...")
    width = steered[0].shape[1]
    if latent:  # the latent generator's own samples: uniform latents, segments chained by context
        own = list(asm.make_env(1, 0, "eval").core.gen.sample_levels(n_levels, width // 16, seed=recipe.seed + 2))
    else:
        own = list(ColumnLM.load().generate(width, batch=n_levels, seed=recipe.seed + 2))
    human = list(dev_windows(width, stride=width))  # held-out human levels; TEST is the judge's human side
    print(f"[4/4] judges{' and the A* agent' if astar_levels else ''} ...")
    table = quality_table({"steered": steered, "generator": own, "human_dev": human}, human_split="test",
                          seed=recipe.seed, astar_levels=astar_levels, astar_runs=astar_runs)
    result = {
        "recipe": str(demo_recipe_path(generator).name), "env_id": recipe.env_id, "env_steps": int(model.num_timesteps),
        "train_seconds": round(train_s, 1), "n_levels": n_levels, "width": int(width), "astar_levels": astar_levels,
        "sampling": ("policy mean (deterministic=True) around uniform prior draws; generator: uniform latents"
                     if latent else
                     "policy sampled (deterministic=False); generator: column LM, temperature 1, full vocabulary"),
        **table,
        "control": {"steered": control_error(steered, targets), "generator": control_error(own, targets)},
        "objective": {"steered": _objective(lambda: build_reward_set(recipe), steered, targets),
                      "generator": _objective(lambda: build_reward_set(recipe), own, targets)},
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    _print_summary(result, out)
    return result


def _print_summary(r: dict, out: Path) -> None:
    from rlcreate.levels.quality import format_table

    lines = ["", f"rlcreate demo — {r['env_steps']} env steps ({r['recipe']}) in {r['train_seconds']} s; "
                 f"{r['n_levels']} levels of {r['width']} columns per set; files in {out}/",
             format_table(r)]
    if r.get("astar_levels", 1) and all(g["astar"] is None for g in r["groups"].values()):
        lines.append("A* agent: skipped — java not found (install a Java 17 runtime to get the agent's verdict)")
    for name in ("steered", "generator"):
        c = r["control"][name]
        lines.append(f"control ({name}): " + ", ".join(
            f"{k} MAE {v['mae']:.2f} corr {v['corr']:+.2f} (asked {v['target_mean']:.2f}, got {v['achieved_mean']:.2f} "
            "per 16 cols)" for k, v in c.items()))
    o = r["objective"]
    lines.append(f"recipe objective per level: steered {o['steered']['mean']:.3f} ± {o['steered']['std']:.3f}  vs  "
                 f"generator {o['generator']['mean']:.3f} ± {o['generator']['std']:.3f}")
    lines.append(f"levels: {out}/samples/montage.png, level_*.txt / .png; numbers: {out}/summary.json")
    print("\n".join(lines))
