"""Command-line parsing for the scripts in ``scripts/``: one config dataclass, one call.

A script declares its settings as a dataclass with a docstring under each field and calls
:func:`parse_config`; `tyro <https://brentyi.github.io/tyro/>`_ turns the fields into flags
(``n_envs`` -> ``--n-envs``; a bool -> ``--flag / --no-flag``), reads the attribute docstrings for
``--help``, and checks every value against the field's type (a bad value exits with code 2 and
names the flag, in one ``error:`` line). The script's module docstring is the ``--help`` description::

    @dataclass
    class Config:
        steps: int = 600
        \"\"\"Adam steps.\"\"\"
        out: Positional[Path] = Path("out.json")   # a positional argument instead of --out
        \"\"\"Where the JSON goes.\"\"\"
        env_kwargs: JsonDict = field(default_factory=dict)  # one JSON argument
        \"\"\"Keyword arguments of the environment (JSON).\"\"\"

    cfg = parse_config(Config)
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

import tyro

__all__ = ["parse_config", "JsonDict", "Positional"]

T = TypeVar("T")

#: a positional argument (``script.py OUT``) instead of a ``--flag``
Positional = tyro.conf.Positional


def _json_dict(args: list[str]) -> dict:
    # tyro reports a ValueError as a bad value of this flag (exit code 2, no traceback)
    example = "give one JSON object, e.g. '{\"n_segments\": 4}'"
    try:
        value = json.loads(args[0])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{args[0]!r} is not JSON ({exc}); {example}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{args[0]!r} is not a JSON object; {example}")
    return value


#: a ``dict`` field given as one JSON object on the command line (``--env-kwargs '{"n": 4}'``);
#: tyro's default for dicts is a key-value list, which cannot carry nested values
JsonDict = Annotated[
    dict[str, Any],
    tyro.constructors.PrimitiveConstructorSpec(
        nargs=1,
        metavar="JSON",
        instance_from_str=_json_dict,
        is_instance=lambda v: isinstance(v, dict),
        str_from_instance=lambda v: [json.dumps(v)],
    ),
]


def parse_config(config_cls: type[T], argv: Sequence[str] | None = None, *, description: str | None = None) -> T:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into a ``config_cls`` instance.

    ``description`` defaults to the docstring of the module that defines ``config_cls`` (the
    script), so ``--help`` starts with what the script does and how to run it.
    """
    if description is None:
        module = sys.modules.get(config_cls.__module__)
        description = (getattr(module, "__doc__", None) or config_cls.__doc__ or "").strip()
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(
                config_cls, args=argv, description=description, config=(tyro.conf.PositionalMetavarFromFieldName,)
            )
    except SystemExit as exc:
        if exc.code in (0, None):
            sys.stderr.write(captured.getvalue())
            raise
        print(f"error: {one_line_error(captured.getvalue())}", file=sys.stderr)
        raise SystemExit(2) from None


_RULE = re.compile(r"^[-─━ ]{3,}$")


def one_line_error(box: str) -> str:
    """tyro's error box (a title, the message, a rule, the argument's help, a rule, where --help is)
    as one line, so a bad flag reads like every other user error of the project (``error: ...``)."""
    lines = [line.strip().strip("│|╭╮╰╯").strip() for line in box.splitlines()]
    lines = [line for line in lines if line][1:]  # the first line is the box's title ("Value error")
    blocks: list[list[str]] = [[]]
    for line in lines:
        if _RULE.match(line):
            blocks.append([])
        else:
            blocks[-1].append(line)
    blocks = [b for b in blocks if b]
    message = " ".join(blocks[0]) if blocks else "bad command-line arguments"
    pointer = " ".join(blocks[-1]) if len(blocks) > 1 and "--help" in " ".join(blocks[-1]) else ""
    pointer = re.sub(r"^For full helptext, (see|run:?)\s*", "", pointer)
    return f"{message} (see {pointer})" if pointer else message
