"""Super Mario Bros configurations of the generic environments (the levels domain's envs).

``rlcreate/MarioLatent-v0`` — :func:`make_mario_latent`: the shipped level VAE writes a level of
``n_segments`` 16-column segments; each action is the next segment's latent.
``rlcreate/MarioLatent-v1`` — :func:`make_mario_latent_v1`: a bounded-prior generator (default the
column LM decoding uniform noise; or the level GAN) writing context-conditioned segments, with
residual actions bounded by its prior (card: :data:`V1_CARD`).
``rlcreate/MarioTokens-v1`` — :func:`make_mario_tokens`: the shipped column LM writes a level column
by column; each action picks one of its top-k next columns (the card is
:class:`rlcreate.envs.column_tokens.ColumnTokensEnv`'s).

The card below is MarioLatent-v0's.

Description
    A policy builds a Mario level left to right. Each step's action is a latent vector; the VAE
    decodes it into the next 14 x 16 segment. Control targets (e.g. enemies per segment, gaps,
    difficulty) are sampled per episode and observed, so one policy serves many requests.
Action Space
    ``Box(-1, 1, (32,), float32)``, multiplied by the generator's ``action_scale`` (2.5 prior std).
Observation Space
    ``Box(0, 1, (2F + 14 + 1 + T,), float32)``: F = 9 features of the last segment and their mean over
    the level so far (:func:`segment_features`), the 14 rows where Mario can stand at the seam
    (fast solver), progress ``t / n_segments``, and the T control targets scaled to [0, 1].
Rewards
    The recipe's reward set on the new segment, with context ``position``, ``targets`` and
    ``seam_state``; default terms in :data:`DEFAULT_REWARDS` (playability with the seam checked,
    novelty vs corpus + archive, style coherence, engagement curve fit, target match). Each term is in
    ``info["rewards"]``.
Starting State
    An empty level; targets drawn uniformly from their ranges with the env's RNG.
Episode End
    ``terminated`` when the level has ``n_segments`` segments (the level is complete: there is no
    future to bootstrap, so this is a terminal state, not a time limit). The level is in
    ``info["level"]``.
Arguments
    ``n_segments`` (8), ``targets`` ({name: [low, high]}), ``reward`` (a RewardSet / recipe rewards
    dict; default :data:`DEFAULT_REWARDS`), ``generator`` (a latent generator; default the shipped
    VAE), ``n_envs`` (for :func:`make_mario_latent_vec`).
Version History
    v0: initial version.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.envs.column_tokens import ColumnTokensCore, ColumnTokensEnv, ColumnTokensVecEnv
from rlcreate.envs.core_vec_env import EnvConfigError
from rlcreate.envs.latent_level import LatentLevelCore, LatentLevelEnv, LatentLevelVecEnv
from rlcreate.levels import tiles as T
from rlcreate.levels.features import FEATURE_NAMES, segment_features
from rlcreate.levels.validity import MarioStructure

__all__ = [
    "segment_features",
    "SolverSeam",
    "MarioStructure",
    "MarioRenderer",
    "DEFAULT_REWARDS",
    "DEFAULT_TARGETS",
    "make_mario_latent",
    "make_mario_latent_vec",
    "make_mario_tokens",
    "make_mario_tokens_vec",
    "default_reward_set",
    "FEATURE_NAMES",
    "make_mario_latent_v1",
    "make_mario_latent_v1_vec",
    "V1_CARD",
]

#: default reward terms of the Mario envs (term -> recipe spec): the one definition, used by every
#: recipe that leaves `rewards:` out
DEFAULT_REWARDS: dict[str, dict] = {
    "playability": {"weight": 1.0},
    # novelty is a sweet spot: corpus segments sit at ~0.04 from their nearest training window and
    # a flat-ground copy at ~0.03 once it is in the archive; 0.08 asks for new but not chaotic (at
    # 0.10 a 200k-step policy drifted to jagged terrain the A* agent beat only 75% of the time)
    "novelty": {"weight": 1.0, "reward": "level_novelty", "transform": {"sweet_spot": {"target": 0.08, "width": 0.04}}},
    "coherence": {"weight": 0.5, "reward": "style_coherence"},
    "structure": {"weight": 0.5, "reward": "validity"},
    "engagement": {"weight": 1.0, "reward": "difficulty_curve"},
    "targets": {"weight": 1.0, "reward": "target_match"},
}
DEFAULT_TARGETS = {"enemies": [0.0, 2.0], "gaps": [0.0, 1.0]}


class SolverSeam:
    """Seam state = the fast solver's exit states at the right edge of the level so far (row x jump
    phase, flattened): the next segment is solved from them, so seams are checked exactly, jumps
    in flight included. Observed as the 14 rows where Mario can stand at the edge. A segment Mario
    cannot cross leaves an empty state; the next one then starts fresh, so one bad segment does not
    zero every later one. ``apex_steps`` below the solver's default shortens every jump by that many
    columns: a safety margin (the A* agent misses jumps the solver makes at full length)."""

    def __init__(self, apex_steps: int | None = None):
        from rlcreate.levels.solver import APEX_STEPS, N_PHASES

        self.phases = N_PHASES
        self.size = T.HEIGHT * N_PHASES
        self.observed_size = T.HEIGHT
        self.apex_steps = APEX_STEPS if apex_steps is None else int(apex_steps)

    def initial(self, n: int) -> np.ndarray:
        return np.zeros((n, self.size))  # empty = "start fresh" (the solver's default start)

    def advance(self, segments: np.ndarray, state: np.ndarray) -> np.ndarray:
        from rlcreate.levels.solver import solve_batch

        *_, exit_state = solve_batch(segments, self.start_states(state), apex_steps=self.apex_steps)
        return exit_state.reshape(len(segments), -1).astype(np.float64)

    def start_states(self, state: np.ndarray) -> np.ndarray:
        return np.asarray(state).reshape(len(state), T.HEIGHT, self.phases) > 0

    def alive_after(self, columns: np.ndarray, state: np.ndarray) -> np.ndarray:
        """(n, k) bool: ``alive(advance(c, state))`` for each of ``k`` candidate columns ``(n, k, 14)``
        per row, in one compiled call (MarioTokens' ``playable_only`` mask checks every offer)."""
        from rlcreate.levels.solver import alive_after_column

        return alive_after_column(columns, self.start_states(state), apex_steps=self.apex_steps)

    def alive_after_exits(self, columns: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`alive_after` and, per candidate, its exit states in a compact form ``(n, k, ...)``
        (the same compiled call's); :meth:`state_from_exits` on the chosen candidates' gives what
        :meth:`advance` gives after them, without solving them again."""
        from rlcreate.levels.solver import alive_after_column_exits

        return alive_after_column_exits(columns, self.start_states(state), apex_steps=self.apex_steps)

    def state_from_exits(self, exits: np.ndarray) -> np.ndarray:
        """``(n, ...)`` compact exit states (one candidate per row of :meth:`alive_after_exits`'s)
        -> ``(n, size)`` states, as :meth:`advance` returns them."""
        from rlcreate.levels.solver import exit_states_from_bits

        return exit_states_from_bits(exits).reshape(len(exits), -1).astype(np.float64)

    def alive(self, state: np.ndarray) -> np.ndarray:
        """(n,) bool: Mario is somewhere above the bottom row (in the bottom row he is falling into
        a pit: no next column can save him)."""
        return np.asarray(self.start_states(state)[:, :-1].any(axis=(1, 2)))

    def observe(self, state: np.ndarray) -> np.ndarray:
        """Rows where Mario stands (phase 0) or can be in any phase at the edge."""
        return np.asarray(self.start_states(state).any(axis=2), np.float64)


class MarioRenderer:
    """Text and image rendering of Mario grids for the envs' ``render()``."""

    @staticmethod
    def to_text(grid: np.ndarray) -> str:
        return T.level_to_text(grid)

    @staticmethod
    def to_image(grid: np.ndarray):
        from rlcreate.levels.render import render_level

        return render_level(grid)


def latent_generator(generator: Any = None):
    """A latent generator object: given, loaded from a VAE folder path, or the shipped VAE."""
    from rlcreate.levels.generators.latent import LatentLevelGenerator

    if generator is None or isinstance(generator, str) or hasattr(generator, "__fspath__"):
        return LatentLevelGenerator.load(generator)
    if not hasattr(generator, "decode"):
        raise EnvConfigError(
            f"generator = {type(generator).__name__}: pass a latent generator, a level-VAE "
            "folder or None (the shipped VAE)"
        )
    return generator


def default_reward_set(rewards: dict[str, dict] | None = None, nonfinite: str = "raise"):
    """The Mario default reward terms (or ``rewards`` in recipe form) as a RewardSet."""
    from rlcreate.recipe import build_reward_set, parse_recipe

    recipe = parse_recipe(
        {"env": {"id": "rlcreate/MarioLatent-v0"}, "rewards": rewards or DEFAULT_REWARDS, "nonfinite": nonfinite}
    )
    return build_reward_set(recipe)


def _reward(reward: Any):
    return default_reward_set(reward) if reward is None or isinstance(reward, dict) else reward


def _core(n: int, n_segments: int, targets, reward, generator) -> LatentLevelCore:
    return LatentLevelCore(
        latent_generator(generator),
        _reward(reward),
        segment_features,
        len(FEATURE_NAMES),
        n_segments=n_segments,
        targets=DEFAULT_TARGETS if targets is None else targets,
        seam=SolverSeam(),
        n=n,
        renderer=MarioRenderer(),
    )


def make_mario_latent(
    n_segments: int = 8,
    targets: dict | None = None,
    reward: Any = None,
    generator: Any = None,
    render_mode: str | None = None,
) -> LatentLevelEnv:
    """Single-env ``rlcreate/MarioLatent-v0`` (what ``gymnasium.make`` returns)."""
    return LatentLevelEnv(_core(1, n_segments, targets, reward, generator), render_mode=render_mode)


def make_mario_latent_vec(
    n_envs: int = 16,
    n_segments: int = 8,
    targets: dict | None = None,
    reward: Any = None,
    generator: Any = None,
    seed: int | None = None,
) -> LatentLevelVecEnv:
    """Batched ``MarioLatent-v0`` as an SB3 VecEnv: ``n_envs`` levels per decoder call."""
    return LatentLevelVecEnv(_core(n_envs, n_segments, targets, reward, generator), seed=seed)


#: MarioLatent-v1 ``generator`` values that are the column LM decoding noise (None: the default)
COLUMN_LM_GENERATORS = (None, "column_lm", "column_lm_elements")


def bounded_generator(generator: Any = None, extra_controls: tuple[str, ...] = (), element_bias: dict | None = None):
    """A bounded-prior latent generator: None (default) the column LM decoding uniform noise
    (:class:`rlcreate.levels.gan.ColumnLMLatent`), ``"column_lm_elements"`` the same with its
    columns lined up by enemies and gaps (``order="elements"``), ``"gan"`` the shipped level GAN, a
    level-GAN folder path, or a generator object. ``extra_controls``: the column LM's optional
    element channels (:data:`rlcreate.levels.gan.ELEMENT_CONTROLS`). ``element_bias``: the column
    LM's logit offsets per element (None: :data:`rlcreate.levels.gan.DEFAULT_ELEMENT_BIAS`)."""
    from rlcreate.levels.gan import ELEMENT_CONTROLS, ColumnLMLatent, GANInputError, LevelGAN

    if element_bias is not None:
        if generator not in COLUMN_LM_GENERATORS:
            raise EnvConfigError(
                f"element_bias needs the column LM generator (generator: column_lm); got generator = {generator!r}"
            )
        if not isinstance(element_bias, dict):
            raise EnvConfigError(f"element_bias = {element_bias!r}: write a mapping such as {{coins: 0.5, pipes: 0.3}}")

    if extra_controls and generator not in COLUMN_LM_GENERATORS:
        if set(extra_controls) <= set(getattr(generator, "control_names", ())):
            return generator  # a generator object that already has these channels
        raise EnvConfigError(
            f"element_channels = {list(extra_controls)} needs the column LM generator (generator: column_lm); "
            f"got generator = {generator!r}"
        )
    bad = [c for c in extra_controls if c not in ELEMENT_CONTROLS]
    if bad or len(set(extra_controls)) != len(extra_controls):
        raise EnvConfigError(
            f"element_channels = {list(extra_controls)}: use distinct names among {', '.join(ELEMENT_CONTROLS)}"
        )
    if generator in COLUMN_LM_GENERATORS:  # "column_lm_elements": the same samples, columns lined up by enemies / gaps
        order = "elements" if generator == "column_lm_elements" else "probability"
        try:
            return ColumnLMLatent(
                lm=shared_column_lm(), order=order, extra_controls=tuple(extra_controls), element_bias=element_bias
            )
        except GANInputError as e:  # an unknown element or a non-numeric offset
            raise EnvConfigError(str(e)) from None
    if generator == "gan":
        return LevelGAN.load()
    if isinstance(generator, str) or hasattr(generator, "__fspath__"):
        return LevelGAN.load(generator)
    if not hasattr(generator, "decode"):
        raise EnvConfigError(
            f"generator = {type(generator).__name__}: pass None / 'column_lm' (the column LM "
            "decoding uniform noise), 'column_lm_elements', 'gan' (the shipped level GAN), a level-GAN folder or a "
            "latent generator"
        )
    return generator


def _core_v1(
    n: int,
    n_segments: int,
    targets,
    reward,
    generator,
    latent_mode: str,
    radius: float,
    reward_every: str,
    control_channel: bool = False,
    observe_deficits: bool = False,
    target_shaping: float = 0.0,
    control_guidance: bool = False,
    preview: bool = False,
    playability_shaping: float = 0.0,
    control_cap: bool = False,
    element_channels: Any = (),
    residual_action: bool = True,
    observe_profile: bool = False,
    shape_terms: Any = (),
    candidates: int = 0,
    candidate_terms: Any = (),
    candidate_action: str = "box",
    element_bias: dict | None = None,
) -> LatentLevelCore:
    from rlcreate.levels.rewards import TARGET_MEASURES

    for name, flag in (
        ("observe_deficits", observe_deficits),
        ("control_channel", control_channel),
        ("control_guidance", control_guidance),
        ("preview", preview),
        ("control_cap", control_cap),
        ("residual_action", residual_action),
        ("observe_profile", observe_profile),
    ):
        if not isinstance(flag, bool):
            raise EnvConfigError(f"{name} = {flag!r}: use true or false")
    if target_shaping and not observe_deficits:
        raise EnvConfigError(
            f"target_shaping = {target_shaping!r} needs observe_deficits: true (the policy must see the "
            "schedule the shaping rewards)"
        )
    if isinstance(element_channels, str) or not isinstance(element_channels, (list, tuple)):
        raise EnvConfigError(
            f"element_channels = {element_channels!r}: use a list of names, e.g. [coins, pipes, qblocks, gap_len]"
        )
    for key, names in (("shape_terms", shape_terms), ("candidate_terms", candidate_terms)):
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise EnvConfigError(f"{key} = {names!r}: use a list of reward term names, e.g. [profile]")
    if element_channels and not control_channel:
        raise EnvConfigError("element_channels needs control_channel: true (they are more entries of that channel)")
    return LatentLevelCore(
        bounded_generator(generator, tuple(element_channels), element_bias),
        _reward(reward),
        segment_features,
        len(FEATURE_NAMES),
        n_segments=n_segments,
        targets=DEFAULT_TARGETS if targets is None else targets,
        seam=SolverSeam(),
        n=n,
        renderer=MarioRenderer(),
        latent_mode=latent_mode,
        radius=radius,
        reward_every=reward_every,
        control_channel=control_channel,
        target_measures=TARGET_MEASURES if observe_deficits else None,
        target_shaping=target_shaping,
        control_guidance=control_guidance,
        preview=preview,
        playability_shaping=playability_shaping,
        control_cap=control_cap,
        residual_action=residual_action,
        profile_measures=profile_measures() if observe_profile else None,
        shape_terms=tuple(shape_terms),
        candidates=candidates,
        candidate_terms=tuple(candidate_terms),
        candidate_action=candidate_action,
    )


def profile_measures() -> dict:
    """The per-level element profile's elements that no control target covers (pipes, ?-blocks,
    coins), each as (counts of a grid stack, the training windows' mean per 128 columns, tolerance 2):
    what ``observe_profile`` shows the policy."""
    from rlcreate.levels.quality import ELEMENTS
    from rlcreate.levels.value_rewards import human_element_stats

    mu = human_element_stats(128)[0]
    tiles = {"pipes": (T.PIPE_TL,), "question_blocks": (T.QUESTION, T.QCOIN), "coins": (T.COIN,)}

    def counter(ids):
        return lambda g: np.isin(g, ids).sum(axis=(1, 2))

    return {e: (counter(ids), float(mu[ELEMENTS.index(e)]), 2.0) for e, ids in tiles.items()}


def make_mario_latent_v1(
    n_segments: int = 8,
    targets: dict | None = None,
    reward: Any = None,
    generator: Any = None,
    latent_mode: str = "residual",
    radius: float = 1.5,
    reward_every: str = "end",
    render_mode: str | None = None,
    control_channel: bool = False,
    observe_deficits: bool = False,
    target_shaping: float = 0.0,
    control_guidance: bool = False,
    preview: bool = False,
    playability_shaping: float = 0.0,
    control_cap: bool = False,
    element_channels: Any = (),
    residual_action: bool = True,
    observe_profile: bool = False,
    shape_terms: Any = (),
    candidates: int = 0,
    candidate_terms: Any = (),
    candidate_action: str = "box",
    element_bias: dict | None = None,
) -> LatentLevelEnv:
    """Single-env ``rlcreate/MarioLatent-v1`` (see :data:`V1_CARD`)."""
    return LatentLevelEnv(
        _core_v1(
            1,
            n_segments,
            targets,
            reward,
            generator,
            latent_mode,
            radius,
            reward_every,
            control_channel,
            observe_deficits,
            target_shaping,
            control_guidance,
            preview,
            playability_shaping,
            control_cap,
            element_channels,
            residual_action,
            observe_profile,
            shape_terms,
            candidates,
            candidate_terms,
            candidate_action,
            element_bias,
        ),
        render_mode=render_mode,
    )


def make_mario_latent_v1_vec(
    n_envs: int = 16,
    n_segments: int = 8,
    targets: dict | None = None,
    reward: Any = None,
    generator: Any = None,
    seed: int | None = None,
    latent_mode: str = "residual",
    radius: float = 1.5,
    reward_every: str = "end",
    control_channel: bool = False,
    observe_deficits: bool = False,
    target_shaping: float = 0.0,
    control_guidance: bool = False,
    preview: bool = False,
    playability_shaping: float = 0.0,
    control_cap: bool = False,
    element_channels: Any = (),
    residual_action: bool = True,
    observe_profile: bool = False,
    shape_terms: Any = (),
    candidates: int = 0,
    candidate_terms: Any = (),
    candidate_action: str = "box",
    element_bias: dict | None = None,
) -> LatentLevelVecEnv:
    """Batched ``MarioLatent-v1`` as an SB3 VecEnv: ``n_envs`` levels per decoder call."""
    return LatentLevelVecEnv(
        _core_v1(
            n_envs,
            n_segments,
            targets,
            reward,
            generator,
            latent_mode,
            radius,
            reward_every,
            control_channel,
            observe_deficits,
            target_shaping,
            control_guidance,
            preview,
            playability_shaping,
            control_cap,
            element_channels,
            residual_action,
            observe_profile,
            shape_terms,
            candidates,
            candidate_terms,
            candidate_action,
            element_bias,
        ),
        seed=seed,
    )


#: The card of ``rlcreate/MarioLatent-v1`` (differences from v0's card above).
V1_CARD = """
Description
    As v0, but the generator has a uniform [-1, 1]^d prior and every segment after the first is
    conditioned on the level so far, so the level continues across seams. Default (``generator=None``):
    the shipped column LM decoding uniform noise (:class:`rlcreate.levels.gan.ColumnLMLatent`, d = 16,
    one quantile per column, prompted with the last 32 columns, pipes kept whole across seams: the
    env tells it which segment is the level's last); ``generator="column_lm_elements"``: the same
    samples with the columns lined up by enemies and gaps; ``generator="gan"``:
    the shipped level GAN (rlcreate/models/mario-gan, d = 32, conditioned on the last 4 columns).
Action Space
    ``Box(-1, 1, (d,), float32)``. ``latent_mode="residual"`` (default): a fresh prior draw z0 per
    step (observed) and ``z = tanh(atanh(z0) + radius * a)``: always inside the prior's support,
    and ``a = 0`` decodes the generator's own sample. ``latent_mode="direct"``: ``z = a``, the box is
    the prior. ``info["latent"]`` holds the share of saturated action entries (|a| > 0.99) and the
    RMS of z, logged as ``latent/saturated`` and ``latent/norm``. ``control_channel=True`` (a
    generator with ``control_names``, e.g. the column LM decoding noise): 2 more entries, a
    *designed* control channel (not a learned latent): logit shifts of the LM's enemy columns and
    gap starts for the segment (:class:`rlcreate.levels.gan.ColumnLMLatent`). With
    ``control_guidance=True`` those entries are added to a hand-built guide that asks each segment
    for what the targets' schedule still needs (the generator's measured control-to-rate table,
    inverted), so ``a = 0`` already follows the targets and the policy learns corrections.
    ``control_cap=True`` (with the guide): the generator may not write more enemies (tiles) or gap
    runs than ``round(target x columns / 16)`` per level allows (``decode(..., limit=)``: columns
    over the cap leave the LM's distribution, unless the pipe rule leaves nothing else): enemies come
    in groups, so a shift alone overshoots low requests, and later segments cannot take one back.
    ``preview=True`` (residual mode): one more entry, a gate: ``>= 0`` keeps the previewed segment
    (what ``a = 0`` writes: z0 with the guide), ``< 0`` redraws it from a fresh prior draw moved by
    the residual, with the policy's control entries (``info["latent"]["redraw"]``, logged as
    ``latent/redraw``). A kept preview is the step's segment: a redraw costs one more decode.
    ``element_channels=[coins, pipes, qblocks, gap_len]`` (with ``control_channel``): more designed
    entries of the channel, logit shifts of columns holding a coin, opening a pipe, holding a
    ?-block, or continuing a gap (:data:`rlcreate.levels.gan.ELEMENT_CONTROLS`); no guide, so
    ``a = 0`` is unchanged. ``residual_action=False``: no latent entries, every segment decodes its
    prior draw z0 and the policy acts through the control channel only. ``candidates=K``: the env
    decodes K segments before each step (z0 and K - 1 fresh prior draws, all with the guide) and
    the action is K - 1 entries: candidate k is written if its entry is the largest and >= 0.5,
    else candidate 0 (so ``a = 0`` is the generator + guide); K decodes per step
    (``latent/redraw``: the share of steps that took another candidate). ``candidate_terms=[names]``
    (with ``candidates``): the observation also shows, per candidate, the change of each named
    reward term's shaping potential if it is written, and their sum (see Observation Space).
    ``candidate_action="choice"`` (with ``candidates``): the action is ``Discrete(K)``, the index of
    the candidate to write, instead of the K - 1 Box entries; every action then writes a prior draw
    unchanged (no box, no saturation: ``latent/saturated`` is 0), and a policy that picks uniformly
    writes the generator's own distribution. ``element_bias`` ({coins: b, pipes: b, question_blocks:
    b}; column LM generators only): the column LM's logit offsets of the columns holding each
    element (default :data:`rlcreate.levels.gan.DEFAULT_ELEMENT_BIAS`); ``rlcreate demo`` and
    ``rlcreate calibrate`` fit them after training so the policy writes those elements at the human
    rate.
Observation Space
    v0's, plus z0 scaled to [0, 1] (d values) in residual mode, plus (``observe_deficits=True``)
    per target the schedule deficit ``(target * columns / 16 - count so far) / tolerance``, squashed
    to [0, 1] (0.5 = on schedule; the token env's :class:`rlcreate.envs.target_control.TargetControl`).
    With ``preview=True`` also the previewed segment's 9 features, whether the level is still
    crossable after it (the fast solver's seam), and (with ``observe_deficits``) the deficits if
    it is kept. ``observe_profile=True``: per element of the profile term that no target covers
    (pipes, ?-blocks, coins), how far the level so far is behind the training windows' mean rate,
    squashed (0.5 = on the human rate). With ``candidates=K``, per candidate: its 9 features,
    crossable after it, and the target / profile deficits after it; with ``candidate_terms``, per
    candidate and named term ``0.5 + 0.5 tanh(delta / 0.2)`` of ``delta``, the change of
    ``w * term(level so far) * columns / 128`` if the candidate is written (batch terms scored as if
    every level took that slot), then the same for their sum. With the same terms in
    ``shape_terms`` that sum is what the step is paid for them.
Rewards
    ``reward_every="end"`` (default): 0 until the last segment, then the recipe's reward set on the
    whole level, with context ``action`` / ``latent`` (every step's, flattened) for prior terms such
    as ``residual_prior``. ``reward_every="segment"``: v0's per-segment scoring.
    ``target_shaping=w`` (needs ``observe_deficits``) adds potential-based shaping toward the
    targets' schedule after every segment (``info["target_shaping"]``); it sums to 0 over each
    level, so returns are unchanged. ``playability_shaping=w`` adds the same kind of shaping for
    crossability (w x the share of segments crossed from the level's start without a fall,
    ``info["playability_shaping"]``), also summing to 0 over each level. ``shape_terms=[names]``
    does the same for reward terms that score a level so far (``info["term_shaping"]``).
Version History
    v1: bounded-prior generator, context-conditioned segments, residual actions, level-end rewards;
    later, opt-in keyword arguments (defaults keep v1's earlier behaviour): ``control_channel``,
    ``observe_deficits``, ``control_guidance``, ``target_shaping``, ``preview``, ``playability_shaping``,
    ``control_cap``, ``element_channels``, ``residual_action``, ``observe_profile``, ``shape_terms``,
    ``candidates``, ``candidate_terms``, ``candidate_action``, ``element_bias``.
"""


def shared_column_lm(path: str | None = None):
    """The column LM of ``path`` (None: the shipped one), loaded once per process: the envs of a
    ``gym.make_vec(..., vectorization_mode="sync")`` or a ``SyncVectorEnv`` share it (each env keeps
    its own KV cache; the weights are only read) instead of holding one copy each. A folder whose
    files changed since (a newly trained model saved there) is loaded again."""
    from rlcreate.levels.generators.column_lm import default_column_lm_path

    folder = Path(path) if path is not None else default_column_lm_path()
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())) if folder.is_dir() else ()
    return _load_column_lm(str(folder.resolve()), stamp)


@functools.lru_cache(maxsize=4)
def _load_column_lm(folder: str, stamp: tuple):
    from rlcreate.levels.generators.column_lm import ColumnLM

    return ColumnLM.load(folder)


def _tokens_core(
    n: int,
    n_columns: int,
    k: int,
    reward: Any,
    targets: dict | None,
    lm: Any,
    reward_every: str,
    structure: bool = True,
    playable_margin: int = 0,
    element_bias: dict | None = None,
    **kwargs: Any,
) -> ColumnTokensCore:
    from rlcreate.levels.generators.column_lm import N_SPECIAL, ColumnLM, element_logit_offset
    from rlcreate.levels.solver import APEX_STEPS

    if isinstance(playable_margin, bool) or playable_margin not in range(APEX_STEPS + 1):
        raise EnvConfigError(
            f"playable_margin = {playable_margin!r}: use an integer in 0..{APEX_STEPS} (columns "
            "by which playable_only shortens the solver's longest jumps)"
        )

    if lm is None or isinstance(lm, str) or hasattr(lm, "__fspath__"):
        lm = shared_column_lm(None if lm is None else str(lm))
    elif not isinstance(lm, ColumnLM):
        raise EnvConfigError(
            f"lm = {type(lm).__name__}: pass a ColumnLM, a column-LM folder or None (the shipped model)"
        )
    if element_bias is not None and not isinstance(element_bias, dict):
        raise EnvConfigError(f"element_bias = {element_bias!r}: write a mapping such as {{coins: 0.5, pipes: 0.3}}")
    try:
        offset = element_logit_offset(lm.columns, element_bias or {})
    except ValueError as e:
        raise EnvConfigError(str(e)) from None
    from rlcreate.levels.rewards import TARGET_MEASURES

    return ColumnTokensCore(
        lm,
        _reward(reward),
        segment_features,
        len(FEATURE_NAMES),
        n_columns=n_columns,
        k=k,
        targets=DEFAULT_TARGETS if targets is None else targets,
        reward_every=reward_every,
        n=n,
        rule=MarioStructure(lm.columns, N_SPECIAL) if structure else None,
        seam=SolverSeam(),
        reach_seam=SolverSeam(apex_steps=APEX_STEPS - playable_margin),
        n_special=N_SPECIAL,
        renderer=MarioRenderer(),
        target_measures=TARGET_MEASURES,
        logit_bias=offset if offset.any() else None,
        **kwargs,
    )


def make_mario_tokens(
    n_columns: int = 64,
    k: int = 8,
    reward: Any = None,
    targets: dict | None = None,
    lm: Any = None,
    reward_every: str = "end",
    render_mode: str | None = None,
    **kwargs: Any,
) -> ColumnTokensEnv:
    """Single-env ``rlcreate/MarioTokens-v1`` (what ``gymnasium.make`` returns). ``kwargs``:
    ``min_prob``, ``hidden_clip``, ``structure``, ``target_shaping``, ``playable_only``,
    ``playable_margin`` (0..2 columns by which playable_only's solver shortens every jump; default 0:
    16 guided-LM levels per setting were beaten by the A* agent 69%, 69%, 75% with margins 0, 1, 2),
    ``element_bias`` ({coins: b, pipes: b}: logit offsets of the columns holding a coin or a pipe's
    top, added before the top-k so the offers and the ``lm_prior`` reference are calibrated; the
    likelihood rewards still read the LM's own log-probs)."""
    return ColumnTokensEnv(
        _tokens_core(1, n_columns, k, reward, targets, lm, reward_every, **kwargs), render_mode=render_mode
    )


def make_mario_tokens_vec(
    n_envs: int = 16,
    n_columns: int = 64,
    k: int = 8,
    targets: dict | None = None,
    reward: Any = None,
    seed: int | None = None,
    lm: Any = None,
    reward_every: str = "end",
    **kwargs: Any,
) -> ColumnTokensVecEnv:
    """Batched ``MarioTokens-v1`` as an SB3 VecEnv: ``n_envs`` levels per LM forward pass."""
    return ColumnTokensVecEnv(
        _tokens_core(n_envs, n_columns, k, reward, targets, lm, reward_every, **kwargs), seed=seed
    )
