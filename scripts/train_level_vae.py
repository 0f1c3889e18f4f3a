"""Train the shipped level VAE (rlcreate/models/mario-vae/) on 14 x 16 training windows.

Reads top to bottom: config, seeding, data, model, training loop, save, quality figures, model card.

    .venv/bin/python scripts/train_level_vae.py                      # the shipped model
    .venv/bin/python scripts/train_level_vae.py --epochs 2 --out /tmp/vae   # a smoke run

Data: every 16-column window (stride 1) lying inside the corpus' training blocks; the held-out
blocks (rlcreate.levels.corpus.HELD_OUT_BLOCKS split) are only used for the quality figures. No
augmentation: flips would make levels run right-to-left, and vertical shifts would float the ground.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rlcreate.levels import corpus
from rlcreate.levels.generators.latent import LatentLevelGenerator, LevelVAE, VAEConfig, default_vae_path
from rlcreate.scripting import parse_config


@dataclass
class TrainConfig:
    seed: int = 0
    """Seeds torch and numpy; the same seed gives the same weights on the same machine."""
    epochs: int = 100
    """Passes over the training windows."""
    batch_size: int = 128
    """Windows per Adam step."""
    lr: float = 1e-3
    """Adam learning rate (cosine-decayed to lr/20 over training)."""
    beta: float = 1.0
    """Final weight of the KL term (1.0 = a proper ELBO, so prior samples decode to levels)."""
    kl_anneal_frac: float = 0.3
    """Fraction of training over which the KL weight ramps linearly from 0 to beta."""
    free_bits: float = 0.05
    """Per-dimension KL floor (nats) so that no latent dimension collapses entirely early on."""
    hidden: int = 256
    """Hidden width of encoder/decoder MLPs (keeps the fp16 weights under 4 MB)."""
    latent_dim: int = 32
    """Latent size (the RL action size)."""
    width: int = 16
    """Segment width in columns."""
    threads: int = 1
    """torch CPU threads (1: the machine is shared, and extra threads thrash under contention)."""
    n_quality_samples: int = 1000
    """Prior samples decoded for the validity / playability figures."""
    out: str = str(default_vae_path())
    """Output folder: model.safetensors, config.json, MODEL_CARD.md, interpolation.png."""
    eval_only: bool = False
    """Skip training: reload the model in `out` and re-measure the quality figures and model card."""


def main(cfg: TrainConfig) -> dict:
    # ---- seeding, in one place ----
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)

    # ---- data ----
    train = torch.from_numpy(corpus.training_windows(cfg.width, 1).astype(np.int64))
    held = torch.from_numpy(corpus.held_out_windows(cfg.width, 1).astype(np.int64))
    n = len(train)

    # ---- model ----
    vae = LevelVAE(VAEConfig(latent_dim=cfg.latent_dim, segment_width=cfg.width, hidden=cfg.hidden))
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    steps_per_epoch = (n + cfg.batch_size - 1) // cfg.batch_size
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total, eta_min=cfg.lr / 20)
    gen = torch.Generator().manual_seed(cfg.seed)

    out = Path(cfg.out)
    if cfg.eval_only:
        return evaluate_only(cfg, out, held, train)

    # ---- training loop ----
    t0, step, history = time.time(), 0, []
    bar = tqdm(range(cfg.epochs), desc="vae", mininterval=2)
    for epoch in bar:
        perm = torch.from_numpy(rng.permutation(n))
        sums = np.zeros(3)
        for i in range(0, n, cfg.batch_size):
            x = train[perm[i:i + cfg.batch_size]]
            logits, mu, logvar = vae(x, generator=gen)
            # reconstruction: summed cross-entropy over the 14*W tiles, mean over the batch
            rec = torch.nn.functional.cross_entropy(logits.reshape(-1, vae.config.n_tiles), x.reshape(-1),
                                                    reduction="sum") / len(x)
            kl_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(0)
            kl = kl_dim.sum()
            kl_term = torch.clamp(kl_dim, min=cfg.free_bits).sum()
            w = cfg.beta * min(1.0, step / max(1, cfg.kl_anneal_frac * total))
            loss = rec + w * kl_term
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            sums += [rec.item() * len(x), kl.item() * len(x), len(x)]
        history.append({"epoch": epoch, "rec": sums[0] / sums[2], "kl": sums[1] / sums[2]})
        bar.set_postfix(rec=f"{history[-1]['rec']:.2f}", kl=f"{history[-1]['kl']:.2f}")
    train_seconds = time.time() - t0

    # ---- save ----
    generator = LatentLevelGenerator.from_module(vae)
    generator.save(out)
    generator = LatentLevelGenerator.load(out)  # figures are measured on the fp16 weights we ship

    result = {"train_config": asdict(cfg), "n_train_windows": n, "n_held_out_windows": len(held),
              "final_train": history[-1], "train_seconds": round(train_seconds, 1),
              "torch": torch.__version__, "machine": platform.machine(), "processor": platform.processor()}
    # written before the figures, so `--eval-only` can redo them if the evaluation is interrupted
    (out / "training_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return evaluate_only(cfg, out, held, train)


def evaluate_only(cfg: TrainConfig, out: Path, held: torch.Tensor, train: torch.Tensor) -> dict:
    """Re-measure the figures of an already trained model (keeps its recorded training settings)."""
    result = json.loads((out / "training_metrics.json").read_text())
    trained_cfg = TrainConfig(**{**result["train_config"], "out": str(out), "eval_only": False})
    generator = LatentLevelGenerator.load(out)
    result.update(measure_quality(generator, held.numpy().astype(np.int8), train.numpy().astype(np.int8),
                                  trained_cfg, out))
    (out / "training_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    write_model_card(out, trained_cfg, result)
    print(json.dumps({k: v for k, v in result.items() if k != "train_config"}, indent=2))
    return result


def measure_quality(generator: LatentLevelGenerator, held: np.ndarray, train: np.ndarray,
                    cfg: TrainConfig, out: Path) -> dict:
    """Held-out reconstruction, prior-sample validity / playability, and an interpolation figure."""
    q: dict = {}
    rec = generator.decode(generator.encode(held))
    q["held_out_tile_accuracy"] = float((rec == held).mean())
    q["held_out_exact_windows"] = float((rec == held).all(axis=(1, 2)).mean())
    rec_tr = generator.decode(generator.encode(train))
    q["train_tile_accuracy"] = float((rec_tr == train).mean())

    samples = generator.sample_prior(cfg.n_quality_samples, seed=cfg.seed + 1)
    # memorisation check: share of prior samples identical to some training window
    train_set = {w.tobytes() for w in train}
    q["prior_copies_of_training_window"] = float(np.mean([s.tobytes() in train_set for s in samples]))
    q["prior_distinct_fraction"] = len({s.tobytes() for s in samples}) / len(samples)
    try:
        from rlcreate.levels.validity import valid_mask
        q["prior_valid_fraction"] = float(np.mean(valid_mask(samples)))
        q["held_out_windows_valid_fraction"] = float(np.mean(valid_mask(held)))
    except ImportError as exc:
        q["prior_valid_fraction"] = f"not measured ({exc})"
    try:
        from rlcreate.levels.solver import playable_batch
        q["prior_playable_fraction"] = float(np.mean(playable_batch(samples)))
        q["held_out_windows_playable_fraction"] = float(np.mean(playable_batch(held)))
    except ImportError as exc:
        q["prior_playable_fraction"] = f"not measured ({exc})"

    # interpolation between two encoded held-out windows: the first one and the most different one
    a = held[0]
    b = held[int((held != a).mean(axis=(1, 2)).argmax())]
    za, zb = generator.encode(np.stack([a, b]))
    ts = np.linspace(0, 1, 8, dtype=np.float32)[:, None]
    frames = generator.decode((1 - ts) * za + ts * zb)
    steps = (frames[1:] != frames[:-1]).mean(axis=(1, 2))
    ends = float((frames[0] != frames[-1]).mean())
    q["interpolation_mean_step_change"] = float(steps.mean())
    q["interpolation_endpoint_change"] = ends
    # a perfectly smooth path spreads the endpoint change evenly over the 7 steps: ratio 1/7 ~ 0.14
    q["interpolation_smoothness_ratio"] = float(steps.mean() / ends) if ends else 0.0
    try:
        from rlcreate.levels.render import render_montage
        render_montage(list(frames), out / "interpolation.png", ncols=8,
                       labels=[f"t={t:.2f}" for t in ts[:, 0]])
        q["interpolation_figure"] = "interpolation.png"
    except ImportError as exc:
        q["interpolation_figure"] = f"not rendered ({exc})"
    return q


def write_model_card(out: Path, cfg: TrainConfig, r: dict) -> None:
    held = [b.name for b in corpus.held_out_blocks()]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    card = f"""# mario-vae: latent generator of 14 x {cfg.width} Super Mario Bros segments

Written by `scripts/train_level_vae.py` (all numbers below are measured by that script).

## Model
MLP variational auto-encoder, latent dim {cfg.latent_dim}, hidden width {cfg.hidden}, one-hot input
over the 13 tiles `-XS?QoE<>[]Bb`, per-tile categorical output; decoded by argmax. Weights stored in
fp16 (`model.safetensors`). Why an MLP and not a conv net: the segment is small and fixed-size
(14 x {cfg.width}), a dense decoder places ground, gaps and pipes consistently across the whole
segment, and it is three matrix products, so decoding a batch in an RL environment step costs
well under a millisecond at batch 1 (see `scripts/bench_generators.py`). Recommended RL action scale: z =
{VAEConfig().action_scale} * action, action in [-1, 1] (2.5 prior standard deviations).

## Data
Every {cfg.width}-column window (stride 1) lying wholly inside a training block of the VGLC corpus
shipped in `mario-gpt` (SMB1 + The Lost Levels): {r['n_train_windows']} windows. Held out (never
trained on): blocks {', '.join(held)}; {r['n_held_out_windows']} held-out windows. No augmentation
(flips reverse the level's direction; vertical shifts float the ground).

## Settings
seed {cfg.seed}, {cfg.epochs} epochs, batch {cfg.batch_size}, Adam lr {cfg.lr} (cosine to lr/20),
KL weight annealed 0 -> {cfg.beta} over the first {cfg.kl_anneal_frac:.0%} of steps, free bits
{cfg.free_bits} nats/dim. Training time: {r['train_seconds']} s on {r['machine']} CPU (torch {r['torch']}).

## Results
| figure | value |
|---|---|
| final train reconstruction loss (nats / window) | {fmt(r['final_train']['rec'])} |
| final train KL (nats / window) | {fmt(r['final_train']['kl'])} |
| train reconstruction tile accuracy | {fmt(r['train_tile_accuracy'])} |
| held-out reconstruction tile accuracy | {fmt(r['held_out_tile_accuracy'])} |
| held-out windows reconstructed exactly | {fmt(r['held_out_exact_windows'])} |
| prior samples structurally valid (`valid_mask`) | {fmt(r['prior_valid_fraction'])} |
| held-out corpus windows valid (reference) | {fmt(r.get('held_out_windows_valid_fraction', 'n/a'))} |
| prior samples playable (`playable_batch`) | {fmt(r['prior_playable_fraction'])} |
| held-out corpus windows playable (reference) | {fmt(r.get('held_out_windows_playable_fraction', 'n/a'))} |
| prior samples identical to a training window | {fmt(r['prior_copies_of_training_window'])} |
| distinct prior samples | {fmt(r['prior_distinct_fraction'])} |
| interpolation: mean tiles changed per step | {fmt(r['interpolation_mean_step_change'])} |
| interpolation: tiles changed endpoint to endpoint | {fmt(r['interpolation_endpoint_change'])} |
| interpolation smoothness (step / endpoint; 1/7 = 0.143 is perfectly even) | {fmt(r['interpolation_smoothness_ratio'])} |

Prior samples: {cfg.n_quality_samples} latents from N(0, I), seed {cfg.seed + 1}.
Interpolation figure: `{r['interpolation_figure']}` (8 decoded latents on the line between the
encodings of two held-out windows).

{r.get('note', '')}

## Limits and how it can be gamed
Trained on ~{r['n_train_windows'] // cfg.width} distinct screens of content, so the latent space is
small: prior samples are often close to (sometimes copies of) training windows, which a novelty
reward will notice. Far from the prior (|z| >> 2.5) the decoder produces noisy tiles; keep RL actions
scaled by the action scale. Argmax decoding can break two-tile structures (pipes, cannons) at
latents between modes.
"""
    (out / "MODEL_CARD.md").write_text(card)


if __name__ == "__main__":
    main(parse_config(TrainConfig))
