"""RANPD-E2SM-LA codec: slot reports <-> RIC Indication, MCS decisions <-> RIC Control.

Both ends use it, so what the xApp rebuilds is exactly what the node encoded. It depends on no
other ranpd package: `encode_indication` reads any object with the attribute names of
`ranpd.simulator.report.SlotReport`, and `decode_indication` returns a dict whose keys are
SlotReport's field names (`SlotReport(**fields)` rebuilds the report; the xApp does this).

Decoding validates every field (ranges from TS 38.214 / 38.213) and raises `CodecError` with the
E2AP-style cause, so the receiver can answer with an ErrorIndication or RICControlFailure.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError
from numba import njit

from ranpd.proto import e2ap_pb2, e2sm_la_pb2
from ranpd.proto.framing import CodecError, wrap

LA_RAN_FUNCTION = e2ap_pb2.RanFunction(id=2, revision=1, name="RANPD-E2SM-LA", oid="ranpd.e2sm.la.1")

# Inclusive ranges of the indication's columns (TS 38.214 §5.1.3.1 MCS tables and 5.2.2.1 CQI
# tables, 38.213 §9 HARQ processes, 38.214 §5.1.2.2 PRB allocation, up to 8 layers).
MAX_CQI = 15
MAX_MCS_INDEX = 31           # 29..31 (table 1) / 28..31 (table 2) appear on retransmissions
MAX_HARQ_PROCESS = 15
MAX_HARQ_TX = 8
MAX_PRBS = 275
MAX_LAYERS = 8
MCS_TABLES = (1, 2)
CQI_TABLES = (1, 2)
# Slot counters and buffer sizes travel as uint64 but are int64 on both ends; a slot is kept
# below 2^62 so that ages against the observation builder's "never" stamp cannot overflow.
MAX_SLOT = (1 << 62) - 1
MAX_INT64 = (1 << 63) - 1


@dataclass
class ControlDecision:
    """What one RIC Control of the LA model says: the MCS of each UE for one slot."""

    slot: int
    indication_sequence_number: int
    ue: np.ndarray
    mcs: np.ndarray


def encode_indication(report, *, deadline_ns: int, timestamp_ns: int | None = None,
                      max_harq_tx: int = 0) -> tuple[bytes, bytes]:
    """(header, message) bytes of the LA indication for one SlotReport-like `report`;
    `max_harq_tx`: the node's HARQ transmissions per TB (0: not said)."""
    slot = int(report.slot)
    header = e2sm_la_pb2.LaIndicationHeader(
        slot=slot, timestamp_ns=time.monotonic_ns() if timestamp_ns is None else timestamp_ns,
        deadline_ns=deadline_ns, mcs_table=int(report.mcs_table), cqi_table=int(report.cqi_table),
        max_harq_tx=max_harq_tx)
    message = e2sm_la_pb2.LaIndicationMessage(
        cqi_ue=report.cqi_ue.tolist(), cqi_value=report.cqi_value.tolist(),
        cqi_age_slots=(slot - np.asarray(report.cqi_slot)).tolist(),
        harq_ue=report.harq_ue.tolist(), harq_ack=report.harq_ack.tolist(),
        harq_mcs=report.harq_mcs.tolist(), harq_tbs=report.harq_tbs.tolist(),
        harq_tx=report.harq_tx.tolist(), harq_process=report.harq_process.tolist(),
        ue=report.ue.tolist(), prbs=report.prbs.tolist(), layers=report.layers.tolist(),
        buffer_bytes=report.buffer_bytes.tolist())
    return header.SerializeToString(), message.SerializeToString()


def indication_envelope(report, *, request_id: e2ap_pb2.RicRequestId, sequence_number: int,
                        deadline_ns: int, timestamp_ns: int | None = None, action_id: int = 1,
                        ran_function_id: int = LA_RAN_FUNCTION.id, max_harq_tx: int = 0) -> e2ap_pb2.Envelope:
    """The whole framed-ready INSERT indication for one slot (call process id = sequence no.)."""
    header, message = encode_indication(report, deadline_ns=deadline_ns, timestamp_ns=timestamp_ns,
                                        max_harq_tx=max_harq_tx)
    return wrap(e2ap_pb2.RICIndication(
        request_id=request_id, ran_function_id=ran_function_id, action_id=action_id,
        sequence_number=sequence_number, type=e2ap_pb2.INDICATION_TYPE_INSERT,
        header=header, message=message, call_process_id=sequence_number.to_bytes(8, "big")))


def _parse(cls, data: bytes, what: str):
    try:
        return cls.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise CodecError(e2ap_pb2.CAUSE_MALFORMED_MESSAGE, f"{what} does not parse: {exc}") from exc


def _column(values, dtype=np.int64, name: str = "column") -> np.ndarray:
    """A repeated protobuf field as a numpy column; uint64 values above int64 range are an
    INVALID_FIELD (not an OverflowError)."""
    if dtype is not np.int64:
        return np.fromiter(values, dtype, len(values))
    try:
        return np.fromiter(values, np.int64, len(values))
    except OverflowError:
        big = [v for v in values if v > MAX_INT64][:4]
        raise _invalid(f"{name} out of range [0, {MAX_INT64}]: {big}") from None


def _invalid(text: str) -> CodecError:
    return CodecError(e2ap_pb2.CAUSE_INVALID_FIELD, text)


def _check_section(name: str, columns: dict[str, np.ndarray], limits: dict[str, tuple[int, int]],
                   per: str | None = None) -> None:
    """Columns of one section have one length, values within `limits`, no UE listed twice (or,
    with `per`, no (UE, columns[per]) pair twice)."""
    ue = next(iter(columns.values()))
    n = ue.size
    if any(col.size != n for col in columns.values()):
        raise _invalid(f"{name} columns differ in length: { {k: c.size for k, c in columns.items()} }")
    if n == 0:
        return
    for key, (low, high) in limits.items():
        col = columns[key]
        if _out_of_range(col, low, high) >= 0:
            bad = col[(col < low) | (col > high)][:4].tolist()
            raise _invalid(f"{key} out of range [{low}, {high}]: {bad}")
    if _repeated(ue, columns[per] if per is not None else ue[:0]):
        raise _invalid(f"{name} lists a UE more than once" if per is None else
                       f"{name} lists a (UE, {per}) pair more than once")


@njit(cache=True, nogil=True)
def _out_of_range(column, low, high):
    """Index of the first value outside [low, high]; -1 if none."""
    for i in range(column.size):
        if column[i] < low or column[i] > high:
            return i
    return -1


@njit(cache=True, nogil=True)
def _repeated(ue, per):
    """Whether a UE is listed twice or, with `per` (as long as `ue`), a (UE, per) pair is. A UE's
    entries are compared pairwise: `per` is range-checked first (HARQ processes 0..15), so a run
    of one UE's entries holds a repeat within its first 17."""
    order = np.argsort(ue, kind="mergesort")
    start = 0
    for j in range(1, ue.size + 1):
        if j == ue.size or ue[order[j]] != ue[order[start]]:
            if j - start > 1:
                if per.size == 0:
                    return True
                for a in range(start, j):
                    for b in range(a + 1, j):
                        if per[order[a]] == per[order[b]]:
                            return True
            start = j
    return False


def decode_header(header: bytes) -> e2sm_la_pb2.LaIndicationHeader:
    """Parse and validate an LA indication header alone (cheap: a receiver can drop a stale
    indication on its deadline before decoding the message)."""
    head = _parse(e2sm_la_pb2.LaIndicationHeader, header, "LA indication header")
    if head.mcs_table not in MCS_TABLES or head.cqi_table not in CQI_TABLES:
        raise _invalid(f"mcs_table {head.mcs_table} / cqi_table {head.cqi_table}: "
                       f"supported are {MCS_TABLES} / {CQI_TABLES}")
    if head.slot > MAX_SLOT:
        raise _invalid(f"slot {head.slot} out of range [0, {MAX_SLOT}]")
    if head.max_harq_tx > MAX_HARQ_TX:
        raise _invalid(f"max_harq_tx {head.max_harq_tx} out of range [0, {MAX_HARQ_TX}] (0: not said)")
    return head


def decode_indication(header: bytes | e2sm_la_pb2.LaIndicationHeader, message: bytes,
                      max_entries: int | None = None) -> tuple[e2sm_la_pb2.LaIndicationHeader, dict]:
    """Parse and validate an LA indication: (header, SlotReport fields as numpy arrays).

    `header` may be the already decoded header. With `max_entries`, a section listing more
    UE entries raises CodecError(OVERLOAD) before any column is converted.
    """
    head = header if isinstance(header, e2sm_la_pb2.LaIndicationHeader) else decode_header(header)
    msg = _parse(e2sm_la_pb2.LaIndicationMessage, message, "LA indication message")
    if max_entries is not None:
        longest = max(len(msg.cqi_ue), len(msg.harq_ue), len(msg.ue))
        if longest > max_entries:
            raise CodecError(e2ap_pb2.CAUSE_OVERLOAD, f"indication lists {longest} UE entries in one "
                                                      f"section; this receiver takes at most {max_entries}")
    slot = head.slot
    cqi = {"cqi_ue": _column(msg.cqi_ue), "cqi_value": _column(msg.cqi_value),
           "cqi_age": _column(msg.cqi_age_slots)}
    _check_section("CQI", cqi, {"cqi_value": (0, MAX_CQI)})
    harq = {"harq_ue": _column(msg.harq_ue), "harq_ack": _column(msg.harq_ack, bool),
            "harq_mcs": _column(msg.harq_mcs), "harq_tbs": _column(msg.harq_tbs),
            "harq_tx": _column(msg.harq_tx), "harq_process": _column(msg.harq_process)}
    # Under TDD one uplink slot acknowledges several of a UE's PDSCHs (TS 38.213 §9.1 HARQ-ACK
    # codebook): a UE may appear once per HARQ process.
    _check_section("HARQ", harq, {"harq_mcs": (0, MAX_MCS_INDEX), "harq_tx": (1, MAX_HARQ_TX),
                                  "harq_process": (0, MAX_HARQ_PROCESS)}, per="harq_process")
    decide = {"ue": _column(msg.ue), "prbs": _column(msg.prbs), "layers": _column(msg.layers),
              "buffer_bytes": _column(msg.buffer_bytes, name="buffer_bytes")}
    _check_section("decision", decide, {"prbs": (1, MAX_PRBS), "layers": (1, MAX_LAYERS)})
    fields = {"slot": slot, "mcs_table": head.mcs_table, "cqi_table": head.cqi_table,
              "cqi_ue": cqi["cqi_ue"], "cqi_value": cqi["cqi_value"],
              "cqi_slot": slot - cqi.pop("cqi_age"), **harq, **decide}
    return head, fields


def encode_control(slot: int, indication_sequence_number: int, ue, mcs) -> tuple[bytes, bytes]:
    """(header, message) bytes of the LA control: MCS per UE for `slot`."""
    header = e2sm_la_pb2.LaControlHeader(slot=slot, indication_sequence_number=indication_sequence_number)
    message = e2sm_la_pb2.LaControlMessage(ue=np.asarray(ue).tolist(), mcs=np.asarray(mcs).tolist())
    return header.SerializeToString(), message.SerializeToString()


def decode_control(control: e2ap_pb2.RICControlRequest) -> ControlDecision:
    """Parse the LA payload of a RIC Control (raises CodecError on a malformed one)."""
    head = _parse(e2sm_la_pb2.LaControlHeader, control.header, "LA control header")
    msg = _parse(e2sm_la_pb2.LaControlMessage, control.message, "LA control message")
    ue, mcs = _column(msg.ue), _column(msg.mcs)
    if ue.size != mcs.size:
        raise _invalid(f"control has {ue.size} UEs but {mcs.size} MCS values")
    return ControlDecision(head.slot, head.indication_sequence_number, ue, mcs)


# ---- near-RT loop: model controls (the E2 node as inference host) ----
MAX_MODEL_VERSION_CHARS = 128


@dataclass
class ModelControl:
    """One model command of the near-RT loop (`e2sm_la.proto`, ModelCommand); `onnx`, `card_json`
    and `activate` are set for DEPLOY only."""

    command: int
    model_version: str
    onnx: bytes = b""
    card_json: str = ""
    activate: bool = False


def encode_model_control(command: int, model_version: str, onnx: bytes = b"", card_json: str = "",
                         activate: bool = False) -> tuple[bytes, bytes]:
    """(header, message) bytes of a model control; the message is empty except for DEPLOY."""
    header = e2sm_la_pb2.LaModelControlHeader(command=command, model_version=model_version)
    message = e2sm_la_pb2.LaModelDeploy(onnx=onnx, card_json=card_json, activate=activate) \
        if command == e2sm_la_pb2.MODEL_COMMAND_DEPLOY else e2sm_la_pb2.LaModelDeploy()
    return header.SerializeToString(), message.SerializeToString()


def decode_model_control(control: e2ap_pb2.RICControlRequest) -> ModelControl:
    """Parse a model control (raises CodecError: malformed, unknown command, DEPLOY without a model)."""
    head = _parse(e2sm_la_pb2.LaModelControlHeader, control.header, "model control header")
    msg = _parse(e2sm_la_pb2.LaModelDeploy, control.message, "model control message")
    if head.command not in e2sm_la_pb2.ModelCommand.values() or head.command == e2sm_la_pb2.MODEL_COMMAND_UNSPECIFIED:
        raise _invalid(f"unknown model command {head.command}")
    if not head.model_version or len(head.model_version) > MAX_MODEL_VERSION_CHARS or \
            not head.model_version.isprintable():
        raise _invalid(f"model_version must be 1..{MAX_MODEL_VERSION_CHARS} printable characters")
    deploy = head.command == e2sm_la_pb2.MODEL_COMMAND_DEPLOY
    if deploy and (not msg.onnx or not msg.card_json):
        raise _invalid("DEPLOY carries no ONNX model or no model card")
    return ModelControl(head.command, head.model_version, msg.onnx, msg.card_json, msg.activate) if deploy else \
        ModelControl(head.command, head.model_version)


def encode_model_status(active: str | None, candidate: str | None, previous: str | None) -> bytes:
    """The node's models after a command (RIC Control Acknowledge outcome); None = none (OLLA)."""
    return e2sm_la_pb2.LaModelStatus(active=active or "", candidate=candidate or "",
                                      previous=previous or "").SerializeToString()


def decode_model_status(outcome: bytes) -> e2sm_la_pb2.LaModelStatus:
    return _parse(e2sm_la_pb2.LaModelStatus, outcome, "model status")
