"""Novelty: k-nearest-neighbour distance to a reference corpus and to an archive of past outputs.

:class:`NoveltyArchive` holds two sets of embeddings (float vectors, or integer grids flattened):

- the **reference** — fixed, e.g. the generator's training data; indexed once with scikit-learn's
  ``NearestNeighbors``. Distance to it measures "not a copy of the training data" (memorisation).
- the **archive** — past outputs, grown by an insertion rule as in novelty search (Lehman & Stanley,
  2011, "Abandoning objectives"), capped at ``capacity`` with FIFO or random eviction. Distance to
  it measures "not what we already made".

Novelty of x against a set S is the mean distance to its ``k`` nearest neighbours in S (all of S
when S has fewer than ``k`` points; NaN when S is empty). :class:`NoveltyReward` wraps an archive
and an ``embed`` callable as a reward module.

The reference is indexed with scikit-learn's ``NearestNeighbors``, or, for integer grids with
``n_values`` set, searched exactly in Hamming distance with faiss' popcount kernels over packed
one-hot codes. The archive is searched brute force on a preallocated buffer instead of an index,
because an index would have to be rebuilt on every insertion (Euclidean / cosine by hand with cached
norms, Hamming with scikit-learn's ``pairwise_distances`` or faiss).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

from rlcreate.errors import UserError
from rlcreate.rewards.base import RewardModule
from rlcreate.rewards.registry import register

__all__ = [
    "NoveltyArchive",
    "NoveltyReward",
    "NoveltyConfigError",
    "METRICS",
    "INSERTION_RULES",
    "EVICTION_RULES",
    "COMBINE_RULES",
    "AGAINST",
]

METRICS = ("euclidean", "cosine", "hamming")
INSERTION_RULES = ("threshold", "random", "all")
EVICTION_RULES = ("fifo", "random")
COMBINE_RULES = ("pooled", "min", "mean")
AGAINST = ("both", "reference", "archive")


class NoveltyConfigError(UserError):
    """A novelty setting or input is invalid; the message names the value and the fix."""


def _choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise NoveltyConfigError(f"{field}={value!r} is not supported; use one of {tuple(allowed)}")
    return value


def _positive_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise NoveltyConfigError(f"{field}={value!r} must be an integer >= 1")
    return int(value)


def _unit(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero (cosine distance 1 to everything, as sklearn)."""
    norm = np.linalg.norm(X, axis=-1, keepdims=True)
    return X / np.where(norm > 0, norm, 1.0)


def _onehot_codes(rows: np.ndarray, n_values: int) -> np.ndarray:
    """Integer rows -> packed one-hot bit codes (padded to 8 bytes). Two rows differ in ``t``
    positions exactly when their codes differ in ``2t`` bits."""
    r = np.asarray(rows).astype(np.int64)
    onehot = r[:, :, None] == np.arange(n_values)
    packed = np.packbits(onehot.reshape(len(r), -1), axis=1)
    pad = (-packed.shape[1]) % 8
    return np.ascontiguousarray(np.pad(packed, ((0, 0), (0, pad))) if pad else packed)


class _CodesIndex:
    """Exact Hamming k-NN over packed one-hot codes with faiss' popcount kernels (for integer rows,
    e.g. level grids: ~20x faster here than scikit-learn's brute-force ``metric="hamming"``)."""

    def __init__(self, codes: np.ndarray, n_positions: int, n_values: int):
        self.codes, self.n_positions, self.n_values = codes, n_positions, n_values

    def kneighbors(self, X, n_neighbors, return_distance=True):
        import faiss

        faiss.omp_set_num_threads(1)  # OpenMP spinning is 10-20x slower on a busy 2-core CPU
        k = min(int(n_neighbors), len(self.codes))
        q = _onehot_codes(X, self.n_values)
        D, _ = faiss.knn_hamming(q, np.ascontiguousarray(self.codes), k)
        d = np.sort(D.astype(np.float64) / (2.0 * self.n_positions), axis=1)
        return (d, None) if return_distance else None


class NoveltyArchive:
    """k-NN novelty against a fixed reference corpus and a growing archive of past outputs.

    Arguments:
        reference: ``(m, ...)`` array of reference embeddings, or ``None`` for no reference.
            Rows are flattened, so integer level grids ``(m, 14, W)`` work with ``metric="hamming"``.
        k: neighbours averaged (Lehman & Stanley used 15).
        metric: ``"euclidean"``, ``"cosine"`` (1 - cosine similarity, in [0, 2]) or ``"hamming"``
            (fraction of differing entries, in [0, 1]; for integer grids).
        capacity: most archive entries kept; when full, one is evicted per insertion.
        insertion: ``"threshold"`` — insert when novelty > ``threshold`` (adapted, see below);
            ``"random"`` — insert with probability ``p_insert``; ``"all"`` — insert everything.
        threshold: initial threshold for ``"threshold"``. ``None`` sets it to the median novelty
            of the first batch that has a finite novelty (so about half of that batch goes in).
        adapt_window: threshold adaptation as in novelty search: after every ``adapt_window``
            evaluations, if nothing was inserted the threshold is multiplied by ``lower_factor``
            (0.95), and if more than ``raise_above`` were inserted it is multiplied by
            ``raise_factor`` (1.2). ``None`` disables adaptation.
        eviction: ``"fifo"`` (oldest out) or ``"random"`` (uniform, seeded).
        combine: how reference and archive novelty make ``against="both"``: ``"pooled"`` (default;
            the k nearest among reference and archive together — novelty search's definition),
            ``"min"`` (the smaller of the two novelties: novel only if novel to both) or ``"mean"``.
            A set that is empty (or has no other points) is left out.
        seed: seeds the random insertion and eviction; ``reset()`` re-seeds.

    Samples whose novelty is NaN (nothing to compare against yet) are always inserted by the
    ``"threshold"`` rule: with an empty memory everything is new.
    """

    def __init__(
        self,
        reference: np.ndarray | None = None,
        *,
        k: int = 15,
        metric: str = "euclidean",
        capacity: int = 10_000,
        insertion: str = "threshold",
        threshold: float | None = None,
        p_insert: float = 0.1,
        adapt_window: int | None = 2500,
        raise_above: int = 4,
        raise_factor: float = 1.2,
        lower_factor: float = 0.95,
        eviction: str = "fifo",
        combine: str = "pooled",
        seed: int = 0,
        n_values: int | None = None,
    ):
        self.k = _positive_int("k", k)
        self.metric = _choice("metric", metric, METRICS)
        self.capacity = _positive_int("capacity", capacity)
        self.insertion = _choice("insertion", insertion, INSERTION_RULES)
        self.eviction = _choice("eviction", eviction, EVICTION_RULES)
        self.combine = _choice("combine", combine, COMBINE_RULES)
        if threshold is not None and not (np.isfinite(threshold) and threshold >= 0):
            raise NoveltyConfigError(
                f"threshold={threshold!r} must be a finite number >= 0, or None "
                "to start from the first batch's median novelty"
            )
        if not 0.0 <= p_insert <= 1.0:
            raise NoveltyConfigError(f"p_insert={p_insert!r} must be a probability in [0, 1]")
        if adapt_window is not None:
            adapt_window = _positive_int("adapt_window", adapt_window)
        if not (raise_factor >= 1.0 and 0.0 < lower_factor <= 1.0):
            raise NoveltyConfigError(
                f"raise_factor={raise_factor!r} must be >= 1 and lower_factor="
                f"{lower_factor!r} in (0, 1] so the threshold moves the right way"
            )
        self.initial_threshold = None if threshold is None else float(threshold)
        self.p_insert = float(p_insert)
        self.adapt_window, self.raise_above = adapt_window, int(raise_above)
        self.raise_factor, self.lower_factor = float(raise_factor), float(lower_factor)
        self.seed = int(seed)
        if n_values is not None and (self.metric != "hamming" or not 2 <= int(n_values) <= 64):
            raise NoveltyConfigError(
                f"n_values={n_values!r} applies to metric='hamming' over integer rows "
                "with values in [0, n_values), 2 <= n_values <= 64"
            )
        self.n_values = None if n_values is None else int(n_values)

        self.reference: np.ndarray | None = None
        self._ref_index: NearestNeighbors | _CodesIndex | None = None
        self.dim: int | None = None
        if reference is not None:
            ref = self._as_rows(reference, "reference")
            if len(ref) == 0:
                raise NoveltyConfigError("reference has 0 rows; pass None for no reference corpus")
            self.reference, self.dim = ref, ref.shape[1]
            # Built once; queries reuse it. 'auto' picks brute force for high-dimensional embeddings
            # and a tree for low-dimensional latents.
            if self.n_values:
                self._ref_codes = _onehot_codes(ref, self.n_values)
                self._ref_index = _CodesIndex(self._ref_codes, ref.shape[1], self.n_values)
            else:
                self._ref_index = NearestNeighbors(metric=self.metric).fit(ref)
        self.reset()

    # ---- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Empty the archive, restore the initial threshold and re-seed; the reference stays."""
        self._buf = np.zeros((0, 0))  # (capacity, dim), allocated on first insertion
        self._stamp = np.full(self.capacity, -1, dtype=np.int64)  # insertion counter per slot
        self._size = 0
        self._inserted_total = 0
        self.threshold = self.initial_threshold
        self._window_evals = 0
        self._window_added = 0
        self._rng = np.random.default_rng(self.seed)

    def __len__(self) -> int:
        return self._size

    @property
    def archive(self) -> np.ndarray:
        """The archive's entries, oldest first (a copy; unit-length rows for ``"cosine"``)."""
        if self._size == 0:
            return np.zeros((0, self.dim or 0), dtype=np.float64)
        slots = np.flatnonzero(self._stamp >= 0)
        return self._buf[slots[np.argsort(self._stamp[slots])]].copy()

    def state_dict(self) -> dict:
        """Mutable state (archive, threshold, counters, RNG); the reference is not included —
        it is rebuilt from its source. Use :meth:`save` for a self-contained file."""
        return {
            "slots": self._buf[: self._size].copy() if self._size else np.zeros((0, self.dim or 0)),
            "stamps": self._stamp[: self._size].copy(),
            "threshold": np.nan if self.threshold is None else self.threshold,
            "inserted_total": self._inserted_total,
            "window_evals": self._window_evals,
            "window_added": self._window_added,
            "rng": json.dumps(self._rng.bit_generator.state),
        }

    def load_state_dict(self, state: dict) -> None:
        self.reset()
        slots = np.asarray(state["slots"])
        if len(slots):
            slots = self._as_rows(slots, "state['slots']")
            if len(slots) > self.capacity:
                raise NoveltyConfigError(
                    f"state has {len(slots)} archive entries but capacity is "
                    f"{self.capacity}; build the archive with capacity >= {len(slots)}"
                )
            # Same slots and stamps as saved, so FIFO and random eviction continue exactly.
            self._ensure_buffer(slots)
            self._size = len(slots)
            self._buf[: self._size] = slots
            if self.n_values:
                self._codes[: self._size] = _onehot_codes(slots, self.n_values)
            self._sqnorm[: self._size] = (slots.astype(np.float64) ** 2).sum(axis=1)
            self._stamp[: self._size] = np.asarray(state["stamps"], dtype=np.int64)
        thr = float(state["threshold"])
        self.threshold = None if np.isnan(thr) else thr
        self._inserted_total = int(state["inserted_total"])
        self._window_evals, self._window_added = int(state["window_evals"]), int(state["window_added"])
        from rlcreate.safe_io import loads_json

        self._rng.bit_generator.state = loads_json(str(state["rng"]), "novelty archive rng")

    def _settings(self) -> dict:
        return dict(
            k=self.k,
            metric=self.metric,
            capacity=self.capacity,
            insertion=self.insertion,
            threshold=self.initial_threshold,
            p_insert=self.p_insert,
            adapt_window=self.adapt_window,
            raise_above=self.raise_above,
            raise_factor=self.raise_factor,
            lower_factor=self.lower_factor,
            eviction=self.eviction,
            combine=self.combine,
            seed=self.seed,
            n_values=self.n_values,
        )

    def save(self, path: str | Path) -> Path:
        """Write settings, reference and state to one ``.npz`` file (no pickle)."""
        path = Path(path)
        state = self.state_dict()
        np.savez_compressed(
            path,
            settings=json.dumps(self._settings()),
            reference=self.reference if self.reference is not None else np.zeros((0, 0)),
            **state,
        )
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: str | Path) -> NoveltyArchive:
        """Rebuild an archive written by :meth:`save`."""
        from rlcreate.safe_io import check_npz, loads_json

        check_npz(path)  # declared array sizes checked before numpy allocates
        with np.load(path, allow_pickle=False) as data:
            settings = loads_json(str(data["settings"]), f"{path}: settings")
            ref = data["reference"]
            obj = cls(ref if ref.size else None, **settings)
            obj.load_state_dict({key: data[key] for key in data.files if key not in ("settings", "reference")})
        return obj

    # ---- queries -------------------------------------------------------------------------------
    def novelty(self, X: np.ndarray, against: str = "both", within_batch: bool = False) -> np.ndarray:
        """Mean distance of each row of ``X`` to its ``k`` nearest neighbours, shape ``(n,)``.

        ``against``: ``"reference"``, ``"archive"`` or ``"both"`` (combined by ``combine``).
        ``within_batch``: also count the *other* rows of ``X`` as archive members (novelty search
        scores against archive + current population), so copies inside one batch are not novel.
        NaN where there is nothing to compare against.
        """
        _choice("against", against, AGAINST)
        X = self._as_rows(X, "X")
        n = len(X)
        ref_d = arch_d = None  # (n, <=k) sorted neighbour distances per set
        if against in ("reference", "both") and self._ref_index is not None:
            kk = min(self.k, len(self.reference) if self.reference is not None else 0)
            ref_d = self._ref_index.kneighbors(X, n_neighbors=kk, return_distance=True)[0]
        if against in ("archive", "both"):
            arch_d = self._archive_knn(X, within_batch)
        sets = [d for d in (ref_d, arch_d) if d is not None and d.shape[1] > 0]
        if not sets:
            return np.full(n, np.nan)
        if len(sets) == 1 or self.combine != "pooled":
            per_set = np.stack([d.mean(axis=1) for d in sets])
            return per_set.min(axis=0) if self.combine == "min" else per_set.mean(axis=0)
        pooled = np.concatenate(sets, axis=1)
        pooled.sort(axis=1)
        return pooled[:, : self.k].mean(axis=1)

    def _archive_knn(self, X: np.ndarray, within_batch: bool) -> np.ndarray:
        parts = []
        if self._size:
            parts.append(self._archive_nearest(X, min(self.k, self._size)))
        if within_batch and len(X) > 1:
            d = pairwise_distances(X, metric=self.metric)
            np.fill_diagonal(d, np.inf)  # a sample is not its own neighbour
            parts.append(d)
        if not parts:
            return np.zeros((len(X), 0))
        d = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        kk = min(self.k, self._size + (len(X) - 1 if within_batch else 0))
        if kk < d.shape[1]:
            d = np.partition(d, kk - 1, axis=1)[:, :kk]
        return np.sort(d, axis=1)

    def _archive_nearest(self, X: np.ndarray, kk: int) -> np.ndarray:
        """Distances from each row of X to its kk nearest archive entries, shape (n, kk)."""
        Y = self._buf[: self._size]  # live entries are a prefix: slots fill in order, then get reused
        if self.metric == "hamming" and self.n_values:
            return _CodesIndex(self._codes[: self._size], X.shape[1], self.n_values).kneighbors(X, kk)[0]
        if self.metric == "hamming":
            d = pairwise_distances(X, Y, metric="hamming")
            return np.partition(d, kk - 1, axis=1)[:, :kk] if kk < d.shape[1] else d
        # Hand-written instead of sklearn's pairwise_distances: the archive's norms are cached per
        # slot and the product stays float32 (sklearn re-derives norms and upcasts every call; about
        # 2x slower here). float32 cancellation makes near-zero distances inexact, so the kk
        # candidates are re-measured exactly in float64 below.
        if self.metric == "cosine":
            approx = -(_unit(X) @ Y.T)
        else:
            approx = self._sqnorm[: self._size][None, :] - 2.0 * (X @ Y.T)  # |x|^2 is constant per row
        idx = (
            np.argpartition(approx, kk - 1, axis=1)[:, :kk]
            if kk < len(Y)
            else np.broadcast_to(np.arange(len(Y)), (len(X), len(Y)))
        )
        cand = Y[idx].astype(np.float64)  # (n, kk, dim)
        x = X.astype(np.float64)[:, None, :]
        if self.metric == "cosine":
            return np.maximum(1.0 - np.einsum("nkd,nkd->nk", _unit(x), cand), 0.0)
        return np.linalg.norm(cand - x, axis=2)

    # ---- insertion -----------------------------------------------------------------------------
    def add(self, X: np.ndarray, novelty: np.ndarray | None = None) -> np.ndarray:
        """Offer the rows of ``X`` to the archive by the insertion rule; returns the inserted mask.

        ``novelty``: precomputed novelty of ``X`` (what the threshold rule compares); by default
        ``self.novelty(X, "both", within_batch=True)``.
        """
        X = self._as_rows(X, "X")
        n = len(X)
        if self.insertion == "all":
            mask = np.ones(n, dtype=bool)
        elif self.insertion == "random":
            mask = self._rng.random(n) < self.p_insert
        else:
            nov = self.novelty(X, "both", within_batch=True) if novelty is None else np.asarray(novelty, float)
            if nov.shape != (n,):
                raise NoveltyConfigError(f"novelty has shape {nov.shape}; expected ({n},), one per row of X")
            finite = np.isfinite(nov)
            if self.threshold is None and finite.any():
                self.threshold = float(np.median(nov[finite]))
            thr = np.inf if self.threshold is None else self.threshold
            mask = ~finite | (nov > thr)
        for row in X[mask]:
            self._insert(row)
        self._adapt(n, int(mask.sum()))
        return mask

    def _insert(self, row: np.ndarray) -> None:
        self._ensure_buffer(row[None])
        if self._size < self.capacity:
            slot = self._size
            self._size += 1
        elif self.eviction == "fifo":
            slot = int(np.argmin(self._stamp))
        else:
            slot = int(self._rng.integers(self.capacity))
        if self.metric == "cosine":
            row = _unit(row)  # stored unit-length: cosine distance is then one product
        self._buf[slot] = row
        if self.n_values:
            self._codes[slot] = _onehot_codes(row[None], self.n_values)[0]
        if self.metric == "euclidean":
            self._sqnorm[slot] = float(row.astype(np.float64) @ row)
        self._stamp[slot] = self._inserted_total
        self._inserted_total += 1

    def _adapt(self, evaluated: int, added: int) -> None:
        if self.insertion != "threshold" or self.adapt_window is None or self.threshold is None:
            return
        self._window_evals += evaluated
        self._window_added += added
        if self._window_evals >= self.adapt_window:
            if self._window_added == 0:
                self.threshold *= self.lower_factor
            elif self._window_added > self.raise_above:
                self.threshold *= self.raise_factor
            self._window_evals = self._window_added = 0

    def _ensure_buffer(self, rows: np.ndarray) -> None:
        if not len(self._buf):
            dtype = np.float64 if self.metric == "hamming" else np.float32
            self._buf = np.zeros((self.capacity, rows.shape[1]), dtype=dtype)
            self._sqnorm = np.zeros(self.capacity, dtype=np.float32)
            if self.n_values:
                self._codes = np.zeros((self.capacity, _onehot_codes(rows[:1], self.n_values).shape[1]), np.uint8)

    def _as_rows(self, X: Any, what: str) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim < 2:
            raise NoveltyConfigError(
                f"{what} has shape {X.shape}; expected (n, d) embeddings or (n, ...) grids, one row per sample"
            )
        X = X.reshape(len(X), -1)
        if not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
            raise NoveltyConfigError(f"{what} has dtype {X.dtype}; expected numbers")
        if self.metric != "hamming":
            X = X.astype(np.float32, copy=False)
            if not np.isfinite(X).all():
                raise NoveltyConfigError(f"{what} contains NaN or inf; embeddings must be finite")
        if self.dim is None:
            self.dim = X.shape[1]
        elif X.shape[1] != self.dim:
            raise NoveltyConfigError(
                f"{what} rows have {X.shape[1]} values but this archive holds {self.dim}-value rows "
                f"(shape {X.shape}); embed every sample the same way as the reference"
            )
        return X

    def __repr__(self) -> str:
        ref = 0 if self.reference is None else len(self.reference)
        return (
            f"NoveltyArchive(k={self.k}, metric={self.metric!r}, reference={ref}, "
            f"archive={self._size}/{self.capacity}, insertion={self.insertion!r})"
        )


@register("novelty")
class NoveltyReward(RewardModule):
    """Novelty of each sample: mean distance to its k nearest neighbours in memory.

    Measures: how far a sample's embedding lies from the reference corpus (training data) and from
    past outputs held in a :class:`NoveltyArchive` (novelty search). Against ``"both"``, the two
    are combined by the archive's ``combine`` rule (default ``"pooled"``: k nearest among reference
    + archive together). With ``within_batch=True`` (default) the other samples of the same batch
    count as archive members too, so a batch of copies is not novel. After scoring, the batch is
    offered to the archive by its insertion rule (``update=False`` scores without inserting).

    Range: [0, inf) for ``"euclidean"``, [0, 2] for ``"cosine"``, [0, 1] for ``"hamming"``; 0 for an
    exact duplicate of k stored items. ``None`` when there is nothing to compare against (empty
    reference and archive, batch of one).

    Gaming: noise far from everything is maximally novel — unreadable text, random tile soup, an
    out-of-distribution latent. Pair it with a value/coherence term, or put it through a sweet-spot
    transform so that "new but not absurd" scores best. The archive also makes the reward
    non-stationary: revisiting one mode stops paying once it is archived.

    Arguments:
        archive: the :class:`NoveltyArchive` (holds k, metric, reference, insertion rule), or a
            dict of its settings (no reference then), or ``None`` for the defaults.
        embed: ``samples -> (n, d)`` array (a sentence encoder, a level featuriser); ``None``
            means the samples are already arrays (latents, level grids).
        against: ``"both"``, ``"reference"`` or ``"archive"``.
        within_batch: count the batch's other samples as neighbours.
        update: insert into the archive after scoring.
    """

    def __init__(
        self,
        archive: NoveltyArchive | dict | None = None,
        embed: Callable | None = None,
        *,
        against: str = "both",
        within_batch: bool = True,
        update: bool = True,
        name: str | None = None,
    ):
        super().__init__(name)
        if archive is None or isinstance(archive, dict):  # settings from a recipe
            archive = NoveltyArchive(**(archive or {}))
        if not isinstance(archive, NoveltyArchive):
            raise NoveltyConfigError(
                f"archive must be a NoveltyArchive or a dict of its settings, got {type(archive).__name__}"
            )
        self.archive = archive
        if embed is not None and not callable(embed):
            raise NoveltyConfigError(f"embed={embed!r} is not callable; pass samples -> (n, d) array or None")
        self.embed = embed
        self.against = _choice("against", against, AGAINST)
        self.within_batch = bool(within_batch)
        self.update = bool(update)

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        if len(samples) == 0:
            return []
        E = np.asarray(self.embed(samples) if self.embed is not None else samples)
        if len(E) != len(samples):
            raise NoveltyConfigError(
                f"embed returned {len(E)} rows for {len(samples)} samples; it must return one embedding per sample"
            )
        nov = self.archive.novelty(E, self.against, within_batch=self.within_batch)
        if self.update:
            self.archive.add(E, novelty=nov if self.against == "both" else None)
        return [float(v) if np.isfinite(v) else None for v in nov]

    def reset(self) -> None:
        self.archive.reset()

    def state_dict(self) -> dict:
        return self.archive.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.archive.load_state_dict(state)
