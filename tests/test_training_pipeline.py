"""The smoke profile end to end: teachers -> distillation -> export -> evaluation -> report, and
`ranpd evaluate --json` on one of its students."""
import json

import pytest
import torch
from click.testing import CliRunner

from ranpd.simulator.engine import run_policy
from ranpd.simulator.policies import Illa
from ranpd.simulator.scenarios import BUILTIN_SCENARIOS
from ranpd.training.cli import evaluate
from ranpd.training.config import load_profile
from ranpd.training.pipeline import run_pipeline
from ranpd.xapp.model_card import ModelCard, card_path_for

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    results = run_pipeline(load_profile("smoke", seed=3), out, ship=False)
    return out, results


def test_smoke_pipeline_writes_every_artifact(smoke_run):
    out, results = smoke_run
    for name in ("teacher-generalist", "teacher-low-mobility", "teacher-medium-mobility", "teacher-high-mobility",
                 "student-single", "student-multi", "student-single.int8", "student-multi.int8", "scratch-small-rl"):
        card = ModelCard.load(card_path_for(out / "models" / f"{name}.onnx"))
        assert card.bytes == (out / "models" / f"{name}.onnx").stat().st_size
    for plot in ("throughput.png", "bler.png", "ue_throughput_cdf.png", "training.png"):
        assert (out / "report" / plot).stat().st_size > 1000
    report = (out / "report" / "README.md").read_text()
    assert "Where a learned policy does NOT beat OLLA" in report and "Retention" in report
    assert json.loads((out / "results.json").read_text())["table"].keys() == BUILTIN_SCENARIOS.keys()
    assert [r["actor"] for r in json.loads((out / "logs" / "distil-single.json").read_text())] == \
        ["teacher", "student", "student"]
    assert {"loss", "mean_reward", "epsilon"} <= json.loads((out / "logs" / "teacher-generalist.json").read_text())[-1].keys()


def test_smoke_pipeline_measures_parity_and_int8_agreement(smoke_run):
    _, results = smoke_run
    for student in results["students"].values():
        assert student["params"] <= 4096
        assert student["parity"]["argmax_agreement"] == 1.0
        assert 0.0 <= student["int8_argmax_agreement"] <= 1.0
        assert student["bytes_int8"] < student["bytes_fp32"]
    table = results["table"]["uma-mid-pedestrian"]
    assert {"illa", "olla", "olla-best", "teacher-generalist", "student-single", "student-multi-int8",
            "scratch-small-rl", "teacher-generalist@20", "scratch-small-rl@20"} <= table.keys()


def test_evaluate_json_has_simulate_keys_and_an_olla_object(smoke_run):
    out, _ = smoke_run
    args = ["--model", str(out / "models" / "student-single.onnx"), "--scenario", "uma-mid-highway",
            "--slots", "40", "--ues", "16", "--seed", "5", "--json"]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    reference = run_policy(BUILTIN_SCENARIOS["uma-mid-highway"], Illa(), slots=40, seed=5, n_ues=16)
    kpi_keys = set(reference) - {"policy"}
    assert kpi_keys <= data.keys() and kpi_keys <= data["olla"].keys()
    assert data["olla"]["policy"] == "olla" and data["slots"] == 40


def test_evaluate_rejects_a_missing_model_and_an_unknown_scenario(smoke_run, tmp_path):
    out, _ = smoke_run
    result = CliRunner().invoke(evaluate, ["--model", str(tmp_path / "nope.onnx"), "--scenario", "uma-mid-highway"])
    assert result.exit_code != 0 and "no ONNX model" in result.output
    result = CliRunner().invoke(evaluate, ["--model", str(out / "models" / "student-multi.onnx"),
                                           "--scenario", "atlantis"])
    assert result.exit_code != 0 and "unknown scenario" in result.output


def test_bench_student_json_reports_sizes_agreement_and_latencies(smoke_run):
    from ranpd.training.bench import bench_student

    out, _ = smoke_run
    result = CliRunner().invoke(bench_student, ["--model", str(out / "models" / "student-multi.onnx"),
                                                "--iterations", "100", "--slots", "10", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["params"] <= 4096 and data["bytes_int8"] < data["bytes_fp32"]
    assert 0.0 <= data["int8_argmax_agreement"] <= 1.0 and data["agreement_states"] > 0
    assert set(data["latency"]) == {"fp32_batch1", "fp32_batch64", "int8_batch1", "int8_batch64"}
    assert all(0 < v["p50_us"] <= v["p99_us"] for v in data["latency"].values())
