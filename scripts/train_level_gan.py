"""Train the shipped level GAN (rlcreate/models/mario-gan/): a context-conditioned WGAN-GP with a
uniform [-1, 1]^d prior over 14 x 16 Super Mario Bros segments.

Reads top to bottom: config, seeding, data, models, training loop, save, judges, montage, card.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_level_gan.py                 # the shipped model
    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_level_gan.py --steps 20 --out /tmp/gan --n-levels 8

Data: every (context + 16)-column window (stride 1) inside the corpus' TRAIN blocks; the first
``context`` columns are the condition, the last 16 the segment. With probability ``p_null`` the
condition is dropped (the generator also learns level starts). DEV and TEST blocks are only used
by the judges: DEV for choosing among candidates, TEST for the reported numbers.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from rlcreate.levels import corpus
from rlcreate.levels.gan import GANConfig, LevelGAN, SegmentCritic, SegmentGenerator, default_gan_path, one_hot


@dataclass
class TrainConfig:
    seed: int = 0
    """Seeds torch and numpy; the same seed gives the same weights on the same machine."""
    steps: int = 1200
    """Generator updates (each after ``n_critic`` critic updates)."""
    n_critic: int = 3
    """Critic updates per generator update (WGAN-GP)."""
    batch_size: int = 64
    """Windows per update."""
    lr: float = 2e-4
    """Adam learning rate of both networks (betas 0.5, 0.9)."""
    gp: float = 10.0
    """Weight of the critic's gradient penalty (WGAN-GP)."""
    output: Literal["straight_through", "softmax"] = "straight_through"
    """What the critic sees of a generated segment: ``straight_through`` (one-hot argmax forward,
    softmax gradient backward: the critic cannot tell fakes by their softness) or ``softmax``."""
    latent_dim: int = 32
    """Size of z (the RL action size)."""
    context: int = 4
    """Columns of the previous segment the generator is conditioned on (0: unconditioned)."""
    channels: int = 32
    """Base conv channels of generator and critic (mlp: 8x this many hidden units)."""
    arch: Literal["conv", "mlp"] = "conv"
    """``conv`` or ``mlp`` (see rlcreate.levels.gan.GANConfig)."""
    p_null: float = 0.25
    """Probability of dropping the condition of a training window (learns level starts)."""
    threads: int = 1
    """torch CPU threads (the machine is shared)."""
    n_levels: int = 64
    """Levels sampled for the judges (each ``level_segments`` segments, chained by context)."""
    level_segments: int = 8
    """Segments per judged level (8 x 16 = 128 columns, the human windows' width)."""
    out: str = str(default_gan_path())
    """Output folder: model.safetensors, config.json, training_metrics.json, montage.png, MODEL_CARD.md."""
    card: int = 1
    """1: write MODEL_CARD.md (the shipped model); 0: only the metrics (candidates)."""


def main(cfg: TrainConfig) -> dict:
    # ---- seeding, in one place ----
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)

    # ---- data: (context, segment) pairs from TRAIN windows ----
    gcfg = GANConfig(latent_dim=cfg.latent_dim, context=cfg.context, channels=cfg.channels, arch=cfg.arch)
    w, c = gcfg.segment_width, gcfg.context
    wins = torch.from_numpy(corpus.training_windows(w + c, 1).astype(np.int64))
    data = one_hot(wins, gcfg.n_tiles)  # (n, 13, 14, C + W)
    n = len(data)

    # ---- models ----
    gen, critic = SegmentGenerator(gcfg), SegmentCritic(gcfg)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.9))

    def batch():
        ix = torch.from_numpy(rng.integers(0, n, cfg.batch_size))
        has = torch.from_numpy((rng.random(cfg.batch_size) >= cfg.p_null).astype(np.float32))
        x = data[ix]
        return x[:, :, :, :c], x[:, :, :, c:], has

    def fake(ctx, has):
        z = torch.rand(len(has), cfg.latent_dim) * 2 - 1  # the uniform prior
        logits = gen(z, ctx, has)
        soft = torch.softmax(logits, 1)
        if cfg.output == "softmax":
            return soft
        hard = torch.nn.functional.one_hot(soft.argmax(1), gcfg.n_tiles).permute(0, 3, 1, 2).float()
        return hard - soft.detach() + soft

    # ---- training loop (WGAN-GP) ----
    t0, history = time.time(), []
    for step in range(cfg.steps):
        for _ in range(cfg.n_critic):
            ctx, real, has = batch()
            with torch.no_grad():
                fk = fake(ctx, has)
            eps = torch.rand(len(real), 1, 1, 1)
            mix = (eps * real + (1 - eps) * fk).requires_grad_(True)
            grad, = torch.autograd.grad(critic(mix, ctx, has).sum(), mix, create_graph=True)
            penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            wdist = critic(real, ctx, has).mean() - critic(fk, ctx, has).mean()
            loss_d = -wdist + cfg.gp * penalty
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        ctx, _, has = batch()
        loss_g = -critic(fake(ctx, has), ctx, has).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            history.append({"step": step, "wasserstein": round(wdist.item(), 4), "gp": round(penalty.item(), 4),
                            "loss_g": round(loss_g.item(), 4), "seconds": round(time.time() - t0, 1)})
            print(json.dumps(history[-1]), flush=True)
    train_seconds = time.time() - t0

    # ---- save ----
    out = Path(cfg.out)
    LevelGAN(gen).save(out)
    model = LevelGAN.load(out)  # judged as shipped
    result = {"train_config": asdict(cfg), "n_train_windows": n, "history": history,
              "train_seconds": round(train_seconds, 1), "torch": torch.__version__, "machine": platform.machine()}
    result.update(judge(model, cfg, out))
    (out / "training_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    if cfg.card:
        write_model_card(out, cfg, result)
    print(json.dumps({k: v for k, v in result.items() if k.startswith("judges")}, indent=2))
    return result


def judge(model: LevelGAN, cfg: TrainConfig, out: Path) -> dict:
    """The generator's own levels (chained segments) judged against DEV (model choice) and TEST
    (reported), a stitched control (every segment a level start), and a montage next to human windows."""
    from rlcreate.levels.quality import human_reference_segments, set_judges
    from rlcreate.levels.render import render_montage

    levels = model.sample_levels(cfg.n_levels, cfg.level_segments, seed=cfg.seed + 1)
    r = {"judges_test": set_judges(levels, human_reference_segments("test"), seed=cfg.seed),
         "judges_dev": set_judges(levels, human_reference_segments("dev"), seed=cfg.seed)}
    if model.context_columns:
        stitched = model.sample_levels(cfg.n_levels, cfg.level_segments, seed=cfg.seed + 1, chained=False)
        r["judges_test_stitched"] = set_judges(stitched, human_reference_segments("test"), seed=cfg.seed)
    human = corpus.test_windows(levels.shape[2], stride=levels.shape[2])
    k = min(4, len(human))
    render_montage(list(levels[:4]) + list(human[:k]), out / "montage.png", ncols=1,
                   labels=[f"GAN sample {i}" for i in range(4)] + [f"human (TEST) {i}" for i in range(k)])
    r["montage"] = "montage.png"
    return r


def write_model_card(out: Path, cfg: TrainConfig, r: dict) -> None:
    t, d = r["judges_test"], r["judges_dev"]
    st = r.get("judges_test_stitched")
    row = lambda name, j: (f"| {name} | {j['auc']:.3f} | {j['profile_inside']}/5 | {j['distinct_share']:.2f} | "  # noqa: E731
                           f"{j['malformed_pipe_share']:.0%} |")
    card = f"""# mario-gan: a context-conditioned WGAN-GP over 14 x 16 Super Mario Bros segments

Written by `scripts/train_level_gan.py` (the numbers in "Judges" are measured by that script;
the candidate table is filled from `benchmarks/latent_generator.json`).

## Model
Generator: z ~ U[-1, 1]^{cfg.latent_dim} plus the last {cfg.context} columns of the previous segment
(one-hot, with a "present" plane; absent for a level's first segment) -> a (2x{cfg.channels}, 7, 8)
map, upsampled to (14, 16), joined to the embedded context columns on its left, three 3x3 convs,
tile logits of the 16 new columns; decoded by argmax (deterministic given z and the context).
Critic: three convs over the context + segment canvas (14 x {cfg.context + 16}), so it judges the
seam too. The uniform prior makes an RL action box `Box(-1, 1, ({cfg.latent_dim},))` the prior itself.

## Data
Every {cfg.context + 16}-column window (stride 1) inside the TRAIN blocks of the VGLC corpus shipped
in `mario-gpt` (SMB1 + The Lost Levels): {r['n_train_windows']} windows. Condition dropped with
probability {cfg.p_null}. No augmentation. DEV blocks choose among candidates; TEST blocks give the
reported numbers.

## Losses and settings
WGAN-GP: critic loss `D(fake) - D(real) + {cfg.gp} * (||grad D(mix)|| - 1)^2`, generator loss
`-D(fake)`; the critic sees generated segments as `{cfg.output}` one-hot tiles. seed {cfg.seed},
{cfg.steps} generator steps x {cfg.n_critic} critic steps, batch {cfg.batch_size}, Adam lr {cfg.lr}
(betas 0.5, 0.9), {cfg.threads} CPU thread(s): {r['train_seconds']} s on {r['machine']} (torch {r['torch']}).
Final Wasserstein estimate {r['history'][-1]['wasserstein']}.

## Judges ({cfg.n_levels} levels x {cfg.level_segments * 16} columns, seed {cfg.seed + 1})
AUC: classifier two-sample test of 16-column segments against human segments (0.5 =
indistinguishable); profile: pipes, ?-blocks, enemies, coins, gaps inside the human band of set
means; distinct: share of 16-column segments differing from every other in >= 5% of tiles, per 16
levels; malformed: share of levels with a broken pipe (seams included).

| set | AUC | profile | distinct | malformed pipes |
|---|---|---|---|---|
{row('own samples, chained, vs TEST', t)}
{row('own samples, chained, vs DEV', d)}
{row('own samples, stitched (no context), vs TEST', st) if st else ''}

Element means per 128 columns (TEST run): {t['profile']}.

![montage](montage.png): four sampled levels (top) over four human TEST windows.

## Limits
A GAN can drop modes the critic does not punish (see the element profile for which elements);
decoded by argmax, so rare two-tile structures can still break at a seam. Only {r['n_train_windows']}
training windows: samples can sit close to training windows.
"""
    (out / "MODEL_CARD.md").write_text(card)


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(TrainConfig))
