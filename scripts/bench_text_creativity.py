"""Benchmark: is SmolLM2 more creative after diversity-aware GRPO? Judged on TEST prompts only.

Reads top to bottom: config, seeding, train the two GRPO runs (or reuse them), sample every
condition on the same TEST prompts with the same seeds, judge, compare (paired per prompt), JSON.

Conditions, each writing ``k`` texts per TEST prompt at the recipes' sampler (ancestral,
temperature ``finetune.temperature``, full vocabulary, ``max_new_tokens`` tokens per answer):

- **base**: SmolLM2-135M-Instruct as shipped.
- **prompt_several**: the "verbalized sampling" prompt baseline, no training: the base model is
  asked for ``answers_per_call`` very different numbered answers in one reply
  (``answers_per_call x max_new_tokens`` new tokens, so the token budget per answer is the same),
  ``ceil(k / answers_per_call)`` replies per prompt, answers parsed from the numbering.
- **quality_grpo**: ``rlcreate train rlcreate/recipes/text_quality.yaml`` (fluency + MiniLM
  relevance, KL 0.04).
- **darling_grpo**: ``rlcreate train rlcreate/recipes/text_darling.yaml`` (the same quality times
  MiniLM within-group diversity, KL 0.04).

Judges (:func:`rlcreate.text.judges.creative_metrics`; none uses MiniLM or the training
reward): NoveltyBench ``distinct_k`` / ``utility_k`` (content-word partition), distinct-1/2 and
self-BLEU within each prompt's k texts, 3-gram novelty against the reference corpus, perplexity
under the base model, prompt PMI under the base model and prompt-word recall. Means with 95%
bootstrap CIs over prompts, and paired per-prompt differences (vs base, vs quality_grpo, vs
prompt_several). Also: the share of GRPO training time spent in reward computation (one run each),
and a validity check of the PMI judge (true vs shuffled prompt pairing of the base texts).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_text_creativity.py [--steps 30 --k 8 ...]``
(about 40 min on 2 shared CPU cores with the defaults).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Config:
    steps: int = 30
    """GRPO optimiser steps per training run (overrides the recipes' finetune.steps)"""
    k: int = 8
    """texts per TEST prompt and condition (the k of distinct_k / utility_k)"""
    n_prompts: int = 30
    """TEST prompts judged (the first n of prompts('test'))"""
    answers_per_call: int = 4
    """answers asked for in one reply by the prompt baseline"""
    seed: int = 1234
    """sampling seed of the evaluation (the same for every condition: paired draws)"""
    runs: str = "runs/bench_text_creativity"
    """where the two fine-tuning runs are written (reused when already finished)"""
    out: str = "benchmarks/text_creativity.json"
    """where the JSON result is written"""


sys.path.insert(0, str(REPO))
from rlcreate.scripting import parse_config  # noqa: E402

cfg = parse_config(Config)
import torch  # noqa: E402  (after parsing: --help does not wait for torch)

torch.manual_seed(cfg.seed)
np.random.seed(cfg.seed)

from rlcreate.recipe import load_recipe  # noqa: E402
from rlcreate.text.baselines import several_answers  # noqa: E402
from rlcreate.text.data import prompts as shipped_prompts  # noqa: E402
from rlcreate.text.judges import bootstrap_ci, compare_conditions, creative_metrics, prompt_pmi, sample_k  # noqa: E402
from rlcreate.text.loading import load_causal_lm  # noqa: E402
from rlcreate.text.stepping import LMStepper  # noqa: E402
from rlcreate.train.runner import train_run  # noqa: E402
from rlcreate.trl.grpo import grpo_settings  # noqa: E402

RECIPES = {"quality_grpo": REPO / "rlcreate/recipes/text_quality.yaml",
           "darling_grpo": REPO / "rlcreate/recipes/text_darling.yaml"}
load_before = os.getloadavg()
t_start = time.perf_counter()

# ---- train (or reuse) the two GRPO runs
reports, settings = {}, None
for cond, path in RECIPES.items():
    recipe = load_recipe(path)
    recipe.settings.steps = cfg.steps
    s = grpo_settings(recipe)
    settings = settings or s
    run = Path(cfg.runs) / cond
    if (run / "model" / "trainer_state.json").is_file():
        print(f"{cond}: reusing {run}", flush=True)
    else:
        print(f"{cond}: training {cfg.steps} GRPO steps into {run}", flush=True)
        train_run(recipe, run, progress_bar=False)
    reports[cond] = json.loads((run / "model" / "trainer_state.json").read_text())  # steps, timing

test_prompts = shipped_prompts("test")[:cfg.n_prompts]
max_new, temperature, system = settings.max_completion_length, settings.section.temperature, settings.system
base = load_causal_lm(settings.model)
base_pair = (base.model, base.tokenizer)


# ---- the prompt baseline: several different answers in one reply (the library's several_answers)
def prompt_several(model, tok, prompts: list[str], k: int, m: int, seed: int) -> tuple[list[list[str]], list[str]]:
    """k answers per prompt from ceil(k/m) replies that each ask for m numbered different answers."""
    stepper = LMStepper(model, tok, top_k=1, system=system)
    groups: list[list[str]] = [[] for _ in prompts]
    raw: list[str] = []
    for call in range(math.ceil(k / m)):
        for start in range(0, len(prompts), 16):
            answers, replies = several_answers(stepper, prompts[start:start + 16], m, max_new, temperature,
                                               seed=seed + 1000 * call + start)
            raw += replies
            for g, items in zip(groups[start:start + 16], answers):
                g.extend(items)
    return [g[:k] for g in groups], raw


draws: dict[str, list[list[str]]] = {}
gen_seconds: dict[str, float] = {}
t0 = time.perf_counter()
draws["base"] = sample_k(*base_pair, test_prompts, cfg.k, max_new, temperature, seed=cfg.seed, system=system)
gen_seconds["base"] = time.perf_counter() - t0
t0 = time.perf_counter()
draws["prompt_several"], several_raw = prompt_several(*base_pair, test_prompts, cfg.k, cfg.answers_per_call, cfg.seed)
gen_seconds["prompt_several"] = time.perf_counter() - t0
for cond in RECIPES:
    tuned = load_causal_lm(str(Path(cfg.runs) / cond / "model"))
    t0 = time.perf_counter()
    draws[cond] = sample_k(tuned.model, tuned.tokenizer, test_prompts, cfg.k, max_new, temperature, seed=cfg.seed,
                           system=system)
    gen_seconds[cond] = time.perf_counter() - t0
    del tuned

# ---- judge (all with the base LM; no MiniLM, no training reward)
per_prompt = {}
for cond, groups in draws.items():
    t0 = time.perf_counter()
    keep = [i for i, g in enumerate(groups) if g]  # a prompt-baseline reply may parse to nothing
    metrics = creative_metrics([groups[i] for i in keep], [test_prompts[i] for i in keep], base_pair)
    full = {m: np.full(len(groups), np.nan) for m in metrics}
    for m, v in metrics.items():
        full[m][keep] = v
    per_prompt[cond] = full
    print(f"judged {cond} in {time.perf_counter() - t0:.0f} s", flush=True)

comparisons = {b: compare_conditions(per_prompt, baseline=b) for b in ("base", "quality_grpo", "prompt_several")}

# PMI judge validity: the base texts against their own prompt vs against another prompt
flat = [t for g in draws["base"] for t in g]
own = [p for p, g in zip(test_prompts, draws["base"]) for _ in g]
other = [test_prompts[(test_prompts.index(p) + 1) % len(test_prompts)] for p in own]
pmi_own, pmi_other = np.array(prompt_pmi(flat, own, base_pair)), np.array(prompt_pmi(flat, other, base_pair))
pmi_check = {"own_prompt": bootstrap_ci(pmi_own), "next_prompt": bootstrap_ci(pmi_other),
             "share_own_higher": float((pmi_own > pmi_other).mean())}

# ---- targets, computed from the numbers above
c = comparisons["base"]["conditions"]
vb, vq, vp = comparisons["base"]["vs_base"], comparisons["quality_grpo"]["vs_quality_grpo"], \
    comparisons["prompt_several"]["vs_prompt_several"]
dk_base, dk_d, dk_q = (c[x]["distinct_k"]["mean"] for x in ("base", "darling_grpo", "quality_grpo"))
near_k = dk_base >= 0.8 * cfg.k
targets = {
    "distinct_k_gain_vs_base": (dk_d - dk_base) / dk_base,
    "distinct_k_gain_vs_quality": (dk_d - dk_q) / dk_q,
    "distinct_k_rule": "base within 20% of k: must close half the gap to k" if near_k else "+20% over base",
    "distinct_k_target_met": bool(dk_d - dk_base >= 0.5 * (cfg.k - dk_base)) if near_k else
    bool(dk_d >= 1.2 * dk_base and dk_d >= 1.2 * dk_q),
    "distinct_k_ci_above_base": bool(vb["darling_grpo"]["distinct_k"]["low"] > 0),
    "utility_k_not_below_base": bool(vb["darling_grpo"]["utility_k"]["mean"] >= 0),
    "perplexity_ratio_within_1.15": bool(vb["darling_grpo"]["perplexity_ratio"]["mean"] <= 1.15),
    "utility_k_beats_prompt_baseline": bool(vp["darling_grpo"]["utility_k"]["mean"] > 0),
    "adherence_pmi_not_below_base": bool(vb["darling_grpo"]["prompt_pmi"]["mean"] >= 0),
    "reward_share_darling": reports["darling_grpo"].get("timing", {}).get("reward_share"),
    "reward_share_within_25pct": bool((reports["darling_grpo"].get("timing", {}).get("reward_share") or 1) <= 0.25),
}

examples = [{"prompt": test_prompts[i], **{cond: draws[cond][i][:2] for cond in draws}}
            for i in range(0, len(test_prompts), max(1, len(test_prompts) // 6))][:6]
import sacrebleu  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402

result = {
    "benchmark": "text_creativity",
    "command": "OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_text_creativity.py " +
               " ".join(f"--{k.replace('_', '-')} {v}" for k, v in dataclasses.asdict(cfg).items()),
    "config": dataclasses.asdict(cfg),
    "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                "wall_seconds": time.perf_counter() - t_start},
    "versions": {m.__name__: m.__version__ for m in (torch, transformers, trl, sacrebleu, np)},
    "sampler": f"ancestral, temperature {temperature}, full vocabulary, {max_new} new tokens per answer",
    "split": f"TEST prompts ({len(test_prompts)} of rlcreate/data/text/prompts_test.txt), never used for tuning",
    "seeds": "ONE training seed per GRPO recipe (recipe seed 0); one sampling seed; CIs are over prompts only",
    "definitions": {
        "distinct_k/utility_k": "NoveltyBench v1 (arXiv:2504.05228): classes by greedy partition; patience p=0.8; "
                                "equivalence = same first 4 words or content-word Jaccard >= 0.2 (not their DeBERTa "
                                "classifier; rule calibrated on DEV prompts against MiniLM >= 0.75, F1 0.64); "
                                "u = standalone fluency under the base LM x [prompt PMI > 0]",
        "prompt_pmi": "[log p(prompt | text) - log p(prompt)] / prompt tokens under the base LM, plain text",
        "perplexity": "exp mean token NLL of the texts under the base LM given the chat-templated prompt",
        "training_reward_models": "fluency: base LM given prompt; relevance and diversity: all-MiniLM-L6-v2",
    },
    "training": {cond: {"steps": r["num_timesteps"], "train_seconds": r["timing"]["train_seconds"],
                        "timing": r.get("timing"), "sampling": r["sampling"]} for cond, r in reports.items()},
    "generation_seconds": gen_seconds,
    "texts_per_condition": {cond: int(sum(len(g) for g in groups)) for cond, groups in draws.items()},
    "results": comparisons["base"]["conditions"],
    "paired_vs_base": vb, "paired_vs_quality_grpo": vq, "paired_vs_prompt_several": vp,
    "pmi_judge_check": pmi_check,
    "targets": targets,
    "examples": examples,
    "prompt_several_raw_examples": several_raw[:3],
}
Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
Path(cfg.out).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
Path(cfg.runs).mkdir(parents=True, exist_ok=True)
(Path(cfg.runs) / "all_texts.json").write_text(json.dumps({"prompts": test_prompts, "draws": draws}, indent=1,
                                                          ensure_ascii=False), encoding="utf-8")
for cond in draws:
    r = comparisons["base"]["conditions"][cond]
    print(f"{cond:15s} " + "  ".join(f"{m} {r[m]['mean']:.3f} [{r[m]['low']:.3f}, {r[m]['high']:.3f}]"
                                     for m in ("distinct_k", "utility_k", "self_bleu", "perplexity", "prompt_pmi")))
print(json.dumps(targets, indent=1))
print(f"wrote {cfg.out}")
