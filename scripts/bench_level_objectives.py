"""Benchmark: designer objectives learned from reward alone — PPO vs its untrained start vs best-of-n.

For each objective of :mod:`rlcreate.levels.objectives` (difficulty ramp, athletic style brief,
ground-height sketch, rhythm) the demo recipe (``mario_tokens.yaml``: profile, LM typicality, set
profile, diversity, playability and control terms) gets one more term, the objective, with weight
``weight``; MaskablePPO trains it from the same start (the column LM plus its control prior) for
``timesteps`` env steps through the same runner as ``rlcreate train`` (``runs/objectives/<name>``;
an existing run resumes). The objective and the profile terms are paid per 16-column segment as it
closes (``shaping``: potential-based, the env's ``shape_terms``; every level's return is unchanged):
paid only at the level's end, GAE (lambda 0.95) hands the first ~70 columns under 5% of it.
``--offer_structure 1`` lets the policy see, per offered column, what taking it does to the
objective's own measure (the env's ``offer_objective``, read by the offer head's
``offer_structure``); ``--profile_weight`` sets the element-profile term's weight. Then, every set answering the same 64 requests (control targets):

- ``start`` / ``best_of_1``: the untrained start, one draw per request (equal inference cost);
- ``best_of_4`` / ``best_of_8``: n draws from the start, the one the objective's recipe scores
  highest kept per request (the start draws are shared by all objectives: the start policy does not
  depend on the reward);
- ``ppo``: one draw per request from the trained policy.

Each set gets the objective's reward (the training signal), its held-out measure (different code,
:mod:`rlcreate.levels.objective_judges`), human-likeness AUC against the TEST split and the element
profile against the human band. ``ci_vs_start`` is the paired (per request) 95% bootstrap CI of
PPO minus start on the objective's reward; ``heldout_ci_vs_start`` the same on the held-out measure.

    OMP_NUM_THREADS=1 python scripts/bench_level_objectives.py \
        --objectives difficulty_ramp,style_athletic,sketch_match,rhythm,level_variety --timesteps 131072 \
        --shaping objective,profile,set_profile --out benchmarks/level_objectives.json
    # with per-offer objective features:
    OMP_NUM_THREADS=1 python scripts/bench_level_objectives.py --offer_structure 1 \
        --runs runs/obj_pilot --out benchmarks/level_objectives_offers.json
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
    objectives: str = "difficulty_ramp,style_athletic,sketch_match,rhythm,level_variety"
    """comma-separated objective reward names (rlcreate.levels.objectives)"""
    timesteps: int = 131072
    """PPO env steps per objective (the demo trains 300k; this shared 2-core machine affords less)"""
    learning_rate: float = 0.001
    """PPO learning rate (the demo's 0.0003 moves too little in this budget)"""
    weight: float = 8.0
    """weight of the objective term next to the demo recipe's terms (their weighted sum is ~8.5)"""
    shaping: str = "objective,profile,set_profile"
    """comma-separated recipe terms paid per 16-column segment as it closes (potential-based
    shaping, env ``shape_terms``; returns unchanged); "" = every term only at the level's end"""
    offer_structure: int = 0
    """1: the env observes, per offered column, what taking it does to the objective's own measure
    (``offer_objective``) and the lm_prior policy's offer head scores it (``offer_structure``); the
    start is unchanged (the head starts at zero)"""
    profile_offers: int = 1
    """1: keep the demo recipe's per-offer element-profile features (its ``offer_objective``); 0: drop
    them (the recipe before they were added)"""
    profile_weight: float = 0.0
    """> 0: the weight of the recipe's element-profile term (the demo's is 2.0); 0 keeps the demo's"""
    set_profile_weight: float = 0.0
    """> 0: the weight of the recipe's set-profile term (the batch's element means vs human; the
    demo's is 4.0); 0 keeps the demo's"""
    element_bias: str = ""
    """logit offsets of the env's offers, e.g. "coins=0.3,pipes=0.2,question_blocks=0.08" (the env's
    ``element_bias``: a start calibrated to the training windows' element rates); "" = none"""
    calibrate: int = 0
    """1: after training, fit the pipe, ?-block and coin rates (the env's ``element_bias``) of each
    PPO policy and of the start to the human training windows' on selection requests
    (:mod:`rlcreate.levels.calibrate`, as ``rlcreate demo`` does) and judge every set calibrated:
    the start's draws and best-of-n with the start's offsets, each PPO set with its own"""
    calibration_levels: int = 192
    """selection levels per calibration round"""
    calibration_method: str = "closest"
    """with --calibrate: "closest" (damped steps, the measured round closest to the target) or "fit"
    (a line fitted to the policy's response, its fitted offsets measured last)"""
    variety_cap: str = "1"
    """level_variety's ``cap``: pay variety only up to this level, a number in (0, 1] or "human"
    (0.76, the human training windows' mean: ``objectives.HUMAN_VARIETY``); "1" = uncapped, the
    reward of every run before the cap"""
    variety_max_solid: str = "1"
    """level_variety's ``max_solid``: a segment with a larger share of solid tiles is no novelty, a
    number in (0, 1] or "human" (0.45, the 99th percentile of human training segments:
    ``objectives.HUMAN_SOLID_SHARE``); "1" = no gate, the reward of every run before it"""
    rhythm_period: str = "16"
    """rhythm's ``period``: columns per beat window, a whole number or "human" (14, the human training
    windows' tempo: ``objectives.HUMAN_BEAT_PERIOD``); "16" = the reward of every run before it. The
    held-out regularity is measured at the same period"""
    gae_lambda: float = 0.95
    """PPO's GAE lambda (1.0: Monte Carlo returns, end rewards reach the first columns undiscounted)"""
    net_arch: str = ""
    """the policy's and value's MLP layers, comma-separated units, e.g. 64,64 (the demo's since "A
    smaller network"); "" = the base recipe's (128,128, every run before it)"""
    n: int = 64
    """requests (levels) per set"""
    runs: str = "runs/objectives"
    """folder of the per-objective training runs"""
    train: int = 1
    """1: train (or resume) each objective's run first; 0: evaluate existing runs only"""
    seed: int = 0
    """training seed of every objective's policy; the requests and the start's draws use seed + 1"""
    request_seed: int = -1
    """>= 0: draw the requests and the start's draws with this env seed instead of seed + 1 (another
    set of requests for the same policies: how much a row moves with the requests alone)"""
    out: str = "benchmarks/level_objectives.json"
    """where the JSON result is written"""


def objective_args(name: str, cfg: Config) -> dict:
    """The objective reward's arguments the bench sets (the recipe term's ``args``): level_variety's
    ``cap`` and ``max_solid`` where not 1, rhythm's ``period`` where not 16; {} otherwise, the
    reward's defaults."""
    if name == "rhythm":
        return {} if cfg.rhythm_period == "16" else {"period": rhythm_period(cfg)}
    if name != "level_variety":
        return {}
    out: dict = {}
    for key, flag, value in (
        ("cap", "variety_cap", cfg.variety_cap),
        ("max_solid", "variety_max_solid", cfg.variety_max_solid),
    ):
        if value in ("1", "1.0"):
            continue
        if value == "human":
            out[key] = "human"
            continue
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = -1.0
        if not 0 < out[key] <= 1:
            raise SystemExit(f"error: --{flag} {value!r}: write a number in (0, 1] or human")
    return out


def rhythm_period(cfg: Config) -> int | str:
    """``--rhythm_period`` as the reward takes it ("human" or a whole number of columns)."""
    from rlcreate.levels.objectives import rhythm_period as check

    value: int | str = int(cfg.rhythm_period) if cfg.rhythm_period.isdigit() else cfg.rhythm_period
    try:
        check(value)
    except ValueError:
        raise SystemExit(
            f"error: --rhythm_period {cfg.rhythm_period!r}: write a whole number of columns from 2 to 128, or human"
        ) from None
    return value


def net_arch(text: str) -> list[int]:
    """``--net_arch`` -> layer sizes (whole numbers in the recipe check's range, 1..MAX_LAYER_UNITS)."""
    from rlcreate.sb3.algo import MAX_LAYER_UNITS

    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and 1 <= int(p) <= MAX_LAYER_UNITS for p in parts):
        raise SystemExit(
            f"error: --net_arch {text!r}: write comma-separated layer sizes from 1 to {MAX_LAYER_UNITS}, e.g. 64,64"
        )
    return [int(p) for p in parts]


def heldout_args(name: str, cfg: Config) -> dict:
    """The held-out measure's arguments: rhythm's regularity at the reward's period."""
    if name != "rhythm":
        return {}
    from rlcreate.levels.objectives import rhythm_period as check

    return {"period": check(rhythm_period(cfg))}


def objective_recipe(name: str, cfg: Config):
    from rlcreate.levels.demo import TOKENS_BASE, recipe_file
    from rlcreate.recipe import load_recipe, parse_recipe

    d = load_recipe(recipe_file(TOKENS_BASE)).to_dict()
    d["name"] = f"objective-{name}"
    d["rewards"]["objective"] = {"reward": name, "weight": cfg.weight}
    if objective_args(name, cfg):
        d["rewards"]["objective"]["args"] = objective_args(name, cfg)
    d["trainer"]["total_timesteps"] = cfg.timesteps
    d["trainer"]["hyper"]["n_steps"] = 128  # one level per env per rollout: more updates in a small budget
    d["trainer"]["hyper"]["batch_size"] = 256
    d["trainer"]["hyper"]["learning_rate"] = cfg.learning_rate
    d["trainer"]["hyper"]["gae_lambda"] = cfg.gae_lambda
    terms = [t.strip() for t in cfg.shaping.split(",") if t.strip()]
    if terms:
        d["env"]["kwargs"]["shape_terms"] = terms
    # per-offer features: the demo recipe's (the element profile's), with the objective's in front
    kw, pk = d["env"]["kwargs"], d["trainer"]["hyper"]["policy_kwargs"]
    seen = kw.pop("offer_objective", None)
    seen = ([seen] if isinstance(seen, str) else list(seen or [])) if cfg.profile_offers else []
    if cfg.offer_structure:
        seen = ["objective", *seen]
    if seen:
        from rlcreate.rewards.registry import get_reward

        kw["offer_objective"] = seen
        kinds = {"objective": name, **{t: v.get("reward", t) for t, v in d["rewards"].items()}}
        pk["offer_structure"] = sum(get_reward(kinds[t]).offer_features().size for t in seen)
    else:
        pk.pop("offer_structure", None)
    if cfg.net_arch:
        pk["net_arch"] = net_arch(cfg.net_arch)
    if cfg.profile_weight > 0:
        d["rewards"]["profile"]["weight"] = cfg.profile_weight
    if cfg.element_bias:
        try:
            bias = {k.strip(): float(v) for k, v in (p.split("=") for p in cfg.element_bias.split(","))}
        except ValueError:
            raise SystemExit(
                f"error: --element_bias {cfg.element_bias!r}: write name=offset pairs, e.g. coins=0.3,pipes=0.2"
            ) from None
        d["env"]["kwargs"]["element_bias"] = bias
    if cfg.set_profile_weight > 0:
        d["rewards"]["set_profile"]["weight"] = cfg.set_profile_weight
    d["seed"] = cfg.seed
    return parse_recipe(d, f"<objective {name}>")


def machine() -> dict:
    import sklearn
    import stable_baselines3
    import torch

    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "sb3": stable_baselines3.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "load_avg_1min": os.getloadavg()[0],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def mass(levels) -> dict:
    """Solid mass of a set of 128-column levels, where tile-distance variety can be bought: the
    solid-tile share, the first 16-column segment's (a tall opening wall), the share of segments
    more solid than 99% of human segments (``objectives.HUMAN_SOLID_SHARE``) and of columns with a
    solid tile in the top four rows (a ceiling)."""
    from rlcreate.levels import tiles as T
    from rlcreate.levels.objectives import HUMAN_SOLID_SHARE

    solid = T.IS_SOLID[np.stack(levels).astype(np.intp)]
    n, h, w = solid.shape
    per_segment = solid[:, :, : w // 16 * 16].reshape(n, h, w // 16, 16).mean(axis=(1, 3))
    return {
        "solid_share": float(solid.mean()),
        "first_segment_solid": float(per_segment[:, 0].mean()),
        "heavy_segments": float((per_segment > HUMAN_SOLID_SHARE).mean()),
        "ceiling_columns": float(solid[:, :4].any(axis=1).mean()),
    }


def judge_set(levels: list, obj_scores: np.ndarray, heldout: np.ndarray, human) -> dict:
    from rlcreate.levels.quality import human_likeness, profile_report

    prof = profile_report(levels)
    return {
        "mean": float(np.mean(obj_scores)),
        "heldout": float(np.mean(heldout)),
        "auc": float(human_likeness(levels, human=human)["auc"]),
        "profile_in_band": int(prof["inside"]),
        **mass(levels),
        "profile": {
            e: [round(v["mean"], 2), round(v["low"], 2), round(v["high"], 2)] for e, v in prof["elements"].items()
        },
    }


def main(cfg: Config) -> dict:
    from rlcreate.assemble import assemble
    from rlcreate.levels.calibrate import calibrate_element_bias, with_element_bias
    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.objective_judges import HELDOUT
    from rlcreate.levels.quality import human_reference_segments, human_sets_inside
    from rlcreate.levels.share import best_of_n, paired_diff, recipe_scores, sample_levels, untrained_policy
    from rlcreate.recipe import build_reward_set
    from rlcreate.rewards.registry import get_reward
    from rlcreate.train.runner import restore, train_run

    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    names = [s.strip() for s in cfg.objectives.split(",") if s.strip()]
    train_s = {}
    if cfg.train:
        for name in names:
            recipe, run = objective_recipe(name, cfg), Path(cfg.runs) / name
            t = time.perf_counter()
            print(f"training {name}: {cfg.timesteps} env steps into {run}", flush=True)
            train_run(recipe, run, progress_bar=False, resume=(run / "config.yaml").is_file())
            train_s[name] = round(time.perf_counter() - t, 1)

    calibration: dict = {}
    if cfg.calibration_method not in ("closest", "fit"):
        raise SystemExit(f"error: --calibration_method {cfg.calibration_method!r}: write closest or fit")
    fit_args = {"levels": cfg.calibration_levels, "method": cfg.calibration_method}
    base_recipe = objective_recipe(names[0], cfg)
    if cfg.calibrate:  # the start does not depend on the objective: one fit serves every objective's start
        print("calibrating the start's element rates ...", flush=True)
        calibration["start"] = calibrate_element_bias(untrained_policy, base_recipe, **fit_args)
        base_recipe = with_element_bias(base_recipe, calibration["start"]["element_bias"])
    base = assemble(base_recipe)
    env_seed = cfg.request_seed if cfg.request_seed >= 0 else cfg.seed + 1
    human = human_reference_segments("test")
    start = untrained_policy(base)
    print(f"8 start draws of {cfg.n} levels ...", flush=True)
    draws = [sample_levels(start, base, cfg.n, env_seed, env_seed + 100 + k) for k in range(8)]
    targets = draws[0][1]
    assert all(t == targets for _, t in draws), "start draws answered different requests"
    result: dict = {
        "config": asdict(cfg),
        "machine": {**machine(), "load_avg_1min_at_start": load0},
        # how often sets of cfg.n random human windows clear the profile band: the bar for profile_in_band
        "human_sets_inside": human_sets_inside(128, cfg.n),
        # the same for sets of human TRAINING windows: the bar for a generator calibrated to their rates
        "human_train_sets_inside": human_sets_inside(128, cfg.n, source="train"),
        # the human TRAINING windows' solid mass, the reference for each set's (judge_set)
        "human_train_mass": mass(list(training_windows(128, stride=1))),
        "calibration": calibration,
        "train_seconds": train_s,
        "objectives": {},
    }
    for name in names:
        recipe = objective_recipe(name, cfg)
        asm, model = restore(Path(cfg.runs) / name, asm=assemble(recipe))
        if cfg.calibrate:
            print(f"calibrating {name}'s element rates ...", flush=True)
            calibration[name] = calibrate_element_bias(model, recipe, **fit_args)
            asm = assemble(with_element_bias(recipe, calibration[name]["element_bias"]))
        ppo, t = sample_levels(model, asm, cfg.n, env_seed, env_seed)
        assert t == targets, "the policy answered different requests"
        reward = get_reward(name, **objective_args(name, cfg))
        obj = lambda levels, reward=reward: np.asarray(reward(list(levels)), np.float64)  # noqa: E731
        select = [recipe_scores(lambda recipe=recipe: build_reward_set(recipe), d[0], targets) for d in draws]
        sets = {"start": draws[0][0]}
        for n in (1, 4, 8):
            sets[f"best_of_{n}"], _ = best_of_n([d[0] for d in draws[:n]], select[:n])
        sets["ppo"] = ppo
        scores = {k: obj(v) for k, v in sets.items()}
        held = {k: HELDOUT[name](v, **heldout_args(name, cfg)) for k, v in sets.items()}
        row = {k: judge_set(v, scores[k], held[k], human) for k, v in sets.items()}
        if objective_args(name, cfg):  # the reward with its defaults too (the uncapped variety)
            for k, v in sets.items():
                row[k]["mean_default_args"] = float(np.mean(get_reward(name)(list(v))))
        row["ppo"]["ci_vs_start"] = paired_diff(scores["ppo"], scores["start"])["ci"]
        row["ppo"]["heldout_ci_vs_start"] = paired_diff(held["ppo"], held["start"])["ci"]
        row["ppo"]["vs_best_of_4"] = paired_diff(scores["ppo"], scores["best_of_4"])
        row["ppo"]["policy"] = model.rlcreate_source
        row["auc"], row["profile_in_band"] = row["ppo"]["auc"], row["ppo"]["profile_in_band"]
        result["objectives"][name] = row
        print(
            f"{name:16s} "
            + "  ".join(f"{k} {v['mean']:.3f}/{v['heldout']:.3f}" for k, v in row.items() if isinstance(v, dict))
            + f"  ppo-start CI {row['ppo']['ci_vs_start']}  AUC {row['auc']:.3f} profile {row['profile_in_band']}/5",
            flush=True,
        )
    result["seconds"] = round(time.perf_counter() - t0, 1)
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
