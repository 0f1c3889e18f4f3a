"""Benchmark: how often does a policy's set of levels land inside the human element band?

The element profile of one 64-level set is a noisy test: even sets of random human windows are
inside the 5th-95th percentile band on all five elements only ~62% of the time. A single set per
training seed therefore says little about a policy; this script draws ``sets`` sets of ``n`` levels
(each answering other requests: env seeds ``seed .. seed + sets - 1``) from each policy and reports
per element the mean count and the share of sets inside the band, and the share of sets inside on
all five / on at least four, next to the same shares for random human sets.

Policies: trained runs (``--runs``, comma-separated run folders: their final model; token policies
sampled, latent ones (``rlcreate demo --generator latent``) acting by their mean, as the demos draw
them) and the token demo recipe's untrained start (the policy before training; with ``--element_bias``
also a calibrated start: the env's ``element_bias`` offsets).

PPO's share over all those requests (``--share 1``, trained runs): each run's own untrained start
(its recipe, same requests) and best-of-``best_of`` from that start (``best_of`` draws, the one the
run's recipe objective scores highest kept per request) are drawn too; the recipe objective of
every level (scored as the env does: batches of 16, fresh reward state) gives the steered policy's
gain with paired 95% CIs over ``sets x n`` requests (the demo's one set of 64 leaves CIs about
twice as wide), and the profile-set shares of the start and best-of-n. ``--rule 1`` adds the
hand-built rule on the policy's observation as a row (token runs: the variety rule; latent runs
with candidates and term changes: the greedy picker, ``greedy``); ``--selection 1`` with it adds
best-of-n of the trained policy's own draws and of the rule's (draw 0 the row's own set, the others
at further policy seeds), and their paired difference: whether RL adds to the rule when both get n
draws. ``--policy_rule 1`` (token runs) adds the trained policy drawn under the rule's mask
(``steered_with_rule``) and its difference to the rule: whether RL adds to the rule when the rule
is kept at inference. With ``--rule 1`` every row is also judged for in-level repetition and
human-likeness AUC vs TEST, the AUC per set too, and ``style`` gives the steered AUC minus each
row's, paired set by set (``style_pooled``: over every run's sets together).

    OMP_NUM_THREADS=1 python scripts/bench_profile_sets.py --runs runs/demo,runs/demo_s1 \\
        --element_bias coins=0.3,pipes=0.2,question_blocks=0.08 --out benchmarks/profile_sets.json
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
    runs: str = ""
    """comma-separated run folders whose final policy is sampled ("" = none)"""
    starts: str = "tokens"
    """"tokens": also sample the untrained start of the token demo's recipe (mario_tokens.yaml); "" = no"""
    element_bias: str = ""
    """also sample each start with these env logit offsets, e.g. "coins=0.3,pipes=0.2" ("" = no)"""
    sets: int = 6
    """sets per policy (each with its own env seed, i.e. its own requests)"""
    n: int = 64
    """levels per set (the demo's)"""
    seed: int = 100
    """first env seed (away from the demo's and the benches' seeds)"""
    share: int = 1
    """1: for each trained run also draw its untrained start and best-of-n and report PPO's share"""
    best_of: int = 4
    """n of best-of-n from the untrained start (the draws at equal inference cost and above)"""
    calibrate: int = 0
    """1: calibrate each trained run's pipe / ?-block / coin rates after training (and its start's, for
    the share) on selection requests (env seeds 1000.., rlcreate.levels.calibrate), then draw the sets"""
    calibration_levels: int = 192
    """selection levels per calibration round (the demo's)"""
    calibration_method: str = "closest"
    """with --calibrate: "closest" (damped steps, the measured round closest to the target: the
    demo's) or "fit" (a line fitted to the policy's response, its fitted offsets measured last)"""
    calibration_rounds: int = 0
    """with --calibrate: fitting rounds (0 = the method's default: 3 for closest, 4 for fit)"""
    rule: int = 0
    """1: with --share, also draw the hand-built variety rule: the untrained start that never takes an
    offer the recipe's level_variety features flag as keeping a repeat of an earlier segment alive
    (the rule a policy trained on that term could have learnt; with --calibrate 1 it gets its own
    element-rate fit, like the policy and the start; runs without a level_variety term are refused)"""
    checkpoints: int = 0
    """1: also sample each trained run's checkpoints (profile only): how far the set drifts along training"""
    selection: int = 0
    """1: with --share and --rule, also best-of-n of the trained policy's own draws and of the rule's (the
    same selection as the start's best-of-n): does RL add to the rule when both get n draws?"""
    policy_rule: int = 0
    """1: with --share and --rule (token runs), also the trained policy drawn under the rule's mask (its
    own rate fit with --calibrate 1): does RL add to the rule when the rule is kept at inference?"""
    out: str = "benchmarks/profile_sets.json"
    """where the JSON result is written"""


def parse_bias(text: str) -> dict[str, float]:
    try:
        return {k.strip(): float(v) for k, v in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise SystemExit(f"error: --element_bias {text!r}: write name=offset pairs, e.g. coins=0.3,pipes=0.2") from None


def draw_sets(model, asm, cfg: Config, policy_seed: int = 0, deterministic: bool | None = None) -> list[tuple[list, list]]:
    """``cfg.sets`` sets of ``cfg.n`` levels (and their requests) from ``model``; set ``k`` answers
    env seed ``cfg.seed + k`` whatever the policy, so sets of two policies pair request by request.
    ``deterministic``: act by the mean (default: as the recipe's demo draws, latent by the mean)."""
    from rlcreate.levels.share import acts_by_mean, sample_levels

    det = acts_by_mean(asm.recipe) if deterministic is None else deterministic
    return [sample_levels(model, asm, cfg.n, cfg.seed + k, cfg.seed + k + policy_seed, det) for k in range(cfg.sets)]


def profile_sets(sets: list[tuple[list, list]]) -> dict:
    """Per-set element profiles of drawn sets and the shares of sets inside the human band."""
    from rlcreate.levels.quality import ELEMENTS, profile_report

    reports = [profile_report(levels) for levels, _ in sets]
    inside = np.array([r["inside"] for r in reports])
    return {
        "per_set_inside": inside.tolist(),
        "all_inside": float((inside == len(ELEMENTS)).mean()),
        "all_but_one_inside": float((inside >= len(ELEMENTS) - 1).mean()),
        "elements": {
            e: {
                "set_means": [round(r["elements"][e]["mean"], 3) for r in reports],
                "mean": float(np.mean([r["elements"][e]["mean"] for r in reports])),
                "inside_share": float(np.mean([r["elements"][e]["inside"] for r in reports])),
                "band": [reports[0]["elements"][e]["low"], reports[0]["elements"][e]["high"]],
            }
            for e in ELEMENTS
        },
    }


def ppo_share(
    model, asm, steered: list[tuple[list, list]], cfg: Config, start_asm=None, rule_asm=None, masked_asm=None
) -> dict:
    """The run's recipe objective of the steered sets vs its untrained start and best-of-n from
    that start on the same requests (paired CIs), with the start's and best-of-n's profile sets.
    ``start_asm`` / ``rule_asm``: the assemblies the start and the rule sample with (default
    ``asm`` / ``start_asm``; their own calibrations). ``masked_asm`` (``--policy_rule``): the rule's
    env the trained policy is drawn in (its own calibration)."""
    from rlcreate.levels.share import acts_by_mean, best_of_n, mean_ci, paired_diff, recipe_scores, untrained_policy
    from rlcreate.recipe import build_reward_set

    def score(sets: list[tuple[list, list]]) -> np.ndarray:
        return np.concatenate([recipe_scores(lambda: build_reward_set(asm.recipe), lv, tg) for lv, tg in sets])

    start_asm = start_asm or asm
    start_model = untrained_policy(start_asm)
    latent = acts_by_mean(asm.recipe)  # the start's first draw by its mean, further draws sampled (as the demo)
    draws = [
        draw_sets(start_model, start_asm, cfg, policy_seed=10_000 * (j + 1), deterministic=latent and j == 0)
        for j in range(max(cfg.best_of, 1))
    ]
    if any([t for _, t in d] != [t for _, t in steered] for d in draws):
        raise RuntimeError("the untrained start answered other requests than the policy (env seeding changed)")
    scores = {"steered": score(steered), "untrained_start": score(draws[0])}
    sets = {"untrained_start": draws[0]}

    def best_of(draws: list, first_scores: np.ndarray) -> list[tuple[list, list]]:
        """Per request the draw its own set scores highest, regrouped into the steered sets' requests."""
        per_draw = [first_scores] + [score(d) for d in draws[1:]]
        flat = [[lv for levels, _ in d for lv in levels] for d in draws]
        best, _ = best_of_n(flat, per_draw)
        cut = np.cumsum([0] + [len(lv) for lv, _ in steered])
        return [(best[a:b], tg) for (a, b), (_, tg) in zip(zip(cut, cut[1:]), steered)]

    if cfg.best_of > 1:
        sets[f"best_of_{cfg.best_of}"] = best_of(draws, scores["untrained_start"])
        scores[f"best_of_{cfg.best_of}"] = score(sets[f"best_of_{cfg.best_of}"])
    rule = rule_name(asm.recipe)
    if cfg.rule:
        from rlcreate.assemble import assemble
        from rlcreate.levels.share import GreedyPicker

        if latent:  # the greedy picker on the start's env (or its own calibration)
            rule_asm = rule_asm or start_asm
            rule_model = GreedyPicker(rule_asm)
        else:
            rule_asm = rule_asm or assemble(rule_recipe(start_asm.recipe))
            rule_model = untrained_policy(rule_asm)
        sets[rule] = draw_sets(rule_model, rule_asm, cfg, policy_seed=10_000)
        if [t for _, t in sets[rule]] != [t for _, t in steered]:
            raise RuntimeError("the rule answered other requests than the policy (env seeding changed)")
        scores[rule] = score(sets[rule])
    if cfg.rule and cfg.selection and cfg.best_of > 1:  # n draws each: PPO's and the rule's (their own seeds)
        more = range(1, cfg.best_of)
        own = [steered] + [draw_sets(model, asm, cfg, policy_seed=20_000 * j) for j in more]
        ruled = [sets["variety_rule"]] + [draw_sets(rule_model, rule_asm, cfg, policy_seed=10_000 + 20_000 * j) for j in more]
        for name, d, first in (("steered", own, scores["steered"]), ("variety_rule", ruled, scores["variety_rule"])):
            if any([t for _, t in x] != [t for _, t in steered] for x in d):
                raise RuntimeError(f"the {name} draws answered other requests than the policy (env seeding changed)")
            sets[f"{name}_best_of_{cfg.best_of}"] = best_of(d, first)
            scores[f"{name}_best_of_{cfg.best_of}"] = score(sets[f"{name}_best_of_{cfg.best_of}"])
    if masked_asm is not None:  # the trained policy with the rule kept at inference, the steered set's policy seeds
        sets["steered_with_rule"] = draw_sets(model, masked_asm, cfg)
        if [t for _, t in sets["steered_with_rule"]] != [t for _, t in steered]:
            raise RuntimeError("the masked policy answered other requests than the policy (env seeding changed)")
        scores["steered_with_rule"] = score(sets["steered_with_rule"])
    n = cfg.best_of
    selection = (  # n draws each: PPO's best against the rule's best
        {f"steered_best_of_{n}_minus_variety_rule_best_of_{n}": paired_diff(
            scores[f"steered_best_of_{n}"], scores[f"variety_rule_best_of_{n}"])}
        if f"steered_best_of_{n}" in scores
        else {}
    )
    if "steered_with_rule" in scores:  # the rule kept, with and without RL's policy on top of it
        selection["steered_with_rule_minus_variety_rule"] = paired_diff(scores["steered_with_rule"], scores["variety_rule"])
    judges = {}
    if cfg.rule:  # what the rule and PPO do to style and repetition (the objective rewards repetition directly)
        from rlcreate.levels.quality import human_likeness, level_repetition

        for k, v in {"steered": steered, **sets}.items():
            levels = [lv for lvs, _ in v for lv in lvs]
            judges[k] = {
                "repetition": level_repetition(levels)["repeated_share"],
                "auc_vs_test": human_likeness(levels)["auc"],
                # per set (all its segments; the whole-row AUC above keeps a random 600): pairs with the
                # other rows' sets request by request, so the style difference gets a CI
                "auc_vs_test_per_set": [round(human_likeness(lvs)["auc"], 4) for lvs, _ in v],
            }
    return {
        "requests": int(len(scores["steered"])),
        "objective": {k: mean_ci(v) for k, v in scores.items()},
        "share": {f"steered_minus_{k}": paired_diff(scores["steered"], v) for k, v in scores.items() if k != "steered"},
        **({"selection": selection} if selection else {}),
        "profile_sets": {k: profile_sets(v) for k, v in sets.items()},
        **({"judges": judges, "style": style_share([judges])} if judges else {}),
        # per request, in request order (set by set): two runs judged on the same requests pair up
        "scores": {k: [round(float(x), 6) for x in v] for k, v in scores.items()},
    }


def style_share(judges: list[dict]) -> dict:
    """Human-likeness AUC of the steered sets minus each other row's, paired set by set (same
    requests) over the sets of every run in ``judges`` (one ``ppo_share`` judges dict per run):
    below 0 = PPO's levels are harder to tell from human ones."""
    from rlcreate.levels.share import paired_diff

    def per_set(row: str) -> list[float]:
        return [x for j in judges for x in j[row]["auc_vs_test_per_set"]]

    rows = [k for k in judges[0] if k != "steered" and all(k in j for j in judges)]
    return {f"auc_steered_minus_{k}": paired_diff(per_set("steered"), per_set(k)) for k in rows}


def rule_name(recipe) -> str:
    """The rule's row: ``greedy`` for latent recipes, ``variety_rule`` for token recipes."""
    from rlcreate.levels.share import acts_by_mean

    return "greedy" if acts_by_mean(recipe) else "variety_rule"


def check_rule(asm) -> None:
    """Refuse a run that has no hand-built rule to draw (before any sampling)."""
    from rlcreate.levels.share import acts_by_mean, has_greedy_picker

    if not acts_by_mean(asm.recipe):
        rule_recipe(asm.recipe)
        return
    if not has_greedy_picker(asm):
        raise SystemExit("error: --rule 1: the latent run's env has no candidates with term changes for the greedy picker; drop --rule")


def rule_recipe(recipe):
    """``recipe`` with the variety rule as its env's mask (refused without a level_variety term)."""
    from rlcreate.levels.share import variety_rule

    ruled = variety_rule(recipe)
    if ruled is None:
        raise SystemExit("error: --rule 1: the run's recipe has no level_variety term to build the rule from; drop --rule")
    return ruled


def main(cfg: Config) -> dict:
    import sklearn
    import stable_baselines3
    import torch

    from rlcreate.assemble import assemble
    from rlcreate.levels.calibrate import calibrate_element_bias, with_element_bias
    from rlcreate.levels.demo import TOKENS_BASE, recipe_file
    from rlcreate.levels.quality import human_sets_inside
    from rlcreate.levels.share import GreedyPicker, acts_by_mean, untrained_policy
    from rlcreate.recipe import load_recipe
    from rlcreate.safe_io import load_json
    from rlcreate.train.runner import restore

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    result: dict = {
        "config": asdict(cfg),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sb3": stable_baselines3.__version__,
            "sklearn": sklearn.__version__,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_avg_1min_at_start": load0,
        },
        "human_sets": human_sets_inside(128, cfg.n),
        "human_train_sets": human_sets_inside(128, cfg.n, source="train"),
        "policies": {},
    }
    if cfg.calibration_method not in ("fit", "closest"):
        raise SystemExit(f"error: --calibration_method {cfg.calibration_method!r}: write fit or closest")
    if cfg.policy_rule and not (cfg.rule and cfg.share):
        raise SystemExit("error: --policy_rule 1 compares the masked policy with the rule: add --rule 1 (with --share 1)")
    if cfg.selection and not (cfg.rule and cfg.share and cfg.best_of > 1):
        raise SystemExit("error: --selection 1 compares PPO's and the rule's best-of-n: add --rule 1 (with --share 1, --best_of >= 2)")
    for run in [r for r in cfg.runs.split(",") if r]:
        if not Path(run).is_dir():
            raise SystemExit(f"error: --runs {run!r}: not a run folder; train one with `rlcreate demo --out {run}`")
        asm, model = restore(run)
        if cfg.rule and cfg.share:
            check_rule(asm)  # refuse a run without a rule before any sampling
        if (cfg.selection or cfg.policy_rule) and acts_by_mean(asm.recipe):
            raise SystemExit(
                "error: --selection 1 / --policy_rule 1: a latent run's greedy picker is a deterministic picker, "
                "not a mask (its draws are all alike); compare selection on latent runs with "
                "scripts/bench_latent_selection.py"
            )
        start_asm = rule_asm = masked_asm = None
        calibration = {}
        if cfg.calibrate:
            whose = "its element rates and its start's" if cfg.share else "its element rates"
            print(f"{run}: calibrating {whose} on selection requests ...", flush=True)
            trained = asm.recipe
            if Path(run, "calibration.json").is_file():  # a demo run: fit again from the offsets it trained with
                trained = with_element_bias(trained, load_json(Path(run, "calibration.json"))["trained_element_bias"] or {})
            fit = {"levels": cfg.calibration_levels, "method": cfg.calibration_method, "rounds": cfg.calibration_rounds or None}
            calibration = {"steered": calibrate_element_bias(model, trained, **fit)}
            if cfg.share:  # the start is only drawn for the share
                calibration["untrained_start"] = calibrate_element_bias(untrained_policy, trained, **fit)
            if cfg.rule and cfg.share:  # the rule is a policy too: it gets its own fit
                rule = rule_name(trained)
                ruled, rule_policy = (trained, GreedyPicker) if rule == "greedy" else (rule_recipe(trained), untrained_policy)
                calibration[rule] = calibrate_element_bias(rule_policy, ruled, **fit)
                rule_asm = assemble(with_element_bias(ruled, calibration[rule]["element_bias"]))
            if cfg.policy_rule:  # the trained policy under the rule's mask is another sampler: its own fit
                masked = rule_recipe(trained)
                calibration["steered_with_rule"] = calibrate_element_bias(model, masked, **fit)
                masked_asm = assemble(with_element_bias(masked, calibration["steered_with_rule"]["element_bias"]))
            asm = assemble(with_element_bias(trained, calibration["steered"]["element_bias"]))
            if "untrained_start" in calibration:
                start_asm = assemble(with_element_bias(trained, calibration["untrained_start"]["element_bias"]))
        elif cfg.policy_rule:
            masked_asm = assemble(rule_recipe(asm.recipe))
        print(f"{run}: sampling {cfg.sets} x {cfg.n} levels ...", flush=True)
        steered = draw_sets(model, asm, cfg)
        result["policies"][run] = {"kind": "trained", "policy": model.rlcreate_source, **profile_sets(steered)}
        if calibration:
            result["policies"][run]["calibration"] = calibration
        if cfg.checkpoints:
            result["policies"][run]["checkpoints"] = {}
            for folder in sorted(Path(run, "checkpoints").glob("step_*")):
                print(f"{run}: sampling its checkpoint {folder.name} ...", flush=True)
                _, ckpt = restore(run, checkpoint=folder, asm=asm)
                result["policies"][run]["checkpoints"][folder.name] = profile_sets(draw_sets(ckpt, asm, cfg))
        if cfg.share:
            print(f"{run}: its untrained start and best-of-{cfg.best_of} on the same requests ...", flush=True)
            result["policies"][run]["ppo_share"] = ppo_share(model, asm, steered, cfg, start_asm, rule_asm, masked_asm)
    for name in [s for s in cfg.starts.split(",") if s]:
        if name != "tokens":
            raise SystemExit(f'error: --starts {name!r}: use tokens (the token demo\'s recipe) or ""')
        variants = {"start": None}
        if cfg.element_bias:
            variants["calibrated start"] = parse_bias(cfg.element_bias)
        for label, bias in variants.items():
            recipe = load_recipe(recipe_file(TOKENS_BASE))  # the start both token recipes share
            if bias:
                recipe.env["kwargs"]["element_bias"] = bias
            asm = assemble(recipe)
            print(f"{name} {label}: sampling {cfg.sets} x {cfg.n} levels ...", flush=True)
            result["policies"][f"{name} {label}"] = {
                "kind": "untrained",
                "element_bias": bias,
                **profile_sets(draw_sets(untrained_policy(asm), asm, cfg)),
            }
    judged = [v["ppo_share"]["judges"] for v in result["policies"].values() if "judges" in v.get("ppo_share", {})]
    # every run's sets together; the untrained rows (start, best-of-n, rule) are the same draws for every
    # run of one recipe, so this CI is narrower than independent draws would give: the per-run ones hold
    if len(judged) > 1:
        result["style_pooled"] = style_share(judged)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["machine"]["load_avg_1min"] = os.getloadavg()[0]
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    h = result["human_sets"]
    print(f"human sets: all five inside {h['all']:.0%}, at least four {h['all_but_one']:.0%}")
    h = result["human_train_sets"]
    print(f"human TRAINING-window sets: all five inside {h['all']:.0%}, at least four {h['all_but_one']:.0%}")
    for k, v in result["policies"].items():
        means = ", ".join(f"{e} {x['mean']:.2f} ({x['inside_share']:.0%})" for e, x in v["elements"].items())
        print(f"{k}: all five {v['all_inside']:.0%}, at least four {v['all_but_one_inside']:.0%}; {means}")
        for who, c in v.get("calibration", {}).items():
            print(
                f"  calibrated {who}: element_bias {c['element_bias']} (round {c['chosen_round']}: {c['rounds'][c['chosen_round']]['means']})"
            )
        for step, c in v.get("checkpoints", {}).items():
            means = ", ".join(f"{e} {x['mean']:.2f}" for e, x in c["elements"].items())
            print(f"  checkpoint {step}: all five {c['all_inside']:.0%}; {means}")
        if "ppo_share" in v:
            sh = v["ppo_share"]
            print(
                f"  objective over {sh['requests']} requests: "
                + ", ".join(f"{n} {o['mean']:.3f}" for n, o in sh["objective"].items())
                + "; PPO's share: "
                + ", ".join(
                    f"{n.removeprefix('steered_minus_')} {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"
                    for n, d in sh["share"].items()
                )
                + "; start / best-of-n sets all five inside: "
                + " / ".join(f"{p['all_inside']:.0%}" for p in sh["profile_sets"].values())
            )
            for name, d in sh.get("selection", {}).items():
                print(f"  {name}: {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
            for who, j in sh.get("judges", {}).items():
                print(f"  {who}: in-level repetition {j['repetition']:.3f}, AUC vs TEST {j['auc_vs_test']:.3f}")
            for name, d in sh.get("style", {}).items():
                print(f"  {name} per set: {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    for name, d in result.get("style_pooled", {}).items():
        print(f"all runs, {name} per set: {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] over {d['n']} sets")
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
