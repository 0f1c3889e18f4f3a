"""rlcreate: steer pretrained generators with reinforcement learning toward creative objectives.

``import rlcreate`` registers the Gymnasium ids ``rlcreate/MarioLatent-v0``, ``rlcreate/MarioLatent-v1``,
``rlcreate/MarioTokens-v1`` and ``rlcreate/TextTokens-v0``. It does so without importing gymnasium
itself when gymnasium is not loaded yet (registration then happens the moment gymnasium is
imported), so that reward-only users (``rlcreate.rewards`` with TRL) never pay for gymnasium.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

# The plugin registry: light (no gymnasium, torch or domain module); it tells the reward registry
# which modules hold each built-in domain's rewards, so `get_reward("fluency")` finds them.
import rlcreate.domains  # noqa: F401

__version__ = "0.1.0"


def _register_envs() -> None:
    from rlcreate.domains import register_envs

    register_envs()


class _RegisterWhenGymnasiumLoads(importlib.abc.MetaPathFinder):
    """Import hook: run env registration right after ``gymnasium`` finishes importing."""

    def find_spec(self, name, path=None, target=None):
        if name != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_envs()

        spec.loader.exec_module = exec_then_register
        return spec


if "gymnasium" in sys.modules:
    _register_envs()
elif not any(isinstance(f, _RegisterWhenGymnasiumLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenGymnasiumLoads())
