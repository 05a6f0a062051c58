"""`ranpd demo` end to end: the xApp in its own process, the simulator in the loop, OLLA offline."""
from __future__ import annotations

import json

import pytest

from click.testing import CliRunner

from ranpd.cli import main
from ranpd.simulator.engine import run_policy
from ranpd.simulator.guard import GuardConfig
from ranpd.simulator.policies import Olla
from ranpd.simulator.scenarios import load_scenario
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.synthetic import write_synthetic_model

KPI_KEYS = ("throughput_mbps", "bler_first_tx", "bler_residual", "mean_mcs", "slots", "ues")


def test_demo_compares_the_student_in_the_loop_with_olla(tmp_path):
    model = write_synthetic_model(tmp_path / "student.onnx", seed=5)
    args = ["demo", "--model", str(model), "--scenarios", "uma-mid-pedestrian", "--slots", "300",
            "--ues", "16", "--seed", "2", "--deadline-us", "2000000", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    (row,) = out["scenarios"]
    sc = load_scenario("uma-mid-pedestrian")
    # The xApp serves behind its per-UE guard: offline, the same model behind the same guard.
    guarded = OnnxPolicyModel.load(model).policy(guard=GuardConfig(), max_transmissions=sc.max_transmissions)
    student = run_policy(sc, guarded, 300, seed=2, n_ues=16)
    olla = run_policy(sc, Olla(), 300, seed=2, n_ues=16)
    assert row["student"]["fallbacks"] == guarded.guard.handed_back_decisions and row["student"]["rtt_p99_us"] > 0
    assert {k: row["student"][k] for k in KPI_KEYS} == {k: student[k] for k in KPI_KEYS}
    assert {k: row["olla"][k] for k in KPI_KEYS} == {k: olla[k] for k in KPI_KEYS}
    expected_gain = 100 * (student["throughput_mbps"] / olla["throughput_mbps"] - 1)
    assert abs(row["throughput_gain_pct"] - expected_gain) < 1e-9
    best = row["olla_best"]             # tuned on another seed, reported on this one
    tuned = run_policy(sc, Olla(best["target_bler"], best["step_up_db"]), 300, seed=2, n_ues=16)
    assert best["throughput_mbps"] == tuned["throughput_mbps"] and out["bler_target"] == 0.1
    assert abs(row["gain_vs_best_pct"] - 100 * (student["throughput_mbps"] / tuned["throughput_mbps"] - 1)) < 1e-9


def test_demo_without_a_student_says_how_to_make_one(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--model", str(tmp_path / "missing.onnx")])
    assert result.exit_code != 0
    assert "ranpd train --profile full" in result.output


@pytest.mark.slow
def test_soak_samples_the_xapp_and_reports_every_cell(tmp_path):
    """A few seconds of `ranpd bench soak`: every cell ran and reconnected, the xApp was sampled."""
    model = write_synthetic_model(tmp_path / "student.onnx", seed=5)
    args = ["bench", "soak", "--model", str(model), "--cells", "2", "--ues", "4", "--minutes", "0.05",
            "--reconnect-every-s", "1", "--kpm-period-ms", "20", "--warmup-s", "0.5", "--sample-s", "0.2", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [n["cell"] for n in out["nodes"]] == [0, 1]
    for node in out["nodes"]:
        assert node["slots"] > 0 and node["decisions"] > 0 and node["reconnects"] >= 1 and node["kpm_reports"] > 0
        assert 2.5 <= node["wall_s"] < 10
    xapp = out["xapp"]
    assert xapp["samples"] == len(out["samples"]) >= 4 and xapp["rss_mib_after_warmup"] > 10
    assert xapp["fds_min"] > 0


def test_soak_memory_summary_compares_windows_after_warmup():
    from ranpd.cli.soak import memory_summary

    samples = [(t, 100.0 + (t >= 10) * 10 + t * 0.1, 20 + (t >= 50)) for t in range(60)]
    summary = memory_summary(samples, warmup_s=10)         # 50 samples after warm-up, windows of 5
    assert summary["rss_mib_after_warmup"] == 110 + 1.2 and summary["rss_mib_end"] == 110 + 5.7
    assert abs(summary["rss_growth_after_warmup_pct"] - 100 * (115.7 / 111.2 - 1)) < 1e-9
    assert summary["fd_drift"] == 1 and summary["rss_mib_max"] == 110 + 5.9
