"""Reward core: contract checks, composition, transforms, schedules, registry, import isolation."""

import math
import subprocess
import sys

import numpy as np
import pytest

import rlcreate.rewards as R
from rlcreate.rewards import (
    Clip,
    RecipeValueError,
    RewardModule,
    RewardSet,
    RewardValueError,
    RunningNorm,
    SweetSpot,
    Term,
    UnknownRewardError,
    get_reward,
    register,
)


class Length(RewardModule):
    """len(text) / 10. Range [0, inf). Gamed by padding."""

    def score(self, samples, **context):
        return [len(s) / 10 for s in samples]


class Const(RewardModule):
    def __init__(self, values, name=None):
        super().__init__(name)
        self.values = values

    def score(self, samples, **context):
        return list(self.values)


def test_weighted_total_and_terms():
    rs = RewardSet([Term("len", Length(), weight=2.0), Term("c", Const([1.0, None]), weight=-1.0)])
    res = rs(["abcde", "ab"])
    assert res.total == pytest.approx([2 * 0.5 - 1.0, 2 * 0.2 + 0.0])
    assert res.terms["len"] == pytest.approx([0.5, 0.2])
    assert math.isnan(res.terms["c"][1]) and res.raw["c"] == [1.0, None]
    assert res.per_sample(0) == {"len": 0.5, "c": 1.0}


def test_wrong_number_of_values_names_module():
    rs = RewardSet([Term("short", Const([1.0]))])
    with pytest.raises(RewardValueError, match=r"reward 'short' returned 1 values for a batch of 2"):
        rs(["a", "b"])


def test_nonfinite_policies():
    bad = Const([1.0, float("nan"), float("inf")], name="bad")
    with pytest.raises(RewardValueError, match=r"reward 'bad' returned non-finite value nan for sample 1"):
        RewardSet([Term("bad", bad)])(["a", "b", "c"])
    assert RewardSet([Term("bad", bad)], nonfinite="zero")(["a", "b", "c"]).total.tolist() == [1.0, 0.0, 0.0]
    clipped = RewardSet([Term("bad", bad)], nonfinite="clip")(["a", "b", "c"]).total
    assert clipped[1] == 0.0 and clipped[2] == 1e6
    with pytest.raises(RecipeValueError, match="nonfinite = 'ignore'"):
        RewardSet([Term("bad", bad)], nonfinite="ignore")


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), "heavy", None, True])
def test_weight_must_be_finite_number(weight):
    with pytest.raises(RecipeValueError, match=r"rewards\.len\.weight = .* is not a finite number"):
        Term("len", Length(), weight=weight)


def test_sweet_spot_is_inverted_u():
    t = SweetSpot(target=0.5, width=0.1)
    v = t(np.array([0.2, 0.4, 0.5, 0.6, 0.9]))
    assert v[2] == pytest.approx(1.0)
    assert v[1] == pytest.approx(v[3]) and v[1] < 1.0
    assert v[0] < v[1] and v[4] < v[3]
    tri = SweetSpot(0.5, 0.1, shape="triangle")(np.array([0.5, 0.55, 0.7]))
    assert tri == pytest.approx([1.0, 0.5, 0.0])
    with pytest.raises(RecipeValueError, match="width = 0 must be > 0"):
        SweetSpot(0.5, 0)


def test_running_norm_standardises_and_saves_state():
    rng = np.random.default_rng(0)
    norm = RunningNorm(clip=10)
    for _ in range(50):
        norm(rng.normal(5.0, 2.0, size=64))
    out = norm(np.array([5.0, 7.0]))
    assert out == pytest.approx([0.0, 1.0], abs=0.1)
    copy = RunningNorm()
    copy.load_state_dict(norm.state_dict())
    assert copy.mean == norm.mean and copy.count == norm.count
    assert Clip(-1, 1)(np.array([-3.0, 0.5, 3.0])).tolist() == [-1.0, 0.5, 1.0]
    # a damaged state is refused on load, not met later as a sqrt error or silently NaN terms
    from rlcreate.errors import UserError

    for bad, word in (({"m2": -5.0}, "m2"), ({"mean": float("nan")}, "mean"), ({"count": -1}, "count")):
        with pytest.raises(UserError, match=word):
            RunningNorm().load_state_dict({**norm.state_dict(), **bad})


def test_transform_specs_from_recipes():
    term = Term("x", Length(), transform=[{"sweet_spot": {"target": 0.3, "width": 0.1}}, {"clip": [0, 0.9]}])
    vals = RewardSet([term])(["abc"]).terms["x"]
    assert vals == pytest.approx([0.9])
    with pytest.raises(RecipeValueError, match="unknown transform 'sweetspot'.*Did you mean 'sweet_spot'"):
        Term("x", Length(), transform={"sweetspot": {"target": 0.3, "width": 0.1}})


def test_weight_schedules():
    lin = R.make_weight({"schedule": "linear", "start": 0.0, "end": 1.0, "until": 0.5})
    assert [lin(p) for p in (0, 0.25, 0.5, 1.0)] == pytest.approx([0, 0.5, 1, 1])
    cos = R.make_weight({"schedule": "cosine", "start": 1.0, "end": 0.0})
    assert cos(0.5) == pytest.approx(0.5) and cos(1.0) == pytest.approx(0.0)
    step = R.make_weight({"schedule": "step", "start": 0.0, "end": 2.0, "at": 0.3})
    assert (step(0.2), step(0.3)) == (0.0, 2.0)
    rs = RewardSet([Term("len", Length(), weight={"schedule": "linear", "start": 0, "end": 1})])
    assert rs(["aaaaaaaaaa"], progress=0.5).total == pytest.approx([0.5])
    with pytest.raises(RecipeValueError, match="unknown schedule keys"):
        R.make_weight({"schedule": "linear", "stop": 1})


def test_registry_decorator_dotted_path_and_suggestions():
    @register("test_len_reward")
    class TestLen(Length):
        pass

    @register
    def test_upper_ratio(samples, **context):
        return [sum(c.isupper() for c in s) / max(len(s), 1) for s in samples]

    assert get_reward("test_len_reward").name == "test_len_reward"
    assert get_reward("test_upper_ratio")(["AB", "ab"]) == [1.0, 0.0]
    assert get_reward("tests.test_reward_core:Length")(["abc"]) == [0.3]
    with pytest.raises(UnknownRewardError, match="unknown reward 'test_len_rewrd'. Did you mean 'test_len_reward'"):
        get_reward("test_len_rewrd")
    with pytest.raises(UnknownRewardError, match="cannot import module 'no_such_pkg.mod'"):
        get_reward("no_such_pkg.mod:fn")
    with pytest.raises(ValueError, match="already registered"):
        register("test_len_reward")(Const)
    # arguments a function or a ready-made instance cannot take are an error, never silently dropped
    with pytest.raises(TypeError, match=r"'test_upper_ratio' is a function, which takes no arguments \(got \['k'\]\)"):
        get_reward("test_upper_ratio", k=2)
    register("test_const_instance")(Const([1.0]))
    assert get_reward("test_const_instance")(["a"]) == [1.0]
    with pytest.raises(TypeError, match="'test_const_instance' is an instance, which takes no arguments"):
        get_reward("test_const_instance", values=[2.0])


def test_state_dict_round_trip_through_reward_set():
    rs = RewardSet([Term("len", Length(), transform="normalize")])
    rs(["a", "abc", "abcdef"])
    state = rs.state_dict()
    rs2 = RewardSet([Term("len", Length(), transform="normalize")])
    rs2.load_state_dict(state)
    assert rs2.terms[0].transform.state_dict() == rs.terms[0].transform.state_dict()
    rs2.reset()
    assert rs2.terms[0].transform.count == 0


def test_rewards_import_isolation():
    code = ("import sys, rlcreate.rewards, rlcreate.rewards.registry; "
            "rlcreate.rewards.available_rewards(); "
            "bad = [m for m in ('gymnasium', 'stable_baselines3', 'trl') if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"rlcreate.rewards imported {proc.stdout.strip()} {proc.stderr[-2000:]}"
