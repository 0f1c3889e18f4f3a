"""Text runs: steer a frozen causal LM with (Maskable)PPO over ``rlcreate/TextTokens-v0``.

``rlcreate train RECIPE.yaml`` on a TextTokens recipe writes the same run folder as every run (see
:mod:`rlcreate.trainers`) and ends, through the text domain, by writing ``samples/``: steered texts
on the HELD-OUT prompts next to plain samples of the same LM for the same prompts
(:func:`compare_with_plain`). ``rlcreate generate RUN --n N`` writes the same comparison. (A
recipe whose trainer fine-tunes the LM itself writes tuned-vs-base texts: :mod:`rlcreate.text.tuned`.)

The comparison (:func:`compare_with_plain`) holds three groups of texts, one per prompt draw:

- ``steered``: the trained policy picks one of the LM's top-k tokens at every step (sampled from
  the policy, seeded);
- ``plain``: ancestral sampling from the same LM (temperature 1, full vocabulary) — the generator
  without any steering;
- ``lm_topk``: the LM's own distribution renormalised over the same top-k slots the policy sees, i.e.
  an untrained policy that follows the LM. It separates what the top-k restriction alone buys from
  what the learned policy adds.

All three are scored by the recipe's reward set in one batch each, every batch starting from the
same reward state (the run's final novelty archive), so archive growth never favours one group.

A text recipe's ``env.kwargs`` (validated here, errors name field, value and fix):

``lm``               model id / local folder / ``smollm2-135m-instruct`` (offline default)
``prompts``          ``train`` (default), ``heldout``, a UTF-8 file (one prompt a line) or a list
``eval_prompts``     prompts for samples and ``generate`` (default ``heldout``)
``top_k``            tokens offered per step (default 16)
``max_new_tokens``   length cap per text (default 32)
``min_new_tokens``   EOS masked before this many tokens (default 0)
``system``           system message for chat models (default none)
``hidden_clip``, ``max_prompt_tokens``   as for :func:`rlcreate.text.envs.make_text_tokens_env`
``form_offers``      true: the observation ends with per-offer form flags (a lipogram's banned
                     letter in the token), :mod:`rlcreate.text.form_offers`; default false; or
                     a mapping of its options (``form_penalty``, ``form_bonus``, ``flag_scale``,
                     ``forms``: the forms flagged, default lipogram and acrostic; couplet is opt-in;
                     ``strict_acrostic``: lone-letter / all-capital line starts break an acrostic)

On a CPU shared with other jobs, run with ``OMP_NUM_THREADS=1``: torch's spinning worker threads
otherwise slow every LM forward pass many times over (measured here: 1-2 env steps/s with default
threads at load 10 on 2 cores, 11-12 with one thread at load 5).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.recipe import Recipe, RecipeError, build_reward_set
from rlcreate.runbox import write_text  # exclusive temp file + rename: never through a link
from rlcreate.train.runner import rollout
from rlcreate.validate import check_keys, suggest

__all__ = [
    "TEXT_ENV_KEYS",
    "TextSettings",
    "text_settings",
    "resolve_prompts",
    "load_text_lm",
    "build_text_env",
    "compare_with_plain",
    "score_texts",
    "write_comparison",
    "read_text_records",
]
from rlcreate.text.data import PROMPT_SPLITS  # train, dev, test, heldout (= dev)

_DEFAULTS = {
    "lm": "smollm2-135m-instruct",
    "prompts": "train",
    "eval_prompts": "heldout",
    "top_k": 16,
    "max_new_tokens": 32,
    "min_new_tokens": 0,
    "system": None,
    "hidden_clip": 10.0,
    "max_prompt_tokens": 512,
    "form_offers": False,
}
TEXT_ENV_KEYS = frozenset(_DEFAULTS)
GROUPS = ("steered", "plain", "lm_topk")


class TextSettings(dict):
    """The validated ``env.kwargs`` of a text recipe (defaults filled in), as a plain dict."""


def text_settings(recipe: Recipe) -> TextSettings:
    """Validate a TextTokens recipe's ``env.kwargs``; :class:`RecipeError` names field, value, fix."""
    kwargs = dict(recipe.env_kwargs)
    check_keys("env.kwargs", kwargs, TEXT_ENV_KEYS, RecipeError)
    s = TextSettings({**_DEFAULTS, **kwargs})
    for key, low in (("top_k", 1), ("max_new_tokens", 1), ("min_new_tokens", 0), ("max_prompt_tokens", 1)):
        v = s[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise RecipeError(f"env.kwargs.{key} = {v!r}: must be an integer >= {low}")
    if s["min_new_tokens"] > s["max_new_tokens"]:
        raise RecipeError(
            f"env.kwargs.min_new_tokens = {s['min_new_tokens']}: must not exceed "
            f"max_new_tokens ({s['max_new_tokens']}); lower it or raise max_new_tokens"
        )
    hc = s["hidden_clip"]
    if isinstance(hc, bool) or not isinstance(hc, (int, float)) or not math.isfinite(hc) or hc <= 0:
        raise RecipeError(f"env.kwargs.hidden_clip = {hc!r}: must be a positive number, e.g. 10.0")
    if not isinstance(s["lm"], str) or not s["lm"].strip():
        raise RecipeError(
            f"env.kwargs.lm = {s['lm']!r}: write a model folder, a hub id in the local "
            "cache, or smollm2-135m-instruct (the offline default)"
        )
    fo = s["form_offers"]
    if not isinstance(fo, (bool, dict)) or (
        isinstance(fo, dict) and not set(fo) <= {"form_penalty", "form_bonus", "flag_scale", "forms", "strict_acrostic"}
    ):
        raise RecipeError(
            f"env.kwargs.form_offers = {fo!r}: write true or false, or a mapping of form_penalty, form_bonus, "
            "flag_scale, forms, strict_acrostic"
        )
    if isinstance(fo, dict) and "forms" in fo:
        from rlcreate.text.form_offers import FORM_OFFER_FORMS

        got = fo["forms"]
        if not isinstance(got, list) or not got or not all(f in FORM_OFFER_FORMS for f in got):
            raise RecipeError(
                f"env.kwargs.form_offers.forms = {got!r}: write a list of some of {list(FORM_OFFER_FORMS)}, "
                "e.g. [lipogram, acrostic, couplet]"
            )
    if s["system"] is not None and not isinstance(s["system"], str):
        raise RecipeError(f"env.kwargs.system = {s['system']!r}: must be a string or left out")
    return s


def resolve_prompts(value: Any, field: str) -> list[str]:
    """A prompt spec -> prompts: a split name (``train`` / ``heldout``), a UTF-8 file, or a list."""
    from rlcreate.text.data import prompts as shipped
    from rlcreate.text.loading import PromptError, read_prompts

    if isinstance(value, str) and value.split(":", 1)[0] in PROMPT_SPLITS:
        from rlcreate.text.data import TextDataError

        try:
            if ":" in value:  # forms_<split>:<form>, one form of a forms split
                from rlcreate.text.form_prompts import one_form_prompts

                return one_form_prompts(value)
            return shipped(value)
        except TextDataError as err:
            raise RecipeError(f"{field}: {err}") from None
    if isinstance(value, list):
        bad = [i for i, p in enumerate(value) if not isinstance(p, str) or not p.strip()]
        if not value or bad:
            raise RecipeError(
                f"{field} = {value!r:.80}: prompt {bad[0] if bad else 0} is empty or not a "
                "string; give a non-empty list of non-empty strings"
            )
        return [p.strip() for p in value]
    if isinstance(value, str):
        if not Path(value).expanduser().is_file():
            raise RecipeError(
                f"{field} = {value!r}: not a prompt split nor an existing file."
                f"{suggest(value, PROMPT_SPLITS)} Use "
                f"{' or '.join(PROMPT_SPLITS)}, a UTF-8 file with one prompt a line, or a list"
            )
        try:
            return read_prompts(Path(value).expanduser())
        except PromptError as err:
            raise RecipeError(f"{field}: {err}") from None
    raise RecipeError(f"{field} = {value!r}: use 'train', 'heldout', a prompt file path or a list of strings")


def load_text_lm(settings: TextSettings):
    """The recipe's LM as ``(model, tokenizer)``; an unknown id says how to use the offline default."""
    from rlcreate.text.loading import ModelNotFoundError, load_causal_lm

    try:
        return load_causal_lm(settings["lm"])
    except ModelNotFoundError as err:
        raise ModelNotFoundError(f"env.kwargs.lm = {settings['lm']!r}: {err}") from None


def _stepper(lm, settings: TextSettings):
    from rlcreate.text.stepping import LMStepper

    return LMStepper(
        lm[0],
        lm[1],
        top_k=settings["top_k"],
        system=settings["system"],
        max_prompt_tokens=settings["max_prompt_tokens"],
    )


def build_text_env(
    recipe: Recipe,
    lm=None,
    reward=None,
    prompts_field: str = "prompts",
    n_envs: int | None = None,
    seed: int | None = None,
    settings: TextSettings | None = None,
):
    """The recipe's TextTokens VecEnv over ``prompts_field`` (``prompts`` or ``eval_prompts``).

    Prompts are validated against the LM (empty, over ``max_prompt_tokens``) here, before anything is
    written, and errors name the recipe field.
    """
    from rlcreate.envs.text_tokens import TextTokensCore, TextTokensVecEnv
    from rlcreate.text.loading import PromptError

    settings = settings or text_settings(recipe)
    prompts = resolve_prompts(settings[prompts_field], f"env.kwargs.{prompts_field}")
    lm = lm if lm is not None else load_text_lm(settings)
    reward = reward if reward is not None else build_reward_set(recipe)
    core_class: Callable[..., TextTokensCore] = TextTokensCore
    extra: dict = {}
    if settings["form_offers"]:
        from rlcreate.text.form_offers import FormOffersCore

        core_class = FormOffersCore
        extra = dict(settings["form_offers"]) if isinstance(settings["form_offers"], dict) else {}
    try:
        core = core_class(
            _stepper(lm, settings),
            reward,
            prompts,
            n=n_envs or recipe.trainer["n_envs"],
            max_new_tokens=settings["max_new_tokens"],
            min_new_tokens=settings["min_new_tokens"],
            hidden_clip=settings["hidden_clip"],
            **extra,
        )
    except PromptError as err:
        raise RecipeError(f"env.kwargs.{prompts_field}: {err}") from None
    venv = TextTokensVecEnv(core, seed=recipe.seed if seed is None else seed)
    return venv


class _Unscored:
    """A reward that scores nothing (0 per text): rollouts for the comparison are scored afterwards,
    all groups from the same reward state, so the environment's own scoring is skipped."""

    __name__ = name = "unscored"

    def __call__(self, samples, **context):
        return [0.0] * len(samples)


# ------------------------------------------------------------------------------------ comparison


def score_texts(reward_set, texts: Sequence[str], prompts: Sequence[str], state: dict | None) -> list[dict]:
    """Every text's reward terms and total, the batch scored from reward ``state`` (then restored)."""
    if state is not None:
        reward_set.load_state_dict(copy.deepcopy(state))
    result = reward_set(list(texts), prompts=list(prompts), progress=1.0)
    rows = [{"total": float(result.total[i]), "terms": result.per_sample(i)} for i in range(len(texts))]
    if state is not None:
        reward_set.load_state_dict(copy.deepcopy(state))
    return rows


def compare_with_plain(
    model, recipe: Recipe, lm, reward_set, n: int, out_dir: Path, seed: int = 1, settings: TextSettings | None = None
) -> dict:
    """Write steered, plain and LM-top-k texts on the eval prompts with their reward terms.

    Files: ``texts.json`` (one record per prompt draw: prompt and the three texts with terms),
    ``texts.md`` (a readable table) and ``metrics.json`` (the returned summary: ``mean`` holds
    ``<group>/total`` and ``<group>/<term>`` for every group, and ``steered_minus_plain``).
    """
    settings = settings or text_settings(recipe)
    n = int(n)
    if n < 1:
        raise RecipeError(f"n = {n}: ask for at least one sample")
    venv = build_text_env(
        recipe, lm=lm, reward=_Unscored(), prompts_field="eval_prompts", n_envs=min(n, 16), seed=seed, settings=settings
    )
    model.set_random_seed(seed)  # the policy samples its actions: same seed, same texts

    steered = rollout(model, venv, n, deterministic=False)
    prompts = [info["prompt"] for info in steered]

    rng = np.random.default_rng(seed)
    venv.seed(seed)

    def follow_lm(obs):  # sample a slot from the LM's top-k distribution (masked slots have -inf)
        lp = venv.core.topk_logprobs.astype(np.float64)
        p = np.exp(lp - lp.max(axis=1, keepdims=True))
        p = np.where(venv.action_masks(), p, 0.0)
        p /= p.sum(axis=1, keepdims=True)
        return np.array([rng.choice(len(row), p=row) for row in p])

    # Re-seeded, so the rows start from the same prompt draws as the steered rollout; later draws
    # can differ (rows finish at other times), hence each record keeps the group's own prompt.
    lm_topk = rollout(follow_lm, venv, n)
    plain_texts: list[str] = []
    stepper = venv.core.stepper
    for start in range(0, n, 32):
        plain_texts += stepper.sample(
            prompts[start : start + 32], max_new_tokens=settings["max_new_tokens"], temperature=1.0, seed=seed + start
        )
    state = copy.deepcopy(reward_set.state_dict())
    groups = {
        "steered": ([i["text"] for i in steered], prompts),
        "plain": (plain_texts, prompts),
        "lm_topk": ([i["text"] for i in lm_topk], [i["prompt"] for i in lm_topk]),
    }
    scored = {g: score_texts(reward_set, texts, ps, state) for g, (texts, ps) in groups.items()}
    records = []
    for j in range(n):
        rec = {"prompt": prompts[j]}
        for g, (texts, ps) in groups.items():
            rec[g] = {"text": texts[j], "prompt": ps[j], **scored[g][j]}
        records.append(rec)
    return write_comparison(records, Path(out_dir), reward_set.names, settings)


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def write_comparison(records: list[dict], out_dir: Path, term_names: Sequence[str], settings: dict) -> dict:
    """``texts.json``, ``texts.md`` and ``metrics.json`` for comparison records; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mean: dict[str, float] = {}
    for g in GROUPS:
        mean[f"{g}/total"] = _nanmean([r[g]["total"] for r in records])
        for t in term_names:
            mean[f"{g}/{t}"] = _nanmean([r[g]["terms"][t] for r in records])
    mean["steered_minus_plain"] = mean["steered/total"] - mean["plain/total"]
    mean["steered_minus_lm_topk"] = mean["steered/total"] - mean["lm_topk/total"]
    summary = {
        "n": len(records),
        "mean": mean,
        "terms": list(term_names),
        "settings": {k: settings[k] for k in ("lm", "eval_prompts", "top_k", "max_new_tokens")},
        "groups": {
            "steered": "trained policy over the LM's top-k tokens (sampled)",
            "plain": "ancestral sampling of the same LM, temperature 1, full vocabulary",
            "lm_topk": "the LM's distribution renormalised over the same top-k tokens",
        },
    }
    write_text(out_dir / "texts.json", json.dumps(records, indent=2, ensure_ascii=False))
    write_text(out_dir / "metrics.json", json.dumps(summary, indent=2))
    write_text(out_dir / "texts.md", _markdown(records, term_names, mean))
    return summary


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _markdown(records: list[dict], term_names: Sequence[str], mean: dict) -> str:
    head = ["group", "total"] + list(term_names)
    lines = [
        "# Steered vs plain texts",
        "",
        "Mean reward over all samples:",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for g in GROUPS:
        lines.append(
            "| " + " | ".join([g, f"{mean[f'{g}/total']:.3f}"] + [f"{mean[f'{g}/{t}']:.3f}" for t in term_names]) + " |"
        )
    lines += [
        "",
        "Per prompt (steered and plain share the prompt):",
        "",
        "| prompt | group | total | text |",
        "|---|---|---|---|",
    ]
    for r in records:
        for g in ("steered", "plain"):
            lines.append(
                f"| {_cell(r['prompt']) if g == 'steered' else ''} | {g} | "
                f"{r[g]['total']:.3f} | {_cell(r[g]['text'])} |"
            )
    return "\n".join(lines) + "\n"


def _is_record(r: Any) -> bool:
    def number(v: Any) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    def group(v: Any) -> bool:
        return (
            isinstance(v, dict)
            and isinstance(v.get("text"), str)
            and isinstance(v.get("prompt"), str)
            and number(v.get("total"))
            and isinstance(v.get("terms", {}), dict)
        )

    return (
        isinstance(r, dict)
        and isinstance(r.get("prompt"), str)
        and all(group(v) for k, v in r.items() if k != "prompt")
    )


def read_text_records(folder: Path) -> list[dict]:
    """The records of ``folder/texts.json`` as :func:`write_comparison` writes them (a prompt and one
    ``{text, prompt, total, terms}`` per group, the same groups in every record); ``[]`` when the
    file is missing, damaged or of another shape (a hand-edited run folder reads as having no texts)."""
    from rlcreate.errors import UserError
    from rlcreate.safe_io import load_json

    path = Path(folder) / "texts.json"
    try:
        records = load_json(path, "texts.json") if path.is_file() else []  # size and depth caps
    except UserError:
        return []
    if not isinstance(records, list) or not all(_is_record(r) for r in records):
        return []
    groups = [set(r) for r in records]
    if any(g != groups[0] for g in groups) or (groups and len(groups[0]) < 2):
        return []
    return records
