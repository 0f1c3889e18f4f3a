"""Latent level generator: a small VAE over 14 x 16 Super Mario Bros segments.

:class:`LevelVAE` is the torch model (one-hot tiles in, per-tile logits out, latent dim 32 by
default); :class:`LatentLevelGenerator` wraps a trained one behind the latent-generator protocol
used by the environments::

    gen = LatentLevelGenerator.load()          # the shipped model in rlcreate/models/mario-vae/
    z = gen.action_scale * np.clip(action, -1, 1)
    grids = gen.decode(z)                      # (b, 14, 16) int8 tile ids

``decode`` runs the decoder through torch under ``inference_mode``. A numpy copy of the decoder
(``decode_numpy``) was meant as the fast small-batch path, but on the shared 2-core machine it was
~5x slower at batch 64 and, at batch 1, from 2x faster to 30x slower depending on machine load
(numpy's BLAS threads contend; see ``scripts/bench_generators.py``), so torch is the default and
the numpy copy is kept as a reference and for that comparison.
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

__all__ = ["VAEConfig", "LevelVAE", "LatentLevelGenerator", "LatentShapeError", "default_vae_path"]

N_TILES = len(TILES)


class LatentShapeError(UserError):
    """A latent batch or level batch of the wrong shape was passed to the generator."""


def default_vae_path() -> Path:
    """Folder of the shipped VAE (package data, so it also exists in an installed wheel)."""
    return Path(__file__).resolve().parents[2] / "models" / "mario-vae"


@dataclass
class VAEConfig:
    """Architecture of :class:`LevelVAE` (saved as ``config.json`` next to the weights)."""

    latent_dim: int = 32
    """Size of the latent vector z."""
    segment_width: int = 16
    """Columns per decoded segment."""
    hidden: int = 256
    """Width of the hidden layers of encoder and decoder MLPs."""
    n_tiles: int = N_TILES
    """Tile vocabulary (ids 0..n_tiles-1, see rlcreate.levels.tiles.TILES)."""
    action_scale: float = 2.5
    """Recommended scale from an RL action in [-1, 1] to z: 2.5 prior standard deviations."""


class LevelVAE(nn.Module):
    """MLP variational auto-encoder over one-hot ``(14, segment_width)`` tile grids.

    Encoder: one-hot (14*W*13, as an embedding sum) -> hidden -> hidden -> (mu, logvar); decoder: z -> hidden -> hidden
    -> per-tile logits (13, 14, W). An MLP rather than a conv net because the segment is tiny and
    fixed-size, a dense decoder can place ground/pipes coherently across the whole segment, and it
    exports to three numpy matmuls for fast batch-1 decoding.
    """

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config or VAEConfig()
        c = self.config
        n_in = c.n_tiles * HEIGHT * c.segment_width
        # first encoder layer = a Linear on the flattened one-hot input, computed as a summed
        # embedding lookup (one row per (position, tile)): same function, ~13x fewer operations
        self.encoder_in = nn.EmbeddingBag(n_in, c.hidden, mode="sum")
        self.encoder_in_bias = nn.Parameter(torch.zeros(c.hidden))
        self.encoder = nn.Sequential(nn.ReLU(), nn.Linear(c.hidden, c.hidden), nn.ReLU())
        self.to_mu = nn.Linear(c.hidden, c.latent_dim)
        self.to_logvar = nn.Linear(c.hidden, c.latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(c.latent_dim, c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, n_in),
        )

    def one_hot_index(self, grids: torch.Tensor) -> torch.Tensor:
        """(b, 14, W) tile ids -> (b, 14*W) indices of the hot entries in the flattened one-hot."""
        positions = torch.arange(HEIGHT * self.config.segment_width, device=grids.device)
        return positions * self.config.n_tiles + grids.long().flatten(1)

    def encode(self, grids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, 14, W) tile ids -> posterior (mu, logvar), each (b, latent_dim)."""
        h = self.encoder(self.encoder_in(self.one_hot_index(grids)) + self.encoder_in_bias)
        return self.to_mu(h), self.to_logvar(h)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """z (b, latent_dim) -> logits (b, 14, W, n_tiles)."""
        c = self.config
        return self.decoder(z).view(-1, HEIGHT, c.segment_width, c.n_tiles)

    def forward(self, grids: torch.Tensor, generator: torch.Generator | None = None):
        """Returns (logits (b,14,W,n_tiles), mu, logvar) with a reparameterised z sample."""
        mu, logvar = self.encode(grids)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        z = mu + eps * torch.exp(0.5 * logvar)
        return self.decode_logits(z), mu, logvar


class LatentLevelGenerator:
    """The latent-generator protocol over a trained :class:`LevelVAE`.

    Attributes: ``latent_dim``, ``segment_width``, ``height``, ``n_tiles``, ``action_scale`` (multiply an RL
    action in [-1, 1] by it to get z). ``decode`` is deterministic (argmax tiles) and batched.
    """

    def __init__(self, vae: LevelVAE):
        self.vae = vae.eval()
        c = vae.config
        self.config = c
        self.latent_dim = c.latent_dim
        self.segment_width = c.segment_width
        self.height = HEIGHT
        self.n_tiles = c.n_tiles
        self.action_scale = float(c.action_scale)
        # numpy copy of the decoder MLP (Linear, ReLU, Linear, ReLU, Linear), see decode_numpy
        linears = [m for m in vae.decoder if isinstance(m, nn.Linear)]
        self._np_layers = [
            (m.weight.detach().float().numpy().T.copy(), m.bias.detach().float().numpy().copy()) for m in linears
        ]

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_module(cls, vae: LevelVAE) -> LatentLevelGenerator:
        """Wrap an in-memory (possibly untrained) :class:`LevelVAE`."""
        return cls(vae)

    @classmethod
    def load(cls, path: str | Path | None = None) -> LatentLevelGenerator:
        """Load ``config.json`` + ``model.safetensors`` from ``path`` (None: the shipped model)."""
        from safetensors.torch import load_file

        folder = Path(path) if path is not None else default_vae_path()
        cfg_file, weights = folder / "config.json", folder / "model.safetensors"
        if not cfg_file.is_file() or not weights.is_file():
            raise FileNotFoundError(
                f"{folder} is not a level-VAE folder: it needs config.json and model.safetensors "
                "(train one with scripts/train_level_vae.py, or pass path=None for the shipped model)"
            )
        from rlcreate.safe_io import load_json

        config = VAEConfig(**load_json(cfg_file, "VAE config.json"))
        vae = LevelVAE(config)
        from rlcreate.safe_io import check_safetensors

        check_safetensors(weights)  # declared sizes checked before reading (a VAE folder may come from anyone)
        state = {k: v.float() for k, v in load_file(str(weights)).items()}  # stored as fp16
        vae.load_state_dict(state)
        return cls(vae)

    def save(self, path: str | Path, fp16: bool = True) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (fp16 by default: half the size)."""
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        dtype = torch.float16 if fp16 else torch.float32
        save_file(
            {k: v.detach().to(dtype).contiguous() for k, v in self.vae.state_dict().items()},
            str(folder / "model.safetensors"),
        )
        return folder

    # ---- protocol -----------------------------------------------------------------------------
    def _check_z(self, z) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        if z.ndim == 1:
            raise LatentShapeError(
                f"decode expects a batch of latents of shape (batch, {self.latent_dim}), got {z.shape}; "
                "wrap a single latent as z[None]"
            )
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise LatentShapeError(f"decode expects shape (batch, {self.latent_dim}), got {z.shape}")
        if not np.isfinite(z).all():
            raise LatentShapeError("decode got non-finite latent values (nan/inf); clip or fix the actions")
        return z

    def decode_logits_numpy(self, z) -> np.ndarray:
        """Per-tile logits, shape (b, 14, W, n_tiles), float32, by a numpy forward pass."""
        h = self._check_z(z)
        (w1, b1), (w2, b2), (w3, b3) = self._np_layers
        h = np.maximum(h @ w1 + b1, 0.0)
        h = np.maximum(h @ w2 + b2, 0.0)
        return (h @ w3 + b3).reshape(len(h), HEIGHT, self.segment_width, self.n_tiles)

    def decode_logits(self, z) -> np.ndarray:
        """Per-tile logits, shape (b, 14, W, n_tiles), float32."""
        z = torch.from_numpy(self._check_z(z))
        with torch.inference_mode():
            return self.vae.decode_logits(z).numpy()

    def decode(self, z) -> np.ndarray:
        """Latents (b, latent_dim) -> tile grids (b, 14, segment_width) int8 (argmax tiles)."""
        z = torch.from_numpy(self._check_z(z))
        with torch.inference_mode():
            return self.vae.decode_logits(z).argmax(-1).to(torch.int8).numpy()

    def decode_numpy(self, z) -> np.ndarray:
        """Same as :meth:`decode` through the numpy copy of the decoder (benchmark reference)."""
        return self.decode_logits_numpy(z).argmax(axis=-1).astype(np.int8)

    def encode(self, grids) -> np.ndarray:
        """Tile grids (b, 14, segment_width) -> posterior means (b, latent_dim) float32."""
        g = np.asarray(grids)
        if g.ndim == 2:
            g = g[None]
        if g.ndim != 3 or g.shape[1:] != (HEIGHT, self.segment_width):
            raise LatentShapeError(
                f"encode expects grids of shape (batch, {HEIGHT}, {self.segment_width}), got {np.shape(grids)}"
            )
        if g.min() < 0 or g.max() >= self.n_tiles:
            raise LatentShapeError(f"tile ids must lie in [0, {self.n_tiles - 1}], got [{g.min()}, {g.max()}]")
        with torch.inference_mode():
            mu, _ = self.vae.encode(torch.from_numpy(g.astype(np.int64)))
        return mu.numpy().astype(np.float32)

    def sample_prior(self, n: int, seed: int = 0) -> np.ndarray:
        """Decode ``n`` latents drawn from the N(0, I) prior with ``seed``."""
        z = np.random.default_rng(seed).standard_normal((n, self.latent_dim)).astype(np.float32)
        return self.decode(z)
