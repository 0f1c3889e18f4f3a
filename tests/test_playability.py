"""Playability: the numba grid solver, the real A* agent (java), and the agreement script."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlcreate.levels import astar, solver
from rlcreate.levels.corpus import blocks
from rlcreate.levels.tiles import CHAR_TO_ID, HEIGHT, IS_SOLID, write_level

REPO = Path(__file__).resolve().parent.parent
GROUND = CHAR_TO_ID["X"]


def flat(width: int = 40) -> np.ndarray:
    grid = np.zeros((HEIGHT, width), np.int8)
    grid[12:] = GROUND
    return grid


def with_gap(width: int, start: int, gap: int) -> np.ndarray:
    grid = flat(width)
    grid[:, start:start + gap] = 0
    return grid


# ----------------------------------------------------------------------------------------------
# solver

def test_flat_ground_is_playable():
    result = solver.solve(flat(40))
    assert result.reached_end and result.furthest_col == 39
    assert result.end_rows.tolist() == [r == 11 for r in range(HEIGHT)]  # standing on the ground


def test_small_gap_playable_wide_gap_not():
    assert solver.is_playable(with_gap(40, 15, 3))
    wide = solver.solve(with_gap(40, 15, 10))
    assert not wide.reached_end
    assert 14 <= wide.furthest_col < 25 + 1  # jumped into the gap, never stood on the far side
    assert not wide.end_rows.any()


def test_widest_gap_matches_the_documented_constants():
    widest = 2 * solver.JUMP_HEIGHT + solver.APEX_STEPS - 1
    assert solver.is_playable(with_gap(50, 20, widest))
    assert not solver.is_playable(with_gap(50, 20, widest + 1))


@pytest.mark.parametrize("height, playable", [(4, True), (5, False), (8, False)])
def test_wall_heights(height, playable):
    grid = flat(40)
    grid[12 - height:12, 20] = GROUND  # a one-column wall standing on the ground
    assert solver.is_playable(grid) is playable


def test_staircase_up_and_down_is_playable():
    grid = flat(60)
    for i in range(8):  # SMB-style pyramid: 8 one-tile steps up, then 8 down
        grid[11 - i:12, 10 + i] = GROUND
        grid[11 - i:12, 25 - i] = GROUND
    assert solver.is_playable(grid)


def test_low_ceiling_shortens_jumps():
    open_gap = with_gap(40, 15, 6)
    assert solver.is_playable(open_gap)
    capped = open_gap.copy()
    capped[:10, 3:] = GROUND  # a tunnel with two free rows: no room for a full jump
    assert not solver.is_playable(capped)


def test_falling_below_the_bottom_is_death_and_start_needs_a_surface():
    pit_start = with_gap(30, 0, 5)
    assert solver.solve(pit_start).furthest_col == -1  # nothing to stand on in the first columns
    deep = with_gap(40, 20, 15)
    furthest = solver.solve(deep).furthest_col
    assert 19 <= furthest < 35 and solver.completion(deep) == (furthest + 1) / 40


def reference_solve(grid, seed_cols=solver.START_COLUMNS, entries=None):
    """The movement rules of solver's docstring as a plain per-state search (slow, obvious)."""
    solid = IS_SOLID[grid]
    height, width = grid.shape
    ground, first_rise, first_apex = 0, 1, 1 + solver.JUMP_HEIGHT
    fall = first_apex + solver.APEX_STEPS  # first falling phase; phase - fall = rows fallen
    fast = solver.N_PHASES - 1             # after SLOW_FALL rows: two rows per column moved
    cur = set() if entries is None else {(r, p) for r, p in zip(*np.nonzero(entries))}
    furthest, visited = -1, set()
    for c in range(width):
        visited, stack, nxt = set(), [], set()

        def add(r, p, c=c, visited=visited, stack=stack):  # bind this column's search state
            if solid[r, c]:
                return
            supported = r + 1 < height and solid[r + 1, c]
            if p == ground and not supported:
                p = fall
            elif p >= first_apex and supported:
                p = ground
            if (r, p) not in visited:
                visited.add((r, p))
                stack.append((r, p))

        for r, p in cur:
            add(r, p)
        if c < seed_cols:
            for r in range(height - 1):
                if solid[r + 1, c]:
                    add(r, ground)
        if stack:
            furthest = c
        while stack:
            r, p = stack.pop()
            if p == ground:
                nr, np_ = r, ground
                add(r, first_rise)
            elif p < first_apex:
                add(r, fall)
                if r == 0 or solid[r - 1, c]:
                    continue
                nr, np_ = r - 1, p + 1
                add(nr, np_)
            elif p < fall:
                nr, np_ = r, p + 1
                add(nr, np_)
            else:
                if r + 1 >= height or solid[r + 1, c]:
                    continue
                nr, np_ = r + 1, min(p + 1, fast)
                add(nr, np_)
                if p == fast:  # a move right drops one more row
                    if r + 2 >= height or solid[r + 2, c]:
                        continue
                    nr = r + 2
            if c + 1 == width or not solid[nr, c + 1]:
                nxt.add((nr, np_))
        cur = nxt
    end_rows = np.array([furthest == width - 1 and (r, ground) in visited for r in range(height)])
    exit_state = np.zeros((height, solver.N_PHASES), bool)
    for r, p in cur:
        exit_state[r, p] = True
    return furthest, end_rows, exit_state


def random_level(rng, width):
    """Ground with pits, floating platforms and pillars: a mix of playable and unplayable."""
    grid = flat(width)
    for _ in range(rng.integers(0, 4)):
        s = int(rng.integers(3, width - 2))
        grid[:, s:s + int(rng.integers(1, 11))] = 0
    for _ in range(rng.integers(0, 6)):
        r, s = int(rng.integers(2, 12)), int(rng.integers(0, width))
        grid[r, s:s + int(rng.integers(1, 6))] = rng.choice([GROUND, CHAR_TO_ID["S"], CHAR_TO_ID["?"]])
    for _ in range(rng.integers(0, 3)):
        s, h = int(rng.integers(3, width)), int(rng.integers(1, 7))
        grid[12 - h:12, s] = CHAR_TO_ID["["]
    return grid


def test_bitmask_kernel_matches_plain_search():
    rng = np.random.default_rng(1)
    grids = [random_level(rng, int(rng.integers(8, 48))) for _ in range(300)]
    grids += [b.grid()[:, :64] for b in blocks()[::4]]
    verdicts = []
    for g in grids:
        fast = solver.solve(g)
        furthest, end_rows, exit_state = reference_solve(g)
        assert fast.furthest_col == furthest
        assert np.array_equal(fast.end_rows, end_rows)
        assert np.array_equal(fast.exit_state, exit_state)
        verdicts.append(fast.reached_end)
        # continuing from a seam state follows the same rules
        cont = solver.solve(g, start_state=exit_state)
        assert cont.furthest_col == reference_solve(g, seed_cols=0, entries=exit_state)[0]
    assert 0.2 < np.mean(verdicts) < 0.9  # the random levels exercise both outcomes


def _split_solve(grid: np.ndarray, width: int = 16) -> tuple[bool, int]:
    """Solve ``grid`` piece by piece, carrying the exact seam state; return (reached_end, furthest)."""
    state, furthest, reached = None, -1, False
    for start in range(0, grid.shape[1], width):
        piece = grid[:, start:start + width]
        result = solver.solve(piece) if state is None else solver.solve(piece, start_state=state)
        if result.furthest_col >= 0:
            furthest = start + result.furthest_col
        reached, state = result.reached_end, result.exit_state
    return reached, furthest


def test_segment_by_segment_equals_whole_level_on_corpus_blocks():
    rng = np.random.default_rng(0)
    grids = [b.grid() for b in blocks()]
    # damaged copies (random 4-9 column pits) so that the comparison also covers failures
    for g in grids[:30]:
        g = g.copy()
        start = int(rng.integers(10, g.shape[1] - 20))
        g[:, start:start + int(rng.integers(4, 10))] = 0
        grids.append(g)
    outcomes = []
    for g in grids:
        whole = solver.solve(g)
        assert _split_solve(g) == (whole.reached_end, whole.furthest_col)
        outcomes.append(whole.reached_end)
    assert 0 < sum(outcomes) < len(outcomes)  # both verdicts occur


def test_seam_with_standing_rows_continues_walking():
    first = solver.solve(flat(16))
    second = solver.solve(flat(16), start_rows=first.end_rows)
    assert second.reached_end
    nowhere = solver.solve(flat(16), start_rows=np.zeros(HEIGHT, bool))
    assert nowhere.furthest_col == -1 and not nowhere.reached_end


def test_every_smb1_corpus_block_is_solvable():
    smb1 = [b for b in blocks() if b.game == "smb1"]
    assert smb1 and all(solver.is_playable(b.grid()) for b in smb1)


def test_playable_batch_matches_single_calls():
    grids = np.stack([flat(32), with_gap(32, 10, 12), with_gap(32, 10, 2)])
    assert solver.playable_batch(grids).tolist() == [True, False, True]
    assert solver.playable_batch(list(grids)).tolist() == [True, False, True]
    assert solver.playable_batch(grids.astype(np.int64)).tolist() == [True, False, True]
    with pytest.raises(solver.SolverInputError, match="tile ids must lie in 0..12"):
        solver.playable_batch(np.full((2, 14, 8), 99))


def test_solver_rejects_bad_input():
    with pytest.raises(solver.SolverInputError, match=r"shape \(14, W\).*got shape \(3, 14, 16\)"):
        solver.solve(np.zeros((3, 14, 16), np.int8))
    with pytest.raises(solver.SolverInputError, match="tile ids must lie in 0..12"):
        solver.solve(np.full((14, 8), 40, np.int8))
    with pytest.raises(solver.SolverInputError, match="not both"):
        solver.solve(flat(8), start_rows=np.ones(14, bool), start_state=np.ones((14, solver.N_PHASES), bool))
    with pytest.raises(solver.SolverInputError, match=r"start_state must have shape \(14, \d+\)"):
        solver.solve(flat(8), start_state=np.ones((14, 2), bool))
    with pytest.raises(solver.SolverInputError, match=r"playable_batch expects shape"):
        solver.playable_batch(flat(8))


# ----------------------------------------------------------------------------------------------
# A* agent

needs_java = pytest.mark.skipif(not astar.java_available(), reason="java not found: the A* agent needs a Java 17 runtime")

JAR_OUTPUT = """Running Astar agent with render: false
=========================
****************************************************************
Game Status: LOSE Percentage Completion: 0.62627554
Lives: 1 Coins: 3 Remaining Time: 199
Mario State: 1 (Mushrooms: 0 Fire Flowers: 0)
Total Kills: 2 (Stomps: 2 Fireballs: 0 Shells: 0 Falls: 0)
Bricks: 0 Jumps: 5 Max X Jump: 0.0 Max Air Time: 0
****************************************************************
"""
RUNNER_LINE = "RESULT\tabc|fast|t9\t1\tWIN\t1.0\t7\t1\t2\t1\t10320\t0.8168\n"


def test_parse_jar_output():
    r = astar.parse_jar_output(JAR_OUTPUT, runtime_s=2.0)
    assert r == astar.AstarResult("LOSE", 0.62627554, jumps=5, kills=2, coins=3, lives=1, runtime_s=2.0)
    assert not r.won
    with pytest.raises(astar.AstarRunError, match="no 'status'"):
        astar.parse_jar_output("Exception in thread main")


def test_parse_runner_line():
    key, run, r = astar.parse_runner_line(RUNNER_LINE)
    assert (key, run) == ("abc|fast|t9", 1)
    assert r == astar.AstarResult("WIN", 1.0, jumps=7, kills=1, coins=2, lives=1, runtime_s=0.8168)
    with pytest.raises(astar.AstarRunError, match="unexpected line"):
        astar.parse_runner_line("RESULT\tabc\t0\tDRAW\t1.0")


@pytest.mark.slow
@pytest.mark.java
@needs_java
def test_astar_wins_flat_and_fails_impossible_gap(java_cache):
    flat_summary, gap_summary = astar.run_astar([flat(40), with_gap(40, 15, 16)], runs=1, cache=False)
    assert flat_summary.win_rate == 1.0 and flat_summary.results[0].completion == 1.0
    assert gap_summary.wins == 0 and gap_summary.results[0].status in ("LOSE", "TIME_OUT")
    assert gap_summary.mean_completion < 31 / 40  # never reached the far side of the pit (column 31)
    assert flat_summary.width == 40 and flat_summary.level_hash != gap_summary.level_hash


@pytest.mark.slow
@pytest.mark.java
@needs_java
def test_cache_skips_java_on_second_call(java_cache, monkeypatch):
    launches = []
    real_open = astar._open_runner

    def counting(cmd):
        launches.append(cmd)
        return real_open(cmd)

    monkeypatch.setattr(astar, "_open_runner", counting)
    level = flat(24)
    level[11, 12] = CHAR_TO_ID["E"]  # distinct content from the other tests' levels
    first = astar.run_astar([level], runs=1)
    assert launches and first[0].runs == 1
    launches.clear()
    again = astar.run_astar([level, level], runs=1)
    assert launches == [] and again[0] == first[0] == again[1]
    more = astar.run_astar([level], runs=2)  # one more play needed: java runs once more
    assert len(launches) == 1 and more[0].results[0] == first[0].results[0] and more[0].runs == 2
    stored = json.loads((java_cache / "astar_results.json").read_text())
    assert any(len(v) == 2 for v in stored.values())


@pytest.mark.java
@needs_java
def test_jar_runner_fallback(java_cache):
    (summary,) = astar.run_astar([flat(20)], runs=1, cache=False, runner="jar")
    assert summary.results[0].won


def test_missing_java_raises_and_astar_or_none_warns_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no java anywhere
    monkeypatch.setenv("RLCREATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(astar, "_warned_missing", False)
    assert not astar.java_available()
    with pytest.raises(astar.JavaMissingError, match="openjdk-17-jre-headless.*skipped"):
        astar.run_astar([flat(16)])
    with caplog.at_level(logging.WARNING, logger="rlcreate.levels.astar"):
        assert astar.astar_or_none([flat(16)]) is None
        assert astar.astar_or_none([flat(16)]) is None
    assert sum("A* playability check skipped" in r.message for r in caplog.records) == 1


def test_run_astar_rejects_bad_settings():
    with pytest.raises(astar.AstarSettingsError, match="runs and workers must be >= 1, got runs=0"):
        astar.run_astar([flat(16)], runs=0)
    with pytest.raises(astar.AstarSettingsError, match=r"wrap it in a list"):
        astar.run_astar(flat(16))
    with pytest.raises(astar.AstarSettingsError, match="runner must be one of"):
        astar.run_astar([flat(16)], runner="gpu")


# ----------------------------------------------------------------------------------------------
# agreement script, run for real with a tiny budget

@pytest.mark.slow
@pytest.mark.java
@needs_java
def test_agreement_script_runs(tmp_path, java_cache):
    levels = tmp_path / "levels"
    levels.mkdir()
    write_level(flat(30), levels / "flat.txt")
    write_level(with_gap(30, 10, 14), levels / "gap.txt")
    out = tmp_path / "agreement.json"
    env = {**os.environ, "RLCREATE_CACHE": str(java_cache)}
    subprocess.run([sys.executable, str(REPO / "scripts" / "playability_agreement.py"), str(out),
                    "--levels-dir", str(levels), "--piece-width", "32", "--max-levels", "2", "--runs", "1"],
                   check=True, env=env, cwd=tmp_path, timeout=300)
    report = json.loads(out.read_text())
    generated = report["sets"]["generated"]
    assert generated["levels"] == 2
    assert generated["confusion"]["solver_yes_astar_yes"] == 1 and generated["confusion"]["solver_no_astar_no"] == 1
    assert generated["agreement"] == 1.0
    assert report["sets"]["corpus"]["levels"] == 2


def test_solve_batch_matches_solve_and_chains_exactly():
    from rlcreate.levels import corpus
    from rlcreate.levels.solver import solve, solve_batch

    blocks = [b.grid() for b in corpus.blocks()[:20]]
    for g in blocks:
        pieces = np.stack([g[:, i:i + 16] for i in range(0, g.shape[1] - 15, 16)])
        reached, furthest, end_rows, exit_state = solve_batch(pieces)
        for j, p in enumerate(pieces):
            r = solve(p)
            assert (reached[j], furthest[j]) == (r.reached_end, r.furthest_col)
            assert (end_rows[j] == r.end_rows).all() and (exit_state[j] == r.exit_state).all()
        # chained through exit states = the joined level, as long as no piece breaks the chain
        state, ok = None, True
        for p in pieces:
            rch, _, _, ex = solve_batch(p[None], state)
            ok = ok and bool(rch[0])
            state = ex
            if not ex.any():
                break
        assert ok == solve(np.concatenate(list(pieces), axis=1)).reached_end


def test_alive_after_column_equals_solving_every_candidate_column():
    """The env's per-offer mask kernel gives what solve_batch gives on each candidate as a one-column
    grid (alive = a state above the bottom row), from fresh starts and from real mid-level states
    (jumps and falls in flight), for every apex setting."""
    from rlcreate.levels import corpus
    from rlcreate.levels.solver import SolverInputError, alive_after_column, solve_batch

    level = np.concatenate([b.grid() for b in corpus.blocks()[:6]], axis=1)
    rng = np.random.default_rng(0)
    k = 24
    for apex in range(3):
        states = [np.zeros((HEIGHT, solver.N_PHASES), bool)]  # fresh start
        for x in rng.choice(level.shape[1] - 1, size=40, replace=False):
            states.append(solve_batch(level[None, :, : x + 1], apex_steps=apex)[3][0])
        states = np.stack(states)
        cand = level.T[rng.integers(0, level.shape[1], size=(len(states), k))]  # (n, k, 14)
        cand[:, 0] = 0  # an empty column (a pit) among the candidates
        got = alive_after_column(cand, states, apex_steps=apex)
        exits = solve_batch(cand.reshape(-1, HEIGHT, 1), np.repeat(states, k, axis=0), apex_steps=apex)[3]
        want = exits[:, :-1].any(axis=(1, 2)).reshape(len(states), k)
        assert np.array_equal(got, want)
        assert want.any() and not want.all()  # both outcomes occur
    with pytest.raises(SolverInputError, match="start_states"):
        alive_after_column(cand, states[:1])


def test_apex_steps_sets_the_widest_crossable_gap():
    from rlcreate.levels.solver import JUMP_HEIGHT, SolverInputError, solve_batch

    def gap_level(width):
        g = np.zeros((HEIGHT, 40), np.int8)
        g[-2:] = GROUND
        g[-2:, 10:10 + width] = 0
        return g

    for apex in range(3):
        widest = 2 * JUMP_HEIGHT + apex - 1
        assert solve_batch(gap_level(widest)[None], apex_steps=apex)[0][0]
        assert not solve_batch(gap_level(widest + 1)[None], apex_steps=apex)[0][0]
    with pytest.raises(SolverInputError, match="apex_steps = 3"):
        solve_batch(gap_level(2)[None], apex_steps=3)


def test_a_drop_below_take_off_height_is_steeper_than_the_rise():
    """The first SLOW_FALL rows of a fall take a column each; deeper, two rows per column, so a jump
    off a high tower carries Mario less far than a one-row-per-column glide would."""
    from rlcreate.levels.tiles import GROUND

    def tower_then_pit(pit: int) -> np.ndarray:
        g = np.zeros((14, 12 + pit + 6), np.int8)
        g[-1, :12] = GROUND
        for i, h in enumerate((2, 4, 6, 8)):  # steps up to a tower 8 tiles high
            g[14 - h:, 4 + i * 2:6 + i * 2] = GROUND
        g[-1, 12 + pit:] = GROUND
        return g

    widest = max(p for p in range(1, 30) if solver.is_playable(tower_then_pit(p)))
    # From the tower edge (row 5) each step moves one column: 4 rising (to row 1), 2 at the apex,
    # 4 slow falling rows (to row 5), 3 fast ones of 2 rows (to row 11), then a drop in place onto
    # the ground: 13 columns, a 12-wide pit at most (gliding one row per column would need 17)
    assert widest == 12
    assert widest < 2 * solver.JUMP_HEIGHT + solver.APEX_STEPS + 7
