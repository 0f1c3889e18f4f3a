"""Texts of a tuned LM (a trainer that fine-tunes the LM itself, e.g. GRPO) next to its base model.

:func:`compare_with_base` writes the run's ``samples/`` (and ``generate``'s output): for each draw
of an eval prompt, a completion of the tuned model (``tuned``, the run's own group) and one of the
base model it was tuned from (``base``), sampled the same way (the run's temperature, full
vocabulary, same seeds) and scored by the recipe's reward set from the same reward state. The
layout is the text runs' one (``texts.json``, ``texts.md``, ``metrics.json`` naming the primary
group), so ``eval`` and ``report`` read it like any text run. :func:`sample_tuned` samples a tuned
model for the audit.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlcreate.text.baselines import write_text_samples
from rlcreate.text.runs import resolve_prompts, score_texts, text_settings
from rlcreate.text.stepping import LMStepper
from rlcreate.trainers import TunedGenerator

__all__ = ["compare_with_base", "sample_tuned", "eval_prompt_draws"]

GROUPS = {
    "tuned": "the fine-tuned model, sampled as trained (temperature, full vocabulary)",
    "base": "the base model it was tuned from, sampled the same way with the same seeds",
}


def eval_prompt_draws(tuned: TunedGenerator, settings: dict, n: int) -> list[str]:
    """``n`` eval prompts, cycling through the run's eval prompts in order."""
    spec = tuned.sampling.get("eval_prompts", settings["eval_prompts"])
    prompts = resolve_prompts(spec, "finetune.eval_prompts")
    return [prompts[i % len(prompts)] for i in range(int(n))]


def sample_tuned(
    model: Any, tokenizer: Any, prompts: Sequence[str], sampling: dict, seed: int, deterministic: bool = False
) -> list[str]:
    """One completion per prompt, sampled as ``sampling`` says (greedy when ``deterministic``), seeded."""
    stepper = LMStepper(
        model,
        tokenizer,
        top_k=1,
        system=sampling.get("system"),
        max_prompt_tokens=sampling.get("max_prompt_tokens", 512),
    )
    out: list[str] = []
    for start in range(0, len(prompts), 32):
        out += stepper.sample(
            list(prompts[start : start + 32]),
            max_new_tokens=int(sampling["max_new_tokens"]),
            temperature=0.0 if deterministic else float(sampling["temperature"]),
            seed=seed + start,
        )
    return out


def compare_with_base(
    tuned: TunedGenerator, recipe: Any, base_lm: Any, reward_set: Any, n: int, out_dir: Path, seed: int
) -> dict:
    """Write ``n`` tuned and ``n`` base completions of the eval prompts with their reward terms."""
    settings = text_settings(recipe)
    prompts = eval_prompt_draws(tuned, settings, n)
    texts = {
        "tuned": sample_tuned(tuned.model, tuned.tokenizer, prompts, tuned.sampling, seed),
        "base": sample_tuned(base_lm[0], base_lm[1], prompts, tuned.sampling, seed),
    }
    state = copy.deepcopy(reward_set.state_dict())
    scored = {g: score_texts(reward_set, texts[g], prompts, state) for g in GROUPS}
    records = [
        {"prompt": p, **{g: {"text": texts[g][j], "prompt": p, **scored[g][j]} for g in GROUPS}}
        for j, p in enumerate(prompts)
    ]
    summary = write_text_samples(
        records,
        Path(out_dir),
        reward_set.names,
        {**settings, "lm": tuned.base, "max_new_tokens": tuned.sampling["max_new_tokens"]},
        GROUPS,
        primary="tuned",
        title="Tuned vs base texts",
    )
    return summary
