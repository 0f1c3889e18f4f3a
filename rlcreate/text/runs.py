"""Text runs: steer a frozen causal LM with (Maskable)PPO over ``rlcreate/TextTokens-v0``.

``rlcreate train RECIPE.yaml`` on a TextTokens recipe calls :func:`train_text_recipe`, which writes
the same run folder as level runs (see :mod:`rlcreate.train.sb3`: ``config.yaml``, ``tb/`` with
``rewards/<term>``, ``checkpoints/``, ``model.zip``, ``reward_state.pkl``) and ends by writing
``samples/``: steered texts on the HELD-OUT prompts next to plain samples of the same LM for the
same prompts. ``rlcreate generate RUN --n N`` calls :func:`generate_texts` for the same comparison.

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
``hidden_clip``, ``max_prompt_tokens``   as for :func:`rlcreate.envs.text_tokens.make_text_tokens_env`

On a CPU shared with other jobs, run with ``OMP_NUM_THREADS=1``: torch's spinning worker threads
otherwise slow every LM forward pass many times over (measured here: 1-2 env steps/s with default
threads at load 10 on 2 cores, 11-12 with one thread at load 5).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rlcreate.recipe import Recipe, RecipeError, build_reward_set

__all__ = ["TEXT_ENV_KEYS", "TextSettings", "text_settings", "resolve_prompts", "load_text_lm",
           "build_text_env", "train_text_recipe", "generate_texts", "compare_with_plain",
           "score_texts", "write_comparison"]

TEXT_ENV_ID = "rlcreate/TextTokens-v0"
PROMPT_SPLITS = ("train", "heldout")
_DEFAULTS = {"lm": "smollm2-135m-instruct", "prompts": "train", "eval_prompts": "heldout", "top_k": 16,
             "max_new_tokens": 32, "min_new_tokens": 0, "system": None, "hidden_clip": 10.0,
             "max_prompt_tokens": 512}
TEXT_ENV_KEYS = frozenset(_DEFAULTS)
GROUPS = ("steered", "plain", "lm_topk")


class TextSettings(dict):
    """The validated ``env.kwargs`` of a text recipe (defaults filled in), as a plain dict."""


def text_settings(recipe: Recipe) -> TextSettings:
    """Validate a TextTokens recipe's ``env.kwargs``; :class:`RecipeError` names field, value, fix."""
    if recipe.env_id != TEXT_ENV_ID:
        raise RecipeError(f"env.id = {recipe.env_id!r}: text training needs {TEXT_ENV_ID!r}")
    kwargs = dict(recipe.env_kwargs)
    for key in kwargs:
        if key not in TEXT_ENV_KEYS:
            close = difflib.get_close_matches(str(key), TEXT_ENV_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RecipeError(f"env.kwargs: unknown key {key!r}.{hint} Known keys: {sorted(TEXT_ENV_KEYS)}")
    s = TextSettings({**_DEFAULTS, **kwargs})
    for key, low in (("top_k", 1), ("max_new_tokens", 1), ("min_new_tokens", 0), ("max_prompt_tokens", 1)):
        v = s[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise RecipeError(f"env.kwargs.{key} = {v!r}: must be an integer >= {low}")
    if s["min_new_tokens"] > s["max_new_tokens"]:
        raise RecipeError(f"env.kwargs.min_new_tokens = {s['min_new_tokens']}: must not exceed "
                          f"max_new_tokens ({s['max_new_tokens']}); lower it or raise max_new_tokens")
    hc = s["hidden_clip"]
    if isinstance(hc, bool) or not isinstance(hc, (int, float)) or not math.isfinite(hc) or hc <= 0:
        raise RecipeError(f"env.kwargs.hidden_clip = {hc!r}: must be a positive number, e.g. 10.0")
    if not isinstance(s["lm"], str) or not s["lm"].strip():
        raise RecipeError(f"env.kwargs.lm = {s['lm']!r}: write a model folder, a hub id in the local "
                          "cache, or smollm2-135m-instruct (the offline default)")
    if s["system"] is not None and not isinstance(s["system"], str):
        raise RecipeError(f"env.kwargs.system = {s['system']!r}: must be a string or left out")
    return s


def resolve_prompts(value: Any, field: str) -> list[str]:
    """A prompt spec -> prompts: a split name (``train`` / ``heldout``), a UTF-8 file, or a list."""
    from rlcreate.text.data import prompts as shipped
    from rlcreate.text.lm import PromptError, read_prompts

    if isinstance(value, str) and value in PROMPT_SPLITS:
        return shipped(value)
    if isinstance(value, list):
        bad = [i for i, p in enumerate(value) if not isinstance(p, str) or not p.strip()]
        if not value or bad:
            raise RecipeError(f"{field} = {value!r:.80}: prompt {bad[0] if bad else 0} is empty or not a "
                              "string; give a non-empty list of non-empty strings")
        return [p.strip() for p in value]
    if isinstance(value, str):
        if not Path(value).expanduser().is_file():
            close = difflib.get_close_matches(value, PROMPT_SPLITS, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RecipeError(f"{field} = {value!r}: not a prompt split nor an existing file.{hint} Use "
                              f"{' or '.join(PROMPT_SPLITS)}, a UTF-8 file with one prompt a line, or a list")
        try:
            return read_prompts(Path(value).expanduser())
        except PromptError as err:
            raise RecipeError(f"{field}: {err}") from None
    raise RecipeError(f"{field} = {value!r}: use 'train', 'heldout', a prompt file path or a list of strings")


def load_text_lm(settings: TextSettings):
    """The recipe's LM as ``(model, tokenizer)``; an unknown id says how to use the offline default."""
    from rlcreate.text.lm import ModelNotFoundError, load_causal_lm

    try:
        return load_causal_lm(settings["lm"])
    except ModelNotFoundError as err:
        raise ModelNotFoundError(f"env.kwargs.lm = {settings['lm']!r}: {err}") from None


def _stepper(lm, settings: TextSettings):
    from rlcreate.text.lm import LMStepper

    return LMStepper(lm[0], lm[1], top_k=settings["top_k"], system=settings["system"],
                     max_prompt_tokens=settings["max_prompt_tokens"])


def build_text_env(recipe: Recipe, lm=None, reward=None, prompts_field: str = "prompts",
                   n_envs: int | None = None, seed: int | None = None, settings: TextSettings | None = None):
    """The recipe's TextTokens VecEnv over ``prompts_field`` (``prompts`` or ``eval_prompts``).

    Prompts are validated against the LM (empty, over ``max_prompt_tokens``) here, before anything is
    written, and errors name the recipe field.
    """
    from rlcreate.envs.text_tokens import TextTokensCore, TextTokensVecEnv
    from rlcreate.text.lm import PromptError

    settings = settings or text_settings(recipe)
    prompts = resolve_prompts(settings[prompts_field], f"env.kwargs.{prompts_field}")
    lm = lm if lm is not None else load_text_lm(settings)
    reward = reward if reward is not None else build_reward_set(recipe)
    try:
        core = TextTokensCore(_stepper(lm, settings), reward, prompts, n=n_envs or recipe.trainer["n_envs"],
                              max_new_tokens=settings["max_new_tokens"],
                              min_new_tokens=settings["min_new_tokens"], hidden_clip=settings["hidden_clip"])
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


# -------------------------------------------------------------------------------------- training

def train_text_recipe(recipe: Recipe, run_dir: Path, progress_bar: bool = True,
                      total_timesteps: int | None = None) -> dict:
    """Train the recipe's policy over TextTokens-v0 into ``run_dir``; ends with ``samples/``.

    Returns the comparison summary (its ``mean`` holds ``steered/total``, ``plain/total``, ... ).
    Everything that can be wrong with the recipe, model or prompts fails before ``run_dir`` is touched.
    """
    from stable_baselines3.common.vec_env import VecMonitor

    from rlcreate.train.sb3 import train_recipe

    settings = text_settings(recipe)
    resolve_prompts(settings["eval_prompts"], "env.kwargs.eval_prompts")  # fail before training
    lm = load_text_lm(settings)
    reward_set = build_reward_set(recipe)
    venv = build_text_env(recipe, lm=lm, reward=reward_set, settings=settings)
    model = train_recipe(recipe, VecMonitor(venv), reward_set, Path(run_dir), progress_bar, total_timesteps)
    return compare_with_plain(model, recipe, lm, reward_set, recipe.trainer["samples"],
                              Path(run_dir) / "samples", seed=recipe.seed + 1, settings=settings)


def generate_texts(run_dir: Path, recipe: Recipe, n: int, out_dir: Path, seed: int | None = None) -> dict:
    """Steered vs plain texts of a trained run on its ``eval_prompts`` (held-out by default)."""
    from rlcreate.train.sb3 import load_policy

    settings = text_settings(recipe)
    run_dir = Path(run_dir)
    if not (run_dir / "model.zip").is_file():
        raise RecipeError(f"{str(run_dir)!r} has no model.zip; train it first with `rlcreate train` "
                          "(or wait until a running training finishes)")
    lm = load_text_lm(settings)
    reward_set = build_reward_set(recipe)
    state_file = run_dir / "reward_state.pkl"
    if state_file.is_file():
        with open(state_file, "rb") as f:
            reward_set.load_state_dict(pickle.load(f))
    model = load_policy(run_dir, recipe.trainer["algo"])
    return compare_with_plain(model, recipe, lm, reward_set, n, Path(out_dir),
                              seed=recipe.seed + 1 if seed is None else seed, settings=settings)


# ------------------------------------------------------------------------------------ comparison

def _rollout(venv, n: int, choose) -> list[dict]:
    """Finished episodes' infos, the first ``ceil(n / rows)`` of every row in row order (taking the
    first ``n`` to finish would favour short texts)."""
    rows = venv.num_envs
    per_row = -(-n // rows)
    done_by_row: list[list[dict]] = [[] for _ in range(rows)]
    obs = venv.reset()
    while min(len(d) for d in done_by_row) < per_row:
        obs, _, done, infos = venv.step(choose(obs))
        for i in np.flatnonzero(done):
            done_by_row[i].append(infos[i])
    out = [info for r in range(per_row) for d in done_by_row for info in d[r:r + 1]]
    return out[:n]


def score_texts(reward_set, texts: Sequence[str], prompts: Sequence[str], state: dict | None) -> list[dict]:
    """Every text's reward terms and total, the batch scored from reward ``state`` (then restored)."""
    if state is not None:
        reward_set.load_state_dict(copy.deepcopy(state))
    result = reward_set(list(texts), prompts=list(prompts), progress=1.0)
    rows = [{"total": float(result.total[i]), "terms": result.per_sample(i)} for i in range(len(texts))]
    if state is not None:
        reward_set.load_state_dict(copy.deepcopy(state))
    return rows


def compare_with_plain(model, recipe: Recipe, lm, reward_set, n: int, out_dir: Path, seed: int = 1,
                       settings: TextSettings | None = None) -> dict:
    """Write steered, plain and LM-top-k texts on the eval prompts with their reward terms.

    Files: ``texts.json`` (one record per prompt draw: prompt and the three texts with terms),
    ``texts.md`` (a readable table) and ``metrics.json`` (the returned summary: ``mean`` holds
    ``<group>/total`` and ``<group>/<term>`` for every group, and ``steered_minus_plain``).
    """
    settings = settings or text_settings(recipe)
    n = int(n)
    if n < 1:
        raise RecipeError(f"n = {n}: ask for at least one sample")
    venv = build_text_env(recipe, lm=lm, reward=_Unscored(), prompts_field="eval_prompts",
                          n_envs=min(n, 16), seed=seed, settings=settings)
    model.set_random_seed(seed)  # the policy samples its actions: same seed, same texts

    def policy(obs):
        action, _ = model.predict(obs, deterministic=False, action_masks=venv.action_masks())
        return action

    steered = _rollout(venv, n, policy)
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
    lm_topk = _rollout(venv, n, follow_lm)
    plain_texts: list[str] = []
    stepper = venv.core.stepper
    for start in range(0, n, 32):
        plain_texts += stepper.sample(prompts[start:start + 32], max_new_tokens=settings["max_new_tokens"],
                                      temperature=1.0, seed=seed + start)
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
    summary = {"n": len(records), "mean": mean, "terms": list(term_names),
               "settings": {k: settings[k] for k in ("lm", "eval_prompts", "top_k", "max_new_tokens")},
               "groups": {"steered": "trained policy over the LM's top-k tokens (sampled)",
                          "plain": "ancestral sampling of the same LM, temperature 1, full vocabulary",
                          "lm_topk": "the LM's distribution renormalised over the same top-k tokens"}}
    (out_dir / "texts.json").write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out_dir / "texts.md").write_text(_markdown(records, term_names, mean), encoding="utf-8")
    return summary


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _markdown(records: list[dict], term_names: Sequence[str], mean: dict) -> str:
    head = ["group", "total"] + list(term_names)
    lines = ["# Steered vs plain texts", "", "Mean reward over all samples:", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in GROUPS:
        lines.append("| " + " | ".join([g, f"{mean[f'{g}/total']:.3f}"] +
                                       [f"{mean[f'{g}/{t}']:.3f}" for t in term_names]) + " |")
    lines += ["", "Per prompt (steered and plain share the prompt):", "",
              "| prompt | group | total | text |", "|---|---|---|---|"]
    for r in records:
        for g in ("steered", "plain"):
            lines.append(f"| {_cell(r['prompt']) if g == 'steered' else ''} | {g} | "
                         f"{r[g]['total']:.3f} | {_cell(r[g]['text'])} |")
    return "\n".join(lines) + "\n"
