"""The smoke profile end to end: teachers -> distillation -> export -> evaluation -> report, and
`ranpd evaluate --json` on one of its students."""
import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from ranpd.simulator.engine import run_policy
from ranpd.simulator.policies import Illa
from ranpd.simulator.scenarios import BUILTIN_SCENARIOS, RANDOMIZATION_FAMILIES, heldout_scenarios
from ranpd.training.cli import evaluate
from ranpd.training.config import load_profile
from ranpd.training.pipeline import ShipTargets, run_pipeline
from ranpd.xapp.model_card import ModelCard, card_path_for

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    ship_to = ShipTargets(out / "shipped" / "default.onnx", out / "shipped" / "default.int8.onnx", out / "shipped" / "report")
    results = run_pipeline(load_profile("smoke", seed=3), out, ship_to=ship_to, workers=2)
    return out, results


def test_smoke_pipeline_writes_every_artifact(smoke_run):
    out, results = smoke_run
    families = [f"teacher-{family}" for family in RANDOMIZATION_FAMILIES]
    for name in (*families, "teacher-generalist", "student-single", "student-multi", "student-single.int8",
                 "student-multi.int8", "scratch-small-rl-3906", "scratch-small-rl-674", "distilled-674"):
        card = ModelCard.load(card_path_for(out / "models" / f"{name}.onnx"))
        assert card.bytes == (out / "models" / f"{name}.onnx").stat().st_size and card.mcs_tables == [1, 2]
    students = [ModelCard.load(card_path_for(out / "models" / f"{n}.onnx")) for n in ("student-single", "student-multi")]
    assert all(card.obs_range is not None for card in students)
    for plot in ("heldout_gains.png", "builtin_gains.png", "ue_throughput_cdf.png", "training.png", "sizes.png"):
        assert (out / "report" / plot).stat().st_size > 1000
    report = (out / "report" / "README.md").read_text()
    for heading in ("## Targets", "## Held-out set at operator target 0.1", "## Throughput mode", "What distillation buys",
                    "does not beat its baseline"):
        assert heading in report
    tables = json.loads((out / "results.json").read_text())["tables"]
    assert set(tables) == {"builtins", "builtins/always_on", "builtins@0.1", "heldout@0.1", "heldout@0.2",
                           "heldout@max", "sizes@0.1"}
    assert tables["builtins"].keys() == BUILTIN_SCENARIOS.keys()
    assert set(tables["heldout@0.1"]) == {sc.name for sc in heldout_scenarios()}
    assert [r["actor"] for r in json.loads((out / "logs" / "student-single.json").read_text())] == \
        ["teacher", "student", "student"]
    assert {"loss", "mean_reward", "epsilon"} <= json.loads((out / "logs" / "teacher-generalist.json").read_text())[-1].keys()


def test_smoke_pipeline_measures_parity_int8_and_guard_and_ships_to_the_paths_given(smoke_run):
    out, results = smoke_run
    for student in results["students"].values():
        assert student["params"] <= 4096
        assert student["parity"]["argmax_agreement"] == 1.0
        assert 0.0 <= student["int8_argmax_agreement"] <= 1.0
    row = results["tables"]["heldout@0.1"]["noisy-fresh-cqi-edge"]
    assert {"olla", "teacher-specialist", "teacher-generalist", "student-single", "student-multi-int8",
            "student-single-guarded"} <= row.keys()
    assert row["student-single-guarded"]["guard_share"] is not None and row["student-single"]["guard_share"] is None
    assert "olla-best" in results["tables"]["heldout@max"]["table1-fdd-n1"]
    shipped = ModelCard.load(card_path_for(out / "shipped" / "default.onnx"))
    assert shipped.name == "default" and shipped.training_config["origin"] == results["shipped"]
    assert (out / "shipped" / "default.int8.onnx").is_file() and (out / "shipped" / "report" / "README.md").is_file()


def test_a_second_run_into_the_same_directory_resumes_from_each_job_s_checkpoint(smoke_run, tmp_path):
    from dataclasses import replace

    from ranpd.training.backend import Backend
    from ranpd.training.pipeline import TEACHER_SETTINGS, checkpoint_key, run_checkpointed, scenario_sets

    out, results = smoke_run
    calls = []
    cfg = load_profile("smoke", seed=3)
    other_evaluation = replace(cfg, evaluation=replace(cfg.evaluation, slots=7))
    key = checkpoint_key(other_evaluation, TEACHER_SETTINGS, scenario_sets(other_evaluation))
    jobs = {name: (calls.append, (name,)) for name in ("teacher-generalist", "teacher-mmwave")}
    saved = shutil.copytree(out / "checkpoints" / "teachers", tmp_path / "teachers")
    with Backend() as backend:
        run = run_checkpointed(jobs, key, saved, backend)
        assert not calls and run.resumed == list(jobs)                  # loaded, not retrained
        assert run.seconds == {name: results["job_s"][name] for name in jobs}   # with the time each took then
        other_seed = load_profile("smoke", seed=4)
        run = run_checkpointed(jobs, checkpoint_key(other_seed, TEACHER_SETTINGS, scenario_sets(other_seed)),
                               saved, backend)
    assert calls == list(jobs) and not run.resumed                      # other settings: trains


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
    assert {"goodput_mbps", "residual_loss"} <= kpi_keys
    assert data["olla"]["policy"] == "olla" and data["slots"] == 40
    assert data["bler_target"] == 0.1 and data["olla"]["target_bler"] == 0.1


def test_evaluate_runs_at_the_operator_target_or_in_throughput_mode(smoke_run):
    out, _ = smoke_run
    args = ["--model", str(out / "models" / "student-single.onnx"), "--scenario", "uma-mid-highway",
            "--slots", "40", "--ues", "16", "--seed", "5", "--json"]
    at_20 = json.loads(CliRunner().invoke(evaluate, args + ["--bler-target", "0.2"]).output)
    assert at_20["bler_target"] == 0.2 and at_20["olla"]["target_bler"] == 0.2
    free = json.loads(CliRunner().invoke(evaluate, args + ["--bler-target", "max"]).output)
    assert free["bler_target"] is None and free["olla"]["target_bler"] == 0.1
    for bad in ("0", "1.5", "most"):
        result = CliRunner().invoke(evaluate, args + ["--bler-target", bad])
        assert result.exit_code == 2 and "BLER target" in result.output


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
