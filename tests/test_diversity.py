"""Diversity metrics and reward modules: known answers for distinct-n, self-BLEU and Vendi."""

import numpy as np
import pytest

from rlcreate.rewards import RewardSet, Term, get_reward
from rlcreate.rewards.diversity import (
    DistinctNReward,
    DiversityInputError,
    SelfBLEUDiversity,
    VendiContribution,
    distinct_n,
    one_hot_flatten,
    self_bleu,
    vendi_score,
)

TEXTS = ["the cat sat", "the cat ran", "a dog ran"]


def test_distinct_n_known_values():
    # unigrams: the cat sat the cat ran a dog ran -> 9 total, 6 unique
    assert distinct_n(TEXTS, 1) == pytest.approx(6 / 9)
    # bigrams: the-cat, cat-sat, the-cat, cat-ran, a-dog, dog-ran -> 6 total, 5 unique
    assert distinct_n(TEXTS, 2) == pytest.approx(5 / 6)
    assert distinct_n(["x x x x"], 1) == pytest.approx(1 / 4)
    assert distinct_n(["one"], 2) == 0.0  # no bigrams at all
    assert distinct_n(["a-b c"], 1, tokenize=lambda s: s.replace("-", " ").split()) == pytest.approx(1.0)


def test_distinct_n_over_level_columns():
    flat = np.zeros((14, 6), dtype=np.int8)
    assert distinct_n([flat], 1) == pytest.approx(1 / 6)  # one column kind, six times
    varied = flat.copy()
    varied[13, ::2] = 1  # alternating ground columns: two column kinds
    assert distinct_n([varied], 1) == pytest.approx(2 / 6)
    assert distinct_n([varied], 2) == pytest.approx(2 / 5)  # (a,b) and (b,a)
    with pytest.raises(DiversityInputError, match=r"2-D.*shape \(3,\)"):
        distinct_n([np.zeros(3)], 1)


def test_self_bleu_identical_and_disjoint():
    same = ["the quick brown fox jumps over the lazy dog"] * 4
    assert self_bleu(same) == pytest.approx(100.0)
    disjoint = ["alpha beta gamma delta", "one two three four", "red green blue black"]
    assert self_bleu(disjoint) == pytest.approx(0.0)
    with pytest.raises(DiversityInputError, match="at least 2 texts, got 1"):
        self_bleu(["only one"])
    with pytest.raises(DiversityInputError, match="works on texts; got ndarray"):
        self_bleu([np.zeros((2, 2)), np.zeros((2, 2))])


def test_vendi_identical_orthogonal_and_kernel():
    assert vendi_score(np.ones((5, 3))) == pytest.approx(1.0)
    assert vendi_score(np.eye(4)) == pytest.approx(4.0)
    assert vendi_score(K=np.eye(3)) == pytest.approx(3.0)
    # two identical + one orthogonal: eigenvalues of K/3 are 2/3 and 1/3
    two_one = np.array([[1.0, 0], [1.0, 0], [0, 1.0]])
    assert vendi_score(two_one) == pytest.approx(np.exp(-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3))))
    assert vendi_score(np.eye(4), q=2) == pytest.approx(4.0)
    with pytest.raises(DiversityInputError, match="exactly one of X"):
        vendi_score()
    with pytest.raises(DiversityInputError, match=r"square.*\(2, 3\)"):
        vendi_score(K=np.ones((2, 3)))
    with pytest.raises(DiversityInputError, match="row 1 is all zeros"):
        vendi_score(np.array([[1.0, 0], [0, 0]]))


def test_vendi_runs_without_deprecation_warning_leaking():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert vendi_score(np.eye(3)) == pytest.approx(3.0)


def test_one_hot_levels_cosine_is_share_of_equal_tiles():
    a = np.zeros((14, 4), dtype=np.int8)
    b = a.copy()
    b[:7] = 2  # half the tiles differ
    X = one_hot_flatten(np.stack([a, b]), n_classes=13)
    assert X.shape == (2, 14 * 4 * 13)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert Xn[0] @ Xn[1] == pytest.approx(0.5)
    assert vendi_score(one_hot_flatten(np.stack([a, a, a]))) == pytest.approx(1.0)
    with pytest.raises(DiversityInputError, match="out of range for n_classes=2"):
        one_hot_flatten(np.stack([b]), n_classes=2)


def test_distinct_n_reward_modes():
    batch = ["a b c", "a b d", "x y"]
    assert DistinctNReward(1, "sample")(["x x y", "p q"]) == pytest.approx([2 / 3, 1.0])
    assert DistinctNReward(2, "sample")(["x"]) == [None]
    # unique: share of the sample's bigrams nobody else in the batch has
    assert DistinctNReward(2, "unique")(batch) == pytest.approx([0.5, 0.5, 1.0])
    # loo: batch distinct-2 is 4/5; without "a b c" 3/3, without "x y" 3/4
    loo = DistinctNReward(2, "loo")(batch)
    assert loo == pytest.approx([0.8 - 1.0, 0.8 - 1.0, 0.8 - 0.75])
    for i in range(3):  # the same as recomputing the metric without sample i
        rest = batch[:i] + batch[i + 1:]
        assert loo[i] == pytest.approx(distinct_n(batch, 2) - distinct_n(rest, 2))
    with pytest.raises(DiversityInputError, match="mode='batch'"):
        DistinctNReward(2, "batch")


def test_self_bleu_diversity_reward():
    rew = SelfBLEUDiversity()
    vals = rew(["the cat sat on the mat", "the cat sat on the mat", "dogs run fast today", ""])
    assert vals[0] == pytest.approx(0.0) and vals[1] == pytest.approx(0.0)
    assert vals[2] == pytest.approx(1.0) and vals[3] is None
    assert rew(["alone"]) == [None]


def test_vendi_contribution_known_values():
    rew = VendiContribution()
    assert rew(list(np.eye(4))) == pytest.approx([1.0] * 4)
    assert rew([np.ones(3)] * 4) == pytest.approx([0.0] * 4, abs=1e-9)
    two_one = [np.array([1.0, 0]), np.array([1.0, 0]), np.array([0, 1.0])]
    full = vendi_score(np.stack(two_one))
    assert rew(two_one) == pytest.approx([full - 2.0, full - 2.0, full - 1.0])
    assert rew([np.ones(2)]) == [None]


def test_vendi_contribution_on_level_grids_by_name():
    rew = get_reward("vendi_contribution", embed="one_hot")
    a = np.zeros((14, 8), dtype=np.int8)
    b = np.ones((14, 8), dtype=np.int8)
    vals = rew([a, a, b])
    assert vals[2] > vals[0] and vals[0] < 0  # the lone level adds, a twin subtracts
    with pytest.raises(DiversityInputError, match="embed='minilm'"):
        VendiContribution(embed="minilm")


def test_rewards_compose_in_a_reward_set():
    rs = RewardSet([Term("distinct", DistinctNReward(1)), Term("self_bleu", SelfBLEUDiversity(), weight=0.5)])
    res = rs(["a a b", "c d e"])
    assert res.terms["distinct"] == pytest.approx([2 / 3, 1.0])
    assert res.total == pytest.approx(res.terms["distinct"] + 0.5 * res.terms["self_bleu"])


@pytest.mark.parametrize("tokenize", ["13a", "char"])
def test_self_bleu_fast_path_equals_sacrebleu_sentence_score(tokenize):
    from sacrebleu.metrics import BLEU

    from rlcreate.rewards.diversity import _self_bleu_each

    rng = np.random.default_rng(4)
    words = "the a cat dog sat ran on under mat tree big red . , !".split()
    texts = [" ".join(rng.choice(words, size=rng.integers(0, 20))) for _ in range(12)]
    bleu = BLEU(effective_order=True, tokenize=tokenize)
    expected = [bleu.sentence_score(t, texts[:i] + texts[i + 1:]).score for i, t in enumerate(texts)]
    assert _self_bleu_each(texts, tokenize) == pytest.approx(expected, abs=1e-9)
