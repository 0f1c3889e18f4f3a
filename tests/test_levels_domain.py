"""The Mario level domain: rendering, structural validity and level metrics.

Hand-built levels with known answers, plus sanity checks over the real VGLC corpus.
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
from PIL import Image

from rlcreate.levels import corpus
from rlcreate.levels.metrics import (
    CorpusNeighbours,
    TilePatternKL,
    density,
    difficulty_profile,
    element_counts,
    ground_heights,
    leniency,
    level_metrics,
    linearity,
)
from rlcreate.levels.render import TILE_SIZE, level_pixels, render_level, render_montage, tile_atlas
from rlcreate.levels.tiles import CHAR_TO_ID, HEIGHT, TILES, LevelFormatError, parse_level
from rlcreate.levels.validity import RULES, check_grid, is_valid, level_problems, rule_masks, valid_mask


def level(*rows: str) -> np.ndarray:
    """A level from its bottom rows (the rows above are sky), all rows of equal width."""
    width = len(rows[0])
    sky = ["-" * width] * (HEIGHT - len(rows))
    return parse_level("\n".join(sky + list(rows)))


def flat(width: int) -> np.ndarray:
    return level("X" * width)


@pytest.fixture(scope="module")
def train16():
    return corpus.training_windows(16)


@pytest.fixture(scope="module")
def reference_kl():
    return TilePatternKL([b.grid() for b in corpus.training_blocks()])


@pytest.fixture(scope="module")
def neighbours():
    return CorpusNeighbours()


# ----------------------------------------------------------------------------------------- render

def test_render_size_is_16_pixels_per_tile(tmp_path):
    grid = flat(10)
    image = render_level(grid)
    assert image.size == (16 * 10, 16 * HEIGHT)
    path = tmp_path / "level.png"
    big = render_level(grid, path=path, scale=3)
    assert big.size == (3 * 16 * 10, 3 * 16 * HEIGHT)
    assert Image.open(path).size == big.size


def test_render_places_each_tile_image_at_its_cell():
    ids = np.arange(len(TILES), dtype=np.int8)
    grid = np.zeros((HEIGHT, len(TILES)), np.int8)
    grid[5] = ids
    pixels = level_pixels(grid)
    atlas = tile_atlas()
    for col, tile in enumerate(ids):
        cell = pixels[5 * TILE_SIZE:6 * TILE_SIZE, col * TILE_SIZE:(col + 1) * TILE_SIZE]
        assert np.array_equal(cell, atlas[tile])
    assert np.array_equal(pixels[:TILE_SIZE, :TILE_SIZE], atlas[0])
    # every tile looks different, except the two question-block kinds that share mario-gpt's image
    distinct = {atlas[i].tobytes() for i in range(len(TILES))}
    assert len(distinct) == len(TILES) - 1
    assert np.array_equal(atlas[CHAR_TO_ID["?"]], atlas[CHAR_TO_ID["Q"]])


def test_montage_dimensions_with_and_without_labels(tmp_path):
    grids = [flat(10), flat(20), flat(5), flat(20), flat(10)]
    image = render_montage(grids, ncols=2, pad=8)
    cell_w, cell_h = 16 * 20, 16 * HEIGHT
    assert image.size == (2 * cell_w + 3 * 8, 3 * cell_h + 4 * 8)
    labelled = render_montage(grids, path=tmp_path / "m.png", ncols=3, pad=4, labels=list("abcde"))
    assert labelled.size == (3 * cell_w + 4 * 4, 2 * (cell_h + 12) + 3 * 4)
    assert (tmp_path / "m.png").exists()


def test_montage_and_render_reject_bad_arguments():
    with pytest.raises(ValueError, match="2 labels for 3 levels"):
        render_montage([flat(4)] * 3, labels=["a", "b"])
    with pytest.raises(ValueError, match="at least one level"):
        render_montage([])
    with pytest.raises(ValueError, match="scale must be a positive integer"):
        render_level(flat(4), scale=0)
    with pytest.raises(LevelFormatError, match=r"shape \(13, 4\)"):
        render_level(np.zeros((13, 4), np.int8))


# --------------------------------------------------------------------------------------- validity

PIPE_LEVEL = level(
    "----<>----",
    "----[]--E-",
    "XXXXXXXXXX",
)


def test_well_formed_level_has_no_problems():
    assert level_problems(PIPE_LEVEL) == []
    assert is_valid(PIPE_LEVEL)


def test_pipe_top_without_right_half_is_flagged_with_its_position():
    broken = level(
        "----<-----",
        "----[]----",
        "XXXXXXXXXX",
    )
    problems = level_problems(broken)
    assert "pipe_pairs: pipe top '<' at row 11, col 4 has no '>' to its right" in problems
    assert not is_valid(broken)
    assert not rule_masks(broken[None])["pipe_pairs"][0]


def test_pipe_body_without_top_and_floating_pipe_are_flagged():
    no_top = level(
        "----[]----",
        "----[]----",
        "XXXXXXXXXX",
    )
    assert any(p.startswith("pipe_capped: left pipe half at col 4, rows 11-12") for p in level_problems(no_top))
    floating = level(
        "----<>----",
        "----[]----",
        "----------",
        "XXXXXXXXXX",
    )
    problems = level_problems(floating)
    assert any(p.startswith("pipe_anchored: left pipe half at col 4, rows 10-11") for p in problems)
    masks = rule_masks(floating[None])
    assert not masks["pipe_anchored"][0] and masks["pipe_capped"][0] and masks["pipe_pairs"][0]


def test_upside_down_pipe_hanging_from_the_ceiling_is_valid():
    hanging = level(
        "XXXXXXXXXX",
        "----[]----",
        "----<>----",
        "----------",
        "XXXXXXXXXX",
    )
    assert level_problems(hanging) == []
    from_above = np.zeros((HEIGHT, 6), np.int8)
    from_above[:4, 2] = CHAR_TO_ID["["]
    from_above[:4, 3] = CHAR_TO_ID["]"]
    from_above[4, 2:4] = [CHAR_TO_ID["<"], CHAR_TO_ID[">"]]
    from_above[-1] = CHAR_TO_ID["X"]
    from_above[5:-1, 2:4] = CHAR_TO_ID["X"]
    assert level_problems(from_above) == []  # body reaching row 0: the pipe comes from above


def test_half_pipes_at_window_edges_are_accepted_but_not_at_a_seam():
    right_half = level(">---", "]---", "XXXX")
    left_half = level("---<", "---[", "XXXX")
    assert is_valid(right_half) and is_valid(left_half)
    assert is_valid(np.concatenate([left_half, right_half], axis=1))  # the halves meet at the seam
    seam = np.concatenate([left_half, flat(4)], axis=1)
    assert any("row 11, col 3 has no '>'" in p for p in level_problems(seam))


def test_cannon_rules():
    on_ground = level("--B--", "--b--", "XXXXX")
    assert is_valid(on_ground)
    one_row_up = level("--B--", "-----", "XXXXX")  # VGLC's SMB1 cannons: tolerated
    assert is_valid(one_row_up)
    floating = level("--B--", "-----", "-----", "XXXXX")
    assert level_problems(floating) == ["cannon_supported: cannon 'B' at row 10, col 2 has nothing solid below it"]
    support_only = level("--b--", "XXXXX")
    assert level_problems(support_only) == [
        "cannon_supported: cannon support 'b' at row 12, col 2 has no 'B' or 'b' above it"]


def test_enemy_embedded_in_terrain_is_flagged_but_not_in_a_pit_open_above():
    embedded = level("XXX--", "XEX--", "XXXXX")
    assert level_problems(embedded) == [
        "enemy_not_embedded: enemy 'E' at row 12, col 1 is enclosed by solid tiles above, left and right"]
    in_pit = level("XEX--", "XXXXX")
    assert is_valid(in_pit)
    at_edge = level("XXX", "EX-", "XXX")  # the unknown left neighbour counts as open
    assert is_valid(at_edge)


def test_valid_mask_matches_per_level_checks(train16):
    broken = level("----<-----", "XXXXXXXXXX")
    floating = level("--B-------", "----------", "----------", "XXXXXXXXXX")
    stack = np.stack([PIPE_LEVEL, broken, floating, flat(10)])
    assert valid_mask(stack).tolist() == [True, False, False, True]
    sample = train16[::7]
    masks = rule_masks(sample)
    valid = valid_mask(sample)
    assert set(masks) == set(RULES)
    for i in range(len(sample)):
        problems = level_problems(sample[i])
        assert valid[i] == (not problems)
        for rule in RULES:
            assert masks[rule][i] == (not any(p.startswith(rule + ":") for p in problems))


def test_corpus_windows_pass_the_rules(train16):
    for rule, passed in rule_masks(train16).items():
        assert passed.mean() >= 0.98, rule
    assert valid_mask(corpus.held_out_windows(16)).all()


def test_shape_and_tile_errors_name_the_problem():
    with pytest.raises(LevelFormatError, match=r"got shape \(13, 5\)"):
        check_grid(np.zeros((13, 5), np.int8))
    with pytest.raises(LevelFormatError, match=r"\(n, 14, W\).*got shape \(14, 5\)"):
        valid_mask(np.zeros((HEIGHT, 5), np.int8))
    with pytest.raises(LevelFormatError, match="tile id 20"):
        is_valid(np.full((HEIGHT, 3), 20, np.int8))
    with pytest.raises(LevelFormatError, match="integer tile ids"):
        is_valid(np.zeros((HEIGHT, 3), np.float32))


# ---------------------------------------------------------------------------------------- metrics

def test_one_three_wide_gap():
    grid = level("XXXXX---XXXX")
    counts = element_counts(grid)
    assert counts["gaps"] == 1 and counts["gap_sizes"] == [3]
    assert ground_heights(grid).tolist() == [1] * 5 + [0] * 3 + [1] * 4
    assert leniency(grid) == pytest.approx(-(0.5 + 3.0) / 12)


def test_element_counts_of_a_hand_built_level():
    grid = level(
        "-------SS?Q--o-o",
        ">-------------B-",
        "]-<>-------E--b-",
        "]-[]--E-E-----b-",
        "XXXXXXXXX--XXXXX",
    )
    counts = element_counts(grid)
    assert counts == {
        "enemies": 3, "pipes": 2, "cannons": 1, "gaps": 1, "gap_sizes": [2], "blocks": 4,
        "coins": 2, "question_blocks": 2, "powerups": 1,
    }


def test_leniency_linearity_density_of_simple_levels():
    ground = flat(10)
    assert leniency(ground) == 0.0
    assert linearity(ground) == 1.0
    assert density(ground) == pytest.approx(1 / 7)
    one_enemy = level("----E-----", "XXXXXXXXXX")
    assert leniency(one_enemy) == pytest.approx(-0.1)
    assert leniency(level("?---", "----", "----", "XXXX")) == pytest.approx(0.25)
    stairs = np.zeros((HEIGHT, 8), np.int8)
    for c in range(8):
        stairs[HEIGHT - 1 - c:, c] = CHAR_TO_ID["X"]
    assert linearity(stairs) == pytest.approx(1.0)  # a steady slope lies on one line
    zigzag = np.zeros((HEIGHT, 8), np.int8)
    for c in range(8):
        zigzag[(HEIGHT - 1 if c % 2 else 4):, c] = CHAR_TO_ID["X"]
    assert 0.0 <= linearity(zigzag) < 0.6
    platform_over_ground = level("SSSSSSSSSS", "----------", "XXXXXXXXXX")
    assert density(platform_over_ground) == pytest.approx(2 / 7)


def test_difficulty_profile():
    assert difficulty_profile(flat(20)).tolist() == [0.0, 0.0, 0.0]  # windows 8, 8, 4
    enemies = level("EEEEEEEE--------", "XXXXXXXXXXXXXXXX")
    assert difficulty_profile(enemies).tolist() == [1.0, 0.0]
    pit = level("XX----XX")
    assert difficulty_profile(pit).tolist() == [0.5]
    bridged = level("SSSSSSSS", "--------", "XX----XX")  # a platform over the pit: not open
    assert difficulty_profile(bridged).tolist() == [0.0]
    wall = level("----X---", "----X---", "----X---", "XXXXXXXX")
    assert difficulty_profile(wall, window=4).tolist() == [0.0, pytest.approx(0.75 / 4)]
    with pytest.raises(ValueError, match="window must be a positive"):
        difficulty_profile(flat(8), window=0)


def test_metrics_stay_in_their_documented_ranges_on_corpus_windows(train16):
    for grid in train16[::11]:
        assert -1.0 <= leniency(grid) <= 1.0
        assert 0.0 <= linearity(grid) <= 1.0
        assert 0.0 <= density(grid) <= 1.0
        profile = difficulty_profile(grid)
        assert profile.shape == (2,) and ((0 <= profile) & (profile <= 1)).all()


def _naive_tile_pattern_kl(grid, references, size, eps):
    """Direct dictionary implementation of Lucas & Volz's smoothed KL, for cross-checking."""
    def counts(g):
        c = collections.Counter()
        for r in range(g.shape[0] - size + 1):
            for k in range(g.shape[1] - size + 1):
                c[g[r:r + size, k:k + size].tobytes()] += 1
        return c
    p = counts(grid)
    q = collections.Counter()
    for ref in references:
        q += counts(ref)
    union = set(p) | set(q)
    n_p, n_q, z = sum(p.values()), sum(q.values()), 1 + eps * len(union)
    total = 0.0
    for x in union:
        ps, qs = (p[x] / n_p + eps) / z, (q[x] / n_q + eps) / z
        total += ps * math.log(ps / qs)
    return total


@pytest.mark.parametrize("size", [1, 2, 3])
def test_tile_pattern_kl_matches_a_direct_implementation(size):
    rng = np.random.default_rng(size)
    refs = [rng.integers(0, 4, (HEIGHT, 12)).astype(np.int8) for _ in range(3)]
    levels = rng.integers(0, 5, (4, HEIGHT, 9)).astype(np.int8)
    kl = TilePatternKL(refs, size=size, eps=1e-3)
    expected = [_naive_tile_pattern_kl(g, refs, size, 1e-3) for g in levels]
    assert kl.batch(levels) == pytest.approx(expected, rel=1e-9)
    assert [kl(g) for g in levels] == pytest.approx(expected, rel=1e-9)


def test_tile_pattern_kl_on_the_corpus(reference_kl):
    whole = corpus.full_corpus()
    assert abs(TilePatternKL([whole])(whole)) < 1e-9
    held_out = np.stack([b.grid() for b in corpus.held_out_blocks()])
    held_kl = reference_kl.batch(held_out)
    all_ground = np.full((HEIGHT, 128), CHAR_TO_ID["X"], np.int8)
    assert reference_kl(all_ground) > 2.0
    assert reference_kl(all_ground) > 10 * held_kl.max()
    assert (held_kl > 0).all()


def test_tile_pattern_kl_rejects_bad_arguments():
    with pytest.raises(ValueError, match="size must be an integer pattern side from 1 to 4, got 5"):
        TilePatternKL([flat(8)], size=5)
    with pytest.raises(ValueError, match="eps must be > 0"):
        TilePatternKL([flat(8)], eps=0)
    with pytest.raises(ValueError, match="reference_grids is empty"):
        TilePatternKL([])
    kl = TilePatternKL([flat(8)], size=3)
    with pytest.raises(LevelFormatError, match=r"\(14, 2\) are narrower than the 3x3"):
        kl(flat(2))
    with pytest.raises(LevelFormatError, match=r"got shape \(5, 14, 8\)"):
        kl(np.zeros((5, HEIGHT, 8), np.int8))


def test_corpus_window_has_zero_distance_to_the_corpus(neighbours, train16):
    picked = train16[[0, 1000, 4000]]
    assert neighbours.distance(picked).tolist() == [0.0, 0.0, 0.0]
    altered = picked[0].copy()
    altered[0, :3] = CHAR_TO_ID["E"]  # three enemies in the top row appear nowhere in the corpus
    d = neighbours.distance(altered[None])[0]
    assert 0.0 < d <= 3 / (HEIGHT * 16)
    swarm = np.full((1, HEIGHT, 16), CHAR_TO_ID["E"], np.int8)  # no window is mostly enemies
    assert neighbours.distance(swarm)[0] > 0.9


def test_level_distance_averages_non_overlapping_windows(neighbours):
    block = corpus.training_blocks()[0].grid()
    assert neighbours.level_distance(block) == 0.0  # its windows are corpus windows
    ragged = np.concatenate([block[:, :40], np.full((HEIGHT, 16), CHAR_TO_ID["S"], np.int8)], axis=1)
    # windows at columns 0, 16, 32 (copy, copy, half copy) and the right-aligned 40..56 (all bricks)
    per_window = neighbours.distance(np.stack([ragged[:, s:s + 16] for s in (0, 16, 32, 40)]))
    assert neighbours.level_distance(ragged) == pytest.approx(per_window.mean())
    with pytest.raises(LevelFormatError, match=r"but the index holds windows of width 16"):
        neighbours.distance(np.zeros((2, HEIGHT, 8), np.int8))
    with pytest.raises(LevelFormatError, match="narrower than the index windows"):
        neighbours.level_distance(flat(8))


def test_level_metrics_report(reference_kl, neighbours):
    grid = corpus.held_out_blocks()[0].grid()
    plain = level_metrics(grid)
    full = level_metrics(grid, kl=reference_kl, neighbours=neighbours)
    assert set(full) == set(plain) | {"kl", "novelty"}
    assert all(isinstance(v, float) for v in full.values())
    assert full["width"] == 128.0 and full["valid"] == 1.0
    assert full["kl"] == pytest.approx(reference_kl(grid))
    assert 0.0 < full["novelty"] < 0.2  # held out: close to, but not a copy of, the training data
    assert full["difficulty_max"] >= full["difficulty_mean"]
    with pytest.raises(LevelFormatError, match=r"got shape \(14,\)"):
        level_metrics(np.zeros(HEIGHT, np.int8))


def test_segment_difficulty_matches_profile_over_whole_width():
    from rlcreate.levels.metrics import difficulty_profile, segment_difficulty

    segs = corpus.training_windows(16, stride=37)
    expected = [difficulty_profile(s, window=16)[0] for s in segs]
    np.testing.assert_allclose(segment_difficulty(segs), expected)


def test_approximate_corpus_neighbours_close_to_exact():
    from rlcreate.levels.metrics import CorpusNeighbours

    windows = corpus.training_windows(16)
    exact, approx = CorpusNeighbours(windows), CorpusNeighbours(windows, approximate=True)
    queries = corpus.held_out_windows(16, stride=4)
    d_exact, d_approx = exact.distance(queries), approx.distance(queries)
    assert (d_approx >= d_exact - 1e-12).all()           # never closer than the true neighbour
    assert np.mean(d_approx == d_exact) > 0.9
    assert approx.distance(windows[:20]).max() == 0.0    # copies of indexed windows are found
