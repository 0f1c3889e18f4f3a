"""Trainers as plugins: everything specific to one learning library, behind one small interface.

A *trainer* (SB3 PPO / MaskablePPO, TRL GRPO + LoRA) owns what only it knows: which ``trainer.algo``
values it runs, its own recipe section and hyper-parameters, how it trains into a run folder, how it
resumes, and how it loads what it trained. Every trainer writes the same run-folder layout::

    config.yaml              the resolved recipe (reproduces the run)
    tb/                      TensorBoard logs (rewards/<term> for every reward term)
    checkpoints/step_<N>/    resumable checkpoints, written atomically (N: the trainer's steps)
    model/                   the final model
    samples/                 what the domain writes from the final model (and samples/metrics.json)
    metrics.json             judges, written by ``rlcreate eval``

and every checkpoint and ``model/`` folder holds ``reward_state.npz`` (the reward set's state) and
``trainer_state.json`` (``num_timesteps`` in ``model/``), so the generic commands (generate, eval,
audit, report) read every trainer's runs the same way.

The generic layers (recipe, assembly, runner, evaluation, CLI) reach a trainer only through
:func:`trainer_for` with the recipe's ``trainer.algo``; they never import a trainer module. The
built-in trainers are named lazily in :data:`BUILTIN` as ``"module:attribute"`` paths, so
``import rlcreate`` imports no SB3 or TRL. Adding a trainer: subclass :class:`Trainer` and call
:func:`register_trainer` with an instance.

What a trainer returns from :meth:`Trainer.train` / :meth:`Trainer.load` is its *model*, of the
kind named by :attr:`Trainer.produces`: ``"policy"`` (acts in the domain's environment; has
``predict``) or ``"generator"`` (a tuned copy of the domain's generator: a :class:`TunedGenerator`).
A domain says which kinds it can write samples from (:attr:`rlcreate.domains.Domain.generates_from`);
``check`` refuses a recipe whose domain cannot use what its trainer makes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from rlcreate.errors import UserError
from rlcreate.validate import check_choice

if TYPE_CHECKING:  # annotations only: the recipe and assembly layers sit above this registry
    from stable_baselines3.common.base_class import BaseAlgorithm
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from rlcreate.assemble import Assembly
    from rlcreate.recipe import Recipe

__all__ = [
    "Trainer",
    "TunedGenerator",
    "Model",
    "BuiltinTrainer",
    "BUILTIN",
    "register_trainer",
    "trainer_for",
    "algos",
    "sections",
    "section_algo",
    "MODEL_KINDS",
    "CHECKPOINT_FILES",
    "process_rank",
]

#: the kinds of model a trainer produces
MODEL_KINDS = ("policy", "generator")
#: what every complete checkpoint / ``model/`` folder holds, whatever the trainer (it adds its own)
CHECKPOINT_FILES = ("reward_state.npz", "trainer_state.json")


@dataclass
class TunedGenerator:
    """A generator tuned by a trainer (``produces = "generator"``), as loaded from a run folder."""

    model: PreTrainedModel
    """The tuned generator (text: a ``transformers`` causal LM, LoRA merged)."""
    tokenizer: PreTrainedTokenizerBase
    """Its tokenizer (text)."""
    base: str
    """What it was tuned from (a model folder or name): the "before" of before/after comparisons."""
    sampling: dict = field(default_factory=dict)
    """How it is sampled as trained: ``temperature``, ``max_new_tokens``, ``system``, ``max_prompt_tokens``."""
    rlcreate_source: str = ""
    """Which folder it was loaded from, as a line for people (same attribute as SB3 models carry)."""


#: what a trainer trains and loads: an SB3 algorithm (``produces = "policy"``) or a tuned generator
Model: TypeAlias = "BaseAlgorithm | TunedGenerator"


class Trainer:
    """The interface a trainer implements (see the module docstring)."""

    name: str = ""
    """Short name (``sb3``, ``trl``)."""
    algos: tuple[str, ...] = ()
    """The ``trainer.algo`` values it runs."""
    produces: str = "policy"
    """``policy`` or ``generator`` (see :data:`MODEL_KINDS`)."""
    section: str = ""
    """Its own top-level recipe section (``finetune`` for GRPO), or ``""`` for none."""

    # ---------------------------------------------------------------- recipe
    def parse_section(self, raw: object) -> object | None:
        """Validate the trainer's own recipe section (``None`` when absent) into a typed dataclass
        (or ``None``); raises :class:`rlcreate.recipe.RecipeError` naming the field."""
        return None

    def validate(self, recipe: Recipe) -> None:
        """Checks of ``recipe.trainer`` that need no environment (hyper-parameter names and ranges)."""

    def budget(self, recipe: Recipe) -> int:
        """The training budget in the trainer's own steps (what ``--steps`` overrides)."""
        return int(recipe.trainer.total_timesteps)

    def set_budget(self, recipe: Recipe, steps: int) -> None:
        recipe.trainer.total_timesteps = int(steps)

    # ---------------------------------------------------------------- runs
    def check(self, asm: Assembly) -> None:
        """Build what :meth:`train` will build (the algorithm on the environment, the model with its
        adapters), so ``rlcreate check`` fails where ``train`` would."""
        raise NotImplementedError

    def train(
        self, asm: Assembly, run_dir: Path, resume: bool = False, overwrite: bool = False, progress_bar: bool = True
    ) -> Model | None:
        """Train into ``run_dir`` (the layout above; ``resume``: from its latest checkpoint) and return
        the trained model (``None`` in the helper processes of a multi-process run, which write
        nothing). Everything checkable fails before ``run_dir`` is written."""
        raise NotImplementedError

    def load(self, asm: Assembly, folder: Path) -> Model:
        """The model saved in ``folder`` (``RUN/model/`` or ``RUN/checkpoints/step_<N>/``)."""
        raise NotImplementedError

    def initial(self, asm: Assembly) -> Model:
        """The recipe's model before any training (what RL starts from; judged next to the trained
        one to show what training added)."""
        raise NotImplementedError(f"the {self.name!r} trainer cannot build its untrained model")

    def checkpoint_files(self) -> tuple[str, ...]:
        """Files every complete checkpoint / ``model/`` folder of this trainer holds."""
        return CHECKPOINT_FILES


class BuiltinTrainer(NamedTuple):
    """A built-in trainer, named lazily so that ``import rlcreate`` imports no trainer module."""

    trainer: str  #: ``"module:attribute"`` of the Trainer instance
    algos: tuple[str, ...]  #: ``trainer.algo`` values it runs
    section: str = ""  #: its own top-level recipe section


BUILTIN: dict[str, BuiltinTrainer] = {
    "sb3": BuiltinTrainer("rlcreate.sb3:TRAINER", ("ppo", "maskable_ppo")),
    "trl": BuiltinTrainer("rlcreate.trl.grpo:TRAINER", ("grpo",), "finetune"),
}
_TRAINERS: dict[str, Trainer] = {}  # loaded or registered instances by name
_ALGO_TRAINER: dict[str, str] = {algo: name for name, entry in BUILTIN.items() for algo in entry.algos}
_SECTIONS: dict[str, str] = {entry.section: name for name, entry in BUILTIN.items() if entry.section}


def process_rank() -> tuple[int, int]:
    """``(rank, world_size)`` of this process as the launcher set them (``torchrun`` and
    ``accelerate launch`` export ``RANK`` and ``WORLD_SIZE``); ``(0, 1)`` for a plain run. Only rank
    0 writes the run folder."""
    import os

    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def register_trainer(trainer: Trainer) -> Trainer:
    """Add a trainer (from your package or a test); its ``algos`` become valid ``trainer.algo`` values."""
    if not trainer.name or not trainer.algos or trainer.produces not in MODEL_KINDS:
        raise UserError(f"trainer {type(trainer).__name__}: set `name`, `algos` and `produces` (one of {MODEL_KINDS})")
    _TRAINERS[trainer.name] = trainer
    _ALGO_TRAINER.update({algo: trainer.name for algo in trainer.algos})
    if trainer.section:
        _SECTIONS[trainer.section] = trainer.name
    return trainer


def algos() -> list[str]:
    """Every ``trainer.algo`` value some trainer runs."""
    return sorted(_ALGO_TRAINER)


def sections() -> dict[str, str]:
    """Top-level recipe sections owned by trainers: section -> trainer name."""
    return dict(_SECTIONS)


def section_algo(section: str) -> str:
    """The default ``trainer.algo`` of a recipe holding a trainer's own ``section`` (its first algo)."""
    name = _SECTIONS[section]
    return (_TRAINERS[name].algos if name in _TRAINERS else BUILTIN[name].algos)[0]


def trainer_for(algo: str, error: type[UserError] = UserError) -> Trainer:
    """The trainer that runs ``trainer.algo = algo`` (loaded on first use)."""
    check_choice("trainer.algo", algo, algos(), "a supported algorithm", error)
    name = _ALGO_TRAINER[algo]
    if name not in _TRAINERS:
        module, attr = BUILTIN[name].trainer.split(":")
        _TRAINERS[name] = getattr(importlib.import_module(module), attr)
    return _TRAINERS[name]
