"""TRL adapter: reward modules and reward sets as GRPOTrainer reward_funcs, with real GRPO steps."""

import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

from rlcreate.rewards import RewardModule, RewardSet, Term, register
from rlcreate.rewards.diversity import DistinctNReward
from rlcreate.rewards.trl_adapter import TRLRewardFunc, message_text, trl_reward_funcs, trl_reward_weights

WORDS = "the cat dog sat ran on a mat big small red blue and".split()


class WordCount(RewardModule):
    """Words in the completion / 10; records every call. Range [0, inf). Gamed by padding."""

    def __init__(self, name=None):
        super().__init__(name)
        self.calls = []

    def score(self, samples, **context):
        self.calls.append((list(samples), context))
        return [len(s.split()) / 10 if s.strip() else None for s in samples]


def test_one_function_per_term_named_and_weighted():
    rs = RewardSet([Term("words", WordCount(), weight=2.0),
                    Term("distinct", DistinctNReward(1), weight=0.5, transform={"clip": [0, 0.9]})])
    funcs = trl_reward_funcs(rs)
    assert [f.__name__ for f in funcs] == ["words", "distinct"]
    assert trl_reward_weights(rs) == [2.0, 0.5]
    out = funcs[1](prompts=["p", "p"], completions=["a a b", "x y z"], completion_ids=[[1], [2]])
    assert out == pytest.approx([2 / 3, 0.9])  # the term's transform applies
    single = trl_reward_funcs(WordCount(name="wc"))
    assert [f.__name__ for f in single] == ["wc"] and trl_reward_weights(WordCount()) == [1.0]


def test_conversational_completions_and_context_reach_the_module():
    wc = WordCount()
    (f,) = trl_reward_funcs(wc)
    prompts = [[{"role": "user", "content": "tell a story"}]] * 2
    completions = [[{"role": "assistant", "content": "one two three"}],
                   [{"role": "assistant", "content": [{"type": "text", "text": "four five"}]}]]
    out = f(prompts=prompts, completions=completions, completion_ids=[[1, 2, 3], [4, 5]],
            topic=["cats", "dogs"])
    assert out == pytest.approx([0.3, 0.2])
    samples, ctx = wc.calls[-1]
    assert samples == ["one two three", "four five"]
    assert ctx["prompts"] == ["tell a story"] * 2 and ctx["topic"] == ["cats", "dogs"]
    assert ctx["raw_completions"] is completions and ctx["completion_ids"] == [[1, 2, 3], [4, 5]]


def test_none_is_kept():
    (f,) = trl_reward_funcs(WordCount())
    assert f(prompts=["p", "p"], completions=["", "a b"], completion_ids=None) == [None, pytest.approx(0.2)]


def test_scheduled_weight_is_applied_inside_the_function():
    class State:  # the two TrainerState fields the adapter reads
        global_step, max_steps = 5, 10

    rs = RewardSet([Term("words", WordCount(), weight={"schedule": "linear", "start": 0.0, "end": 1.0})])
    assert trl_reward_weights(rs) == [1.0]
    (f,) = trl_reward_funcs(rs)
    assert f(prompts=["p"], completions=["a b"], trainer_state=State()) == pytest.approx([0.5 * 0.2])
    assert f(prompts=["p"], completions=["a b"]) == pytest.approx([0.0])  # progress 0 without a state


def test_picklable_and_message_text_errors():
    funcs = trl_reward_funcs(RewardSet([Term("distinct", DistinctNReward(2))]))
    clone = pickle.loads(pickle.dumps(funcs[0]))
    assert isinstance(clone, TRLRewardFunc) and clone.__name__ == "distinct"
    assert clone(prompts=["p"], completions=["a b a b"]) == pytest.approx([2 / 3])
    with pytest.raises(TypeError, match="got int"):
        message_text(3)
    with pytest.raises(TypeError, match="without completions="):
        funcs[0](prompts=["p"])


def test_rewards_package_and_adapter_do_not_import_trl():
    code = ("import sys, rlcreate.rewards, rlcreate.rewards.trl_adapter, rlcreate.rewards.novelty, "
            "rlcreate.rewards.diversity; "
            "bad = [m for m in ('trl', 'gymnasium', 'stable_baselines3') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _tiny_lm():
    """A 1-layer GPT-2 with random weights and an offline word-level tokenizer (no hub access)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>"] + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                        unk_token="<unk>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_layer=1, n_head=2, n_embd=32, n_positions=64,
                        bos_token_id=1, eos_token_id=1, pad_token_id=0)
    return GPT2LMHeadModel(config), tokenizer


@pytest.mark.parametrize("trainer_name", ["GRPO", "RLOO"])
def test_real_trainer_steps_log_each_term(tmp_path, trainer_name):
    """Two real optimisation steps; about 15 s here, nearly all of it importing trl."""
    import trl
    from datasets import Dataset

    Config, Trainer = getattr(trl, f"{trainer_name}Config"), getattr(trl, f"{trainer_name}Trainer")

    model, tokenizer = _tiny_lm()
    words, distinct = WordCount(), DistinctNReward(1, mode="unique")
    rs = RewardSet([Term("words", words, weight=1.0), Term("distinct", distinct, weight=0.5)])
    data = Dataset.from_dict({"prompt": ["the cat", "a dog", "the big mat", "red and blue"],
                              "topic": ["cats", "dogs", "mats", "colours"]})
    args = Config(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                      num_generations=4, max_completion_length=6, learning_rate=1e-3,
                      logging_steps=1, report_to="none", bf16=False, use_cpu=True,
                      gradient_checkpointing=False, save_strategy="no", seed=0,
                      beta=0.0,  # no KL: RLOO would otherwise reload a reference model by hub id
                      reward_weights=trl_reward_weights(rs))
    trainer = Trainer(model=model, processing_class=tokenizer, reward_funcs=trl_reward_funcs(rs),
                          args=args, train_dataset=data)
    start = time.perf_counter()
    trainer.train()
    print(f"2 {trainer_name} steps on a tiny GPT-2: {time.perf_counter() - start:.1f} s")

    logged = {k for entry in trainer.state.log_history for k in entry}
    for name in ("words", "distinct"):
        assert f"rewards/{name}/mean" in logged and f"rewards/{name}/std" in logged
    assert len(words.calls) >= 2  # once per generation batch
    samples, ctx = words.calls[0]
    assert len(samples) == 4 and all(isinstance(s, str) for s in samples)
    assert ctx["topic"][0] in {"cats", "dogs", "mats", "colours"}  # dataset columns pass through
    # the logged mean is what the module returned (None -> NaN, left out of TRL's nanmean)
    first = next(e for e in trainer.state.log_history if "rewards/words/mean" in e)
    vals = [v for v in words.score(samples) if v is not None]
    if vals:
        assert first["rewards/words/mean"] == pytest.approx(float(np.mean(vals)), abs=1e-6)


@register("share_the_cat")
def share_the_cat(samples, **context):
    """Share of the completion's words that are 'the' or 'cat'. Range [0, 1]. Gamed by repeating them."""
    return [sum(w in ("the", "cat") for w in s.split()) / max(len(s.split()), 1) for s in samples]


def test_module_function_and_set_take_trls_keyword_call():
    conv = [[{"role": "assistant", "content": "the cat sat"}], [{"role": "assistant", "content": "a dog"}]]
    prompts = [[{"role": "user", "content": "p"}]] * 2
    assert WordCount()(prompts=prompts, completions=conv) == pytest.approx([0.3, 0.2])
    assert share_the_cat(prompts=prompts, completions=conv) == pytest.approx([2 / 3, 0.0])
    assert share_the_cat(["the cat"]) == [1.0]  # the plain call still works
    logged = {}
    rs = RewardSet([Term("words", WordCount(), weight=2.0), Term("share", share_the_cat)])
    out = rs(prompts=prompts, completions=conv, log_metric=lambda k, v: logged.__setitem__(k, v))
    assert out == pytest.approx([2 * 0.3 + 2 / 3, 2 * 0.2])
    assert logged == pytest.approx({"rewards/words/mean": 0.25, "rewards/share/mean": 1 / 3})
    assert rs(["the cat"]).total.tolist() == pytest.approx([2 * 0.2 + 1.0])  # RewardResult as before
    clone = pickle.loads(pickle.dumps(share_the_cat))  # the decorated name pickles by reference
    assert clone(["cat dog"]) == [0.5]


def test_objects_passed_directly_to_grpo_trainer_take_a_real_step(tmp_path):
    """A RewardModule, an @register'ed function and a RewardSet (with a group reward) given to
    GRPOTrainer as they are, no adapter: two real steps, each logged, groups = num_generations."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rlcreate.rewards.group import GroupReward

    class GroupSizes(GroupReward):
        """Size of the sample's group (records groups). Range [1, n]. A probe, not a reward."""

        def __init__(self):
            super().__init__("group_sizes")
            self.sizes = []

        def score_group(self, samples, **context):
            self.sizes.append(len(samples))
            return [0.0] * len(samples)

    model, tokenizer = _tiny_lm()
    words, sizes = WordCount(name="words"), GroupSizes()
    rs = RewardSet([Term("distinct", DistinctNReward(1), weight=0.5), Term("group_sizes", sizes)])
    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in
                                         ("the cat", "a dog", "the big mat", "red and blue")]})
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=6, learning_rate=1e-3, logging_steps=1, report_to="none",
                      bf16=False, use_cpu=True, gradient_checkpointing=False, save_strategy="no", seed=0, beta=0.0)
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, args=args, train_dataset=data,
                          reward_funcs=[words, share_the_cat, rs])
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    for key in ("rewards/words/mean", "rewards/share_the_cat/mean", "rewards/reward_set/mean",
                "rewards/distinct/mean", "rewards/group_sizes/mean"):
        assert key in logged, key
    samples, ctx = words.calls[0]
    assert len(samples) == 4 and all(isinstance(s, str) for s in samples)
    assert sorted(ctx["group_ids"]) == [0, 0, 1, 1]  # 2 prompts x num_generations=2, from identical prompts
    assert sizes.sizes and set(sizes.sizes) == {2}  # each GRPO group (2 completions of one prompt) whole
