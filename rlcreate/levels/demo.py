"""The README's main job: steer the column LM toward levels that are new, Mario-like and diverse.

1. Train MaskablePPO on ``rlcreate/MarioTokens-v1`` with ``rlcreate/recipes/mario_tokens.yaml`` for
   its fixed step budget through the same runner as ``rlcreate train`` (checkpoints, reward state,
   ``--resume``): the ``lm_prior`` policy starts at the column LM plus a control prior and a
   KL-to-reference penalty keeps it near it, while value terms (element profile, human-typical LM
   likelihood), playability, control targets and batch diversity steer it.
   The untrained start's side (its calibration, draws, best-of-n, the generator's own samples and
   their A* plays: nothing of it depends on training) runs meanwhile in a second process on the
   core that single-threaded training leaves idle (:func:`start_side`; the same numbers).
2. Calibrate the pipe, ?-block and coin rates of the policy, of its untrained start and of the rule
   (below; with ``--calibrate``, the latent path's greedy picker) to the human training windows' on
   selection requests (:mod:`rlcreate.levels.calibrate`: the column LM's ``element_bias`` offsets;
   the policy's offsets are written into the run's ``config.yaml``, so ``eval`` / ``report`` /
   ``sample`` use them). Sample 256 levels from the policy (with randomness
   on: a greedy policy writes one level type), 256 from its untrained start, best-of-n from that
   start and the hand-built variety rule (the start with the recipe's variety flag as a mask), every
   set answering the same requests; the judges take each set's first 64, the objective all 256.
3. Put them side by side with the generator's own samples (the column LM, no RL) and held-out
   human levels (DEV blocks) of the same width: element profile against the human band, human-likeness
   AUC (a classifier two-sample test no reward uses), novelty and copies against training windows,
   set diversity, control error per target, the recipe's objective with PPO's share (paired CIs),
   and the A* agent's verdict (Java; all sets interleaved in one run).
4. ``rlcreate eval`` on the run folder: judges of fresh samples and the reward-hacking audit along
   the checkpoints (``metrics.json``), which ``rlcreate report`` shows with the side-by-side table.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.errors import UserError
from rlcreate.recipe import load_recipe

__all__ = ["run_demo", "demo_recipe_path", "recipe_file", "TOKENS_BASE", "control_error"]


#: ``--generator`` -> the demo's recipe: the column LM's token path (the base token recipe plus variety
#: inside a level), or the latent path (MarioLatent-v1)
DEMO_RECIPES = {"tokens": "mario_tokens_variety.yaml", "latent": "mario_latent_choice.yaml"}
#: the base token recipe the benches build on (their committed results were made with it)
TOKENS_BASE = "mario_tokens.yaml"


#: per ``--generator``, defaults that differ from :func:`run_demo`'s. The latent path decodes four
#: candidate segments per env step, so its demo trains a quarter of its recipe's budget (24,576 steps:
#: PPO's share over best-of-4 from its start has a 95% CI above 0 in two seeds there, and over its
#: start from 16,384, the budget before the start's side ran beside training; the recipe's full
#: budget with ``--timesteps``), scores 256 levels per set for the objective and PPO's
#: share (64 leave a CI of about +-0.3, wider than that share), leaves the A* agent out (4 levels per
#: set took ~2-4 min and cannot tell sets apart; the objective's playability term solves every level)
#: and the checkpoint audit to ``rlcreate eval``, so that it finishes in ~5 min on a 2-core machine;
#: and it leaves the rate calibration off (``--calibrate`` turns it on): on 192 selection requests the
#: policy, its start and the greedy picker already write pipes, ?-blocks and coins within 4-7% of the
#: human rate, inside the fit's own noise (a small logit offset reorders the inverse CDF, so every draw
#: changes), the fit kept the offsets it started from for the policy and its start, and it cost the
#: demo a minute (BENCHMARKS.md, "Rate calibration for the latent demo")
DEMO_DEFAULTS: dict[str, dict] = {
    "latent": {"timesteps": 24576, "astar_levels": 0, "evaluate": False, "objective_levels": 256, "calibrate": False},
    # the token path scores 256 levels per set for the objective too (the judges take the first 64):
    # over 64 requests PPO's share over best-of-4 had a CI of about +-0.38, over 384 about +-0.13
    # (BENCHMARKS.md, "PPO's share over 384 requests at both budgets"); 192 more levels per set cost
    # seconds, and the start's side draws its share beside training
    "tokens": {"objective_levels": 256},
}


def recipe_file(name: str) -> Path:
    """A recipe shipped in the package (``rlcreate/recipes/NAME``)."""
    return Path(str(resources.files("rlcreate") / "recipes" / name))


def demo_recipe_path(generator: str = "tokens") -> Path:
    return recipe_file(DEMO_RECIPES[generator])


#: per ``--generator``, the env id prefix its recipes must use
DEMO_ENVS = {"tokens": "rlcreate/MarioTokens", "latent": "rlcreate/MarioLatent"}


def _demo_recipe(generator: str, recipe: str | Path | None) -> Path:
    """The demo's recipe: ``recipe`` (a path, or a recipe shipped in the package) checked against
    the generator's env, else :data:`DEMO_RECIPES`."""
    if not recipe:
        return demo_recipe_path(generator)
    path = Path(recipe) if Path(recipe).is_file() else recipe_file(str(recipe))
    if not path.is_file():
        raise UserError(
            f"--recipe {recipe}: no such file; give a recipe path or a shipped recipe name "
            f"(for --generator {generator}, e.g. {DEMO_RECIPES[generator]})"
        )
    env_id = load_recipe(path).env_id
    if not env_id.startswith(DEMO_ENVS[generator]):
        raise UserError(
            f"--recipe {recipe}: its env is {env_id}, not {DEMO_ENVS[generator]}-*; pick a recipe of that env "
            f"or the --generator that matches it"
        )
    return path


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
        out[name] = {
            "mae": float(np.abs(want - got).mean()),
            "corr": corr,
            "target_mean": float(want.mean()),
            "achieved_mean": float(got.mean()),
        }
    return out


def run_demo(
    out: Path,
    timesteps: int | None = None,
    progress_bar: bool = True,
    n_levels: int = 64,
    astar_levels: int | None = None,
    astar_runs: int = 1,
    best_of: int = 4,
    resume: bool = False,
    overwrite: bool = False,
    seed: int | None = None,
    evaluate: bool | None = None,
    generator: str = "tokens",
    calibrate: bool | None = None,
    calibration_levels: int = 192,
    calibration_method: str = "closest",
    recipe_path: str | Path | None = None,
    objective_levels: int | None = None,
    parallel: bool = True,
) -> dict:
    """Train, sample and compare (see the module docstring). ``out`` is an ordinary run folder
    (config.yaml, tb/, checkpoints/, model/, samples/, metrics.json with the audit) plus
    ``summary.json`` (the side-by-side table) and ``levels.npy`` (the steered levels), so
    ``rlcreate eval`` / ``report`` / ``train --resume`` work on it unchanged.

    ``timesteps``: env steps (default the recipe's ``trainer.total_timesteps``). The budget is a
    step count, never a wall-clock stop, so a run reproduces. ``best_of``: n of the best-of-n set drawn from the untrained start
    (0: skip). ``resume`` / ``overwrite``: as ``rlcreate train`` (a folder that holds a run is
    refused otherwise). ``evaluate``: also write ``metrics.json`` (judges + audit along the checkpoints).
    ``calibrate``: fit the element-rate offsets of the policy, of its start and of the rule after
    training on ``calibration_levels`` selection requests per round (default: on for the token path,
    off for the latent path, :data:`DEMO_DEFAULTS`; only envs with the column LM's offsets can), by
    ``calibration_method`` (:func:`~rlcreate.levels.calibrate.calibrate_element_bias`'s ``method``).
    ``recipe_path``: another recipe of the generator's env (a path or a shipped recipe name;
    default :data:`DEMO_RECIPES`). ``parallel``: the untrained start's side
    (:func:`start_side`) in a second process during training (False: in this one, after it; the
    same numbers). ``objective_levels``: levels per set for the recipe's objective, PPO's
    share and the control error (default ``n_levels``; the judges take each set's first
    ``n_levels``). With an env that observes candidates and their term changes, a ``greedy`` set
    (:meth:`~rlcreate.envs.latent_level.LatentLevelCore.greedy_action`, the hand-built rule on the
    same observation) answers the same requests; with a token recipe that has a ``level_variety``
    term, a ``variety_rule`` set does (:func:`~rlcreate.levels.share.variety_rule`, the rule that
    term's observed flag offers, with its own rate fit). ``timesteps``, ``astar_levels``
    (default 8) and ``evaluate`` (default on) left at None take the generator's :data:`DEMO_DEFAULTS`
    first."""
    from rlcreate.assemble import assemble
    from rlcreate.levels.calibrate import calibrate_element_bias, calibration_refusal, write_calibration
    from rlcreate.levels.corpus import dev_windows
    from rlcreate.levels.quality import quality_table
    from rlcreate.levels.share import acts_by_mean, recipe_scores, sample_levels
    from rlcreate.recipe import build_reward_set
    from rlcreate.train.runner import restore, train_run

    out = Path(out)
    defaults = DEMO_DEFAULTS.get(generator, {})
    timesteps = timesteps or defaults.get("timesteps")
    astar_levels = defaults.get("astar_levels", 8) if astar_levels is None else astar_levels
    evaluate = defaults.get("evaluate", True) if evaluate is None else evaluate
    n_obj = objective_levels or max(defaults.get("objective_levels", n_levels), n_levels)
    if n_obj < n_levels:
        raise UserError(f"objective_levels = {n_obj}: must be >= n_levels ({n_levels}); the judges take the first")
    recipe = (
        load_recipe(out / "config.yaml")
        if resume and (out / "config.yaml").is_file()
        else load_recipe(_demo_recipe(generator, recipe_path))
    )
    refusal = calibration_refusal(recipe)
    if calibrate and refusal:
        raise UserError(f"calibrate: {recipe.name!r} has no element-rate offsets ({refusal}); drop --calibrate")
    calibrate = defaults.get("calibrate", refusal is None) if calibrate is None else calibrate
    if resume and (out / "calibration.json").is_file():  # train on with the offsets it trained with
        from rlcreate.levels.calibrate import trained_element_bias

        trained_with = trained_element_bias(out, recipe)
        recipe.env.kwargs.pop("element_bias", None)
        if trained_with:
            recipe.env.kwargs["element_bias"] = trained_with
    latent = acts_by_mean(recipe)  # latent policies act by their mean (a choice: its mode)
    if timesteps:
        recipe.trainer["total_timesteps"] = int(timesteps)
    if seed is not None:
        recipe.seed = int(seed)
    budget = int(recipe.trainer["total_timesteps"])
    print(
        f"[1/5] training {recipe.trainer['algo']} on {recipe.env_id} for {budget} env steps "
        f"({recipe.trainer['n_envs']} levels in parallel; checkpoints in {out}/checkpoints) ..."
    )
    asm = assemble(recipe)
    env_seed = recipe.seed + 1  # every policy set answers the same requests (targets) row by row
    # the untrained start's side (its calibration, draws and best-of-n, the generator's own samples,
    # their A* plays) does not depend on training: a second process does it on the core that
    # single-threaded training leaves idle, with the same seeds and thread count (the same numbers)
    side_args = (
        recipe,
        n_obj,
        n_levels,
        best_of,
        env_seed,
        calibrate,
        calibration_levels,
        calibration_method,
        astar_levels,
        astar_runs,
        latent,
        torch_threads(),
    )
    pool = multiprocessing.get_context("spawn").Pool(1) if parallel else None
    side_job = pool.apply_async(start_side, side_args) if pool else None
    try:
        t0 = time.perf_counter()
        train_run(recipe, out, progress_bar=progress_bar, asm=asm, resume=resume, overwrite=overwrite)
        train_s = time.perf_counter() - t0
        asm, model = restore(out, asm=asm)
        print(f"      {model.num_timesteps} env steps; {train_s:.0f} s")

        calibration: dict = {}
        t0 = time.perf_counter()
        if calibrate:
            print("[2/5] calibrating the pipe, ?-block and coin rates of the policy (and of its start) ...")
            steered_fit = calibrate_element_bias(model, recipe, levels=calibration_levels, method=calibration_method)
        calibrate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        side = side_job.get() if side_job else start_side(*side_args)
        wait_s = time.perf_counter() - t0
    finally:
        if pool:
            pool.terminate()  # done, or training failed: nothing of it is needed then
    if calibrate:
        calibration = {"steered": steered_fit, "untrained_start": side["fit"]}
        for rule in ("variety_rule", "greedy"):
            if side["rule_fits"].get(rule):
                calibration[rule] = side["rule_fits"][rule]
        asm = assemble(write_calibration(out, recipe, calibration, recipe.env.kwargs.get("element_bias")))
        asm.domain.finish_training(model, asm, out)  # samples/ again, from the calibrated sampler
    beside = f" (its start's {max(best_of, 1)} x {n_obj}: sampled beside training)" if parallel else ""
    print(f"{'     ' if calibrate else '[2/5]'} sampling {n_obj} levels from the policy{beside} ...")
    steered, targets = sample_levels(model, asm, n_obj, env_seed, env_seed, deterministic=latent)
    np.save(out / "levels.npy", np.stack(steered[:n_levels]))
    if side["targets"] != targets:
        raise RuntimeError("the untrained start answered other requests than the policy (env seeding changed)")
    score = lambda levels: recipe_scores(lambda: build_reward_set(recipe), levels, targets)  # noqa: E731
    sets = {"steered": steered, **side["sets"]}
    scores = {"steered": score(steered), **side["scores"]}
    scores["generator"] = side["generator_scores"]

    print("[3/5] the generator's own samples (no RL) and held-out human (DEV) levels ...")
    width = steered[0].shape[1]
    own = side["generator"]
    human = list(dev_windows(width, stride=width))  # held-out human levels; TEST is the judge's human side
    print(f"[4/5] judges{' and the A* agent' if astar_levels else ''} ...")
    table = quality_table(
        {**{k: v[:n_levels] for k, v in {**sets, "generator": own}.items()}, "human_dev": human},
        human_split="test",
        seed=recipe.seed,
        astar_levels=astar_levels,
        astar_runs=astar_runs,
    )
    result = {
        "recipe": recipe.name,
        "env_id": recipe.env_id,
        "env_steps": int(model.num_timesteps),
        "seed": recipe.seed,
        "train_seconds": round(train_s, 1),
        "calibrate_seconds": round(calibrate_s, 1),
        "start_side_seconds": side["seconds"],
        "start_side_wait_seconds": round(wait_s, 1),
        "n_levels": n_levels,
        **({"objective_levels": n_obj} if n_obj != n_levels else {}),
        "width": int(width),
        "astar_levels": astar_levels,
        "best_of": best_of,
        "policy": model.rlcreate_source,
        "sampling": (
            "policies act by their mean (the prior draws z0 give the variety; best-of-n: the start's mean draw "
            "plus n - 1 draws sampling its residuals)"
            if latent
            else "policies sampled (deterministic=False)"
        )
        + ", every set answering the same requests; best-of-n: n draws from the untrained start, the one the "
        "recipe's reward scores highest kept per request; generator: "
        + ("the env's latent generator, uniform latents" if latent else "column LM, temperature 1, full vocabulary")
        + (
            "; greedy: a hand-built picker on the policy's observation (the candidate that keeps the level "
            "crossable, then the largest observed sum of term changes), no learning"
            if "greedy" in sets
            else ""
        )
        + (
            "; variety_rule: the untrained start that never takes an offer the recipe's variety term flags "
            "as keeping a repeat of an earlier segment alive (a hand-built rule on the policy's observation), "
            "its own rate fit, no learning"
            if "variety_rule" in sets
            else ""
        ),
        **table,
        "calibration": calibration,
        "control": {k: control_error(v, targets) for k, v in {**sets, "generator": own}.items()},
        "objective": {k: _summary(v) for k, v in scores.items()},
        "share": ppo_share(scores),
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    if evaluate:
        print("[5/5] rlcreate eval: judges of fresh samples and the audit along the checkpoints ...")
        from rlcreate.evaluation.report import evaluate_run

        evaluate_run(
            out,
            judges=[j for j in (recipe.judges or []) if astar_levels or j != "astar"],
            astar_runs=astar_runs,
            astar_levels=astar_levels or None,  # the table's first steered levels: their plays are cached
            audit_levels=8,
            audit_modes=("stochastic",),
        )  # sampled policy
    else:
        print(f"[5/5] skipped (judges along the checkpoints): rlcreate eval {out}")
    _print_summary(result, out)
    return result


def greedy_levels(asm: Any, n: int, env_seed: int) -> tuple[list[np.ndarray], list[dict]]:
    """``n`` levels of the env's hand-built candidate picker, answering the requests of ``env_seed``
    as :func:`rlcreate.levels.share.sample_levels` does for a policy (progress 1)."""
    from rlcreate.levels.share import GreedyPicker, sample_levels

    return sample_levels(GreedyPicker(asm), asm, n, env_seed, env_seed, deterministic=True)


def torch_threads() -> int:
    """This process's torch thread count (the start's side uses the same: the same numbers)."""
    import torch

    return torch.get_num_threads()


def start_side(
    recipe: Any,
    n_obj: int,
    n_levels: int,
    best_of: int,
    env_seed: int,
    calibrate: bool,
    calibration_levels: int,
    calibration_method: str,
    astar_levels: int,
    astar_runs: int,
    latent: bool,
    threads: int,
) -> dict:
    """What the demo's table needs that does not depend on training: the untrained start's rate
    calibration (``fit``, None without ``calibrate``), its ``max(best_of, 1)`` draws answering the
    requests of ``env_seed`` and best-of-n from them (``sets``, ``scores``, ``targets``), the
    generator's own samples (``generator``, ``generator_scores``); with ``astar_levels`` the A*
    agent's plays of the first levels of those sets and of the held-out human levels, which it
    leaves in the A* cache for the table's interleaved run. :func:`run_demo` runs it in a second
    process during training; ``threads``: the torch threads of the first (the same numbers)."""
    import torch
    import transformers

    from rlcreate.assemble import assemble
    from rlcreate.levels.calibrate import calibrate_element_bias, with_element_bias
    from rlcreate.levels.corpus import dev_windows
    from rlcreate.levels.generators.column_lm import ColumnLM
    from rlcreate.levels.quality import astar_interleaved
    from rlcreate.levels.share import (
        GreedyPicker,
        best_of_n,
        has_greedy_picker,
        recipe_scores,
        sample_levels,
        untrained_policy,
        variety_rule,
    )
    from rlcreate.recipe import build_reward_set

    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    transformers.utils.logging.disable_progress_bar()  # the training's progress bar owns the terminal

    def fitted(r: Any, policy: Any = untrained_policy) -> tuple[dict | None, Any]:
        """``policy``'s rate fit on recipe ``r`` (None without ``calibrate``) and the assembly that
        samples with it."""
        fit = (
            calibrate_element_bias(policy, r, levels=calibration_levels, method=calibration_method)
            if calibrate
            else None
        )
        return fit, assemble(with_element_bias(r, fit["element_bias"]) if fit else r)

    fit, asm = fitted(recipe)
    start = untrained_policy(asm)
    # a latent policy acting by its mean writes the same levels for the same requests (the env's seed
    # fixes the prior draws z0 too), so its further draws sample the start's residuals (N(0, std^2))
    draws = [
        sample_levels(start, asm, n_obj, env_seed, env_seed + 100 + k, deterministic=latent and k == 0)
        for k in range(max(best_of, 1))
    ]
    targets = draws[0][1]
    if any(t != targets for _, t in draws):
        raise RuntimeError("the untrained start's draws answered other requests (env seeding changed)")
    score = lambda levels: recipe_scores(lambda: build_reward_set(recipe), levels, targets)  # noqa: E731
    sets = {"untrained_start": draws[0][0]}
    scores = {"untrained_start": score(draws[0][0])}
    if best_of > 1:
        cand_scores = [scores["untrained_start"]] + [score(d[0]) for d in draws[1:]]
        sets[f"best_of_{best_of}"], _ = best_of_n([d[0] for d in draws], cand_scores)
        scores[f"best_of_{best_of}"] = score(sets[f"best_of_{best_of}"])
    # the hand-built rule a policy trained on the recipe's variety term could have learnt from its
    # observed flag (never keep a repeat of an earlier segment alive): the start plus that mask, with
    # its own rate fit, drawn with the start's first policy seed (the mask is the only difference)
    ruled = None if latent else variety_rule(recipe)
    rule_fits: dict = {}
    if ruled is not None:
        rule_fits["variety_rule"], rule_asm = fitted(ruled)
        sets["variety_rule"], rule_targets = sample_levels(
            untrained_policy(rule_asm), rule_asm, n_obj, env_seed, env_seed + 100
        )
        if rule_targets != targets:
            raise RuntimeError("the variety rule answered other requests than the start (env seeding changed)")
        scores["variety_rule"] = score(sets["variety_rule"])
    if latent and has_greedy_picker(asm):  # the greedy rule reads the candidates' term changes
        rule_fits["greedy"], greedy_asm = fitted(recipe, GreedyPicker)  # its own rate fit, like the start's
        sets["greedy"], greedy_targets = greedy_levels(greedy_asm, n_obj, env_seed)
        if greedy_targets != targets:
            raise RuntimeError("the greedy picker answered other requests than the start (env seeding changed)")
        scores["greedy"] = score(sets["greedy"])
    width = draws[0][0][0].shape[1]
    if latent:  # the latent generator's own samples: uniform latents, segments chained by context
        own = list(asm.make_env(1, 0, "eval").core.gen.sample_levels(n_obj, width // 16, seed=recipe.seed + 2))
    else:
        own = list(ColumnLM.load().generate(width, batch=n_obj, seed=recipe.seed + 2))
    if astar_levels > 0:  # one worker: the other core trains
        groups = {k: v[:n_levels] for k, v in {**sets, "generator": own}.items()}
        astar_interleaved({**groups, "human_dev": list(dev_windows(width, stride=width))}, astar_levels, astar_runs, 1)
    return {
        "fit": fit,
        "rule_fits": rule_fits,
        "sets": sets,
        "scores": scores,
        "targets": targets,
        "generator": own,
        "generator_scores": score(own),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _summary(scores: np.ndarray) -> dict:
    from rlcreate.levels.share import mean_ci

    m = mean_ci(scores)
    return {"mean": m["mean"], "std": float(np.std(scores)), "ci": m["ci"]}


def ppo_share(scores: dict[str, np.ndarray]) -> dict:
    """The steered policy's recipe objective minus each other set's, paired per request, with CIs."""
    from rlcreate.levels.share import paired_diff

    return {
        f"steered_minus_{k}": paired_diff(scores["steered"], v)
        for k, v in scores.items()
        if k != "steered" and k != "generator"
    }


def _print_summary(r: dict, out: Path) -> None:
    from rlcreate.levels.quality import format_table

    lines = [
        "",
        f"rlcreate demo — {r['env_steps']} env steps ({r['recipe']}) in {r['train_seconds']} s"
        + (f" (calibration {r['calibrate_seconds']} s)" if r.get("calibration") else "")
        + "; "
        f"{r['n_levels']} levels of {r['width']} columns per set"
        + (f" (control and the objective: {r['objective_levels']})" if r.get("objective_levels") else "")
        + f"; files in {out}/",
        format_table(r),
    ]
    if r.get("astar_levels", 1) and all(g["astar"] is None for g in r["groups"].values()):
        lines.append("A* agent: skipped — java not found (install a Java 17 runtime to get the agent's verdict)")
    elif not r.get("astar_levels", 1):
        lines.append("A* agent: not played (--astar-levels N plays N levels per set)")
    for name, c in r["control"].items():
        lines.append(
            f"control ({name}): " + ", ".join(f"{k} MAE {v['mae']:.2f} corr {v['corr']:+.2f}" for k, v in c.items())
        )
    for name, c in (r.get("calibration") or {}).items():
        chosen = c["rounds"][c["chosen_round"]]
        lines.append(
            f"calibrated rates ({name}, {c['levels']} selection levels): offsets "
            + ", ".join(f"{e} {b:+.2f}" for e, b in c["element_bias"].items())
            + " -> "
            + ", ".join(f"{e} {chosen['means'][e]:.2f} (human {c['target'][e]:.2f})" for e in c["element_bias"])
        )
    o = r["objective"]
    lines.append(
        "recipe objective per level: "
        + ", ".join(f"{k} {v['mean']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]" for k, v in o.items())
    )
    lines.append(
        "PPO's share (steered minus, paired per request, 95% CI): "
        + ", ".join(
            f"{k.removeprefix('steered_minus_')} {v['mean']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}]"
            for k, v in r["share"].items()
        )
    )
    lines.append(
        f"levels: {out}/samples/, {out}/levels.npy; numbers: {out}/summary.json; "
        f"report: rlcreate report {out} --out {out}/report"
    )
    print("\n".join(lines))
