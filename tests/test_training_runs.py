"""`ranpd train` as users run it: killed and rerun, on Ray, with TensorBoard scalars, on their own
scenario files. TINY makes the smoke profile take seconds; every run uses seed 0."""
import importlib.util
import json
import signal
import subprocess
import sys
import time

import pytest
import yaml
from click.testing import CliRunner

from ranpd.simulator.scenarios import BUILTIN_SCENARIOS
from ranpd.training.cli import train
from ranpd.training.scalars import Scalars

TINY = ["--profile", "smoke", "--no-ship",
        *(arg for setting in ("teacher.env_steps=40", "teacher.learning_starts=2", "teacher.log_every=8",
                              "teacher.n_ues=16", "teacher.episode_slots=20", "teacher.hidden=[16]",
                              "distill.teacher_rollout_steps=6", "distill.dagger_rounds=1", "distill.dagger_steps=4",
                              "distill.n_ues=16", "distill.epochs=1", "distill.hidden=[8]", "sizes=[[8]]",
                              "evaluation.slots=40", "evaluation.n_ues=16", "evaluation.holdout_states=64",
                              "evaluation.olla_targets=[0.1]", "evaluation.bler_targets=[0.1]")
          for arg in ("--set", setting))]


def ranpd_train(out, *args) -> list[str]:
    return [sys.executable, "-c", "from ranpd.cli import main; main()", "train", "--out", str(out), *TINY, *args]


def results(out) -> dict:
    return json.loads((out / "results.json").read_text())


def assert_same_results(a, b) -> None:
    """The same tables and students, and byte-identical ONNX models."""
    assert results(a)["tables"] == results(b)["tables"] and results(a)["students"] == results(b)["students"]
    models = sorted(path.name for path in (a / "models").glob("*.onnx"))
    assert models == sorted(path.name for path in (b / "models").glob("*.onnx"))
    for name in models:
        assert (a / "models" / name).read_bytes() == (b / "models" / name).read_bytes(), name


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(ranpd_train(out), check=True, capture_output=True)
    return out


def test_a_killed_run_resumes_from_its_last_finished_job_with_an_uninterrupted_run_s_results(uninterrupted, tmp_path):
    out = tmp_path / "run"
    killed = subprocess.Popen(ranpd_train(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(out.glob("checkpoints/*/*.pt")):
        assert killed.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    finished = {path.stem for path in out.glob("checkpoints/*/*.pt")}
    assert not (out / "results.json").exists()

    rerun = subprocess.run(ranpd_train(out), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert set(results(out)["resumed"]) == finished and "resumed" in rerun.stderr
    assert_same_results(uninterrupted, out)


def test_the_ray_backend_gives_the_local_backend_s_results(uninterrupted, tmp_path):
    out = tmp_path / "ray"
    run = subprocess.run(ranpd_train(out, "--backend", "ray", "--workers", "2"), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert results(out)["backend"].startswith("Ray") and results(uninterrupted)["backend"] == "1 process(es)"
    assert_same_results(uninterrupted, out)


def test_without_ray_the_error_names_the_extra(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    result = CliRunner().invoke(train, ["--backend", "ray"])
    assert result.exit_code == 1 and "pip install 'ranpd[ray]'" in result.output


def test_tensorboard_scalars_beside_the_json_logs(uninterrupted):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def accumulator(run: str) -> EventAccumulator:
        acc = EventAccumulator(str(uninterrupted / "tensorboard" / run))
        acc.Reload()
        return acc

    teacher = accumulator("teacher-generalist")
    assert {"dqn/loss", "dqn/mean_reward", "dqn/epsilon", "eval/heldout@0.1/throughput_mbps",
            "eval/builtins/bler_first_tx"} <= set(teacher.Tags()["scalars"])
    log = json.loads((uninterrupted / "logs" / "teacher-generalist.json").read_text())
    assert [(e.step, e.value) for e in teacher.Scalars("dqn/epsilon")] == \
        [(row["step"], pytest.approx(row["epsilon"])) for row in log]
    student = accumulator("student-single")
    assert {"distill/kl", "distill/train_argmax_agreement", "distill/actor_reward/all",
            "eval/heldout@0.1/throughput_mbps"} <= set(student.Tags()["scalars"])
    assert "eval/builtins/throughput_mbps" in accumulator("olla").Tags()["scalars"]


def test_without_tensorboard_one_line_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with Scalars(tmp_path) as scalars:
        scalars.training_log("teacher", [{"step": 1, "loss": 0.5}])
    assert "pip install 'ranpd[tensorboard]'" in capsys.readouterr().err and not any(tmp_path.iterdir())


def write_scenario(path, builtin: str) -> None:
    path.write_text(yaml.safe_dump(BUILTIN_SCENARIOS[builtin].model_dump(mode="json", exclude={"name"})))


def test_train_on_a_folder_of_the_user_s_scenarios_with_the_user_s_held_out_set(tmp_path):
    mine = tmp_path / "my-scenarios"
    mine.mkdir()
    write_scenario(mine / "a-highway.yaml", "uma-mid-highway")
    write_scenario(mine / "b-bursty.yml", "umi-mid-bursty")
    write_scenario(tmp_path / "held.yaml", "uma-low-pedestrian")        # low-band: no specialist trained
    out = tmp_path / "run"
    result = CliRunner().invoke(train, ["--out", str(out), *TINY, "--scenarios", str(mine),
                                        "--heldout", str(tmp_path / "held.yaml")])
    assert result.exit_code == 0, result.output
    assert results(out)["scenarios"] == {"training": ["a-highway", "b-bursty"], "heldout": ["held"]}
    config = json.loads((out / "config.json").read_text())
    assert config["scenarios"] == [str(mine)] and config["heldout"] == [str(tmp_path / "held.yaml")]
    assert {path.stem for path in out.glob("checkpoints/teachers/teacher-*.pt")} == \
        {"teacher-mid-band", "teacher-bursty", "teacher-generalist"}
    assert set(results(out)["tables"]["heldout@0.1"]) == {"held"}


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.yaml", "does not exist"),
    (lambda d: d, "holds no scenario files"),
    (lambda d: (d / "bad.yaml").write_text("name: [unclosed") and d / "bad.yaml", "cannot parse scenario file"),
    (lambda d: (d / "odd.yaml").write_text("carrier_ghz: -1") and d / "odd.yaml", "invalid scenario file"),
    (lambda d: [write_scenario(d / name, "uma-mid-highway") for name in ("a.yaml", "a.yml")] and d, "come twice: a"),
])
def test_a_bad_scenario_source_is_a_one_line_error(tmp_path, make, message):
    result = CliRunner().invoke(train, ["--out", str(tmp_path / "run"), "--scenarios", str(make(tmp_path))])
    error = result.output.strip().splitlines()[-1]
    assert result.exit_code == 2 and error.startswith("Error:") and message in error, result.output
    assert not (tmp_path / "run").exists()


def test_held_out_scenarios_that_are_also_training_scenarios_are_refused(tmp_path):
    write_scenario(tmp_path / "copy.yaml", "uma-mid-highway")
    result = CliRunner().invoke(train, ["--scenarios", "uma-mid-highway", "--heldout", str(tmp_path / "copy.yaml")])
    assert result.exit_code == 2 and "['copy'] are also training scenarios" in result.output
