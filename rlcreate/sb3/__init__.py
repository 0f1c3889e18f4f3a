"""The SB3 trainer: PPO / MaskablePPO over a domain's batched environment (``trainer.algo: ppo |
maskable_ppo``).

Algorithms from recipe data: :mod:`.algo`; training, callbacks and loading: :mod:`.trainer`; policy
folders as data: :mod:`.io`; the LM-prior policy: :mod:`.policies`; the adaptive KL coefficient:
:mod:`.kl_control`. Generic code reaches this package only through :mod:`rlcreate.trainers`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stable_baselines3.common.vec_env import VecMonitor

from rlcreate.assemble import Assembly, dry_run
from rlcreate.recipe import Recipe
from rlcreate.sb3.algo import ALGOS, algo_class, build_algo, check_rollout_size, make_algo, validate_hyper
from rlcreate.sb3.io import POLICY_FILES, load_policy_folder, save_checkpoint
from rlcreate.sb3.kl_control import validate_kl_control
from rlcreate.sb3.trainer import (
    CheckpointWithRewardState,
    RewardTermsLogger,
    export_sb3_zip,
    load_model,
    load_policy,
    train_recipe,
    trainer_extra,
    training_callbacks,
)
from rlcreate.trainers import Trainer

__all__ = [
    "SB3Trainer",
    "TRAINER",
    "make_algo",
    "build_algo",
    "algo_class",
    "validate_hyper",
    "check_rollout_size",
    "train_recipe",
    "training_callbacks",
    "trainer_extra",
    "RewardTermsLogger",
    "CheckpointWithRewardState",
    "load_model",
    "load_policy",
    "export_sb3_zip",
    "save_checkpoint",
    "load_policy_folder",
]


class SB3Trainer(Trainer):
    """PPO / MaskablePPO (stable-baselines3, sb3-contrib) on the recipe's batched environment."""

    name = "sb3"
    algos = ALGOS
    produces = "policy"

    def validate(self, recipe: Recipe) -> None:
        validate_hyper(recipe.trainer.algo, dict(recipe.trainer.hyper))
        validate_kl_control(recipe.trainer)

    def check(self, asm: Assembly) -> None:
        venv = asm.make_env()
        try:
            make_algo(asm.recipe, venv, None)
            dry_run(asm)
        finally:
            venv.close()

    def train(
        self, asm: Assembly, run_dir: Path, resume: bool = False, overwrite: bool = False, progress_bar: bool = True
    ) -> Any:
        return train_recipe(
            asm.recipe, VecMonitor(asm.make_env()), Path(run_dir), progress_bar, resume=resume, overwrite=overwrite
        )

    def load(self, asm: Assembly, folder: Path) -> Any:
        return load_model(folder, asm.recipe.trainer.algo)

    def initial(self, asm: Assembly) -> Any:
        import warnings

        with warnings.catch_warnings():  # built on one env to act, never to learn: its rollout size is moot
            warnings.filterwarnings("ignore", message="You have specified a mini-batch size")
            return make_algo(asm.recipe, asm.make_env(1, asm.recipe.seed, "eval"), None)

    def checkpoint_files(self) -> tuple[str, ...]:
        return POLICY_FILES


TRAINER = SB3Trainer()
