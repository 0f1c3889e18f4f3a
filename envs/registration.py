"""Gymnasium ids of rlcreate's environments (registered on ``import rlcreate``)."""

from __future__ import annotations

from rlcreate.domains import entry_points


#: id -> batched SB3 factory (``n_envs`` rows, one forward pass per step) whose core backs the id's
#: Gymnasium vector entry point: ``gym.make_vec(id, num_envs=N)`` returns a
#: :class:`~rlcreate.envs.gym_vector.CoreVectorEnv` over it
VECTOR_FACTORIES = {
    "rlcreate/MarioLatent-v0": "rlcreate.levels.envs:make_mario_latent_vec",
    "rlcreate/MarioTokens-v0": "rlcreate.levels.envs:make_mario_tokens_vec",
    "rlcreate/TextTokens-v0": "rlcreate.text.envs:make_text_tokens_vec_env",
}


def register_envs() -> None:
    """Register every domain's ids (the table lives with the domains, :mod:`rlcreate.domains`)."""
    from rlcreate.domains import _register_gym

    _register_gym(entry_points())
    _add_vector_entry_points()


def _add_vector_entry_points() -> None:
    import dataclasses
    from functools import partial

    from gymnasium.envs.registration import registry

    from rlcreate.envs.gym_vector import make_vector_env

    for env_id, batched in VECTOR_FACTORIES.items():
        spec = registry.get(env_id)
        if spec is not None and spec.vector_entry_point is None:
            registry[env_id] = dataclasses.replace(spec, vector_entry_point=partial(make_vector_env, batched))
