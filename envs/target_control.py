"""What makes control targets learnable when a policy picks one column at a time.

A policy choosing among an LM's top-k columns can only meet "~1 enemy per 16 columns" if it can
see (a) how far the level so far is from the target's schedule and (b) what each offered column
would add; and it learns much faster when the credit for a missed target lands on the steps that
caused it rather than only on the level's last step. :class:`TargetControl` gives both, for any
target that has a *measure* (counts on a stack of grids, e.g. enemies or gap runs) and a tolerance
(:data:`rlcreate.levels.rewards.TARGET_MEASURES` for Mario):

- observation: per target, the schedule deficit ``(target * t / per - count_t) / tolerance``
  squashed to [0, 1] (0.5 = on schedule), then, per offered column and target, what appending it
  adds to the count (the measure of ``[last column, offer]`` minus that of ``[last column]``, so
  run-based measures such as gaps count a run once), clipped to [0, 2] and halved;
- reward shaping (Ng, Harada & Russell 1999, potential-based): ``F_t = Phi_t - Phi_{t-1}`` with
  ``Phi_t = -w * per / T * mean_j |count_j,t - target_j * t / per| / tol_j`` and ``Phi_T = 0``, so the
  shaping telescopes to 0 over every episode: the return of every level, and hence the optimal
  policy, is unchanged, while each step is told at once whether it moved the counts toward the
  schedule. ``Phi_{T-1}`` is (up to the last column) ``w * (target_match - 1)``: use the weight of
  the recipe's ``target_match`` term.

:class:`TermShaping` applies the same telescoping shaping to any reward *term* that scores a level
so far as it scores a whole one (the designer objectives are means over 16-column segments):
``Phi_t = w * f(prefix_t) * t / T`` at every closed segment, ``Phi_T = 0``. A per-segment mean then
pays ``w / K * (score of the segment just closed)`` when it closes instead of everything at the
level's end, where GAE (lambda < 1) hands early columns almost none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rlcreate.envs.core_vec_env import EnvConfigError

__all__ = ["TargetControl", "TargetMeasure", "TargetSpec", "TermShaping"]


@dataclass(frozen=True)
class TargetSpec:
    """A control target sampled uniformly from ``[low, high]`` at every episode start."""

    name: str
    low: float
    high: float

    def normalise(self, v: np.ndarray) -> np.ndarray:
        return (v - self.low) / (self.high - self.low) if self.high > self.low else np.zeros_like(v)


#: counts of one measure on a stack of grids ``(n, H, w) -> (n,)``, and the target's tolerance
TargetMeasure = tuple[Callable[[np.ndarray], np.ndarray], float]


class TargetControl:
    """Schedule deficits, per-offer gains and potential-based shaping for ``targets`` (see module)."""

    def __init__(
        self,
        targets: Sequence[TargetSpec],
        measures: dict[str, TargetMeasure],
        n_columns: int,
        shaping: float = 0.0,
        per: int = 16,
        columns: np.ndarray | None = None,
    ):
        self.active = bool(targets) and bool(measures)
        if self.active:
            missing = [t.name for t in targets if t.name not in measures]
            if missing:
                raise EnvConfigError(f"targets {missing}: no measure for them; use targets among {sorted(measures)}")
        elif shaping > 0:
            raise EnvConfigError(
                f"target_shaping = {shaping!r}: the env has no control targets with a measure "
                "to shape; set targets (e.g. enemies, gaps) or target_shaping: 0"
            )
        self.names = [t.name for t in targets] if self.active else []
        self.fns = [measures[n][0] for n in self.names]
        self.tols = np.array([measures[n][1] for n in self.names], np.float64)
        self.n_columns, self.shaping_weight, self.per = int(n_columns), float(shaping), int(per)
        self._potential = np.zeros(0)
        # a token env's column vocabulary (V, H): the gain of appending column c after column l is
        # then looked up in a (V + 1, V, T) table (row V: no last column), each row computed the
        # first time its last column occurs, with the same measure calls as the grid path
        self.columns = None if columns is None else np.asarray(columns)
        if self.columns is not None and self.active:
            v = len(self.columns)
            self._gains = np.zeros((v + 1, v, len(self.names)))
            self._observed_gains = np.zeros_like(self._gains)
            self._built = np.zeros(v + 1, bool)

    def size(self, k: int) -> int:
        """Observation entries: one deficit per target, then k offers x targets."""
        return (1 + k) * len(self.names)

    def counts(self, prefix: np.ndarray) -> np.ndarray:
        """(n, T) counts of every measure on the levels so far ``(n, H, t)`` (0 for an empty level)."""
        if prefix.shape[2] == 0:
            return np.zeros((prefix.shape[0], len(self.fns)))
        return np.stack([fn(prefix) for fn in self.fns], 1).astype(np.float64)

    def observe(
        self,
        prefix: np.ndarray,
        target_values: np.ndarray,
        offered: np.ndarray,
        counts: np.ndarray | None = None,
        last_ids: np.ndarray | None = None,
        offer_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(n, size(k))``: squashed deficits, then per-offer gains (slot-major), all in [0, 1].
        ``counts``: ``counts(prefix)`` if already computed. With a column vocabulary, ``last_ids``
        (n,) (the last column's row in it, -1 for none) and ``offer_ids`` (n, k) give the gains by
        table lookup instead of measuring every ``[last, offer]`` pair."""
        n, k, height = offered.shape
        if not self.active:
            return np.zeros((n, 0))
        t = prefix.shape[2]
        deficit = (target_values * t / self.per - (self.counts(prefix) if counts is None else counts)) / self.tols
        if self.columns is not None and last_ids is not None and offer_ids is not None:
            v = len(self.columns)
            rows = np.where(last_ids < 0, v, last_ids)
            self._build_gains(rows)
            # the observed (clipped, halved) gains, looked up with one flat index
            seen = self._observed_gains.reshape(-1, len(self.names)).take(rows[:, None] * v + offer_ids, axis=0)
            return np.concatenate([0.5 + 0.5 * np.tanh(deficit), seen.reshape(n, k * len(self.names))], 1)
        cols = offered.transpose(0, 2, 1).reshape(n, height, k, 1)  # (n, H, k, 1)
        if t:
            last = prefix[:, :, -1:]
            pairs = np.concatenate([np.broadcast_to(last[:, :, None], (n, height, k, 1)), cols], 3)
            windows = pairs.transpose(0, 2, 1, 3).reshape(n * k, height, 2)
            base = np.repeat(self.counts(last), k, axis=0)
        else:
            windows, base = cols.transpose(0, 2, 1, 3).reshape(n * k, height, 1), np.zeros(1)
        gains = (self.counts(windows) - base).reshape(n, k * len(self.names))
        return np.concatenate([0.5 + 0.5 * np.tanh(deficit), np.clip(gains, 0.0, 2.0) / 2.0], 1)

    def _build_gains(self, last: np.ndarray) -> None:
        """Fill the gain table's rows for last columns ``last`` (V = none) not built yet, as the grid
        path computes them: measure of ``[last, c]`` minus that of ``[last]`` (of ``[c]`` after no
        column)."""
        assert self.columns is not None
        built = self._built[last]
        if built.all():  # after a run's first steps every row in use is built
            return
        missing = last[~built]
        cols = self.columns[:, :, None]  # (V, H, 1)
        for row in np.unique(missing):
            if row == len(self.columns):
                self._gains[row] = self.counts(cols)
            else:
                first = np.broadcast_to(self.columns[row][None, :, None], cols.shape)
                self._gains[row] = self.counts(np.concatenate([first, cols], 2)) - self.counts(first[:1])
            self._observed_gains[row] = np.clip(self._gains[row], 0.0, 2.0) / 2.0  # as observe maps them
            self._built[row] = True

    def reset(self, n: int) -> None:
        self._potential = np.zeros(n)

    def shaping(
        self, prefix: np.ndarray, target_values: np.ndarray, done: bool, counts: np.ndarray | None = None
    ) -> np.ndarray:
        """``(n,)`` shaping reward of the step that wrote the last column of ``prefix`` (``counts``:
        ``counts(prefix)`` if already computed)."""
        n = prefix.shape[0]
        if not self.active or self.shaping_weight == 0:
            return np.zeros(n)
        if self._potential.shape != (n,):
            self.reset(n)
        new = np.zeros(n)
        if not done:
            t = prefix.shape[2]
            err = np.abs((self.counts(prefix) if counts is None else counts) - target_values * t / self.per) / self.tols
            new = -self.shaping_weight * self.per / self.n_columns * err.mean(1)
        reward, self._potential = new - self._potential, new
        return reward


class TermShaping:
    """Potential-based shaping from reward terms scored on the level so far (see the module).

    ``terms``: names of terms of ``reward`` (a RewardSet); their weight is the term's weight at the
    current training progress. Each call at a segment end scores the prefix with those terms only.
    """

    def __init__(self, reward, terms: Sequence[str], n_columns: int, per: int = 16):
        missing = [t for t in terms if t not in reward.names]
        if missing:
            raise EnvConfigError(f"shape_terms {missing}: not terms of the reward set; use names among {reward.names}")
        # scoring prefixes must not touch a term's state (a novelty archive, a running normaliser)
        stateful = [
            t.name for t in reward.terms if t.name in terms and (_module_state(t.module) or _updates(t.transform))
        ]
        if stateful:
            raise EnvConfigError(
                f"shape_terms {stateful}: these terms keep state (an archive or running statistics) that "
                "scoring partial levels would change; shape only stateless terms"
            )
        self.reward, self.terms = reward, list(terms)
        self.n_columns, self.per = int(n_columns), int(per)
        self._potential = np.zeros(0)

    def reset(self, n: int) -> None:
        self._potential = np.zeros(n)

    def shaping(self, prefix: np.ndarray, done: bool, progress: float = 0.0, **context) -> np.ndarray:
        """``(n,)`` shaping of the step that wrote the last column of ``prefix``; changes only when a
        segment closes (every ``per`` columns) and at the level's end (potential back to 0)."""
        n, t = prefix.shape[0], prefix.shape[2]
        if not self.terms:
            return np.zeros(n)
        if self._potential.shape != (n,):
            self.reset(n)
        if not done and t % self.per:
            return np.zeros(n)
        new = np.zeros(n)
        if not done:
            new = sum(self.potentials(prefix, progress, **context).values(), np.zeros(n))
        reward, self._potential = new - self._potential, new
        return reward

    def potentials(self, prefix: np.ndarray, progress: float = 0.0, **context) -> dict[str, np.ndarray]:
        """Per term, ``w * f(prefix) * t / T`` for a stack of prefixes ``(n, H, t)`` (``t`` a
        multiple of ``per``; at ``t = T`` the term's whole-level reward): the potential of a level
        that stops here, without touching the shaping state (an env scores candidate prefixes with it)."""
        t, weights = prefix.shape[2], self.reward.weights_at(progress)
        out = {}
        for name in self.terms:
            vals = self.reward.term_values(name, list(prefix), progress, **context)
            out[name] = weights[name] * np.nan_to_num(np.array(vals, np.float64), nan=0.0) * t / self.n_columns
        return out

    @property
    def potential(self) -> np.ndarray:
        """The current potential per level (0 after a reset and at a level's end)."""
        return self._potential


def _updates(transform) -> bool:
    """True for a transform that learns from what it sees (a running normaliser with update on)."""
    return bool(getattr(transform, "update", False))


def _module_state(module) -> bool:
    """True for a module that saves state with checkpoints (a novelty archive)."""
    state_dict = getattr(module, "state_dict", None)
    return bool(state_dict()) if callable(state_dict) else False
