"""Reward registry: look up reward modules by name, or load user rewards by dotted path.

``@register("name")`` (or bare ``@register``) on a :class:`RewardModule` subclass or a plain
function makes it available to recipes and :func:`get_reward`. ``get_reward`` also accepts
``"package.module:callable"`` for user code that was never registered. Unknown names raise
:class:`UnknownRewardError` with a "Did you mean ...?" suggestion.

A decorated plain function is returned as a :class:`FunctionReward` (a reward module), so the name
it is bound to also accepts TRL's keyword call (``GRPOTrainer(reward_funcs=[my_fn])``) while
``my_fn(samples, **context)`` keeps working.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Callable
from typing import Any

from rlcreate.errors import UserError
from rlcreate.rewards.base import RewardModule

__all__ = ["register", "get_reward", "available_rewards", "UnknownRewardError", "FunctionReward", "add_reward_modules"]

_REGISTRY: dict[str, Callable] = {}
# Modules whose import registers rewards; imported lazily on first lookup so that
# `import rlcreate.rewards` stays light (no torch/transformers unless a reward needs them). The
# generic core's own modules are listed here; each domain adds its reward modules through
# :func:`add_reward_modules` (the domain registry does it for the built-in domains), so this layer
# never names a domain.
_BUILTIN_MODULES: list[str] = ["rlcreate.rewards.novelty", "rlcreate.rewards.diversity", "rlcreate.rewards.group"]
_loaded: set[str] = set()


class UnknownRewardError(UserError, KeyError):
    """No reward of that name; the message lists close names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class FunctionReward(RewardModule):
    """Wraps a plain ``f(samples, **context) -> list`` function as a named reward module."""

    def __init__(self, fn: Callable, name: str | None = None):
        self.fn = fn
        super().__init__(name or fn.__name__)
        self.__doc__ = fn.__doc__

    def score(self, samples, **context):
        return self.fn(samples, **context)

    def __reduce__(self):
        # A module-level function decorated with @register is bound to its wrapper, so pickle's
        # by-reference lookup of the function would find the wrapper: refer to the wrapper instead.
        mod = sys.modules.get(getattr(self.fn, "__module__", ""), None)
        target = getattr(mod, getattr(self.fn, "__qualname__", ""), None) if mod is not None else None
        if isinstance(target, FunctionReward) and target.fn is self.fn:
            return (_function_reward_from, (self.fn.__module__, self.fn.__qualname__, self.name))
        return (FunctionReward, (self.fn, self.name))


def _function_reward_from(module: str, qualname: str, name: str) -> FunctionReward:
    obj = getattr(importlib.import_module(module), qualname)
    return FunctionReward(obj.fn if isinstance(obj, FunctionReward) else obj, name)


def register(name: Any = None, *, overwrite: bool = False):
    """Register a reward class or function under ``name`` (default: its ``name`` attribute or
    ``__name__``). Usable as ``@register``, ``@register()`` or ``@register("name")``."""

    def deco(obj):
        key = name if isinstance(name, str) else (getattr(obj, "name", "") or obj.__name__)
        if key in _REGISTRY and _REGISTRY[key] is not obj and not overwrite:
            raise ValueError(
                f"a reward named {key!r} is already registered ({_REGISTRY[key]!r}); "
                "pick another name or pass overwrite=True"
            )
        if isinstance(obj, type) and issubclass(obj, RewardModule) and not obj.name:
            obj.name = key
        _REGISTRY[key] = obj
        if not isinstance(obj, type) and not isinstance(obj, RewardModule) and callable(obj):
            # A plain function comes back wrapped, so the decorated name also takes TRL's keyword
            # call (reward_funcs=[fn]); the registry keeps the function itself.
            wrapped = FunctionReward(obj, name=key)
            wrapped.__wrapped__ = obj
            return wrapped
        return obj

    if callable(name) and not isinstance(name, str):  # bare @register
        obj, name = name, None
        return deco(obj)
    return deco


def add_reward_modules(*modules: str) -> None:
    """Modules (dotted paths) whose import registers rewards; imported on the first lookup."""
    for mod in modules:
        if mod not in _BUILTIN_MODULES:
            _BUILTIN_MODULES.append(mod)


def _load_builtins() -> None:
    for mod in list(_BUILTIN_MODULES):
        if mod in _loaded:
            continue
        _loaded.add(mod)
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency inside the module
                raise


def available_rewards() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get_reward(name: str, **kwargs: Any) -> Callable:
    """Instantiate a reward by registry name or ``"package.module:callable"`` path.

    Classes are called with ``kwargs``; registered functions are wrapped in :class:`FunctionReward`.
    A function or a ready-made instance takes no ``kwargs``: they raise ``TypeError`` rather than
    being dropped (a recipe's ``args:`` would otherwise do nothing).
    """
    if not isinstance(name, str) or not name:
        raise UnknownRewardError(f"reward name must be a non-empty string, got {name!r}")
    if ":" in name:
        obj = _import_path(name)
    else:
        _load_builtins()
        if name not in _REGISTRY:
            close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownRewardError(
                f"unknown reward {name!r}.{hint} Registered: {sorted(_REGISTRY)}; or give a user "
                "reward as 'package.module:callable'"
            )
        obj = _REGISTRY[name]
    if isinstance(obj, type):
        return obj(**kwargs)
    if kwargs and (isinstance(obj, RewardModule) or callable(obj)):
        kind = "an instance" if isinstance(obj, RewardModule) else "a function"
        raise TypeError(
            f"reward {name!r} is {kind}, which takes no arguments (got {sorted(kwargs)}); remove them, "
            "or register a RewardModule subclass whose __init__ takes them"
        )
    if isinstance(obj, RewardModule):
        return obj
    if callable(obj):
        return FunctionReward(obj, name=name.rsplit(":", 1)[-1] if ":" in name else name)
    raise UnknownRewardError(f"{name!r} is a {type(obj).__name__}, not a reward class or function")


def _import_path(path: str) -> Any:
    mod_name, _, attr = path.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise UnknownRewardError(
            f"cannot import module {mod_name!r} for reward {path!r}: {exc}; "
            "check the path is 'package.module:callable' and the package is installed"
        ) from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UnknownRewardError(f"module {mod_name!r} has no attribute {attr!r} (reward {path!r})")
        obj = getattr(obj, part)
    # Only rewards: a RewardModule subclass or instance, or a function decorated with @register.
    # Never an arbitrary callable (``os:system`` with args {command: ...} would run a shell).
    if (isinstance(obj, type) and issubclass(obj, RewardModule)) or isinstance(obj, RewardModule):
        return obj
    if any(obj is v or getattr(v, "__wrapped__", None) is obj for v in _REGISTRY.values()):
        return obj
    raise UnknownRewardError(
        f"reward {path!r} is a {type(obj).__name__}, not a reward: a 'package.module:Name' "
        "path must name a RewardModule subclass or a function decorated with "
        "@rlcreate.rewards.register"
    )
