"""Text baselines for token recipes (``rlcreate/TextTokens-v0``) at the RL run's budget.

One *evaluation* = one finished text scored by the recipe's reward set (the RL run scores each
text once, when it ends). The RL run's budget is ``trainer.total_timesteps`` tokens; its texts are
at most ``max_new_tokens`` long, so it scored at least ``ceil(total_timesteps / max_new_tokens)``
texts, which is the default budget here (texts that end early at EOS make the RL run score more;
give ``--budget`` to match a run's logged episode count exactly).

Methods, both on the recipe's evaluation prompts (``env.kwargs.eval_prompts``, the HELD-OUT split by
default), cycled in order, every text drawn from the same frozen LM the policy steers, with EOS
masked before ``min_new_tokens`` as the environment does:

* ``sampling``: plain ancestral sampling over a temperature x top-p grid (default
  {0.7, 1.0, 1.3} x {0.9, 1.0}); the budget is split evenly and the settings take turns batch by
  batch, so the growing novelty archive treats them alike. The run's product (``primary``) is the
  setting with the best mean composite, i.e. the grid search a user would do by hand.
* ``several-answers``: the "verbalized sampling" prompt baseline (no training, no reranking): the
  LM is asked, in one reply, for ``n`` very different numbered answers to the prompt (reply length
  ``n x max_new_tokens``, the same token budget per answer), and the answers are parsed from the
  numbering (:func:`several_answers`); each answer is one evaluation, scored against the original
  prompt (so a group reward sees the answers of one reply as one group).
* ``best-of-n``: for each prompt draw, ``n`` samples (temperature 1, full vocabulary) are scored and
  the best by the composite reward is kept: ``budget // n`` selections. ``first_of_n`` (the first
  candidate, a plain sample) is kept next to it to show what reranking buys.

Scores are those the texts received when evaluated (the reward state as it was then): re-scoring a
selected text later would compare it with its own archive entry. The written samples are the LAST
``trainer.samples`` texts of every group, scored against the most developed archive, as the RL run's
samples are scored against its final one.

:func:`run_text_baseline` writes a run folder in the format of ``rlcreate train`` for text:
``config.yaml``, ``samples/texts.json`` (one record per prompt draw: prompt and each group's text,
total and terms), ``samples/texts.md``, ``samples/metrics.json`` (``mean`` holds
``<group>/total`` and ``<group>/<term>``; ``primary`` names the run's own group), plus
``baseline.json`` and ``progress.json``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.recipe import Recipe, build_reward_set
from rlcreate.runbox import write_text  # exclusive temp file + rename: never through a link

__all__ = [
    "TEXT_METHODS",
    "DEFAULT_GRID",
    "DEFAULT_N",
    "sample_texts",
    "default_text_budget",
    "run_text_baseline",
    "write_text_samples",
    "several_answers",
    "SEVERAL_ANSWERS_ASK",
    "DEFAULT_ANSWERS_PER_REPLY",
]

TEXT_METHODS = ("sampling", "best-of-n", "several-answers")
SEVERAL_ANSWERS_ASK = "{prompt} Give {m} very different answers, numbered 1 to {m}, each one or two sentences."
DEFAULT_ANSWERS_PER_REPLY = 4
DEFAULT_GRID = ((0.7, 0.9), (0.7, 1.0), (1.0, 0.9), (1.0, 1.0), (1.3, 0.9), (1.3, 1.0))  # (temperature, top_p)
DEFAULT_N = 8


def sample_texts(
    stepper,
    prompts: Sequence[str],
    max_new_tokens: int,
    min_new_tokens: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """Ancestral samples of the stepper's LM, one per prompt, EOS masked before ``min_new_tokens``
    as the environment does (a fair baseline must too): :meth:`LMStepper.sample`."""
    return stepper.sample(
        list(prompts),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        min_new_tokens=min_new_tokens,
    )


def several_answers(
    stepper,
    prompts: Sequence[str],
    m: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> tuple[list[list[str]], list[str]]:
    """One reply per prompt asking for ``m`` very different numbered answers
    (:data:`SEVERAL_ANSWERS_ASK`, ``m x max_new_tokens`` new tokens); returns the parsed answers per
    prompt (at most ``m``; numbering ``1.``/``1)``/``1:``, else one answer per line) and the replies."""
    import re

    asks = [SEVERAL_ANSWERS_ASK.format(prompt=p, m=m) for p in prompts]
    replies = sample_texts(stepper, asks, m * max_new_tokens, 0, temperature, top_p, seed=seed)
    out = []
    for reply in replies:
        items = [x.strip() for x in re.split(r"(?:^|\n)\s*\d+\s*[.):]\s*", reply) if x.strip()]
        if len(items) < 2:
            items = [x.strip() for x in reply.split("\n") if x.strip()]
        out.append(items[:m])
    return out, replies


def default_text_budget(recipe: Recipe, max_new_tokens: int) -> int:
    """Texts the RL run scored at least: ``ceil(total_timesteps / max_new_tokens)``."""
    return math.ceil(recipe.trainer["total_timesteps"] / max_new_tokens)


def _group_name(temperature: float, top_p: float) -> str:
    return f"T{temperature:g}_p{top_p:g}"


def _check_grid(grid: Any) -> list[tuple[float, float]]:
    from rlcreate.evaluation.baselines import BaselineError

    out = []
    for item in grid:
        ok = (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in item)
        )
        if not ok or item[0] <= 0 or not 0 < item[1] <= 1:
            raise BaselineError(
                f"baselines.grid item {item!r}: write [temperature, top_p] with temperature > 0 "
                "and 0 < top_p <= 1, e.g. [[0.7, 0.9], [1.0, 1.0]]"
            )
        out.append((float(item[0]), float(item[1])))
    if not out:
        raise BaselineError("baselines.grid is empty; give at least one [temperature, top_p] pair")
    return out


def run_text_baseline(
    recipe: Recipe,
    method: str,
    run_dir: Path,
    budget: int | None = None,
    batch: int | None = None,
    n: int | None = None,
    grid: Sequence | None = None,
    lm: Any = None,
    section: dict | None = None,
    progress_bar: bool = True,
) -> dict:
    """Run a text baseline with ``budget`` scored texts and write ``run_dir``; returns ``baseline.json``.

    ``batch``: texts per LM batch (default ``trainer.n_envs``; best-of-n rounds it to a multiple of
    ``n``). ``n``: candidates per prompt for best-of-n (default 8). ``grid``: (temperature, top_p)
    pairs for sampling. ``lm``: an already loaded ``(model, tokenizer)`` (default: the recipe's).
    ``section``: the recipe's resolved ``baselines:`` section, saved in ``config.yaml``."""
    import yaml
    from tqdm.auto import tqdm

    from rlcreate.evaluation.baselines import BaselineError
    from rlcreate.text.runs import load_text_lm, resolve_prompts, text_settings
    from rlcreate.text.stepping import LMStepper

    if method not in TEXT_METHODS:
        raise BaselineError(f"--method {method!r} does not apply to token recipes; use one of {TEXT_METHODS}")
    settings = text_settings(recipe)
    prompts = resolve_prompts(settings["eval_prompts"], "env.kwargs.eval_prompts")
    budget = int(budget if budget is not None else default_text_budget(recipe, settings["max_new_tokens"]))
    batch = int(batch or recipe.trainer["n_envs"])
    if method == "best-of-n":
        n = int(n if n is not None else DEFAULT_N)
        if n < 2:
            raise BaselineError(f"n = {n}: best-of-n needs at least 2 candidates per prompt")
        batch = max(batch // n, 1) * n
        groups = ["best_of_n", "first_of_n"]
        draws = [(1.0, 1.0)]
    elif method == "several-answers":
        n = int(n if n is not None else DEFAULT_ANSWERS_PER_REPLY)
        if n < 2:
            raise BaselineError(f"n = {n}: several-answers asks for at least 2 answers per reply")
        groups, draws = ["several_answers"], [(1.0, 1.0)]
    else:
        n = 1  # sampling draws one text per prompt and grid setting (n is unused by this method)
        draws = _check_grid(grid if grid is not None else DEFAULT_GRID)
        groups = [_group_name(*d) for d in draws]
    per_group = budget // n if method == "best-of-n" else budget // len(draws)
    if method == "several-answers":
        per_group = budget
    if per_group < 1:
        need = n if method == "best-of-n" else len(draws)
        raise BaselineError(
            f"--budget {budget}: {method} needs at least {need} evaluations (one per "
            f"{'candidate of one prompt' if method == 'best-of-n' else 'grid setting'}); "
            f"give --budget >= {need}"
        )
    lm = lm if lm is not None else load_text_lm(settings)
    stepper = LMStepper(
        lm[0], lm[1], top_k=1, system=settings["system"], max_prompt_tokens=settings["max_prompt_tokens"]
    )
    reward_set = build_reward_set(recipe)
    term_names = list(reward_set.names)
    # per group: (prompt, text, total, terms) of every selected / sampled text, in order
    kept: dict[str, list[tuple[str, str, float, dict]]] = {g: [] for g in groups}
    progress, evaluations, best_so_far, cursor = [], 0, -math.inf, 0
    t0 = time.perf_counter()
    rows_per_round = (batch // n) if method == "best-of-n" else batch
    if method == "several-answers":
        rows_per_round = max(batch // n, 1)  # replies per round, each with up to n answers
    rounds = -(-per_group // rows_per_round)
    if method == "several-answers":  # a reply may parse to fewer than n answers: allow up to one per reply
        rounds = -(-budget // rows_per_round)
    bar = tqdm(total=budget, desc=method, disable=not progress_bar)
    for r in range(rounds):
        take = min(rows_per_round, per_group - r * rows_per_round)
        if method == "several-answers":
            if evaluations >= budget:
                break
            draw_prompts = [prompts[(cursor + i) % len(prompts)] for i in range(rows_per_round)]
            answers, _ = several_answers(
                stepper, draw_prompts, n, settings["max_new_tokens"], seed=recipe.seed * 1_000_003 + evaluations
            )
            batch_prompts = [p for p, a in zip(draw_prompts, answers) for _ in a][: budget - evaluations]
            texts = [t for a in answers for t in a][: len(batch_prompts)]
            cursor += rows_per_round
            if not texts:
                continue
            result = reward_set(texts, prompts=batch_prompts, progress=min(evaluations / budget, 1.0))
            totals = np.asarray(result.total, np.float64)
            evaluations += len(texts)
            bar.update(len(texts))
            best_so_far = max(best_so_far, float(totals.max()))
            progress.append(
                {
                    "round": r,
                    "group": groups[0],
                    "evaluations": evaluations,
                    "best": float(totals.max()),
                    "mean": float(totals.mean()),
                    "best_so_far": best_so_far,
                }
            )
            kept[groups[0]] += [
                (p, t, float(totals[i]), result.per_sample(i)) for i, (p, t) in enumerate(zip(batch_prompts, texts))
            ]
            continue
        for g, (temperature, top_p) in zip(groups if method == "sampling" else groups[:1], draws):
            draw_prompts = [prompts[(cursor + i) % len(prompts)] for i in range(take)]
            reps = n if method == "best-of-n" else 1
            batch_prompts = [p for p in draw_prompts for _ in range(reps)]
            texts = sample_texts(
                stepper,
                batch_prompts,
                settings["max_new_tokens"],
                settings["min_new_tokens"],
                temperature,
                top_p,
                seed=recipe.seed * 1_000_003 + evaluations,
            )
            result = reward_set(texts, prompts=batch_prompts, progress=min(evaluations / budget, 1.0))
            totals = np.asarray(result.total, np.float64)
            evaluations += len(texts)
            bar.update(len(texts))
            best_so_far = max(best_so_far, float(totals.max()))
            progress.append(
                {
                    "round": r,
                    "group": g,
                    "evaluations": evaluations,
                    "best": float(totals.max()),
                    "mean": float(totals.mean()),
                    "best_so_far": best_so_far,
                }
            )
            if method == "best-of-n":
                for j, p in enumerate(draw_prompts):
                    cand = range(j * n, (j + 1) * n)
                    pick = max(cand, key=lambda i: totals[i])  # first index wins ties: deterministic
                    kept["best_of_n"].append((p, texts[pick], float(totals[pick]), result.per_sample(pick)))
                    kept["first_of_n"].append((p, texts[j * n], float(totals[j * n]), result.per_sample(j * n)))
            else:
                kept[g] += [
                    (p, t, float(totals[i]), result.per_sample(i)) for i, (p, t) in enumerate(zip(batch_prompts, texts))
                ]
        cursor += take
    bar.close()
    seconds = time.perf_counter() - t0

    means = {g: float(np.mean([x[2] for x in kept[g]])) for g in groups}
    primary = "best_of_n" if method == "best-of-n" else max(groups, key=lambda g: means[g])
    n_samples = min(recipe.trainer["samples"], min(len(v) for v in kept.values()))
    records = []
    for j in range(n_samples):
        rec: dict[str, Any] = {"prompt": kept[primary][-n_samples + j][0]}
        for g in groups:
            p, t, total, terms = kept[g][-n_samples + j]
            rec[g] = {"text": t, "prompt": p, "total": total, "terms": terms}
        records.append(rec)

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = recipe.to_dict()
    config["baselines"] = {**(section or {}), "method": method, "budget": budget}
    write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    summary = write_text_samples(
        records, run_dir / "samples", term_names, settings, _descriptions(method, draws, n), primary
    )
    write_text(run_dir / "progress.json", json.dumps(progress, indent=1))
    info = {
        "method": method,
        "domain": "text",
        "budget": budget,
        "evaluations": evaluations,
        "batch": batch,
        "primary": primary,
        "group_means": means,
        "best_return": best_so_far,
        "final_mean_return": progress[-1]["mean"],
        "samples_mean_return": summary["mean"][f"{primary}/total"],
        "prompts": settings["eval_prompts"] if isinstance(settings["eval_prompts"], str) else "custom",
        "seconds": round(seconds, 2),
        "evaluations_per_second": round(evaluations / max(seconds, 1e-9), 2),
    }
    if method == "best-of-n":
        info.update(n=n, selections=len(kept["best_of_n"]))
    elif method == "several-answers":
        info.update(answers_per_reply=n, ask=SEVERAL_ANSWERS_ASK)
    else:
        info["grid"] = [list(d) for d in draws]
    write_text(run_dir / "baseline.json", json.dumps(info, indent=2))
    return info


def write_text_samples(
    records: list[dict],
    out_dir: Path,
    term_names: Sequence[str],
    settings: dict,
    groups: dict[str, str],
    primary: str,
    title: str = "Baseline texts",
) -> dict:
    """``texts.json``, ``texts.md`` and ``metrics.json`` in the layout of
    :func:`rlcreate.text.runs.write_comparison` (which is fixed to the steered / plain / lm_topk
    groups), for any named groups; ``metrics.json`` also names the ``primary`` group."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mean: dict[str, float] = {}
    for g in groups:
        mean[f"{g}/total"] = _nanmean([r[g]["total"] for r in records])
        for t in term_names:
            mean[f"{g}/{t}"] = _nanmean([r[g]["terms"].get(t) for r in records])
    summary = {
        "n": len(records),
        "mean": mean,
        "terms": list(term_names),
        "primary": primary,
        "settings": {k: settings[k] for k in ("lm", "eval_prompts", "top_k", "max_new_tokens")},
        "groups": dict(groups),
    }
    write_text(out_dir / "texts.json", json.dumps(records, indent=2, ensure_ascii=False))
    write_text(out_dir / "metrics.json", json.dumps(summary, indent=2))
    head = ["group", "total"] + list(term_names)
    lines = [
        f"# {title} (primary group: {primary})",
        "",
        "Mean reward over the samples:",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for g in groups:
        lines.append(
            "| " + " | ".join([g, f"{mean[f'{g}/total']:.3f}"] + [f"{mean[f'{g}/{t}']:.3f}" for t in term_names]) + " |"
        )
    lines += ["", "| prompt | group | total | text |", "|---|---|---|---|"]
    for r in records:
        for i, g in enumerate(groups):
            lines.append(
                f"| {_cell(r[g]['prompt']) if i == 0 else ''} | {g} | {r[g]['total']:.3f} | {_cell(r[g]['text'])} |"
            )
    write_text(out_dir / "texts.md", "\n".join(lines) + "\n")
    return summary


def _nanmean(values: list) -> float:
    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _descriptions(method: str, draws, n: int) -> dict[str, str]:
    if method == "several-answers":
        return {
            "several_answers": f"answers parsed from one reply asking for {n} very different numbered answers "
            "(T=1, full vocabulary)"
        }
    if method == "best-of-n":
        return {
            "best_of_n": f"best of {n} plain samples (T=1, full vocabulary) by the recipe's composite reward",
            "first_of_n": f"the first of the {n} candidates: one plain sample, no reranking",
        }
    return {_group_name(t, p): f"ancestral sampling, temperature {t:g}, top-p {p:g}" for t, p in draws}
