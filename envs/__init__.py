"""Generic Gymnasium / SB3 environment cores (installed as ``rlcreate.envs``); domains configure them.

Import what you need, e.g. ``from rlcreate.envs.latent_level import LatentLevelCore``.
"""

__all__ = [
    "core_vec_env",
    "latent_level",
    "token_stream",
    "column_tokens",
    "text_tokens",
    "target_control",
    "gym_vector",
]
