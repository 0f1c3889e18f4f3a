"""Benchmark: PPO trained on a tension curve vs its untrained start vs best-of-n, judged by play.

For each curve ("rising", "flat") the demo recipe (``mario_tokens.yaml``) gets one more term,
``tension_curve`` on the play-calibrated scale (``scale="play"``; weight ``weight``), paid per
16-column segment as it closes (the env's potential-based ``shape_terms``, with the profile
terms; returns unchanged), and MaskablePPO trains it from the demo's start (column LM + control
prior) for ``timesteps`` env steps through the same runner as ``rlcreate train``
(``runs/engagement/<curve>``). Then, for the same ``n`` requests:

- ``start``: the untrained start, draw 0 for the rising request and draw 1 for the flat one (one
  draw each: equal inference cost, no steering);
- ``best_of_<candidates>``: per request the start draw the curve's recipe scores highest;
- ``ppo``: one draw per request from each trained policy;
- ``ppo_best_of_<ppo_best_of>`` (with ``--ppo_best_of N``): per request the best of N draws from
  each trained policy (draw 0 is the ``ppo`` set's), RL and selection together.

``--select`` says what best-of-n keeps: ``recipe`` (the curve's whole recipe, the reward PPO trained
on) or ``curve`` (the tension term alone: the request a designer made).

The A* agent plays every level once with a trace, all sets interleaved in one run
(:mod:`rlcreate.levels.play_trace`); ``separation`` is the share of requests whose rising level's
play-effort slope exceeds its flat level's, under both readings of a lost play. The play model was
fitted on human training windows (and, on "play_ground32_gen", on generated levels drawn at env
seeds other than the judged requests' ``seed + 1``; ``effort_model_data`` in the JSON); every level
judged here is generated.

    OMP_NUM_THREADS=1 python scripts/bench_level_engagement_ppo.py --out benchmarks/level_engagement_ppo.json
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class Config:
    timesteps: int = 65536
    """PPO env steps per curve"""
    weight: float = 8.0
    """weight of the tension term next to the demo recipe's terms (their weighted sum is ~8.5)"""
    flat_weight: float = 0.0
    """the flat request's tension weight (0: ``weight``); at 8 with the rising one at 12 the flat sets
    kept their element profile, which weight 12 cost them in three seeds of seven (BENCHMARKS.md)"""
    learning_rate: float = 0.001
    """PPO learning rate"""
    shaping: str = "engagement,profile,set_profile"
    """recipe terms paid per closed 16-column segment (potential-based; returns unchanged)"""
    n: int = 16
    """requests (levels) per set"""
    candidates: int = 8
    """start draws per request for best-of-n"""
    runs: str = "runs/engagement"
    """folder of the per-curve training runs"""
    train: int = 1
    """1: train (or resume) first; 0: evaluate existing runs only"""
    scale: str = "play"
    """the tension term's scale: "play", "play_ground" (the effort model without the tile features
    that floating tiles move), "play_ground32" (those features fitted on the stride-32 plays) or
    "play_ground32_gen" (the same plus the agent's plays of generated levels, drawn at env seeds
    other than the judged ones: ``scripts/calibrate_engagement_gen.py``)"""
    offers: int = 0
    """1: the env also observes the tension term's per-offer features (what appending each offered
    column does to the current segment's tension vs the curve's wanted value), next to the demo
    recipe's per-offer profile features, and the policy's offer head scores them"""
    judge: str = "start,best_of,ppo"
    """the sets the A* agent plays (a subset saves time: the start's draws and plays are the same
    for a seed whatever the recipe, so another run's start rows carry over)"""
    rising: str = "rising"
    """the rising request's tension curve: a named curve ("rising": the 15th to the 85th human
    percentile) or comma-separated tensions per 16-column segment, e.g. a steeper
    0.05,0.18,0.31,0.44,0.56,0.69,0.82,0.95; the flat request stays "flat" """
    ppo_best_of: int = 0
    """draws per request from each trained policy for the ``ppo_best_of_N`` set (0: no such set)"""
    select: str = "recipe"
    """what best-of-n keeps per request: "recipe" (the curve's whole recipe) or "curve" (its tension
    term alone)"""
    plays: int = 1
    """1: the A* agent plays every level; 0: only add the style judges (human-likeness AUC, element
    profile) and the calibration CV to an existing ``out`` JSON written by the same settings"""
    net_arch: str = ""
    """the policy's and value's MLP layers, comma-separated units, e.g. 64,64 (the demo's since "A
    smaller network"); "" = the base recipe's (128,128, every run before it)"""
    seed: int = 0
    env_seed: int = 0
    """the judged requests' env seed (0: ``seed + 1``, every run before this option); another value
    judges fresh requests with the same policies (``--train 0``), e.g. more of them for a tighter CI"""
    out: str = "benchmarks/level_engagement_ppo.json"


def rising_curve(text: str) -> str | list[float]:
    """``--rising``: a named curve or its tension values per segment; a bad value exits with one
    ``error:`` line (code 2)."""
    import sys

    from rlcreate.levels.engagement import CURVES

    if text in CURVES:
        return text
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0.0 <= v <= 1.0 for v in values):
        print(
            f"error: --rising {text!r}: give a named curve ({', '.join(sorted(CURVES))}) or comma-separated "
            "tensions in [0, 1], one per 16-column segment, e.g. 0.05,0.3,0.55,0.8",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return values


def curve_recipe(curve: str, cfg: Config):
    from rlcreate.levels.demo import TOKENS_BASE, recipe_file
    from rlcreate.recipe import load_recipe, parse_recipe

    d = load_recipe(recipe_file(TOKENS_BASE)).to_dict()
    d["name"] = f"engagement-{curve}"
    width = d["env"]["kwargs"]["n_columns"]
    # the run folders and set names keep "rising"; ``--rising`` may ask for another shape of it
    want = rising_curve(cfg.rising) if curve == "rising" else curve
    args = {"curve": want, "scale": cfg.scale, "width": width}
    weight = cfg.flat_weight if curve == "flat" and cfg.flat_weight > 0 else cfg.weight
    d["rewards"]["engagement"] = {"reward": "tension_curve", "weight": weight, "args": args}
    d["trainer"]["total_timesteps"] = cfg.timesteps
    d["trainer"]["hyper"].update(n_steps=128, batch_size=256, learning_rate=cfg.learning_rate)
    d["env"]["kwargs"]["shape_terms"] = [t.strip() for t in cfg.shaping.split(",") if t.strip()]
    if cfg.offers:
        from rlcreate.rewards.registry import get_reward

        kw, pk = d["env"]["kwargs"], d["trainer"]["hyper"]["policy_kwargs"]
        seen = kw.get("offer_objective")
        seen = ["engagement", *([seen] if isinstance(seen, str) else list(seen or []))]
        kw["offer_objective"] = seen
        kinds = {t: v.get("reward", t) for t, v in d["rewards"].items()}
        sizes = [get_reward(kinds[t], **d["rewards"][t].get("args", {})).offer_features().size for t in seen]
        pk["offer_structure"] = sum(sizes)
    if cfg.net_arch:
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from bench_level_objectives import net_arch

        d["trainer"]["hyper"]["policy_kwargs"]["net_arch"] = net_arch(cfg.net_arch)
    d["seed"] = cfg.seed
    return parse_recipe(d, f"<engagement {curve}>")


def selection_recipe(curve: str, cfg: Config):
    """The recipe whose score best-of-n maximises: the curve's whole recipe, or its tension term alone."""
    recipe = curve_recipe(curve, cfg)
    if cfg.select == "curve":
        recipe.rewards = {"engagement": recipe.rewards["engagement"]}
    return recipe


def judged_env_seed(cfg: Config) -> int:
    """The env seed whose requests are judged; one the effort model was calibrated on exits with one
    ``error:`` line (code 2)."""
    import sys

    from rlcreate.levels.engagement import CALIBRATION_GEN

    env_seed = cfg.env_seed or cfg.seed + 1
    calibrated = {r["env_seed"] for r in json.loads(CALIBRATION_GEN.read_text())["levels"]}
    if env_seed in calibrated:
        print(
            f"error: --env_seed {env_seed}: the effort model was calibrated on the requests of env seeds "
            f"{sorted(calibrated)}; judge another env seed (0 = --seed + 1)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return env_seed


def judged_sets(cfg: Config) -> list[str]:
    """``--judge``'s set names as they are keyed (``best_of`` -> ``best_of_<candidates>``); a bad
    name exits with one ``error:`` line (code 2)."""
    import sys

    names = {"start": "start", "best_of": f"best_of_{cfg.candidates}", "ppo": "ppo"}
    if cfg.ppo_best_of > 1:
        names["ppo_best_of"] = f"ppo_best_of_{cfg.ppo_best_of}"
    picked = [m.strip() for m in cfg.judge.split(",") if m.strip()]
    bad = [m for m in picked if m not in names]
    if bad or cfg.select not in ("recipe", "curve"):
        what = f"--judge {cfg.judge!r}" if bad else f"--select {cfg.select!r}"
        print(
            f"error: {what}: --judge takes a comma-separated subset of {', '.join(names)} "
            "(ppo_best_of needs --ppo_best_of N > 1); --select takes recipe or curve",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return [names[m] for m in picked]


def separation(sets: dict, candidates: int, draws: int = 4000, seed: int = 0) -> dict:
    """Per method and lost-play reading: share of requests whose rising level's effort slope
    exceeds its flat level's, ties, mean slopes, and 95% bootstrap CIs over requests (paired) of
    the share and of the mean slope difference."""
    from rlcreate.levels.play_trace import LOST_READINGS

    out = {}
    rng = np.random.default_rng(seed)
    for method in [k.removesuffix("_rising") for k in sets if k.endswith("_rising")]:
        for lost in LOST_READINGS:
            r = np.array(sets[f"{method}_rising"][lost]["slopes"])
            f = np.array(sets[f"{method}_flat"][lost]["slopes"])
            idx = rng.integers(0, len(r), (draws, len(r)))
            share_b, diff_b = (r[idx] > f[idx]).mean(axis=1), (r[idx] - f[idx]).mean(axis=1)
            out[f"{method}_{lost}"] = {
                "share": float(np.mean(r > f)),
                "share_ci": np.percentile(share_b, [2.5, 97.5]).round(3).tolist(),
                "ties": int(np.sum(r == f)),
                "rising_slope": float(r.mean()),
                "flat_slope": float(f.mean()),
                "rising_minus_flat_ci": np.percentile(diff_b, [2.5, 97.5]).round(3).tolist(),
                "n": int(len(r)),
            }
    return out


def make_sets(cfg: Config, curves: tuple[str, ...]) -> tuple[dict[str, list], dict[str, np.ndarray]]:
    """The levels of every set (same requests), and best-of-n's pick per request and curve."""
    from rlcreate.assemble import assemble
    from rlcreate.levels.share import best_of_n, recipe_scores, sample_levels, untrained_policy
    from rlcreate.recipe import build_reward_set
    from rlcreate.train.runner import restore

    base = assemble(curve_recipe(curves[0], cfg))
    env_seed = judged_env_seed(cfg)
    start = untrained_policy(base)
    draws = [sample_levels(start, base, cfg.n, env_seed, env_seed + 100 + k) for k in range(cfg.candidates)]
    targets = draws[0][1]
    sets: dict[str, list] = {"start_rising": draws[0][0], "start_flat": draws[1][0]}
    picks: dict[str, np.ndarray] = {}
    for curve in curves:
        recipe, chooser = curve_recipe(curve, cfg), selection_recipe(curve, cfg)
        score = lambda levels, chooser=chooser: recipe_scores(lambda: build_reward_set(chooser), levels, targets)  # noqa: E731
        sets[f"best_of_{cfg.candidates}_{curve}"], picks[curve] = best_of_n([d[0] for d in draws], [score(d[0]) for d in draws])
        asm, model = restore(Path(cfg.runs) / curve, asm=assemble(recipe))
        sets[f"ppo_{curve}"], t = sample_levels(model, asm, cfg.n, env_seed, env_seed)
        assert t == targets, "the policy answered different requests"
        if cfg.ppo_best_of > 1:  # draw 0 is the ppo set's own; the others sample the policy at other seeds
            more = [sample_levels(model, asm, cfg.n, env_seed, env_seed + 200 + k) for k in range(1, cfg.ppo_best_of)]
            assert all(t == targets for _, t in more), "the policy answered different requests"
            own = [sets[f"ppo_{curve}"]] + [levels for levels, _ in more]
            sets[f"ppo_best_of_{cfg.ppo_best_of}_{curve}"], _ = best_of_n(own, [score(x) for x in own])
    return sets, picks


def effort_model_data(scale: str, judged_env_seed: int) -> dict:
    """Which plays the reward's effort model was fitted on (none of the levels judged here)."""
    from rlcreate.levels.engagement import _PLAYS, CALIBRATION_GEN, EFFORT_VARIANTS

    if scale not in EFFORT_VARIANTS:
        return {"scale": scale, "fitted": False}
    spec = EFFORT_VARIANTS[scale]
    out: dict = {
        "scale": scale,
        "human_plays": f"rlcreate/data/{_PLAYS[spec['plays']].name} (TRAINING windows only, no DEV/TEST block)",
        "judged_env_seed": judged_env_seed,
    }
    if spec.get("extra") == "gen":
        gen = json.loads(CALIBRATION_GEN.read_text())
        seeds = sorted({r["env_seed"] for r in gen["levels"]})
        assert judged_env_seed not in seeds, "the judged requests are in the effort model's calibration"
        out["generated_plays"] = {
            "file": f"rlcreate/data/{CALIBRATION_GEN.name}",
            "levels": len(gen["levels"]),
            "env_seeds": seeds,
            "source": gen["source"],
        }
    return out


def style(levels: list) -> dict:
    """Human-likeness AUC against the TEST split's segments and the element profile in the human band."""
    from rlcreate.levels.quality import human_likeness, human_reference_segments, profile_report

    prof = profile_report(levels)
    return {
        "auc": round(float(human_likeness(levels, human=human_reference_segments("test"))["auc"]), 3),
        "profile_in_band": int(prof["inside"]),
        "profile": {e: round(v["mean"], 2) for e, v in prof["elements"].items()},
    }


def main(cfg: Config) -> dict:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_level_objectives import machine

    from rlcreate.levels.engagement import tension
    from rlcreate.levels.play_trace import LOST_READINGS, effort_slope, play_traces, segment_effort
    from rlcreate.train.runner import train_run

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    rising_curve(cfg.rising)  # a bad value stops here, before any training
    judged, env_seed = judged_sets(cfg), judged_env_seed(cfg)
    curves = ("rising", "flat")
    train_s = {}
    if cfg.train:
        for curve in curves:
            run, t = Path(cfg.runs) / curve, time.perf_counter()
            print(f"training {curve}: {cfg.timesteps} env steps into {run}", flush=True)
            train_run(curve_recipe(curve, cfg), run, progress_bar=False, resume=(run / "config.yaml").is_file())
            train_s[curve] = round(time.perf_counter() - t, 1)
    sets, picks = make_sets(cfg, curves)
    # the judged levels, for rendering and re-reading (tile ids, one (n, 14, W) stack per set)
    np.savez_compressed(
        Path(cfg.runs) / f"{Path(cfg.out).stem}_levels.npz", **{k: np.stack(v) for k, v in sets.items()}
    )
    if not cfg.plays:
        result = json.loads(Path(cfg.out).read_text())
        for k, levels in sets.items():
            prof = np.array(result["sets"][k]["tension_profile_play"])
            now = tension(np.stack(levels).astype(np.int8), cfg.scale).mean(axis=0).round(3)
            assert np.allclose(prof, now), f"{k}: not the levels of {cfg.out} (other settings?)"
            result["sets"][k]["style"] = style(levels)
        from bench_level_engagement import calibration_check

        result["calibration_cv"] = calibration_check(cfg.scale)
        Path(cfg.out).write_text(json.dumps(result, indent=2))
        print(json.dumps({k: v["style"] for k, v in result["sets"].items()}, indent=1))
        return result
    sets = {k: v for k, v in sets.items() if k.rsplit("_", 1)[0] in judged}
    order = [(k, i) for i in range(cfg.n) for k in sets]
    print(f"A* plays of {len(order)} levels (sets interleaved) ...", flush=True)
    traces = play_traces([sets[k][i] for k, i in order])
    if traces is None:
        print("skipped: java / javac not found")
        return {"skipped": "java / javac not found"}
    by: dict[str, list] = {k: [] for k in sets}
    for (k, _), tr in zip(order, traces):
        by[k].append(tr)
    result: dict = {
        "config": asdict(cfg),
        "machine": {**machine(), "load_avg_1min_at_start": load0},
        "train_seconds": train_s,
        "effort_model_data": effort_model_data(cfg.scale, env_seed),
        "sets": {},
        "separation": {},
    }
    for k, levels in sets.items():
        stack = np.stack(levels).astype(np.int8)
        row: dict = {
            "astar_won": float(np.mean([t.won for t in by[k]])),
            "fail_segments": [t.fail_segment for t in by[k] if t.fail_segment >= 0],
            "tension_profile_play": tension(stack, cfg.scale).mean(axis=0).round(3).tolist(),
            "style": style(levels),
        }
        for lost in LOST_READINGS:
            e = np.array([segment_effort(t, lost) for t in by[k]])
            row[lost] = {
                "slopes": [round(effort_slope(t, lost), 3) for t in by[k]],
                "effort_per_segment": float(np.nanmean(np.nanmean(e, axis=1))),
                "effort_profile": np.nanmean(e, axis=0).round(3).tolist(),
            }
            row[lost]["effort_slope"] = float(np.mean(row[lost]["slopes"]))
        result["sets"][k] = row
    result["separation"] = separation(result["sets"], cfg.candidates)
    from bench_level_engagement import calibration_check

    # how well the reward's effort model ranks the agent's effort on its own (human training) windows
    result["calibration_cv"] = calibration_check(cfg.scale)
    # requests where one start draw scores best for both curves: the judge cannot separate those
    if f"best_of_{cfg.candidates}_rising" in sets:
        result["best_of_n_same_level_for_both"] = int(np.sum(picks["rising"] == picks["flat"]))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result["separation"], indent=1))
    for k, v in result["sets"].items():
        print(
            f"{k:18s} won {v['astar_won']:.2f} slope {v['penalty']['effort_slope']:+.2f}/{v['drop']['effort_slope']:+.2f} "
            f"effort/seg {v['penalty']['effort_per_segment']:.2f} tension(play) {v['tension_profile_play']} "
            f"AUC {v['style']['auc']:.2f} profile {v['style']['profile_in_band']}/5"
        )
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
