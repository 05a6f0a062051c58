"""The simulator as E2 node against an in-process xApp: parity, deadlines, fallback, reconnects."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from ranpd.proto import kpm
from ranpd.proto.e2link import parse_address
from ranpd.simulator.e2node import E2Node, KpmCollector
from ranpd.simulator.engine import run_policy
from ranpd.simulator.policies import ObservationPolicy, Olla
from ranpd.simulator.report import SlotReport
from ranpd.simulator.scenarios import load_scenario
from ranpd.xapp.config import XappSettings
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.server import XappThread
from ranpd.xapp.synthetic import write_synthetic_model

SCENARIO = load_scenario("uma-mid-pedestrian")     # numerology 1: 0.5 ms slots
UES, SEED = 16, 3
KPI_KEYS = ("throughput_mbps", "throughput_p5_mbps", "bler_first_tx", "bler_residual", "mean_mcs",
            "retransmissions", "slots", "ues")


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return write_synthetic_model(tmp_path_factory.mktemp("model") / "student.onnx", seed=7)


def _xapp(student, port: int = 0) -> XappThread:
    return XappThread(XappSettings(e2_port=port, http_port=0, model_path=student), http=False)


def _kpis(result: dict) -> dict:
    return {key: result[key] for key in KPI_KEYS}


def test_parse_address():
    assert parse_address("127.0.0.1:36421") == ("127.0.0.1", 36421)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("localhost", ":80", "host:", "host:http", "host:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)


def test_in_the_loop_student_matches_offline_evaluation(student):
    """No deadline missed: every MCS comes from the xApp, and the KPIs equal the offline run."""
    slots = 300
    with _xapp(student) as running:
        result = E2Node(SCENARIO, ("127.0.0.1", running.e2_port), seed=SEED, n_ues=UES,
                        deadline_us=2e6).run(slots)
    offline = run_policy(SCENARIO, ObservationPolicy(OnnxPolicyModel.load(student).score), slots,
                         seed=SEED, n_ues=UES)
    assert result["fallbacks"] == 0 and result["xapp_decisions"] == result["scheduled"] > 0
    assert result["rtt_samples"] > 0 and 0 < result["rtt_p50_us"] <= result["rtt_p99_us"]
    assert _kpis(result) == _kpis(offline)
    # The channel is the same but the decisions are not: OLLA on this seed differs.
    assert _kpis(run_policy(SCENARIO, Olla(), slots, seed=SEED, n_ues=UES)) != _kpis(offline)


def test_guard_in_the_loop_equals_the_guarded_offline_policy(tmp_path):
    """A student that fails its UEs (random weights, first-tx BLER ~1 on this seed): the xApp's
    guard leaves UEs out of its controls and the node's OLLA decides them; the run equals offline
    evaluation of the same model behind the same guard (one implementation), and the UE-slots the
    node's OLLA took are exactly those the offline guard handed back."""
    from ranpd.simulator.guard import GuardConfig

    failing, slots = write_synthetic_model(tmp_path / "failing.onnx", seed=2), 600
    with _xapp(failing) as running:
        result = E2Node(SCENARIO, ("127.0.0.1", running.e2_port), seed=SEED, n_ues=UES,
                        deadline_us=2e6).run(slots)
    policy = OnnxPolicyModel.load(failing).policy(guard=GuardConfig(), max_transmissions=SCENARIO.max_transmissions)
    offline = run_policy(SCENARIO, policy, slots, seed=SEED, n_ues=UES)
    assert _kpis(result) == _kpis(offline)
    assert result["fallbacks"] == policy.guard.handed_back_decisions > 0 and policy.guard.hand_backs > 0
    unguarded = run_policy(SCENARIO, OnnxPolicyModel.load(failing).policy(), slots, seed=SEED, n_ues=UES)
    assert offline["bler_first_tx"] < unguarded["bler_first_tx"] - 0.2


def test_a_node_in_an_mcs_table_the_model_does_not_declare_runs_on_its_olla(student):
    """The synthetic student declares MCS table 2; a table-1 node gets MCS_TABLE_NOT_SUPPORTED
    for every indication and its run is exactly its own OLLA's."""
    table1 = SCENARIO.model_copy(update={"mcs_table": 1})
    with _xapp(student) as running:
        result = E2Node(table1, ("127.0.0.1", running.e2_port), seed=SEED, n_ues=UES, deadline_us=2e6).run(100)
        refused = running.service.metrics.mcs_table_refusals.labels("1")._value.get()
    assert result["reached_xapp"] and result["fallback_rate"] == 1.0 and result["error_indications"] > 0
    assert refused >= result["error_indications"]       # the last answer may be left unread
    assert _kpis(result) == _kpis(run_policy(table1, Olla(), 100, seed=SEED, n_ues=UES))


def test_node_fallback_olla_runs_at_the_operator_target():
    node = E2Node(SCENARIO, ("127.0.0.1", 9), bler_target=0.3)
    assert node.olla_target == 0.3 and E2Node(SCENARIO, ("127.0.0.1", 9), bler_target=None).olla_target == 0.1
    result = node.run(200)                    # nobody listening: all OLLA, at 30%
    assert result["olla_bler_target"] == 0.3
    assert _kpis(result) == _kpis(run_policy(SCENARIO, Olla(target_bler=0.3), 200, seed=0))


def test_e2node_cli_refuses_a_bad_bler_target():
    from click.testing import CliRunner

    from ranpd.cli import main

    result = CliRunner().invoke(main, ["e2node", "--xapp", "127.0.0.1:9", "--bler-target", "1.5"])
    assert result.exit_code == 2 and "--bler-target" in result.output and "(0, 1)" in result.output


def test_without_xapp_the_node_is_olla(counted_steps):
    """Nobody listening: every UE-slot falls back, and the run is exactly offline OLLA."""
    import socket
    with socket.socket() as s:                 # a port with no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = E2Node(SCENARIO, ("127.0.0.1", port), seed=SEED, n_ues=UES).run(200)
    assert result["fallback_rate"] == 1.0 and result["rtt_samples"] == 0 and result["reconnects"] == 0
    assert counted_steps["given"] == counted_steps["scheduled"] == result["decisions"] > 0
    assert _kpis(result) == _kpis(run_policy(SCENARIO, Olla(), 200, seed=SEED, n_ues=UES))


def test_controls_after_the_deadline_are_dropped(student):
    """A 1 us budget no xApp can meet: the xApp drops indications already past their deadline,
    the node drops (and reports) any control that comes late anyway; OLLA decides every UE-slot."""
    with _xapp(student) as running:
        result = E2Node(SCENARIO, ("127.0.0.1", running.e2_port), seed=SEED, n_ues=UES,
                        deadline_us=1.0).run(200)
        stale = running.service.metrics.registry.get_sample_value("ranpd_xapp_stale_indications_total")
    assert result["xapp_decisions"] == 0 and result["fallback_rate"] == 1.0 and result["reconnects"] == 0
    assert result["late_controls"] + stale > 0
    assert _kpis(result) == _kpis(run_policy(SCENARIO, Olla(), 200, seed=SEED, n_ues=UES))


def test_xapp_killed_mid_run_node_falls_back_and_reconnects(student, counted_steps):
    """Kill the xApp at slot 100, bring it back at slot 250: every UE-slot still gets an MCS,
    OLLA covers the gap, and the node reconnects (backoff) and takes the xApp's MCS again."""
    kill_at, restart_at, slots = 100, 250, 600
    xapp = _xapp(student)
    port = xapp.start().e2_port
    seen: dict[int, dict] = {}
    node = E2Node(SCENARIO, ("127.0.0.1", port), seed=SEED, n_ues=UES, deadline_us=2e6,
                  backoff_s=(0.005, 0.05), realtime=True)

    def on_slot(i: int) -> None:
        nonlocal xapp
        if i in (kill_at, restart_at):
            seen[i] = {"xapp": node.stats.xapp_decisions, "fallbacks": node.stats.fallbacks}
        if i == kill_at:
            xapp.stop()
        elif i == restart_at:
            xapp = _xapp(student, port)
            xapp.start()

    try:
        result = node.run(slots, on_slot=on_slot)
    finally:
        xapp.stop()
    assert counted_steps["given"] == counted_steps["scheduled"] == result["decisions"] == result["scheduled"]
    assert seen[kill_at]["fallbacks"] == 0 and seen[kill_at]["xapp"] > 0
    assert seen[restart_at]["fallbacks"] > 0                       # OLLA took over while down
    assert seen[restart_at]["xapp"] == seen[kill_at]["xapp"]        # ... and only OLLA
    assert result["reconnects"] >= 1
    assert result["xapp_decisions"] > seen[restart_at]["xapp"]     # the xApp decides again


def test_lost_subscription_sets_the_link_up_again(student):
    """The xApp forgets the subscription (ErrorIndication UNKNOWN_SUBSCRIPTION): the node falls
    back for that slot, sets up and subscribes again, and the xApp decides again."""
    with _xapp(student) as running:
        node = E2Node(SCENARIO, ("127.0.0.1", running.e2_port), seed=SEED, n_ues=UES, deadline_us=2e6,
                      backoff_s=(0.0, 0.0))
        before: dict[str, int] = {}

        def on_slot(i: int) -> None:
            if i == 100:
                before["xapp"] = node.stats.xapp_decisions
                for session in running.service.sessions:
                    session.subscriptions.clear()

        result = node.run(300, on_slot=on_slot)
    assert result["error_indications"] >= 1 and result["reconnects"] == 1
    assert 0 < result["fallbacks"] < result["scheduled"]
    assert result["xapp_decisions"] > before["xapp"] > 0


def _spawn_xapp(student, e2_port: int) -> "subprocess.Popen":
    """`ranpd xapp` in its own process (no REST), returned once its E2 port accepts connections."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from ranpd.cli import main; sys.exit(main())", "xapp",
         "--model", str(student), "--host", "127.0.0.1", "--e2-port", str(e2_port), "--http-port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", e2_port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"xApp process did not listen on {e2_port} (exit code {process.poll()})")


def test_xapp_process_sigkilled_mid_run_node_falls_back_and_reconnects(student, counted_steps):
    """SIGKILL the xApp process (no clean close) at slot 100; start a new one at slot 250."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = [_spawn_xapp(student, port)]
    node = E2Node(SCENARIO, ("127.0.0.1", port), seed=SEED, n_ues=UES, deadline_us=2e6,
                  backoff_s=(0.005, 0.05), realtime=True)
    seen: dict[int, dict] = {}

    def on_slot(i: int) -> None:
        if i in (100, 250):
            seen[i] = {"xapp": node.stats.xapp_decisions, "fallbacks": node.stats.fallbacks}
        if i == 100:
            processes[-1].send_signal(signal.SIGKILL)
            processes[-1].wait()
        elif i == 250:
            processes.append(_spawn_xapp(student, port))

    try:
        result = node.run(600, on_slot=on_slot)
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert counted_steps["given"] == counted_steps["scheduled"] == result["decisions"]
    assert seen[100]["xapp"] > 0 and seen[100]["fallbacks"] == 0
    assert seen[250]["xapp"] == seen[100]["xapp"] and seen[250]["fallbacks"] > 0    # OLLA only while dead
    assert result["reconnects"] >= 1 and result["xapp_decisions"] > seen[250]["xapp"]


def test_kpm_collector_counts_a_period():
    """Two slots of feedback, 2 ms period: TB counts, first-transmission errors, residual losses
    (a NACK on the last of 2 allowed transmissions), throughput per UE."""
    collector = KpmCollector(period_slots=2, slot_duration_s=1e-3, max_transmissions=2)
    collector.add(SlotReport(slot=1, harq_ue=np.array([0, 1]), harq_ack=np.array([True, False]),
                             harq_tbs=np.array([1000, 2000]), harq_tx=np.array([1, 1]), harq_mcs=np.array([5, 6]),
                             cqi_ue=np.array([0]), cqi_value=np.array([7]), cqi_slot=np.array([0])))
    collector.add(SlotReport(slot=2, harq_ue=np.array([1, 0]), harq_ack=np.array([True, True]),
                             harq_tbs=np.array([2000, 500]), harq_tx=np.array([2, 1]), harq_mcs=np.array([6, 9])))
    collector.add(SlotReport(slot=3, harq_ue=np.array([1]), harq_ack=np.array([False]), harq_tbs=np.array([900]),
                             harq_tx=np.array([2]), harq_mcs=np.array([6])))
    cell, ues = collector.records(decisions=10, fallbacks=3)
    assert (cell["TB.TotNbrDl"], cell["TB.TotNbrDlInitial"], cell["TB.IntialErrNbrDl"]) == ([5.0], [3.0], [1.0])
    assert cell["TB.ResidualErrNbrDl"] == [1.0]
    assert ues == {0: {"DRB.UEThpDl": [750.0]}, 1: {"DRB.UEThpDl": [1000.0]}}   # acked bits / 2 ms, kbit/s
    assert cell["DRB.UEThpDl"] == [875.0]
    assert np.flatnonzero(cell["CARR.PDSCHMCSDist"]).tolist() == [5, 6, 9]      # first transmissions only
    assert np.flatnonzero(cell["CARR.WBCQIDist"]).tolist() == [7] and len(cell["CARR.WBCQIDist"]) == 16
    assert kpm.fallback_ratio(cell) == (3.0, 10.0)
    header, message = kpm.encode_report(cell, ues, sender_name="n", granularity_period_ms=2, collection_start_ns=1)
    assert kpm.decode_report(header, message)[1:] == (cell, ues)           # the xApp's decoder accepts it


def test_node_sends_kpm_reports_the_xapp_counts(student):
    """A 5 ms KPM period over 300 slots of 0.5 ms: 30 reports, each received and decoded by the xApp."""
    with _xapp(student) as running:
        result = E2Node(SCENARIO, ("127.0.0.1", running.e2_port), seed=SEED, n_ues=UES, deadline_us=2e6,
                        kpm_period_ms=5).run(300)
        deadline = time.monotonic() + 5      # the last report may still be in the xApp's queue
        while (received := running.service.metrics.registry.get_sample_value(
                "ranpd_xapp_indications_total", {"service_model": "kpm"})) < result["kpm_reports"] \
                and time.monotonic() < deadline:
            time.sleep(0.01)
    assert result["kpm_reports"] == 300 // 10 and result["kpm_errors"] == 0
    assert received == result["kpm_reports"]


def test_no_kpm_reports_when_disabled(student):
    with _xapp(student) as running:
        result = E2Node(SCENARIO, ("127.0.0.1", running.e2_port), seed=SEED, n_ues=UES, deadline_us=2e6,
                        kpm_period_ms=0).run(100)
    assert result["kpm_reports"] == 0 and result["xapp_decisions"] > 0
