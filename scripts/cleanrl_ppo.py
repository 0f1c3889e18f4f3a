"""CleanRL-style single-file PPO on an rlcreate environment through Gymnasium's vector API.

What a third-party user would write: ``gym.make_vec(id, num_envs=N)`` returns rlcreate's batched
core as a ``gymnasium.vector.VectorEnv`` (one decoder / LM call per step for all N rows), and a
plain torch PPO loop trains on it. Nothing here imports rlcreate's trainers; the env id is resolved
with Gymnasium's ``"rlcreate:rlcreate/<Name>-v0"`` form, which imports rlcreate first (works in any
process).

Handles both action kinds: ``Box`` (Gaussian policy, e.g. MarioLatent's latents) and ``Discrete``
with ``info["action_mask"]`` (MarioTokens, TextTokens: masked logits). Autoreset is NEXT_STEP: the
step after an episode ends only resets that row, so its transition is left out of the loss and the
final observation it returned bootstraps truncated episodes.

    python scripts/cleanrl_ppo.py --total-timesteps 20000 --num-envs 16
    python scripts/cleanrl_ppo.py --env-id rlcreate/MarioTokens-v1 --env-kwargs '{"n_columns": 32}'

Writes ``<out>/metrics.json`` (episode returns per update, steps/s) and ``<out>/policy.safetensors``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlcreate.scripting import JsonDict, parse_config


@dataclass
class Config:
    env_id: str = "rlcreate/MarioLatent-v0"
    """Gymnasium id; the ``rlcreate:`` module prefix is added so any process resolves it"""
    env_kwargs: JsonDict = field(default_factory=lambda: {"n_segments": 4})
    """keyword arguments of the environment (JSON on the command line)"""
    num_envs: int = 16
    """rows of the batched env (all stepped by one forward pass)"""
    num_steps: int = 32
    """steps per row per rollout; a batch is num_envs * num_steps transitions"""
    total_timesteps: int = 20_000
    """environment steps in total (rows x steps)"""
    learning_rate: float = 3e-4
    """Adam learning rate (annealed linearly to 0)"""
    gamma: float = 0.99
    """discount"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    num_minibatches: int = 4
    """minibatches per epoch"""
    update_epochs: int = 4
    """passes over each batch"""
    clip_coef: float = 0.2
    """PPO ratio clip"""
    ent_coef: float = 0.0
    """entropy bonus"""
    vf_coef: float = 0.5
    """value loss weight"""
    max_grad_norm: float = 0.5
    """gradient clipping"""
    hidden: int = 64
    """width of the two hidden layers of actor and critic"""
    seed: int = 0
    """seeds torch, the env's draws and action sampling"""
    out: str = "runs/cleanrl_ppo"
    """output folder"""


if __name__ == "__main__":
    cfg = parse_config(Config)
    import gymnasium as gym
    import numpy as np
    import torch
    from torch import nn

    # ----------------------------------------------------------------------------- seeding
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    # ------------------------------------------------------------------------------- build
    env_id = cfg.env_id if ":" in cfg.env_id else f"rlcreate:{cfg.env_id}"
    envs = gym.make_vec(env_id, num_envs=cfg.num_envs, **cfg.env_kwargs)
    assert envs.metadata.get("autoreset_mode") == gym.vector.AutoresetMode.NEXT_STEP
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    discrete = isinstance(envs.single_action_space, gym.spaces.Discrete)
    act_dim = int(envs.single_action_space.n) if discrete else int(np.prod(envs.single_action_space.shape))

    def mlp(out: int, std: float) -> nn.Module:
        layers = [nn.Linear(obs_dim, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, cfg.hidden), nn.Tanh(),
                  nn.Linear(cfg.hidden, out)]
        for layer in layers[::2]:
            nn.init.orthogonal_(layer.weight, np.sqrt(2) if layer is not layers[-1] else std)
            nn.init.zeros_(layer.bias)
        return nn.Sequential(*layers)

    actor, critic = mlp(act_dim, 0.01), mlp(1, 1.0)
    log_std = nn.Parameter(torch.full((act_dim,), -0.5))  # used by Box actions only
    params = [*actor.parameters(), *critic.parameters()] + ([] if discrete else [log_std])
    optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, eps=1e-5)

    def dist(obs: torch.Tensor, mask: torch.Tensor | None):
        out = actor(obs)
        if discrete:
            return torch.distributions.Categorical(logits=out.masked_fill(~mask, -1e8))
        return torch.distributions.Normal(out, log_std.exp())

    def logprob(d, a: torch.Tensor) -> torch.Tensor:
        return d.log_prob(a) if discrete else d.log_prob(a).sum(-1)

    def entropy(d) -> torch.Tensor:
        return d.entropy() if discrete else d.entropy().sum(-1)

    # -------------------------------------------------------------------------------- loop
    T, N = cfg.num_steps, cfg.num_envs
    obs_buf = torch.zeros((T, N, obs_dim))
    act_buf = torch.zeros((T, N) if discrete else (T, N, act_dim))
    mask_buf = torch.ones((T, N, act_dim if discrete else 1), dtype=torch.bool)
    logp_buf, rew_buf, val_buf = torch.zeros((T, N)), torch.zeros((T, N)), torch.zeros((T, N))
    term_buf, end_buf, valid_buf = torch.zeros((T, N)), torch.zeros((T, N)), torch.zeros((T, N))

    obs, info = envs.reset(seed=cfg.seed)
    mask = info.get("action_mask", np.ones((N, act_dim if discrete else 1), bool))
    resetting = np.zeros(N, bool)  # rows whose next step only resets (NEXT_STEP autoreset)
    n_updates = max(cfg.total_timesteps // (T * N), 1)
    history, episode_return, steps, start = [], np.zeros(N), 0, time.perf_counter()
    for update in range(n_updates):
        optimizer.param_groups[0]["lr"] = cfg.learning_rate * (1 - update / n_updates)
        finished = []
        for t in range(T):
            o = torch.as_tensor(obs, dtype=torch.float32).reshape(N, -1)
            m = torch.as_tensor(mask, dtype=torch.bool)
            with torch.no_grad():
                d = dist(o, m)
                a = d.sample()
                obs_buf[t], mask_buf[t], act_buf[t] = o, m, a
                logp_buf[t], val_buf[t] = logprob(d, a), critic(o).squeeze(-1)
            valid_buf[t] = torch.as_tensor(~resetting, dtype=torch.float32)
            obs, reward, terminated, truncated, info = envs.step(a.numpy())
            mask = info.get("action_mask", mask)
            rew_buf[t] = torch.as_tensor(reward, dtype=torch.float32)
            term_buf[t] = torch.as_tensor(terminated, dtype=torch.float32)
            end_buf[t] = torch.as_tensor(terminated | truncated, dtype=torch.float32)
            episode_return += np.where(resetting, 0.0, reward)
            resetting = terminated | truncated
            finished += episode_return[resetting].tolist()
            episode_return[resetting] = 0.0
            steps += int((valid_buf[t] > 0).sum())

        # GAE: values[t + 1] is V of the observation step t returned, which after an episode end
        # (NEXT_STEP) is its final observation: the bootstrap of a truncation, zeroed when terminated
        with torch.no_grad():
            next_value = critic(torch.as_tensor(obs, dtype=torch.float32).reshape(N, -1)).squeeze(-1)
            adv, last = torch.zeros((T, N)), torch.zeros(N)
            for t in reversed(range(T)):
                nxt = next_value if t == T - 1 else val_buf[t + 1]
                delta = rew_buf[t] + cfg.gamma * nxt * (1 - term_buf[t]) - val_buf[t]
                last = delta + cfg.gamma * cfg.gae_lambda * (1 - end_buf[t]) * last
                adv[t] = last
            ret = adv + val_buf

        # PPO update on the valid transitions (reset-only steps left out)
        keep = valid_buf.reshape(-1) > 0
        b_obs, b_act, b_mask = obs_buf.reshape(T * N, -1)[keep], act_buf.reshape(T * N, *act_buf.shape[2:])[keep], \
            mask_buf.reshape(T * N, -1)[keep]
        b_logp, b_adv, b_ret = logp_buf.reshape(-1)[keep], adv.reshape(-1)[keep], ret.reshape(-1)[keep]
        size = len(b_obs)
        mb = max(size // cfg.num_minibatches, 1)
        for _ in range(cfg.update_epochs):
            order = torch.as_tensor(rng.permutation(size))
            for i in range(0, size, mb):
                idx = order[i:i + mb]
                d = dist(b_obs[idx], b_mask[idx])
                ratio = (logprob(d, b_act[idx]) - b_logp[idx]).exp()
                a_n = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std(unbiased=False) + 1e-8)
                pg_loss = torch.max(-a_n * ratio, -a_n * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                v_loss = 0.5 * (critic(b_obs[idx]).squeeze(-1) - b_ret[idx]).pow(2).mean()
                loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy(d).mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
        mean_return = float(np.mean(finished)) if finished else None
        history.append({"update": update, "steps": steps, "episodes": len(finished), "mean_return": mean_return})
        print(f"update {update + 1}/{n_updates}  steps {steps}  episodes {len(finished)}  "
              f"mean return {mean_return if mean_return is None else round(mean_return, 3)}")

    # -------------------------------------------------------------------------------- save
    from safetensors.torch import save_file

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = {f"actor.{k}": v for k, v in actor.state_dict().items()}
    weights.update({f"critic.{k}": v for k, v in critic.state_dict().items()}, log_std=log_std.detach())
    save_file({k: v.contiguous() for k, v in weights.items()}, str(out / "policy.safetensors"))
    elapsed = time.perf_counter() - start
    (out / "metrics.json").write_text(json.dumps({
        "config": dataclasses.asdict(cfg), "env_steps": steps, "seconds": elapsed,
        "steps_per_second": steps / elapsed, "history": history}, indent=2))
    envs.close()
