"""Fast playability check over a Mario tile grid: can Mario get from the left edge to the right edge?

This is a reachability search over *Mario states* ``(row, column, phase)`` on the 14-row tile grid,
compiled with numba. It is a proxy for the real A* agent (:mod:`rlcreate.levels.astar`), cheap
enough to run inside an RL reward at every environment step (microseconds per 16-column segment).

Movement model (one step = a vertical move in the current column, then optionally one column to
the right, entering the next column only if that cell is free):

- **standing** (``GROUND``): on a free cell with a solid tile (:data:`tiles.IS_SOLID`) below it.
  Mario can walk right, or jump.
- **rising**: ``JUMP_HEIGHT`` steps of one row up each. Hitting a solid tile above (or the top of
  the screen) ends the rise. Mario can release the jump early at any point.
- **apex**: ``APEX_STEPS`` steps without vertical motion (the slow top of a running jump).
- **falling**: one row down per step until he lands on a solid tile; falling below the bottom row
  is death. The first ``SLOW_FALL`` (= ``JUMP_HEIGHT``) rows of a fall mirror a jump's rise, one
  row per column moved; deeper, Mario falls two rows per column moved (gravity has sped him up).

Constants, calibrated against the A* agent of the Mario AI Framework (``PlayAstar.jar``) on
synthetic levels (flat ground, 20 columns of run-up) with the FastAstar runner
(:mod:`rlcreate.levels.astar`): the agent climbs a 4-tile step but not a 5-tile one (``JUMP_HEIGHT = 4``), and clears a
10-tile gap but not an 11-tile one. With these rules a jump that lands at take-off height spans
``2 * JUMP_HEIGHT + APEX_STEPS`` columns of air at most, so the widest gap the solver crosses on flat
ground is ``2 * JUMP_HEIGHT + APEX_STEPS - 1``; ``APEX_STEPS = 2`` makes that 9 tiles, one short of
the agent's best *running* jump, because the solver tracks no horizontal speed and so cannot tell a
run-up from a standing jump. All 23 SMB1 corpus blocks are solvable with these constants
(tested); 11 of the 35 Lost Levels blocks are not (walls of bricks around warp pipes, sky levels
with no ground, block edges cut through pits), and the A* agent loses 7 of those 11 as well.

Agreement with the agent (58 corpus blocks, 3 plays each, "A*-playable" = wins >= half): 59%;
of the 47 blocks the solver passes, the agent wins 27 (precision 0.57); of the 31 the agent wins,
the solver passes 27 (recall 0.87), on a heavily loaded 2-core machine (the agent's search is
wall-clock bound, so load weakens it). The disagreements inspected were floating-platform stretches
(SMB's moving lifts are not in the VGLC data) that the solver's generous falls cross (one column
per row fallen; the engine's falls are steeper) and the agent does not; see
``scripts/playability_agreement.py``.

Deliberate simplifications (each one is a way the solver and the A* agent can disagree):

- Mario only moves right or stays in his column (no walking back left). This makes the search one
  left-to-right sweep and makes segment-by-segment solving *exact* (see :func:`solve`), but a level
  that needs backtracking (climb through a hole in a ceiling, then go left) reads as unplayable.
- Mario is one tile tall (small Mario). The agent starts as big Mario (two tiles) and needs two
  free rows to walk, so one-tile tunnels read as passable here.
- Enemies (``E``) are empty space: the agent mostly stomps or jumps them. Cannons (``B``/``b``) are
  solid blocks; their bullets are ignored. Bricks are never broken.

Public API: :func:`solve` (with seam state for incremental checks), :func:`is_playable`,
:func:`playable_batch`, :func:`completion`, :class:`SolveResult`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from rlcreate.errors import UserError
from rlcreate.levels.tiles import HEIGHT, IS_SOLID

__all__ = [
    "JUMP_HEIGHT",
    "APEX_STEPS",
    "START_COLUMNS",
    "N_PHASES",
    "SolveResult",
    "SolverInputError",
    "solve",
    "is_playable",
    "playable_batch",
    "completion",
    "solve_batch",
    "alive_after_column",
    "alive_after_column_exits",
    "exit_states_from_bits",
]

#: rows Mario rises in a full jump (the agent lands on a 4-high step, not on a 5-high one).
JUMP_HEIGHT = 4
#: steps at the top of a jump without vertical motion; sets the widest gap (2*4 + 2 - 1 = 9).
APEX_STEPS = 2
#: by default Mario may start standing on any surface in the first columns (the engine drops him at
#: x = 0 onto the ground; a few columns of slack keep a one-tile notch at the edge from failing).
START_COLUMNS = 3

#: rows of a fall taken at one row per column (the mirror of a full jump's rise); below that Mario
#: falls two rows per column, so a drop from a high platform carries him less far than a glide.
SLOW_FALL = JUMP_HEIGHT

_GROUND = 0
_FIRST_RISE = 1
_FIRST_APEX = _FIRST_RISE + JUMP_HEIGHT
_FALL = _FIRST_APEX + APEX_STEPS
#: number of phases in a Mario state (standing, JUMP_HEIGHT rising, APEX_STEPS apex, SLOW_FALL
#: slow-falling phases counting the rows fallen, fast falling).
N_PHASES = _FALL + SLOW_FALL + 1
_SOLID_LUT = IS_SOLID.astype(np.bool_)


class SolverInputError(UserError):
    """A grid or seam state that the solver cannot take; the message names the shape and the fix."""


@dataclass(frozen=True)
class SolveResult:
    """Outcome of :func:`solve` on one grid.

    Attributes:
        reached_end: Mario can reach the last column (standing or in the air).
        furthest_col: the rightmost column Mario can reach; -1 if he cannot even enter column 0.
        end_rows: ``(14,)`` bool, rows where Mario can *stand* in the last column.
        exit_state: ``(14, N_PHASES)`` bool, the Mario states leaving the last column to the right
            (row, phase: standing, rising, apex or falling). Pass it as ``start_state`` to the next
            segment's :func:`solve` for an exact seam check, jumps across the seam included.
    """

    reached_end: bool
    furthest_col: int
    end_rows: np.ndarray
    exit_state: np.ndarray


# Bitmask kernel: the states of one column are N_PHASES 14-bit masks (bit r = row r), so each
# movement rule is a shift and an AND over all rows at once. Hand-written because no library
# models Mario's jumps; tests check it against a plain per-state search of the same rules.
@njit(cache=True)
def _column(m, cur, free, height, seeded, fall):
    """One column of the sweep, in place: ``cur`` (the states entering a column whose free cells are
    the bitmask ``free``) becomes the states entering the next column; ``m`` ends as the states
    inside this column. ``seeded``: Mario may also start standing here. Returns whether any state
    entered the column (if none, ``cur`` is all 0)."""
    fast = fall + SLOW_FALL
    solid = ~free & ((1 << height) - 1)
    sup = (solid >> 1) & free  # free cells with a solid tile right below
    for p in range(N_PHASES):
        m[p] = cur[p] & free
    if seeded:
        m[_GROUND] |= sup
    # standing needs support; airborne states (apex, falling) with support land
    m[fall] |= m[_GROUND] & ~sup
    m[_GROUND] &= sup
    for p in range(_FIRST_APEX, fast + 1):
        m[_GROUND] |= m[p] & sup
        m[p] &= ~sup
    entered = 0
    for p in range(N_PHASES):
        entered |= m[p]
    if entered == 0:
        cur[:] = 0
        return False
    while True:  # closure under the moves that stay in this column
        before = m[_GROUND]
        m[_FIRST_RISE] |= m[_GROUND]  # jump
        for k in range(_FIRST_RISE, _FIRST_APEX):
            m[fall] |= m[k]  # release the jump
            m[k + 1] |= (m[k] >> 1) & free  # rise one row; head bump stops it
        for k in range(_FIRST_APEX, fall):
            m[_GROUND] |= m[k] & sup  # land
            m[k] &= ~sup
            m[k + 1] |= m[k]  # apex: no vertical motion
        while True:  # fall row by row in this column, counting rows fallen (a solid tile below stops it)
            grew = False
            for k in range(fall, fast + 1):
                drop = (m[k] << 1) & free
                nxt = k + 1 if k < fast else fast
                if drop & ~m[nxt]:
                    m[nxt] |= drop
                    grew = True
            if not grew:
                break
        for k in range(fall, fast + 1):
            m[_GROUND] |= m[k] & sup  # land
            m[k] &= ~sup
        if m[_GROUND] == before:
            break
    # each state's step ends in (row, phase); it enters the next column if that cell is free
    cur[:] = 0
    cur[_GROUND] = m[_GROUND]
    for k in range(_FIRST_RISE, _FIRST_APEX):
        cur[k + 1] |= (m[k] >> 1) & free
    for k in range(_FIRST_APEX, fall):
        cur[k + 1] |= m[k]
    for k in range(fall, fast):
        cur[k + 1] |= (m[k] << 1) & free  # slow fall: one row per column
    cur[fast] |= (((m[fast] << 1) & free) << 1) & free  # fast fall: two rows per column
    return True


@njit(cache=True)
def _free_mask(grid, c, lut):
    """Bitmask of the non-solid cells of column ``c`` (bit r = row r), or -1 - tile id for a bad tile."""
    free = 0
    for r in range(grid.shape[0]):
        t = grid[r, c]
        if t < 0 or t >= lut.shape[0]:
            return -1 - t
        if not lut[t]:
            free |= 1 << r
    return free


@njit(cache=True)
def _sweep(grid, lut, entries, seed_cols, fall=_FALL):
    """Left-to-right sweep.

    Returns (furthest column or -1, standing rows in the last column (14,) bool,
    exit states (14, N_PHASES) bool, bad tile id or -1). ``fall`` is the index of the first falling
    phase: ``_FIRST_APEX + apex steps``; phases ``fall .. fall + SLOW_FALL - 1`` count the rows
    fallen at one row per column, ``fall + SLOW_FALL`` falls two rows per column (phases after it
    stay empty).
    """
    height, width = grid.shape
    m = np.zeros(N_PHASES, np.int64)  # states in the current column
    cur = np.zeros(N_PHASES, np.int64)  # states entering the current column
    for r in range(height):
        for p in range(N_PHASES):
            if entries[r, p]:
                cur[p] |= 1 << r
    furthest = -1
    for c in range(width):
        free = _free_mask(grid, c, lut)
        if free < 0:
            return -1, np.zeros(height, np.bool_), np.zeros((height, N_PHASES), np.bool_), -1 - free
        if _column(m, cur, free, height, c < seed_cols, fall):
            furthest = c
    end_rows = np.zeros(height, np.bool_)
    exit_state = np.zeros((height, N_PHASES), np.bool_)
    for r in range(height):
        end_rows[r] = furthest == width - 1 and (m[_GROUND] >> r) & 1 == 1
        for p in range(N_PHASES):
            exit_state[r, p] = (cur[p] >> r) & 1 == 1
    return furthest, end_rows, exit_state, -1


def _as_grid(grid) -> np.ndarray:
    grid = np.asarray(grid)
    if grid.ndim != 2 or grid.shape[0] != HEIGHT or grid.shape[1] == 0:
        raise SolverInputError(
            f"solve expects one level grid of shape ({HEIGHT}, W) with W >= 1, got shape {grid.shape}; "
            "for a batch of levels use playable_batch"
        )
    if not np.issubdtype(grid.dtype, np.integer):
        raise SolverInputError(
            f"level grids hold integer tile ids, got dtype {grid.dtype}; parse text with parse_level"
        )
    if grid.dtype != np.int8:
        if grid.min() < 0 or grid.max() >= len(_SOLID_LUT):
            raise SolverInputError(
                f"tile ids must lie in 0..{len(_SOLID_LUT) - 1}, got values {int(grid.min())}..{int(grid.max())}"
            )
        grid = grid.astype(np.int8)
    return grid


def solve(grid: np.ndarray, start_rows: np.ndarray | None = None, start_state: np.ndarray | None = None) -> SolveResult:
    """Reachability of one ``(14, W)`` grid from its left edge.

    Args:
        grid: tile ids, shape ``(14, W)``.
        start_rows: ``(14,)`` bool, rows where Mario stands in column 0 (e.g. the previous segment's
            ``end_rows``). Approximate at a seam: a jump already in flight across it is lost.
        start_state: ``(14, N_PHASES)`` bool, the previous segment's ``exit_state``; exact: solving
            segments one after another this way gives the same answer as solving them joined.
        With neither, Mario starts standing on any surface in the first ``START_COLUMNS`` columns.
    """
    grid = _as_grid(grid)
    entries = np.zeros((HEIGHT, N_PHASES), np.bool_)
    seed_cols = 0
    if start_rows is not None and start_state is not None:
        raise SolverInputError("pass start_rows or start_state, not both; start_state is the exact seam state")
    if start_state is not None:
        start_state = np.asarray(start_state, dtype=bool)
        if start_state.shape != (HEIGHT, N_PHASES):
            raise SolverInputError(
                f"start_state must have shape ({HEIGHT}, {N_PHASES}) (a SolveResult.exit_state), got {start_state.shape}"
            )
        entries[:] = start_state
    elif start_rows is not None:
        start_rows = np.asarray(start_rows, dtype=bool)
        if start_rows.shape != (HEIGHT,):
            raise SolverInputError(
                f"start_rows must have shape ({HEIGHT},) (a SolveResult.end_rows), got {start_rows.shape}"
            )
        entries[start_rows, _GROUND] = True
    else:
        seed_cols = START_COLUMNS
    furthest, end_rows, exit_state, bad_tile = _sweep(grid, _SOLID_LUT, entries, seed_cols)
    if bad_tile != -1:
        raise SolverInputError(
            f"tile ids must lie in 0..{len(_SOLID_LUT) - 1}, got {bad_tile}; parse text with parse_level"
        )
    return SolveResult(
        reached_end=bool(furthest == grid.shape[1] - 1),
        furthest_col=int(furthest),
        end_rows=end_rows,
        exit_state=exit_state,
    )


def is_playable(grid: np.ndarray) -> bool:
    """Whether Mario can get from the left edge to the last column of ``grid``."""
    return solve(grid).reached_end


def completion(grid: np.ndarray) -> float:
    """Fraction of the level's columns Mario can reach: ``(furthest_col + 1) / W`` in [0, 1]."""
    result = solve(grid)
    return (result.furthest_col + 1) / np.asarray(grid).shape[1]


@njit(cache=True)
def _batch(grids, lut):
    out = np.zeros(grids.shape[0], np.bool_)
    entries = np.zeros((grids.shape[1], N_PHASES), np.bool_)
    for i in range(grids.shape[0]):
        furthest, _, _, bad = _sweep(grids[i], lut, entries, START_COLUMNS)
        if bad != -1:
            return out, bad
        out[i] = furthest == grids.shape[2] - 1
    return out, -1


def playable_batch(grids) -> np.ndarray:
    """``is_playable`` for each grid of a ``(n, 14, W)`` array or a list of ``(14, W_i)`` grids."""
    if isinstance(grids, np.ndarray):
        if grids.ndim != 3 or grids.shape[1] != HEIGHT or grids.shape[2] == 0:
            raise SolverInputError(
                f"playable_batch expects shape (n, {HEIGHT}, W) or a list of grids, got {grids.shape}"
            )
        if grids.dtype != np.int8:
            grids = _as_grid(grids.reshape(HEIGHT, -1)).reshape(grids.shape)  # checks ids, casts
        out, bad = _batch(np.ascontiguousarray(grids), _SOLID_LUT)
        if bad != -1:
            raise SolverInputError(f"tile ids must lie in 0..{len(_SOLID_LUT) - 1}, got {bad}")
        return out
    return np.array([solve(g).reached_end for g in grids], dtype=bool)


@njit(cache=True)
def _sweep_batch(grids, lut, entries, seed_cols, fall):
    n = grids.shape[0]
    furthest = np.empty(n, np.int64)
    end_rows = np.zeros((n, grids.shape[1]), np.bool_)
    exit_state = np.zeros((n, grids.shape[1], N_PHASES), np.bool_)
    for i in range(n):
        f, e, x, bad = _sweep(grids[i], lut, entries[i], seed_cols[i], fall)
        if bad != -1:
            return furthest, end_rows, exit_state, bad
        furthest[i], end_rows[i], exit_state[i] = f, e, x
    return furthest, end_rows, exit_state, -1


def solve_batch(grids: np.ndarray, start_states: np.ndarray | None = None, apex_steps: int = APEX_STEPS):
    """:func:`solve` for each grid of an ``(n, 14, W)`` int8 stack in one compiled call.

    ``start_states``: ``(n, 14, N_PHASES)`` bool exit states of the previous segments (exact seams);
    a row that is all False starts fresh (standing in the first ``START_COLUMNS`` columns), like
    ``solve`` without a start. ``apex_steps`` (0..APEX_STEPS) shortens the hang time at the top of
    a jump: fewer apex steps = narrower gaps count as crossable (widest gap ``2 * JUMP_HEIGHT +
    apex_steps - 1``), a safety margin for rewards (the real agent often cannot reach full speed
    on short run-ups). Returns ``(reached_end (n,), furthest_col (n,), end_rows (n, 14),
    exit_state (n, 14, N_PHASES))``.
    """
    if apex_steps not in range(APEX_STEPS + 1):
        raise SolverInputError(f"apex_steps = {apex_steps!r}: use an integer in 0..{APEX_STEPS}")
    g = np.asarray(grids)
    if g.ndim != 3 or g.shape[1] != HEIGHT or g.shape[2] == 0:
        raise SolverInputError(f"solve_batch expects shape (n, {HEIGHT}, W), got {g.shape}")
    g = np.ascontiguousarray(g.astype(np.int8, copy=False))
    if start_states is None:
        entries = np.zeros((len(g), HEIGHT, N_PHASES), np.bool_)
    else:
        entries = np.ascontiguousarray(np.asarray(start_states, dtype=np.bool_))
        if entries.shape != (len(g), HEIGHT, N_PHASES):
            raise SolverInputError(
                f"start_states must have shape ({len(g)}, {HEIGHT}, {N_PHASES}), got {entries.shape}"
            )
    seed_cols = np.where(entries.any(axis=(1, 2)), 0, START_COLUMNS).astype(np.int64)
    furthest, end_rows, exit_state, bad = _sweep_batch(g, _SOLID_LUT, entries, seed_cols, _FIRST_APEX + apex_steps)
    if bad != -1:
        raise SolverInputError(f"tile ids must lie in 0..{len(_SOLID_LUT) - 1}, got {bad}; parse text with parse_level")
    return furthest == g.shape[2] - 1, furthest, end_rows, exit_state


@njit(cache=True)
def _alive_after(columns, lut, entries, fall):
    n, k, height = columns.shape
    alive = np.zeros((n, k), np.bool_)
    exits = np.zeros((n, k, N_PHASES), np.int64)  # the exit states' row bitmasks per phase
    start = np.zeros(N_PHASES, np.int64)
    m = np.zeros(N_PHASES, np.int64)
    cur = np.zeros(N_PHASES, np.int64)
    above_bottom = (1 << (height - 1)) - 1
    for i in range(n):
        start[:] = 0
        for r in range(height):
            for p in range(N_PHASES):
                if entries[i, r, p]:
                    start[p] |= 1 << r
        fresh = True
        for p in range(N_PHASES):
            if start[p]:
                fresh = False
        for j in range(k):
            free = _free_mask(columns[i, j].reshape(height, 1), 0, lut)
            if free < 0:
                return alive, exits, -1 - free
            cur[:] = start
            _column(m, cur, free, height, fresh, fall)
            for p in range(N_PHASES):
                exits[i, j, p] = cur[p]
                if cur[p] & above_bottom:
                    alive[i, j] = True
    return alive, exits, -1


def alive_after_column(columns: np.ndarray, start_states: np.ndarray, apex_steps: int = APEX_STEPS) -> np.ndarray:
    """For ``k`` candidate next columns per row, whether Mario is still alive after each.

    ``columns``: ``(n, k, 14)`` int8 tile columns; ``start_states``: ``(n, 14, N_PHASES)`` bool exit
    states of the levels so far (all False: start fresh, as in :func:`solve_batch`). Returns
    ``(n, k)`` bool: the exit state after the candidate has a state above the bottom row (in the
    bottom row Mario is falling into a pit). The same as :func:`solve_batch` on every candidate as a
    one-column grid, in one compiled call (the env's per-step ``playable_only`` mask checks every
    offer). :func:`alive_after_column_exits` also gives each candidate's exit states.
    """
    return alive_after_column_exits(columns, start_states, apex_steps)[0]


def alive_after_column_exits(
    columns: np.ndarray, start_states: np.ndarray, apex_steps: int = APEX_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`alive_after_column` and each candidate's exit states as ``(n, k, N_PHASES)`` int64 row
    bitmasks (:func:`exit_states_from_bits` turns them into ``solve_batch``'s exit states), so the env
    advances by the chosen offer's without solving it again."""
    if apex_steps not in range(APEX_STEPS + 1):
        raise SolverInputError(f"apex_steps = {apex_steps!r}: use an integer in 0..{APEX_STEPS}")
    cols = np.ascontiguousarray(np.asarray(columns).astype(np.int8, copy=False))
    entries = np.ascontiguousarray(np.asarray(start_states, dtype=np.bool_))
    if cols.ndim != 3 or cols.shape[2] != HEIGHT or entries.shape != (cols.shape[0], HEIGHT, N_PHASES):
        raise SolverInputError(
            f"alive_after_column expects columns (n, k, {HEIGHT}) and start_states (n, {HEIGHT}, {N_PHASES}), "
            f"got {cols.shape} and {entries.shape}"
        )
    alive, exits, bad = _alive_after(cols, _SOLID_LUT, entries, _FIRST_APEX + apex_steps)
    if bad != -1:
        raise SolverInputError(f"tile ids must lie in 0..{len(_SOLID_LUT) - 1}, got {bad}; parse text with parse_level")
    return alive, exits


def exit_states_from_bits(bits: np.ndarray) -> np.ndarray:
    """``(..., N_PHASES)`` row bitmasks (:func:`alive_after_column_exits`'s second array)
    -> ``(..., 14, N_PHASES)`` bool exit states, laid out as :func:`solve_batch`'s."""
    rows = np.arange(HEIGHT, dtype=np.int64)
    return ((np.asarray(bits, np.int64)[..., None, :] >> rows[:, None]) & 1).astype(np.bool_)
