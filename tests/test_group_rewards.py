"""Group rewards: partitions, grouping from context (group_ids / prompts / TRL's call), DARLING's
quality x diversity, state, and group rewards inside the SB3 text environment."""

import pickle

import numpy as np
import pytest

from rlcreate.rewards import RewardModule, RewardSet, Term, get_reward
from rlcreate.rewards.base import RewardValueError, from_trl_call, group_ids_from, groups_of
from rlcreate.rewards.group import (
    GroupReward,
    GroupRewardError,
    QualityDiversity,
    diversity_from_labels,
    embedding_partition,
    greedy_partition,
)
from rlcreate.text.group_diversity import GroupDiversity, lexical_partition
from tests.tiny_lm import tiny_lm


class Words(RewardModule):
    """Words / 10 (a per-sample quality stand-in). Range [0, inf). Gamed by padding."""

    def score(self, samples, **context):
        return [len(s.split()) / 10 for s in samples]


class GroupSizes(GroupReward):
    """Records each group it is given; value = group size. Range [1, n]. Not a real reward."""

    def __init__(self):
        super().__init__("group_sizes")
        self.groups = []

    def score_group(self, samples, **context):
        self.groups.append((list(samples), context.get("prompts")))
        return [float(len(samples))] * len(samples)


# ------------------------------------------------------------------------------ partitions

def test_greedy_partition_follows_first_member_of_each_class():
    # 0~1, 1~2 but 0!~2: NoveltyBench compares with the class representative (item 0), so 2 opens a class
    same = {(0, 1), (1, 2)}
    labels = greedy_partition(3, lambda a, b: (a, b) in same or (b, a) in same)
    assert labels.tolist() == [0, 0, 1]


def test_embedding_and_lexical_partitions():
    X = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [-1.0, 0.0]])
    assert embedding_partition(X, threshold=0.9).tolist() == [0, 0, 1, 2]
    texts = ["The red fox jumps over the fence.", "A red fox jumps the fence!",
             "Whales sing in the deep cold sea.", ""]
    assert lexical_partition(texts, threshold=0.5).tolist() == [0, 0, 1, 2]


def test_diversity_from_labels_is_share_of_others_in_another_class():
    assert diversity_from_labels(np.array([0, 0, 1, 2])) == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])
    assert diversity_from_labels(np.array([0])) == [None]
    assert diversity_from_labels(np.array([0, 0, 0])) == [0.0, 0.0, 0.0]


# ------------------------------------------------------------------------------ grouping

def test_groups_from_ids_prompts_or_whole_batch():
    assert groups_of(4, {"group_ids": ["a", "b", "a", "b"]}) == [[0, 2], [1, 3]]
    assert groups_of(3, {"prompts": ["p", "q", "p"]}) == [[0, 2], [1]]
    assert groups_of(3, {}) == [[0, 1, 2]]
    with pytest.raises(RewardValueError, match="group_ids has 2 entries for a batch of 3"):
        groups_of(3, {"group_ids": [0, 1]})
    conv = [[{"role": "user", "content": "x"}]] * 2 + [[{"role": "user", "content": "y"}]]
    assert group_ids_from(conv) == [0, 0, 1]


def test_group_reward_gets_each_group_with_its_context_and_values_return_in_batch_order():
    g = GroupSizes()
    out = g(["a", "b", "c", "d", "e"], prompts=["p", "q", "p", "p", "q"])
    assert out == [3.0, 2.0, 3.0, 3.0, 2.0]
    assert g.groups == [(["a", "c", "d"], ["p", "p", "p"]), (["b", "e"], ["q", "q"])]


def test_trl_keyword_call_groups_identical_prompts():
    g = GroupSizes()
    prompts = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "tell"}]] * 3 + \
              [[{"role": "user", "content": "other"}]]
    completions = [[{"role": "assistant", "content": t}] for t in ("x", "y", "z", "w")]
    assert g(prompts=prompts, completions=completions, completion_ids=None) == [3.0, 3.0, 3.0, 1.0]
    assert g.groups[0] == (["x", "y", "z"], ["tell"] * 3)  # last user turn is the prompt text
    samples, ctx = from_trl_call("g", {"prompts": prompts, "completions": completions, "topic": [1, 2, 3, 4]})
    assert samples == ["x", "y", "z", "w"] and ctx["group_ids"] == [0, 0, 0, 1] and ctx["topic"] == [1, 2, 3, 4]
    with pytest.raises(TypeError, match="without samples"):
        g(prompts=prompts)


# ------------------------------------------------------------------------------ diversity rewards

def test_group_diversity_lexical_values_and_none_for_a_lone_sample():
    d = get_reward("group_diversity", equivalence="lexical")
    texts = ["the red fox runs", "the red fox runs fast", "a blue whale sings", "alone here"]
    out = d(texts, prompts=["a", "a", "a", "b"])
    assert out[:3] == pytest.approx([0.5, 0.5, 1.0]) and out[3] is None


def test_group_diversity_embedding_uses_the_embedder():
    class Fake:
        def embed(self, texts):  # "x..." texts point one way, others another
            return np.array([[1.0, 0.0] if t.startswith("x") else [0.0, 1.0] for t in texts])

    d = GroupDiversity(embedder=Fake(), threshold=0.9)
    assert d(["x1", "x2", "y1", "y2"], group_ids=[0, 0, 0, 0]) == pytest.approx([2 / 3] * 4)


def test_group_diversity_memory_compares_with_earlier_texts_of_the_prompt_and_round_trips():
    d = GroupDiversity(equivalence="lexical", memory=4)
    assert d(["red fox runs"], prompts=["p"]) == [None]            # nothing to compare with yet
    assert d(["red fox runs"], prompts=["p"]) == [0.0]             # a copy of what came before
    assert d(["blue whale sings"], prompts=["p"]) == [1.0]
    assert d(["blue whale sings"], prompts=["q"]) == [None]        # other prompt, other memory
    clone = GroupDiversity(equivalence="lexical", memory=4)
    clone.load_state_dict(pickle.loads(pickle.dumps(d.state_dict())))
    assert clone(["red fox runs"], prompts=["p"]) == pytest.approx([1 / 3])
    d.reset()
    assert d(["red fox runs"], prompts=["p"]) == [None]


def test_group_diversity_bad_settings():
    with pytest.raises(GroupRewardError, match="equivalence = 'cosine'"):
        GroupDiversity(equivalence="cosine")
    with pytest.raises(GroupRewardError, match=r"threshold = 1.5: must be a similarity in \(0, 1\]"):
        GroupDiversity(threshold=1.5)
    with pytest.raises(GroupRewardError, match="memory = -1"):
        GroupDiversity(memory=-1)


def test_quality_x_diversity_multiplies_and_logs_both_parts():
    logged = {}
    q = QualityDiversity(quality={"words": {"reward": "tests.test_group_rewards:Words"}},
                         diversity={"equivalence": "lexical"})
    texts = ["red fox runs", "red fox runs", "blue whale sings deep"]
    out = q(texts, prompts=["p"] * 3, log_metric=lambda k, v: logged.setdefault(k, v))
    assert out == pytest.approx([0.3 * 0.5, 0.3 * 0.5, 0.4 * 1.0])
    assert logged["rewards/quality_x_diversity/quality"] == pytest.approx(1.0 / 3)
    assert logged["rewards/quality_x_diversity/diversity"] == pytest.approx(2 / 3)
    floored = QualityDiversity(quality=Words(), diversity={"equivalence": "lexical"}, floor=0.5)
    assert floored(["a b", "a b"], prompts=["p", "p"]) == pytest.approx([0.1, 0.1])  # 0.2 * (0.5 + 0.5 * 0)
    alone = QualityDiversity(quality=Words(), diversity={"equivalence": "lexical"})
    assert alone(["a b c"], prompts=["p"]) == pytest.approx([0.3])  # no sibling: quality kept
    neg = QualityDiversity(quality=RewardSet([Term("w", Words(), weight=-1.0)]), diversity={"equivalence": "lexical"})
    assert neg(["a", "b"], prompts=["p", "p"]) == [0.0, 0.0]  # negative quality clipped, never rewards repetition
    with pytest.raises(GroupRewardError, match="floor = 2"):
        QualityDiversity(quality=Words(), floor=2)
    with pytest.raises(GroupRewardError, match="quality: name the quality terms"):
        QualityDiversity(diversity={"equivalence": "lexical"})  # no domain's terms assumed


def test_quality_x_diversity_as_a_reward_set_term_with_per_term_values():
    rs = RewardSet([Term("darling", QualityDiversity(quality=Words(), diversity={"equivalence": "lexical"})),
                    Term("groups", GroupSizes(), weight=0.0)])
    res = rs(["red fox", "red fox", "blue whale"], prompts=["p", "p", "q"])
    assert res.terms["darling"] == pytest.approx([0.0, 0.0, 0.2])  # the lone "q" text keeps its quality
    assert res.terms["groups"].tolist() == [2.0, 2.0, 1.0]


def test_quality_x_diversity_schedules_its_quality_terms_with_training_progress():
    # the quality terms' weight schedules used to stay at progress 0: nothing passed progress on
    ramp = RewardSet([Term("w", Words(), weight={"schedule": "linear", "start": 0.0, "end": 1.0})])
    qd = QualityDiversity(quality=ramp, diversity={"equivalence": "lexical"})
    rs = RewardSet([Term("darling", qd)])
    assert rs(["two words"], progress=0.0).terms["darling"] == pytest.approx([0.0])
    assert rs(["two words"], progress=1.0).terms["darling"] == pytest.approx([0.2])

    class State:  # what TRL passes: global_step / max_steps
        global_step, max_steps = 1, 2

    assert qd(prompts=["p"], completions=["two words"], trainer_state=State()) == pytest.approx([0.1])


# ------------------------------------------------------------------------------ SB3 text env

def test_group_reward_in_the_sb3_text_env_groups_texts_of_one_prompt():
    from rlcreate.text.envs import make_text_tokens_vec_env

    sizes = GroupSizes()
    rs = RewardSet([Term("groups", sizes), Term("diversity", GroupDiversity(equivalence="lexical"))])
    env = make_text_tokens_vec_env(n_envs=4, lm=tiny_lm(), reward=rs, prompts=["w1 w2", "w3"], top_k=8,
                                   max_new_tokens=3, seed=0)
    env.reset()
    infos = []
    for _ in range(3):
        _, _, dones, step_infos = env.step(np.random.default_rng(0).integers(0, 8, size=4))
        infos += [i for i in step_infos if "rewards" in i]
    assert len(infos) == 4  # every row finished at the length cap in the same step
    by_prompt = {}
    for info in infos:
        by_prompt.setdefault(info["prompt"], []).append(info)
    for group in by_prompt.values():
        assert all(i["rewards"]["groups"] == len(group) for i in group)
        assert all((np.isnan(i["rewards"]["diversity"])) == (len(group) == 1) for i in group)
    assert sorted(len(g) for g, _ in sizes.groups) == sorted(len(g) for g in by_prompt.values())
