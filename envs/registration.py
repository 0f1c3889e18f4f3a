"""Gymnasium ids of rlcreate's environments (registered on ``import rlcreate``)."""

from __future__ import annotations

from rlcreate.domains import entry_points, vector_factories

__all__ = ["register_envs"]


def register_envs() -> None:
    """Register every domain's ids and their vector entry points (the tables live with the domains,
    :mod:`rlcreate.domains`); safe to call again after a domain is added."""
    import dataclasses
    from functools import partial

    from gymnasium.envs.registration import register, registry

    from rlcreate.envs.gym_vector import make_vector_env

    for env_id, entry_point in entry_points().items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)
    for env_id, batched in vector_factories().items():
        spec = registry.get(env_id)
        if spec is not None and spec.vector_entry_point is None:
            registry[env_id] = dataclasses.replace(spec, vector_entry_point=partial(make_vector_env, batched))
