"""PPO's share: what a trained token policy adds over its untrained start and over sampling more
from that start (best-of-n), on the same requests.

Every set here is drawn with the same *environment* seed, so row ``i`` of every set answers the
same control targets (targets come from the env's RNG only); the policies differ, and best-of-n
draws ``n`` sets from the untrained start with different *policy* seeds and keeps, per request, the
level the selection score likes most. Best-of-1 is the start itself at equal inference cost.
Differences are paired per request and get percentile-bootstrap CIs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "untrained_policy",
    "sample_levels",
    "best_of_n",
    "paired_diff",
    "unpaired_diff",
    "mean_ci",
    "recipe_scores",
    "variety_rule",
    "GreedyPicker",
    "acts_by_mean",
    "has_greedy_picker",
]


def untrained_policy(asm: Any) -> Any:
    """The recipe's policy before any training (for ``lm_prior`` the LM plus its control prior:
    the correction starts at zero, so this is exactly where PPO starts)."""
    return asm.trainer.initial(asm)


def sample_levels(
    model: Any, asm: Any, n: int, env_seed: int, policy_seed: int, deterministic: bool = False
) -> tuple[list[np.ndarray], list[dict]]:
    """``n`` levels of ``model`` and their control targets; row i answers the i-th request of
    ``env_seed`` whatever the policy."""
    from rlcreate.train.runner import rollout

    venv = asm.make_env(min(n, 16), env_seed, "eval")
    venv.set_progress(1.0)
    model.set_random_seed(policy_seed)
    eps = rollout(model, venv, n, deterministic=deterministic)
    return [e["level"] for e in eps], [e.get("targets", {}) for e in eps]


def acts_by_mean(recipe: Any) -> bool:
    """Whether ``recipe``'s policies are drawn acting by their mean (latent envs: the prior draws give
    the variety; a choice acts by its mode) rather than sampled (token envs: a greedy token policy
    writes one level type)."""
    return recipe.env_id.startswith("rlcreate/MarioLatent")


def has_greedy_picker(asm: Any) -> bool:
    """Whether ``asm``'s env has the hand-built candidate picker (a latent env with candidates and
    their observed term changes): the rule :class:`GreedyPicker` draws."""
    core = asm.make_env(1, 0, "eval").core
    return bool(getattr(core, "n_cand", 0) and getattr(core, "cand_terms", None) and core.cand_terms.terms)


class GreedyPicker:
    """The latent env's hand-built candidate picker
    (:meth:`~rlcreate.envs.latent_level.LatentLevelCore.greedy_action`) as a policy object, so
    :func:`sample_levels` and the rate calibration draw it as they draw a model (it reads only the
    observation: no state, no randomness)."""

    def __init__(self, asm: Any):
        self._pick = asm.make_env(1, 0, "eval").core.greedy_action

    def set_random_seed(self, seed: int) -> None:
        """Nothing to seed: the picker is deterministic."""

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return self._pick(obs), None


def variety_rule(recipe: Any) -> Any:
    """A copy of ``recipe`` whose env applies the hand-built variety rule as a mask
    (``avoid_offers``: never take an offer that keeps a repeat of an earlier segment alive), or None
    when the recipe has no ``level_variety`` term. Its untrained policy is the rule: the comparator a
    policy trained on that term must beat (it could have learnt the rule from the observed flag)."""
    import copy

    names = [name for name, term in recipe.rewards.items() if (term.reward or name) == "level_variety"]
    if not names:
        return None
    r = copy.deepcopy(recipe)
    r.env.kwargs["avoid_offers"] = names[0]
    return r


def recipe_scores(
    asm_factory: Callable[[], Any], levels: Sequence[np.ndarray], targets: Sequence[dict], batch: int = 16
) -> np.ndarray:
    """Per level, the recipe's composite reward as the env scores finished levels (batches of
    ``batch``, fresh reward state, progress 1, each level's own targets)."""
    rs = asm_factory()
    out: list[float] = []
    for a in range(0, len(levels), batch):
        chunk = list(levels[a : a + batch])
        t = {k: np.array([x[k] for x in targets[a : a + batch]]) for k in (targets[0] if targets else {})}
        out.extend(np.asarray(rs(chunk, progress=1.0, targets=t).total, np.float64).tolist())
    return np.array(out)


def best_of_n(candidates: Sequence[Sequence[np.ndarray]], scores: Sequence[np.ndarray]) -> tuple[list, np.ndarray]:
    """Per request i, the candidate set whose level scores highest: (levels, index of the set)."""
    s = np.stack([np.asarray(x, np.float64) for x in scores])
    pick = np.argmax(s, axis=0)
    return [candidates[k][i] for i, k in enumerate(pick)], pick


def mean_ci(values: Any, seed: int = 0, n_resamples: int = 2000) -> dict:
    """Mean and 95% percentile-bootstrap CI (NaNs dropped)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 2 or np.all(x == x[0]):
        m = float(x.mean()) if len(x) else float("nan")
        return {"mean": m, "ci": [m, m], "n": int(len(x))}
    r = bootstrap(
        (x,),
        np.mean,
        confidence_level=0.95,
        n_resamples=n_resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return {
        "mean": float(x.mean()),
        "ci": [float(r.confidence_interval.low), float(r.confidence_interval.high)],
        "n": int(len(x)),
    }


def paired_diff(a: Any, b: Any, seed: int = 0, n_resamples: int = 2000) -> dict:
    """Mean of ``a - b`` over paired requests with its 95% bootstrap CI."""
    return mean_ci(np.asarray(a, np.float64) - np.asarray(b, np.float64), seed, n_resamples)


def unpaired_diff(a: Any, b: Any, seed: int = 0, n_resamples: int = 2000) -> dict:
    """Mean of ``a`` minus mean of ``b`` for two independent sets (e.g. a search's answer set and a
    policy's 64 requests) with its 95% percentile-bootstrap CI, each set resampled on its own."""
    from scipy.stats import bootstrap

    x, y = (np.asarray(v, np.float64) for v in (a, b))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    d = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return {"mean": d, "ci": [d, d]}
    r = bootstrap(
        (x, y),
        lambda u, v, axis=-1: u.mean(axis) - v.mean(axis),
        confidence_level=0.95,
        n_resamples=n_resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return {"mean": d, "ci": [float(r.confidence_interval.low), float(r.confidence_interval.high)]}
