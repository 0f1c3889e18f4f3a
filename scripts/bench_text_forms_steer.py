"""Benchmark: does token-level PPO (TextTokens-v0) write lipograms, acrostics (couplets) better than its untrained start?

Reads top to bottom: config, train ``rlcreate/recipes/text_forms_steer.yaml`` (or reuse a
finished run), write texts on TEST prompts of each form (letters, words and topics no recipe saw)
under each condition, judge them with the independent judge, compare paired over prompts, write JSON.

Conditions (SmolLM2-135M-Instruct, the recipe's top-k, token cap and EOS floor for all; one
LM forward pass per token, so equal inference cost except best-of-n):

- ``start``: the policy's untrained start, the LM's own distribution over its top-k offers
  (``lm_prior`` at initialisation), ``k`` samples per prompt; satisfaction = the rate of one sample.
- ``best_of_n`` from the start (n = 2, 4: the first n start samples): with the **judge** as the
  selector (a prompt passes if any candidate passes; an upper bound no deployed selector beats),
  and with the **training reward** as the selector (the candidate with the highest form term
  is judged): the cost of sampling more instead of training.
- ``steered``: the trained policy, sampled (not argmax), ``k`` samples per prompt.
- ``rule``: the hand-written rule that never takes a flagged offer (constrained decoding with the
  same flags the policy observes, no learning), ``k_rule`` samples.

Judge (:func:`rlcreate.text.form_judges.judge`; lipogram: the letter nowhere in the text, >= 12
words; acrostic: exactly one line per letter, initials spelling the word, >= 2 words a line;
couplet: an even number of lines of >= 3 words, pairs ending on the same spelling rime; the
rewards instead give partial credit, and the couplet's reward and flags use CMU rhymes). Held quality, none of it used by the reward:
perplexity of the texts under the base LM given the prompt (pooled, ratio to the start with a
bootstrap CI over prompts), distinct_k over the first k texts of a prompt (NoveltyBench's lexical
partition), the share of words the CMU dictionary does not know (broken words are how a lipogram
is gamed), the share of one-letter words other than "a"/"i" (letter lists are how an acrostic is
gamed: "C, A, H, R"), a *readable* pass rate (the judge passes it and both shares are <= 10%),
topic adherence (a content word of the topic used) and the truncation rate.

    OMP_NUM_THREADS=1 python scripts/bench_text_forms_steer.py                 # ~15 min + training
    OMP_NUM_THREADS=1 python scripts/bench_text_forms_steer.py --smoke         # seconds: tiny run
    OMP_NUM_THREADS=1 python scripts/bench_text_forms_steer.py --recipe rlcreate/recipes/text_couplet_steer.yaml \
        --run runs/text_couplet_steer --forms couplet --cache runs/bench_text_couplet_steer \
        --out benchmarks/text_couplet_steer.json                                  # rhyme at line ends
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcreate.scripting import parse_config


@dataclass
class Config:
    recipe: str = "rlcreate/recipes/text_forms_steer.yaml"
    """the token-steering recipe"""
    run: str = "runs/text_forms_steer"
    """run folder (trained here unless it already holds a policy)"""
    timesteps: int = 0
    """override trainer.total_timesteps when training here (0 = the recipe's)"""
    train_seed: int = -1
    """override the recipe's seed when training here (-1 = the recipe's)"""
    forms: tuple[str, ...] = ("lipogram", "acrostic")
    """forms to judge (each: its TEST prompts)"""
    n_prompts: int = 100
    """TEST prompts per form (the first n of form_prompts('test'))"""
    k: int = 4
    """samples per prompt of the start (best-of-n takes n of them, n <= k)"""
    k_steered: int = 2
    """samples per prompt of the trained policy (distinct_k compares the first k_steered texts)"""
    k_rule: int = 1
    """samples per prompt of the hand-written rule"""
    batch: int = 100
    """texts written together (rows of one KV cache)"""
    seed: int = 0
    cache: str = "runs/bench_text_forms_steer"
    """one JSON per condition (texts, EOS flags): a rerun reuses them"""
    out: str = "benchmarks/text_forms_steer.json"
    smoke: bool = False
    """tiny everything (train 96 steps, 2 prompts, 2 samples) into --cache; for the test suite"""


def main(cfg: Config) -> dict:
    if cfg.smoke:
        cfg = dataclasses.replace(cfg, timesteps=16, n_prompts=2, k=2, k_steered=2, k_rule=1, batch=4)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from rlcreate.benchmark import environment, finish, write_json
    from rlcreate.recipe import load_recipe
    from rlcreate.text.evaluate import shared_lm
    from rlcreate.text.form_judges import judge
    from rlcreate.text.form_offers import avoid_flagged, follow_lm, write_texts
    from rlcreate.text.form_prompts import form_prompts
    from rlcreate.text.forms import FORM_REWARDS
    from rlcreate.text.runs import _Unscored, build_text_env
    from rlcreate.train.runner import has_policy, restore, train_run

    env = environment(dataclasses.asdict(cfg))
    run = Path(cfg.run)
    if not has_policy(run):
        recipe = load_recipe(cfg.recipe)
        if cfg.timesteps:
            recipe.trainer["total_timesteps"] = cfg.timesteps
        if cfg.train_seed >= 0:
            recipe.seed = cfg.train_seed
        if cfg.smoke:  # one tiny rollout: 2 rows x 8 tokens
            recipe.trainer["n_envs"], recipe.trainer["checkpoints"], recipe.trainer["samples"] = 2, 1, 2
            recipe.trainer.hyper.update(n_steps=8, batch_size=16, n_epochs=1)
            recipe.env.kwargs["max_new_tokens"], recipe.env.kwargs["min_new_tokens"] = 8, 2
        train_run(recipe, run, progress_bar=False, overwrite=run.exists())
    asm, model = restore(run)
    lm = shared_lm(asm)
    cache = Path(cfg.cache)
    cache.mkdir(parents=True, exist_ok=True)
    cores: dict[int, object] = {}

    def core_for(size: int):
        if size not in cores:
            venv = build_text_env(asm.recipe, lm=lm, reward=_Unscored(), prompts_field="eval_prompts", n_envs=size)
            cores[size] = venv.core
        return cores[size]

    forms = {}
    for form in cfg.forms:
        forms[form] = _one_form(cfg, form, model, asm, lm, core_for, cache, judge, FORM_REWARDS[form](),
                                form_prompts, write_texts, follow_lm, avoid_flagged)
    result = {
        "forms": forms,
        "policy": model.rlcreate_source,
        "steered_beats_start": {f: v["steered_beats_start"] for f, v in forms.items()},
        "training": _training(run),
        "sampler": "every row: one of the LM's top-k offers per token (recipe top_k, max_new_tokens, min_new_tokens); "
                   "start = LM top-k distribution at temperature 1; steered = the policy sampled",
    }
    result = {**finish(env), **result}
    write_json(cfg.out, result)
    for form, v in forms.items():
        print(f"\n{form}:", json.dumps(v["compare"], indent=1))
        print("| condition | samples/prompt | satisfaction [95% CI] | readable | form reward | perplexity "
              "| unknown words | lone letters | topic | truncated | distinct_k |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for c, g in v["groups"].items():
            cells = [f"{g[x]:.2f}" if g.get(x) is not None else "-" for x in
                     ("readable_satisfaction", "form_reward", "perplexity", "unknown_word_share", "lone_letter_share",
                      "topic_adherence", "truncated", "distinct_k")]
            print(f"| {c} | {g.get('samples_per_prompt', '-')} | {g['satisfaction']:.2f} [{g['ci'][0]:.2f}, "
                  f"{g['ci'][1]:.2f}] | " + " | ".join(cells) + " |")
    return result


def _one_form(cfg, form, model, asm, lm, core_for, cache, judge, form_reward, form_prompts, write_texts,
              follow_lm, avoid_flagged) -> dict:
    """Every condition on the form's TEST prompts, judged and compared (the form's JSON entry)."""
    rows = form_prompts("test", forms=(form,))[: cfg.n_prompts]
    prompts = [r["prompt"] for r in rows]
    targets = [r["target"] for r in rows]
    n = len(rows)
    settings = {k: asm.recipe.env.kwargs.get(k) for k in ("top_k", "max_new_tokens", "min_new_tokens", "form_offers")}

    # ---- write texts: every condition on the same prompts, k per prompt, cached per condition
    def condition(name: str, k: int, make_choose) -> dict:
        path = cache / f"{form}_{name}.json"
        # start and rule do not depend on the policy: their texts are reused across trainings (the
        # start not even on the flags' options: it samples the LM's top-k and never reads them)
        used = {k: v for k, v in settings.items() if k != "form_offers"} if name == "start" else settings
        key = model.rlcreate_source if name == "steered" else json.dumps(used, sort_keys=True)
        if path.is_file():
            got = json.loads(path.read_text())
            if got["prompts"] == prompts and got["k"] == k and got.get("policy") == key:
                print(f"{name}: cached", flush=True)
                return got
        import time

        flat = [p for p in prompts for _ in range(k)]
        texts, eos = [], []
        t0 = time.perf_counter()
        for start in range(0, len(flat), cfg.batch):
            chunk = flat[start : start + cfg.batch]
            core = core_for(len(chunk))
            got_t, got_e = write_texts(core, chunk, make_choose(core, cfg.seed + start))
            texts += [t.strip() for t in got_t]
            eos += got_e
        secs = time.perf_counter() - t0
        out = {"prompts": prompts, "k": k, "policy": key, "seconds": round(secs, 1),
               "texts": [texts[i * k : (i + 1) * k] for i in range(n)],
               "eos": [eos[i * k : (i + 1) * k] for i in range(n)]}
        path.write_text(json.dumps(out, ensure_ascii=False))
        print(f"{form} {name}: {len(flat)} texts in {secs:.0f} s", flush=True)
        return out

    def sampler(rule):
        def make(core, seed):
            rng = np.random.default_rng(seed)
            return lambda obs, masks: rule(core, rng)
        return make

    def policy(core, seed):
        model.set_random_seed(seed)
        return lambda obs, masks: model.predict(obs, deterministic=False, action_masks=masks)[0]

    cond = {
        "start": condition("start", cfg.k, sampler(follow_lm)),
        "steered": condition("steered", cfg.k_steered, policy),
        "rule": condition("rule", cfg.k_rule, sampler(avoid_flagged)),
    }

    # ---- judge and quality measures
    import pronouncing

    from rlcreate.text.form_judges import inflections
    from rlcreate.text.forms import words
    from rlcreate.text.judges import bootstrap_ci, noveltybench_scores
    from rlcreate.text.scoring import ReferenceLM

    ref = ReferenceLM(lm[0], lm[1], cache_size=0)

    def per_prompt(c: dict, fn) -> np.ndarray:
        """(n, k) array of fn(text, prompt index)."""
        return np.array([[fn(t, i) for t in ts] for i, ts in enumerate(c["texts"])], float)

    passes = {c: per_prompt(v, lambda t, i: judge(form, t, targets[i])) for c, v in cond.items()}
    if form == "lipogram":  # the judge's two parts
        parts = {"letter_free": lambda t, i: targets[i] not in t.lower(), "twelve_words": lambda t, i: len(words(t)) >= 12}
    elif form == "acrostic":
        from rlcreate.text.form_offers import acrostic_prefix_ok
        from rlcreate.text.forms import verse_lines

        parts = {"initials_right": lambda t, i: acrostic_prefix_ok(t, targets[i]),
                 "line_count_right": lambda t, i: len(verse_lines(t)) == len(targets[i])}
    else:  # couplet: the line shape, and the rhyme as the flags and the reward read it (CMU, not the judge's)
        from rlcreate.text.form_offers import couplet_prefix_ok
        from rlcreate.text.forms import verse_lines

        parts = {"two_lines_of_3_words": lambda t, i: len(verse_lines(t)) == 2
                 and all(len(words(ln)) >= 3 for ln in verse_lines(t)),
                 "cmu_couplet": lambda t, i: couplet_prefix_ok(t, ended=True)}
    part_rates = {name: {c: per_prompt(v, fn) for c, v in cond.items()} for name, fn in parts.items()}
    reward = {c: np.array(form_reward([t for ts in v["texts"] for t in ts],
                                      prompts=[p for p, ts in zip(prompts, v["texts"]) for _ in ts]),
                          float).reshape(n, -1) for c, v in cond.items()}

    def oov(t: str) -> float:
        ws = words(t)
        return float(np.mean([not pronouncing.phones_for_word(w) for w in ws])) if ws else 1.0

    stop = {"a", "an", "the", "of", "in", "at", "on", "over", "after", "and", "to", "s", "day"}
    topic_forms = [set().union(*(inflections(w) for w in words(r["topic"]) if w not in stop) or [set()]) for r in rows]
    unknown = {c: per_prompt(v, lambda t, i: oov(t)) for c, v in cond.items()}

    def lone_letters(t: str) -> float:
        """Share of words that are one letter other than "a" / "i": letter lists ("C, A, H, R")."""
        ws = words(t)
        return float(np.mean([len(w) == 1 and w not in ("a", "i") for w in ws])) if ws else 1.0

    single = {c: per_prompt(v, lambda t, i: lone_letters(t)) for c, v in cond.items()}
    # a pass that reads as prose: the judge passes it, <= 10% lone letters, <= 10% unknown words
    readable = {c: passes[c] * (single[c] <= 0.1) * (unknown[c] <= 0.1) for c in cond}
    topic = {c: per_prompt(v, lambda t, i: bool(topic_forms[i] & set(words(t)))) for c, v in cond.items()}

    def nll(c: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per prompt: summed log-prob and token count of its first k texts under the base LM."""
        flat = [t for ts in c["texts"] for t in ts[:k]]
        fp = [p for p, ts in zip(prompts, c["texts"]) for _ in ts[:k]]
        stats = ref.token_stats(flat, fp)
        lp, cnt, j = np.zeros(n), np.zeros(n), 0
        for i, ts in enumerate(c["texts"]):
            for _ in ts[:k]:
                lp[i] += float(stats[j].logprobs.sum())
                cnt[i] += stats[j].n
                j += 1
        return lp, cnt

    ks = min(cfg.k_steered, cfg.k)
    nlls = {c: nll(v, cfg.k) for c, v in cond.items()}

    def ppl(c: str, ix) -> float:
        lp, cnt = nlls[c]
        return math.exp(-lp[ix].sum() / max(cnt[ix].sum(), 1))

    def ppl_ratio(a: str, b: str) -> dict:
        rng = np.random.default_rng(0)
        idx = np.arange(n)
        boots = [ppl(a, ix) / ppl(b, ix) for ix in (rng.choice(idx, n) for _ in range(1000))]
        return {"ratio": round(ppl(a, idx) / ppl(b, idx), 4),
                "ci": [round(float(np.percentile(boots, 2.5)), 4), round(float(np.percentile(boots, 97.5)), 4)]}

    def ci(x) -> list[float]:
        _, lo, hi = bootstrap_ci(x)
        return [round(lo, 4), round(hi, 4)]

    def distinct(c: str) -> np.ndarray:
        return np.array([noveltybench_scores(ts[:ks])[0] for ts in cond[c]["texts"]]) if ks >= 2 else np.full(n, np.nan)

    # per prompt satisfaction of each reported row
    start1 = passes["start"].mean(1)
    rows_sat: dict[str, np.ndarray] = {"start": start1, "steered": passes["steered"].mean(1), "rule": passes["rule"].mean(1)}
    for m in (2, 4):
        if m <= cfg.k:
            rows_sat[f"best_of_{m}_judge"] = passes["start"][:, :m].max(1)
            pick = reward["start"][:, :m].argmax(1)  # the training reward's choice, then judged
            rows_sat[f"best_of_{m}_reward"] = passes["start"][np.arange(n), pick]

    def summary(c: str) -> dict:
        return {"satisfaction": round(float(rows_sat[c].mean()), 4), "ci": ci(rows_sat[c])}

    groups = {}
    for c in cond:
        groups[c] = {
            **summary(c),
            "samples_per_prompt": cond[c]["k"],
            **{name: round(float(r[c].mean()), 4) for name, r in part_rates.items()},
            "form_reward": round(float(reward[c].mean()), 4),
            "perplexity": round(ppl(c, np.arange(n)), 3),
            "unknown_word_share": round(float(unknown[c].mean()), 4),
            "lone_letter_share": round(float(single[c].mean()), 4),
            "readable_satisfaction": round(float(readable[c].mean()), 4),
            "topic_adherence": round(float(topic[c].mean()), 4),
            "truncated": round(1 - float(np.mean(cond[c]["eos"])), 4),
            "mean_words": round(float(np.mean([len(words(t)) for ts in cond[c]["texts"] for t in ts])), 1),
            "seconds": cond[c]["seconds"],
        }
        if c != "rule" or cfg.k_rule >= ks:
            groups[c]["distinct_k"] = round(float(np.nanmean(distinct(c))), 4) if ks >= 2 else None
    for c in rows_sat:
        if c.startswith("best_of"):
            groups[c] = summary(c)
    steered = rows_sat["steered"]
    compare = {
        "steered_minus_start": {"mean": round(float((steered - start1).mean()), 4), "ci": ci(steered - start1)},
        "rule_minus_start": {"mean": round(float((rows_sat["rule"] - start1).mean()), 4),
                             "ci": ci(rows_sat["rule"] - start1)},
        "steered_minus_rule": {"mean": round(float((steered - rows_sat["rule"]).mean()), 4),
                               "ci": ci(steered - rows_sat["rule"])},
        "perplexity_ratio_steered_vs_start": ppl_ratio("steered", "start"),
        "perplexity_ratio_rule_vs_start": ppl_ratio("rule", "start"),
        "unknown_word_share_steered_minus_start": ci(unknown["steered"].mean(1) - unknown["start"].mean(1)),
        "topic_adherence_steered_minus_start": ci(topic["steered"].mean(1) - topic["start"].mean(1)),
    }
    for c in rows_sat:
        if c.startswith("best_of"):
            d = steered - rows_sat[c]
            compare[f"steered_minus_{c}"] = {"mean": round(float(d.mean()), 4), "ci": ci(d)}
    if ks >= 2:
        ds, d0 = distinct("steered"), distinct("start")
        compare["distinct_k_ratio_steered_vs_start"] = round(float(np.nanmean(ds) / np.nanmean(d0)), 4)
    read = {c: readable[c].mean(1) for c in cond}
    if "best_of_4_judge" in groups:  # a readable pass among 4 start texts (a reader picks it)
        read["best_of_4_judge"] = readable["start"][:, :4].max(1)
        groups["best_of_4_judge"]["readable_satisfaction"] = round(float(read["best_of_4_judge"].mean()), 4)
    for other in sorted(read.keys() - {"steered"}):
        d = read["steered"] - read[other]
        compare[f"readable_steered_minus_{other}"] = {"mean": round(float(d.mean()), 4), "ci": ci(d)}
    beats = compare["steered_minus_start"]["ci"][0] > 0
    samples = [{"prompt": prompts[i], **{f"{c}{suffix}": (cond[c]["texts"][i][0] if not suffix else bool(passes[c][i][0]))
                                         for c in cond for suffix in ("", "_passes")}}
               for i in range(min(n, 8))]
    return {
        "prompts": f"TEST, {n} {form} prompts (targets {sorted(set(targets))[:20]})",
        "steered_beats_start": bool(beats),
        "flagged_mass": _flagged_mass(model, core_for(n), prompts),
        "groups": groups,
        "compare": compare,
        "samples": samples,
    }


def _flagged_mass(model, core, prompts: list[str], steps: int = 12) -> dict:
    """Does the policy use the flags? Along its own texts on the TEST prompts (first ``steps``
    tokens), the probability it puts on offers that break the form vs the LM's top-k distribution
    (the start), over states where some allowed offer is flagged, and the logit its offer head adds
    to an offer that breaks / moves on the form (flag x scale x the head's weights)."""
    import torch as th

    policy = model.policy
    obs = core.reset_with(prompts)
    pol, lm, breaks, moves = [], [], [], []
    for _ in range(steps):
        masks = core.action_masks()
        flags = core.flags() * masks
        with th.no_grad():
            t = th.as_tensor(obs)
            probs = policy.get_distribution(t, action_masks=masks).distribution.probs.numpy()
            w = policy.offer_net(policy._latents(t)[0]).numpy()  # (batch, 2F): the head's weights
        f = policy.offer_features
        shift = core.flag_scale * (w[:, :f] + w[:, f:])  # flag x (weight + weight x (2 active - 1))
        breaks += shift[:, 0].tolist()
        if f > 1:
            moves += shift[:, 1].tolist()
        lp = np.where(masks, core.topk_logprobs.astype(np.float64), -np.inf)
        p0 = np.exp(lp - lp.max(1, keepdims=True))
        p0 /= p0.sum(1, keepdims=True)
        some = flags.any(1)
        pol += (probs * flags).sum(1)[some].tolist()
        lm += (p0 * flags).sum(1)[some].tolist()
        actions = model.predict(obs, deterministic=False, action_masks=masks)[0]
        obs = core.step(actions)[0]
    out = {"steps": steps, "states": len(pol), "policy": round(float(np.mean(pol)), 4) if pol else None,
           "start": round(float(np.mean(lm)), 4) if lm else None,
           "breaks_logit_shift_mean": round(float(np.mean(breaks)), 3),
           "breaks_logit_shift_range": [round(float(np.min(breaks)), 3), round(float(np.max(breaks)), 3)]}
    if moves:
        out["moves_on_logit_shift_mean"] = round(float(np.mean(moves)), 3)
    return out


def _training(run: Path) -> dict:
    """The run's learning curves (form terms, dense penalty, KL per rollout) and compute, from TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves: dict[str, list] = {}
    for f in sorted(run.glob("tb/**/events.out.tfevents.*")):
        ea = EventAccumulator(str(f))
        ea.Reload()
        for tag in ("rewards/lipogram", "rewards/acrostic", "rewards/couplet", "rewards/form_steps", "rewards/fluency",
                    "rollout/ep_rew_mean", "train/kl", "time/fps"):
            if tag in ea.Tags()["scalars"]:
                curves.setdefault(tag, []).extend((e.step, round(e.value, 4)) for e in ea.Scalars(tag))
    out: dict = {"curves": curves}
    if curves.get("time/fps"):
        steps = curves["time/fps"][-1][0]
        out["timesteps"] = steps
        out["env_steps_per_second"] = curves["time/fps"][-1][1]
    for term in ("lipogram", "acrostic", "couplet", "form_steps"):
        got = [v for _, v in curves.get(f"rewards/{term}", [])]
        if got:
            h = max(1, len(got) // 3)
            out[f"{term}_first_third"] = round(float(np.mean(got[:h])), 4)
            out[f"{term}_last_third"] = round(float(np.mean(got[-h:])), 4)
    return out


if __name__ == "__main__":
    main(parse_config(Config))
