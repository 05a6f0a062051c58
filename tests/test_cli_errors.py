"""Every CLI error path a user can hit ends in one line on stderr and a non-zero exit code."""
from __future__ import annotations

import json
import socket
import sys

import pytest
from click.testing import CliRunner

from ranpd.cli import main
from ranpd.xapp.model import PACKAGED_MODEL
from ranpd.xapp.model_card import card_path_for
from ranpd.xapp.synthetic import write_synthetic_model


def _fails_with_one_line(args: list[str], *needles: str) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code not in (0, None), result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
        f"uncaught {result.exception!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def without(monkeypatch):
    """Make modules unimportable, as on an install without the extra that provides them."""
    def hide(*modules: str) -> None:
        for module in modules:
            monkeypatch.setitem(sys.modules, module, None)
    return hide


@pytest.fixture
def listening_port():
    """A port on loopback that something else already listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_train_without_torch_names_the_extra(without, tmp_path):
    without("torch")
    _fails_with_one_line(["train", "--out", str(tmp_path)], "'train' extra", "torch", "pip install 'ranpd[train]'")


def test_evaluate_without_tqdm_names_the_extra(without, tmp_path):
    without("tqdm")
    model = write_synthetic_model(tmp_path / "m.onnx")
    _fails_with_one_line(["evaluate", "--model", str(model), "--scenario", "uma-mid-pedestrian"],
                         "'train' extra", "tqdm")


def test_evaluate_on_a_model_without_a_card(tmp_path):
    model = write_synthetic_model(tmp_path / "m.onnx")
    card_path_for(model).unlink()
    _fails_with_one_line(["evaluate", "--model", str(model), "--scenario", "uma-mid-pedestrian"],
                         "no model card", str(card_path_for(model)))


def test_evaluate_on_a_model_with_a_broken_card(tmp_path):
    model = write_synthetic_model(tmp_path / "m.onnx")
    card_path_for(model).write_text('{"name": 3}')
    _fails_with_one_line(["evaluate", "--model", str(model), "--scenario", "uma-mid-pedestrian"],
                         f"cannot evaluate {model}")


@pytest.mark.parametrize("which", ["--e2-port", "--http-port"])
def test_xapp_on_a_busy_port(listening_port, which):
    other = "--http-port" if which == "--e2-port" else "--e2-port"
    line = _fails_with_one_line(["xapp", "--host", "127.0.0.1", which, str(listening_port), other, "0"],
                                f"127.0.0.1:{listening_port}", "in use")
    assert ("E2" if which == "--e2-port" else "REST") in line


@pytest.mark.parametrize("variable, value, needle", [
    ("RANPD_XAPP_E2_PORT", "abc", "valid integer"),
    ("RANPD_XAPP_HTTP_PORT", "70000", "less than or equal to 65535"),
    ("RANPD_XAPP_UE_CAPACITY", "0", "greater than or equal to 1"),
    ("RANPD_XAPP_E2_SETUP_TIMEOUT_S", "-3", "greater than 0"),
])
def test_xapp_with_a_bad_setting_names_the_variable(monkeypatch, variable, value, needle):
    monkeypatch.setenv(variable, value)
    _fails_with_one_line(["xapp"], variable, repr(value), needle)


def test_xapp_with_a_missing_descriptor(monkeypatch, tmp_path):
    monkeypatch.setenv("RANPD_XAPP_DESCRIPTOR_PATH", str(tmp_path / "nowhere.json"))
    _fails_with_one_line(["xapp"], "nowhere.json")


def test_e2node_that_never_reached_the_xapp_fails(tmp_path):
    port = _free_port()                 # nobody listens there
    result = CliRunner().invoke(main, ["e2node", "--xapp", f"127.0.0.1:{port}", "--scenario", "uma-mid-pedestrian",
                                       "--slots", "40", "--ues", "4", "--json"])
    assert result.exit_code == 1
    kpis = json.loads(result.stdout)    # the figures still come out, for the record
    assert kpis["reached_xapp"] is False and kpis["fallback_rate"] == 1.0 and kpis["connect_failures"] >= 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"never reached the xApp at 127.0.0.1:{port}" in lines[0]


def test_bench_student_runs_without_torch(without):
    """The student benchmark measures the shipped student on the runtime install (no torch)."""
    without("torch")
    assert CliRunner().invoke(main, ["bench", "student", "--help"]).exit_code == 0
    if not PACKAGED_MODEL.is_file():
        pytest.skip("no shipped student")
    result = CliRunner().invoke(main, ["bench", "student", "--iterations", "100", "--slots", "10", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["params"] > 0 and 0 <= out["int8_argmax_agreement"] <= 1
    assert 0 < out["latency"]["fp32_batch1"]["p50_us"] <= out["latency"]["fp32_batch1"]["p99_us"]
