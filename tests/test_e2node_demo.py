"""`ranpd demo` end to end: the xApp in its own process, the simulator in the loop, OLLA offline."""
from __future__ import annotations

import json

from click.testing import CliRunner

from ranpd.cli import main
from ranpd.simulator.engine import run_policy
from ranpd.simulator.policies import ObservationPolicy, Olla
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
    student = run_policy(sc, ObservationPolicy(OnnxPolicyModel.load(model).score), 300, seed=2, n_ues=16)
    olla = run_policy(sc, Olla(), 300, seed=2, n_ues=16)
    assert row["student"]["fallback_rate"] == 0.0 and row["student"]["rtt_p99_us"] > 0
    assert {k: row["student"][k] for k in KPI_KEYS} == {k: student[k] for k in KPI_KEYS}
    assert {k: row["olla"][k] for k in KPI_KEYS} == {k: olla[k] for k in KPI_KEYS}
    expected_gain = 100 * (student["throughput_mbps"] / olla["throughput_mbps"] - 1)
    assert abs(row["throughput_gain_pct"] - expected_gain) < 1e-9


def test_demo_without_a_student_says_how_to_make_one(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--model", str(tmp_path / "missing.onnx")])
    assert result.exit_code != 0
    assert "ranpd train --profile full" in result.output
