"""Super Mario Bros tile legend and the VGLC text format.

A level is a numpy ``int8`` grid of shape ``(14, W)`` (rows top to bottom, columns left to right)
holding tile ids. ``TILES[i]`` is the VGLC character of id ``i``. The corpus' A* path overlay ``x``
is read as empty sky: it is an annotation, not part of the level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlcreate.errors import UserError

HEIGHT = 14
#: VGLC characters in id order. Id 0 is empty sky.
TILES = "-XS?QoE<>[]Bb"
TILE_NAMES = {
    "-": "empty",
    "X": "ground",
    "S": "brick",
    "?": "question block",
    "Q": "question block (coin)",
    "o": "coin",
    "E": "enemy",
    "<": "pipe top left",
    ">": "pipe top right",
    "[": "pipe body left",
    "]": "pipe body right",
    "B": "cannon top",
    "b": "cannon support",
}
CHAR_TO_ID = {c: i for i, c in enumerate(TILES)}
#: characters accepted on read and what they become (annotations only).
READ_ALIASES = {"x": "-"}

EMPTY, GROUND, BRICK, QUESTION, QCOIN, COIN, ENEMY = (CHAR_TO_ID[c] for c in "-XS?QoE")
PIPE_TL, PIPE_TR, PIPE_BL, PIPE_BR, CANNON, CANNON_BASE = (CHAR_TO_ID[c] for c in "<>[]Bb")
#: tiles Mario can stand on and cannot pass through.
SOLID_IDS = np.array([GROUND, BRICK, QUESTION, QCOIN, PIPE_TL, PIPE_TR, PIPE_BL, PIPE_BR, CANNON, CANNON_BASE])
IS_SOLID = np.zeros(len(TILES), dtype=bool)
IS_SOLID[SOLID_IDS] = True

_LOOKUP = np.full(256, -1, dtype=np.int16)
for _c, _i in CHAR_TO_ID.items():
    _LOOKUP[ord(_c)] = _i
for _c, _t in READ_ALIASES.items():
    _LOOKUP[ord(_c)] = CHAR_TO_ID[_t]
_CHARS = np.frombuffer(TILES.encode(), dtype=np.uint8)


#: Widest level a level *file* may hold (columns). The SMB corpus string is 7,294 columns wide;
#: a full SMB level is 150-400. Wider files are refused before any work (solver, A*, render).
MAX_FILE_WIDTH = 10_000
#: Largest level file read, in bytes (14 rows of MAX_FILE_WIDTH plus line ends).
MAX_FILE_BYTES = HEIGHT * (MAX_FILE_WIDTH + 2)


class LevelFormatError(UserError):
    """A level text that is not a 14-row VGLC Mario level; the message names line and column."""


def parse_level(text: str, source: str = "<level>") -> np.ndarray:
    """Parse VGLC text (14 equal-length lines) into an ``int8`` grid.

    Raises :class:`LevelFormatError` naming the line and column of the first problem.
    """
    text = text[1:] if text.startswith("\ufeff") else text  # a UTF-8 byte-order mark is not a tile
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    if len(lines) != HEIGHT:
        raise LevelFormatError(
            f"{source}: a Mario level has {HEIGHT} lines (rows), found {len(lines)}; "
            "write one line per row, all of the same width"
        )
    width = len(lines[0])
    if width == 0:
        raise LevelFormatError(f"{source}: line 1 is empty; a level needs at least one column")
    for row, line in enumerate(lines):
        if len(line) != width:
            raise LevelFormatError(
                f"{source}: line {row + 1} has {len(line)} columns but line 1 has {width}; "
                "all rows must have the same width"
            )
    flat = "".join(lines)
    try:
        codes = np.frombuffer(flat.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        codes = None
    ids = _LOOKUP[codes] if codes is not None else None
    if ids is None or (ids < 0).any():
        pos = next(i for i, ch in enumerate(flat) if ch not in CHAR_TO_ID and ch not in READ_ALIASES)
        row, col = divmod(pos, width)
        raise LevelFormatError(
            f"{source}: line {row + 1}, column {col + 1}: unknown tile {flat[pos]!r}; "
            f"known tiles are {TILES!r} (and 'x', the path overlay, read as empty)"
        )
    return ids.astype(np.int8).reshape(HEIGHT, width)


def level_to_text(grid: np.ndarray) -> str:
    """VGLC text of a grid: 14 lines, newline-terminated."""
    grid = np.asarray(grid)
    if grid.ndim != 2 or grid.shape[0] != HEIGHT:
        raise LevelFormatError(f"expected a grid of shape ({HEIGHT}, W), got {grid.shape}")
    rows = _CHARS[grid.astype(np.intp)]
    return "\n".join(r.tobytes().decode("ascii") for r in rows) + "\n"


def read_level(path: str | Path, max_width: int = MAX_FILE_WIDTH) -> np.ndarray:
    """Read a VGLC level file; errors name the file, line and column.

    Refused before parsing: a path that is not a file (a folder, missing), a file over
    :data:`MAX_FILE_BYTES` and a level wider than ``max_width`` columns. A UTF-8 byte-order mark
    is skipped."""
    path = Path(path)
    if path.is_dir():
        raise LevelFormatError(f"{path}: is a folder, not a level file; pass a .txt file with 14 lines of tiles")
    if not path.is_file():
        raise LevelFormatError(f"{path}: no such level file")
    size = path.stat().st_size
    limit = HEIGHT * (max_width + 2)
    if size > limit:
        raise LevelFormatError(
            f"{path}: {size:,} bytes is too large for a level file (at most {limit:,} bytes: "
            f"14 rows of up to {max_width:,} columns); cut the level into pieces"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LevelFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise LevelFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    grid = parse_level(text, source=str(path))
    if grid.shape[1] > max_width:
        raise LevelFormatError(
            f"{path}: {grid.shape[1]:,} columns is wider than the {max_width:,} allowed; cut the level into pieces"
        )
    return grid


def write_level(grid: np.ndarray, path: str | Path) -> Path:
    from rlcreate.runbox import write_text

    return write_text(Path(path), level_to_text(grid), fsync=False)  # never through a link
