"""Every script in scripts/ runs for real in a subprocess with a tiny budget (its smoke mode), and the
main job (`rlcreate demo`) runs end to end with a few hundred steps. Scripts with their own test
(cleanrl_ppo, rllib_ppo, bench_level_quality, bench_scaleout, gen_reference) are covered
there; this file fails when a new script has no smoke run anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTED_ELSEWHERE = {"cleanrl_ppo.py": "test_cleanrl.py", "rllib_ppo.py": "test_rllib.py",
                    "bench_level_quality.py": "test_level_quality.py",
                    "bench_scaleout.py": "test_rllib.py", "gen_reference.py": "test_reference_docs.py",
                    "train_level_gan.py": "test_level_gan.py", "bench_latent_generator.py": "test_level_gan.py",
                    "bench_latent_control.py": "test_level_gan.py",
                    "bench_latent_candidates.py": "test_level_gan.py",
                    "bench_latent_demo.py": "test_level_gan.py",
                    "latent_rule_agreement.py": "test_level_gan.py",
                    "bench_latent_selection.py": "test_level_gan.py",
                    "pool_engagement_separation.py": "test_level_engagement.py",
                    "check_report_chromium.py": None, "setup.sh": None, "lint.sh": None}  # lint.sh: .ci/run runs it


def _run(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:  # say which step hung: the output so far, not just the command
        out = [(s.decode(errors="replace") if isinstance(s, bytes) else s or "") for s in (exc.stdout, exc.stderr)]
        raise AssertionError(f"timed out after {timeout} s:\n{out[0][-2000:]}\n{out[1][-4000:]}") from None
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _smoke(tmp: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "bench_generators.py": [py, "scripts/bench_generators.py", "--repeats", "1", "--vae-calls", "2",
                                "--out", str(tmp / "gen.json")],
        "bench_mario_latent.py": [py, "scripts/bench_mario_latent.py", "--seconds", "0.5", "--n-envs", "4",
                                  "--out", str(tmp / "latent.json")],
        "bench_text_tokens.py": [py, "scripts/bench_text_tokens.py", "--n-envs", "2", "--max-new-tokens", "4",
                                 "--steps-per-round", "4", "--rounds", "1", "--single-env-steps", "2",
                                 "--generate-rounds", "1", "--out", str(tmp / "text.json")],
        "bench_astar_harness.py": [py, "scripts/bench_astar_harness.py", "--width", "32", "--n-dev", "2",
                                   "--n-corpus", "1", "--runs", "1", "--out", str(tmp / "astar_harness.json")],
        "bench_astar_stall.py": [py, "scripts/bench_astar_stall.py", "--n-human", "1", "--n-train", "0", "--n-lm", "0",
                                 "--levels", "", "--out", str(tmp / "astar_stall.json")],
        "playability_agreement.py": [py, "scripts/playability_agreement.py", str(tmp / "agree.json"),
                                     "--max-levels", "2", "--runs", "1", "--piece-width", "32", "--no-cache"],
        "train_level_vae.py": [py, "scripts/train_level_vae.py", "--epochs", "1", "--out", str(tmp / "vae")],
        "train_column_lm.py": [py, "scripts/train_column_lm.py", "--steps", "2", "--out", str(tmp / "lm")],
        "bench_text_creativity.py": [py, "scripts/bench_text_creativity.py", "--steps", "1", "--k", "2",
                                     "--n-prompts", "2", "--runs", str(tmp / "creativity"), "--out",
                                     str(tmp / "creativity.json")],
        "bench_text_steer.py": [py, "scripts/bench_text_steer.py", "--timesteps", "96", "--n", "4",
                                "--run", str(tmp / "steer"), "--out", str(tmp / "steer.json")],
        "bench_hostile.py": [py, "scripts/bench_hostile.py", "--only", "YAML", "--timeout-s", "120",
                             "--out", str(tmp / "hostile.json")],
        # calibrated after training: the start's fit and the objective policy's own, then the sets;
        # variety with the human cap and solid gate, judged by it and by the old reward
        "bench_level_objectives.py": ["bash", "-c", f"{py} scripts/bench_level_objectives.py --objectives level_variety "
                                      f"--variety_cap human --variety_max_solid human --request_seed 5 "
                                      f"--timesteps 128 --n 2 --calibrate 1 --calibration_levels 16 "
                                      f"--runs {tmp}/objectives --out {tmp}/obj.json && {py} -c \"import json; "
                                      f"r = json.load(open('{tmp}/obj.json')); c = r['calibration']; "
                                      "assert set(c) == {'start', 'level_variety'} and c['level_variety']['levels'] == 16, c; "
                                      "p = r['objectives']['level_variety']['ppo']; "
                                      "assert p['ci_vs_start'] and 'mean_default_args' in p and 'heavy_segments' in p, p; "
                                      "assert 0.1 < r['human_train_mass']['solid_share'] < 0.15, r\""],
        "bench_level_objectives_search.py": [py, "scripts/bench_level_objectives_search.py", "--objectives", "rhythm",
                                             "--budget", "512", "--batch", "2", "--n", "4", "--runs",
                                             str(tmp / "no_runs"), "--samples", str(tmp / "search"),
                                             "--out", str(tmp / "obj_search.json")],
        "bench_level_engagement.py": [py, "scripts/bench_level_engagement.py", "--n", "2", "--candidates", "2",
                                      "--big_candidates", "2", "--out", str(tmp / "engagement.json")],
        "bench_level_engagement_ppo.py": [py, "scripts/bench_level_engagement_ppo.py", "--timesteps", "512", "--n", "2",
                                          "--candidates", "2", "--offers", "1", "--scale", "play_ground",
                                          "--runs", str(tmp / "engagement_runs"),
                                          "--out", str(tmp / "engagement_ppo.json")],
        "calibrate_engagement.py": [py, "scripts/calibrate_engagement.py", "--width", "32", "--stride", "100000",
                                    "--out", str(tmp / "engagement_calibration.json")],
        "calibrate_engagement_gen.py": [py, "scripts/calibrate_engagement_gen.py", "--timesteps", "256", "--n", "3",
                                        "--folds", "2", "--runs", str(tmp / "gen_runs"),
                                        "--out", str(tmp / "engagement_calibration_gen.json")],
        "bench_engagement_model.py": [py, "scripts/bench_engagement_model.py", "--variants", "play_ground,ground32",
                                      "--boot", "10", "--out", str(tmp / "engagement_model_cv.json")],
        # a one-rollout run, then its profile sets and PPO's share (its start and best-of-2, same requests)
        "bench_profile_sets.py": ["bash", "-c", f"{py} -m rlcreate.cli train rlcreate/recipes/mario_tokens.yaml "
                                  f"--steps 512 --out {tmp} --name ps --quiet && "
                                  f"{py} scripts/bench_profile_sets.py --runs {tmp}/ps --sets 1 --n 2 --best_of 2 --checkpoints 1 "
                                  f"--element_bias coins=0.3 --calibrate 1 --calibration_levels 16 "
                                  f"--out {tmp}/profile_sets.json && {py} -c \"import json; "
                                  f"p = json.load(open('{tmp}/profile_sets.json'))['policies']; "
                                  f"s = p['{tmp}/ps']['ppo_share']; assert s['requests'] == 2, s; "
                                  f"assert 'checkpoints' in p['{tmp}/ps']; c = p['{tmp}/ps']['calibration']; "
                                  "assert set(c) == {'steered', 'untrained_start'} and c['steered']['levels'] == 16, c; "
                                  "assert set(s['share']) == {'steered_minus_untrained_start', "
                                  "'steered_minus_best_of_2'}, s; assert 'tokens calibrated start' in p, p\" && "
                                  # the variety recipe: the rule as a row, and best-of-2 of PPO's and the rule's draws
                                  f"{py} -m rlcreate.cli train rlcreate/recipes/mario_tokens_variety.yaml "
                                  f"--steps 512 --out {tmp} --name psv --quiet && "
                                  f"{py} scripts/bench_profile_sets.py --runs {tmp}/psv --starts '' --sets 1 --n 2 "
                                  f"--best_of 2 --rule 1 --selection 1 --policy_rule 1 --out {tmp}/profile_sets_rule.json && "
                                  # the fitted-response calibration, without the share: the policy's fit only
                                  f"{py} scripts/bench_profile_sets.py --runs {tmp}/psv --starts '' --sets 1 --n 2 --share 0 "
                                  f"--calibrate 1 --calibration_levels 16 --calibration_method fit --out {tmp}/psc.json && "
                                  f"{py} -c \"import json; c = json.load(open('{tmp}/psc.json'))['policies']['{tmp}/psv']['calibration']; "
                                  "assert set(c) == {'steered'} and c['steered']['method'] == 'fit', c; "
                                  "assert len(c['steered']['rounds']) == 4, c\" && "
                                  f"{py} -c \"import json; s = json.load(open('{tmp}/profile_sets_rule.json'))"
                                  f"['policies']['{tmp}/psv']['ppo_share']; "
                                  "assert set(s['objective']) == {'steered', 'untrained_start', 'best_of_2', 'variety_rule', "
                                  "'steered_best_of_2', 'variety_rule_best_of_2', 'steered_with_rule'}, s; "
                                  "d = s['selection']['steered_best_of_2_minus_variety_rule_best_of_2']; "
                                  "assert d['n'] == 2 and d['ci'][0] <= d['mean'] <= d['ci'][1], d; "
                                  "assert s['selection']['steered_with_rule_minus_variety_rule']['n'] == 2, s; "
                                  "assert s['style']['auc_steered_minus_variety_rule']['n'] == 1, s['style']\" && "
                                  # a latent choice run: the greedy picker as the rule, each with its own rate fit
                                  f"{py} -m rlcreate.cli train rlcreate/recipes/mario_latent_choice.yaml "
                                  f"--steps 128 --out {tmp} --name psl --quiet && "
                                  f"{py} scripts/bench_profile_sets.py --runs {tmp}/psl --starts '' --sets 1 --n 2 "
                                  f"--best_of 2 --rule 1 --calibrate 1 --calibration_levels 16 --out {tmp}/psl.json && "
                                  f"{py} -c \"import json; p = json.load(open('{tmp}/psl.json'))['policies']['{tmp}/psl']; "
                                  "s = p['ppo_share']; assert set(s['objective']) == {'steered', 'untrained_start', "
                                  "'best_of_2', 'greedy'}, s; assert set(p['calibration']) == {'steered', "
                                  "'untrained_start', 'greedy'}, p['calibration']\""],
        # the demo's recipe with a cheaper PPO update timed next to it in the same run
        # (and the LM's calls alone, with and without memory touched between them; the parts inside)
        "bench_level_tokens_speed.py": ["bash", "-c", f"{py} scripts/bench_level_tokens_speed.py --batches 2 --columns 16 "
                                        "--repeats 1 --recipe rlcreate/recipes/mario_tokens_variety.yaml "
                                        "--train_recipes e2=benchmarks/recipes/demo_variety_e2_b512_fused.yaml --lm_paths 1 "
                                        f"--out {tmp}/speed.json && {py} -c \"import json; "
                                        f"b = json.load(open('{tmp}/speed.json'))['batches']['2']; "
                                        "assert len(b['cpu_seconds']['train_e2']) == 1 and b['train_e2_over_lm'] > 0, b; "
                                        "assert 'train_update_e2_share_of_train_e2' in b and b['train_over_lm'] > 0, b; "
                                        "i = b['cpu_us_per_column_inside']; assert set(i) == {'env_lm', 'train_policy_forward', "
                                        "'train_e2_policy_forward', 'lm_steps_touch_lm'} and min(i.values()) > 0, i; "
                                        "assert b['cpu_us_per_column']['lm_steps_touch'] > i['lm_steps_touch_lm'], b\""],
        # two recipes x one seed, one rollout each, then judged (calibrated) on 1 set of 2 requests
        "bench_tokens_learning_speed.py": ["bash", "-c", f"{py} scripts/bench_tokens_learning_speed.py "
                                           "--recipes rlcreate/recipes/mario_tokens_variety.yaml,"
                                           "benchmarks/recipes/demo_variety_e2_b512_fused.yaml --labels cur,e2 "
                                           f"--seeds 0 --steps 512 --runs_dir {tmp}/ls --sets 1 --n 2 "
                                           f"--calibration_levels 16 --out {tmp}/ls.json && {py} -c \"import json; "
                                           f"r = json.load(open('{tmp}/ls.json'))['runs']; assert set(r) == {{'cur_s0', 'e2_s0'}}, r; "
                                           "assert r['e2_s0']['env_steps'] == 4096 and r['e2_s0']['cpu_s'] > 0, r; "
                                           "assert r['cur_s0']['cpu_s_over_reference'] == 1.0, r; "
                                           "assert r['e2_s0']['judged']['steered_minus_reference']['n'] == 2, r; "
                                           "assert set(r['e2_s0']['judged']['share']) == {'steered_minus_untrained_start', "
                                           "'steered_minus_best_of_4'}, r\""],
        # no A* judge: the agent plays in real time and the tests' cache is empty (it took 160-840 s here)
        "compare_mario_baselines.sh": ["bash", "scripts/compare_mario_baselines.sh", "128", str(tmp / "compare"), "2",
                                       "tile_kl,expressive_range,novelty,validity,solver,diversity"],
        "bench_text_forms_steer.py": [py, "scripts/bench_text_forms_steer.py", "--smoke", "--run", str(tmp / "fs"),
                                      "--cache", str(tmp / "fs_cache"), "--out", str(tmp / "forms_steer.json")],
        "train_text_forms.py": [py, "scripts/train_text_forms.py", "--seeds", "0", "--steps", "1", "--out",
                                str(tmp / "forms")],
        # the benchmark needs a trained run: train one step, then judge 1 TEST prompt per form
        "bench_text_forms.py": ["bash", "-c", f"{py} scripts/train_text_forms.py --seeds 0 --steps 1 --out {tmp}/fb && "
                                f"{py} scripts/bench_text_forms.py --n-prompts 1 --k-base 4 --k-tuned 1 --seeds 0 "
                                f"--runs {tmp}/fb --cache {tmp}/fb_cache --out {tmp}/forms.json"],
    }


def test_every_script_has_a_smoke_run(tmp_path):
    scripts = {p.name for p in (ROOT / "scripts").iterdir() if p.suffix in (".py", ".sh")}
    covered = set(_smoke(tmp_path)) | set(TESTED_ELSEWHERE)
    assert scripts <= covered, f"scripts without a smoke run: {sorted(scripts - covered)}"
    for script, test in TESTED_ELSEWHERE.items():
        if test and (ROOT / "scripts" / script).exists():
            assert (ROOT / "tests" / test).exists(), f"{script}: its test {test} is missing"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(_smoke(Path("/tmp"))))
def test_script_smoke(script, tmp_path):
    if script in ("playability_agreement.py", "calibrate_engagement.py", "calibrate_engagement_gen.py") and not __import__("shutil").which("java"):
        pytest.skip("needs java for the A* agent")
    _run(_smoke(tmp_path)[script], ROOT)


@pytest.mark.slow
def test_demo_main_job_runs_and_reports_its_step_count(tmp_path):
    """The README's main job, for real, with a fixed tiny step budget."""
    out = tmp_path / "demo"
    proc = _run([sys.executable, "-m", "rlcreate.cli", "demo", "--timesteps", "512", "--out", str(out), "--quiet",
                 "--no-calibrate"], tmp_path)  # calibration's slow test: test_demo's run_demo (fewer selection levels)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] >= 512 and summary["calibration"] == {} and not (out / "calibration.json").exists()
    assert (out / "samples" / "montage.png").is_file() and list((out / "samples").glob("level_*.txt"))
    assert "env steps" in proc.stdout
