"""Column language model: a small GPT-2 over whole level columns (one token per 14-tile column).

Vocabulary: token 0 is ``<bos>``, token 1 is ``<unk>``, tokens 2.. are the distinct columns of the
corpus' training blocks, listed in ``columns.txt`` (one column per line, 14 VGLC characters top to
bottom). One token per column instead of MarioGPT's one token per tile means one forward pass per
column (14x fewer), every generated column is internally well formed (a column that occurred in a
real level), and "choose the next column" is a natural RL action. The cost: a column never seen in
training cannot be generated, and encoding such a column needs a fallback (``oov=``).

    lm = ColumnLM.load()                                   # rlcreate/models/mario-column-lm/
    levels = lm.generate(100, batch=4, seed=0)             # (4, 14, 100) int8
    logits, state = lm.start(batch=8)                      # RL stepping API, KV cache inside
    logits, state = lm.step(state, token_ids)              # token_ids: (8,) ints

Generation masks the two special tokens (their logits are -inf), so every sampled id is a column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlcreate.errors import UserError
from rlcreate.hf_cache import cache_argument, returned_cache
from rlcreate.levels.tiles import CHAR_TO_ID, HEIGHT, TILES

__all__ = [
    "ColumnLM",
    "ColumnLMState",
    "ColumnLMError",
    "BOS_ID",
    "UNK_ID",
    "N_SPECIAL",
    "default_column_lm_path",
    "build_vocab",
    "small_gpt2",
    "ELEMENT_BIAS_TILES",
    "element_logit_offset",
]

BOS_ID, UNK_ID, N_SPECIAL = 0, 1, 2
COLUMNS_FILE = "columns.txt"
_CHARS = np.frombuffer(TILES.encode(), dtype=np.uint8)


class ColumnLMError(UserError):
    """Bad input to the column LM (unknown column, bad shape, sequence too long...)."""


#: elements a logit offset can favour, by the tiles that mark a column holding one (a coin; a
#: pipe's left top, i.e. one per pipe; a question block, with a power-up or a coin)
ELEMENT_BIAS_TILES = {"coins": "o", "pipes": "<", "question_blocks": "?Q"}


def element_logit_offset(columns: np.ndarray, bias: dict[str, float]) -> np.ndarray:
    """``(N_SPECIAL + len(columns),)`` logit offsets, one per token: the sum of ``bias[name]`` over
    the elements its column holds (0 for the special tokens). Why: sampling with pipes kept whole
    and with top-k or masks writes fewer pipes and coins than the corpus; a small offset calibrates
    the rates back. Raises ``ValueError`` naming unknown or non-numeric entries (callers turn it into
    their own user error)."""
    unknown = sorted(set(bias) - set(ELEMENT_BIAS_TILES))
    if unknown:
        raise ValueError(f"element_bias keys {unknown} are unknown; use some of {sorted(ELEMENT_BIAS_TILES)}")
    offset = np.zeros(N_SPECIAL + len(columns), np.float64)
    for name, value in bias.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ValueError(f"element_bias {name} = {value!r}: must be a finite number (a logit offset, e.g. 0.5)")
        holds = np.isin(columns, [CHAR_TO_ID[c] for c in ELEMENT_BIAS_TILES[name]]).any(axis=1)
        offset[N_SPECIAL:] += float(value) * holds
    return offset


def default_column_lm_path() -> Path:
    """Folder of the shipped column LM (package data, so it also exists in an installed wheel)."""
    return Path(__file__).resolve().parents[2] / "models" / "mario-column-lm"


def _column_text(col: np.ndarray) -> str:
    return _CHARS[col.astype(np.intp)].tobytes().decode("ascii")


def build_vocab(grids: Sequence[np.ndarray]) -> list[str]:
    """Distinct columns of ``grids`` as 14-character strings, most frequent first (ties by text)."""
    counts: dict[str, int] = {}
    for g in grids:
        for col in np.asarray(g).T:
            t = _column_text(col)
            counts[t] = counts.get(t, 0) + 1
    return sorted(counts, key=lambda t: (-counts[t], t))


def small_gpt2(
    vocab_size: int, n_positions: int = 512, n_embd: int = 128, n_layer: int = 4, n_head: int = 4, seed: int = 0
):
    """A randomly initialised GPT-2 sized for the column vocabulary (seeded)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=BOS_ID,
        eos_token_id=BOS_ID,
    )
    return GPT2LMHeadModel(cfg)


@dataclass
class ColumnLMState:
    """Decoding state of a batch: the KV cache and how many tokens it holds.

    The cache is updated in place by :meth:`ColumnLM.step`; a state is consumed by stepping it
    (keep the returned one, do not step an older state twice).
    """

    past_key_values: object
    length: int
    batch: int
    #: ``(batch, n_embd)`` float32 last-layer hidden state (after the final norm) at the last
    #: position, filled when ``start`` / ``step`` are called with ``with_hidden=True`` (RL observations)
    hidden: np.ndarray | None = None


class ColumnLM:
    """Generator protocol over a causal LM whose tokens are level columns (see module docstring)."""

    #: with ``with_hidden``, run a GPT-2's transformer and its ``lm_head`` as two calls (what its
    #: forward does) and read the hidden state from the transformer's output, instead of asking the
    #: forward for every layer's hidden states (the same logits and hidden state; ~2% of a step)
    split_head: bool = True

    def __init__(self, model, columns: Sequence[str] | np.ndarray):
        self.model = model.eval()
        self._cache_arg = cache_argument(model)
        self._gpt2 = type(model).__name__ == "GPT2LMHeadModel"
        cols = self._columns_to_array(columns)
        if self.model.config.vocab_size != len(cols) + N_SPECIAL:
            raise ColumnLMError(
                f"model vocab_size is {self.model.config.vocab_size} but the vocabulary has {len(cols)} columns "
                f"+ {N_SPECIAL} special tokens = {len(cols) + N_SPECIAL}; build the model with "
                "vocab_size=len(columns) + N_SPECIAL"
            )
        self.columns = cols  # (n_columns, 14) int8, token id = index + N_SPECIAL
        self.vocab_size = len(cols) + N_SPECIAL
        self.max_length = int(self.model.config.n_positions)  # tokens including <bos>
        self._index = {c.tobytes(): i + N_SPECIAL for i, c in enumerate(cols)}
        self._special_mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        self._special_mask[:N_SPECIAL] = True

    @staticmethod
    def _columns_to_array(columns) -> np.ndarray:
        if isinstance(columns, np.ndarray):
            arr = columns.astype(np.int8)
        else:
            bad = [c for c in columns if len(c) != HEIGHT or any(ch not in CHAR_TO_ID for ch in c)]
            if bad:
                raise ColumnLMError(f"vocabulary column {bad[0]!r} is not {HEIGHT} characters from {TILES!r}")
            arr = np.array([[CHAR_TO_ID[ch] for ch in c] for c in columns], dtype=np.int8).reshape(-1, HEIGHT)
        if arr.ndim != 2 or arr.shape[1] != HEIGHT:
            raise ColumnLMError(f"columns must have shape (n, {HEIGHT}), got {arr.shape}")
        if len({c.tobytes() for c in arr}) != len(arr):
            raise ColumnLMError("the column vocabulary has duplicate columns; each column must appear once")
        return arr

    # ---- construction / persistence -------------------------------------------------------------
    @classmethod
    def from_model(cls, model, vocab: Sequence[str] | np.ndarray) -> ColumnLM:
        """Wrap an in-memory causal LM and its column vocabulary (strings or a (n, 14) array)."""
        return cls(model, vocab)

    @classmethod
    def load(cls, path: str | Path | None = None) -> ColumnLM:
        """Load a Hugging Face model folder plus ``columns.txt`` (None: the shipped model)."""
        from transformers import AutoModelForCausalLM

        folder = Path(path) if path is not None else default_column_lm_path()
        if not (folder / COLUMNS_FILE).is_file() or not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a column-LM folder: it needs config.json, the model weights and "
                f"{COLUMNS_FILE} (train one with scripts/train_column_lm.py, or pass path=None)"
            )
        # local_files_only: a folder must never reach for the hub (an offline machine can hang on it)
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
        from rlcreate.safe_io import read_bounded

        columns = read_bounded(folder / COLUMNS_FILE, 16 * 2**20, COLUMNS_FILE).decode("utf-8").splitlines()
        return cls(model, columns)

    def save(self, path: str | Path, fp16: bool = True) -> Path:
        """``save_pretrained`` (fp16 weights by default) plus ``columns.txt``."""
        import copy

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        model = copy.deepcopy(self.model).to(torch.float16) if fp16 else self.model
        model.save_pretrained(str(folder))
        (folder / COLUMNS_FILE).write_text("".join(_column_text(c) + "\n" for c in self.columns), encoding="utf-8")
        return folder

    # ---- tokenisation ---------------------------------------------------------------------------
    def encode_level(self, grid: np.ndarray, oov: str = "nearest") -> list[int]:
        """Token ids of a (14, W) grid's columns (no ``<bos>``).

        ``oov`` decides what an unseen column becomes: ``"nearest"`` the vocabulary column with the
        fewest differing tiles (ties: the more frequent), ``"unk"`` the ``<unk>`` token, ``"error"``
        raise :class:`ColumnLMError`.
        """
        if oov not in ("nearest", "unk", "error"):
            raise ColumnLMError(f"oov={oov!r} is not one of 'nearest', 'unk', 'error'")
        g = np.asarray(grid)
        if g.ndim != 2 or g.shape[0] != HEIGHT:
            raise ColumnLMError(f"encode_level expects a grid of shape ({HEIGHT}, W), got {g.shape}")
        g = g.astype(np.int8)
        ids = []
        for x, col in enumerate(g.T):
            tok = self._index.get(col.tobytes())
            if tok is None:
                if oov == "error":
                    raise ColumnLMError(
                        f"column {x} ({_column_text(col)!r}, top to bottom) is not in the vocabulary; "
                        "pass oov='nearest' or oov='unk'"
                    )
                tok = UNK_ID if oov == "unk" else int((self.columns != col).sum(1).argmin()) + N_SPECIAL
            ids.append(tok)
        return ids

    def decode_tokens(self, ids) -> np.ndarray:
        """Column token ids -> (14, n) int8 grid. ``<bos>`` is skipped; ``<unk>`` cannot be drawn."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1) if int(i) != BOS_ID]
        bad = [i for i in ids if i < N_SPECIAL or i >= self.vocab_size]
        if bad:
            raise ColumnLMError(
                f"token id {bad[0]} is not a column (columns are {N_SPECIAL}..{self.vocab_size - 1}; {UNK_ID} is <unk>)"
            )
        if not ids:
            return np.zeros((HEIGHT, 0), np.int8)
        return self.columns[np.array(ids) - N_SPECIAL].T.copy()

    # ---- stepping API (RL) ----------------------------------------------------------------------
    def _prompt_ids(self, batch: int, prompt_grids) -> torch.Tensor:
        bos = torch.full((batch, 1), BOS_ID, dtype=torch.long)
        if prompt_grids is None:
            return bos
        p = np.asarray(prompt_grids)
        if p.ndim == 2:
            p = np.broadcast_to(p, (batch, *p.shape))
        if p.ndim != 3 or p.shape[0] != batch or p.shape[1] != HEIGHT:
            raise ColumnLMError(
                f"prompt_grids must be one ({HEIGHT}, W) grid or a batch ({batch}, {HEIGHT}, W), got {np.shape(prompt_grids)}"
            )
        ids = torch.tensor([self.encode_level(g) for g in p], dtype=torch.long).reshape(batch, -1)
        return torch.cat([bos, ids], dim=1)

    def _masked(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().masked_fill(self._special_mask, float("-inf"))

    @torch.inference_mode()
    def start(self, batch: int = 1, prompt_grids=None, with_hidden: bool = False) -> tuple[np.ndarray, ColumnLMState]:
        """Begin ``batch`` sequences with ``<bos>`` (+ the prompt's columns).

        Returns next-column logits ``(batch, vocab_size)`` float32 (special tokens at -inf) and the
        state to pass to :meth:`step` (with ``state.hidden`` filled when ``with_hidden``).
        """
        if batch < 1:
            raise ColumnLMError(f"batch must be >= 1, got {batch}")
        ids = self._prompt_ids(batch, prompt_grids)
        if ids.shape[1] > self.max_length:
            raise ColumnLMError(
                f"prompt of {ids.shape[1] - 1} columns exceeds the model's context of {self.max_length - 1} "
                "columns; pass a shorter prompt (e.g. its last columns)"
            )
        if with_hidden and self.split_head and self._gpt2:
            logits, cache, hidden = self._split_forward(ids, {})
            return self._masked(logits).numpy(), ColumnLMState(cache, ids.shape[1], batch, hidden)
        out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, output_hidden_states=with_hidden)
        state = ColumnLMState(returned_cache(out), ids.shape[1], batch, self._last_hidden(out, with_hidden))
        return self._masked(out.logits[:, -1]).numpy(), state

    @torch.inference_mode()
    def step(self, state: ColumnLMState, token_ids, with_hidden: bool = False) -> tuple[np.ndarray, ColumnLMState]:
        """Append one column per sequence and return the next logits ``(batch, vocab_size)``
        (and the new state; ``state.hidden`` filled when ``with_hidden``)."""
        ids = torch.as_tensor(np.asarray(token_ids), dtype=torch.long).reshape(-1)
        if ids.numel() != state.batch:
            raise ColumnLMError(f"step got {ids.numel()} token ids for a batch of {state.batch}")
        if (ids < N_SPECIAL).any() or (ids >= self.vocab_size).any():
            raise ColumnLMError(
                f"token ids must be columns in [{N_SPECIAL}, {self.vocab_size - 1}], got {ids.tolist()}"
            )
        if state.length >= self.max_length:
            raise ColumnLMError(
                f"the sequence already holds {state.length} tokens, the model's context ({self.max_length}); "
                "start a new sequence with the last columns as prompt"
            )
        if with_hidden and self.split_head and self._gpt2:
            logits, cache, hidden = self._split_forward(ids[:, None], {self._cache_arg: state.past_key_values})
            return self._masked(logits).numpy(), ColumnLMState(cache, state.length + 1, state.batch, hidden)
        out = self.model(
            input_ids=ids[:, None],
            **{self._cache_arg: state.past_key_values},
            use_cache=True,
            output_hidden_states=with_hidden,
        )
        new = ColumnLMState(returned_cache(out), state.length + 1, state.batch, self._last_hidden(out, with_hidden))
        return self._masked(out.logits[:, -1]).numpy(), new

    def _split_forward(self, ids: torch.Tensor, cache: dict) -> tuple[torch.Tensor, object, np.ndarray]:
        """A GPT-2's forward as its two parts (``split_head``): next logits ``(batch, vocab)`` from
        ``lm_head`` on the transformer's last position, the cache, and that position's final hidden
        state (after ``ln_f``) as float32 numpy."""
        base = self.model.transformer(input_ids=ids, use_cache=True, **cache)
        last = base.last_hidden_state[:, -1:]  # what the forward's logits_to_keep=1 keeps
        return self.model.lm_head(last)[:, -1], returned_cache(base), last[:, -1].float().numpy().copy()

    @staticmethod
    def _last_hidden(out, with_hidden: bool) -> np.ndarray | None:
        # hidden_states[-1] is the final layer after ln_f (the lm_head's input), as observed by RL envs
        return out.hidden_states[-1][:, -1].float().numpy().copy() if with_hidden else None

    # ---- sampling -------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(
        self,
        n_columns: int,
        batch: int = 1,
        seed: int = 0,
        temperature: float = 1.0,
        top_k: int | None = None,
        prompt=None,
    ) -> np.ndarray:
        """Sample ``n_columns`` new columns per sequence -> ``(batch, 14, n_columns)`` int8.

        The prompt (a (14, W) grid or a batch of them) conditions generation and is not included in
        the output. Same seed, same levels. ``temperature`` must be > 0; ``top_k`` keeps the k most
        likely columns.
        """
        if n_columns < 1:
            raise ColumnLMError(f"n_columns must be >= 1, got {n_columns}")
        if not temperature > 0:
            raise ColumnLMError(f"temperature must be > 0, got {temperature}; use top_k=1 for greedy decoding")
        if top_k is not None and not 1 <= top_k <= self.vocab_size - N_SPECIAL:
            raise ColumnLMError(f"top_k must be in [1, {self.vocab_size - N_SPECIAL}] or None, got {top_k}")
        prompt_len = 0 if prompt is None else np.asarray(prompt).shape[-1]
        # <bos> + prompt + all but the last new column pass through the model
        if 1 + prompt_len + n_columns - 1 > self.max_length:
            raise ColumnLMError(
                f"n_columns={n_columns} after a {prompt_len}-column prompt exceeds the model's context: at most "
                f"{self.max_length - prompt_len} columns; generate in pieces, prompting each with the previous tail"
            )
        gen = torch.Generator().manual_seed(int(seed))
        ids = self._prompt_ids(batch, prompt)
        out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        cache, logits = returned_cache(out), out.logits[:, -1]
        chosen = torch.empty((batch, n_columns), dtype=torch.long)
        for t in range(n_columns):
            scores = self._masked(logits) / temperature
            if top_k is not None:
                kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]
                scores = scores.masked_fill(scores < kth, float("-inf"))
            nxt = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=gen)
            chosen[:, t] = nxt[:, 0]
            if t + 1 < n_columns:  # the last column needs no further forward pass
                out = self.model(input_ids=nxt, **{self._cache_arg: cache}, use_cache=True)
                cache, logits = returned_cache(out), out.logits[:, -1]
        return np.stack([self.decode_tokens(row) for row in chosen.numpy()])
