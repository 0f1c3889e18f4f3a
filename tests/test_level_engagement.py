"""Engagement by play: the play-calibrated tension scale and the judge's two readings of a lost play."""

from __future__ import annotations

import numpy as np
import pytest

from rlcreate.levels import tiles as T
from rlcreate.rewards.registry import get_reward


def flat(width: int = 128, height: int = 2) -> np.ndarray:
    g = np.zeros((14, width), np.int8)
    g[14 - height :] = T.GROUND
    return g


def ramp_level(reverse: bool = False) -> np.ndarray:
    """Pits that widen (1..8 columns) and enemies that multiply from segment to segment."""
    g = flat()
    for s in range(8):
        k = 7 - s if reverse else s
        a = s * 16 + 4
        g[12:, a : a + k + 1] = T.EMPTY
        g[11, s * 16 + 13 : s * 16 + 13 + k // 2] = T.ENEMY
    return g


def lost_trace():
    from rlcreate.levels.play_trace import _parse

    pad = 3
    xs = ",".join(str((pad + c) * 16) for c in range(0, 40, 2))  # 2 columns a tick, lost in column 38
    return _parse(xs, "1,9,17", "LOSE", 64, pad)


def test_lost_play_readings_penalise_or_drop_the_segment_where_it_ended():
    from rlcreate.levels.play_trace import effort_slope, segment_effort

    tr = lost_trace()
    assert tr.fail_segment == 2 and tr.ticks.tolist() == [8, 8, 4, 0]
    pen, drop = segment_effort(tr, "penalty"), segment_effort(tr, "drop")
    assert pen[:2].tolist() == drop[:2].tolist() == [8 / 20 + 1, 8 / 20 + 1]
    assert pen[2] == pytest.approx(4 / 20 + 1 + 10) and np.isnan(pen[3])
    assert np.isnan(drop[2:]).all()
    assert effort_slope(tr, "penalty") > 0.8  # the lost segment reads as the hardest and last
    assert effort_slope(tr, "drop") == 0.0  # two passed segments: too few for a slope
    with pytest.raises(ValueError, match="lost = 'ignore'"):
        segment_effort(tr, "ignore")


def test_segment_play_features_carry_the_neighbours_path():
    from rlcreate.levels.engagement import segment_play_features

    x = segment_play_features(np.stack([flat(), ramp_level()]))
    assert x.shape == (2, 8, 21)
    own, prev, nxt = x[..., 9:13], x[..., 13:17], x[..., 17:21]
    assert np.allclose(prev[:, 1:], own[:, :-1]) and np.allclose(nxt[:, :-1], own[:, 1:])
    assert (prev[:, 0] == 0).all() and (nxt[:, -1] == 0).all()
    assert (own[0] == 0).all() and own[1, -1, 0] > own[1, 0, 0]  # flat ground forces no jump; pits do


def test_play_scale_is_fitted_on_human_play_and_reads_pits_and_enemies_as_effort():
    from rlcreate.levels.engagement import play_effort_model, predicted_effort, tension

    model, ref = play_effort_model()
    assert np.all(np.diff(ref) >= 0) and len(ref) >= 100  # the human scale: calibration segments
    e = predicted_effort(np.stack([flat(), ramp_level()]))
    assert e.shape == (2, 8) and e[1, -3:].mean() > e[0].mean()  # wide pits + enemies cost the agent more
    t = tension(np.stack([flat(), ramp_level()]), "play")
    assert ((0 <= t) & (t <= 1)).all() and t[1, -3:].mean() > t[0, -3:].mean()


def test_tension_curve_play_scale_prefers_the_requested_shape_and_rejects_unknown_scales():
    from rlcreate.errors import UserError

    up, down = ramp_level(), ramp_level(reverse=True)
    rising = get_reward("tension_curve", curve="rising", scale="play")([up, down])
    assert rising[0] > rising[1]
    with pytest.raises(UserError, match="scale = 'feel'"):
        get_reward("tension_curve", scale="feel")


def test_engagement_module_imports_no_rl_framework():
    import subprocess
    import sys

    code = (
        "import sys, rlcreate.levels.engagement as e; e.play_effort_model(); "
        "bad = [m for m in ('gymnasium', 'stable_baselines3', 'trl') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tension_curve_width_holds_a_partial_level_to_the_start_of_the_curve():
    from rlcreate.levels.engagement import curve_values

    full = curve_values("rising", 8)
    assert np.allclose(curve_values("rising", 2, total=8), full[:2])  # not the whole curve in 2 segments
    assert not np.allclose(curve_values("rising", 2), full[:2])
    up = ramp_level()
    whole = get_reward("tension_curve", curve="rising", width=128)
    assert whole([up])[0] == pytest.approx(get_reward("tension_curve", curve="rising")([up])[0])
    assert whole([up[:, :32]])[0] != pytest.approx(get_reward("tension_curve", curve="rising")([up[:, :32]])[0])


def test_training_window_origins_name_each_windows_corpus_columns_and_span():
    from rlcreate.levels.corpus import full_corpus, training_window_origins, training_windows

    w, o = training_windows(128, stride=32), training_window_origins(128, stride=32)
    assert o.shape == (len(w), 2)
    corpus = full_corpus()
    for i in (0, len(w) // 2, len(w) - 1):
        np.testing.assert_array_equal(w[i], corpus[:, o[i, 0] : o[i, 0] + 128])
    # windows less than 128 columns apart overlap: they must share a span (grouped CV relies on it)
    close = np.abs(o[:, None, 0] - o[None, :, 0]) < 128
    assert (o[:, None, 1] == o[None, :, 1])[close].all()
    assert set(map(tuple, training_window_origins(128, 128))) <= set(map(tuple, o))  # stride 128 among them


def test_effort_targets_cap_or_centre_the_penalty_reading():
    from rlcreate.levels.engagement import effort_target
    from rlcreate.levels.play_trace import segment_effort

    tr = lost_trace()
    pen = segment_effort(tr, "penalty")
    np.testing.assert_array_equal(effort_target(tr, "penalty"), pen)
    cap = effort_target(tr, "capped")
    assert cap[2] == pytest.approx(pen[2] - 7) and cap[:2].tolist() == pen[:2].tolist() and np.isnan(cap[3])
    cen = effort_target(tr, "centred")
    assert np.nanmean(cen) == pytest.approx(0) and np.isnan(cen[3])
    with pytest.raises(ValueError, match="target = 'log'"):
        effort_target(tr, "log")


def test_context_variant_appends_the_neighbouring_segments_tile_features():
    from rlcreate.levels.engagement import segment_play_features, variant_features

    g = np.stack([flat(), ramp_level()])
    x, c = segment_play_features(g, "play_ground"), variant_features(g, "play_ground32")
    t = x.shape[2] - 12  # tile features; the path part is own + previous + next (3 x 4)
    assert c.shape == (2, 8, x.shape[2] + 2 * t)
    np.testing.assert_array_equal(c[..., : x.shape[2]], x)
    prev, nxt = c[..., x.shape[2] : x.shape[2] + t], c[..., x.shape[2] + t :]
    np.testing.assert_array_equal(prev[:, 1:], x[:, :-1, :t])
    np.testing.assert_array_equal(nxt[:, :-1], x[:, 1:, :t])
    assert (prev[:, 0] == 0).all() and (nxt[:, -1] == 0).all()


def _script(name: str):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_calibration_reuse_finds_earlier_plays_by_corpus_column_and_width(tmp_path):
    import json

    from rlcreate.levels.corpus import training_window_origins
    from rlcreate.levels.engagement import CALIBRATION

    cal = _script("calibrate_engagement")
    old = cal._reusable(str(CALIBRATION), 128)
    starts128 = training_window_origins(128, 128)[:, 0]
    assert sorted(old) == sorted(int(s) for s in starts128)  # every shipped play, keyed by its first column
    assert cal._reusable(str(CALIBRATION), 32) == {}  # other width: nothing to reuse
    assert cal._reusable(str(tmp_path / "none.json"), 128) == {} and cal._reusable("", 128) == {}
    # the stride-32 file holds the stride-128 plays unchanged, at the same windows
    s32 = json.loads(CALIBRATION.with_name("engagement_calibration_stride32.json").read_text())
    assert s32["played"] == s32["windows_total"] == len(training_window_origins(128, 32))
    by_start = {r["start"]: r for r in s32["windows"]}
    for start, r in old.items():
        assert {k: by_start[start][k] for k in ("status", "ticks", "jumps", "fail_segment")} == {
            k: r[k] for k in ("status", "ticks", "jumps", "fail_segment")
        }


def test_engagement_model_cv_metrics_read_a_perfect_and_a_reversed_prediction():
    bench = _script("bench_engagement_model")
    rng = np.random.default_rng(0)
    y = rng.random((12, 8)) + np.arange(8) * 0.2  # rising effort with noise
    y[3, 5:] = np.nan  # a lost play: later segments unread
    span = np.repeat(np.arange(4), 3)
    good = bench._metrics(y.copy(), y, span, boot=20)
    assert good["segment_spearman"] == pytest.approx(1.0) and good["window_slope_spearman"] == pytest.approx(1.0)
    assert good["segments"] == int(np.isfinite(y).sum()) and good["windows"] == 12
    bad = bench._metrics(-y, y, span, boot=20)
    assert bad["segment_spearman"] == pytest.approx(-1.0) and bad["window_slope_spearman"] < 0


def _gen_file(path, grids, traces) -> None:
    import json

    from rlcreate.levels.tiles import level_to_text

    rows = [
        {
            "policy": "rising",
            "env_seed": 1000,
            "request": i,
            "level": level_to_text(g),
            "status": t.status,
            "ticks": t.ticks.astype(int).tolist(),
            "jumps": t.jumps.astype(int).tolist(),
            "fail_segment": t.fail_segment,
        }
        for i, (g, t) in enumerate(zip(grids, traces))
    ]
    path.write_text(json.dumps({"levels": rows}))


def test_generated_plays_join_the_effort_fit_but_not_the_human_scale(tmp_path, monkeypatch):
    from rlcreate.levels import engagement as E
    from rlcreate.levels.play_trace import PlayTrace

    grids = np.stack([ramp_level(), ramp_level(reverse=True), flat()])
    # the agent toiled in these levels (40 effort per segment, far above any human window's)
    traces = [PlayTrace("WIN", np.full(8, 200.0), np.full(8, 30.0), -1) for _ in grids]
    _gen_file(tmp_path / "gen.json", grids, traces)
    monkeypatch.setattr(E, "CALIBRATION_GEN", tmp_path / "gen.json")
    E.play_effort_model.cache_clear()
    try:
        back, back_traces = E.generated_plays()
        np.testing.assert_array_equal(back, grids)
        assert [t.ticks.tolist() for t in back_traces] == [t.ticks.tolist() for t in traces]
        x, y, xg, yg = E.calibration_data("play_ground32_gen")
        x0, y0, xg0, _ = E.calibration_data("play_ground32")
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)
        assert xg0.shape[0] == 0 and xg.shape == (3, 8, x.shape[2])
        np.testing.assert_allclose(yg, 40.0)
        model, ref = E.play_effort_model("play_ground32_gen")
        assert len(ref) == x.shape[0] * x.shape[1]  # the human scale: human windows' segments only
        np.testing.assert_allclose(ref, np.sort(model.predict(x.reshape(-1, x.shape[2]))))
        # the fit saw the generated plays: it predicts more effort for those levels than the human-only model
        assert (E.predicted_effort(grids, "play_ground32_gen") > E.predicted_effort(grids, "play_ground32") + 1).all()
    finally:
        E.play_effort_model.cache_clear()


def test_shipped_generated_calibration_holds_none_of_the_benchmarks_judged_requests():
    import json

    from rlcreate.levels.engagement import CALIBRATION_GEN

    data = json.loads(CALIBRATION_GEN.read_text())
    seeds = {r["env_seed"] for r in data["levels"]}
    # bench_level_engagement_ppo.py judges env seed --seed + 1 (1, 2 for the two training seeds) and
    # draws its start from policy seeds env_seed + 100 + k
    assert min(seeds) > 2 + 100 + 64 and data["config"]["env_seed"] == min(seeds)
    assert len(data["levels"]) == 2 * data["config"]["n"]
    assert {r["policy"] for r in data["levels"]} == {"rising", "flat"}


def test_generated_calibration_refuses_env_seeds_near_the_judged_requests():
    from rlcreate.errors import UserError

    gen = _script("calibrate_engagement_gen")
    with pytest.raises(UserError, match="env_seed = 5"):
        gen.main(gen.Config(env_seed=5, train=0))


def test_engagement_bench_rising_option_sets_the_rising_request_only(capsys):
    bench = _script("bench_level_engagement_ppo")
    cfg = bench.Config(rising="0.05,0.5,0.95", scale="play_ground32", offers=1)
    args = {c: bench.curve_recipe(c, cfg).to_dict()["rewards"]["engagement"]["args"] for c in ("rising", "flat")}
    assert args["rising"]["curve"] == [0.05, 0.5, 0.95] and args["flat"]["curve"] == "flat"
    assert bench.curve_recipe("rising", bench.Config()).to_dict()["rewards"]["engagement"]["args"]["curve"] == "rising"
    for bad in ("0.1,abc", "1.5", "steep"):
        with pytest.raises(SystemExit) as exit_:
            bench.main(bench.Config(rising=bad, train=0))
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --rising") and bad in err and err.count("\n") == 1, err


def test_engagement_bench_flat_weight_sets_the_flat_request_only():
    bench = _script("bench_level_engagement_ppo")

    def weights(cfg):
        return {c: bench.curve_recipe(c, cfg).to_dict()["rewards"]["engagement"]["weight"] for c in ("rising", "flat")}

    assert weights(bench.Config(weight=12.0, flat_weight=8.0)) == {"rising": 12.0, "flat": 8.0}
    assert weights(bench.Config(weight=12.0)) == {"rising": 12.0, "flat": 12.0}  # 0: the flat one follows --weight


def test_engagement_bench_net_arch_sets_both_policies_layers():
    bench = _script("bench_level_engagement_ppo")

    def layers(cfg):
        return {c: bench.curve_recipe(c, cfg).trainer["hyper"]["policy_kwargs"]["net_arch"] for c in ("rising", "flat")}

    assert layers(bench.Config()) == {"rising": [128, 128], "flat": [128, 128]}  # "": the base recipe's
    assert layers(bench.Config(net_arch="64,64")) == {"rising": [64, 64], "flat": [64, 64]}
    with pytest.raises(SystemExit, match="error: --net_arch '0'"):
        bench.curve_recipe("rising", bench.Config(net_arch="0"))


def test_engagement_bench_env_seed_picks_the_judged_requests_and_refuses_calibrated_ones(capsys):
    bench = _script("bench_level_engagement_ppo")
    assert bench.judged_env_seed(bench.Config(seed=3)) == 4  # 0: --seed + 1, every run before the option
    assert bench.judged_env_seed(bench.Config(seed=3, env_seed=2004)) == 2004
    with pytest.raises(SystemExit) as exit_:
        bench.main(bench.Config(env_seed=1000, train=0))  # the generated calibration's requests
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --env_seed 1000") and err.count("\n") == 1, err


def _bench_json(path, seed, env_seed, rising, flat, **config):
    import json

    slopes = {k: {"slopes": v} for k, v in (("penalty", rising), ("drop", rising))}
    flats = {k: {"slopes": v} for k, v in (("penalty", flat), ("drop", flat))}
    data = {"config": {"seed": seed, "weight": 12.0, "runs": f"runs/s{seed}", "n": len(rising), **config},
            "effort_model_data": {"judged_env_seed": env_seed}, "sets": {"ppo_rising": slopes, "ppo_flat": flats}}
    path.write_text(json.dumps(data))
    return str(path)


def test_pooled_separation_counts_every_request_once_per_training_seed(tmp_path, capsys):
    pool = _script("pool_engagement_separation")
    files = [
        _bench_json(tmp_path / "a.json", 0, 1, [1, 2, 3, 4], [0, 0, 5, 5]),  # 2 of 4
        _bench_json(tmp_path / "b.json", 0, 2001, [1, 1], [0, 0], judge="ppo"),  # 2 of 2: seed 0 has 4 of 6
        _bench_json(tmp_path / "c.json", 1, 2, [1, 1, 1, 1], [2, 0, 0, 0]),  # 3 of 4
    ]
    out = pool.main(pool.Config(files=",".join(files), draws=500, out=str(tmp_path / "pooled.json")))
    r = out["readings"]["penalty"]
    assert r["per_seed"]["0"]["share"] == round(4 / 6, 4) and r["per_seed"]["0"]["n_requests"] == 6
    assert r["per_seed"]["1"]["share"] == 0.75
    p = r["pooled"]
    assert p["share"] == 0.7 and p["n_requests"] == 10 and p["n_seeds"] == 2
    assert p["ci_requests"][0] < 0.7 < p["ci_requests"][1] and p["ci_seeds_and_requests"][1] <= 1.0
    # another training config, the same requests twice, no file, no such set: one error line each
    cases = (
        (f"{files[0]},{_bench_json(tmp_path / 'd.json', 1, 2002, [1], [0], weight=8.0)}", "ppo", "(weight)"),
        (f"{files[0]},{_bench_json(tmp_path / 'e.json', 0, 1, [1], [0])}", "ppo", "pooled twice"),
        (str(tmp_path / "none*.json"), "ppo", "no such bench JSON"),
        (files[0], "start", "--method 'start'"),
    )
    for files_, method, says in cases:
        with pytest.raises(SystemExit) as exit_:
            pool.main(pool.Config(files=files_, method=method, out=str(tmp_path / "p.json")))
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "p.json").exists()


# ---- the engagement judge (rlcreate.levels.play_judge) ----------------------------------------


@pytest.fixture(autouse=True)
def _fresh_human_plays():
    """The judge keeps the human windows' plays per process: no test may see another's (fake) ones."""
    from rlcreate.levels import play_judge

    play_judge._human_traces.cache_clear()
    yield
    play_judge._human_traces.cache_clear()


def _trace(efforts, fail: int = -1):
    """A won (or lost at ``fail``) play whose segment efforts are ``efforts`` (no take-offs)."""
    from rlcreate.levels.play_trace import PlayTrace

    e = np.asarray(efforts, np.float64)
    return PlayTrace("WIN" if fail < 0 else "LOSE", e * 20.0, np.zeros_like(e), fail)


def test_played_tension_is_the_share_of_human_segments_below_and_keeps_unreached_ones_unread():
    from rlcreate.levels.play_judge import played_tension

    ref = np.array([1.0, 2.0, 3.0, 4.0, np.nan])  # a NaN reference segment (after a loss) is no reference
    got = played_tension(np.array([[0.5, 2.0, 9.0, np.nan]]), ref)
    assert got[0, :3].tolist() == [0.0, 0.375, 1.0] and np.isnan(got[0, 3])  # 2.0: one of four below, one tied


def test_engagement_judge_reads_a_rising_set_against_the_request_and_the_human_band(monkeypatch):
    from rlcreate.levels import play_judge

    k = 8
    rising = [_trace(np.linspace(1.0, 8.0, k) + 0.1 * i) for i in range(4)]
    humans = [_trace(np.full(k, 3.0) + np.arange(k) % 3) for _ in range(10)]  # DEV + TEST: 10 windows of 128
    calls = []

    def fake_play(grids, workers=2):
        calls.append(len(grids))
        return humans if len(grids) == 10 else rising

    monkeypatch.setattr(play_judge, "play_traces", fake_play)
    levels = [flat()] * 4
    out = play_judge.judge_engagement(levels, tension_request="rising")
    assert calls == [4, 10] and out["human_windows"] == 10 and out["astar_won"] == 1.0
    assert out["effort_slope"] == pytest.approx(1.0) and not out["slope_in_human_band"]  # humans: no rise
    assert out["human_effort_per_segment_band"] == pytest.approx([3.875, 3.875])  # ten identical windows
    assert out["effort_per_segment"] == pytest.approx(4.65) and not out["effort_in_human_band"]
    profile = np.array(out["tension_profile"])
    assert profile[0] == 0.0 and profile[-1] == 1.0 and (np.diff(profile) >= 0).all()
    assert out["request_spearman"] > 0.9 and out["tension_request"][0] < out["tension_request"][-1]
    assert out["request_fit"] == pytest.approx(max(0.0, 1 - out["request_distance"] / 0.5))
    flat_request = play_judge.judge_engagement(levels, tension_request="flat")
    assert flat_request["request_spearman"] is None and flat_request["request_distance"] > 0.3
    assert "tension_request" not in play_judge.judge_engagement(levels)
    assert calls == [4, 10, 4, 4]  # the human windows are played once per process


def test_engagement_judge_skips_without_java_or_without_a_human_width(monkeypatch):
    from rlcreate.levels import play_judge

    monkeypatch.setattr(play_judge, "play_traces", lambda grids, workers=2: None)
    assert "java" in play_judge.judge_engagement([flat()])["skipped"]
    assert "one width" in play_judge.judge_engagement([flat(128), flat(64)])["skipped"]
    assert "one width" in play_judge.judge_engagement([flat(256)])["skipped"]  # no human window that wide


def test_the_audit_checks_the_tension_term_against_play():
    from rlcreate.levels.domain import DOMAIN

    assert DOMAIN.counterparts["tension_curve"][:2] == ("engagement", "request_fit")


def test_the_recipe_s_tension_request_reaches_the_judge():
    from rlcreate.levels.demo import TOKENS_BASE, recipe_file
    from rlcreate.levels.judges import tension_request
    from rlcreate.recipe import load_recipe, parse_recipe

    d = load_recipe(recipe_file(TOKENS_BASE)).to_dict()
    assert tension_request(parse_recipe(d, "<no curve>")) is None
    d["rewards"]["engagement"] = {"reward": "tension_curve", "weight": 8.0, "args": {"curve": [0.1, 0.9]}}
    assert tension_request(parse_recipe(d, "<curve>")) == [0.1, 0.9]
    d["rewards"]["engagement"]["args"] = {}
    assert tension_request(parse_recipe(d, "<default curve>")) == "rising"


@pytest.mark.slow
def test_engagement_judge_plays_for_real():
    import shutil

    if shutil.which("java") is None or shutil.which("javac") is None:
        pytest.skip("needs a JDK")
    from rlcreate.levels.judges import run_judges

    out = run_judges([flat(), ramp_level()], ["engagement"], tension_request="rising")["engagement"]
    assert out["levels"] == 2 and out["human_windows"] == 10 and len(out["tension_profile"]) == 8
    assert out["per_level_slope"][1] > out["per_level_slope"][0]  # the widening pits read as rising in play


def test_the_report_shows_the_engagement_judge_segment_by_segment():
    from rlcreate.levels.evaluate import engagement_html

    judged = {
        "levels": 4,
        "human_windows": 10,
        "tension_profile": [0.1, 0.9],
        "tension_request": [0.15, 0.85],
        "effort_profile": [2.0, 6.0],
        "effort_profile_drop": [2.0, 5.0],
        "human_effort_per_segment_band": [4.7, 17.6],
        "human_effort_slope_band": [-0.03, 0.3],
        "request_distance": 0.05,
        "request_spearman": 1.0,
    }
    page = engagement_html("run<1>", judged)
    assert "run&lt;1&gt;: engagement by play" in page and "effort per segment [4.7, 17.6]" in page
    assert "<td>16-31</td><td>0.85</td><td>0.9</td><td>6</td><td>5</td>" in page
    assert engagement_html("r", None) == "" and engagement_html("r", {"skipped": "java / javac not found"}) == ""
    hostile = {"tension_profile": [0.5, "<b>"], "tension_request": "rising", "effort_profile": {"0": 1}}
    page = engagement_html("r", hostile)  # a hand-edited metrics.json: shown escaped, never a traceback
    assert "<td>16-31</td><td>—</td><td>&lt;b&gt;</td><td>—</td><td>—</td>" in page


def test_the_shipped_tension_recipe_is_the_measured_configuration():
    from pathlib import Path

    from rlcreate.recipe import load_recipe

    bench = _script("bench_level_engagement_ppo")
    cfg = bench.Config(
        offers=1, scale="play_ground32_gen", timesteps=196608, weight=12.0, rising="0.05,0.18,0.31,0.44,0.56,0.69,0.82,0.95"
    )
    shipped = load_recipe(Path(__file__).resolve().parents[1] / "rlcreate" / "recipes" / "mario_tokens_tension.yaml")
    measured = bench.curve_recipe("rising", cfg).to_dict()
    mine = shipped.to_dict()
    assert "engagement" in mine["judges"]  # eval plays the levels against the requested curve
    for key in ("name", "description", "judges"):
        mine.pop(key), measured.pop(key)
    assert mine == measured
