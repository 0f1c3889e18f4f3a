"""SB3 policies for steering a frozen LM over ``rlcreate/TextTokens-v0`` and ``rlcreate/MarioTokens-v1``.

:class:`LMPriorPolicy` (recipe name ``lm_prior``) is a MaskablePPO actor-critic whose action logits
are the LM's own top-k log-probabilities, read from the observation, **plus** a learned correction
from an MLP over the observation whose output layer starts at zero. Training therefore starts
exactly at the LM's distribution renormalised over the offered top-k tokens (the ``lm_topk``
baseline of :func:`rlcreate.train.text.compare_with_plain`) and PPO only learns how to depart from
it; a plain ``MlpPolicy`` starts uniform over the k slots, which writes far less fluent text than
the LM. RL4LMs initialises its policy from the LM for the same reason.

:class:`CandidatePolicy` (recipe name ``candidate_scorer``) is a PPO actor-critic for envs that
observe K candidates and pick one with K - 1 Box entries or a ``Discrete(K)`` choice
(``rlcreate/MarioLatent-v1`` with ``candidates``): one shared scorer per candidate block, zero mean
action (or uniform logits) at the start, or, with ``rule_gain`` > 0, a start at a hand-built rule
read from the blocks (the env's greedy picker).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import (
    MaskableCategorical,
    MaskableCategoricalDistribution,
    MaskableDistribution,
)
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn
from torch.nn import functional as F

from rlcreate.envs.column_tokens import LOGPROB_FLOOR as COLUMN_LOGPROB_FLOOR
from rlcreate.envs.text_tokens import LOGPROB_FLOOR
from rlcreate.errors import UserError

__all__ = ["CandidatePolicy", "LMPriorPolicy", "PolicyConfigError", "POLICIES", "resolve_policy", "masked_log_probs"]


class PolicyConfigError(UserError):
    """A policy does not fit the environment's spaces; the message names the value and the fix."""


class LMPriorPolicy(MaskableActorCriticPolicy):
    """Action logits = observed LM top-k log-probs + a zero-initialised MLP correction.

    The observation must hold the LM's top-k log-probs, one per action slot, as
    :class:`~rlcreate.envs.text_tokens.TextTokensCore` lays them out: ``[hidden (d), top-k
    log-probs (k), progress (1)]``. The environment only clips them to ``[LOGPROB_FLOOR, 0]`` (a
    disallowed slot, ``-inf``, becomes the floor and is masked anyway); there is no scaling to undo,
    so the slice is used as logits as it is. ``softmax`` of log-probs over a subset of the vocabulary
    is the LM's distribution renormalised over that subset.

    The critic and the correction's hidden layers are SB3's usual MLPs over the whole observation
    (``net_arch``); only the actor's output layer (``action_net``) is zeroed, so the correction is 0
    for every observation at initialisation while its gradient is not.

    Args (besides :class:`MaskableActorCriticPolicy`'s):
        prior_start: index of the first top-k log-prob in the observation; default
            ``obs_dim - k - 1`` (the TextTokens-v0 layout). For ``rlcreate/MarioTokens-v1`` pass
            the LM's ``n_embd`` (128 for the shipped column LM): there the log-probs are observed
            mapped to ``[0, 1]`` as ``1 - lp / LOGPROB_FLOOR`` (bounds ``[0, 1]``), and the policy
            maps them back (with MarioTokens' floor, -20).
        kl_to_prior: replace the entropy PPO's bonus uses by ``-KL(pi || p_LM)`` over the offered
            slots (``H(pi) + sum_a pi(a) log p_LM(a)``, exact per state), so ``ent_coef = beta`` is a
            KL-to-reference penalty in the loss instead of a pull toward uniform. The reported
            ``train/entropy_loss`` then logs the mean KL. Without it, an entropy bonus
            pulls the policy toward uniform over the top-k offers (text_steer uses ``ent_coef 0``).
        offer_features: F > 0 when the observation ends with F schedule deficits and then F gains
            per offered slot (``F + k * F`` entries, slot-major: the layout of
            :class:`~rlcreate.envs.target_control.TargetControl`, F = number of targets). Slot j is
            described by its gains g_j and by ``g_j * (2 * deficit - 1)`` (positive where the offer
            adds what the level lacks); a zero-initialised head maps the actor's latent to weights
            over these 2F numbers and adds their dot product to slot j's logit. A pointer-style
            score: the policy can prefer "an offer with an enemy while enemies are behind schedule"
            wherever it sits in the ranking (an MLP's k outputs are tied to rank positions, whose
            content changes every step: with them alone the policy ignored its targets), and the
            head's bias alone can already express it.
        offer_guidance: g >= 0 (default 0): the reference the policy starts at and is kept near is
            the LM plus a control prior, ``log p_LM(j) + g * sum_t g_jt * (2 * deficit_t - 1)``
            (weighted decoding toward the targets' schedule, renormalised to the LM's top-k mass),
            so control works from the first step and ``kl_to_prior`` measures the distance to this
            guided LM. On MarioTokens-v1 (32 levels, no training) g = 0, 2, 4, 8 give
            corr(target, achieved) for enemies 0.06, 0.33, 0.86, 0.90; as a learned head bias
            instead, PPO and the KL to the plain LM wore g = 6 down to corr 0.69 in 300k steps.
        offer_structure: S > 0 when the observation ends, after the control block, with S contexts
            and then S values per offered slot (``S + k * S`` entries, slot-major: MarioTokens-v1's
            ``offer_objective``, what each offer does to a designer objective's measure). The offer
            head also scores slot j by its values v_j and ``v_j * (2 * context - 1)``, like the
            gains; ``offer_guidance`` leaves them out, so the start (the head is zero) is unchanged.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule,
        *args: Any,
        prior_start: int | None = None,
        kl_to_prior: bool = False,
        offer_features: int = 0,
        offer_guidance: float = 0.0,
        offer_structure: int = 0,
        **kwargs: Any,
    ):
        self.prior_start = _check_layout(observation_space, action_space, prior_start)
        self.kl_to_prior = bool(kl_to_prior)
        self.offer_structure = _check_count(offer_structure, "offer_structure")
        self.offer_features = _check_offer_features(
            cast(spaces.Box, observation_space),
            cast(spaces.Discrete, action_space),
            offer_features,
            self.prior_start,
            self.offer_structure,
        )
        if not (isinstance(offer_guidance, (int, float)) and np.isfinite(offer_guidance) and offer_guidance >= 0) or (
            offer_guidance and not self.offer_features
        ):
            raise PolicyConfigError(
                f"offer_guidance = {offer_guidance!r}: must be a finite number >= 0, and needs "
                "offer_features > 0 (the control inputs it weights)"
            )
        self.offer_guidance = float(offer_guidance)
        # MarioTokens-v1 observes the log-probs mapped to [0, 1] (x = 1 - lp / FLOOR): undo that
        k = int(cast(spaces.Discrete, action_space).n)  # _check_layout: Discrete actions, 1-D Box observations
        low = cast(spaces.Box, observation_space).low
        self.prior_scaled = bool(np.all(low[self.prior_start : self.prior_start + k] == 0.0))
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        # Zero the correction's output layer in place (the optimizer already holds these tensors).
        with th.no_grad():
            nn.init.zeros_(self.action_net.weight)
            nn.init.zeros_(self.action_net.bias)
        if self._offer_inputs:  # added after the optimizer was built: register its parameters too
            self.offer_net = nn.Linear(self.mlp_extractor.latent_dim_pi, self._offer_inputs)
            nn.init.zeros_(self.offer_net.weight)
            nn.init.zeros_(self.offer_net.bias)
            self.optimizer.add_param_group({"params": list(self.offer_net.parameters())})

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["prior_start"] = self.prior_start
        data["kl_to_prior"] = self.kl_to_prior
        data["offer_features"] = self.offer_features
        data["offer_guidance"] = self.offer_guidance
        data["offer_structure"] = self.offer_structure
        return data

    @property
    def _offer_inputs(self) -> int:
        """Inputs per slot of the offer head: 2 per control target, 2 per structure feature."""
        return 2 * (self.offer_features + self.offer_structure)

    @property
    def _k(self) -> int:
        """Offered slots: the size of the Discrete action space (checked by _check_layout)."""
        return int(cast(spaces.Discrete, self.action_space).n)

    def lm_logits(self, obs: th.Tensor) -> th.Tensor:
        """The LM's top-k log-probs from a batch of observations, (batch, k)."""
        k = self._k
        x = obs.float()[..., self.prior_start : self.prior_start + k]
        return COLUMN_LOGPROB_FLOOR * (1.0 - x) if self.prior_scaled else x

    def prior_logits(self, obs: th.Tensor, offer: th.Tensor | None = None) -> th.Tensor:
        """The reference's log-probs over the k slots: the LM's, plus the control prior when
        ``offer_guidance`` > 0 (renormalised to the same top-k mass), (batch, k). ``offer``:
        ``offer_inputs(obs)`` if already computed."""
        lm = self.lm_logits(obs)
        if not self.offer_guidance:
            return lm
        offer = self.offer_inputs(obs) if offer is None else offer
        f = self.offer_features  # the control part only: [gains (F), gains x deficit (F), ...]
        guided = lm + self.offer_guidance * offer[..., f : 2 * f].sum(-1)
        return guided - th.logsumexp(guided, -1, keepdim=True) + th.logsumexp(lm, -1, keepdim=True)

    def offer_inputs(self, obs: th.Tensor) -> th.Tensor:
        """(batch, k, 2F + 2S): each slot's gains and gains x signed schedule deficit, then its
        structure values and values x signed context (see the class)."""
        k, f, s = self._k, self.offer_features, self.offer_structure
        x = obs.float()
        tail = (1 + k) * s
        parts = []
        for n, end in ((f, x.shape[-1] - tail), (s, x.shape[-1])):
            if n:
                block = x[..., end - (1 + k) * n : end]
                values = block[..., n:].reshape(*x.shape[:-1], k, n)
                signed = 2.0 * block[..., :n] - 1.0  # > 0 where the level needs what the value measures
                parts += [values, values * signed.unsqueeze(-2)]
        return th.cat(parts, -1)  # [gains, gains x deficit, values, values x context]

    def _action_logits(self, obs: th.Tensor, latent_pi: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Unnormalised action logits ``(batch, k)`` and the reference's log-probs
        (``prior_logits``), each computed once per call (the KL term reuses the latter)."""
        offer = self.offer_inputs(obs) if self._offer_inputs else None
        prior = self.prior_logits(obs, offer)
        logits = prior + self.action_net(latent_pi)
        if offer is not None:
            logits = logits + (offer * self.offer_net(latent_pi).unsqueeze(-2)).sum(-1)
        return logits.view(-1, self._k), prior

    def _distribution(
        self, obs: th.Tensor, latent_pi: th.Tensor, action_masks: np.ndarray | th.Tensor | None
    ) -> tuple[MaskableCategoricalDistribution, th.Tensor]:
        """The masked action distribution and the reference's log-probs (``prior_logits``)."""
        logits, prior = self._action_logits(obs, latent_pi)
        # Discrete actions (checked by _check_layout), so the action distribution is categorical.
        # Built once with its masks (SB3's proba_distribution + apply_masking build it three
        # times; the final logits are the same) and without torch's argument validation, which
        # checks every tensor on every call of the rollout and the update.
        distribution = cast(MaskableCategoricalDistribution, self.action_dist)
        distribution.distribution = MaskableCategorical(logits=logits, validate_args=False, masks=action_masks)
        return distribution, prior

    def _latents(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        if self.share_features_extractor and type(self.features_extractor) is FlattenExtractor and obs.dim() == 2:
            # SB3's path for a flat Box observation (obs.float(), Flatten: the same tensor), then
            # the two MLPs layer by layer without nn.Module's call machinery: the same kernels
            features = obs.float()
            return _mlp(self.mlp_extractor.policy_net, features), _mlp(self.mlp_extractor.value_net, features)
        features = self.extract_features(obs)
        if self.share_features_extractor:
            return self.mlp_extractor(features)
        pi_features, vf_features = features
        return self.mlp_extractor.forward_actor(pi_features), self.mlp_extractor.forward_critic(vf_features)

    # The three entry points below mirror MaskableActorCriticPolicy's, with the raw observation
    # passed on to the distribution (the parent builds it from the latent code alone).

    #: run a rollout's forward (SB3 calls it with gradients off) in ``torch.inference_mode``: the
    #: same kernels and bits without autograd's per-op bookkeeping (~10% of the call at 16 rows);
    #: its outputs are inference tensors, which SB3 only copies to numpy
    rollout_inference_mode: bool = True

    def forward(
        self, obs: th.Tensor, deterministic: bool = False, action_masks: np.ndarray | None = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        if self.rollout_inference_mode and not th.is_grad_enabled() and not th.is_inference_mode_enabled():
            with th.inference_mode():
                return self._forward(obs, deterministic, action_masks)
        return self._forward(obs, deterministic, action_masks)

    def _forward(
        self, obs: th.Tensor, deterministic: bool = False, action_masks: np.ndarray | None = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        latent_pi, latent_vf = self._latents(obs)
        values = self.value_net(latent_vf)
        if action_masks is None:
            distribution, _ = self._distribution(obs, latent_pi, action_masks)
            actions = distribution.get_actions(deterministic=deterministic)
            log_prob = distribution.log_prob(actions)
        else:  # the rollout's path: the same tensors without building distribution objects
            logits, _ = self._action_logits(obs, latent_pi)
            log_probs, _ = masked_log_probs(logits, action_masks)
            probs = th.softmax(log_probs, dim=-1)
            actions = probs.argmax(dim=1) if deterministic else th.multinomial(probs, 1, True).T.reshape(-1)
            log_prob = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return actions.reshape((-1, *(self.action_space.shape or ()))), values, log_prob

    def evaluate_actions(
        self, obs: th.Tensor, actions: th.Tensor, action_masks: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        latent_pi, latent_vf = self._latents(obs)
        if action_masks is None:
            distribution, prior = self._distribution(obs, latent_pi, action_masks)
            entropy = distribution.entropy()
            if self.kl_to_prior:
                entropy = entropy + (distribution.distribution.probs * prior).sum(-1)
            return self.value_net(latent_vf), distribution.log_prob(actions), entropy
        # PPO's update: MaskableCategorical's entropy and log-prob, op for op and in its order (so
        # the losses and their gradients are the same bits), without building distribution objects
        logits, prior = self._action_logits(obs, latent_pi)
        log_probs, masks = masked_log_probs(logits, action_masks)
        probs = th.softmax(log_probs, dim=-1)
        entropy = -th.where(masks, log_probs * probs, th.tensor(0.0)).sum(-1)
        if self.kl_to_prior:  # H(pi) + E_pi[log p_LM] = -KL(pi || p_LM), exact over the offered slots
            entropy = entropy + (probs * prior).sum(-1)
        values = self.value_net(latent_vf)
        return values, log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy

    def get_distribution(self, obs: th.Tensor, action_masks: np.ndarray | None = None) -> MaskableDistribution:
        features = super(MaskableActorCriticPolicy, self).extract_features(obs, self.pi_features_extractor)
        latent_pi = self.mlp_extractor.forward_actor(features)
        return self._distribution(obs, latent_pi, action_masks)[0]


def _mlp(net: nn.Sequential, x: th.Tensor) -> th.Tensor:
    """``net(x)`` with its Linear and Tanh layers called as the functions they wrap."""
    for layer in net:
        if type(layer) is nn.Linear:
            x = th.nn.functional.linear(x, layer.weight, layer.bias)
        elif type(layer) is nn.Tanh:
            x = th.tanh(x)
        else:
            x = layer(x)
    return x


def masked_log_probs(logits: th.Tensor, masks: np.ndarray | th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """``(log-probs, bool masks)`` of sb3-contrib's ``MaskableCategorical(logits=logits,
    masks=masks)``, computed by the same tensor operations in the same order (normalise, set masked
    slots to -1e8, normalise again), so the values and their gradients are the same bits; the
    distribution object's Python set-up, twice per call, is what this skips (it was a large part of
    the policy's per-step cost in rollouts)."""
    logits = logits - logits.logsumexp(dim=-1, keepdim=True)
    masks = th.as_tensor(masks, dtype=th.bool, device=logits.device).reshape(logits.shape)
    logits = th.where(masks, logits, th.tensor(-1e8, dtype=logits.dtype, device=logits.device))
    return logits - logits.logsumexp(dim=-1, keepdim=True), masks


def _check_layout(observation_space: spaces.Space, action_space: spaces.Space, prior_start: int | None) -> int:
    """Where the top-k log-probs sit in the observation; errors say what layout is expected."""
    if not isinstance(action_space, spaces.Discrete):
        raise PolicyConfigError(
            f"action space {action_space}: the lm_prior policy needs Discrete(k) actions "
            "(one per offered token), as in rlcreate/TextTokens-v0"
        )
    if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1):
        raise PolicyConfigError(
            f"observation space {observation_space}: the lm_prior policy needs a 1-D Box "
            "holding the top-k log-probs, as in rlcreate/TextTokens-v0"
        )
    k, dim = int(action_space.n), int(observation_space.shape[0])
    start = dim - k - 1 if prior_start is None else int(prior_start)
    if start < 0 or start + k > dim:
        raise PolicyConfigError(
            f"prior_start = {start}: the top-k log-probs [{start}:{start + k}] do not fit an "
            f"observation of shape ({dim},) with k = {k}; pass prior_start in policy_kwargs"
        )
    low, high = observation_space.low[start : start + k], observation_space.high[start : start + k]
    scaled = np.all(low == 0.0) and np.all(high == 1.0) and prior_start is not None  # MarioTokens-v1 layout
    if not scaled and not (np.all(low == LOGPROB_FLOOR) and np.all(high == 0.0)):
        raise PolicyConfigError(
            f"observation entries [{start}:{start + k}] have bounds [{low.min()}, {high.max()}], not the log-prob "
            f"bounds [{LOGPROB_FLOOR}, 0]: the lm_prior policy reads the LM's top-k log-probs there; use it with "
            "rlcreate/TextTokens-v0 or pass the right prior_start in policy_kwargs"
        )
    return start


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise PolicyConfigError(
            f"{name} = {value!r}: must be an integer >= 0 (features per offered slot at the end of "
            "the observation; 0 = none)"
        )
    return int(value)


def _check_offer_features(
    observation_space: spaces.Box,
    action_space: spaces.Discrete,
    offer_features: int,
    prior_start: int,
    offer_structure: int = 0,
) -> int:
    """``offer_features`` (and ``offer_structure``) per slot must fit after the top-k log-probs at
    the observation's end."""
    k, dim = int(action_space.n), int(observation_space.shape[0])
    offer_features = _check_count(offer_features, "offer_features")
    if (offer_features or offer_structure) and dim - (k + 1) * (offer_features + offer_structure) < prior_start + k:
        raise PolicyConfigError(
            f"offer_features = {offer_features}, offer_structure = {offer_structure}: their contexts and "
            f"{k} slots x values do not fit after the top-k log-probs in an observation of shape ({dim},); "
            "use the number of control targets of rlcreate/MarioTokens-v1 (and the offer_objective's "
            "feature count), or 0"
        )
    return offer_features


#: the rule part's margins (CandidatePolicy's rule_gain): a candidate whose rule score ties candidate
#: 0's is put this far under the env's 0.5 threshold, the rule's pick this far above its squashed
#: margin (many float32 steps, far under the sampling std and the learned correction)
_RULE_MARGIN = 1e-6


class _CandidateScorer(nn.Module):
    """SB3 ``mlp_extractor`` for :class:`CandidatePolicy`: one MLP scores every candidate block
    (with the shared context and its difference to candidate 0's block); the actor's latent is
    ``s_k - s_0`` for k = 1..K-1, plus the rule's entries when ``rule_gain`` > 0 (see
    :class:`CandidatePolicy`); the critic is a plain MLP over the whole observation."""

    def __init__(
        self,
        obs_dim: int,
        k: int,
        width: int,
        pi: list[int],
        vf: list[int],
        rule_gain: float = 0.0,
        rule_entries: tuple[int, ...] = (),
        choice: bool = False,
    ):
        super().__init__()
        self.k, self.width, self.context = k, width, obs_dim - k * width
        self.rule_gain, self.rule_entries = float(rule_gain), list(rule_entries)
        self.choice = choice

        def mlp(n_in: int, layers: list[int]) -> tuple[nn.Sequential, int]:
            mods: list[nn.Module] = []
            for units in layers:
                mods += [nn.Linear(n_in, units), nn.Tanh()]
                n_in = units
            return nn.Sequential(*mods), n_in

        body, last = mlp(self.context + 2 * width, pi)
        self.score = nn.Sequential(body, nn.Linear(last, 1))
        self.value, self.latent_dim_vf = mlp(obs_dim, vf)
        self.latent_dim_pi = k if choice else k - 1

    def forward_actor(self, x: th.Tensor) -> th.Tensor:
        ctx = x[:, : self.context]
        blocks = x[:, self.context :].reshape(len(x), self.k, self.width)
        inp = th.cat([ctx[:, None].expand(-1, self.k, -1), blocks, blocks - blocks[:, :1]], 2)
        s = self.score(inp).squeeze(-1)  # (n, K)
        if self.choice:  # the categorical's logits: the rule's scores times the gain, plus the learned ones
            if not self.rule_gain:
                return s
            return self.rule_gain * blocks[..., self.rule_entries].sum(-1) + s
        if not self.rule_gain:
            return s[:, 1:] - s[:, :1]
        rule = blocks[..., self.rule_entries].sum(-1)  # (n, K): the greedy picker's score
        x = self.rule_gain * (rule[:, 1:] - rule[:, :1])
        # in (0, 1) (SB3 clips actions to [-1, 1]), >= 0.5 exactly where candidate k's rule score
        # beats candidate 0's (a tie is put just under: candidate 0, as argmax), monotone in x; the
        # squashing can round near-equal candidates to one value, so the rule's own pick (the first
        # argmax, as greedy_action) gets a margin on top: the mean action writes exactly that pick
        best = F.one_hot(rule.argmax(1), self.k)[:, 1:].to(x.dtype)
        rule_part = 0.5 + 0.5 * x / (1.0 + x.abs()) + _RULE_MARGIN * (best - (x <= 0).to(x.dtype))
        return rule_part + s[:, 1:] - s[:, :1]

    def forward_critic(self, x: th.Tensor) -> th.Tensor:
        return self.value(x)

    def forward(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(x), self.forward_critic(x)


class CandidatePolicy(ActorCriticPolicy):
    """PPO policy for an env that observes K candidates and takes K - 1 Box entries (candidate k is
    written if its entry is the largest and >= 0.5, else candidate 0: MarioLatent-v1's ``candidates``).

    The observation must end with K blocks of ``candidate_width`` entries, one per candidate
    (everything before them is shared context). One MLP (``net_arch`` ``pi``) scores each candidate
    from the context, its block and its block minus candidate 0's; the action mean of entry k is
    ``s_k - s_0``, so the same weights judge every candidate wherever it sits (a plain MLP must learn
    the same rule K times, once per slot). The score's output layer starts at zero: the untrained
    mean action is 0 (candidate 0, the env's ``a = 0`` start) while the gradient is not. The critic
    is SB3's usual MLP over the whole observation.

    Args (besides :class:`ActorCriticPolicy`'s):
        candidate_width: entries per candidate block.
        rule_gain: g >= 0 (default 0: off, the start is candidate 0). With g > 0 the policy starts
            at a hand-built rule instead: candidate k's rule score r_k is the sum of its block's
            entries at ``rule_entries``, and the mean of entry k is
            ``0.5 + 0.5 * softsign(g * (r_k - r_0)) + s_k - s_0`` (softsign(x) = x / (1 + |x|)).
            The env writes the candidate whose entry is largest and >= 0.5, so the untrained mean
            action (s = 0) writes the candidate with the largest rule score, the first of equals
            (candidate 0 where it is as good: a tie with it is put 1e-6 under 0.5; the rule's pick
            gets 1e-6 more, as softsign can round near-equal large margins to one float); the learned
            score s (zero-initialised) is a correction on top of the rule. The rule part stays in
            (0, 1) because SB3 clips actions to the Box [-1, 1] and entries clipped to 1 would tie;
            g sets how sharply the sampled (std) actions follow it (the tanh-squashed term sums of
            MarioLatent-v1 differ by ~0.02 between candidates). With MarioLatent-v1's
            ``candidate_terms`` and ``rule_entries`` = the env's ``rule_entries`` (crossable
            flag, observed sum of term changes), the start is the env's ``greedy_action``.
        rule_entries: positions inside a candidate block (0 .. candidate_width - 1) of the entries
            the rule adds up; required when ``rule_gain`` > 0.

    With ``Discrete(K)`` actions (MarioLatent-v1's ``candidate_action: choice``) the scores are the
    logits of a categorical over the K candidates: the untrained policy picks uniformly (over K
    prior draws: the generator's own distribution; by its mode, candidate 0), and ``rule_gain`` g
    makes the logits ``g * r_k + s_k`` (the untrained mode is the rule's pick, the first of equals;
    samples follow it more sharply as g grows).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule,
        *args: Any,
        candidate_width: int = 0,
        rule_gain: float = 0.0,
        rule_entries: list[int] | tuple[int, ...] = (),
        **kwargs: Any,
    ):
        if isinstance(action_space, spaces.Discrete):
            self.choice, self.k = True, int(action_space.n)
        elif isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
            self.choice, self.k = False, int(action_space.shape[0]) + 1
        else:
            raise PolicyConfigError(
                f"policy candidate_scorer needs Box actions (K - 1 entries) or Discrete(K); got {action_space}: "
                "use it with an env that observes candidates (MarioLatent-v1 candidates: K)"
            )
        self.candidate_width = _check_count(candidate_width, "candidate_width")
        obs_dim = int(np.prod(observation_space.shape or (1,)))
        if not self.candidate_width or self.k * self.candidate_width > obs_dim:
            raise PolicyConfigError(
                f"candidate_width = {candidate_width!r}: the observation ({obs_dim} entries) must end with "
                f"{self.k} candidate blocks of that many entries; set policy_kwargs.candidate_width to the "
                "env's per-candidate observation size"
            )
        self.rule_gain, self.rule_entries = _check_rule(rule_gain, rule_entries, self.candidate_width)
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        arch = self.net_arch
        pi, vf = (arch.get("pi", []), arch.get("vf", [])) if isinstance(arch, dict) else (arch, arch)
        self.mlp_extractor = _CandidateScorer(
            self.features_dim,
            self.k,
            self.candidate_width,
            list(pi),
            list(vf),
            self.rule_gain,
            self.rule_entries,
            self.choice,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["candidate_width"] = self.candidate_width
        data["rule_gain"] = self.rule_gain
        data["rule_entries"] = list(self.rule_entries)
        return data

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        # the mean action (or, for a choice, the logits) is the scores themselves; the score's last
        # layer starts at zero
        self.action_net = nn.Identity()
        last = cast(nn.Linear, self.mlp_extractor.score[-1])
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


def _check_rule(gain: Any, entries: Any, width: int) -> tuple[float, tuple[int, ...]]:
    """``rule_gain`` (a finite number >= 0) and ``rule_entries`` (block positions, needed when the
    gain is > 0) of :class:`CandidatePolicy`."""
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not np.isfinite(gain) or gain < 0:
        raise PolicyConfigError(f"rule_gain = {gain!r}: must be a finite number >= 0 (0 = off)")
    ok = isinstance(entries, (list, tuple)) and all(
        isinstance(e, (int, np.integer)) and not isinstance(e, bool) and 0 <= e < width for e in entries
    )
    if not ok or (gain > 0 and not entries):
        raise PolicyConfigError(
            f"rule_entries = {entries!r}: with rule_gain > 0 write a non-empty list of positions inside a "
            f"candidate block (0..{width - 1}), e.g. MarioLatent-v1's rule_entries (crossable flag, term sum)"
        )
    return float(gain), tuple(int(e) for e in entries)


#: policy names a recipe may write in ``trainer.hyper.policy`` besides SB3's own ("MlpPolicy", ...)
POLICIES = {"lm_prior": LMPriorPolicy, "candidate_scorer": CandidatePolicy}


def resolve_policy(policy: Any) -> Any:
    """A recipe's ``trainer.hyper.policy``: our names map to classes, anything else passes to SB3."""
    return POLICIES.get(policy, policy) if isinstance(policy, str) else policy
