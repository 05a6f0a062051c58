"""The xApp's E2 server: the session flow, each bad input, and decision parity with the
offline policy on a recorded simulation."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto import framing, kpm, la_codec
from ranpd.simulator.policies import ObservationPolicy
from ranpd.simulator.report import SlotReport
from ranpd.xapp.config import XappSettings
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.server import serve_xapp
from ranpd.xapp.synthetic import write_synthetic_model

REQUEST = e2.RicRequestId(requestor_id=7, instance_id=1)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_synthetic_model(tmp_path_factory.mktemp("model") / "student.onnx", hidden=(16, 16), seed=3)


def settings(**kw) -> XappSettings:
    return XappSettings(e2_port=0, http_port=0, **kw)


class Node:
    """A minimal E2 node for tests: raw frames in, envelopes out."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> "Node":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, message, tid: int = 0) -> None:
        framing.write_frame(self.writer, framing.wrap(message, tid))
        await self.writer.drain()

    async def recv(self) -> e2.Envelope:
        return await asyncio.wait_for(framing.read_frame(self.reader), 5)

    async def setup_and_subscribe(self, functions=(la_codec.LA_RAN_FUNCTION,)) -> None:
        await self.send(e2.E2SetupRequest(global_e2_node_id="cell-1", ran_functions=functions), 1)
        assert (await self.recv()).e2_setup_response.accepted_ran_function_ids == [f.id for f in functions]
        await self.send(e2.RICSubscriptionRequest(
            request_id=REQUEST, ran_function_id=la_codec.LA_RAN_FUNCTION.id,
            event_trigger=e2.EventTrigger(per_slot_insert=True),
            actions=[e2.RicAction(action_id=1, type=e2.ACTION_TYPE_INSERT)]), 2)
        assert (await self.recv()).ric_subscription_response.admitted_action_ids == [1]

    async def indicate(self, report: SlotReport, seq: int) -> e2.Envelope:
        await self.send(la_codec.indication_envelope(report, request_id=REQUEST, sequence_number=seq,
                                                     deadline_ns=time.monotonic_ns() + 10**9).ric_indication)
        return await self.recv()

    async def expect_error(self, cause: int) -> e2.ErrorIndication:
        envelope = await self.recv()
        assert framing.message_type(envelope) == "error_indication", envelope
        assert envelope.error_indication.cause == cause, envelope.error_indication
        assert envelope.error_indication.text
        return envelope.error_indication


def _report(slot=10, ues=(3, 5)) -> SlotReport:
    n = len(ues)
    return SlotReport(slot=slot, cqi_ue=np.array(ues), cqi_value=np.full(n, 9), cqi_slot=np.full(n, slot - 8),
                      ue=np.array(ues), prbs=np.full(n, 50), layers=np.ones(n, np.int64),
                      buffer_bytes=np.full(n, 10_000))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_indication_gets_control_for_its_slot(model_path):
    async def scenario():
        async with serve_xapp(settings(), OnnxPolicyModel.load(model_path), http=False) as xapp:
            node = await Node.connect(xapp.e2_port)
            await node.setup_and_subscribe()
            reply = await node.indicate(_report(slot=42, ues=(9, 4, 7)), seq=5)
            control = reply.ric_control_request
            assert control.call_process_id == (5).to_bytes(8, "big")
            decision = la_codec.decode_control(control)
            assert (decision.slot, decision.indication_sequence_number) == (42, 5)
            assert decision.ue.tolist() == [9, 4, 7] and (decision.mcs <= 27).all()
            await node.send(e2.ResetRequest(), 9)
            assert (await node.recv()).HasField("reset_response")
            assert len(xapp.service.sessions) == 1 and next(iter(xapp.service.sessions)).store is None
    run(scenario())


def test_bad_inputs_get_error_indications_and_the_connection_keeps_serving(model_path):
    async def scenario():
        async with serve_xapp(settings(), OnnxPolicyModel.load(model_path), http=False) as xapp:
            node = await Node.connect(xapp.e2_port)
            await node.send(e2.RICSubscriptionDeleteRequest(request_id=REQUEST))       # before setup
            await node.expect_error(e2.CAUSE_MESSAGE_NOT_COMPATIBLE)
            await node.setup_and_subscribe()
            node.writer.write((3).to_bytes(4, "big") + b"\xff\xff\xff")               # malformed
            await node.expect_error(e2.CAUSE_MALFORMED_MESSAGE)
            node.writer.write(framing.encode_frame(e2.Envelope(protocol_version=1)))  # no message
            await node.expect_error(e2.CAUSE_UNKNOWN_MESSAGE_TYPE)
            node.writer.write(framing.encode_frame(e2.Envelope(
                protocol_version=9, reset_request=e2.ResetRequest())))
            await node.expect_error(e2.CAUSE_PROTOCOL_VERSION)
            await node.send(e2.E2SetupResponse())                                     # wrong direction
            await node.expect_error(e2.CAUSE_MESSAGE_NOT_COMPATIBLE)
            await node.send(e2.RICSubscriptionRequest(request_id=REQUEST, ran_function_id=99,
                                                      event_trigger=e2.EventTrigger(per_slot_insert=True)))
            await node.expect_error(e2.CAUSE_UNKNOWN_RAN_FUNCTION)
            other = la_codec.indication_envelope(_report(), request_id=e2.RicRequestId(requestor_id=99),
                                                 sequence_number=1, deadline_ns=0).ric_indication
            await node.send(other)
            await node.expect_error(e2.CAUSE_UNKNOWN_SUBSCRIPTION)
            bad = la_codec.indication_envelope(_report(), request_id=REQUEST, sequence_number=4,
                                               deadline_ns=0).ric_indication
            wrong_function = e2.RICIndication()
            wrong_function.CopyFrom(bad)
            wrong_function.ran_function_id = kpm.KPM_RAN_FUNCTION.id
            await node.send(wrong_function)
            await node.expect_error(e2.CAUSE_UNKNOWN_RAN_FUNCTION)
            from ranpd.proto import e2sm_la_pb2
            message = e2sm_la_pb2.LaIndicationMessage.FromString(bad.message)
            message.prbs[0] = 9999                                                    # out of range
            bad.message = message.SerializeToString()
            await node.send(bad)
            error = await node.expect_error(e2.CAUSE_INVALID_FIELD)
            assert error.sequence_number == 4 and "prbs" in error.text
            reply = await node.indicate(_report(), seq=5)                             # still serving
            assert reply.HasField("ric_control_request")
            assert xapp.service.metrics.errors.labels("sent", "invalid_field")._value.get() == 1
    run(scenario())


def test_oversized_and_truncated_frames_drop_only_their_connection(model_path):
    async def scenario():
        async with serve_xapp(settings(max_frame_bytes=4096), OnnxPolicyModel.load(model_path),
                              http=False) as xapp:
            good = await Node.connect(xapp.e2_port)
            await good.setup_and_subscribe()
            big = await Node.connect(xapp.e2_port)
            big.writer.write((1 << 30).to_bytes(4, "big") + b"\0" * 16)
            await big.expect_error(e2.CAUSE_MESSAGE_TOO_LARGE)
            assert await big.reader.read() == b""                                     # closed by the xApp
            cut = await Node.connect(xapp.e2_port)
            cut.writer.write(framing.encode_frame(framing.wrap(e2.E2SetupRequest(global_e2_node_id="x")))[:-3])
            cut.writer.close()
            assert (await good.indicate(_report(), seq=1)).HasField("ric_control_request")
    run(scenario())


def test_without_model_indications_get_no_model_and_a_model_can_be_installed(model_path, tmp_path, monkeypatch):
    monkeypatch.setattr("ranpd.xapp.service.PACKAGED_MODEL", tmp_path / "not-shipped.onnx")

    async def scenario():
        async with serve_xapp(settings(), model=None, http=False) as xapp:
            assert xapp.service.model is None
            node = await Node.connect(xapp.e2_port)
            await node.setup_and_subscribe()
            await node.send(la_codec.indication_envelope(_report(), request_id=REQUEST, sequence_number=1,
                                                         deadline_ns=0).ric_indication)
            await node.expect_error(e2.CAUSE_NO_MODEL)
            xapp.service.install(OnnxPolicyModel.load(model_path))
            assert (await node.indicate(_report(), seq=2)).HasField("ric_control_request")
    run(scenario())


async def _subscribe_kpm(node) -> tuple[e2.RicRequestId, e2.Envelope]:
    """Set a node up for LA and KPM and subscribe to KPM reports every 100 ms; (request id, answer)."""
    await node.setup_and_subscribe((la_codec.LA_RAN_FUNCTION, kpm.KPM_RAN_FUNCTION))
    kpm_request = e2.RicRequestId(requestor_id=7, instance_id=2)
    await node.send(e2.RICSubscriptionRequest(
        request_id=kpm_request, ran_function_id=kpm.KPM_RAN_FUNCTION.id,
        event_trigger=e2.EventTrigger(report_period_ms=100),
        actions=[e2.RicAction(action_id=1, type=e2.ACTION_TYPE_REPORT)]))
    return kpm_request, await node.recv()


def test_kpm_report_updates_metrics_and_nan_is_rejected(model_path):
    async def scenario():
        async with serve_xapp(settings(), OnnxPolicyModel.load(model_path), http=False) as xapp:
            node = await Node.connect(xapp.e2_port)
            kpm_request, answer = await _subscribe_kpm(node)
            assert answer.ric_subscription_response.admitted_action_ids == [1]
            for value in (2500.0, float("nan")):
                header, message = kpm.encode_report({"DRB.UEThpDl": [value]}, {}, sender_name="cell-1",
                                                    granularity_period_ms=100, collection_start_ns=0)
                await node.send(e2.RICIndication(request_id=kpm_request, ran_function_id=kpm.KPM_RAN_FUNCTION.id,
                                                 type=e2.INDICATION_TYPE_REPORT, header=header, message=message))
            await node.expect_error(e2.CAUSE_INVALID_FIELD)
            assert xapp.service.metrics.kpm.labels("cell-1", "DRB.UEThpDl")._value.get() == 2500.0
    run(scenario())


def test_decisions_over_e2_equal_the_offline_policy_on_a_simulation(model_path):
    """Parity: a recorded report stream from the simulator, decided by the xApp over TCP and by
    ObservationPolicy(OnnxPolicyModel.score) offline, gives identical MCS sequences."""
    from ranpd.simulator.engine import Simulation
    from ranpd.simulator.scenarios import BUILTIN_SCENARIOS

    scenario = BUILTIN_SCENARIOS["uma-mid-vehicular"]
    sim = Simulation(scenario, seed=1, n_ues=12)
    offline = ObservationPolicy(OnnxPolicyModel.load(model_path).score)
    offline.reset(sim.n_ues, sim.mcs_table, sim.cqi_table)
    reports, offline_mcs = [sim.reset()], []
    for _ in range(150):
        mcs = offline.decide(reports[-1]).copy()
        offline_mcs.append(mcs)
        reports.append(sim.step(mcs).report)
    assert sum(r.harq_ue.size for r in reports) > 20 and sum(r.cqi_ue.size for r in reports) > 20

    async def online():
        async with serve_xapp(settings(), OnnxPolicyModel.load(model_path), http=False) as xapp:
            node = await Node.connect(xapp.e2_port)
            await node.setup_and_subscribe()
            out = []
            for seq, report in enumerate(reports[:-1]):
                decision = la_codec.decode_control((await node.indicate(report, seq)).ric_control_request)
                assert decision.ue.tolist() == report.ue.tolist()
                out.append(decision.mcs)
            return out

    online_mcs = run(online())
    assert len({m for ms in offline_mcs for m in ms.tolist()}) > 1, "a constant policy proves little"
    for slot, (a, b) in enumerate(zip(offline_mcs, online_mcs)):
        np.testing.assert_array_equal(a, b, err_msg=f"slot {slot}")


# -- E2AP conformance, limits and timeouts ---------------------------------------------------------
def _subscription(request=REQUEST, action_ids=(1,)) -> e2.RICSubscriptionRequest:
    return e2.RICSubscriptionRequest(
        request_id=request, ran_function_id=la_codec.LA_RAN_FUNCTION.id,
        event_trigger=e2.EventTrigger(per_slot_insert=True),
        actions=[e2.RicAction(action_id=a, type=e2.ACTION_TYPE_INSERT) for a in action_ids])


def test_e2ap_conformance_request_ids_action_ids_resetup_and_slots(model_path):
    async def scenario():
        async with serve_xapp(settings(), OnnxPolicyModel.load(model_path), http=False) as xapp:
            node = await Node.connect(xapp.e2_port)
            await node.setup_and_subscribe()
            await node.send(_subscription())                                    # same request id again
            error = await node.expect_error(e2.CAUSE_INVALID_FIELD)
            assert "already subscribed" in error.text
            other = e2.RicRequestId(requestor_id=7, instance_id=9)
            for actions in ((256,), (3, 3), (), tuple(range(17))):
                await node.send(_subscription(other, actions))
                await node.expect_error(e2.CAUSE_INVALID_FIELD)
            assert (await node.indicate(_report(slot=50), seq=1)).HasField("ric_control_request")
            await node.send(la_codec.indication_envelope(_report(slot=49), request_id=REQUEST, sequence_number=2,
                                                         deadline_ns=0).ric_indication)
            assert "backwards" in (await node.expect_error(e2.CAUSE_INVALID_FIELD)).text
            # A second E2 Setup starts afresh: the old subscription is gone, slot 49 is fine again.
            await node.send(e2.E2SetupRequest(global_e2_node_id="cell-1", ran_functions=[la_codec.LA_RAN_FUNCTION]))
            assert (await node.recv()).HasField("e2_setup_response")
            session = next(iter(xapp.service.sessions))
            assert session.subscriptions == {} and session.store is None
            await node.send(la_codec.indication_envelope(_report(slot=49), request_id=REQUEST, sequence_number=3,
                                                         deadline_ns=0).ric_indication)
            await node.expect_error(e2.CAUSE_UNKNOWN_SUBSCRIPTION)
            await node.send(_subscription(), 4)
            assert (await node.recv()).ric_subscription_response.admitted_action_ids == [1]
            assert (await node.indicate(_report(slot=49), seq=4)).HasField("ric_control_request")
    run(scenario())


def test_values_beyond_int64_and_oversized_indications_get_specific_causes(model_path):
    from ranpd.proto import e2sm_la_pb2

    async def scenario():
        async with serve_xapp(settings(max_indication_ues=8), OnnxPolicyModel.load(model_path),
                              http=False) as xapp:
            node = await Node.connect(xapp.e2_port)
            await node.setup_and_subscribe()
            envelope = la_codec.indication_envelope(_report(), request_id=REQUEST, sequence_number=1, deadline_ns=0)
            message = e2sm_la_pb2.LaIndicationMessage.FromString(envelope.ric_indication.message)
            message.buffer_bytes[0] = (1 << 64) - 1
            envelope.ric_indication.message = message.SerializeToString()
            await node.send(envelope.ric_indication)
            assert "buffer_bytes" in (await node.expect_error(e2.CAUSE_INVALID_FIELD)).text
            header = e2sm_la_pb2.LaIndicationHeader.FromString(envelope.ric_indication.header)
            header.slot = 1 << 63
            envelope.ric_indication.header = header.SerializeToString()
            await node.send(envelope.ric_indication)
            assert "slot" in (await node.expect_error(e2.CAUSE_INVALID_FIELD)).text
            await node.send(la_codec.indication_envelope(_report(ues=tuple(range(9))), request_id=REQUEST,
                                                         sequence_number=3, deadline_ns=0).ric_indication)
            await node.expect_error(e2.CAUSE_OVERLOAD)
            assert xapp.service.metrics.internal_errors._value.get() == 0
    run(scenario())


def test_stale_indication_is_dropped_unanswered(model_path):
    async def scenario():
        async with serve_xapp(settings(), OnnxPolicyModel.load(model_path), http=False) as xapp:
            node = await Node.connect(xapp.e2_port)
            await node.setup_and_subscribe()
            assert (await node.indicate(_report(slot=1), seq=1)).HasField("ric_control_request")
            now = time.monotonic_ns()
            await node.send(la_codec.indication_envelope(_report(slot=2), request_id=REQUEST, sequence_number=2,
                                                         timestamp_ns=now - 10**8, deadline_ns=now - 10**7)
                            .ric_indication)
            reply = await node.indicate(_report(slot=3), seq=3)       # the answer is to seq 3, not 2
            assert la_codec.decode_control(reply.ric_control_request).indication_sequence_number == 3
            assert xapp.service.metrics.stale._value.get() == 1
    run(scenario())


def test_idle_sockets_cannot_take_the_slots_of_nodes(model_path):
    from ranpd.xapp.budgets import E2Limits

    limits = E2Limits(max_pending_setups=4, setup_timeout_s=1.0)

    async def scenario():
        async with serve_xapp(settings(max_connections=2), OnnxPolicyModel.load(model_path), http=False,
                              limits=limits) as xapp:
            idle = [await Node.connect(xapp.e2_port) for _ in range(20)]     # never send a byte
            node = await Node.connect(xapp.e2_port)
            await node.setup_and_subscribe()                                  # still gets in
            assert (await node.indicate(_report(), seq=1)).HasField("ric_control_request")
            late = await Node.connect(xapp.e2_port)                           # setup timeout drops it
            assert await asyncio.wait_for(late.reader.read(), 3) == b""
            dropped = xapp.service.metrics.dropped
            pool_full, timeout = (dropped.labels(r)._value.get() for r in ("setup_pool_full", "setup_timeout"))
            assert pool_full >= 1 and pool_full + timeout >= 21          # every idle socket, and `late`
            second = await Node.connect(xapp.e2_port)
            await second.send(e2.E2SetupRequest(global_e2_node_id="cell-2"))
            assert (await second.recv()).HasField("e2_setup_response")
            third = await Node.connect(xapp.e2_port)                          # node slots full
            await third.send(e2.E2SetupRequest(global_e2_node_id="cell-3"))
            await third.expect_error(e2.CAUSE_OVERLOAD)
            for peer in idle:
                peer.writer.close()
    run(scenario())


def test_a_peer_that_never_reads_is_paused_then_dropped(model_path):
    from ranpd.xapp.budgets import E2Limits

    limits = E2Limits(write_high_bytes=4096, write_stall_s=0.3)

    async def scenario():
        async with serve_xapp(settings(), OnnxPolicyModel.load(model_path), http=False, limits=limits) as xapp:
            good = await Node.connect(xapp.e2_port)
            await good.setup_and_subscribe()
            sink = await Node.connect(xapp.e2_port)
            sink.writer.transport.pause_reading()          # the client stops reading its socket
            frame = framing.encode_frame(framing.wrap(e2.E2SetupResponse()))
            sink.writer.write(frame * 40_000)              # each is answered with an ErrorIndication
            for seq in range(20):
                assert (await good.indicate(_report(slot=seq), seq=seq)).HasField("ric_control_request")
            deadline = time.monotonic() + 5
            while xapp.service.metrics.dropped.labels("write_stall")._value.get() == 0:
                assert time.monotonic() < deadline, "a peer that never reads was not dropped"
                await asyncio.sleep(0.05)
            assert (await good.indicate(_report(slot=99), seq=99)).HasField("ric_control_request")
    run(scenario())


def test_kpm_fallback_ratio_is_counted_and_warned_and_logs_escape_wire_text(model_path):
    async def scenario():
        async with serve_xapp(settings(), OnnxPolicyModel.load(model_path), http=False) as xapp:
            node = await Node.connect(xapp.e2_port)
            kpm_request, answer = await _subscribe_kpm(node)
            assert answer.HasField("ric_subscription_response")
            for fallbacks in (1.0, 40.0):
                header, message = kpm.encode_report({kpm.DECISIONS: [100.0], kpm.FALLBACKS: [fallbacks]}, {},
                                                    sender_name="cell-1", granularity_period_ms=100,
                                                    collection_start_ns=0)
                await node.send(e2.RICIndication(request_id=kpm_request, ran_function_id=kpm.KPM_RAN_FUNCTION.id,
                                                 type=e2.INDICATION_TYPE_REPORT, header=header, message=message))
            await node.send(e2.ErrorIndication(cause=e2.CAUSE_UNSPECIFIED,
                                               text="x\n2026-01-01 CRITICAL forged line"))
            assert (await node.indicate(_report(), seq=1)).HasField("ric_control_request")   # all handled
            metrics = xapp.service.metrics
            assert metrics.node_fallbacks.labels("cell-1")._value.get() == 41.0
            assert metrics.high_fallback_reports.labels("cell-1")._value.get() == 1
            assert metrics.node_fallback_ratio.labels("cell-1")._value.get() == 0.4
    import logging

    class Records(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.records = []

        def emit(self, record):
            self.records.append(record)

    logger, records = logging.getLogger("ranpd.xapp.e2"), Records()
    # import-linter's CLI (tests/test_layering.py) runs logging.config.dictConfig, which disables
    # every logger that exists at that time; the xApp's logger must log here whatever ran before.
    disabled, logger.disabled = logger.disabled, False
    logger.addHandler(records)
    try:
        run(scenario())
    finally:
        logger.removeHandler(records)
        logger.disabled = disabled
    messages = [r.getMessage() for r in records.records]
    assert any("40.0% of 100 decisions fell back" in m for m in messages)
    assert all("\n" not in m for m in messages)
    assert any("forged line" in m for m in messages)


def test_metric_labels_stay_bounded_with_many_node_ids(model_path):
    from ranpd.xapp.budgets import OTHER, E2Limits

    async def scenario():
        async with serve_xapp(settings(), OnnxPolicyModel.load(model_path), http=False,
                              limits=E2Limits(max_label_nodes=3)) as xapp:
            node = await Node.connect(xapp.e2_port)
            for i in range(10):
                await node.send(e2.E2SetupRequest(global_e2_node_id=f"cell-{i}"))
                assert (await node.recv()).HasField("e2_setup_response")
            return next(iter(xapp.service.sessions)).node_label, len(xapp.service.node_labels._known)
    label, known = run(scenario())
    assert label == OTHER and known == 3

