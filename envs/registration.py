"""Gymnasium ids of rlcreate's environments (registered on ``import rlcreate``)."""

from __future__ import annotations

ENV_IDS = {
    "rlcreate/MarioLatent-v0": "rlcreate.envs.mario:make_mario_latent",
    "rlcreate/MarioTokens-v0": "rlcreate.envs.mario:make_mario_tokens",
    "rlcreate/TextTokens-v0": "rlcreate.envs.text_tokens:make_text_tokens_env",
}


def register_envs() -> None:
    from gymnasium.envs.registration import register, registry

    for env_id, entry_point in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)
