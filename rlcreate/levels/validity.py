"""Structural validity of Super Mario Bros level grids: pipes, cannons and enemies that make sense.

Rules (each has a name, used by :func:`rule_masks` and in problem messages):

``pipe_pairs``
    A pipe is two columns wide: ``<`` has ``>`` directly to its right (and ``>`` has ``<`` to its
    left); ``[`` has ``]`` to its right (and ``]`` has ``[`` to its left).
``pipe_capped``
    Every vertical run of pipe tiles of one half (``<``/``[`` on the left, ``>``/``]`` on the
    right) has its top tile (``<``/``>``) at its upper end (an ordinary pipe) or at its lower end (an
    upside-down pipe hanging from the ceiling, as in *The Lost Levels*), unless the run reaches row 0
    (a pipe coming from above the screen). So a pipe body always sits directly under a top or another
    body of an ordinary pipe, or above one of a hanging pipe.
``pipe_anchored``
    Every such run stands on a solid tile or on the bottom row (the pipe reaches down to the ground)
    or, for a hanging pipe, hangs from a solid tile or from row 0.
``cannon_supported``
    A bullet-bill cannon top ``B`` or support ``b`` has a solid tile (a support ``b`` counts) or the
    bottom row under it, and every support ``b`` has ``B`` or ``b`` directly above it. One empty
    tile between a cannon and the solid tile under it is tolerated: the VGLC transcription of
    *Super Mario Bros.* draws every cannon of its later worlds at row 11 over an empty row 12 and
    ground at row 13 (the block under the cannon is missing), and a generator trained on that data
    reproduces it.
``enemy_not_embedded``
    An enemy ``E`` is *embedded* when solid tiles lie directly above it and on both sides: it sits
    in a one-tile pocket inside terrain, where it can neither move nor be reached from above.

Edges. A grid is treated as a window cut out of a longer level: whatever lies beyond its left and
right edges is unknown, so a half pipe at column 0 or at the last column is accepted (its other half
is assumed to lie in the neighbour column), and enemies in an edge column are never embedded (the
unknown neighbour is taken as non-solid). The vertical rules do not depend on the columns around,
so they are exact in any window. Segments that are generated separately and then concatenated must
be checked again as one grid: there the seam columns are interior, and a half pipe at a seam is a
problem unless the neighbouring segment supplies the other half.

Calibration on the real corpus, windows of 16 columns: of the 5,834 training windows
(``corpus.training_windows(16)``) the rules pass on 99.5% (pipe_pairs), 99.5% (pipe_capped), 98.3%
(pipe_anchored), 99.2% (cannon_supported) and 99.8% (enemy_not_embedded), 97.1% pass all; all
1,130 held-out windows pass all. The failures are oddities of the VGLC transcription: a few
one-tile pipe stubs floating in mid-air, floating cannons and a pipe without a top in *The Lost
Levels*, one enemy drawn inside a staircase.

Positions in messages are 0-based: row 0 is the top row, column 0 the leftmost column.
"""

from __future__ import annotations

import numpy as np

from rlcreate.levels.tiles import (
    CANNON,
    CANNON_BASE,
    EMPTY,
    ENEMY,
    HEIGHT,
    IS_SOLID,
    PIPE_BL,
    PIPE_BR,
    PIPE_TL,
    PIPE_TR,
    TILES,
    LevelFormatError,
)

__all__ = [
    "RULES",
    "check_grid",
    "check_grids",
    "rule_masks",
    "valid_mask",
    "is_valid",
    "level_problems",
    "MarioStructure",
]

RULES = ("pipe_pairs", "pipe_capped", "pipe_anchored", "cannon_supported", "enemy_not_embedded")


def check_grid(grid, name: str = "grid") -> np.ndarray:
    """Return ``grid`` as an integer array of shape ``(14, W)`` with known tile ids, or raise.

    Raises :class:`~rlcreate.levels.tiles.LevelFormatError` (a ``ValueError``) naming the shape or
    the bad tile id.
    """
    arr = np.asarray(grid)
    if arr.ndim != 2 or arr.shape[0] != HEIGHT or arr.shape[1] < 1:
        raise LevelFormatError(
            f"{name} must have shape ({HEIGHT}, W) with W >= 1 (rows, columns), got shape {arr.shape}; "
            f"pass one level, or use the batched function for a stack of shape (n, {HEIGHT}, W)"
        )
    return _check_ids(arr, name)


def check_grids(grids, name: str = "grids") -> np.ndarray:
    """Return ``grids`` as an integer array of shape ``(n, 14, W)``, or raise naming the shape."""
    arr = np.asarray(grids)
    if arr.ndim != 3 or arr.shape[1] != HEIGHT or arr.shape[2] < 1:
        raise LevelFormatError(
            f"{name} must have shape (n, {HEIGHT}, W) (levels, rows, columns), got shape {arr.shape}; "
            f"stack same-width levels with np.stack, or pass a single level to the one-level function"
        )
    return _check_ids(arr, name)


def _check_ids(arr: np.ndarray, name: str) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.integer):
        raise LevelFormatError(
            f"{name} must hold integer tile ids, got dtype {arr.dtype}; "
            "parse text with rlcreate.levels.tiles.parse_level"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= len(TILES)):
        bad = arr[(arr < 0) | (arr >= len(TILES))].flat[0]
        raise LevelFormatError(f"{name} holds tile id {int(bad)}, outside 0..{len(TILES) - 1} (ids index {TILES!r})")
    return arr


def _shift(mask: np.ndarray, drow: int, dcol: int, fill: bool | int) -> np.ndarray:
    """``out[..., r, c] = mask[..., r + drow, c + dcol]``, ``fill`` outside the grid."""
    out = np.full_like(mask, fill)
    h, w = mask.shape[-2:]
    rs, re = max(0, -drow), h - max(0, drow)
    cs, ce = max(0, -dcol), w - max(0, dcol)
    if rs < re and cs < ce:
        out[..., rs:re, cs:ce] = mask[..., rs + drow : re + drow, cs + dcol : ce + dcol]
    return out


def _bad_runs(member: np.ndarray, top: np.ndarray, solid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertical runs of ``member`` cells (a stack ``(n, 14, W)``) that break the pipe rules.

    Returns ``(uncapped, floating)``: ``uncapped`` marks the upper end of each run with no top at
    its upper end, no top at its lower end and not reaching row 0; ``floating`` marks the lower end
    of each run with nothing solid (or the bottom row) under it and nothing solid (or row 0) above
    its upper end. Each end finds the other end of its run by a running max/min of end-row indices
    down/up the rows, so the whole stack is handled with a handful of array operations.
    """
    h = member.shape[-2]
    rows = np.arange(h, dtype=np.int8).reshape(h, 1)  # small ints: the accumulates dominate the cost
    upper_end = member & ~_shift(member, -1, 0, False)
    lower_end = member & ~_shift(member, 1, 0, False)
    # For each cell, the row of the nearest upper end at or above it / lower end at or below it.
    upper_row = np.maximum.accumulate(np.where(upper_end, rows, 0), axis=-2)
    lower_row = np.flip(np.minimum.accumulate(np.flip(np.where(lower_end, rows, h - 1), -2), axis=-2), -2)
    top_at_lower = np.take_along_axis(top, lower_row, axis=-2)
    capped = top | (rows == 0) | top_at_lower
    hangs = np.take_along_axis(_shift(solid, -1, 0, True), upper_row, axis=-2)  # row 0: from above
    stands = _shift(solid, 1, 0, True)  # bottom row: ground
    return upper_end & ~capped, lower_end & ~(stands | hangs)


def _violations(g: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per-cell violation masks for a stack ``(n, 14, W)``, by rule and then by kind of problem."""
    solid = IS_SOLID[g]
    tl, tr, bl, br = (g == PIPE_TL), (g == PIPE_TR), (g == PIPE_BL), (g == PIPE_BR)
    right = lambda m: _shift(m, 0, 1, True)  # noqa: E731  (edges: the unknown neighbour is fine)
    left = lambda m: _shift(m, 0, -1, True)  # noqa: E731
    out: dict[str, dict[str, np.ndarray]] = {}
    out["pipe_pairs"] = {
        "tl_unpaired": tl & ~right(tr),
        "tr_unpaired": tr & ~left(tl),
        "bl_unpaired": bl & ~right(br),
        "br_unpaired": br & ~left(bl),
    }
    capped, anchored = {}, {}
    for side, member, top in (("left", tl | bl, tl), ("right", tr | br, tr)):
        capped[side] = np.zeros_like(member)
        anchored[side] = np.zeros_like(member)
        # Only levels holding pipe tiles can break the run rules; skip the others.
        idx = np.flatnonzero(member.any(axis=(1, 2)))
        if idx.size:
            capped[side][idx], anchored[side][idx] = _bad_runs(member[idx], top[idx], solid[idx])
    out["pipe_capped"] = capped
    out["pipe_anchored"] = anchored
    cannon = (g == CANNON) | (g == CANNON_BASE)
    base = g == CANNON_BASE
    # VGLC draws SMB1's cannons at row 11 over an empty row 12 (the block under them is missing),
    # so one empty tile between a cannon and solid ground is tolerated; see the module docstring.
    grounded = _shift(solid, 1, 0, True) | ((_shift(g, 1, 0, -1) == EMPTY) & _shift(solid, 2, 0, False))
    out["cannon_supported"] = {
        "unsupported": cannon & ~grounded,
        "base_without_top": base & ~_shift(cannon, -1, 0, False),
    }
    enemy = g == ENEMY
    out["enemy_not_embedded"] = {
        "embedded": enemy & _shift(solid, -1, 0, False) & _shift(solid, 0, -1, False) & _shift(solid, 0, 1, False),
    }
    return out


def rule_masks(grids) -> dict[str, np.ndarray]:
    """For a stack ``(n, 14, W)``: ``{rule: bool array (n,)}``, True where the level passes the rule."""
    g = check_grids(grids)
    return {
        rule: ~np.any([m.any(axis=(-2, -1)) for m in kinds.values()], axis=0) for rule, kinds in _violations(g).items()
    }


def valid_mask(grids) -> np.ndarray:
    """For a stack ``(n, 14, W)``: bool array ``(n,)``, True where the level passes every rule."""
    masks = rule_masks(grids)
    return np.logical_and.reduce(list(masks.values()))


def is_valid(grid) -> bool:
    """True when one level ``(14, W)`` passes every rule."""
    return bool(valid_mask(check_grid(grid)[None])[0])


def _run_extent(member_col: np.ndarray, row: int) -> tuple[int, int]:
    lo = hi = row
    while lo > 0 and member_col[lo - 1]:
        lo -= 1
    while hi < len(member_col) - 1 and member_col[hi + 1]:
        hi += 1
    return lo, hi


def level_problems(grid) -> list[str]:
    """Human-readable problems of one level ``(14, W)``, each naming its rule, row and column.

    An empty list means the level is valid. Rows and columns are 0-based from the top left.
    """
    g = check_grid(grid)
    v = {rule: {kind: mask[0] for kind, mask in kinds.items()} for rule, kinds in _violations(g[None]).items()}
    problems: list[tuple[int, int, str]] = []

    def add(mask, fmt):
        for r, c in zip(*np.nonzero(mask)):
            problems.append((int(c), int(r), fmt(int(r), int(c))))

    p = v["pipe_pairs"]
    add(p["tl_unpaired"], lambda r, c: f"pipe_pairs: pipe top '<' at row {r}, col {c} has no '>' to its right")
    add(p["tr_unpaired"], lambda r, c: f"pipe_pairs: pipe top '>' at row {r}, col {c} has no '<' to its left")
    add(p["bl_unpaired"], lambda r, c: f"pipe_pairs: pipe body '[' at row {r}, col {c} has no ']' to its right")
    add(p["br_unpaired"], lambda r, c: f"pipe_pairs: pipe body ']' at row {r}, col {c} has no '[' to its left")
    for side, members, top in (("left", (PIPE_TL, PIPE_BL), "<"), ("right", (PIPE_TR, PIPE_BR), ">")):
        member = np.isin(g, members)
        for rule, msg in (
            ("pipe_capped", f"has no pipe top '{top}' at its upper or lower end"),
            ("pipe_anchored", "floats: no solid tile (or level edge) below its lower end or above its upper end"),
        ):
            for r, c in zip(*np.nonzero(v[rule][side])):
                lo, hi = _run_extent(member[:, c], int(r))
                problems.append((int(c), lo, f"{rule}: {side} pipe half at col {c}, rows {lo}-{hi} {msg}"))
    cs = v["cannon_supported"]
    add(
        cs["unsupported"],
        lambda r, c: f"cannon_supported: cannon {TILES[g[r, c]]!r} at row {r}, col {c} has nothing solid below it",
    )
    add(
        cs["base_without_top"],
        lambda r, c: f"cannon_supported: cannon support 'b' at row {r}, col {c} has no 'B' or 'b' above it",
    )
    add(
        v["enemy_not_embedded"]["embedded"],
        lambda r, c: (
            f"enemy_not_embedded: enemy 'E' at row {r}, col {c} is enclosed by solid tiles above, left and right"
        ),
    )
    return [msg for _, _, msg in sorted(problems)]


class MarioStructure:
    """Keeps levels structurally valid (:mod:`rlcreate.levels.validity`) column by column.

    - Columns that break a validity rule on their own are never allowed. Every rule but
      ``pipe_pairs`` looks only within a column (``enemy_not_embedded`` also looks sideways, but
      only at solid tiles beside an enemy, which no column rule can promise), and a few corpus
      columns break one (floating pipe tops, a floating cannon: 14 of the shipped LM's 508).
    - Pipes are two columns wide (``pipe_pairs``): a column may follow another only if every left
      pipe half (``<`` top, ``[`` body) in the previous column has its right half (``>`` / ``]``) in
      the same row of the next, and every right half in the next column has its left half before
      it. The first column may hold no right halves and the last no left halves, so a finished
      level has no cut pipes. Checked per step on 14-bit row masks.
    """

    def __init__(self, columns: np.ndarray, n_special: int):
        cols = np.asarray(columns)
        self.column_ok = np.concatenate([np.zeros(n_special, bool), valid_mask(cols[:, :, None])])
        weights = 1 << np.arange(cols.shape[1], dtype=np.int64)
        bits = lambda tile: np.concatenate([np.zeros(n_special, np.int64), (cols == tile) @ weights])  # noqa: E731
        # per token id: the rows holding left halves / right halves, tops and bodies packed apart
        self.left = bits(PIPE_TL) | (bits(PIPE_BL) << 16)
        self.right = bits(PIPE_TR) | (bits(PIPE_BR) << 16)

    def allowed(self, prev: np.ndarray | None, candidates: np.ndarray, last: bool) -> np.ndarray:
        need = 0 if prev is None else self.left[np.asarray(prev)][:, None]
        ok = (self.right[candidates] == need) & self.column_ok[candidates]
        if last:
            ok &= self.left[candidates] == 0
        return ok
