"""The TRL trainer: fine-tune a domain's causal LM itself with GRPO + LoRA (``trainer.algo: grpo``).

``rlcreate train RECIPE.yaml`` (or its alias ``rlcreate finetune``) on a recipe with
``trainer.algo: grpo`` (the default when the recipe has a ``finetune:`` section) runs TRL's
``GRPOTrainer`` on the recipe's reward set, built once by the recipe assembly and handed to TRL
through :func:`rlcreate.rewards.trl_adapter.trl_reward_funcs` (one TRL reward function per term,
named by the term, logged as ``rewards/<term>/mean``) with
:func:`~rlcreate.rewards.trl_adapter.trl_reward_weights`. Only LoRA adapters are trained (peft,
default r=8 on the attention q/v projections); at the end they are merged into the base weights.

The run folder is the layout every trainer writes (:mod:`rlcreate.trainers`)::

    config.yaml             the recipe with its finetune: section (reproduces the run)
    tb/                     TensorBoard: rewards/<term>/mean, clip_ratio/*, loss, kl, ...
    checkpoints/step_<N>/   after N optimiser steps: LoRA adapter, optimiser, RNG and TRL trainer state,
                            reward_state.npz (--resume continues from the newest)
    model/                  merged model + tokenizer (AutoModelForCausalLM.from_pretrained(...)),
                            reward_state.npz, trainer_state.json (steps, base model, sampling, timing)
    samples/                the domain's samples of the tuned model next to the base model

GRPO and PPO. GRPO optimises PPO's clipped surrogate per completion token,
``min(rho * A, clip(rho, 1 - eps, 1 + eps) * A)`` with ``rho = pi_theta / pi_old``, but without a value
network: each prompt gets ``num_generations`` completions and a completion's advantage is its reward
minus the mean of its group, divided by the group's standard deviation (group-relative
advantages). With ``num_iterations = 1`` every batch is used for one gradient step right after it
was generated, so ``rho == 1`` and the clip never acts: plain REINFORCE with a group baseline.
The default is ``num_iterations = 2`` (TRL's mu): each generated batch serves two steps, the second
one off-policy, where the ratio moves and ``epsilon`` clips it (TRL logs the clipped share as
``clip_ratio/region_mean``). ``beta`` adds a KL penalty to the base model (with LoRA the base is the
adapter-disabled model, no second copy).

Several processes. Start the same command under a launcher; every rank trains (DDP: each generates
and scores ``num_generations x prompts_per_step`` completions per step, whole GRPO groups, gradients
averaged); only rank 0 writes the run folder (config, TensorBoard, checkpoints, ``model/``, samples)::

    torchrun --nproc_per_node 2 -m rlcreate.cli train RECIPE.yaml          # CPU: gloo, 2 ranks
    torchrun --nproc_per_node 8 -m rlcreate.cli train RECIPE.yaml          # one node, 8 GPUs
    accelerate launch --num_processes 8 -m rlcreate.cli train RECIPE.yaml  # GPUs

On CPU, ``accelerate launch --num_processes 2 --cpu`` starts ONE process (it wants an MPI hostfile
for more); use ``torchrun``. The global batch is ranks x ``num_generations x prompts_per_step``.
``--resume`` loads the latest checkpoint with any process count (per-rank RNG states that do not
exist are skipped with a warning). The run folder must be on storage every node can read.

TRL's own checkpoint files (``optimizer.pt``, ``scheduler.pt``, ``rng_state*.pth``) are torch files;
``--resume`` hands them to transformers, which loads them. Resume only run folders you trust.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel
from torch.utils.tensorboard import SummaryWriter
from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from rlcreate.assemble import Assembly
from rlcreate.domains import domain_of
from rlcreate.recipe import Recipe, RecipeError
from rlcreate.rewards.trl_adapter import trl_reward_funcs, trl_reward_weights
from rlcreate.runbox import move_folder_into_place
from rlcreate.text.loading import (
    LoadedLM,
    ModelNotFoundError,
    PromptError,
    format_prompts,
    is_chat_tokenizer,
    load_causal_lm,
)
from rlcreate.text.runs import resolve_prompts, score_texts, text_settings
from rlcreate.text.stepping import LMStepper
from rlcreate.train.checkpoint import atomic_folder, latest_checkpoint, load_reward_state, save_tree
from rlcreate.train.runner import open_run_dir
from rlcreate.trainers import CHECKPOINT_FILES, Trainer, TunedGenerator, process_rank
from rlcreate.validate import check_int, check_keys, check_number, fail

__all__ = [
    "FinetuneSection",
    "LoraSection",
    "GRPOSettings",
    "GRPOTrainerPlugin",
    "TRAINER",
    "grpo_settings",
    "process_rank",
    "TimedReward",
]

_ADAPTER = "adapter_model.safetensors"  # a resumable GRPO checkpoint holds it (model/: the merged model)
#: where TRL writes checkpoint-<N> before it becomes checkpoints/step_<N>/ (removed as stale on resume)
STAGING = ".tmp-trl"


# ---------------------------------------------------------------------------------- recipe section


@dataclass
class LoraSection:
    r: int = 8
    """LoRA rank."""
    alpha: float = 16
    """LoRA scaling (lora_alpha)."""
    dropout: float = 0.0
    """Dropout on the LoRA path, in [0, 0.99]."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    """Names of the linear layers that get adapters ([q_proj, v_proj] for Llama/SmolLM2, [c_attn] for GPT-2)."""


@dataclass
class FinetuneSection:
    """The recipe's ``finetune:`` section: GRPO + LoRA settings (every key optional)."""

    model: str | None = None
    """The causal LM fine-tuned (and the base of before/after comparisons); default env.kwargs.lm."""
    steps: int = 40
    """Optimiser steps (each uses num_generations x prompts_per_step completions); what --steps overrides."""
    num_generations: int = 8
    """Completions per prompt: the GRPO group (at least 2: a group of one has no baseline)."""
    prompts_per_step: int = 1
    """Prompts per optimiser step (per process)."""
    max_completion_length: int | None = None
    """Tokens per completion; default env.kwargs.max_new_tokens."""
    learning_rate: float = 3e-4
    """AdamW learning rate of the LoRA weights."""
    num_iterations: int = 2
    """Optimiser steps per generated batch (TRL's mu); > 1 so that PPO's clip acts."""
    epsilon: float = 0.2
    """PPO clip range, in (0, 1]."""
    beta: float = 0.0
    """KL penalty to the base model (0 = none)."""
    temperature: float = 1.0
    """Sampling temperature of the completions (and of samples written from the tuned model)."""
    lora: LoraSection = field(default_factory=LoraSection)
    """LoRA adapter settings: {r, alpha, dropout, target_modules}."""
    train_prompts: Any = None
    """Prompts trained on: a split name, a UTF-8 file (one prompt a line) or a list; default env.kwargs.prompts."""
    eval_prompts: Any = None
    """Held-out prompts of samples and generate; default env.kwargs.eval_prompts."""
    save_steps: int | None = None
    """A checkpoint every N optimiser steps (default steps // 4, at least 1), for --resume."""


def _number(where: str, value: Any, low: float, high: float | None = None, low_open: bool = False) -> float:
    return check_number(where, value, low, high, low_open=low_open, error=RecipeError)


def parse_finetune_section(raw: Any) -> FinetuneSection:
    """Validate a recipe's ``finetune:`` section (``None``: all defaults); errors name field, value, fix."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise fail("finetune", raw, "write a mapping, e.g. finetune: {steps: 40}", RecipeError)
    check_keys("finetune", raw, [f.name for f in fields(FinetuneSection)], RecipeError)
    lora_raw = raw.get("lora") or {}
    if not isinstance(lora_raw, dict):
        raise fail("finetune.lora", lora_raw, "write a mapping, e.g. lora: {r: 8}", RecipeError)
    check_keys("finetune.lora", lora_raw, [f.name for f in fields(LoraSection)], RecipeError)
    lora = LoraSection(**lora_raw)
    s = FinetuneSection(**{**raw, "lora": lora})
    if s.model is not None and (not isinstance(s.model, str) or not s.model.strip()):
        raise fail("finetune.model", s.model, "write a model folder or smollm2-135m-instruct", RecipeError)
    for key in ("steps", "prompts_per_step", "num_iterations"):
        check_int(f"finetune.{key}", getattr(s, key), 1, error=RecipeError)
    check_int("finetune.num_generations", s.num_generations, 2, error=RecipeError)
    for key in ("max_completion_length", "save_steps"):
        if getattr(s, key) is not None:
            check_int(f"finetune.{key}", getattr(s, key), 1, error=RecipeError)
    _number("finetune.learning_rate", s.learning_rate, 0.0, low_open=True)
    _number("finetune.epsilon", s.epsilon, 0.0, 1.0, low_open=True)
    _number("finetune.beta", s.beta, 0.0)
    _number("finetune.temperature", s.temperature, 0.0, low_open=True)
    check_int("finetune.lora.r", lora.r, 1, error=RecipeError)
    _number("finetune.lora.alpha", lora.alpha, 0.0, low_open=True)
    _number("finetune.lora.dropout", lora.dropout, 0.0, 0.99)
    if isinstance(lora.target_modules, str):
        lora.target_modules = [lora.target_modules]
    tm = lora.target_modules
    if not isinstance(tm, list) or not tm or not all(isinstance(m, str) and m for m in tm):
        raise fail(
            "finetune.lora.target_modules",
            tm,
            "write a list of module names, e.g. [q_proj, v_proj] (Llama/SmolLM2) or [c_attn] (GPT-2)",
            RecipeError,
        )
    return s


@dataclass
class GRPOSettings:
    """A recipe's ``finetune:`` section with the defaults taken from ``env.kwargs`` filled in."""

    section: FinetuneSection
    model: str
    max_completion_length: int
    train_prompts: Any
    eval_prompts: Any
    save_steps: int
    system: str | None
    max_prompt_tokens: int

    def sampling(self) -> dict:
        """How the tuned model is sampled (the ``TunedGenerator.sampling`` of this run)."""
        return {
            "temperature": float(self.section.temperature),
            "max_new_tokens": self.max_completion_length,
            "system": self.system,
            "max_prompt_tokens": self.max_prompt_tokens,
            "eval_prompts": self.eval_prompts,
        }


def grpo_settings(recipe: Recipe) -> GRPOSettings:
    """The recipe's GRPO settings: its ``finetune:`` section, defaults from ``env.kwargs``."""
    text = text_settings(recipe)
    s = recipe.settings if recipe.settings is not None else FinetuneSection()
    return GRPOSettings(
        section=s,
        model=s.model or text["lm"],
        max_completion_length=s.max_completion_length or text["max_new_tokens"],
        train_prompts=text["prompts"] if s.train_prompts is None else s.train_prompts,
        eval_prompts=text["eval_prompts"] if s.eval_prompts is None else s.eval_prompts,
        save_steps=s.save_steps or max(1, s.steps // 4),
        system=text["system"],
        max_prompt_tokens=text["max_prompt_tokens"],
    )


# ----------------------------------------------------------------------------------------- helpers


class TimedReward:
    """A TRL reward function that adds up its own wall time (``seconds``, ``calls``), so the run can
    say what share of a training step the reward computation costs. Keeps ``__name__``."""

    def __init__(self, fn):
        self.fn, self.__name__, self.seconds, self.calls = fn, fn.__name__, 0.0, 0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def _format_for_trl(tokenizer, prompts: Sequence[str], system: str | None) -> list:
    if is_chat_tokenizer(tokenizer):  # conversational: TRL applies the chat template itself
        sys_msg = [{"role": "system", "content": system}] if system else []
        return [sys_msg + [{"role": "user", "content": p}] for p in prompts]
    return [f"{system}\n\n{p}" if system else p for p in prompts]


def _check_lora_targets(model, targets: list[str]) -> None:
    linear = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) or type(mod).__name__ == "Conv1D"
        }
    )
    missing = [t for t in targets if t not in linear]
    if missing:
        raise RecipeError(
            f"finetune.lora.target_modules = {targets!r}: this model has no layer named "
            f"{missing}; its linear layers are {linear}"
        )


def _load_lm(name: str) -> LoadedLM:
    try:
        return load_causal_lm(name)
    except ModelNotFoundError as err:
        raise ModelNotFoundError(f"finetune.model = {name!r}: {err}") from None


def _prepare(asm: Assembly, s: GRPOSettings) -> tuple[LoadedLM, list[str], list[str]]:
    """A fresh copy of the LM to fine-tune and the train / eval prompts, all checked (prompts fit the
    tokenizer, LoRA targets exist) before anything is written."""
    train_prompts = resolve_prompts(s.train_prompts, "finetune.train_prompts")
    eval_prompts = resolve_prompts(s.eval_prompts, "finetune.eval_prompts")
    policy = _load_lm(s.model)  # LoRA is injected into this copy; the base stays frozen
    if policy.tokenizer.pad_token is None:
        policy.tokenizer.pad_token = policy.tokenizer.eos_token
    for where, prompts in (("finetune.train_prompts", train_prompts), ("finetune.eval_prompts", eval_prompts)):
        try:
            format_prompts(policy.tokenizer, prompts, s.system, s.max_prompt_tokens)
        except PromptError as err:
            raise RecipeError(f"{where}: {err}") from None
    _check_lora_targets(policy.model, s.section.lora.target_modules)
    return policy, train_prompts, eval_prompts


def _on_gpu() -> bool:
    return torch.cuda.is_available()


# ------------------------------------------------------------------------------------- the trainer


class GRPOTrainerPlugin(Trainer):
    """TRL ``GRPOTrainer`` + peft LoRA on the recipe's reward set; makes a tuned causal LM."""

    name = "trl"
    algos = ("grpo",)
    produces = "generator"
    section = "finetune"

    def parse_section(self, raw: Any) -> FinetuneSection:
        return parse_finetune_section(raw)

    def validate(self, recipe: Recipe) -> None:
        if recipe.trainer.hyper or recipe.trainer.kl_target is not None:
            raise RecipeError(
                "trainer.hyper / trainer.kl_target are SB3 settings; with trainer.algo: grpo set "
                "the GRPO settings in the finetune: section (learning_rate, beta, ...)"
            )
        if "generator" in domain_of(recipe.env_id).generates_from:  # else `check` says the domain cannot
            grpo_settings(recipe)  # env.kwargs hold what GRPO reads (model, prompts, lengths)

    def budget(self, recipe: Recipe) -> int:
        return int((recipe.settings or FinetuneSection()).steps)

    def set_budget(self, recipe: Recipe, steps: int) -> None:
        if recipe.settings is None:
            recipe.settings = FinetuneSection()
        recipe.settings.steps = int(steps)

    def check(self, asm: Assembly) -> None:
        """Load the model, check prompts and LoRA targets, and score two base-model completions of
        the first training prompt with the reward set (state restored), as training will."""
        s = grpo_settings(asm.recipe)
        policy, train_prompts, _ = _prepare(asm, s)
        texts = LMStepper(
            policy.model, policy.tokenizer, top_k=1, system=s.system, max_prompt_tokens=s.max_prompt_tokens
        ).sample(
            train_prompts[:1] * 2,
            max_new_tokens=min(s.max_completion_length, 8),
            temperature=s.section.temperature,
            seed=asm.recipe.seed,
        )
        state = copy.deepcopy(asm.reward_set.state_dict())
        try:
            score_texts(asm.reward_set, texts, train_prompts[:1] * 2, state)
        except Exception as exc:  # a reward that cannot score these texts: say which, don't crash
            raise RecipeError(
                f"rewards: scoring two sampled completions failed ({type(exc).__name__}: {exc}); "
                "check that every term's reward scores texts"
            ) from None

    def train(
        self, asm: Assembly, run_dir: Path, resume: bool = False, overwrite: bool = False, progress_bar: bool = True
    ) -> TunedGenerator | None:
        recipe, run_dir = asm.recipe, Path(run_dir)
        s = grpo_settings(recipe)
        policy, train_prompts, _ = _prepare(asm, s)
        found = latest_checkpoint(run_dir, CHECKPOINT_FILES + (_ADAPTER,)) if resume else None
        checkpoint = found[0] if found is not None and found[0].name != "model" else None
        rank, world = process_rank()
        main = rank == 0
        if found is not None and checkpoint is not None:
            load_reward_state(checkpoint, asm.reward_set)
            if main:
                print(f"resuming from the {found[1]}", file=sys.stderr)
        elif resume and main:
            print(f"{run_dir}: no complete checkpoint to resume from; starting at step 0", file=sys.stderr)
        if main:
            open_run_dir(recipe, run_dir, overwrite=overwrite)
        rewards = [TimedReward(f) for f in trl_reward_funcs(asm.reward_set)]  # the one reward set
        trainer = _grpo_trainer(
            recipe,
            s,
            policy,
            train_prompts,
            run_dir,
            progress_bar,
            rewards,
            trl_reward_weights(asm.reward_set),
            asm.reward_set,
            main,
        )
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
        seconds = time.perf_counter() - start
        steps = int(trainer.state.global_step)
        if main:
            shutil.rmtree(run_dir / "checkpoints" / STAGING, ignore_errors=True)
        if not main:  # other ranks only train: the main process writes model/ and the samples
            print(f"rank {rank} of {world}: trained {steps} steps (rank 0 writes the run folder)")
            return None
        timing = {
            "train_seconds": seconds,
            "reward_seconds": sum(f.seconds for f in rewards),
            "reward_calls": sum(f.calls for f in rewards),
            "world_size": world,
        }
        timing["reward_share"] = timing["reward_seconds"] / seconds if seconds > 0 else float("nan")
        history = trainer.state.log_history
        clip = [e["clip_ratio/region_mean"] for e in history if "clip_ratio/region_mean" in e]
        merged = trainer.model.merge_and_unload().to("cpu").eval()
        state = {
            "num_timesteps": steps,
            "base": s.model,
            "sampling": s.sampling(),
            "timing": timing,
            "clip_ratio_region_mean": sum(clip) / len(clip) if clip else None,
        }
        with atomic_folder(run_dir / "model") as tmp:
            merged.save_pretrained(tmp)
            policy.tokenizer.save_pretrained(tmp)
            save_tree(asm.reward_set.state_dict(), tmp / "reward_state.npz")
            (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
        return TunedGenerator(merged, policy.tokenizer, s.model, s.sampling(), f"final model (model/, {steps} steps)")

    def load(self, asm: Assembly, folder: Path) -> TunedGenerator:
        """``model/`` (merged weights) or ``checkpoints/step_<N>/`` (the base with the adapter merged)."""
        s = grpo_settings(asm.recipe)
        folder = Path(folder)
        if (folder / _ADAPTER).is_file():
            base = _load_lm(s.model)
            model = PeftModel.from_pretrained(base.model, str(folder)).merge_and_unload().eval()
            return TunedGenerator(model, base.tokenizer, s.model, s.sampling())
        lm = load_causal_lm(str(folder))
        return TunedGenerator(lm.model.eval(), lm.tokenizer, s.model, s.sampling())


class StepFolders(TrainerCallback):
    """Turns each TRL ``checkpoint-<N>`` (written into ``staging``) into ``checkpoints/step_<N>/``
    with the reward state, renamed into place once complete so a kill never leaves half of one."""

    def __init__(self, staging: Path, checkpoints: Path, reward_set: Any, main: bool):
        self.staging, self.checkpoints, self.reward_set, self.main = staging, checkpoints, reward_set, main

    def on_save(self, args, state, control, **kwargs):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # every rank has written its RNG state into the folder
        if self.main:
            src = self.staging / f"checkpoint-{state.global_step}"
            save_tree(self.reward_set.state_dict(), src / "reward_state.npz")
            dst = self.checkpoints / f"step_{state.global_step:09d}"
            move_folder_into_place(src, dst)  # a resumed run may save the same step again
        return control


class RewardTermsToTensorBoard(TrainerCallback):
    """Logs TRL's ``rewards/<term>/mean`` as ``rewards/<term>`` (the tag every trainer writes), at
    the optimiser step."""

    def __init__(self, writer: Any):
        self.writer = writer

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key, value in (logs or {}).items():
            if key.startswith("rewards/") and key.endswith("/mean") and isinstance(value, (int, float)):
                self.writer.add_scalar(key[: -len("/mean")], float(value), state.global_step)
        return control


def _grpo_trainer(
    recipe: Recipe,
    s: GRPOSettings,
    policy: LoadedLM,
    prompts: list[str],
    run_dir: Path,
    progress_bar: bool,
    reward_funcs,
    reward_weights,
    reward_set,
    main: bool = True,
):
    f = s.section
    staging = run_dir / "checkpoints" / STAGING
    args = GRPOConfig(
        output_dir=str(staging),
        max_steps=f.steps,
        per_device_train_batch_size=f.num_generations * f.prompts_per_step,
        num_generations=f.num_generations,
        max_completion_length=s.max_completion_length,
        learning_rate=f.learning_rate,
        num_iterations=f.num_iterations,
        epsilon=f.epsilon,
        beta=f.beta,
        temperature=f.temperature,
        reward_weights=reward_weights,
        logging_steps=1,
        save_strategy="steps",
        save_steps=s.save_steps,
        report_to="none",
        disable_tqdm=not progress_bar,
        seed=recipe.seed,
        # CPU: bf16 matmuls are slow or unsupported; on GPUs (multi-GPU launches) bf16 where supported
        bf16=_on_gpu() and torch.cuda.is_bf16_supported(),
        use_cpu=not _on_gpu(),
        activation_checkpointing=False,
    )  # 135M params fit; recomputation only costs time here
    lora = LoraConfig(
        r=f.lora.r,
        lora_alpha=f.lora.alpha,
        lora_dropout=f.lora.dropout,
        target_modules=f.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    data = Dataset.from_dict({"prompt": _format_for_trl(policy.tokenizer, prompts, s.system)})
    callbacks = [StepFolders(staging, run_dir / "checkpoints", reward_set, main)]
    if main:  # one TensorBoard writer: TRL's logs under train/, the reward terms as rewards/<term>
        writer = SummaryWriter(str(run_dir / "tb"))
        callbacks += [TensorBoardCallback(tb_writer=writer), RewardTermsToTensorBoard(writer)]
    trainer = GRPOTrainer(
        model=policy.model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=data,
        processing_class=policy.tokenizer,
        peft_config=lora,
        callbacks=callbacks,
    )
    if not progress_bar:  # --quiet: without tqdm, transformers would print every log dict instead
        trainer.remove_callback(PrinterCallback)
    return trainer


TRAINER = GRPOTrainerPlugin()
