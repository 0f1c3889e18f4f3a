"""Benchmark: does GRPO teach SmolLM2-135M five creative forms? Judged on TEST prompts only.

Reads top to bottom: config, conditions (sample each on the same TEST prompts, cached per
condition so stages can run apart), judge, compare (paired over prompts), JSON.

Conditions (SmolLM2-135M-Instruct; ancestral sampling at the recipe's temperature 0.7 over the full
vocabulary unless said; at most ``max_new_tokens`` tokens; the chat template, no system prompt):

- ``base``: the model as shipped, ``k_base`` samples per prompt. Its satisfaction is the mean over
  those samples (the rate of one sample).
- ``best_of_4`` / ``best_of_8``: the first 4 / all 8 base samples with the **judge** as the selector
  (a prompt passes when any candidate passes): the cost of sampling more instead of training.
- ``instruct_2shot``: the base model given an explicit instruction and two worked examples of the
  form (other topics and targets than any split), one sample per prompt.
- ``low_temp`` (T = 0.3) and ``min_p`` (min-p 0.1 at T = 1.0): decoding baselines, one sample each.
- ``grpo``: the models of ``scripts/train_text_forms.py`` (``text_forms.yaml``, one per seed),
  ``k_tuned`` samples per prompt per seed.

Judges (:mod:`rlcreate.text.form_judges`: their own syllable counter, rhyme rule and inflection
matcher, not the reward's), perplexity of the texts under the base model given their prompt, and
distinct_k (NoveltyBench's lexical partition over the k texts of a prompt; the training reward uses
none of these). Topic adherence: the text uses a content word of the prompt's topic (inflections
allowed). Paired bootstrap CIs over TEST prompts.

    OMP_NUM_THREADS=1 python scripts/bench_text_forms.py --n-prompts 30            # all stages
    OMP_NUM_THREADS=1 python scripts/bench_text_forms.py --stage base              # baselines only
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Literal, NoReturn

import numpy as np
import yaml

from rlcreate.scripting import parse_config

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Config:
    n_prompts: int = 100
    """TEST prompts per form (the first n of each form in form_prompts('test'))"""
    k_base: int = 8
    """base samples per prompt (best-of-n takes n of them; n <= k_base)"""
    k_tuned: int = 4
    """samples per prompt per GRPO seed (the k of distinct_k)"""
    max_new_tokens: int = 64
    """token cap per sampled text (a text that reaches it counts as truncated)"""
    temperature: float = 0.7
    """the recipe's training temperature"""
    runs: str = "runs/text_forms"
    """run folders seed<k>/ from scripts/train_text_forms.py"""
    seeds: tuple[int, ...] = (0, 1, 2)
    """GRPO training seeds to judge (run folders seed<k>/ under --runs)"""
    cache: str = "runs/bench_text_forms"
    """one JSON per condition (texts, finished flags, seconds): stages reuse them"""
    out: str = "benchmarks/text_forms.json"
    """where the JSON result is written"""
    stage: Literal["base", "tuned", "report", "all"] = "all"
    """base (base model and baselines), tuned (GRPO models), report, or all"""
    batch: int = 100
    """texts sampled per forward batch"""
    seed: int = 0
    """sampling seed (the same for every condition: paired draws)"""
    conditions: str = "base,low_temp,min_p,instruct_2shot"
    """which base-model conditions the base stage samples (comma-separated; base_b: the second half of
    the base samples, with another seed), so they can run in parallel processes"""


def fail(message: str) -> NoReturn:
    """A user mistake (a flag, a missing run or cache): one ``error:`` line, exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


cfg = parse_config(Config)
if not cfg.seeds:  # tyro accepts `--seeds` with no value
    fail("--seeds needs at least one seed, e.g. --seeds 0 1 2")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
from rlcreate.rewards.registry import get_reward  # noqa: E402
from rlcreate.text.form_judges import haiku_exact, inflections, judge  # noqa: E402
from rlcreate.text.form_prompts import form_prompts  # noqa: E402
from rlcreate.text.forms import FORMS, words  # noqa: E402
from rlcreate.text.judges import bootstrap_ci, noveltybench_scores  # noqa: E402
from rlcreate.text.loading import load_causal_lm  # noqa: E402

rows = [r for form in FORMS for r in [x for x in form_prompts("test") if x["form"] == form][: cfg.n_prompts]]
prompts = [r["prompt"] for r in rows]
cache = Path(cfg.cache)
cache.mkdir(parents=True, exist_ok=True)
load_before = os.getloadavg()

# Two worked examples per form for the instruction baseline (topics/targets in no split).
EXAMPLES = {
    "acrostic": ("Write an acrostic poem about a quiet harbor. The first letters of its lines spell BOAT, "
                 "one line per letter.",
                 "Boats rest on the water\nOars lie still in the sand\nAnchors hold them close\nTides come slowly in",
                 "Write an acrostic poem about a spring rain. The first letters of its lines spell MUD, one line per letter.",
                 "Mornings smell of wet earth\nUmbrellas bloom in the street\nDrops sing on the roof"),
    "couplet": ("Write a rhyming couplet about a candle: two lines whose last words rhyme.",
                "A little flame that dances in the night\nFills the sleeping room with golden light",
                "Write a rhyming couplet about the ocean: two lines whose last words rhyme.",
                "The waves roll in and kiss the shore\nThen slip away to come once more"),
    "haiku": ("Write a haiku about a frog: three lines of 5, 7 and 5 syllables.",
              "An old silent pond\nA frog jumps into the pond\nSplash! Water again",
              "Write a haiku about the wind: three lines of 5, 7 and 5 syllables.",
              "The wind through the trees\nCarries the scent of the rain\nLeaves dance on the ground"),
    "concepts": ('Write two sentences about a beach that use the words "sand", "child" and "build".',
                 "A child knelt in the warm sand to build a castle. The waves crept closer as she worked.",
                 'Write two sentences about a kitchen that use the words "pot", "boil" and "soup".',
                 "The pot began to boil on the old stove. Soon the whole kitchen smelled of onion soup."),
    "lipogram": ('Write two sentences about a dog without using the letter "e".',
                 "A dog ran across a grassy hill with a ball in its mouth. It was happy and wagging its tail.",
                 'Write two sentences about the city without using the letter "o".',
                 "The city never sleeps at night; taxis rush past in the rain. Bright signs shine all the way up the street."),
}
INSTRUCT = ("You write short poems and texts that follow the requested form exactly, with no title and no "
            "explanation. Here are two examples.\n\nTask: {p1}\nAnswer:\n{a1}\n\nTask: {p2}\nAnswer:\n{a2}\n\n"
            "Task: {prompt}\nAnswer:")


# ---- sampling
def generate(model, tok, ps: list[str], k: int, temperature: float, min_p: float | None, seed: int):
    """k samples per prompt; returns (texts, finished) as lists of k-lists; finished: ended before the
    token cap. Plain sampling runs rlcreate's KV-cache loop (LMStepper, ~1.5x generate() here);
    min-p needs transformers' generate()."""
    from rlcreate.text.stepping import LMStepper

    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    flat = [p for p in ps for _ in range(k)]
    texts, done = [], []
    for start in range(0, len(flat), cfg.batch):
        chunk = flat[start:start + cfg.batch]
        if min_p is None:
            stepper = LMStepper(model, tok, top_k=1)
            got = stepper.sample(chunk, max_new_tokens=cfg.max_new_tokens, temperature=temperature, seed=seed + start)
        else:
            tok.padding_side = "left"
            chats = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                             add_generation_prompt=True) for p in chunk]
            enc = tok(chats, return_tensors="pt", padding=True)
            torch.manual_seed(seed + start)
            with torch.no_grad():
                out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0, min_p=min_p,
                                     max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id)
            got = [tok.decode(row, skip_special_tokens=True) for row in out[:, enc["input_ids"].shape[1]:].tolist()]
        for t in got:
            # a text that used the whole token budget was cut (re-tokenising the decoded text may differ by
            # a token or two from the sampled ids; close enough for a rate)
            done.append(len(tok(t, add_special_tokens=False)["input_ids"]) < cfg.max_new_tokens - 1)
            texts.append(t.strip())
    return [texts[i * k:(i + 1) * k] for i in range(len(ps))], [done[i * k:(i + 1) * k] for i in range(len(ps))]


def run_condition(name: str, model, tok, ps: list[str], k: int, temperature: float, min_p: float | None = None,
                  seed: int | None = None):
    path = cache / f"{name}.json"
    if path.is_file():
        got = json.loads(path.read_text())
        if got["prompts"] == ps and got["k"] == k:
            print(f"{name}: cached", flush=True)
            return
    t0 = time.perf_counter()
    texts, done = generate(model, tok, ps, k, temperature, min_p, cfg.seed if seed is None else seed)
    secs = time.perf_counter() - t0
    path.write_text(json.dumps({"prompts": ps, "k": k, "temperature": temperature, "min_p": min_p, "texts": texts,
                                "finished": done, "seconds": secs}, ensure_ascii=False))
    print(f"{name}: {len(ps) * k} texts in {secs:.0f} s", flush=True)


def latest_adapter(run: Path) -> Path | None:
    """The newest checkpoint folder holding a LoRA adapter: ``checkpoints/step_<N>/`` (rlcreate
    train) or ``trl/checkpoint-<N>/`` (older runs)."""
    found = [p.parent for p in run.glob("checkpoints/step_*/adapter_config.json")] + \
        [p.parent for p in run.glob("trl/checkpoint-*/adapter_config.json")]
    return max(found, key=lambda p: int(re.sub(r"\D", "", p.name))) if found else None


def tuned_model(run: Path):
    """The run's merged ``model/``, or (a run stopped early) the base with the LoRA adapter of its
    latest checkpoint merged in. Returns (model, tokenizer, what was loaded)."""
    if (run / "model" / "config.json").is_file():
        lm = load_causal_lm(str(run / "model"))
        return lm.model, lm.tokenizer, "model/"
    from peft import PeftModel

    ckpt = latest_adapter(run)
    if ckpt is None:
        fail(f"{run} holds neither model/ nor a checkpoint; train it first (scripts/train_text_forms.py)")
    lm = load_causal_lm("smollm2-135m-instruct")
    return PeftModel.from_pretrained(lm.model, str(ckpt)).merge_and_unload().eval(), lm.tokenizer, ckpt.name


if cfg.stage in ("base", "all"):
    base = load_causal_lm("smollm2-135m-instruct")
    todo = cfg.conditions.split(",")
    # the base samples come in two halves with different seeds (base, base_b), so that two processes
    # can draw them in parallel on a busy machine; the report joins them
    if "base" in todo:
        run_condition("base", base.model, base.tokenizer, prompts, cfg.k_base // 2, cfg.temperature)
    if "base_b" in todo:
        run_condition("base_b", base.model, base.tokenizer, prompts, cfg.k_base - cfg.k_base // 2, cfg.temperature,
                      seed=cfg.seed + 10_000)
    if "low_temp" in todo:
        run_condition("low_temp", base.model, base.tokenizer, prompts, 1, 0.3)
    if "min_p" in todo:
        run_condition("min_p", base.model, base.tokenizer, prompts, 1, 1.0, 0.1)
    if "instruct_2shot" in todo:
        asks = []
        for r in rows:
            p1, a1, p2, a2 = EXAMPLES[r["form"]]
            asks.append(INSTRUCT.format(p1=p1, a1=a1, p2=p2, a2=a2, prompt=r["prompt"]))
        run_condition("instruct_2shot", base.model, base.tokenizer, asks, 1, cfg.temperature)
    del base

if cfg.stage in ("tuned", "all"):
    for s in cfg.seeds:
        model, tok, step = tuned_model(Path(cfg.runs) / f"seed{s}")
        print(f"seed {s}: {step}", flush=True)
        run_condition(f"grpo_seed{s}", model, tok, prompts, cfg.k_tuned, cfg.temperature)
        del model

if cfg.stage not in ("report", "all"):
    raise SystemExit(0)

# ---- judge
from rlcreate.text.scoring import ReferenceLM  # noqa: E402

cond = {p.stem: json.loads(p.read_text()) for p in cache.glob("*.json")}


def align(c: dict) -> dict:
    """A condition sampled with more prompts per form than this report uses: keep the first
    n_prompts of each form (prompts are stored form by form, in the same order)."""
    per = len(c["prompts"]) // len(FORMS)
    if per < cfg.n_prompts:
        fail(f"a cached condition has {per} prompts per form, fewer than --n-prompts {cfg.n_prompts}")
    keep = [fi * per + j for fi in range(len(FORMS)) for j in range(cfg.n_prompts)]
    return {**c, "prompts": [c["prompts"][i] for i in keep], "texts": [c["texts"][i] for i in keep],
            "finished": [c["finished"][i] for i in keep]}


cond = {name: align(c) for name, c in cond.items()}
if "base_b" in cond:  # join the two halves of the base samples
    b2 = cond.pop("base_b")
    cond["base"] = {**cond["base"], "k": cond["base"]["k"] + b2["k"], "seconds": cond["base"]["seconds"] + b2["seconds"],
                    "texts": [a + b for a, b in zip(cond["base"]["texts"], b2["texts"])],
                    "finished": [a + b for a, b in zip(cond["base"]["finished"], b2["finished"])]}
k_base = cond["base"]["k"]
missing = [c for c in ["base"] + [f"grpo_seed{s}" for s in cfg.seeds] if c not in cond]
if missing:
    fail(f"no cached samples for {missing}; run --stage base / --stage tuned first")
base_lm = load_causal_lm("smollm2-135m-instruct")
ref = ReferenceLM(base_lm.model, base_lm.tokenizer, cache_size=0)
forms = [r["form"] for r in rows]
targets = [r["target"] for r in rows]
n = len(rows)


def passes(texts: list[list[str]]) -> np.ndarray:
    return np.array([[judge(f, t, g) for t in ts] for f, g, ts in zip(forms, targets, texts)], float)


def nll(texts: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt: summed token log-prob and token count of its texts under the base LM given the prompt."""
    flat = [t for ts in texts for t in ts]
    fp = [p for p, ts in zip(prompts, texts) for _ in ts]
    stats = ref.token_stats(flat, fp)
    lp, cnt, i = np.zeros(n), np.zeros(n), 0
    for j, ts in enumerate(texts):
        for _ in ts:
            lp[j] += float(stats[i].logprobs.sum())
            cnt[j] += stats[i].n
            i += 1
    return lp, cnt


def topic_hit(texts: list[list[str]]) -> np.ndarray:
    stop = {"a", "an", "the", "of", "in", "at", "on", "over", "after", "and", "to", "s", "day"}
    out = []
    for r, ts in zip(rows, texts):
        keys = [w for w in words(r["topic"]) if w not in stop]
        forms_ = set().union(*(inflections(w) for w in keys)) if keys else set()
        out.append(np.mean([bool(forms_ & set(words(t))) for t in ts]))
    return np.array(out)


def distinct(texts: list[list[str]], k: int) -> np.ndarray:
    return np.array([noveltybench_scores(ts[:k])[0] for ts in texts])


def ci(x) -> list[float]:
    m, lo, hi = bootstrap_ci(x)
    return [round(lo, 4), round(hi, 4)]


def ppl_ratio(a: tuple, b: tuple, idx: np.ndarray) -> dict:
    """Pooled perplexity of a / of b over the prompts idx, with a bootstrap CI over prompts."""
    rng = np.random.default_rng(0)
    (la, ca), (lb, cb) = a, b

    def r(ix):
        return math.exp(-la[ix].sum() / ca[ix].sum()) / math.exp(-lb[ix].sum() / cb[ix].sum())
    boots = [r(rng.choice(idx, len(idx))) for _ in range(1000)]
    return {"ratio": round(r(idx), 4), "ci": [round(float(np.percentile(boots, 2.5)), 4),
                                                round(float(np.percentile(boots, 97.5)), 4)],
            "perplexity": round(math.exp(-la[idx].sum() / ca[idx].sum()), 3),
            "perplexity_base": round(math.exp(-lb[idx].sum() / cb[idx].sum()), 3)}


k = cfg.k_tuned
base_texts = cond["base"]["texts"]
P = {c: passes(v["texts"]) for c, v in cond.items()}
grpo_names = [f"grpo_seed{s}" for s in cfg.seeds]
grpo_pass = np.mean([P[g].mean(1) for g in grpo_names], axis=0)  # per prompt, over seeds and samples
nll_base = nll([ts[:k] for ts in base_texts])
nll_grpo = [nll(cond[g]["texts"]) for g in grpo_names]
nll_grpo_pooled = (sum(x[0] for x in nll_grpo), sum(x[1] for x in nll_grpo))
dk_base = distinct(base_texts, k)
dk_grpo = np.mean([distinct(cond[g]["texts"], k) for g in grpo_names], axis=0)
topic_base = topic_hit([ts[:k] for ts in base_texts])
topic_grpo = np.mean([topic_hit(cond[g]["texts"]) for g in grpo_names], axis=0)
trunc = {c: float(1 - np.mean([x for fs in v["finished"] for x in fs])) for c, v in cond.items()}

# how often the shaped training reward (== 1) and the judge agree, on the base and GRPO texts
agree = {}
for f in FORMS:
    idx = [i for i in range(n) if forms[i] == f]
    pairs = [(t, prompts[i], bool(P[c][i][j])) for c in ["base"] + grpo_names for i in idx
             for j, t in enumerate(cond[c]["texts"][i])]
    vals = get_reward(f)([t for t, _, _ in pairs], prompts=[p for _, p, _ in pairs])
    agree[f] = round(float(np.mean([(v == 1.0) == ok for v, (_, _, ok) in zip(vals, pairs)])), 4)

result_forms = {}
for f in FORMS:
    idx = np.array([i for i in range(n) if forms[i] == f])
    b1 = P["base"][idx].mean(1)
    bo4 = P["base"][idx][:, :4].max(1)
    bo8 = P["base"][idx][:, :8].max(1) if k_base >= 8 else np.full(len(idx), np.nan)
    g = grpo_pass[idx]
    entry = {
        "n_prompts": int(len(idx)),
        "base": {"satisfaction": round(float(b1.mean()), 4), "ci": ci(b1), "truncated": None},
        "best_of_4": {"satisfaction": round(float(bo4.mean()), 4), "ci": ci(bo4)},
        "best_of_8": {"satisfaction": round(float(bo8.mean()), 4), "ci": ci(bo8)} if k_base >= 8 else
        {"satisfaction": None, "note": f"not measured: {k_base} base samples per prompt"},
        "grpo": {"satisfaction": round(float(g.mean()), 4), "ci": ci(g),
                 "ci_vs_base": ci(g - b1), "ci_vs_best_of_4": ci(g - bo4),
                 "per_seed": {s: round(float(P[gn][idx].mean()), 4) for s, gn in zip(cfg.seeds, grpo_names)},
                 "perplexity_ratio": None, "distinct_k_ratio": round(float(dk_grpo[idx].mean() / dk_base[idx].mean()), 4),
                 "distinct_k": round(float(dk_grpo[idx].mean()), 3), "distinct_k_base": round(float(dk_base[idx].mean()), 3),
                 "topic_adherence": round(float(topic_grpo[idx].mean()), 4),
                 "topic_adherence_base": round(float(topic_base[idx].mean()), 4),
                 "ci_topic_adherence_vs_base": ci(topic_grpo[idx] - topic_base[idx])},
    }
    pr = ppl_ratio(nll_grpo_pooled, nll_base, idx)
    entry["grpo"]["perplexity_ratio"] = pr["ratio"]
    entry["grpo"]["perplexity_ratio_ci"] = pr["ci"]
    entry["grpo"]["perplexity"], entry["base"]["perplexity"] = pr["perplexity"], pr["perplexity_base"]
    for c in ("instruct_2shot", "low_temp", "min_p"):
        if c in P:
            x = P[c][idx].mean(1)
            entry[c] = {"satisfaction": round(float(x.mean()), 4), "ci_vs_base": ci(x - b1)}
    for c in ["base", "instruct_2shot", "low_temp", "min_p"] + grpo_names:
        if c in cond:
            fin = [x for i in idx for x in cond[c]["finished"][i]]
            entry.setdefault("truncation_rate", {})[c] = round(1 - float(np.mean(fin)), 4)
    if f == "haiku":
        entry["grpo"]["exact_575"] = round(float(np.mean([haiku_exact(t) for gn in grpo_names for i in idx
                                                          for t in cond[gn]["texts"][i]])), 4)
        entry["base"]["exact_575"] = round(float(np.mean([haiku_exact(t) for i in idx for t in base_texts[i]])), 4)
    entry["grpo"]["target_met"] = bool(ci(g - b1)[0] > 0 and g.mean() >= b1.mean() + 0.30 and g.mean() >= bo4.mean())
    entry["grpo"]["quality_held"] = bool(pr["ratio"] <= 1.3 and entry["grpo"]["distinct_k_ratio"] >= 0.9 and
                                         topic_grpo[idx].mean() >= topic_base[idx].mean())
    entry["samples"] = [{"prompt": prompts[i], "base": base_texts[i][0], "base_passes": bool(P["base"][i][0]),
                         "best_of_4": next((t for t, ok in zip(base_texts[i][:4], P["base"][i][:4]) if ok), base_texts[i][0]),
                         "instruct_2shot": cond.get("instruct_2shot", {"texts": [[None]] * n})["texts"][i][0],
                         "grpo_seed0": cond[grpo_names[0]]["texts"][i][0], "grpo_passes": bool(P[grpo_names[0]][i][0])}
                        for i in idx[:4]]
    result_forms[f] = entry

# ---- learning curves and compute, from the training runs
curves, compute = {}, {}
for s in cfg.seeds:
    run = Path(cfg.runs) / f"seed{s}"
    states = sorted(list(run.glob("trl/checkpoint-*/trainer_state.json")) + list(run.glob("checkpoints/step_*/trainer_state.json")),
                    key=lambda p: int(re.sub(r"\D", "", p.parent.name)))
    log = json.loads(states[-1].read_text())["log_history"] if states else []
    for f in FORMS:
        pts = [(e["step"], round(e[f"rewards/{f}/mean"], 4)) for e in log
               if e.get(f"rewards/{f}/mean") is not None and e[f"rewards/{f}/mean"] == e[f"rewards/{f}/mean"]]
        curves.setdefault(f, {})[s] = pts
    settings = yaml.safe_load((run / "config.yaml").read_text())["finetune"]
    compute[s] = {"steps": log[-1]["step"] if log else 0,
                  "checkpoint": states[-1].parent.name if states else None,
                  "train_seconds_logged": round(sum(e.get("step_time", 0.0) for e in log)),
                  "prompts_x_rollouts_per_step": f"{settings['prompts_per_step']} x {settings['num_generations']}",
                  "num_iterations": settings["num_iterations"], "max_completion_length": settings["max_completion_length"],
                  "clipped_ratio_mean": round(float(np.mean([e["completions/clipped_ratio"] for e in log
                                                             if "completions/clipped_ratio" in e])), 4) if log else None}
for f in FORMS:
    for s, pts in curves[f].items():
        v = [y for _, y in pts]
        h = max(1, len(v) // 3)
        curves[f][s] = {"points": pts, "first_third_mean": round(float(np.mean(v[:h])), 4) if v else None,
                        "last_third_mean": round(float(np.mean(v[-h:])), 4) if v else None}

import transformers  # noqa: E402
import trl  # noqa: E402

summary = {f: {"base": e["base"]["satisfaction"], "best_of_4": e["best_of_4"]["satisfaction"],
               "grpo": e["grpo"]["satisfaction"], "target_met": e["grpo"]["target_met"],
               "quality_held": e["grpo"]["quality_held"]} for f, e in result_forms.items()}
result = {
    "forms": result_forms,
    "summary": summary,
    "forms_meeting_satisfaction_target": sum(v["target_met"] for v in summary.values()),
    "reward_judge_agreement": agree,
    "truncation_rate": trunc,
    "learning_curves": curves,
    "compute": {"seeds": compute, "darling_reference": "Llama-3.1-8B, ~1,250 steps x 64 prompts x 8 rollouts",
                "generation_seconds": {c: round(v["seconds"]) for c, v in cond.items()}},
    "config": dataclasses.asdict(cfg),
    "sampler": f"ancestral, temperature {cfg.temperature}, top_k 0, top_p 1 (low_temp: T 0.3; min_p: 0.1 at T 1.0)",
    "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
    "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
}
Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
Path(cfg.out).write_text(json.dumps(result, indent=1, ensure_ascii=False))
print(json.dumps(summary, indent=1))
print("truncation", trunc)

# ---- a markdown table for BENCHMARKS.md
print("\n| form | prompts | base | best-of-4 | best-of-8 | 2-shot instruction | T 0.3 | min-p | GRPO (seeds) | GRPO - base [95% CI] "
      "| ppl ratio | distinct_k ratio | topic adherence base -> GRPO |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for f, e in result_forms.items():
    g = e["grpo"]
    seeds = ", ".join(f"{v:.2f}" for v in g["per_seed"].values())
    others = " | ".join(f"{e[c]['satisfaction']:.2f}" if c in e else "-" for c in ("instruct_2shot", "low_temp", "min_p"))
    print(f"| {f} | {e['n_prompts']} | {e['base']['satisfaction']:.2f} | {e['best_of_4']['satisfaction']:.2f} | "
          f"{e['best_of_8']['satisfaction'] if e['best_of_8']['satisfaction'] is None else round(e['best_of_8']['satisfaction'], 2)} | {others} | {g['satisfaction']:.2f} ({seeds}) | "
          f"{g['satisfaction'] - e['base']['satisfaction']:+.2f} [{g['ci_vs_base'][0]:+.2f}, {g['ci_vs_base'][1]:+.2f}] | "
          f"{g['perplexity_ratio']:.2f} | {g['distinct_k_ratio']:.2f} | {g['topic_adherence_base']:.2f} -> {g['topic_adherence']:.2f} |")
