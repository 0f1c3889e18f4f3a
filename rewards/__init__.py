"""rlcreate.rewards — reward modules and their composition.

Light on import: numpy only (no gymnasium, stable_baselines3 or trl; torch-based modules import it
lazily). See :mod:`rlcreate.rewards.base` for the contract and how to write a reward.
"""

from rlcreate.rewards.base import RewardModule, RewardValueError, check_values
from rlcreate.rewards.compose import RewardResult, RewardSet, Term, as_reward_set
from rlcreate.rewards.registry import (
    FunctionReward,
    UnknownRewardError,
    add_reward_modules,
    available_rewards,
    get_reward,
    register,
)
from rlcreate.rewards.transforms import (
    Chain,
    Clip,
    RecipeValueError,
    RunningNorm,
    Schedule,
    SweetSpot,
    make_transform,
    make_weight,
)

__all__ = [
    "RewardModule",
    "RewardValueError",
    "check_values",
    "RewardSet",
    "Term",
    "RewardResult",
    "as_reward_set",
    "register",
    "get_reward",
    "add_reward_modules",
    "available_rewards",
    "UnknownRewardError",
    "FunctionReward",
    "RunningNorm",
    "Clip",
    "SweetSpot",
    "Chain",
    "Schedule",
    "make_transform",
    "make_weight",
    "RecipeValueError",
]
