"""One way to say what is wrong with a value: ``field = value: rule; did you mean ...? fix``.

Every recipe section, env kwarg, CLI option and baseline setting is checked through these helpers,
so messages read the same everywhere and misspelt names always get a suggestion.
"""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Iterable
from typing import Any

from rlcreate.errors import UserError

__all__ = [
    "ValidationError",
    "fail",
    "suggest",
    "check_choice",
    "check_keys",
    "check_int",
    "check_number",
    "int_arg",
    "check_device",
]


class ValidationError(UserError):
    """A value breaks a rule; the message names the field, the value, the rule and the fix."""


def suggest(value: Any, known: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(str(value), [str(k) for k in known], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def fail(field: str, value: Any, rule: str, error: type[UserError] = ValidationError) -> UserError:
    """The error for ``field = value`` breaking ``rule`` (raise it)."""
    return error(f"{field} = {value!r}: {rule}")


def check_choice(
    field: str, value: Any, known: Iterable[str], what: str = "a known name", error: type[UserError] = ValidationError
) -> Any:
    known = list(known)
    if value not in known:
        raise fail(field, value, f"not {what}.{suggest(value, known)} Known: {sorted(map(str, known))}", error)
    return value


def check_keys(field: str, got: dict, known: Iterable[str], error: type[UserError] = ValidationError) -> None:
    """Every key of ``got`` must be in ``known``."""
    known = sorted(map(str, known))
    for key in got:
        if str(key) not in known:
            raise error(f"{field}: unknown key {key!r}.{suggest(key, known)} Known keys: {known}")


def check_int(
    field: str, value: Any, low: int | None = None, high: int | None = None, error: type[UserError] = ValidationError
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(field, value, "must be an integer", error)
    if low is not None and value < low or high is not None and value > high:
        span = f">= {low}" if high is None else f"in [{low}, {high}]" if low is not None else f"<= {high}"
        raise fail(field, value, f"must be an integer {span}", error)
    return value


def check_number(
    field: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    error: type[UserError] = ValidationError,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(field, value, "must be a finite number", error)
    if low is not None and (value <= low if low_open else value < low):
        raise fail(field, value, f"must be {'>' if low_open else '>='} {low}", error)
    if high is not None and value > high:
        raise fail(field, value, f"must be <= {high}", error)
    return float(value)


def check_device(field: str, value: Any, available: bool = True, error: type[UserError] = ValidationError) -> str:
    """A torch device name (``cpu``, ``cuda``, ``cuda:1``, ``mps``, or SB3's ``auto``); with
    ``available``, it must also exist on this machine."""
    import torch  # a hard dependency; imported here so that validation stays cheap to import

    if value == "auto":
        return value
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise fail(field, value, "not a torch device; write cpu, cuda, cuda:0 or mps", error) from None
    if available and device.type != "cpu":
        if device.type == "cuda":
            found = torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
        elif device.type == "mps":
            found = torch.backends.mps.is_available()
        else:
            found = False
        if not found:
            raise fail(field, value, "no such device on this machine; use cpu (or a device this machine has)", error)
    return value


# argparse types: a bad option exits 2 with one line naming the value


def int_arg(low: int, high: int | None = None):
    """argparse type: an integer in [low, high]; a bad value exits 2 with one clear message."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            span = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"{text!r}: must be an integer {span}")
        return value

    return parse
