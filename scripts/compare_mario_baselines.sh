#!/usr/bin/env bash
# PPO vs random / CMA-ES / MAP-Elites on the latent path (mario_latent.yaml, MarioLatent-v1) with the
# default recipe and an equal budget of reward evaluations (one evaluation = one decoded, scored segment),
# then judges (A* agent, KL, expressive range, novelty, QD) and one HTML report.
#   bash scripts/compare_mario_baselines.sh [BUDGET] [OUT] [LEVELS] [JUDGES]
# Smoke run: 128 /tmp/c 2 tile_kl,validity,solver (the A* agent plays in real time, ~10-30 s a level
# on a loaded 2-core machine, and the baselines are judged on all their samples: minutes per run).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-65536}; O=${2:-runs/compare}; N=${3:-16}; R=rlcreate/recipes/mario_latent.yaml
J=${4:-astar,tile_kl,expressive_range,novelty,validity,solver,diversity}
RL=".venv/bin/python -m rlcreate.cli"
step() { echo "[compare $(date +%T)] $*" >&2; }   # timestamps say which step a slow run spends its time in
mkdir -p "$O"
step train ppo
$RL train "$R" --timesteps "$B" --out "$O" --name ppo --quiet
for m in random cma map-elites; do
  step baseline "$m"
  $RL baseline "$R" --method "$m" --budget "$B" --out "$O" --name "$m" --quiet
done
for r in ppo random cma map-elites; do
  step eval "$r"
  $RL eval "$O/$r" --n "$N" --astar-runs 2 --audit-levels "$((N < 8 ? N : 8))" \
    --judges "$J"
done
step report
$RL report "$O/ppo" "$O/random" "$O/cma" "$O/map-elites" --out "$O/report"
# one JSON with every method's judges (what BENCHMARKS.md's table reads)
.venv/bin/python -c "import json, sys; o = sys.argv[1]; runs = ['ppo', 'random', 'cma', 'map-elites']
d = {r: {k: v for k, v in json.load(open(f'{o}/{r}/metrics.json')).items() if k != 'audit'} for r in runs}
d['command'] = 'bash scripts/compare_mario_baselines.sh ' + ' '.join(sys.argv[2:])
json.dump(d, open(f'{o}/compare.json', 'w'), indent=1)" "$O" "$B" "$O" "$N"
echo "report: $O/report/index.html, judges: $O/compare.json"
