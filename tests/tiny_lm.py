"""A tiny offline causal LM for tests: a 1-layer random GPT-2 and a word-level tokenizer
(64 tokens ``<unk> <pad> <eos> w0..w60``; EOS id 2, PAD id 1). No hub access."""

from __future__ import annotations

from pathlib import Path

WORDS = ["<unk>", "<pad>", "<eos>"] + [f"w{i}" for i in range(61)]


def tiny_lm(seed: int = 0):
    """``(model, tokenizer)``: random weights from ``seed``, in eval mode."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(WORDS), n_layer=1, n_embd=32, n_head=2, n_positions=256,
                     eos_token_id=2, bos_token_id=2, pad_token_id=1)
    return GPT2LMHeadModel(cfg).eval(), tok


def tiny_lm_folder(folder: Path, seed: int = 0) -> Path:
    """The same model saved like any local model folder (``from_pretrained`` loads it)."""
    model, tok = tiny_lm(seed)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
