"""KL-to-reference coefficient for token envs: fixed, or Ziegler et al.'s adaptive controller.

With the ``lm_prior`` policy and ``policy_kwargs: {kl_to_prior: true}``
(:class:`rlcreate.sb3.policies.LMPriorPolicy`), the "entropy" PPO's loss uses is exactly
``-KL(pi || p_LM)`` per state, so SB3's ``ent_coef`` *is* the KL coefficient ``beta``: the loss
holds ``ent_coef * entropy_loss = beta * mean KL``. A fixed ``beta`` keeps the KL wherever the
reward and ``beta`` balance; the recipe's ``trainer.kl_target`` asks instead for the adaptive
controller of Ziegler et al. (2019), "Fine-Tuning Language Models from Human Preferences"
(arXiv:1909.08593, section 2.2; their code's ``AdaptiveKLController``, also TRL's), which moves
``beta`` so the measured KL approaches the target::

    e_t       = clip(KL_t / KL_target - 1, -0.2, 0.2)
    beta_t+1  = beta_t * (1 + e_t * n_t / horizon)

``KL_t`` is the mean per-step KL of the policy that collected rollout ``t`` (nats per token,
measured on that rollout's states), ``n_t`` the env steps in the rollout (``n_steps * n_envs``)
and ``horizon`` ``trainer.kl_horizon`` (10000, Ziegler's). Ziegler counts ``n_t`` in samples and
``KL`` per whole sample; here both are per token (one env step = one token/column), so a rollout
of 4096 steps moves ``beta`` by at most ``0.2 * 4096 / 10000`` = 8%.

:class:`KLController` runs after every rollout (before PPO's update on it, so the new ``beta``
is the one that update uses), sets ``model.ent_coef`` (a float SB3's PPO and MaskablePPO read in
``train()``) and logs ``train/kl`` and ``train/kl_beta``. With ``target=None`` it only logs (the
fixed ``beta`` of ``ent_coef``). ``beta`` lives in ``model.ent_coef``, which rlcreate's
checkpoints save (``trainer_state.json``) and ``--resume`` restores.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from rlcreate.recipe import RecipeError
from rlcreate.validate import check_int, check_number, fail

__all__ = [
    "KLController",
    "kl_beta_update",
    "measure_kl",
    "kl_controller_for",
    "validate_kl_control",
    "ERROR_CLIP",
    "DEFAULT_HORIZON",
]

#: Ziegler et al.'s clip on the proportional error.
ERROR_CLIP = 0.2
#: Ziegler et al.'s horizon (env steps here).
DEFAULT_HORIZON = 10000


def kl_beta_update(beta: float, kl: float, target: float, n_steps: int, horizon: int = DEFAULT_HORIZON) -> float:
    """One step of the adaptive controller: ``beta * (1 + clip(kl/target - 1, ±0.2) * n_steps / horizon)``."""
    error = float(np.clip(kl / target - 1.0, -ERROR_CLIP, ERROR_CLIP))
    return float(beta) * (1.0 + error * n_steps / horizon)


def measure_kl(model: Any, max_states: int = 4096) -> float:
    """Mean ``KL(pi || p_LM)`` over the states of ``model``'s current rollout buffer.

    Reads it from the policy's ``evaluate_actions`` (``entropy`` is ``-KL`` per state when
    ``kl_to_prior`` is on), in one no-grad pass over at most ``max_states`` states taken at an even
    stride (deterministic: no RNG is drawn, so training's random streams are unchanged)."""
    buf = model.rollout_buffer
    n = buf.buffer_size * buf.n_envs if buf.full else buf.pos * buf.n_envs
    if n == 0:
        return float("nan")
    idx = np.arange(0, n, max(1, -(-n // max_states)))
    obs = buf.observations.reshape(-1, *buf.obs_shape)[idx]
    actions = buf.actions.reshape(-1, buf.action_dim)[idx]
    masks = getattr(buf, "action_masks", None)
    kwargs = {"action_masks": buf.to_torch(masks.reshape(-1, buf.mask_dims)[idx])} if masks is not None else {}
    with th.no_grad():
        _, _, neg_kl = model.policy.evaluate_actions(
            buf.to_torch(obs), buf.to_torch(actions).long().flatten(), **kwargs
        )
    return float(-neg_kl.float().mean())


class KLController(BaseCallback):
    """After every rollout: measure the policy's KL to the LM on it, log ``train/kl`` and
    ``train/kl_beta``, and (``target`` set) update ``model.ent_coef`` by Ziegler's rule.

    Args:
        target: KL target in nats per step; ``None`` keeps ``beta = ent_coef`` fixed (only logs).
        horizon: the controller's horizon in env steps (larger = slower changes of beta).
        max_states: states of a rollout the KL is measured on (an even stride over the buffer).
    """

    def __init__(self, target: float | None = None, horizon: int = DEFAULT_HORIZON, max_states: int = 4096):
        super().__init__()
        self.target, self.horizon, self.max_states = target, int(horizon), int(max_states)
        self.last_kl = float("nan")

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        model = cast(OnPolicyAlgorithm, self.model)  # a rollout callback: PPO / MaskablePPO
        kl = measure_kl(model, self.max_states)
        self.last_kl = kl
        if self.target is not None and np.isfinite(kl):
            n = model.n_steps * model.n_envs
            model.ent_coef = kl_beta_update(float(model.ent_coef), kl, self.target, n, self.horizon)
        self.logger.record("train/kl", kl)
        self.logger.record("train/kl_beta", float(model.ent_coef))


def _kl_policy(hyper: dict) -> bool:
    kwargs = hyper.get("policy_kwargs") or {}
    return hyper.get("policy") == "lm_prior" and isinstance(kwargs, dict) and kwargs.get("kl_to_prior") is True


def validate_kl_control(trainer: Any, error: type | None = None) -> None:
    """Check ``trainer.kl_target`` / ``trainer.kl_horizon`` and that the policy has a KL to control:
    ``kl_target`` needs ``hyper.policy: lm_prior`` with ``policy_kwargs: {kl_to_prior: true}`` and
    ``hyper.ent_coef > 0`` (the starting beta). Raises ``error`` (default :class:`RecipeError`)."""
    error = error or RecipeError
    check_int("trainer.kl_horizon", trainer.get("kl_horizon", DEFAULT_HORIZON), 1, 10**12, error)
    target = trainer.get("kl_target")
    if target is None:
        return
    check_number("trainer.kl_target", target, 0.0, None, low_open=True, error=error)
    hyper = trainer.get("hyper") or {}
    if not _kl_policy(hyper):
        raise fail(
            "trainer.kl_target",
            target,
            "needs a KL to control: set trainer.hyper.policy: lm_prior and "
            "trainer.hyper.policy_kwargs: {kl_to_prior: true} (or remove kl_target)",
            error,
        )
    beta = hyper.get("ent_coef", 0.0)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
        raise fail(
            "trainer.kl_target",
            target,
            f"starts from beta = trainer.hyper.ent_coef, which is {beta!r}; "
            "set trainer.hyper.ent_coef > 0 (e.g. 0.05), or remove kl_target",
            error,
        )


def kl_controller_for(trainer: Any) -> KLController | None:
    """The :class:`KLController` a recipe's trainer section asks for: adaptive with ``kl_target``,
    logging only for an ``lm_prior`` policy with ``kl_to_prior`` and a fixed beta, else ``None``."""
    hyper = trainer.get("hyper") or {}
    if not _kl_policy(hyper):
        return None
    return KLController(trainer.get("kl_target"), trainer.get("kl_horizon", DEFAULT_HORIZON))
