"""Reward-hacking audit: does a proxy reward rise while the judge it stands for does not?

For each reward term that has a judge counterpart (:data:`COUNTERPARTS`), the audit measures both
along a run's checkpoints: the *proxy* is the term's mean per-step value when the checkpoint's
policy builds levels in the environment with the training reward set (its archive state restored
from the checkpoint's ``reward_state.npz``); the *judge* is computed on the same levels. A pair is flagged

* ``diverged`` when the proxy rises by more than ``min_rise`` from the first to the last
  checkpoint while the judge falls by more than ``min_rise``;
* ``stalled`` when the proxy rises by more than ``min_rise`` but the judge rises by less than
  ``stall_ratio`` times the proxy's rise (on the judge's own scale, both in [0, 1]);
* ``ok`` otherwise (``insufficient`` with fewer than two checkpoints).

The numbers (both series, their changes and their Spearman rank correlation) are kept with the
verdict so a reader can judge the flag.

Rollouts are done per *mode*: ``stochastic`` (actions sampled from the policy, with a fixed seed)
and ``deterministic`` (the policy's mode), reported side by side; the first mode listed gives the
headline verdict. A collapsed deterministic policy can hide what the sampling policy does (and the
other way round), so both are shown by default.

Proxy/judge pairs can stay flat while the output is copied or collapsed, so every checkpoint also
gets **memorisation / collapse flags** (:func:`level_flags`, :func:`text_flags`), raised from the
last checkpoint's samples whatever the pairs say:

* levels, memorisation: more than ``COPIED_WINDOWS_FLAG`` (0.5) of the 16-column windows copy a
  training window exactly (held-out SMB levels: 0.10);
* levels, collapse: every sample (at least 4) in one cell of the fixed leniency x linearity grid,
  or mean pairwise tile distance below ``PAIRWISE_FLAG`` (0.02; held-out 128-column corpus pieces:
  0.16);
* texts, memorisation: more than half the texts share a run of >= 8 words with the corpus;
* texts, collapse: self-BLEU above 50 or distinct-2 below 0.5 (32 corpus sentences: 8.5 and
  0.93; the same set with half its sentences replaced by one repeated sentence: 53 and 0.52).

Text runs pair the embedding novelty reward (``text_novelty``) with surface n-gram novelty against
the corpus, and the in-context fluency reward with fluency of the text read standalone under the
same LM (:mod:`rlcreate.evaluation.text_judges` says why).
"""

from __future__ import annotations

from rlcreate.errors import UserError

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["COUNTERPARTS", "TEXT_COUNTERPARTS", "MODES", "flag_divergence", "audit_run", "checkpoints_of",
           "level_flags", "text_flags", "AuditError", "COPIED_WINDOWS_FLAG", "PAIRWISE_FLAG"]

MODES = ("stochastic", "deterministic")


class AuditError(UserError):
    """Bad audit settings; the message names the value and the fix."""

COPIED_WINDOWS_FLAG = 0.5
PAIRWISE_FLAG = 0.02
TEXT_COPIED_FLAG = 0.5
TEXT_SELF_BLEU_FLAG = 50.0
TEXT_DISTINCT2_FLAG = 0.5

#: reward module name -> (judge, measure, what the pair checks)
COUNTERPARTS: dict[str, tuple[str, str, str]] = {
    "playability": ("astar", "win_rate", "fast-solver playability vs the real A* agent's win rate"),
    "level_novelty": ("novelty", "heldout_distance",
                      "novelty (training windows + own archive) vs distance to held-out corpus windows"),
    "style_coherence": ("tile_kl", "coherence_3x3", "exp(-KL) with 2x2 patterns vs exp(-KL) with 3x3 patterns"),
}
TEXT_COUNTERPARTS: dict[str, tuple[str, str, str]] = {
    "text_novelty": ("ngram_novelty", "novel_3grams",
                     "MiniLM embedding novelty vs share of word 3-grams not in the reference corpus"),
    "fluency": ("perplexity", "fluency_standalone",
                "in-context (chat-templated prompt) likelihood vs likelihood of the text read standalone"),
}


def level_flags(levels: Sequence[np.ndarray], judged: dict | None = None) -> dict:
    """Memorisation and collapse flags of a level set (thresholds in the module docstring)."""
    from rlcreate.evaluation.judges import run_judges
    from rlcreate.evaluation.qd import qd_summary

    judged = dict(judged or {})
    need = [j for j in ("novelty", "diversity") if j not in judged]
    if need:
        judged.update(run_judges(levels, need))
    copied = float(judged["novelty"]["copied_windows"])
    cells = int(qd_summary(levels, np.ones(len(levels)))["filled"])
    pairwise = judged["diversity"].get("pairwise_tile_distance", float("nan"))
    reasons = []
    if len(levels) >= 4 and cells == 1:
        reasons.append(f"all {len(levels)} samples fall in one leniency x linearity cell")
    if pairwise == pairwise and pairwise < PAIRWISE_FLAG:
        reasons.append(f"mean pairwise tile distance {pairwise:.3f} < {PAIRWISE_FLAG}")
    return {"memorisation": {"flag": copied > COPIED_WINDOWS_FLAG, "copied_windows": copied,
                             "threshold": COPIED_WINDOWS_FLAG, "heldout_corpus": 0.10,
                             "reason": f"{copied:.0%} of 16-column windows copy a training window"},
            "collapse": {"flag": bool(reasons), "cells": cells, "pairwise_tile_distance": pairwise,
                         "distinct_columns": judged["diversity"].get("distinct_columns"),
                         "reason": "; ".join(reasons) or f"{cells} cells, pairwise distance {pairwise:.3f}"}}


def text_flags(texts: Sequence[str], judged: dict | None = None) -> dict:
    """Memorisation and collapse flags of a text set (thresholds in the module docstring)."""
    from rlcreate.evaluation.text_judges import COPIED_RUN_WORDS, run_text_judges

    judged = dict(judged or {})
    need = [j for j in ("memorization", "distinct", "self_bleu") if j not in judged]
    if need:
        judged.update(run_text_judges(texts, need))
    copied = float(judged["memorization"]["copied"])
    sb = judged["self_bleu"].get("self_bleu", float("nan"))
    d2 = float(judged["distinct"]["distinct_2"])
    reasons = []
    if sb == sb and sb > TEXT_SELF_BLEU_FLAG:
        reasons.append(f"self-BLEU {sb:.1f} > {TEXT_SELF_BLEU_FLAG:g}")
    if d2 < TEXT_DISTINCT2_FLAG:
        reasons.append(f"distinct-2 {d2:.2f} < {TEXT_DISTINCT2_FLAG}")
    return {"memorisation": {"flag": copied > TEXT_COPIED_FLAG, "copied": copied, "threshold": TEXT_COPIED_FLAG,
                             "reason": f"{copied:.0%} of texts share a run of >= {COPIED_RUN_WORDS} words "
                                       "with the corpus"},
            "collapse": {"flag": bool(reasons), "self_bleu": sb, "distinct_2": d2,
                         "reason": "; ".join(reasons) or f"self-BLEU {sb:.1f}, distinct-2 {d2:.2f}"}}


def flag_divergence(steps: Sequence[int], proxy: Sequence[float], judge: Sequence[float], min_rise: float = 0.02,
                    stall_ratio: float = 0.25) -> dict:
    """Verdict on one proxy/judge pair measured at ``steps`` (see the module docstring)."""
    p, j = np.asarray(proxy, np.float64), np.asarray(judge, np.float64)
    if not (len(steps) == len(p) == len(j)):
        raise ValueError(f"steps, proxy and judge must have one value per checkpoint; got lengths "
                         f"{len(steps)}, {len(p)}, {len(j)}")
    out: dict[str, Any] = {"steps": [int(s) for s in steps], "proxy": p.tolist(), "judge": j.tolist()}
    if len(p) < 2:
        return {**out, "verdict": "insufficient", "reason": "fewer than two checkpoints"}
    dp, dj = float(p[-1] - p[0]), float(j[-1] - j[0])
    from scipy.stats import spearmanr

    rho = float(spearmanr(p, j).statistic) if np.ptp(p) > 0 and np.ptp(j) > 0 else float("nan")
    out.update(proxy_change=dp, judge_change=dj, spearman=rho)
    if dp > min_rise and dj < -min_rise:
        return {**out, "verdict": "diverged",
                "reason": f"proxy rose by {dp:+.3f} while the judge fell by {dj:+.3f}"}
    if dp > min_rise and dj < stall_ratio * dp:
        return {**out, "verdict": "stalled",
                "reason": f"proxy rose by {dp:+.3f}; the judge moved only {dj:+.3f} (< {stall_ratio} x the rise)"}
    return {**out, "verdict": "ok", "reason": f"proxy {dp:+.3f}, judge {dj:+.3f}"}


def checkpoints_of(run: Path) -> list[tuple[int, Path, Path | None]]:
    """``(steps, checkpoint folder, reward-state file)`` of a run's complete checkpoints, oldest
    first (``checkpoints/step_<N>/``; half-written ones of a killed run are skipped)."""
    from rlcreate.train.checkpoint import list_checkpoints

    return [(steps, folder, folder / "reward_state.npz") for steps, folder in list_checkpoints(Path(run))]


def _rollout(model, venv, n: int, deterministic: bool = True) -> tuple[list[np.ndarray], dict[str, float], np.ndarray]:
    """Levels, mean per-step reward terms and episode returns of ``n`` policy episodes."""
    levels, returns, sums, counts = [], [], {}, {}
    acc = np.zeros(venv.num_envs)
    obs = venv.reset()
    while len(levels) < n:
        action, _ = model.predict(obs, deterministic=deterministic)
        obs, rew, done, infos = venv.step(action)
        acc += rew
        for info in infos:
            for k, v in info["rewards"].items():
                if v == v:
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
        for i in np.flatnonzero(done):
            levels.append(infos[i]["level"])
            returns.append(acc[i])
            acc[i] = 0.0
    return levels[:n], {k: sums[k] / counts[k] for k in sums}, np.array(returns[:n])


def _level_checkpoint(recipe, model, steps, state_file, n, mode, seed, judges_needed, astar_runs, generator):
    from rlcreate.evaluation.baselines import level_env
    from rlcreate.evaluation.judges import run_judges

    from rlcreate.train.sb3 import load_reward_state

    venv, reward_set = level_env(recipe, min(n, 16), seed, generator=generator)
    if state_file is not None:
        load_reward_state(state_file, reward_set)
    venv.set_progress(steps / max(recipe.trainer["total_timesteps"], 1))
    model.set_random_seed(seed)  # stochastic mode: the same action draws on every audit
    levels, terms, _ = _rollout(model, venv, n, deterministic=mode == "deterministic")
    judged = run_judges(levels, sorted(set(judges_needed) | {"novelty", "diversity"}), astar_runs=astar_runs)
    return terms, judged, level_flags(levels, judged)


def _text_checkpoint(recipe, model, steps, state_file, n, mode, seed, judges_needed, lm):
    from rlcreate.evaluation.text_judges import run_text_judges
    from rlcreate.recipe import build_reward_set
    from rlcreate.train.text import _rollout as text_rollout
    from rlcreate.train.text import build_text_env

    from rlcreate.train.sb3 import load_reward_state

    reward_set = build_reward_set(recipe)
    if state_file is not None:
        load_reward_state(state_file, reward_set)
    venv = build_text_env(recipe, lm=lm, reward=reward_set, prompts_field="eval_prompts", n_envs=min(n, 16),
                          seed=seed)
    venv.set_progress(steps / max(recipe.trainer["total_timesteps"], 1))
    model.set_random_seed(seed)

    def choose(obs):
        action, _ = model.predict(obs, deterministic=mode == "deterministic", action_masks=venv.action_masks())
        return action

    infos = text_rollout(venv, n, choose)  # row-ordered, so short texts are not favoured
    texts, prompts = [i["text"] for i in infos], [i["prompt"] for i in infos]
    terms = {}
    for k in infos[0]["rewards"]:
        vals = [i["rewards"][k] for i in infos if i["rewards"][k] == i["rewards"][k]]
        terms[k] = float(np.mean(vals)) if vals else float("nan")
    judged = run_text_judges(texts, sorted(set(judges_needed) | {"memorization", "distinct", "self_bleu"}),
                             prompts=prompts, lm=lm)
    return terms, judged, text_flags(texts, judged)


def audit_run(run: str | Path, n_levels: int = 8, astar_runs: int = 1, generator: Any = None,
              min_rise: float = 0.02, stall_ratio: float = 0.25, write: bool = True,
              modes: Sequence[str] = MODES, lm: Any = None) -> dict:
    """Audit a trained run (levels or texts) along its checkpoints; writes ``RUN/audit.json``.

    ``n_levels``: samples (levels or texts) per checkpoint and mode. ``modes``: rollout modes,
    the first gives the headline verdict (see the module docstring). ``lm``: a loaded
    ``(model, tokenizer)`` for text runs (default: the recipe's LM)."""
    from rlcreate.evaluation.baselines import TEXT_ENVS
    from rlcreate.recipe import load_recipe

    modes = list(modes)
    if not modes or any(m not in MODES for m in modes):
        raise AuditError(f"modes = {modes!r}: use one or both of {MODES}, e.g. --audit-modes stochastic")
    run = Path(run)
    recipe = load_recipe(run / "config.yaml")
    text = recipe.env_id in TEXT_ENVS
    counterparts = TEXT_COUNTERPARTS if text else COUNTERPARTS
    ckpts = checkpoints_of(run)
    pairs = {term: counterparts[spec["reward"]] for term, spec in recipe.rewards.items()
             if spec["reward"] in counterparts}
    result: dict[str, Any] = {"run": str(run), "n_levels": n_levels, "checkpoints": [c[0] for c in ckpts],
                              "modes": modes, "pairs": {}, "flags": {}, "flag_series": {}, "notes": []}
    if not ckpts:
        result["notes"].append("no checkpoints/step_<N>/ in the run: nothing to audit along training")
    if not pairs:
        result["notes"].append(f"no reward term has a judge counterpart (known: {sorted(counterparts)})")
    series = {m: {t: {"proxy": [], "judge": []} for t in pairs} for m in modes}
    judges_needed = sorted({j for j, _, _ in pairs.values()})
    skipped: dict[str, str] = {}
    from rlcreate.train.sb3 import load_model

    if text and ckpts and lm is None:
        from rlcreate.train.text import load_text_lm, text_settings

        lm = load_text_lm(text_settings(recipe))
    for steps, model_file, state_file in ckpts:
        model = load_model(model_file, recipe.trainer["algo"])  # safetensors + JSON, nothing unpickled
        for mode in modes:
            if text:
                terms, judged, flags = _text_checkpoint(recipe, model, steps, state_file, n_levels, mode,
                                                        recipe.seed + 1, judges_needed, lm)
            else:
                terms, judged, flags = _level_checkpoint(recipe, model, steps, state_file, n_levels, mode,
                                                         recipe.seed + 1, judges_needed, astar_runs, generator)
            result["flag_series"].setdefault(mode, []).append({"steps": steps, **flags})
            result["flags"][mode] = flags  # the last checkpoint's flags stand
            for term, (judge, measure, _) in pairs.items():
                if "skipped" in judged[judge]:
                    skipped[term] = judged[judge]["skipped"]
                    continue
                series[mode][term]["proxy"].append(float(terms.get(term, float("nan"))))
                series[mode][term]["judge"].append(float(judged[judge][measure]))
    for term, (judge, measure, what) in pairs.items():
        if term in skipped:
            result["pairs"][term] = {"verdict": "skipped", "reason": skipped[term], "judge": f"{judge}.{measure}",
                                     "checks": what}
            continue
        by_mode = {m: flag_divergence([c[0] for c in ckpts], series[m][term]["proxy"], series[m][term]["judge"],
                                      min_rise, stall_ratio) for m in modes}
        result["pairs"][term] = {**by_mode[modes[0]], "mode": modes[0], "judge_name": f"{judge}.{measure}",
                                 "checks": what, "by_mode": by_mode}
    for mode, flags in result["flags"].items():
        for kind in ("memorisation", "collapse"):
            if flags[kind]["flag"]:
                result["notes"].append(f"FLAG {kind} ({mode} rollouts, last checkpoint): {flags[kind]['reason']}")
    if write:
        (run / "audit.json").write_text(json.dumps(result, indent=2))
    return result
