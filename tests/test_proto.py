"""The E2-like protocol: reproducible generated code, framing, and the service-model codecs."""
from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from ranpd.proto import e2ap_pb2, framing, kpm, la_codec
from ranpd.proto.framing import CodecError, FrameDecoder, FrameError
from ranpd.simulator.report import SlotReport

PROTO_DIR = Path(framing.__file__).parent


def test_generated_code_is_reproducible(tmp_path):
    pytest.importorskip("grpc_tools")
    from ranpd.proto.generate import generate

    written = generate(tmp_path)
    assert len(written) == 6
    for path in written:
        assert path.read_bytes() == (PROTO_DIR / path.name).read_bytes(), f"{path.name} is stale"


def _report(n: int = 5, slot: int = 100) -> SlotReport:
    rng = np.random.default_rng(slot)
    ue = rng.permutation(1000)[:n]
    return SlotReport(
        slot=slot, mcs_table=1, cqi_table=2,
        cqi_ue=ue[:3], cqi_value=np.array([0, 7, 15]), cqi_slot=np.array([slot - 4, slot - 9, slot - 4]),
        harq_ue=ue[1:4], harq_ack=np.array([True, False, True]), harq_mcs=np.array([3, 27, 30]),
        harq_tbs=np.array([1000, 84000, 5000]), harq_tx=np.array([1, 1, 2]),
        harq_process=np.array([0, 7, 15]),
        ue=ue, prbs=rng.integers(1, 276, n), layers=rng.integers(1, 5, n),
        buffer_bytes=rng.integers(0, 1 << 40, n))


def test_indication_round_trip_rebuilds_the_report():
    report = _report()
    envelope = la_codec.indication_envelope(
        report, request_id=e2ap_pb2.RicRequestId(requestor_id=1), sequence_number=9,
        deadline_ns=123, timestamp_ns=45)
    wire = FrameDecoder().feed(framing.encode_frame(envelope))
    assert len(wire) == 1 and framing.message_type(wire[0]) == "ric_indication"
    indication = wire[0].ric_indication
    header, fields = la_codec.decode_indication(indication.header, indication.message)
    assert (header.deadline_ns, header.timestamp_ns, header.slot, header.max_harq_tx) == (123, 45, 100, 0)
    told = la_codec.indication_envelope(report, request_id=e2ap_pb2.RicRequestId(requestor_id=1),
                                        sequence_number=9, deadline_ns=123, max_harq_tx=4)
    assert la_codec.decode_header(told.ric_indication.header).max_harq_tx == 4
    rebuilt = SlotReport(**fields)
    for name in fields:
        np.testing.assert_array_equal(getattr(rebuilt, name), getattr(report, name), err_msg=name)
        assert np.asarray(getattr(rebuilt, name)).dtype == np.asarray(getattr(report, name)).dtype


def test_control_round_trip():
    header, message = la_codec.encode_control(77, 9, np.array([4, 2]), np.array([27, 0]))
    decision = la_codec.decode_control(e2ap_pb2.RICControlRequest(header=header, message=message))
    assert (decision.slot, decision.indication_sequence_number) == (77, 9)
    assert decision.ue.tolist() == [4, 2] and decision.mcs.tolist() == [27, 0]


@pytest.mark.parametrize("mutate, match", [
    (lambda m, h: m.cqi_value.__setitem__(0, 16), "cqi_value out of range"),
    (lambda m, h: m.harq_tx.__setitem__(0, 0), "harq_tx out of range"),
    (lambda m, h: m.harq_mcs.__setitem__(0, 32), "harq_mcs out of range"),
    (lambda m, h: m.prbs.__setitem__(0, 276), "prbs out of range"),
    (lambda m, h: m.layers.__setitem__(0, 0), "layers out of range"),
    (lambda m, h: m.prbs.pop(), "decision columns differ in length"),
    (lambda m, h: m.ue.__setitem__(1, m.ue[0]), "decision lists a UE more than once"),
    (lambda m, h: setattr(h, "mcs_table", 3), "mcs_table 3"),
    (lambda m, h: m.buffer_bytes.__setitem__(0, 1 << 63), "buffer_bytes out of range"),
    (lambda m, h: setattr(h, "slot", (1 << 64) - 1), "slot 18446744073709551615 out of range"),
    (lambda m, h: m.harq_ack.pop(), "HARQ columns differ in length"),
    (lambda m, h: setattr(h, "max_harq_tx", 9), r"max_harq_tx 9 out of range \[0, 8\]"),
])
def test_indication_with_invalid_field_is_rejected(mutate, match):
    from ranpd.proto import e2sm_la_pb2

    header, message = la_codec.encode_indication(_report(), deadline_ns=0)
    h = e2sm_la_pb2.LaIndicationHeader.FromString(header)
    m = e2sm_la_pb2.LaIndicationMessage.FromString(message)
    mutate(m, h)
    with pytest.raises(CodecError, match=match) as err:
        la_codec.decode_indication(h.SerializeToString(), m.SerializeToString())
    assert err.value.cause == e2ap_pb2.CAUSE_INVALID_FIELD


def test_garbage_payload_is_malformed():
    with pytest.raises(CodecError) as err:
        la_codec.decode_indication(b"\xff\xff\xff", b"")
    assert err.value.cause == e2ap_pb2.CAUSE_MALFORMED_MESSAGE


def test_decoder_reassembles_split_frames_and_skips_a_malformed_one():
    setup = framing.wrap(e2ap_pb2.E2SetupRequest(global_e2_node_id="cell-1"), transaction_id=3)
    frame = framing.encode_frame(setup)
    garbage = (3).to_bytes(4, "big") + b"\xff\xff\xff"
    stream = frame + garbage + frame
    decoder = FrameDecoder()
    out = [item for i in range(len(stream)) for item in decoder.feed(stream[i:i + 1])]
    assert [type(x) for x in out] == [e2ap_pb2.Envelope, FrameError, e2ap_pb2.Envelope]
    assert out[1].cause == e2ap_pb2.CAUSE_MALFORMED_MESSAGE and not out[1].fatal
    assert out[2].transaction_id == 3 and decoder.pending == 0


def test_oversized_frame_is_fatal():
    decoder = FrameDecoder(max_bytes=100)
    with pytest.raises(FrameError) as err:
        decoder.feed((101).to_bytes(4, "big") + b"x")
    assert err.value.fatal and err.value.cause == e2ap_pb2.CAUSE_MESSAGE_TOO_LARGE


def test_stream_reader_round_trip_and_truncation():
    async def scenario():
        envelope = framing.wrap(e2ap_pb2.ResetRequest(cause=e2ap_pb2.CAUSE_UNSPECIFIED), 1)
        reader = asyncio.StreamReader()
        frame = framing.encode_frame(envelope)
        reader.feed_data(frame + frame[:-2])
        reader.feed_eof()
        assert await framing.read_frame(reader) == envelope
        with pytest.raises(FrameError) as err:
            await framing.read_frame(reader)
        assert err.value.fatal

    asyncio.run(scenario())


def test_unknown_message_type_is_visible():
    # a newer peer's message: an oneof field this version does not know (field 99, empty)
    envelope = e2ap_pb2.Envelope.FromString(bytes([0x08, 0x01, 0x9A, 0x06, 0x00]))
    assert envelope.protocol_version == framing.PROTOCOL_VERSION
    assert framing.message_type(envelope) is None


def test_kpm_round_trip_and_nan_rejected():
    cell = {"DRB.UEThpDl": [1234.5], "CARR.WBCQIDist": [0.0] * 16}
    header, message = kpm.encode_report(cell, {7: {"TB.IntialErrNbrDl": [3.0]}}, sender_name="cell-1",
                                        granularity_period_ms=100, collection_start_ns=5)
    head, cell_out, ues = kpm.decode_report(header, message)
    assert head.sender_name == "cell-1" and cell_out == cell and ues == {7: {"TB.IntialErrNbrDl": [3.0]}}
    for bad in ({"DRB.UEThpDl": [float("nan")]}, {"DRB.Unknown": [1.0]}, {"DRB.UEThpDl": [-1.0]},
                {"CARR.WBCQIDist": [1.0] * (kpm.MAX_BINS + 1)},
                {kpm.DECISIONS: [10.0], kpm.FALLBACKS: [11.0]}):
        header, message = kpm.encode_report(bad, {}, sender_name="c", granularity_period_ms=1,
                                            collection_start_ns=0)
        with pytest.raises(CodecError) as err:
            kpm.fallback_ratio(kpm.decode_report(header, message)[1])
        assert err.value.cause == e2ap_pb2.CAUSE_INVALID_FIELD


def test_kpm_fallback_ratio_and_ue_cap():
    header, message = kpm.encode_report({kpm.DECISIONS: [200.0], kpm.FALLBACKS: [3.0]}, {},
                                        sender_name="c", granularity_period_ms=1, collection_start_ns=0)
    assert kpm.fallback_ratio(kpm.decode_report(header, message)[1]) == (3.0, 200.0)
    assert kpm.fallback_ratio({"DRB.UEThpDl": [1.0]}) is None
    ues = {ue: {"DRB.UEThpDl": [1.0]} for ue in range(kpm.MAX_UES + 1)}
    header, message = kpm.encode_report({}, ues, sender_name="c", granularity_period_ms=1, collection_start_ns=0)
    with pytest.raises(CodecError) as err:
        kpm.decode_report(header, message)
    assert err.value.cause == e2ap_pb2.CAUSE_OVERLOAD


def test_indication_entry_cap_is_checked_before_conversion():
    header, message = la_codec.encode_indication(_report(n=5), deadline_ns=0)
    assert la_codec.decode_indication(header, message, max_entries=5)[1]["ue"].size == 5
    with pytest.raises(CodecError) as err:
        la_codec.decode_indication(header, message, max_entries=4)
    assert err.value.cause == e2ap_pb2.CAUSE_OVERLOAD


def test_decoder_pops_one_frame_at_a_time():
    frames = [framing.encode_frame(framing.wrap(e2ap_pb2.ResetRequest(), tid)) for tid in range(3)]
    decoder = FrameDecoder()
    decoder.push(b"".join(frames) + frames[0][:3])
    assert [decoder.pop().transaction_id for _ in range(3)] == [0, 1, 2]
    assert decoder.pop() is None and decoder.pending == 3
