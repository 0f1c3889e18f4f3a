"""``rlcreate finetune RECIPE.yaml``: fine-tune the LM itself on a reward recipe with TRL's GRPO + LoRA.

The recipe's reward terms reach TRL's ``GRPOTrainer`` through
:func:`rlcreate.rewards.trl_adapter.trl_reward_funcs` (one TRL reward function per term, named by
the term, logged as ``rewards/<term>/mean``) with :func:`~rlcreate.rewards.trl_adapter.trl_reward_weights`.
Only LoRA adapters are trained (peft, default r=8 on the attention q/v projections); at the end they
are merged into the base weights and saved as an ordinary ``transformers`` folder.

GRPO and PPO. GRPO optimises PPO's clipped surrogate per completion token,
``min(rho * A, clip(rho, 1 - eps, 1 + eps) * A)`` with ``rho = pi_theta / pi_old``, but without a value
network: each prompt gets ``num_generations`` completions and a completion's advantage is its reward
minus the mean of its group, divided by the group's standard deviation (group-relative
advantages). With ``num_iterations = 1`` every batch is used for one gradient step right after it
was generated, so ``rho == 1`` and the clip never acts: plain REINFORCE with a group baseline.
This module defaults to ``num_iterations = 2`` (TRL's mu): each generated batch serves two steps,
the second one off-policy, where the ratio moves and ``epsilon`` clips it (TRL logs the clipped
share as ``clip_ratio/region_mean``; the report keeps its mean). ``beta`` adds a KL penalty to the
base model (with LoRA the base is the adapter-disabled model, no second copy).

Several processes. Start the same command under a launcher; every rank trains (DDP: each
generates and scores ``num_generations x prompts_per_step`` completions per step, whole GRPO groups,
gradients averaged), only rank 0 evaluates before/after, writes ``config.yaml``, TensorBoard and
the report, merges LoRA and saves ``model/`` (TRL/transformers checkpoints are written by rank 0
too)::

    torchrun --nproc_per_node 2 -m rlcreate.cli finetune RECIPE.yaml          # CPU: gloo, 2 ranks
    torchrun --nproc_per_node 8 -m rlcreate.cli finetune RECIPE.yaml          # one node, 8 GPUs
    torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 \
        --nproc_per_node 8 -m rlcreate.cli finetune RECIPE.yaml               # 2 nodes
    accelerate launch --num_processes 8 -m rlcreate.cli finetune RECIPE.yaml  # GPUs

On CPU, ``accelerate launch --num_processes 2 --cpu`` starts ONE process (it wants an MPI hostfile
for more); use ``torchrun``. The global batch is ranks x ``num_generations x prompts_per_step``, so
keep ``steps`` and ``learning_rate`` in mind when changing the process count. ``--resume`` loads
the latest checkpoint with any process count (per-rank RNG states that do not exist are skipped
with a warning). The run folder must be on storage every node can read for ``--resume``.

Run folder (``runs/<name>/``)::

    config.yaml               the recipe with the resolved ``finetune:`` section (reproduces the run)
    trl/checkpoint-<step>/    TRL checkpoints (adapter, optimiser, RNG, trainer state): --resume
    tb/                       TensorBoard: rewards/<term>/mean, clip_ratio/*, loss, kl, ...
    model/                    merged model + tokenizer: AutoModelForCausalLM.from_pretrained(...)
    samples/before.json       held-out samples of the base model with every reward term
    samples/after.json        the same prompts and seed for the fine-tuned model
    finetune_report.json/.md  before/after means, held-out novelty and perplexity under the base

A recipe's optional ``finetune:`` section (every key optional; errors name field, value and fix)::

    finetune:
      model: null                  # default: env.kwargs.lm (the offline SmolLM2 default)
      steps: 40                    # optimiser steps (each uses num_generations x prompts_per_step texts)
      num_generations: 8           # completions per prompt: the GRPO group
      prompts_per_step: 1
      max_completion_length: null  # default: env.kwargs.max_new_tokens
      learning_rate: 0.0003
      num_iterations: 2            # > 1 so PPO's clip acts (see above)
      epsilon: 0.2                 # clip range
      beta: 0.0                    # KL penalty to the base model
      temperature: 1.0
      lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj, v_proj]}
      train_prompts: null          # default: env.kwargs.prompts
      eval_prompts: null           # default: env.kwargs.eval_prompts (held-out)
      eval_samples_per_prompt: 3
      save_steps: null             # default: steps // 4 (at least 1)
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from rlcreate.recipe import Recipe, RecipeError, build_reward_set, load_recipe
from rlcreate.text.runs import resolve_prompts, score_texts, text_settings

__all__ = ["FINETUNE_DEFAULTS", "finetune_settings", "load_finetune_recipe", "finetune_recipe",
           "heldout_metrics", "latest_checkpoint", "register", "cmd_finetune", "process_rank", "TimedReward"]

FINETUNE_DEFAULTS: dict[str, Any] = {
    "model": None, "steps": 40, "num_generations": 8, "prompts_per_step": 1,
    "max_completion_length": None, "learning_rate": 3e-4, "num_iterations": 2, "epsilon": 0.2,
    "beta": 0.0, "temperature": 1.0,
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
    "train_prompts": None, "eval_prompts": None, "eval_samples_per_prompt": 3, "save_steps": None,
}
_LORA_KEYS = set(FINETUNE_DEFAULTS["lora"])
PERPLEXITY_BUDGET = 0.15  # the target: held-out perplexity under the base rises <= 15%


# ---------------------------------------------------------------------------------- settings

def _unknown(where: str, got: dict, known) -> None:
    for key in got:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RecipeError(f"{where}: unknown key {key!r}.{hint} Known keys: {sorted(known)}")


def _check_int(field: str, v: Any, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise RecipeError(f"{field} = {v!r}: must be an integer >= {low}")
    return v


def _check_float(field: str, v: Any, low: float, high: float = math.inf, low_open: bool = False) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
        (v > low if low_open else v >= low) and v <= high
    if not ok:
        bound = f"{'>' if low_open else '>='} {low}" + ("" if high == math.inf else f" and <= {high}")
        raise RecipeError(f"{field} = {v!r}: must be a number {bound}")
    return float(v)


def finetune_settings(recipe: Recipe, section: dict | None, steps: int | None = None) -> dict:
    """Validate a recipe's ``finetune:`` section and fill defaults from it and from ``env.kwargs``."""
    text = text_settings(recipe)
    section = {} if section is None else section
    if not isinstance(section, dict):
        raise RecipeError(f"finetune = {section!r}: write a mapping, e.g. finetune: {{steps: 40}}")
    _unknown("finetune", section, FINETUNE_DEFAULTS)
    s = {**copy.deepcopy(FINETUNE_DEFAULTS), **copy.deepcopy(section)}
    lora = s["lora"] if isinstance(s["lora"], dict) else None
    if lora is None:
        raise RecipeError(f"finetune.lora = {s['lora']!r}: write a mapping, e.g. lora: {{r: 8}}")
    _unknown("finetune.lora", lora, _LORA_KEYS)
    s["lora"] = {**FINETUNE_DEFAULTS["lora"], **lora}
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise RecipeError(f"--steps {steps!r}: must be an integer >= 1")
        s["steps"] = steps
    s["model"] = text["lm"] if s["model"] is None else s["model"]
    if not isinstance(s["model"], str) or not s["model"].strip():
        raise RecipeError(f"finetune.model = {s['model']!r}: write a model folder or smollm2-135m-instruct")
    if s["max_completion_length"] is None:
        s["max_completion_length"] = text["max_new_tokens"]
    s["train_prompts"] = text["prompts"] if s["train_prompts"] is None else s["train_prompts"]
    s["eval_prompts"] = text["eval_prompts"] if s["eval_prompts"] is None else s["eval_prompts"]
    s["system"] = text["system"]
    s["max_prompt_tokens"] = text["max_prompt_tokens"]
    for key, low in (("steps", 1), ("prompts_per_step", 1), ("max_completion_length", 1),
                     ("num_iterations", 1), ("eval_samples_per_prompt", 1)):
        _check_int(f"finetune.{key}", s[key], low)
    _check_int("finetune.num_generations", s["num_generations"], 2)  # a group of one has no baseline
    if s["save_steps"] is None:
        s["save_steps"] = max(1, s["steps"] // 4)
    _check_int("finetune.save_steps", s["save_steps"], 1)
    _check_float("finetune.learning_rate", s["learning_rate"], 0.0, low_open=True)
    _check_float("finetune.epsilon", s["epsilon"], 0.0, 1.0, low_open=True)
    _check_float("finetune.beta", s["beta"], 0.0)
    _check_float("finetune.temperature", s["temperature"], 0.0, low_open=True)
    _check_int("finetune.lora.r", s["lora"]["r"], 1)
    _check_float("finetune.lora.alpha", s["lora"]["alpha"], 0.0, low_open=True)
    _check_float("finetune.lora.dropout", s["lora"]["dropout"], 0.0, 0.99)
    tm = s["lora"]["target_modules"]
    if isinstance(tm, str):
        tm = s["lora"]["target_modules"] = [tm]
    if not isinstance(tm, list) or not tm or not all(isinstance(m, str) and m for m in tm):
        raise RecipeError(f"finetune.lora.target_modules = {tm!r}: write a list of module names, "
                          "e.g. [q_proj, v_proj] (Llama/SmolLM2) or [c_attn] (GPT-2)")
    if s["num_iterations"] == 1:
        # Allowed (plain group-baseline REINFORCE), but say why it is not the default.
        s["note"] = "num_iterations = 1: the PPO ratio stays 1 and the clip never acts"
    return s


def load_finetune_recipe(path: str | Path) -> tuple[Recipe, dict | None]:
    """The validated recipe and its raw ``finetune:`` section (``None`` when absent)."""
    recipe = load_recipe(path)  # validates everything else (and that the file is readable YAML)
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return recipe, raw.get("finetune")


def latest_checkpoint(trl_dir: Path) -> Path | None:
    """The newest complete ``checkpoint-<step>`` folder under ``trl_dir`` (``None`` if none)."""
    found = []
    for p in Path(trl_dir).glob("checkpoint-*"):
        step = p.name.rsplit("-", 1)[-1]
        if p.is_dir() and step.isdigit() and (p / "trainer_state.json").is_file():
            found.append((int(step), p))
    return max(found)[1] if found else None


# ------------------------------------------------------------------------------------ metrics

def _format_for_trl(tokenizer, prompts: Sequence[str], system: str | None) -> list:
    from rlcreate.text.loading import is_chat_tokenizer

    if is_chat_tokenizer(tokenizer):  # conversational: TRL applies the chat template itself
        sys_msg = [{"role": "system", "content": system}] if system else []
        return [sys_msg + [{"role": "user", "content": p}] for p in prompts]
    return [f"{system}\n\n{p}" if system else p for p in prompts]


def sample_texts(model, tokenizer, prompts: Sequence[str], settings: dict, seed: int) -> list[str]:
    """Ancestral samples (the recipe's temperature, full vocabulary) of ``model`` per prompt, seeded."""
    from rlcreate.text.stepping import LMStepper

    stepper = LMStepper(model, tokenizer, top_k=1, system=settings["system"],
                        max_prompt_tokens=settings["max_prompt_tokens"])
    out: list[str] = []
    for start in range(0, len(prompts), 32):
        out += stepper.sample(list(prompts[start:start + 32]), max_new_tokens=settings["max_completion_length"],
                              temperature=settings["temperature"], seed=seed + start)
    return out


def heldout_metrics(texts: Sequence[str], prompts: Sequence[str], base_lm, embedder=None) -> dict:
    """Held-out novelty (MiniLM k-NN distance to the shipped corpus and the batch's other texts) and
    perplexity of the texts under the base model given their prompts (exp of mean token NLL)."""
    from rlcreate.text.rewards import TextNovelty
    from rlcreate.text.scoring import ReferenceLM

    novelty = TextNovelty(reference="shipped", embedder=embedder, against="both", within_batch=True,
                          update=False, name="heldout_novelty")
    nov = [v for v in novelty(list(texts)) if v is not None]
    ref = ReferenceLM(base_lm[0], base_lm[1])
    stats = ref.token_stats(list(texts), list(prompts))
    total_lp = float(sum(s.logprobs.sum() for s in stats))
    n_tokens = int(sum(s.n for s in stats))
    return {"heldout_novelty": float(np.mean(nov)) if nov else float("nan"),
            "heldout_perplexity": math.exp(-total_lp / n_tokens) if n_tokens else float("nan"),
            "tokens": n_tokens, "empty_texts": int(sum(1 for t in texts if not t.strip()))}


def _evaluate(model, tokenizer, base_lm, prompts, settings, reward_set, state, seed) -> dict:
    texts = sample_texts(model, tokenizer, prompts, settings, seed)
    scored = score_texts(reward_set, texts, prompts, state)
    summary = heldout_metrics(texts, prompts, base_lm)
    summary["reward_total"] = float(np.mean([r["total"] for r in scored]))
    for t in reward_set.names:
        vals = np.array([r["terms"][t] for r in scored], dtype=float)
        summary[f"reward/{t}"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    records = [{"prompt": p, "text": x, **r} for p, x, r in zip(prompts, texts, scored)]
    return {"summary": summary, "samples": records}


# ----------------------------------------------------------------------------------- training

def process_rank() -> tuple[int, int]:
    """``(rank, world_size)`` of this process as the launcher set them (``torchrun`` and
    ``accelerate launch`` export ``RANK`` and ``WORLD_SIZE``); ``(0, 1)`` for a plain run."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


class TimedReward:
    """A TRL reward function that adds up its own wall time (``seconds``, ``calls``), so the report
    can say what share of a training step the reward computation costs. Keeps ``__name__``."""

    def __init__(self, fn):
        self.fn, self.__name__, self.seconds, self.calls = fn, fn.__name__, 0.0, 0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def _check_lora_targets(model, targets: list[str]) -> None:
    import torch

    linear = sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
                     if isinstance(mod, torch.nn.Linear) or type(mod).__name__ == "Conv1D"})
    missing = [t for t in targets if t not in linear]
    if missing:
        raise RecipeError(f"finetune.lora.target_modules = {targets!r}: this model has no layer named "
                          f"{missing}; its linear layers are {linear}")


def finetune_recipe(recipe: Recipe, section: dict | None, run_dir: Path, steps: int | None = None,
                    resume: bool = False, progress_bar: bool = True) -> dict:
    """Run GRPO + LoRA on the recipe into ``run_dir``; returns the report (``mean`` for the CLI).

    Everything checkable (recipe, model, prompts, LoRA targets, resume state) is checked before
    anything in ``run_dir`` is written; a fresh run refuses a folder that already holds checkpoints.
    """
    from rlcreate.rewards.trl_adapter import trl_reward_funcs, trl_reward_weights
    from rlcreate.text.loading import ModelNotFoundError, PromptError, format_prompts, load_causal_lm

    run_dir = Path(run_dir)
    s = finetune_settings(recipe, section, steps)
    train_prompts = resolve_prompts(s["train_prompts"], "finetune.train_prompts")
    eval_prompts = resolve_prompts(s["eval_prompts"], "finetune.eval_prompts")
    checkpoint = latest_checkpoint(run_dir / "trl")
    if resume and checkpoint is None:
        raise RecipeError(f"--resume: {str(run_dir)!r} holds no checkpoint (trl/checkpoint-*); run "
                          "without --resume to start it")
    if not resume and (checkpoint is not None or (run_dir / "model").exists()):
        raise RecipeError(f"{str(run_dir)!r} already holds a finetune run; pass --resume to continue "
                          "it, or --name for a new run folder")
    rank, world = process_rank()
    main = rank == 0
    try:
        # LoRA is injected into `policy`; `base` stays frozen for the before/after evaluation, which
        # only the main process runs.
        base = load_causal_lm(s["model"]) if main else None
        policy = load_causal_lm(s["model"])
    except ModelNotFoundError as err:
        raise ModelNotFoundError(f"finetune.model = {s['model']!r}: {err}") from None
    tokenizer = policy.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    for field, prompts in (("finetune.train_prompts", train_prompts), ("finetune.eval_prompts", eval_prompts)):
        try:
            format_prompts(tokenizer, prompts, s["system"], s["max_prompt_tokens"])
        except PromptError as err:
            raise RecipeError(f"{field}: {err}") from None
    _check_lora_targets(policy.model, s["lora"]["target_modules"])
    if not main:  # other ranks only train: the main process writes the run folder and evaluates
        trainer = _grpo_trainer(recipe, s, policy, train_prompts, run_dir, False,
                                trl_reward_funcs(build_reward_set(recipe)), trl_reward_weights(build_reward_set(recipe)),
                                main=False)
        trainer.train(resume_from_checkpoint=str(checkpoint) if resume else None)
        return {"rank": rank, "world_size": world, "steps": int(trainer.state.global_step)}

    run_dir.mkdir(parents=True, exist_ok=True)
    config = recipe.to_dict()
    config["finetune"] = {k: v for k, v in s.items() if k in FINETUNE_DEFAULTS}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    # Before/after are scored by their own reward set from its initial state (training grows the
    # novelty archive of the other one), so both see the same references.
    eval_rewards = build_reward_set(recipe)
    state0 = copy.deepcopy(eval_rewards.state_dict())
    eval_list = [p for p in eval_prompts for _ in range(s["eval_samples_per_prompt"])]
    samples_dir = run_dir / "samples"
    samples_dir.mkdir(exist_ok=True)
    before_file = samples_dir / "before.json"
    if before_file.is_file():  # a resumed run keeps the baseline it measured first
        before = json.loads(before_file.read_text(encoding="utf-8"))
    else:
        before = _evaluate(base.model, base.tokenizer, base, eval_list, s, eval_rewards, state0, recipe.seed)
        before_file.write_text(json.dumps(before, indent=2, ensure_ascii=False), encoding="utf-8")

    reward_funcs = [TimedReward(f) for f in trl_reward_funcs(build_reward_set(recipe))]
    trainer = _grpo_trainer(recipe, s, policy, train_prompts, run_dir, progress_bar, reward_funcs,
                            trl_reward_weights(eval_rewards))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if resume else None)
    train_seconds = time.perf_counter() - start
    timing = {"train_seconds": train_seconds, "reward_seconds": sum(f.seconds for f in reward_funcs),
              "reward_calls": sum(f.calls for f in reward_funcs), "world_size": world}
    timing["reward_share"] = timing["reward_seconds"] / train_seconds if train_seconds > 0 else float("nan")

    merged = trainer.model.merge_and_unload()
    merged = merged.to("cpu").eval()  # evaluation next to the frozen base, on the CPU
    merged.save_pretrained(run_dir / "model")
    tokenizer.save_pretrained(run_dir / "model")

    after = _evaluate(merged, tokenizer, base, eval_list, s, eval_rewards, state0, recipe.seed)
    (samples_dir / "after.json").write_text(json.dumps(after, indent=2, ensure_ascii=False), encoding="utf-8")
    report = _report(recipe, s, before["summary"], after["summary"], trainer, train_seconds,
                     before["samples"], after["samples"])
    report["timing"] = timing
    (run_dir / "finetune_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (run_dir / "finetune_report.md").write_text(_markdown(report), encoding="utf-8")
    return report


def _grpo_trainer(recipe: Recipe, s: dict, policy, prompts: list[str], run_dir: Path, progress_bar: bool,
                  reward_funcs, reward_weights, main: bool = True):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(run_dir / "trl"), max_steps=s["steps"],
        per_device_train_batch_size=s["num_generations"] * s["prompts_per_step"],
        num_generations=s["num_generations"], max_completion_length=s["max_completion_length"],
        learning_rate=s["learning_rate"], num_iterations=s["num_iterations"], epsilon=s["epsilon"],
        beta=s["beta"], temperature=s["temperature"], reward_weights=reward_weights,
        logging_steps=1, save_strategy="steps", save_steps=s["save_steps"], report_to="none",
        disable_tqdm=not progress_bar, seed=recipe.seed,
        # CPU: bf16 matmuls are slow or unsupported; on GPUs (multi-GPU launches) bf16 where supported
        bf16=_on_gpu() and torch.cuda.is_bf16_supported(), use_cpu=not _on_gpu(),
        activation_checkpointing=False)        # 135M params fit; recomputation only costs time here
    lora = LoraConfig(r=s["lora"]["r"], lora_alpha=s["lora"]["alpha"], lora_dropout=s["lora"]["dropout"],
                      target_modules=s["lora"]["target_modules"], task_type="CAUSAL_LM")
    data = Dataset.from_dict({"prompt": _format_for_trl(policy.tokenizer, prompts, s["system"])})
    callbacks = [TensorBoardCallback(tb_writer=SummaryWriter(str(run_dir / "tb")))] if main else []
    trainer = GRPOTrainer(model=policy.model, reward_funcs=reward_funcs, args=args, train_dataset=data,
                          processing_class=policy.tokenizer, peft_config=lora, callbacks=callbacks)
    if not progress_bar:  # --quiet: without tqdm, transformers would print every log dict instead
        from transformers.trainer_callback import PrinterCallback
        trainer.remove_callback(PrinterCallback)
    return trainer


def _report(recipe, s, before: dict, after: dict, trainer, train_seconds: float, before_samples,
            after_samples) -> dict:
    history = trainer.state.log_history
    clip = [e["clip_ratio/region_mean"] for e in history if "clip_ratio/region_mean" in e]
    ppl_ratio = after["heldout_perplexity"] / before["heldout_perplexity"]
    mean = {f"before/{k}": v for k, v in before.items() if isinstance(v, float)}
    mean.update({f"after/{k}": v for k, v in after.items() if isinstance(v, float)})
    mean["novelty_gain"] = after["heldout_novelty"] - before["heldout_novelty"]
    mean["perplexity_ratio"] = ppl_ratio
    return {
        "recipe": recipe.name, "steps": int(trainer.state.global_step), "train_seconds": train_seconds,
        "settings": {k: v for k, v in s.items() if k in FINETUNE_DEFAULTS},
        "before": before, "after": after, "mean": mean,
        "targets": {"novelty_raised": bool(mean["novelty_gain"] > 0),
                    "perplexity_within_15pct": bool(ppl_ratio <= 1 + PERPLEXITY_BUDGET)},
        "clip_ratio_region_mean": float(np.mean(clip)) if clip else None,
        "examples": [{"prompt": b["prompt"], "before": b["text"], "after": a["text"]}
                     for b, a in list(zip(before_samples, after_samples))[:: max(1, s["eval_samples_per_prompt"])][:8]],
    }


def _markdown(report: dict) -> str:
    b, a = report["before"], report["after"]
    keys = ["heldout_novelty", "heldout_perplexity", "reward_total"] + \
        sorted(k for k in b if k.startswith("reward/"))
    lines = [f"# Fine-tuning report: {report['recipe']}", "",
             f"GRPO + LoRA, {report['steps']} steps in {report['train_seconds']:.0f} s; "
             f"held-out samples: {b['tokens']} / {a['tokens']} tokens (before / after). "
             f"Mean share of clipped tokens (clip_ratio/region_mean): {report['clip_ratio_region_mean']}.", "",
             "| metric | base model | fine-tuned | change |", "|---|---|---|---|"]
    for k in keys:
        lines.append(f"| {k} | {b[k]:.3f} | {a[k]:.3f} | {a[k] - b[k]:+.3f} |")
    t = report["targets"]
    lines += ["", f"Held-out novelty raised: {t['novelty_raised']}; held-out perplexity under the base "
              f"model x{report['mean']['perplexity_ratio']:.3f} (target <= x{1 + PERPLEXITY_BUDGET:.2f}): "
              f"{t['perplexity_within_15pct']}.", "", "| prompt | before | after |", "|---|---|---|"]
    for ex in report["examples"]:
        cells = [" ".join(str(ex[k]).split()).replace("|", "\\|") for k in ("prompt", "before", "after")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- CLI

def cmd_finetune(args) -> int:
    recipe, section = load_finetune_recipe(args.recipe)
    run_dir = Path(args.out) / (args.name or recipe.name)
    report = finetune_recipe(recipe, section, run_dir, steps=args.steps, resume=args.resume,
                             progress_bar=not args.quiet)
    if "mean" not in report:  # not the main process: it trained; the main process reports
        print(f"rank {report['rank']} of {report['world_size']}: trained {report['steps']} steps "
              "(rank 0 evaluates and writes the run folder)")
        return 0
    print(f"fine-tuned model written to {run_dir / 'model'}; report {run_dir / 'finetune_report.md'}")
    m = report["mean"]
    print(f"held-out novelty {m['before/heldout_novelty']:.3f} -> {m['after/heldout_novelty']:.3f}, "
          f"perplexity under the base {m['before/heldout_perplexity']:.2f} -> "
          f"{m['after/heldout_perplexity']:.2f} (x{m['perplexity_ratio']:.3f})")
    return 0


def register(subparsers) -> None:
    """Add ``rlcreate finetune RECIPE.yaml [--out --name --steps --resume --quiet]``."""
    from rlcreate.validate import int_arg  # typed option: a bad value exits 2 before any work

    f = subparsers.add_parser("finetune", help="fine-tune the LM on a recipe's rewards with TRL GRPO + LoRA")
    f.add_argument("recipe")
    f.add_argument("--out", default="runs")
    f.add_argument("--name", default=None, help="run folder name (default: the recipe's name)")
    f.add_argument("--steps", type=int_arg(1, 10**7), default=None, help="override finetune.steps")
    f.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(fn=cmd_finetune)
