# GPU check of `trainer.device: cuda` on the demo recipe (BENCHMARKS.md, "Training the token
# policy on a GPU"). Run from the repository root on a machine with a CUDA build of torch, the other
# packages as wheels in .whl/ (gymnasium, farama-notifications, stable-baselines3, sb3-contrib,
# dill, mario-gpt, faiss-cpu): bash benchmarks/device/gpu_check.sh
# It installs them into /tmp/site, maps envs/ and rewards/ into the package as the install does,
# trains 32,768 steps with the policy on cuda and on cpu in one process, then generate, calibrate
# and resume on the cuda run.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
cp -r envs rlcreate/envs && cp -r rewards rlcreate/rewards || exit 8
rm -rf /tmp/runs
export PYTHONPATH=/tmp/site:$PWD OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | grep -v "Loading weights"
import time, json, torch
from rlcreate.recipe import load_recipe
from rlcreate.train.runner import train_run, restore
print("torch", torch.__version__, torch.cuda.get_device_name(0))
res = {}
for dev in ("cuda", "cpu"):
    r = load_recipe("rlcreate/recipes/mario_tokens_variety.yaml")
    r.trainer["device"] = dev
    r.trainer["total_timesteps"] = 32768
    r.name = dev
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    train_run(r, f"/tmp/runs/{dev}", progress_bar=False)
    res[dev] = {"train_s": round(time.perf_counter() - t, 1), "cuda_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    m = json.load(open(f"/tmp/runs/{dev}/samples/summary.json")) if __import__("os").path.exists(f"/tmp/runs/{dev}/samples/summary.json") else {}
    res[dev]["samples_mean"] = {k: round(v, 3) for k, v in (m.get("mean") or {}).items()}
    print(dev, res[dev], flush=True)
PY
cd /tmp && for c in "generate /tmp/runs/cuda --n 8" "calibrate /tmp/runs/cuda --levels 32 --rounds 1" "train /tmp/runs/cuda --resume --steps 40960 --quiet"; do
  echo "== rlcreate $c"; python3 -m rlcreate.cli $c 2>&1 | grep -v "Loading weights" | tail -4
done
