"""Text reward modules, the sentence embedder and the shipped text data.

Fast tests use a tiny random GPT-2 with an offline word-level tokenizer for the LM-based rewards
(API, shapes, and the likelihood arithmetic checked against a plain unbatched forward). MiniLM is
loaded once per module (a few seconds). Tests that need SmolLM2's judgement are marked slow.
"""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from rlcreate.rewards.registry import available_rewards, get_reward
from rlcreate.text.data import PROMPT_SPLITS, TextDataError, prompts, reference_corpus
from rlcreate.text.rewards import (
    DULL_ANCHORS,
    ENGAGING_ANCHORS,
    EngagementProxy,
    Fluency,
    Memorization,
    Relevance,
    Surprise,
    TextNovelty,
    TextRewardError,
    as_texts,
    word_tokens,
)
from rlcreate.text.scoring import ReferenceLM, ScoringError

NATURAL = "The old fisherman rowed slowly across the bay while the sun rose behind the hills."
NOVEL = "Quantum accountants in velvet submarines audit the dreams of migrating jellyfish."


# ------------------------------------------------------------------------------ fixtures

def _word_tokenizer(words):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>", "<eos>"] + sorted(words))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<eos>")


@pytest.fixture(scope="module")
def tiny_lm():
    """A 1-layer random GPT-2 over the corpus vocabulary (no BOS: EOS starts unprompted text)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    words = {w for s in reference_corpus() + prompts("train") for w in word_tokens(s)} | {".", ","}
    tok = _word_tokenizer(words)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=32, n_head=2, n_positions=512,
                     eos_token_id=2, bos_token_id=2, pad_token_id=1)
    return GPT2LMHeadModel(cfg).eval(), tok


@pytest.fixture(scope="module")
def ref_lm(tiny_lm):
    return ReferenceLM(*tiny_lm, batch_size=3)


@pytest.fixture(scope="module")
def embedder():
    from rlcreate.text.embed import default_embedder
    return default_embedder()


def _manual_stats(model, tok, context_ids, completion):
    """Unbatched, unpadded reference computation of per-token log-probs and entropies."""
    import torch
    comp = tok(completion, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([list(context_ids) + comp])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
    rows = logp[len(context_ids) - 1:len(context_ids) - 1 + len(comp)]
    lp = rows[torch.arange(len(comp)), torch.tensor(comp)]
    ent = -(rows.exp() * rows).sum(-1)
    return lp.numpy(), ent.numpy()


# ------------------------------------------------------------------------------ data

def test_shipped_corpus_and_prompt_sets():
    corpus = reference_corpus()
    assert 300 <= len(corpus) <= 5000 and len(set(corpus)) == len(corpus)
    assert all(s == s.strip() and s for s in corpus)
    train, held, dev, test = prompts("train"), prompts("heldout"), prompts("dev"), prompts("test")
    assert (len(train), len(dev), len(test)) == (40, 20, 30)
    assert held == dev  # the older name of the dev split keeps working
    assert not set(train) & set(dev) and not set(train) & set(test) and not set(dev) & set(test)
    assert len(set(test)) == len(test)
    assert PROMPT_SPLITS == ("train", "dev", "test", "heldout", "forms_train", "forms_dev", "forms_test")


def test_unknown_prompt_split_suggests_the_right_one():
    with pytest.raises(TextDataError, match=r"held_out.*Did you mean 'heldout'"):
        prompts("held_out")


def test_conversational_samples_become_text():
    msgs = [[{"role": "assistant", "content": "Hello there."}], "plain"]
    assert as_texts(msgs) == ["Hello there.", "plain"]
    with pytest.raises(TextRewardError, match="wrap it"):
        as_texts("a single string")
    with pytest.raises(TextRewardError, match="completion 0 is a int"):
        as_texts([3])


def test_text_rewards_are_registered():
    names = set(available_rewards())
    assert {"text_novelty", "fluency", "surprise", "relevance", "memorization",
            "engagement_proxy", "distinct_n", "self_bleu_diversity"} <= names


# ------------------------------------------------------------------------------ reference LM

def test_batched_left_padded_scores_match_unbatched_forward(tiny_lm, ref_lm):
    model, tok = tiny_lm
    completions = [NATURAL, "the sea .", "a gull stood on the lamp post as if it had been hired",
                   "rain", NATURAL + " " + NATURAL]
    stats = ref_lm.token_stats(completions)
    for text, s in zip(completions, stats):
        lp, ent = _manual_stats(model, tok, [tok.eos_token_id], text)
        assert s.n == len(lp)
        np.testing.assert_allclose(s.logprobs, lp, atol=1e-4)
        np.testing.assert_allclose(s.entropies, ent, atol=1e-4)


def test_prompt_is_context_and_only_completion_tokens_are_scored(tiny_lm, ref_lm):
    model, tok = tiny_lm
    prompt = "Describe a harbour at dawn."
    s_prompted = ref_lm.token_stats([NATURAL], prompts=[prompt])[0]
    ctx = tok(prompt, add_special_tokens=True)["input_ids"]
    lp, _ = _manual_stats(model, tok, ctx, NATURAL)
    np.testing.assert_allclose(s_prompted.logprobs, lp, atol=1e-4)
    s_plain = ref_lm.token_stats([NATURAL])[0]
    assert s_plain.n == s_prompted.n and not np.allclose(s_plain.logprobs, s_prompted.logprobs)


def test_repeated_pairs_hit_the_cache(tiny_lm):
    lm = ReferenceLM(*tiny_lm)
    lm.token_stats([NATURAL, NATURAL, "the sea ."])
    assert lm.sequences_scored == 2
    Fluency(lm)([NATURAL])
    Surprise(lm)([NATURAL, "the sea ."])  # fluency and surprise share one forward pass
    assert lm.sequences_scored == 2


def test_reference_lm_rejects_half_a_model(tiny_lm):
    with pytest.raises(ScoringError, match="both model and tokenizer"):
        ReferenceLM(tiny_lm[0])
    with pytest.raises(ScoringError, match="batch_size=0"):
        ReferenceLM(*tiny_lm, batch_size=0)


# ------------------------------------------------------------------------------ fluency / surprise

def test_fluency_is_rescaled_mean_logprob(tiny_lm, ref_lm):
    model, tok = tiny_lm
    fl = Fluency(ref_lm, floor_nats=8.0)
    texts = [NATURAL, "the sea .", ""]
    vals = fl(texts)
    assert len(vals) == 3 and vals[2] is None  # nothing to score in an empty completion
    for text, v in zip(texts[:2], vals):
        lp, _ = _manual_stats(model, tok, [tok.eos_token_id], text)
        assert v == pytest.approx(np.clip(1 + lp.mean() / 8.0, 0, 1), abs=1e-4)
    assert fl(texts) == vals  # deterministic
    with pytest.raises(TextRewardError, match="floor_nats=-1"):
        Fluency(ref_lm, floor_nats=-1)


def test_surprise_measures(tiny_lm, ref_lm):
    model, tok = tiny_lm
    lp, ent = _manual_stats(model, tok, [tok.eos_token_id], NATURAL)
    assert Surprise(ref_lm)([NATURAL])[0] == pytest.approx(float((-lp - ent).mean()), abs=1e-4)
    assert Surprise(ref_lm, measure="surprisal")([NATURAL, ""]) == [pytest.approx(float(-lp.mean()), abs=1e-4), None]
    with pytest.raises(TextRewardError, match="measure='entropy'.*excess"):
        Surprise(ref_lm, measure="entropy")


def test_prompt_count_must_match(ref_lm):
    with pytest.raises(TextRewardError, match="2 prompts for 3 completions"):
        Fluency(ref_lm)(["a", "b", "c"], prompts=["p", "q"])


def test_lm_rewards_pickle_without_their_model():
    fl = Fluency("some/model/folder", floor_nats=6.0)  # nothing loads until the first score
    clone = pickle.loads(pickle.dumps(fl))
    assert clone.floor_nats == 6.0 and clone.name == "fluency" and clone._lm is None


# ------------------------------------------------------------------------------ memorization

def test_memorization_of_copied_and_novel_text():
    mem = get_reward("memorization")
    copied = reference_corpus()[10]
    vals = mem([copied, NOVEL, copied.upper().replace(",", ""), ""])
    assert vals[0] == -1.0 and vals[2] == -1.0  # case and punctuation do not hide a copy
    assert vals[1] == 0.0 and vals[3] == 0.0


def test_memorization_scales_with_the_copied_run():
    mem = Memorization(corpus=["one two three four five six seven eight nine ten"], min_n=4, max_n=8)
    assert mem.longest_match("zebra one two three banana") == 0   # 3 words: below min_n
    assert mem.longest_match("zebra one two three four banana") == 4
    assert mem.longest_match("x three four five six seven eight nine ten y") == 8  # capped at max_n
    assert mem(["zebra one two three four five banana"]) == [pytest.approx(-2 / 5)]


def test_memorization_settings_and_corpus_files(tmp_path):
    with pytest.raises(TextRewardError, match="max_n=3 is below min_n=4"):
        Memorization(min_n=4, max_n=3)
    path = tmp_path / "corpus.txt"
    path.write_text("a cat sat on the warm red mat today\n\n", encoding="utf-8")
    assert Memorization(corpus=str(path))(["the cat sat on the warm red mat"]) == [pytest.approx(-4 / 9)]
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(TextRewardError, match="not UTF-8"):
        Memorization(corpus=str(bad))
    with pytest.raises(TextRewardError, match="is not a file"):
        Memorization(corpus=str(tmp_path / "missing.txt"))


# ------------------------------------------------------------------------------ engagement

def test_engagement_with_a_pluggable_classifier(tmp_path, tiny_lm):
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification

    tok = tiny_lm[1]
    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=16, n_head=2, n_positions=512, num_labels=2,
                     id2label={0: "dull", 1: "engaging"}, label2id={"dull": 0, "engaging": 1})
    GPT2ForSequenceClassification(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    eng = EngagementProxy(classifier=str(tmp_path), label="engaging", batch_size=2)
    texts = [NATURAL, "the sea .", NOVEL, "rain"]
    vals = eng(texts)
    assert all(0.0 <= v <= 1.0 for v in vals) and eng(texts) == vals
    # padding inside a batch must not change a text's score
    assert eng(["the sea ."])[0] == pytest.approx(vals[1], abs=1e-5)
    with pytest.raises(TextRewardError, match=r"label='fun'.*\['dull', 'engaging'\]"):
        EngagementProxy(classifier=str(tmp_path), label="fun")
    with pytest.raises(TextRewardError, match="could not load a sequence-classification model"):
        EngagementProxy(classifier=str(tmp_path / "nope"))


# ------------------------------------------------------------------------------ MiniLM-based

def test_embedder_is_normalised_cached_and_deterministic(embedder):
    from rlcreate.text.embed import EmbedderInputError
    texts = [NATURAL, NOVEL, NATURAL]
    before = embedder.calls_encoded
    e = embedder.embed(texts)
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(e[0], e[2])
    assert embedder.calls_encoded - before <= 2
    np.testing.assert_array_equal(embedder.embed([NOVEL])[0], e[1])
    with pytest.raises(EmbedderInputError, match="wrap it"):
        embedder.embed(NATURAL)


def test_embedder_rejects_a_missing_folder(tmp_path):
    from rlcreate.text.embed import Embedder, EmbedderInputError
    with pytest.raises(EmbedderInputError, match="is not a folder"):
        Embedder(tmp_path / "no-such-model")


def test_relevance(embedder):
    rel = Relevance(embedder)
    prompt = prompts("train")[0]
    vals = rel([prompt, "A lighthouse stands alone on the rocks, its lamp still turning.",
                "Tax returns must be filed before the end of April.", ""], prompts=[prompt] * 4)
    assert vals[0] == pytest.approx(1.0, abs=1e-5)
    assert vals[1] > vals[2] + 0.2 and vals[3] is None
    chat = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]]
    assert rel([prompt], prompts=chat)[0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(TextRewardError, match="relevance needs the prompts"):
        rel(["text"])


def test_text_novelty_against_corpus_and_archive(embedder):
    corpus = reference_corpus()
    nov = TextNovelty(embedder=embedder, k=1, update=False, within_batch=False)
    copy, fresh = nov([corpus[5], NOVEL])
    assert copy == pytest.approx(0.0, abs=1e-5) and fresh > 0.5
    # the archive remembers past outputs: once seen, the same text is no longer novel
    arch = TextNovelty(reference=None, embedder=embedder, k=1, insertion="all", within_batch=False)
    assert arch([NOVEL]) == [None]  # nothing to compare against yet
    assert arch([NOVEL])[0] == pytest.approx(0.0, abs=1e-5)
    state = arch.state_dict()
    arch.reset()
    assert arch([NOVEL]) == [None]
    arch.load_state_dict(state)
    assert len(arch.archive) == 2


def test_text_novelty_default_k_orders_texts(embedder):
    nov = TextNovelty(embedder=embedder, update=False)
    corpus_line, paraphrase, unrelated = nov([reference_corpus()[0],
                                              "At sunrise the harbour lay silent except for waves hitting the boats.",
                                              "def main(): return 42 if x else None"])
    assert corpus_line < paraphrase < unrelated


def test_engagement_proxy_zero_shot(embedder):
    eng = EngagementProxy(embedder)
    texts = ["Thunder cracked; she tasted copper and rain as the burning barn groaned and the horses screamed.",
             "It was a thing. Things happened and it was fine, in general, more or less.",
             ENGAGING_ANCHORS[0], DULL_ANCHORS[1], ""]
    vals = eng(texts)
    assert vals[4] is None and all(0.0 <= v <= 1.0 for v in vals[:4])
    assert vals[0] > 0.5 > vals[1] and vals[2] > vals[3]
    assert eng(texts) == vals


# ------------------------------------------------------------------------------ SmolLM2 (slow)

@pytest.mark.slow
def test_smollm2_fluency_and_surprise_on_known_inputs():
    rng = random.Random(0)
    natural = reference_corpus()[:8]
    shuffled = [" ".join(rng.sample(s.split(), len(s.split()))) for s in natural]
    repeated = [(s + " ") * 3 for s in natural]
    fl, su = get_reward("fluency"), get_reward("surprise")
    f_nat, f_shuf = np.mean(fl(natural)), np.mean(fl(shuffled))
    assert f_nat > f_shuf + 0.15
    s_nat, s_shuf, s_rep = np.mean(su(natural)), np.mean(su(shuffled)), np.mean(su(repeated))
    assert s_rep < s_nat < s_shuf
