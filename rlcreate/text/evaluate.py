"""Evaluation of text runs: judges per group of texts, flags, audit rollouts and the report's text
section. Called through the text domain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.evaluation.html import esc, fmt, table
from rlcreate.evaluation.summary import composite, read_mapping
from rlcreate.trainers import TunedGenerator

__all__ = [
    "evaluate_text_run",
    "text_flags",
    "audit_texts",
    "texts_html",
    "TEXT_COPIED_FLAG",
    "TEXT_SELF_BLEU_FLAG",
    "TEXT_DISTINCT2_FLAG",
]

TEXT_COPIED_FLAG = 0.5
TEXT_SELF_BLEU_FLAG = 50.0
TEXT_DISTINCT2_FLAG = 0.5


def text_flags(texts: Sequence[str], judged: dict | None = None) -> dict:
    """Memorisation and collapse flags of a text set (thresholds in :mod:`rlcreate.evaluation.audit`)."""
    from rlcreate.text.judges import COPIED_RUN_WORDS, run_text_judges

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
    return {
        "memorisation": {
            "flag": copied > TEXT_COPIED_FLAG,
            "copied": copied,
            "threshold": TEXT_COPIED_FLAG,
            "reason": f"{copied:.0%} of texts share a run of >= {COPIED_RUN_WORDS} words with the corpus",
        },
        "collapse": {
            "flag": bool(reasons),
            "self_bleu": sb,
            "distinct_2": d2,
            "reason": "; ".join(reasons) or f"self-BLEU {sb:.1f}, distinct-2 {d2:.2f}",
        },
    }


def shared_lm(asm: Any):
    """The recipe's LM, loaded once per assembly."""
    from rlcreate.text.runs import load_text_lm, text_settings

    if "lm" not in asm.shared:
        asm.shared["lm"] = load_text_lm(text_settings(asm.recipe))
    return asm.shared["lm"]


def base_lm(asm: Any, tuned: TunedGenerator):
    """The base model a tuned LM was tuned from: the recipe's shared LM when it is that one."""
    from rlcreate.text.loading import load_causal_lm
    from rlcreate.text.runs import text_settings

    if tuned.base == text_settings(asm.recipe)["lm"]:
        return shared_lm(asm)
    if asm.shared.get("base_name") != tuned.base:
        asm.shared["base_lm"], asm.shared["base_name"] = load_causal_lm(tuned.base), tuned.base
    return asm.shared["base_lm"]


def evaluate_text_run(run: Path, asm: Any, n: int | None = None, judges: Sequence[str] | None = None, **_: Any) -> dict:
    """Judge a text run's texts. With ``n`` and a final policy, ``n`` fresh steered / plain / LM-top-k
    texts on the eval prompts (written to ``RUN/eval_samples/``); otherwise the run's
    ``samples/texts.json``. Every group of texts is judged; the run's own group (``primary``:
    ``steered`` for RL, the baseline's product otherwise) gives ``judges``, ``composite`` and flags."""
    from rlcreate.text.judges import DEFAULT_TEXT_JUDGES, check_text_judges, run_text_judges
    from rlcreate.text.runs import read_text_records
    from rlcreate.train.runner import RunFolderError, has_policy, restore

    recipe = asm.recipe
    if asm.trainer.produces == "generator":  # the LM itself was tuned: base vs tuned on the TEST prompts
        from rlcreate.text.judges import evaluate_finetune_run

        if not has_policy(run):
            raise RunFolderError(
                f"{run}: no model/ and no complete checkpoints/step_*: nothing to evaluate; "
                "train it with `rlcreate train` (--resume continues an interrupted run)"
            )
        asm, tuned = restore(run, asm=asm)
        tuned_result = evaluate_finetune_run(run, tuned, n_prompts=n, lm=base_lm(asm, tuned))
        tuned_result["flags"] = text_flags(tuned_result.pop("texts"), tuned_result["judges"])
        return tuned_result
    names = check_text_judges(list(judges) if judges else (recipe.judges or list(DEFAULT_TEXT_JUDGES)))
    notes: list[str] = []
    if n and has_policy(run):
        asm, model = restore(run, asm=asm)
        asm.domain.generate(model, asm, n, run / "eval_samples")
        folder, source = run / "eval_samples", f"{n} texts per group from the {model.rlcreate_source} (eval_samples/)"
    else:
        if n:
            notes.append(f"--n {n} ignored: this run has no policy to generate from; judged its samples/")
        folder = run / "eval_samples" if (run / "eval_samples" / "texts.json").is_file() else run / "samples"
        source = f"texts in {folder.name}/"
    records = read_text_records(folder)
    if not records:
        raise RunFolderError(
            f"{run}: no readable {folder.name}/texts.json (missing, damaged or hand-edited); nothing to "
            "evaluate (train the run to the end, or write texts with `rlcreate generate RUN --n 16`)"
        )
    groups = [g for g in records[0] if g != "prompt"]
    primary = read_mapping(folder / "metrics.json").get("primary", "steered")
    if primary not in groups:
        primary = groups[0]
    lm = shared_lm(asm) if "perplexity" in names else None
    result: dict[str, Any] = {
        "run": run.name,
        "domain": "text",
        "source": source,
        "n_levels": len(records),
        "primary": primary,
        "groups": {},
    }
    for g in groups:
        texts = [r[g]["text"] for r in records]
        totals = np.array([r[g]["total"] for r in records], np.float64)
        judged = run_text_judges(texts, names, prompts=[r[g]["prompt"] for r in records], lm=lm)
        result["groups"][g] = {"judges": judged, "composite": composite(totals)}
    result["judges"] = result["groups"][primary]["judges"]
    result["composite"] = result["groups"][primary]["composite"]
    result["flags"] = text_flags([r[primary]["text"] for r in records], result["judges"])
    baseline = read_mapping(run / "baseline.json")
    if baseline:
        result["search"] = {k: baseline.get(k) for k in ("method", "evaluations", "best_return", "primary")}
    result["notes"] = notes
    return result


def audit_texts(
    asm: Any, model: Any, progress: float, n: int, deterministic: bool, seed: int, judges: list[str]
) -> tuple[dict, dict, dict]:
    """One audit point: ``n`` texts of ``model`` (a steering policy, or a tuned LM) on the eval prompts
    -> (mean terms, judged, flags)."""
    from rlcreate.text.judges import run_text_judges
    from rlcreate.train.runner import rollout

    if isinstance(model, TunedGenerator):
        texts, prompts, terms = _tuned_texts(asm, model, n, deterministic, seed)
        judged = run_text_judges(
            texts, sorted(set(judges) | {"memorization", "distinct", "self_bleu"}), prompts=prompts, lm=shared_lm(asm)
        )
        return terms, judged, text_flags(texts, judged)
    venv = asm.make_env(min(n, 16), seed, purpose="eval")
    venv.set_progress(progress)
    model.set_random_seed(seed)
    episodes = rollout(model, venv, n, deterministic=deterministic)  # row-ordered: short texts not favoured
    texts, prompts = [e["text"] for e in episodes], [e["prompt"] for e in episodes]
    terms = {}
    for k in episodes[0]["rewards"]:
        vals = [e["rewards"][k] for e in episodes if e["rewards"][k] == e["rewards"][k]]
        terms[k] = float(np.mean(vals)) if vals else float("nan")
    judged = run_text_judges(
        texts, sorted(set(judges) | {"memorization", "distinct", "self_bleu"}), prompts=prompts, lm=shared_lm(asm)
    )
    return terms, judged, text_flags(texts, judged)


def _tuned_texts(
    asm: Any, tuned: TunedGenerator, n: int, deterministic: bool, seed: int
) -> tuple[list[str], list[str], dict]:
    """``n`` completions of a tuned LM on the eval prompts and the mean of every reward term over
    them (scored from the checkpoint's reward state, which is restored afterwards)."""
    import copy

    from rlcreate.text.runs import score_texts, text_settings
    from rlcreate.text.tuned import eval_prompt_draws, sample_tuned

    prompts = eval_prompt_draws(tuned, text_settings(asm.recipe), n)
    texts = sample_tuned(tuned.model, tuned.tokenizer, prompts, tuned.sampling, seed, deterministic)
    rows = score_texts(asm.reward_set, texts, prompts, copy.deepcopy(asm.reward_set.state_dict()))
    terms = {}
    for k in asm.reward_set.names:
        vals = [r["terms"][k] for r in rows if r["terms"][k] == r["terms"][k]]
        terms[k] = float(np.mean(vals)) if vals else float("nan")
    return texts, prompts, terms


def texts_html(d: dict, limit: int) -> str:
    """The first ``limit`` prompt draws: every group's text with its composite, terms and judge scores."""
    records = d["samples"][: max(limit, 1)]
    if not records:
        return "<p class='missing'>no texts</p>"
    primary = read_mapping(d["sample_dir"] / "metrics.json").get("primary", "steered")
    groups = [g for g in records[0] if g != "prompt"]
    groups.sort(key=lambda g: g != primary)  # the run's own texts first
    judged = (d["metrics"] or {}).get("groups") or {}
    terms = list(records[0][groups[0]]["terms"])
    head = ["prompt", "group", "text", "total"] + terms + ["perplexity (standalone)", "longest corpus run"]
    rows = []
    for j, r in enumerate(records):
        for g in groups:
            jg = (judged.get(g) or {}).get("judges") or {}
            nll = (jg.get("perplexity") or {}).get("per_text_nll") or []
            run_len = (jg.get("memorization") or {}).get("per_text_longest") or []
            ppl = float(np.exp(nll[j])) if j < len(nll) and nll[j] == nll[j] else "—"
            cells = [
                esc(r["prompt"]) if g == groups[0] else "",
                f"<b>{esc(g)}</b>" if g == primary else esc(g),
                f"<div style='text-align:left;max-width:520px'>{esc(r[g]['text'])}</div>",
                fmt(r[g]["total"]),
            ]
            cells += [fmt(r[g]["terms"].get(t, "—")) for t in terms]
            cells += [fmt(ppl), fmt(run_len[j]) if j < len(run_len) else "—"]
            rows.append(cells)
    head_html = "".join(f"<th>{esc(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    by_group = ""
    if judged:
        keys = [
            (j, m)
            for j, vals in judged[next(iter(judged))]["judges"].items()
            for m, v in vals.items()
            if isinstance(v, (int, float))
        ]
        by_group = "<p>Judges by group (bold: this run's own texts):</p>" + table(
            ["measure"] + list(judged),
            [[f"{j}.{m}"] + [judged[g]["judges"].get(j, {}).get(m, "—") for g in judged] for j, m in keys]
            + [["composite mean"] + [(judged[g].get("composite") or {}).get("mean", "—") for g in judged]],
        )
    return "<h3>Texts</h3>" + by_group + f"<table><tr>{head_html}</tr>{body}</table>"
