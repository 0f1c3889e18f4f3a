"""Thin SB3 adapter: train a recipe's environment with PPO / MaskablePPO into a run folder.

Run folder layout (``runs/<name>/``)::

    config.yaml          the resolved recipe (reproduces the run)
    tb/                  TensorBoard logs: rollout/*, train/*, rewards/<term> for every reward term
    checkpoints/         model_<steps>.zip + reward_state_<steps>.pkl (archives, running stats)
    model.zip            the final policy
    reward_state.pkl     the final reward-set state
    samples/             generated artifacts (txt + png for levels) and samples/metrics.json
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from rlcreate.recipe import Recipe

__all__ = ["RewardTermsLogger", "CheckpointWithRewardState", "train_recipe", "load_policy", "make_algo"]


class RewardTermsLogger(BaseCallback):
    """Logs the mean of every reward term (``info["rewards"]``) as ``rewards/<name>`` and feeds
    training progress to the environment (for weight schedules)."""

    def __init__(self, total_timesteps: int):
        super().__init__()
        self.total = max(int(total_timesteps), 1)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            for k, v in (info.get("rewards") or {}).items():
                if v == v:  # skip NaN (term not applicable)
                    self._sums[k] = self._sums.get(k, 0.0) + v
                    self._counts[k] = self._counts.get(k, 0) + 1
        self.training_env.env_method("set_progress", min(self.num_timesteps / self.total, 1.0))
        return True

    def _on_rollout_end(self) -> None:
        for k, s in self._sums.items():
            self.logger.record(f"rewards/{k}", s / max(self._counts[k], 1))
        self._sums.clear()
        self._counts.clear()


class CheckpointWithRewardState(BaseCallback):
    """Saves the policy and the reward set's state (novelty archive, running stats) every
    ``every`` steps."""

    def __init__(self, folder: Path, every: int, reward_set: Any):
        super().__init__()
        self.folder, self.every, self.reward_set = folder, max(int(every), 1), reward_set
        self._next = self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            self.folder.mkdir(parents=True, exist_ok=True)
            self.model.save(self.folder / f"model_{self.num_timesteps}.zip")
            with open(self.folder / f"reward_state_{self.num_timesteps}.pkl", "wb") as f:
                pickle.dump(self.reward_set.state_dict(), f)
        return True


def make_algo(recipe: Recipe, venv, tb_dir: Path | None):
    hyper = dict(recipe.trainer["hyper"])
    if recipe.trainer["algo"] == "maskable_ppo":
        from sb3_contrib import MaskablePPO as Algo
    else:
        from stable_baselines3 import PPO as Algo
    policy = hyper.pop("policy", "MlpPolicy")
    if policy == "lm_prior":  # our policy names -> classes (rlcreate.train.policies)
        from rlcreate.train.policies import resolve_policy

        if recipe.trainer["algo"] != "maskable_ppo":
            from rlcreate.recipe import RecipeError
            raise RecipeError(f"trainer.hyper.policy = 'lm_prior' with trainer.algo = {recipe.trainer['algo']!r}: "
                              "the lm_prior policy is a MaskablePPO policy; set trainer.algo: maskable_ppo")
        policy = resolve_policy(policy)
    try:
        return Algo(policy, venv, seed=recipe.seed, verbose=0, device=recipe.trainer["device"],
                    tensorboard_log=str(tb_dir) if tb_dir else None, **hyper)
    except TypeError as exc:
        from rlcreate.recipe import RecipeError
        raise RecipeError(f"trainer.hyper = {recipe.trainer['hyper']!r}: {exc}; see the "
                          f"{Algo.__name__} documentation for valid arguments") from None


def train_recipe(recipe: Recipe, venv, reward_set, run_dir: Path, progress_bar: bool = True,
                 total_timesteps: int | None = None):
    """Train PPO/MaskablePPO on ``venv``; writes config, TensorBoard logs, checkpoints, model."""
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe.dump(run_dir / "config.yaml")
    total = int(total_timesteps or recipe.trainer["total_timesteps"])
    model = make_algo(recipe, venv, run_dir / "tb")
    callbacks = [RewardTermsLogger(total)]
    if recipe.trainer["checkpoints"]:
        callbacks.append(CheckpointWithRewardState(run_dir / "checkpoints",
                                                   total // recipe.trainer["checkpoints"], reward_set))
    model.learn(total_timesteps=total, callback=CallbackList(callbacks), tb_log_name="train",
                progress_bar=progress_bar)
    model.save(run_dir / "model.zip")
    with open(run_dir / "reward_state.pkl", "wb") as f:
        pickle.dump(reward_set.state_dict(), f)
    return model


def load_policy(run_dir: Path, algo: str):
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO as Algo
    else:
        from stable_baselines3 import PPO as Algo
    return Algo.load(run_dir / "model.zip", device="cpu")


def rollout_levels(model, venv, n: int, deterministic: bool = True) -> list[dict]:
    """Run the policy until ``n`` episodes finished; returns the finished episodes' infos."""
    from sb3_contrib import MaskablePPO

    out: list[dict] = []
    obs = venv.reset()
    while len(out) < n:
        if isinstance(model, MaskablePPO):
            action, _ = model.predict(obs, deterministic=deterministic, action_masks=venv.action_masks())
        else:
            action, _ = model.predict(obs, deterministic=deterministic)
        obs, _, done, infos = venv.step(action)
        out.extend(infos[i] for i in np.flatnonzero(done))
    return out[:n]
