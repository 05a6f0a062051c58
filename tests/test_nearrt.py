"""The near-RT loop end to end: the xApp deploys its model to the E2 node (the inference host),
the node runs it in shadow, the xApp promotes it; a bad model is discarded after its shadow
period or, deployed without one, rolled back with every UE-slot still given an MCS; and the
node's KPIs with the promoted model equal the offline evaluation of that model on the same seed.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ranpd.cli import main
from ranpd.proto import e2ap_pb2, e2sm_la_pb2, la_codec
from ranpd.proto.framing import CodecError
from ranpd.simulator.e2node import E2Node
from ranpd.simulator.engine import run_policy
from ranpd.simulator.guard import GuardConfig
from ranpd.simulator.nearrt import CommandRefused, InferenceHost
from ranpd.simulator.scenarios import load_scenario
from ranpd.xapp.config import XappSettings
from ranpd.xapp.model import PACKAGED_MODEL, OnnxPolicyModel, load_deployed
from ranpd.xapp.model_card import ModelCard, card_path_for
from ranpd.xapp.server import XappThread
from ranpd.xapp.synthetic import write_constant_model

SCENARIO = load_scenario("uma-mid-pedestrian")     # numerology 1: 0.5 ms slots; KPM every 10 slots
UES, SEED, KPM_MS = 16, 3, 5
KPI_KEYS = ("throughput_mbps", "throughput_p5_mbps", "bler_first_tx", "bler_residual", "mean_mcs",
            "retransmissions", "slots", "ues")


@pytest.fixture(scope="module")
def student() -> OnnxPolicyModel:
    return OnnxPolicyModel.load(PACKAGED_MODEL)


@pytest.fixture(scope="module")
def top_mcs(tmp_path_factory) -> OnnxPolicyModel:
    """The deliberately bad model: the top MCS whatever the channel."""
    return OnnxPolicyModel.load(write_constant_model(tmp_path_factory.mktemp("bad") / "top.onnx", action=28))


def _node(xapp: XappThread, **kwargs) -> E2Node:
    return E2Node(SCENARIO, ("127.0.0.1", xapp.e2_port), seed=SEED, n_ues=UES, kpm_period_ms=KPM_MS,
                  loop="near-rt", load_model=load_deployed, **kwargs)


def _xapp(shadow_reports: int) -> XappThread:
    return XappThread(XappSettings(e2_port=0, http_port=0, shadow_reports=shadow_reports), http=False)


def _events(result: dict) -> list[tuple[str, str]]:
    return [(e["event"], e["version"]) for e in result["model_events"]]


def _metric(xapp: XappThread, event: str) -> float:
    return xapp.service.metrics.registry.get_sample_value("ranpd_xapp_nearrt_model_events_total",
                                                          {"event": event}) or 0.0


def test_deploy_shadow_promote_then_a_bad_model_fails_its_shadow(student, top_mcs, counted_steps):
    """Shadow of 3 KPM periods: the student is deployed at setup, promoted after its shadow and
    decides from then on; a REST-style swap to the top-MCS model deploys it in shadow, where its
    expected bits fall far below the applied choices', and it is discarded: the student keeps serving."""
    with _xapp(shadow_reports=3) as xapp:
        swap = lambda i: i == 300 and xapp.service.install(top_mcs)     # noqa: E731
        result = _node(xapp).run(700, on_slot=swap)
        shadow, discarded = _metric(xapp, "shadow"), _metric(xapp, "discarded")
    assert _events(result) == [("deployed", student.version), ("promoted", student.version),
                               ("deployed", top_mcs.version), ("discarded", top_mcs.version)]
    promoted_at = result["model_events"][1]["slot"]
    assert 3 * 10 - 2 <= promoted_at <= 3 * 10 + 2          # after 3 KPM periods of 10 slots
    assert result["model"] == student.version and result["promotions"] == 1 and result["rollbacks"] == 0
    assert (shadow, discarded) == (2.0, 1.0)
    assert result["model_decisions"] > 0.9 * result["decisions"] * (700 - promoted_at) / 700 - 50
    assert counted_steps["given"] == counted_steps["scheduled"] == result["decisions"]


def test_a_bad_model_promoted_without_shadow_is_rolled_back(student, top_mcs, counted_steps):
    """Shadow 0: each model decides at once. The top-MCS model's first-tx BLER breaks target + 0.1
    within a watch window and the xApp rolls the node back to the student; no UE-slot ever goes
    without an MCS (the guard and OLLA cover the UEs the bad model fails meanwhile)."""
    with _xapp(shadow_reports=0) as xapp:
        swap = lambda i: i == 200 and xapp.service.install(top_mcs)     # noqa: E731
        result = _node(xapp).run(800, on_slot=swap)
        rolled_back = _metric(xapp, "rolled_back")
    assert _events(result) == [("deployed", student.version), ("promoted", student.version),
                               ("deployed", top_mcs.version), ("promoted", top_mcs.version),
                               ("rolled_back", top_mcs.version)]
    assert result["model_events"][-1]["detail"] == f"now {student.version}"
    assert result["model"] == student.version and result["rollbacks"] == 1 and rolled_back == 1.0
    assert result["model_events"][-1]["slot"] - 200 <= 300            # caught within a few windows
    assert counted_steps["given"] == counted_steps["scheduled"] == result["decisions"]
    assert result["model_decisions"] + result["fallbacks"] == result["decisions"]


def test_near_rt_kpis_equal_the_offline_evaluation(student):
    """Shadow 0 and a wait for the first model: the student decides from slot 0, inline in the
    node, and every KPI equals `ranpd evaluate`'s closed loop of the same model and seed."""
    slots = 400
    with _xapp(shadow_reports=0) as xapp:
        result = _node(xapp, model_wait_s=10.0).run(slots)
    offline = run_policy(SCENARIO, student.policy(bler_target=0.1, guard=GuardConfig(),
                                                  max_transmissions=SCENARIO.max_transmissions),
                         slots, seed=SEED, n_ues=UES)
    assert result["model_events"][1] == {"slot": 0, "event": "promoted", "version": student.version, "detail": ""}
    assert {k: result[k] for k in KPI_KEYS} == {k: offline[k] for k in KPI_KEYS}


def _host() -> InferenceHost:
    return InferenceHost(load_deployed, n_ues=4, mcs_table=2, cqi_table=2, bler_target=0.1)


def _deploy(path: Path, card: ModelCard | None = None, activate: bool = False) -> la_codec.ModelControl:
    card = card or ModelCard.load(card_path_for(path))
    return la_codec.ModelControl(e2sm_la_pb2.MODEL_COMMAND_DEPLOY, card.version, path.read_bytes(),
                                 card.model_dump_json(), activate)


def test_the_node_refuses_models_it_cannot_run(tmp_path):
    """Another MCS table, a card whose sha256 is not the model's, commands about other versions:
    each a Failure cause, and the node keeps running what it ran."""
    path = write_constant_model(tmp_path / "m.onnx", action=3)
    card = ModelCard.load(card_path_for(path))
    host = _host()
    with pytest.raises(CommandRefused) as refused:
        host.command(_deploy(path, card.model_copy(update={"mcs_tables": [1]})))
    assert refused.value.cause == e2ap_pb2.CAUSE_MCS_TABLE_NOT_SUPPORTED
    with pytest.raises(CommandRefused, match="sha256") as refused:
        host.command(_deploy(path, card.model_copy(update={"sha256": "0" * 64})))
    assert refused.value.cause == e2ap_pb2.CAUSE_INVALID_FIELD
    for command in (e2sm_la_pb2.MODEL_COMMAND_PROMOTE, e2sm_la_pb2.MODEL_COMMAND_ROLLBACK):
        with pytest.raises(CommandRefused, match="not the active|no candidate"):
            host.command(la_codec.ModelControl(command, card.version))
    assert host.status() == (None, None, None)
    host.command(_deploy(path, activate=True))
    host.command(la_codec.ModelControl(e2sm_la_pb2.MODEL_COMMAND_ROLLBACK, card.version))
    assert host.status() == (None, None, None)                          # back to OLLA
    assert [e.event for e in host.events] == ["refused", "refused", "deployed", "promoted", "rolled_back"]


@pytest.mark.parametrize("command, version, onnx, card, match", [
    (0, "m@1", b"", "", "unknown model command"),
    (99, "m@1", b"", "", "unknown model command"),
    (e2sm_la_pb2.MODEL_COMMAND_DEPLOY, "m@1", b"", "{}", "no ONNX model"),
    (e2sm_la_pb2.MODEL_COMMAND_PROMOTE, "", b"", "", "model_version"),
    (e2sm_la_pb2.MODEL_COMMAND_PROMOTE, "a\nb", b"", "", "model_version"),
])
def test_model_controls_are_validated(command, version, onnx, card, match):
    header, message = la_codec.encode_model_control(command, version, onnx, card)
    with pytest.raises(CodecError, match=match):
        la_codec.decode_model_control(e2ap_pb2.RICControlRequest(header=header, message=message))


def test_cli_near_rt_needs_kpm_reports():
    result = CliRunner().invoke(main, ["e2node", "--xapp", "127.0.0.1:9", "--loop", "near-rt", "--kpm-period-ms", "0"])
    assert result.exit_code == 2 and "needs KPM reports" in result.output


def test_bench_shadow_reports_the_estimate_beside_the_truth(tmp_path):
    """`ranpd bench shadow` on a tiny run: for the top-MCS model the estimate at every sigma is a
    large loss, as is the closed-loop truth."""
    path = write_constant_model(tmp_path / "top.onnx", action=28)
    result = CliRunner().invoke(main, ["bench", "shadow", "--model", str(path), "-s", "uma-mid-pedestrian",
                                       "--slots", "200", "--sigma", "0,2", "--json"])
    assert result.exit_code == 0, result.output
    row = __import__("json").loads(result.output)["scenarios"]["uma-mid-pedestrian"]
    assert row["closed_loop_gain"] < -0.3 and all(g < -0.3 for g in row["expected_gain"].values())
    assert row["disagreement"] > 0.9
