"""Latent level generator with a bounded prior: a context-conditioned WGAN-GP over 14 x 16 segments.

Why a GAN with a *uniform* prior: an RL policy's action box ``[-1, 1]^d`` is then exactly the
generator's prior support, so every action decodes to something the generator was trained to make
(a Gaussian-prior VAE decoder sees the box's corners as far-out latents and writes noise there).

Why a context input: a level is written segment by segment, and each segment is conditioned on the
last ``context`` columns of the one before (a null context for the first segment), so ground,
pipes and gaps continue across the seam and a level reads as one level, not stitched windows.

:class:`GANConfig` is the architecture (saved as ``config.json``); :class:`SegmentGenerator` the
torch module; :class:`LevelGAN` wraps trained weights behind the latent-generator protocol::

    gan = LevelGAN.load()                              # rlcreate/models/mario-gan/
    seg = gan.decode(z)                                # z in [-1, 1]^d: (b, 14, 16), null context
    seg2 = gan.decode(z2, context=seg[:, :, -4:])      # the next segment, continuing the first
    levels = gan.sample_levels(64, n_segments=8, seed=0)   # (64, 14, 128)

Decoding is deterministic (argmax over tile logits); all randomness is in ``z``.
Trained by ``scripts/train_level_gan.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rlcreate.errors import UserError
from rlcreate.levels.tiles import HEIGHT, TILES

__all__ = [
    "GANConfig",
    "SegmentGenerator",
    "SegmentCritic",
    "LevelGAN",
    "ColumnLMLatent",
    "GANInputError",
    "default_gan_path",
    "one_hot",
]

N_TILES = len(TILES)


#: logit offsets of :class:`ColumnLMLatent` (see its docstring), chosen on the training split
DEFAULT_ELEMENT_BIAS = {"coins": 0.1, "pipes": 0.1}
#: the optional element channels of :class:`ColumnLMLatent` (``extra_controls``) and their logit
#: scales (a control value ``c`` in [-1, 1] shifts that kind of column by ``scale * c``)
ELEMENT_CONTROLS = {"coins": 1.5, "pipes": 1.5, "qblocks": 1.5, "gap_len": 2.0}


class GANInputError(UserError):
    """A latent or context batch of the wrong shape or range was passed to the GAN."""


def default_gan_path() -> Path:
    """Folder of the shipped GAN (package data)."""
    return Path(__file__).resolve().parent.parent / "models" / "mario-gan"


@dataclass
class GANConfig:
    """Architecture of :class:`SegmentGenerator` / :class:`SegmentCritic`."""

    latent_dim: int = 32
    """Size of z; the prior is uniform on [-1, 1]^latent_dim."""
    segment_width: int = 16
    """Columns per generated segment."""
    context: int = 4
    """Columns of the previous segment the generator (and critic) sees; 0: unconditioned."""
    channels: int = 64
    """Base channel count of the conv layers."""
    n_tiles: int = N_TILES
    """Tile vocabulary (rlcreate.levels.tiles.TILES)."""
    arch: str = "conv"
    """``conv`` (DCGAN-like, local structure by construction) or ``mlp`` (dense layers, ~5x cheaper
    to train on CPU; ``channels`` * 8 hidden units)."""
    action_scale: float = 1.0
    """z = action_scale * action: 1.0, the action box is the prior."""


def one_hot(grids: torch.Tensor, n_tiles: int = N_TILES) -> torch.Tensor:
    """(b, 14, W) tile ids -> (b, n_tiles, 14, W) float one-hot."""
    return torch.nn.functional.one_hot(grids.long(), n_tiles).permute(0, 3, 1, 2).float()


def _context_map(ctx: torch.Tensor | None, has: torch.Tensor, c: GANConfig, b: int) -> torch.Tensor:
    """(b, n_tiles + 1, 14, context): one-hot context tiles (zeros where absent) + a 'present' plane."""
    if c.context == 0:
        return torch.zeros(b, c.n_tiles + 1, HEIGHT, 0)
    if ctx is None:
        ctx = torch.zeros(b, c.n_tiles, HEIGHT, c.context)
    ctx = ctx * has.view(-1, 1, 1, 1)
    flag = has.view(-1, 1, 1, 1).expand(b, 1, HEIGHT, c.context)
    return torch.cat([ctx, flag], 1)


class SegmentGenerator(nn.Module):
    """z (b, d) + context one-hot (b, 13, 14, C) -> tile logits (b, 13, 14, W).

    z (with a summary of the context) is projected to a (2ch, 7, W/2) map and upsampled to
    (ch, 14, W); the context columns, embedded by a 1x1 conv, are put to its left, and two 3x3
    convs over the joint (14, C + W) canvas let the new columns continue the old ones; the logits
    of the last W columns are the segment.
    """

    def __init__(self, config: GANConfig | None = None):
        super().__init__()
        self.config = c = config or GANConfig()
        ch, w = c.channels, c.segment_width
        n_ctx = (c.n_tiles + 1) * HEIGHT * c.context
        if c.arch not in ("conv", "mlp"):
            raise GANInputError(f"arch = {c.arch!r}: use 'conv' or 'mlp'")
        if c.arch == "mlp":
            hid = 8 * ch
            self.mlp = nn.Sequential(
                nn.Linear(c.latent_dim + n_ctx, hid),
                nn.BatchNorm1d(hid),
                nn.ReLU(),
                nn.Linear(hid, hid),
                nn.BatchNorm1d(hid),
                nn.ReLU(),
                nn.Linear(hid, c.n_tiles * HEIGHT * w),
            )
            return
        self.ctx_summary = nn.Linear(n_ctx, 64) if c.context else None
        self.fc = nn.Sequential(
            nn.Linear(c.latent_dim + (64 if c.context else 0), 2 * ch * 7 * (w // 2)),
            nn.BatchNorm1d(2 * ch * 7 * (w // 2)),
            nn.ReLU(),
        )
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), nn.BatchNorm2d(ch), nn.ReLU())
        self.ctx_embed = nn.Conv2d(c.n_tiles + 1, ch, 1)
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, 1), nn.BatchNorm2d(ch), nn.ReLU(), nn.Conv2d(ch, c.n_tiles, 3, 1, 1)
        )

    def forward(self, z: torch.Tensor, ctx: torch.Tensor | None = None, has: torch.Tensor | None = None):
        c, b = self.config, len(z)
        has = torch.zeros(b) if has is None else has.float()
        cmap = _context_map(ctx, has, c, b)
        if c.arch == "mlp":
            return self.mlp(torch.cat([z, cmap.flatten(1)], 1)).view(b, c.n_tiles, HEIGHT, c.segment_width)
        h = z
        if c.context:
            assert self.ctx_summary is not None  # built whenever the config has context
            h = torch.cat([z, torch.relu(self.ctx_summary(cmap.flatten(1)))], 1)
        h = self.fc(h).view(b, 2 * c.channels, 7, c.segment_width // 2)
        h = self.up(h)
        if c.context:
            h = torch.cat([self.ctx_embed(cmap), h], 3)
        return self.body(h)[:, :, :, c.context :]


class SegmentCritic(nn.Module):
    """WGAN critic (two convs) over the context + segment canvas (b, 13 + 1, 14, C + W) -> score (b,).

    It sees the seam, so a segment that does not continue its context is scored as fake."""

    def __init__(self, config: GANConfig | None = None):
        super().__init__()
        self.config = c = config or GANConfig()
        ch = c.channels
        if c.arch == "mlp":
            self.net = nn.Sequential(
                nn.Flatten(),
                nn.Linear((c.n_tiles + 1) * HEIGHT * (c.context + c.segment_width), 8 * ch),
                nn.LeakyReLU(0.2),
                nn.Linear(8 * ch, 4 * ch),
                nn.LeakyReLU(0.2),
                nn.Linear(4 * ch, 1),
            )
            return
        self.net = nn.Sequential(
            nn.Conv2d(c.n_tiles + 1, ch, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(ch, 2 * ch, 4, 2, 1),
            nn.LeakyReLU(0.2),  # 7 x (C+W)/2
            nn.Flatten(),
            nn.Linear(2 * ch * 7 * ((c.context + c.segment_width) // 2), 1),
        )

    def forward(self, seg: torch.Tensor, ctx: torch.Tensor | None = None, has: torch.Tensor | None = None):
        """``seg``: (b, 13, 14, W) one-hot or soft tiles; ``ctx``: (b, 13, 14, C)."""
        c, b = self.config, len(seg)
        has = torch.zeros(b) if has is None else has.float()
        cmap = _context_map(ctx, has, c, b)
        seg = torch.cat([seg, torch.ones(b, 1, HEIGHT, c.segment_width)], 1)  # 'present' plane = 1
        return self.net(torch.cat([cmap, seg], 3)).squeeze(1)


class LevelGAN:
    """Latent-generator protocol over a trained :class:`SegmentGenerator`.

    Attributes: ``latent_dim``, ``segment_width``, ``height``, ``n_tiles``, ``context_columns``,
    ``action_scale`` (1.0) and ``prior = "uniform"`` (z in [-1, 1]^d). ``decode(z, context)`` is
    deterministic and batched.
    """

    prior = "uniform"

    def __init__(self, generator: SegmentGenerator):
        self.net = generator.eval()
        c = generator.config
        self.config = c
        self.latent_dim, self.segment_width, self.height = c.latent_dim, c.segment_width, HEIGHT
        self.n_tiles, self.context_columns, self.action_scale = c.n_tiles, c.context, float(c.action_scale)

    @classmethod
    def load(cls, path: str | Path | None = None) -> LevelGAN:
        """Load ``config.json`` + ``model.safetensors`` (None: the shipped model)."""
        from safetensors.torch import load_file

        folder = Path(path) if path is not None else default_gan_path()
        cfg_file, weights = folder / "config.json", folder / "model.safetensors"
        if not cfg_file.is_file() or not weights.is_file():
            raise GANInputError(
                f"{folder} is not a level-GAN folder: it needs config.json and model.safetensors "
                "(train one with scripts/train_level_gan.py, or pass None for the shipped model)"
            )
        net = SegmentGenerator(GANConfig(**json.loads(cfg_file.read_text())))
        net.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
        return cls(net)

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (fp32: BatchNorm statistics stay exact)."""
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        save_file(
            {k: v.detach().float().contiguous() for k, v in self.net.state_dict().items()},
            str(folder / "model.safetensors"),
        )
        return folder

    def _check(self, z, context, has_context) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise GANInputError(
                f"decode expects z of shape (batch, {self.latent_dim}), got {z.shape}"
                + ("; wrap a single latent as z[None]" if z.ndim == 1 else "")
            )
        if not np.isfinite(z).all() or np.abs(z).max(initial=0) > 1.0 + 1e-6:
            raise GANInputError("decode expects z inside the prior's support [-1, 1] (finite); clip the actions")
        b = len(z)
        if context is None:
            has = np.zeros(b, bool) if has_context is None else np.asarray(has_context, bool)
            if has.any():
                raise GANInputError("has_context is True for some rows but no context was given")
            return torch.from_numpy(z), None, torch.zeros(b)
        ctx = np.asarray(context)
        if ctx.shape != (b, HEIGHT, self.context_columns):
            raise GANInputError(
                f"context must have shape (batch, {HEIGHT}, {self.context_columns}) "
                f"(the previous segment's last columns), got {ctx.shape}"
            )
        if ctx.size and (ctx.min() < 0 or ctx.max() >= self.n_tiles):
            raise GANInputError(f"context tile ids must lie in [0, {self.n_tiles - 1}]")
        has = np.ones(b, bool) if has_context is None else np.asarray(has_context, bool).reshape(b)
        return (
            torch.from_numpy(z),
            one_hot(torch.from_numpy(ctx.astype(np.int64)), self.n_tiles),
            torch.from_numpy(has.astype(np.float32)),
        )

    def decode_logits(self, z, context=None, has_context=None) -> np.ndarray:
        """Tile logits (b, 14, W, n_tiles)."""
        zt, ctx, has = self._check(z, context, has_context)
        with torch.inference_mode():
            return self.net(zt, ctx, has).permute(0, 2, 3, 1).numpy()

    def decode(self, z, context=None, has_context=None) -> np.ndarray:
        """z (b, d) in [-1, 1] -> segments (b, 14, W) int8. ``context``: (b, 14, C) last columns of
        the previous segment (None: the first segment of a level); ``has_context`` (b,) bool marks
        rows whose context is real (False rows are decoded as level starts)."""
        zt, ctx, has = self._check(z, context, has_context)
        with torch.inference_mode():
            return self.net(zt, ctx, has).argmax(1).to(torch.int8).numpy()

    def sample_prior(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` first segments (null context) from uniform latents drawn with ``seed``."""
        z = np.random.default_rng(seed).uniform(-1, 1, (n, self.latent_dim)).astype(np.float32)
        return self.decode(z)

    def sample_levels(self, n: int, n_segments: int = 8, seed: int = 0, chained: bool = True) -> np.ndarray:
        """``n`` levels of ``n_segments`` segments, each segment conditioned on the previous one's
        last columns (``chained=False``: every segment decoded as a level start, i.e. stitched)."""
        rng = np.random.default_rng(seed)
        out = np.zeros((n, HEIGHT, n_segments * self.segment_width), np.int8)
        prev: np.ndarray | None = None
        for t in range(n_segments):
            z = rng.uniform(-1, 1, (n, self.latent_dim)).astype(np.float32)
            chain = chained and prev is not None and self.context_columns
            ctx = prev[:, :, -self.context_columns :] if chain and prev is not None else None
            prev = self.decode(z, ctx)
            out[:, :, t * self.segment_width : (t + 1) * self.segment_width] = prev
        return out


class ColumnLMLatent:
    """The shipped column LM as a deterministic decoder of uniform noise (a bounded-prior latent
    generator whose own samples are the LM's samples, calibrated).

    ``z`` in ``[-1, 1]^W`` holds one number per new column: ``u = (z + 1) / 2`` is the quantile
    at which that column is drawn from the LM's next-column distribution, the columns ordered from
    the most to the least likely (inverse-CDF sampling, the reparameterisation of a categorical
    draw). Under the uniform prior this *is* sampling the LM (with the offsets below); ``u`` near 0
    picks the LM's most likely column, near 1 its rarest. Segments continue the last
    ``context_columns`` columns of the level so far (the LM's prompt). With ``structure`` the LM's
    distribution is restricted to columns that keep pipes whole (the token env's rule,
    :class:`rlcreate.levels.validity.MarioStructure`); a pipe opened in a segment's last column is
    closed by the next segment's first, and only the level's final segment (``final=True``, or
    every segment with ``close_every_segment``) may not open one in its last column.

    ``element_bias`` adds a logit offset to every column holding a coin (``coins``) or a pipe's
    left top (``pipes``). Why: with pipes kept whole the LM opens fewer pipes, and it writes fewer
    coins than the corpus; the shipped offsets (:data:`DEFAULT_ELEMENT_BIAS`) were chosen so that
    the own samples' pipes and coins per 128 columns match the TRAINING split's (3.26 and 6.41),
    never on DEV or TEST (the variants tried are rows of ``scripts/bench_latent_generator.py``).

    ``order``: how the columns are lined up for the inverse CDF. Any fixed order samples the LM
    exactly under the uniform prior; it decides what a *move* of ``z_t`` means. ``"probability"``
    (most likely first): ``u`` near 0 is the LM's favourite column. ``"elements"``: a fixed order
    with enemy columns at the low end (most enemies first), plain columns in the middle and gap
    columns at the high end, so that lowering ``z`` asks for enemies and raising it for gaps, a
    latent a policy can steer element counts with.

    Not a learned embedding: changing ``z_t`` changes column t and, through the LM's context, can
    change every later column of the segment (the latent is not smooth in the way a GAN's is).

    ``control`` (optional, ``decode(..., control=c)`` with ``c`` in ``[-1, 1]^2`` per row): a
    *designed* control channel, not part of the prior. It adds ``control_scale[0] * c_0`` to the
    LM's logit of every column holding an enemy and ``control_scale[1] * c_1`` to every column that
    starts a gap (no solid bottom tile after a column that has one), for the whole segment, so a
    policy can ask for more or fewer enemies and gaps with one number each; ``c = 0`` (or ``None``)
    decodes exactly as without it. Names in :attr:`control_names`. The scales (default 2.5, 3.0)
    were set so that ``c`` in about [-0.5, 0.5] spans the MarioLatent recipe's enemy and gap targets
    (0.25-1.25 and 0.3-1.2 per 16 columns, see :attr:`CONTROL_RATES`; the uncontrolled samples write
    ~0.8 of each).

    ``extra_controls`` (optional, names of :data:`ELEMENT_CONTROLS`): more designed channels after
    the two above, each a logit shift (``ELEMENT_CONTROLS[name] * c``) of one kind of column for the
    segment: ``coins`` (columns holding a coin), ``pipes`` (columns opening a pipe), ``qblocks``
    (columns holding a ?-block), ``gap_len`` (gap columns that continue a gap: lower = narrower
    gaps). Why: a per-column quantile means different things under different prompts, so a policy
    moving it cannot tell what a move does to the level's element counts; one number per element
    kind has the same meaning in every context. ``c = 0`` decodes exactly as without them.

    ``limit`` (optional, ``decode(..., limit=m)``, ``m`` (b, controls)): a cap per row on the enemies
    (tiles) and gap starts the segment may still write: once a row has spent it, columns that would
    exceed it are left out of the LM's distribution (renormalised over the rest; ignored for a row
    where the structure rule leaves nothing else). Why: enemies come in groups, so a shift alone
    overshoots low requests and nothing can take an enemy back (the latent env's
    ``control_cap``). Part of the designed control channel, not of the prior.
    """

    prior = "uniform"

    #: decode rows that share a prompt as one group until their columns differ (``_decode_group``);
    #: False: every row on its own (the reference the equality test compares with)
    shared_decode = True

    #: decode takes ``final=`` (is this the level's last segment?); the latent env passes it
    takes_final = True

    #: what each entry of ``decode``'s ``control`` shifts (logits of enemy columns, of gap starts)
    control_names: tuple[str, ...] = ("enemies", "gaps")
    #: control values and the rates (per 16 columns, over whole 128-column levels of the shipped
    #: column LM with the default settings, 48 levels per value) each one writes when held for every
    #: segment: what :meth:`control_for` inverts. Measured by scripts/bench_latent_generator.py
    #: (``control_calibration`` in benchmarks/latent_generator.json).
    CONTROL_GRID = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
    CONTROL_RATES = {
        "enemies": (0.128, 0.161, 0.268, 0.375, 0.786, 1.18, 1.943, 3.331, 5.104),
        "gaps": (0.094, 0.195, 0.31, 0.552, 0.82, 1.044, 1.305, 1.448, 1.484),
    }

    def control_for(self, rates: np.ndarray) -> np.ndarray:
        """(b, controls) rates per 16 columns wanted from the next segment -> (b, controls) control
        values that write them on average (piecewise-linear inverse of :attr:`CONTROL_RATES`,
        clipped to [-1, 1]; 0 for a channel without a measured table): a hand-built feedback
        controller the latent env can add to the policy's control entries (``control_guidance``)."""
        rates = np.asarray(rates, np.float64).reshape(-1, len(self.control_names))
        grid = np.array(self.CONTROL_GRID)
        return np.stack(
            [
                np.interp(rates[:, j], np.array(self.CONTROL_RATES[n]), grid)
                if n in self.CONTROL_RATES
                else np.zeros(len(rates))
                for j, n in enumerate(self.control_names)
            ],
            1,
        )

    def __init__(
        self,
        lm=None,
        segment_width: int = 16,
        context_columns: int = 32,
        structure: bool = True,
        close_every_segment: bool = False,
        element_bias: dict[str, float] | None = None,
        order: str = "probability",
        control_scale: tuple[float, float] = (2.5, 3.0),
        extra_controls: tuple[str, ...] = (),
    ):
        from rlcreate.levels.generators.column_lm import N_SPECIAL, ColumnLM, element_logit_offset
        from rlcreate.levels.validity import MarioStructure

        self.lm = lm if lm is not None else ColumnLM.load()
        self.latent_dim = self.segment_width = int(segment_width)
        self.height, self.n_tiles, self.action_scale = HEIGHT, N_TILES, 1.0
        self.context_columns = int(context_columns)
        self.n_special = N_SPECIAL
        self.rule = MarioStructure(self.lm.columns, N_SPECIAL) if structure else None
        self.close_every_segment = bool(close_every_segment)
        bias = dict(DEFAULT_ELEMENT_BIAS if element_bias is None else element_bias)
        try:
            offset = element_logit_offset(self.lm.columns, bias)
        except ValueError as e:
            raise GANInputError(str(e)) from None
        self._offset = offset if offset.any() else None
        if order not in ("probability", "elements"):
            raise GANInputError(f"order = {order!r}: use 'probability' or 'elements'")
        self.order, self._order = order, None
        # the control channel's per-column features: holds an enemy; gap column (gap *starts* need
        # the previous column, see _pick)
        from rlcreate.levels.metrics import ground_heights as _heights
        from rlcreate.levels.tiles import ENEMY as _ENEMY

        unknown = sorted(set(extra_controls) - set(ELEMENT_CONTROLS))
        if unknown or len(set(extra_controls)) != len(tuple(extra_controls)):
            raise GANInputError(
                f"extra_controls = {list(extra_controls)}: use distinct names among {sorted(ELEMENT_CONTROLS)}"
            )
        self.control_names = ("enemies", "gaps", *extra_controls)
        scales = [float(v) for v in control_scale] + [ELEMENT_CONTROLS[n] for n in extra_controls]
        self.control_scale = np.array(scales, np.float64)
        from rlcreate.levels.tiles import COIN as _COIN
        from rlcreate.levels.tiles import PIPE_TL as _PIPE_TL
        from rlcreate.levels.tiles import QCOIN as _QCOIN
        from rlcreate.levels.tiles import QUESTION as _QUESTION

        def _col(mask):  # per vocabulary entry (specials: 0): does the column hold such a tile?
            return np.concatenate([np.zeros(N_SPECIAL), mask.any(axis=1).astype(np.float64)])

        cols = self.lm.columns
        self._column_kinds = {  # the extra channels' per-column features (gap_len needs prev: _pick)
            "coins": _col(cols == _COIN),
            "pipes": _col(cols == _PIPE_TL),
            "qblocks": _col((cols == _QUESTION) | (cols == _QCOIN)),
        }
        self._has_enemy = np.concatenate([np.zeros(N_SPECIAL), (self.lm.columns == _ENEMY).any(axis=1)])
        self._n_enemies = np.concatenate([np.zeros(N_SPECIAL), (self.lm.columns == _ENEMY).sum(axis=1)])
        self._is_gap = np.concatenate([np.zeros(N_SPECIAL, bool), _heights(self.lm.columns.T) == 0])
        if order == "elements":  # enemy columns (most enemies first), plain columns, gap columns
            from rlcreate.levels.metrics import ground_heights
            from rlcreate.levels.tiles import ENEMY

            cols = self.lm.columns
            enemies = (cols == ENEMY).sum(axis=1)
            gap = ground_heights(cols.T) == 0
            key = np.concatenate([np.zeros(N_SPECIAL), np.where(enemies > 0, -enemies, gap.astype(np.int64))])
            self._order = np.argsort(key, kind="stable")
        self.config = {
            "kind": "column_lm_noise",
            "segment_width": self.segment_width,
            "context_columns": self.context_columns,
            "structure": bool(structure),
            "close_every_segment": self.close_every_segment,
            "element_bias": {k: float(v) for k, v in bias.items()},
            "order": order,
            "extra_controls": list(extra_controls),
        }

    def _gap_starts(self, prev: np.ndarray | None, b: int) -> np.ndarray:
        """(b, V) bool: which columns would start a gap after ``prev`` (None: the level's start)."""
        after_ground = np.ones(b, bool) if prev is None else ~self._is_gap[prev]
        return self._is_gap[None, :] & after_ground[:, None]

    def _pick(
        self,
        logits: np.ndarray,
        u: np.ndarray,
        prev: np.ndarray | None,
        last: bool,
        control: np.ndarray | None = None,
        limit: np.ndarray | None = None,
    ) -> np.ndarray:
        """Inverse-CDF draw of one column per row at quantiles ``u`` (b,); ``control`` (b, 2): the
        control channel's logit shifts; ``limit`` (b, 2): enemies / gap starts the row may still
        write (columns that would exceed it are left out, unless nothing else is allowed)."""
        return self._draw(*self._distribution(logits, prev, last, control, limit), u)

    @staticmethod
    def _draw(order: np.ndarray, cdf: np.ndarray, u: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The column at quantile ``u[i]`` of distribution ``rows[i]`` (default: ``i``) of
        :meth:`_distribution`'s ``order`` / ``cdf``."""
        rows = np.arange(len(u)) if rows is None else rows
        c = cdf if len(rows) == len(cdf) and (rows == np.arange(len(rows))).all() else cdf[rows]
        k = (c < np.minimum(u, 1 - 1e-9)[:, None] * c[:, -1:]).sum(axis=1)
        return order[rows, np.minimum(k, cdf.shape[1] - 1)]

    def _distribution(
        self,
        logits: np.ndarray,
        prev: np.ndarray | None,
        last: bool,
        control: np.ndarray | None = None,
        limit: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``logits``: the columns in inverse-CDF order and their cumulative
        probabilities (what :meth:`_draw` reads a quantile from); with ``order = "probability"``
        the most likely column first, equal probabilities in column order (a stable sort)."""
        p = self._probabilities(logits, prev, last, control, limit)
        if self._order is not None:
            order = np.broadcast_to(self._order, p.shape)
        else:
            order = np.argsort(-p, axis=1, kind="stable")
        ranked = np.take_along_axis(p, order, axis=1)
        return order, np.cumsum(ranked, axis=1)

    def _probabilities(
        self,
        logits: np.ndarray,
        prev: np.ndarray | None,
        last: bool,
        control: np.ndarray | None = None,
        limit: np.ndarray | None = None,
    ) -> np.ndarray:
        """(b, V) float64: each row's next-column distribution (offsets, control shifts, the
        structure rule and the cap applied to the LM's logits, then a softmax)."""
        # in place where it changes nothing: each element gets the same additions in the same order
        logits = logits.astype(np.float64)
        if self._offset is not None:
            logits += self._offset
        gap_start = self._gap_starts(prev, len(logits))  # (b, V): columns that would open a gap here
        if control is not None:
            shift = control * self.control_scale
            logits += shift[:, :1] * self._has_enemy[None, :]
            logits += shift[:, 1:2] * gap_start
            for j, name in enumerate(self.control_names[2:], 2):
                if name == "gap_len":  # a gap column after a gap column: the gap grows
                    logits += shift[:, j : j + 1] * (self._is_gap[None, :] & ~gap_start)
                else:
                    logits += shift[:, j : j + 1] * self._column_kinds[name][None, :]
        if self.rule is not None:
            allowed = self.rule.allowed(prev, np.arange(logits.shape[1])[None, :], last)  # (1 or b, V)
            np.copyto(logits, -np.inf, where=~allowed)
        if limit is not None:  # a cap, not a shift: a row that has written its quota writes no more
            enemies = self._n_enemies[None, :]
            over = ((enemies > 0) & (enemies > limit[:, :1])) | (gap_start & (limit[:, 1:2] < 1))
            ok = (np.isfinite(logits) & ~over).any(axis=1)  # else the structure rule wins
            np.copyto(logits, -np.inf, where=over & ok[:, None])
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return p

    @staticmethod
    def _draw_sorted(p: np.ndarray, u: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """What ``_draw(*_distribution(...), u, rows)`` draws with ``order = "probability"``, for
        the distributions ``p`` of :meth:`_probabilities`, without sorting column indices: the
        probabilities are sorted as values (faster than an index sort here, and no gather or tie
        check after it) and each drawn value is mapped back to its column. The cumulative probabilities are the same
        bits (the same values added in the same order: equal values are interchangeable in a
        sum); among equal probabilities the stable sort puts the lower column first, so a draw
        that lands inside a run of ties takes the matching column in column order. The drawn
        value is never 0 (a quantile below 1 never lands on a zero-probability entry)."""
        rows = np.arange(len(u)) if rows is None else rows
        ranked = np.sort(p, axis=1)[:, ::-1]  # descending values
        cdf = np.cumsum(ranked, axis=1)
        same = len(rows) == len(cdf) and (rows == np.arange(len(rows))).all()
        c = cdf if same else cdf[rows]
        k = np.minimum((c < np.minimum(u, 1 - 1e-9)[:, None] * c[:, -1:]).sum(axis=1), cdf.shape[1] - 1)
        val = ranked[rows, k]
        eq = (p if same else p[rows]) == val[:, None]
        col = eq.argmax(axis=1)  # the first column holding that value
        tied = np.flatnonzero((k > 0) & (ranked[rows, np.maximum(k - 1, 0)] == val))
        for i in tied:  # inside a run of equal values: the (k - start of the run)-th such column
            start = int(np.searchsorted(-ranked[rows[i]], -val[i], side="left"))
            col[i] = np.flatnonzero(eq[i])[k[i] - start]
        return col

    def _decode_group(
        self,
        z: np.ndarray,
        prompt: np.ndarray | None,
        final: bool,
        control: np.ndarray | None = None,
        limit: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rows with the same prompt, control and cap are one group: its prompt is encoded once,
        and as long as rows of a group draw the same columns the LM steps them once (a group splits
        where their columns differ). Why: the latent env's K candidates of a level share its
        context; decoded as independent rows they paid K prompt encodings and K LM steps for
        every column they have in common. Each row's columns are drawn from the same logits at the
        same quantiles as :meth:`_decode_rows` draws them (tests/test_latent_speed_equality.py)."""
        from rlcreate.hf_cache import append_rows, preallocate

        if not self.shared_decode:
            return self._decode_rows(z, prompt, final, control, limit)
        b, w = z.shape
        u = (z.astype(np.float64) + 1.0) / 2.0
        # group key: the prompt's tiles, control, cap (equal bytes: the same distributions)
        parts = [x for x in (prompt, control, limit) if x is not None]
        seen: dict[bytes, int] = {}
        grp = np.array([seen.setdefault(b"".join(x[r].tobytes() for x in parts), len(seen)) for r in range(b)])
        first = np.unique(grp, return_index=True)[1]  # per group: its first row
        logits, state = self.lm.start(len(first), prompt_grids=None if prompt is None else prompt[first])
        if not preallocate(state.past_key_values, state.length + w, b):  # another cache type: per row
            return self._decode_rows(z, prompt, final, control, limit)
        prev = None if prompt is None else np.array([self.lm.encode_level(p[:, -1:])[0] for p in prompt[first]])
        ctl = None if control is None else control[first]
        left = None if limit is None else limit[first].astype(np.float64)
        ids = np.zeros((b, w), np.int64)
        v = self.lm.vocab_size
        for t in range(w):
            last = t == w - 1 and (final or self.close_every_segment)
            if self._order is None:  # the most likely column first: a value sort (same draws)
                ids[:, t] = self._draw_sorted(self._probabilities(logits, prev, last, ctl, left), u[:, t], grp)
            else:
                ids[:, t] = self._draw(*self._distribution(logits, prev, last, ctl, left), u[:, t], grp)
            if t + 1 == w:
                break
            # a group's rows that drew different columns split: the first child keeps the group's
            # cache row, the others get copies appended after the rows in use
            keys, inv = np.unique(grp * v + ids[:, t], return_inverse=True)
            parent, tok = keys // v, keys % v
            split = np.flatnonzero(np.r_[False, parent[1:] == parent[:-1]])  # keys sorted: siblings adjacent
            slot = parent.copy()
            slot[split] = state.batch + np.arange(len(split))
            grp = slot[inv.reshape(-1)]
            n_rows = state.batch + len(split)
            order = np.empty(n_rows, np.int64)
            order[slot] = np.arange(len(slot))  # cache row -> its group in ``keys``
            parent, tok = parent[order], tok[order]
            if left is not None:  # what this column spent of the quota (per row in _decode_rows)
                spent_gap = self._gap_starts(None if prev is None else prev[parent], n_rows)[np.arange(n_rows), tok]
                left = left[parent]
                left[:, 0] -= self._n_enemies[tok]
                left[:, 1] -= spent_gap
            ctl = None if ctl is None else ctl[parent]
            prev = tok
            if len(split):
                append_rows(state.past_key_values, torch.as_tensor(parent[state.batch :]))
                state.batch = n_rows
            logits, state = self.lm.step(state, tok)
        if (ids < self.n_special).any():  # as decode_tokens refuses them (a row with nothing allowed)
            raise GANInputError("the decode drew a special token: no column was allowed for some row")
        return self.lm.columns[ids - self.n_special].transpose(0, 2, 1).astype(np.int8)

    def _decode_rows(
        self,
        z: np.ndarray,
        prompt: np.ndarray | None,
        final: bool,
        control: np.ndarray | None = None,
        limit: np.ndarray | None = None,
    ) -> np.ndarray:
        """The reference decode: every row on its own (its own prompt encoding and LM steps)."""
        b, w = z.shape
        u = (z.astype(np.float64) + 1.0) / 2.0
        logits, state = self.lm.start(b, prompt_grids=prompt)
        # the prompt's last column: pipes it opens must be closed by the first new column
        prev = None if prompt is None else np.array([self.lm.encode_level(p[:, -1:])[0] for p in prompt])
        ids = np.zeros((b, w), np.int64)
        left = None if limit is None else limit.astype(np.float64).copy()
        for t in range(w):
            last = t == w - 1 and (final or self.close_every_segment)
            ids[:, t] = self._pick(logits, u[:, t], prev, last, control, left)
            if left is not None:  # what this column spent of the quota (before prev moves on)
                left[:, 0] -= self._n_enemies[ids[:, t]]
                left[:, 1] -= self._gap_starts(prev, b)[np.arange(b), ids[:, t]]
            prev = ids[:, t]
            if t + 1 < w:
                logits, state = self.lm.step(state, ids[:, t])
        return np.stack([self.lm.decode_tokens(r) for r in ids]).astype(np.int8)

    def decode(self, z, context=None, has_context=None, final: bool = True, control=None, limit=None) -> np.ndarray:
        """z (b, W) in [-1, 1] -> segments (b, 14, W) int8; ``context`` (b, 14, k <= context_columns):
        the level so far's last columns (None: level starts); ``has_context`` marks real rows;
        ``final=False``: more segments follow, so the last column may open a pipe (the next
        segment, given this one as context, closes it); ``control`` (b, 2) in [-1, 1]: the designed
        control channel (class docstring; None or zeros: off); ``limit`` (b, 2) >= 0 or inf: how
        many enemies (tiles) and gap starts each row may still write in this segment (a cap, see
        the class docstring; None: no cap)."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise GANInputError(f"decode expects z of shape (batch, {self.latent_dim}), got {z.shape}")
        if not np.isfinite(z).all() or np.abs(z).max(initial=0) > 1.0 + 1e-6:
            raise GANInputError("decode expects z inside the prior's support [-1, 1] (finite); clip the actions")
        b = len(z)
        if control is not None:
            control = np.asarray(control, np.float64)
            if control.shape != (b, len(self.control_names)) or not np.isfinite(control).all():
                raise GANInputError(
                    f"control must be a finite array of shape ({b}, {len(self.control_names)}) "
                    f"({', '.join(self.control_names)}), got {control.shape}"
                )
            if not control.any():
                control = None  # exactly the uncontrolled decode
        if limit is not None:
            limit = np.asarray(limit, np.float64)
            if limit.shape != (b, len(self.control_names)) or np.isnan(limit).any():
                raise GANInputError(
                    f"limit must be an array of shape ({b}, {len(self.control_names)}) "
                    f"({', '.join(self.control_names)}; inf for no cap), got {limit.shape}"
                )
        has = (
            np.zeros(b, bool)
            if context is None
            else (np.ones(b, bool) if has_context is None else np.asarray(has_context, bool).reshape(b))
        )
        if context is not None:
            context = np.asarray(context)
            if (
                context.ndim != 3
                or context.shape[0] != b
                or context.shape[1] != HEIGHT
                or not 1 <= context.shape[2] <= self.context_columns
            ):
                raise GANInputError(
                    f"context must have shape (batch, {HEIGHT}, 1..{self.context_columns}), got {context.shape}"
                )
        out = np.zeros((b, HEIGHT, self.segment_width), np.int8)
        for flag in (False, True):
            rows = np.flatnonzero(has == flag)
            if len(rows):
                ctl = None if control is None else control[rows]
                lim = None if limit is None else limit[rows]
                out[rows] = self._decode_group(z[rows], context[rows] if flag else None, final, ctl, lim)
        return out

    def sample_levels(self, n: int, n_segments: int = 8, seed: int = 0, chained: bool = True) -> np.ndarray:
        """``n`` levels of ``n_segments`` segments from uniform latents (chained by context)."""
        rng = np.random.default_rng(seed)
        out = np.zeros((n, HEIGHT, n_segments * self.segment_width), np.int8)
        for t in range(n_segments):
            z = rng.uniform(-1, 1, (n, self.latent_dim)).astype(np.float32)
            lo = max(0, t * self.segment_width - self.context_columns)
            ctx = out[:, :, lo : t * self.segment_width] if (chained and t) else None
            seg = self.decode(z, ctx, final=t == n_segments - 1 or not chained)
            out[:, :, t * self.segment_width : (t + 1) * self.segment_width] = seg
        return out
