"""NoveltyArchive and NoveltyReward: k-NN values against sklearn, insertion/eviction rules, state."""

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances

from rlcreate.rewards import RewardSet, Term
from rlcreate.rewards.novelty import NoveltyArchive, NoveltyConfigError, NoveltyReward

RNG = np.random.default_rng(0)
REF = RNG.normal(size=(60, 8))
PAST = RNG.normal(size=(40, 8))
X = RNG.normal(size=(6, 8))


def knn_mean(X, S, k, metric="euclidean"):
    return np.sort(pairwise_distances(X, S, metric=metric), axis=1)[:, :k].mean(axis=1)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_novelty_matches_brute_force_knn(metric):
    a = NoveltyArchive(REF, k=5, metric=metric, insertion="all")
    a.add(PAST)
    assert a.novelty(X, "reference") == pytest.approx(knn_mean(X, REF, 5, metric), abs=1e-5)
    assert a.novelty(X, "archive") == pytest.approx(knn_mean(X, PAST, 5, metric), abs=1e-5)
    # pooled: the k nearest among reference and archive together
    assert a.novelty(X, "both") == pytest.approx(knn_mean(X, np.vstack([REF, PAST]), 5, metric), abs=1e-5)


def test_combine_min_and_mean():
    kw = dict(k=3, insertion="all")
    lo, mid = NoveltyArchive(REF, combine="min", **kw), NoveltyArchive(REF, combine="mean", **kw)
    lo.add(PAST), mid.add(PAST)
    r, p = knn_mean(X, REF, 3), knn_mean(X, PAST, 3)
    assert lo.novelty(X) == pytest.approx(np.minimum(r, p), abs=1e-5)
    assert mid.novelty(X) == pytest.approx((r + p) / 2, abs=1e-5)


def test_hamming_on_integer_grids():
    grids = RNG.integers(0, 13, size=(20, 14, 10), dtype=np.int8)
    a = NoveltyArchive(grids, k=1, metric="hamming")
    assert a.novelty(grids[:4], "reference") == pytest.approx(0.0)
    other = grids[:1].copy()
    other[0, 0, :5] = (other[0, 0, :5] + 1) % 13  # 5 of 140 tiles changed
    assert a.novelty(other, "reference")[0] == pytest.approx(5 / 140)


def test_exact_duplicate_has_zero_novelty():
    a = NoveltyArchive(np.repeat(REF[:1], 3, axis=0), k=3, insertion="all")
    assert a.novelty(REF[:1], "reference")[0] == pytest.approx(0.0, abs=1e-6)
    b = NoveltyArchive(None, k=1, insertion="all")
    b.add(PAST)
    assert b.novelty(PAST[7:9], "archive") == pytest.approx([0.0, 0.0], abs=1e-6)


def test_within_batch_counts_other_samples_not_self():
    a = NoveltyArchive(None, k=1)
    twins = np.vstack([X[:1], X[:1], X[1:2]])
    nov = a.novelty(twins, "archive", within_batch=True)
    assert nov[:2] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert nov[2] == pytest.approx(np.linalg.norm(X[1] - X[0]), rel=1e-5)
    assert np.isnan(a.novelty(X[:1], "archive", within_batch=True)).all()  # nothing to compare


def test_fewer_points_than_k_uses_all_and_empty_is_nan():
    a = NoveltyArchive(None, k=10, insertion="all")
    assert np.isnan(a.novelty(X)).all()
    a.add(PAST[:3])
    assert a.novelty(X, "archive") == pytest.approx(knn_mean(X, PAST[:3], 3), abs=1e-5)


def test_insert_all_and_fifo_eviction_keeps_newest():
    a = NoveltyArchive(None, capacity=5, insertion="all", eviction="fifo")
    rows = np.arange(8, dtype=float)[:, None] * np.ones((1, 2))
    assert a.add(rows).all()
    assert len(a) == 5
    assert a.archive[:, 0].tolist() == [3, 4, 5, 6, 7]  # oldest first


def test_random_eviction_is_seeded_and_keeps_capacity():
    rows = np.arange(30, dtype=float)[:, None] * np.ones((1, 2))
    kept = []
    for _ in range(2):
        a = NoveltyArchive(None, capacity=10, insertion="all", eviction="random", seed=3)
        a.add(rows)
        kept.append(sorted(a.archive[:, 0].tolist()))
    assert kept[0] == kept[1] and len(kept[0]) == 10
    assert kept[0] != list(range(20, 30))  # not FIFO: some old rows survive


def test_random_insertion_probability_and_seed():
    rows = RNG.normal(size=(2000, 2))
    a = NoveltyArchive(None, capacity=5000, insertion="random", p_insert=0.25, seed=1)
    mask = a.add(rows)
    assert 400 < mask.sum() < 600 and len(a) == mask.sum()
    b = NoveltyArchive(None, capacity=5000, insertion="random", p_insert=0.25, seed=1)
    assert (b.add(rows) == mask).all()


def test_threshold_rule_inserts_only_above_threshold():
    a = NoveltyArchive(np.zeros((1, 2)), k=1, insertion="threshold", threshold=1.0, adapt_window=None)
    pts = np.array([[0.5, 0.0], [2.0, 0.0], [0.0, -3.0]])
    mask = a.add(pts, novelty=a.novelty(pts, "reference"))
    assert mask.tolist() == [False, True, True]


def test_threshold_starts_at_first_median_and_empty_memory_inserts_everything():
    a = NoveltyArchive(None, k=1, insertion="threshold", threshold=None)
    assert a.add(X[:1]).all() and a.threshold is None  # nothing to compare: new by definition
    a.add(PAST[:9])
    assert a.threshold is not None and a.threshold > 0


def test_threshold_adapts_up_when_many_and_down_when_none_inserted():
    up = NoveltyArchive(None, k=1, insertion="threshold", threshold=1e-3, adapt_window=10,
                        raise_above=4, raise_factor=1.2)
    up.add(RNG.normal(size=(10, 2)) * 10)
    assert up.threshold == pytest.approx(1.2e-3)
    down = NoveltyArchive(np.zeros((1, 2)), k=1, insertion="threshold", threshold=100.0,
                          adapt_window=10, lower_factor=0.95)
    down.add(RNG.normal(size=(10, 2)))
    assert down.threshold == pytest.approx(95.0) and len(down) == 0


def test_state_dict_round_trip_continues_identically(tmp_path):
    def build():
        return NoveltyArchive(REF, k=4, capacity=20, insertion="random", p_insert=0.5,
                              eviction="random", seed=7)
    a = build()
    a.add(PAST)
    b = build()
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.archive, b.archive)
    # same slots, stamps and RNG: the next insertions and evictions match
    assert (a.add(X) == b.add(X)).all()
    np.testing.assert_array_equal(a.archive, b.archive)
    path = a.save(tmp_path / "archive.npz")
    c = NoveltyArchive.load(path)
    np.testing.assert_array_equal(a.archive, c.archive)
    assert c.novelty(X) == pytest.approx(a.novelty(X))
    assert (a.add(PAST[:10]) == c.add(PAST[:10])).all()


def test_reset_empties_archive_but_keeps_reference():
    a = NoveltyArchive(REF, k=2, insertion="all", threshold=0.5)
    a.add(PAST)
    a.threshold = 9.0
    a.reset()
    assert len(a) == 0 and a.threshold == 0.5
    assert np.isfinite(a.novelty(X, "reference")).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(metric="manhattan"), r"metric='manhattan'.*euclidean"),
    (dict(insertion="sometimes"), r"insertion='sometimes'"),
    (dict(eviction="lifo"), r"eviction='lifo'.*fifo"),
    (dict(k=0), r"k=0 must be an integer >= 1"),
    (dict(p_insert=1.5), r"p_insert=1.5"),
    (dict(threshold=-1.0), r"threshold=-1.0"),
    (dict(combine="max"), r"combine='max'.*pooled"),
])
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(NoveltyConfigError, match=match):
        NoveltyArchive(None, **kwargs)


def test_dimension_mismatch_shows_shapes():
    a = NoveltyArchive(REF)
    with pytest.raises(NoveltyConfigError, match=r"rows have 3 values but this archive holds 8-value rows \(shape \(2, 3\)\)"):
        a.novelty(np.zeros((2, 3)))
    with pytest.raises(NoveltyConfigError, match=r"shape \(8,\)"):
        a.novelty(np.zeros(8))


def test_reward_scores_inserts_and_keeps_none():
    rew = NoveltyReward(NoveltyArchive(None, k=1, insertion="all"))
    assert rew([X[0]]) == [None]  # nothing to compare with yet; the sample goes in
    vals = rew([X[0], X[1]])
    assert vals[0] == pytest.approx(0.0, abs=1e-6)  # duplicate of the archived sample
    assert vals[1] > 0 and len(rew.archive) == 3
    frozen = NoveltyReward(NoveltyArchive(REF, k=1), update=False)
    frozen(list(X))
    assert len(frozen.archive) == 0


def test_reward_with_embed_and_in_reward_set_state_round_trip():
    def embed(texts):  # module-level-like: characters counted as a 2-d feature
        return np.array([[t.count("a"), t.count("b")] for t in texts], dtype=float)
    rew = NoveltyReward({"k": 1, "insertion": "all"}, embed=embed)
    rs = RewardSet([Term("novelty", rew)])
    res = rs(["aa", "aab", "bbbb"])
    assert res.terms["novelty"] == pytest.approx([1.0, 1.0, np.sqrt(2**2 + 3**2)])
    state = rs.state_dict()
    rs.reset()
    assert len(rew.archive) == 0
    rs.load_state_dict(state)
    assert len(rew.archive) == 3
    with pytest.raises(NoveltyConfigError, match="embed returned 1 rows for 2 samples"):
        NoveltyReward(embed=lambda s: np.zeros((1, 2)))(["a", "b"])


def test_reward_is_deterministic():
    def run():
        rew = NoveltyReward(NoveltyArchive(REF, k=3, insertion="random", capacity=10, seed=2,
                                           eviction="random"))
        return [rew(list(PAST[i:i + 8])) for i in range(0, 40, 8)]
    assert run() == run()


def test_hamming_over_small_integers_uses_exact_popcount_path():
    """n_values switches integer rows to faiss' packed one-hot codes; distances equal sklearn's."""
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 13, (300, 14 * 16))
    past = rng.integers(0, 13, (50, 14 * 16))
    X = np.concatenate([ref[:3], rng.integers(0, 13, (5, 14 * 16))])
    fast = NoveltyArchive(ref, k=3, metric="hamming", n_values=13, insertion="all")
    slow = NoveltyArchive(ref, k=3, metric="hamming", insertion="all")
    for a in (fast, slow):
        a.add(past)
    for against in ("reference", "archive", "both"):
        np.testing.assert_allclose(fast.novelty(X, against=against), slow.novelty(X, against=against))
    assert fast.novelty(ref[:1], against="reference")[0] == pytest.approx(ref[:1].size and np.sort(
        (ref[1:] != ref[0]).mean(1))[:2].sum() / 3)
    clone = NoveltyArchive(ref, k=3, metric="hamming", n_values=13)
    clone.load_state_dict(fast.state_dict())
    np.testing.assert_allclose(clone.novelty(X, against="archive"), fast.novelty(X, against="archive"))
    with pytest.raises(NoveltyConfigError, match="n_values=13 applies to metric='hamming'"):
        NoveltyArchive(ref, metric="euclidean", n_values=13)
