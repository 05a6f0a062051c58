"""Fuzzing the E2 codecs and handlers: hostile bytes and structure-aware envelopes, in process.

    python3 -m ranpd.xapp.fuzz --frames 1000000 --envelopes 100000     (or: ranpd bench fuzz ...)

Two generators drive one `Harness` (an `E2Session` of a real `XappService` with a model):

- frames: a byte stream of valid frames with flipped, dropped or inserted bytes, random
  lengths and random payloads, cut at random points, fed through `FrameDecoder` like a socket's
  reads (a fatal frame ends the "connection": a fresh session is set up);
- envelopes: every E2AP message type with fields drawn from boundary values (0, 2^32-1, 2^63,
  2^64-1, NaN, infinities, negative, newlines, mismatched column lengths, repeated UEs), mostly
  LA and KPM indications on the live subscription, so the deep paths run.

The generators read their choices from a `Source`: `RandomSource` (numpy) here, a hypothesis
`data.draw` adapter in tests/test_xapp_fuzz.py, so hypothesis shrinks the same structures.

Checked on every input: no exception escapes the handler (a crash), no log record carries a
traceback, every reply parses, and every ErrorIndication has a specific cause (not
UNSPECIFIED). The summary counts inputs, crashes, tracebacks and the causes answered.
"""
from __future__ import annotations

import collections
import itertools
import json
import logging
import math
import random
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto import e2sm_kpm_pb2, e2sm_la_pb2, kpm, la_codec
from ranpd.proto.framing import FrameDecoder, FrameError, encode_frame, wrap
from ranpd.xapp.config import XappSettings
from ranpd.xapp.handlers import E2Session
from ranpd.xapp.metrics import cause_name
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.service import XappService

U32, U64 = (1 << 32) - 1, (1 << 64) - 1
UINT_EDGES = (0, 1, 2, 15, 16, 255, 256, 4095, (1 << 31) - 1, U32)
UINT64_EDGES = UINT_EDGES + ((1 << 62) - 1, 1 << 62, (1 << 63) - 1, 1 << 63, U64)
FLOAT_EDGES = (0.0, 1.0, -1.0, -0.0, math.nan, math.inf, -math.inf, 1e308, 5e-324)
TEXT_EDGES = ("", "cell-1", "a\nCRITICAL forged", "\x00\x1b[31m", "é" * 200, "x" * 5000)
KINDS = tuple(f.name for f in e2.Envelope.DESCRIPTOR.oneofs_by_name["message"].fields)
SUBSCRIBED = e2.RicRequestId(requestor_id=7, instance_id=1)
KPM_SUBSCRIBED = e2.RicRequestId(requestor_id=7, instance_id=2)


class RandomSource:
    """Choices from seeded generators (Python's for scalars, numpy's for columns); a quarter of
    the integers are boundary values."""

    def __init__(self, seed: int = 0):
        self.random, self.rng = random.Random(seed), np.random.default_rng(seed)

    def int(self, low: int, high: int) -> int:
        if self.random.random() < 0.25:
            edges = [e for e in UINT64_EDGES if low <= e <= high]
            if edges:
                return self.random.choice(edges)
        return self.random.randint(low, high)

    def pick(self, options):
        return options[self.random.randrange(len(options))]

    def ints(self, high: int, length: int) -> list[int]:
        """`length` integers in [0, high] (vectorised: long columns stay cheap)."""
        out = self.rng.integers(0, high, length, endpoint=True, dtype=np.uint64)
        edges = self.rng.random(length) < 0.05
        out[edges] = high
        return out.tolist()

    def float(self) -> float:
        return self.pick(FLOAT_EDGES) if self.random.random() < 0.3 else self.random.gauss(0, 1e4)

    def text(self) -> str:
        if self.random.random() < 0.5:
            return self.pick(TEXT_EDGES)
        return "".join(chr(self.random.randint(1, 0x2FF)) for _ in range(self.random.randint(0, 40)))

    def bytes(self, max_len: int = 64) -> bytes:
        return self.random.randbytes(self.random.randint(0, max_len))


# -- structure-aware envelopes ---------------------------------------------------------------------
def _wild(src, valid, wild):
    """The valid choice, or one time in 16 the wild one: most inputs break one field at most."""
    return wild if src.int(0, 15) == 0 else valid


_SLOTS = itertools.count(1)       # valid indications move forward in slots, as a node's do


def la_payload(src) -> tuple[bytes, bytes]:
    """Two payloads in three are valid throughout; the third breaks each field one time in 8."""
    rate = src.pick((0, 0, 8))

    def w(valid, wild):
        return wild if rate and src.int(0, rate - 1) == 0 else valid

    n = src.int(0, 9)
    if n == 9:
        n = src.pick((64, 4097))
    ue_high = w(src.pick((40, 4000)), U32)          # a small id space repeats UEs
    header = e2sm_la_pb2.LaIndicationHeader(
        slot=w(next(_SLOTS), src.int(0, U64)),
        mcs_table=w(src.int(1, 2), src.int(0, 3)), cqi_table=w(src.int(1, 2), src.int(0, 3)),
        timestamp_ns=w(0, src.int(0, U64)), deadline_ns=w(0, src.int(0, U64)))

    def column(valid_low: int, valid_high: int, wild_high: int, length: int) -> list[int]:
        length = w(length, src.int(0, length + 2))      # mismatched column lengths
        if w(True, False):
            return [valid_low + v for v in src.ints(valid_high - valid_low, length)]
        return src.ints(wild_high, length)

    def unique(length: int) -> list[int]:
        return list(dict.fromkeys(src.ints(ue_high, length))) if src.int(0, 7) else src.ints(ue_high, length)

    k, h = src.int(0, n), src.int(0, n)
    cqi_ue, harq_ue, ue = unique(k), unique(h), unique(n)
    k, h, n = len(cqi_ue), len(harq_ue), len(ue)
    message = e2sm_la_pb2.LaIndicationMessage(
        cqi_ue=cqi_ue, cqi_value=column(0, 15, 20, k), cqi_age_slots=column(0, 64, U32, k),
        harq_ue=harq_ue, harq_ack=[bool(v) for v in column(0, 1, 1, h)], harq_mcs=column(0, 31, 40, h),
        harq_tbs=column(0, 10**6, U32, h), harq_tx=column(1, 8, 10, h), harq_process=column(0, 15, 20, h),
        ue=ue, prbs=column(1, 275, 300, n), layers=column(1, 8, 10, n), buffer_bytes=column(0, 1 << 40, U64, n))
    return header.SerializeToString(), message.SerializeToString()


def _records(src) -> list[e2sm_kpm_pb2.MeasurementRecord]:
    names = (*kpm.MEASUREMENTS, "DRB.Unknown", "\n")
    return [e2sm_kpm_pb2.MeasurementRecord(
        name=src.pick(names), values=[src.float() for _ in range(src.pick((0, 1, 1, 2, 16, kpm.MAX_BINS + 1)))])
        for _ in range(src.int(0, 4))]


def kpm_payload(src) -> tuple[bytes, bytes]:
    header = e2sm_kpm_pb2.KpmIndicationHeader(collection_start_ns=src.int(0, U64),
                                              granularity_period_ms=src.int(0, U32), sender_name=src.text())
    message = e2sm_kpm_pb2.KpmIndicationMessage(
        cell=_records(src), ues=[e2sm_kpm_pb2.UeMeasurements(ue_id=src.int(0, U32), records=_records(src))
                                 for _ in range(src.int(0, 3))])
    return header.SerializeToString(), message.SerializeToString()


def _request_id(src) -> e2.RicRequestId:
    return src.pick((SUBSCRIBED, KPM_SUBSCRIBED, SUBSCRIBED,
                     e2.RicRequestId(requestor_id=src.int(0, U32), instance_id=src.int(0, U32))))


def _function(src) -> int:
    return src.pick((la_codec.LA_RAN_FUNCTION.id, kpm.KPM_RAN_FUNCTION.id, src.int(0, U32)))


def message(src, kind: str):
    """One E2AP message of `kind` with drawn fields."""
    if kind == "e2_setup_request":
        known = (la_codec.LA_RAN_FUNCTION, kpm.KPM_RAN_FUNCTION)
        functions = [src.pick(known) if src.int(0, 2) else e2.RanFunction(
            id=src.int(0, U32), revision=src.int(0, U32), name=src.text(), oid=src.text())
            for _ in range(src.pick((0, 1, 2, 3, 300)))]
        return e2.E2SetupRequest(global_e2_node_id=src.text(), ran_functions=functions)
    if kind == "ric_subscription_request":
        trigger = src.pick((e2.EventTrigger(per_slot_insert=True), e2.EventTrigger(report_period_ms=src.int(0, U32)),
                            e2.EventTrigger()))
        actions = [e2.RicAction(action_id=src.int(0, 300), type=src.int(0, 5), definition=src.bytes(8))
                   for _ in range(src.pick((0, 1, 1, 2, 17)))]
        return e2.RICSubscriptionRequest(request_id=_request_id(src), ran_function_id=_function(src),
                                         event_trigger=trigger, actions=actions)
    if kind == "ric_subscription_delete_request":
        return e2.RICSubscriptionDeleteRequest(request_id=_request_id(src), ran_function_id=_function(src))
    if kind == "ric_indication":
        la = src.int(0, 3) != 0
        payload = _wild(src, la_payload if la else kpm_payload, lambda s: (s.bytes(), s.bytes()))(src)
        valid = (SUBSCRIBED, la_codec.LA_RAN_FUNCTION.id, e2.INDICATION_TYPE_INSERT) if la else \
            (KPM_SUBSCRIBED, kpm.KPM_RAN_FUNCTION.id, e2.INDICATION_TYPE_REPORT)
        return e2.RICIndication(request_id=_wild(src, valid[0], _request_id(src)),
                                ran_function_id=_wild(src, valid[1], _function(src)),
                                action_id=_wild(src, 1, src.int(0, U32)), sequence_number=src.int(0, U64),
                                type=_wild(src, valid[2], src.int(0, 4)),
                                header=payload[0], message=payload[1], call_process_id=src.bytes(16))
    if kind in ("ric_control_acknowledge", "ric_control_failure", "error_indication", "reset_request"):
        fields = {"ric_control_acknowledge": {"outcome": src.bytes()},
                  "ric_control_failure": {"cause": src.int(0, 100), "text": src.text()},
                  "error_indication": {"cause": src.int(0, 100), "text": src.text()},
                  "reset_request": {"cause": src.int(0, 100)}}[kind]
        return getattr(e2, type(getattr(e2.Envelope(), kind)).__name__)(**fields)
    return getattr(e2, type(getattr(e2.Envelope(), kind)).__name__)()     # a response: wrong direction


def envelope(src) -> e2.Envelope:
    """An envelope of any kind (LA/KPM indications most often), version and transaction id drawn."""
    kind = src.pick(("ric_indication",) * 8 + KINDS + ("",))
    out = wrap(message(src, kind), src.int(0, U64)) if kind else e2.Envelope(protocol_version=1)
    out.protocol_version = _wild(src, 1, src.int(0, (1 << 31) - 1))    # an enum: int32
    return out


# -- the harness ---------------------------------------------------------------------------------
class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.records.append(record)


class Harness:
    """A real service and session; inputs in, invariants checked, outcomes counted."""

    def __init__(self, model: OnnxPolicyModel, max_frame_bytes: int = 1 << 16):
        self.service = XappService(XappSettings(e2_port=0, http_port=0, max_frame_bytes=max_frame_bytes), model)
        self.max_frame_bytes = max_frame_bytes
        self.inputs = self.crashes = self.connections = 0
        self.causes: collections.Counter[str] = collections.Counter()
        self.replies: collections.Counter[str] = collections.Counter()
        self.examples: list[str] = []
        self._tracebacks = _Tracebacks()
        self._connect()

    @property
    def tracebacks(self) -> int:
        return len(self._tracebacks.records)

    def __enter__(self) -> "Harness":
        logging.getLogger().addHandler(self._tracebacks)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger().removeHandler(self._tracebacks)

    def _connect(self) -> None:
        self.session, self.decoder = E2Session(self.service, "fuzz"), FrameDecoder(self.max_frame_bytes)
        self.connections += 1

    def _ensure_subscribed(self) -> None:
        """Set up and subscribe LA and KPM again when an input reset the session."""
        session = self.session
        if session.node_id is None or (7, 1) not in session.subscriptions:
            session.handle(wrap(e2.E2SetupRequest(global_e2_node_id="fuzz-node", ran_functions=[
                la_codec.LA_RAN_FUNCTION, kpm.KPM_RAN_FUNCTION])), 0)
            for request, function, trigger, kind in (
                    (SUBSCRIBED, la_codec.LA_RAN_FUNCTION.id, e2.EventTrigger(per_slot_insert=True),
                     e2.ACTION_TYPE_INSERT),
                    (KPM_SUBSCRIBED, kpm.KPM_RAN_FUNCTION.id, e2.EventTrigger(report_period_ms=100),
                     e2.ACTION_TYPE_REPORT)):
                session.handle(wrap(e2.RICSubscriptionRequest(request_id=request, ran_function_id=function,
                                                              event_trigger=trigger,
                                                              actions=[e2.RicAction(action_id=1, type=kind)])), 0)
            session._last_slot = -1                  # let drawn slots be decided again

    def handle(self, envelope: e2.Envelope) -> list[bytes]:
        """One envelope through the session; a raised exception is a crash."""
        self.inputs += 1
        self._ensure_subscribed()
        try:
            frames = self.session.handle(envelope, time.perf_counter_ns())
        except Exception as exc:
            self.crashes += 1
            if len(self.examples) < 5:
                self.examples.append(f"{type(exc).__name__}: {exc} on {envelope!r:.400}")
            return []
        for frame in frames:
            reply = e2.Envelope.FromString(frame[4:])
            kind = reply.WhichOneof("message")
            self.replies[kind] += 1
            if kind == "error_indication":
                cause = reply.error_indication.cause
                self.causes[cause_name(cause)] += 1
                if cause == e2.CAUSE_UNSPECIFIED or not reply.error_indication.text:
                    self.crashes += 1
                    if len(self.examples) < 5:
                        self.examples.append(f"unspecific error {reply.error_indication.text!r} on {envelope!r:.400}")
        return frames

    def feed(self, data: bytes, last: bool = False) -> None:
        """Bytes as one socket read; a fatal frame closes the "connection" (a new one starts), as
        does a `last` read that leaves part of a frame (the peer closed mid-frame)."""
        self.decoder.push(data)
        while True:
            try:
                item = self.decoder.pop()
            except FrameError as exc:
                self.inputs += 1
                self.causes[cause_name(exc.cause)] += 1
                self._connect()
                return
            if item is None:
                break
            if isinstance(item, FrameError):
                self.inputs += 1
                self.causes[cause_name(item.cause)] += 1
            else:
                self.handle(item)
        if last and self.decoder.pending:
            self.inputs += 1
            self.causes["truncated"] += 1
            self._connect()

    def summary(self) -> dict:
        return {"inputs": self.inputs, "connections": self.connections, "crashes": self.crashes,
                "tracebacks": self.tracebacks, "error_causes": dict(self.causes.most_common()),
                "replies": dict(self.replies.most_common()), "examples": self.examples}


def mutate(src: RandomSource, frame: bytes) -> bytes:
    """A valid frame with a few bytes flipped, dropped or inserted, or a random length / payload."""
    rng, data = src.random, bytearray(frame)
    choice = rng.randrange(6)
    if choice == 0:
        return src.bytes(96)
    if choice == 1:
        return rng.randrange(1 << 17).to_bytes(4, "big") + src.bytes(256)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        if choice <= 3:
            data[at] = rng.randrange(256)
        elif choice == 4:
            del data[at:at + rng.randint(1, 3)]
        else:
            data[at:at] = src.bytes(4)
        if not data:
            break
    if choice >= 4 and len(data) >= 4 and rng.random() < 0.5:     # keep the length honest half the time
        data[:4] = (len(data) - 4).to_bytes(4, "big")
    return bytes(data)


def fuzz_frames(harness: Harness, src: RandomSource, n: int) -> None:
    """Each frame (mostly mutated) arrives in two reads split at a random byte; one that leaves
    half a frame behind ends its connection as a truncated stream would."""
    corpus = [encode_frame(envelope(src)) for _ in range(256)]
    for i in range(n):
        frame = mutate(src, corpus[i % len(corpus)]) if src.random.random() < 0.9 else corpus[i % len(corpus)]
        cut = src.random.randint(0, len(frame))
        harness.feed(frame[:cut])
        harness.feed(frame[cut:], last=True)


def fuzz_envelopes(harness: Harness, src, n: int) -> None:
    for _ in range(n):
        harness.handle(envelope(src))


def synthetic_model(tmp: Path) -> OnnxPolicyModel:
    from ranpd.xapp.synthetic import write_synthetic_model

    return OnnxPolicyModel.load(write_synthetic_model(tmp / "fuzz-student.onnx", hidden=(16, 16), seed=1))


@click.command("fuzz", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--frames", default=100_000, show_default=True, help="mutated / random frames (byte stream)")
@click.option("--envelopes", default=10_000, show_default=True, help="structure-aware envelopes")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def fuzz_command(frames: int, envelopes: int, seed: int, as_json: bool) -> None:
    """Fuzz the E2 codecs and handlers in process; exits 1 on any crash or traceback."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.ERROR)                   # the log limiter's lines are not the result
    logging.basicConfig(level=logging.INFO, handlers=[handler], format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as tmp, Harness(synthetic_model(Path(tmp))) as harness:
        src, out = RandomSource(seed), {}
        for name, run, n in (("frames", fuzz_frames, frames), ("envelopes", fuzz_envelopes, envelopes)):
            before, t0 = harness.summary(), time.perf_counter()
            run(harness, src, n)
            after = harness.summary()
            out[name] = {"generated": n, "handled": after["inputs"] - before["inputs"],
                         "crashes": after["crashes"] - before["crashes"],
                         "tracebacks": after["tracebacks"] - before["tracebacks"],
                         "seconds": round(time.perf_counter() - t0, 1)}
        out["total"] = harness.summary()
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        for name in ("frames", "envelopes"):
            click.echo(f"{name}: " + ", ".join(f"{k} {v}" for k, v in out[name].items()))
        click.echo("error causes answered: " + ", ".join(f"{k} {v}" for k, v in out["total"]["error_causes"].items()))
        click.echo("replies: " + ", ".join(f"{k} {v}" for k, v in out["total"]["replies"].items()))
        for example in out["total"]["examples"]:
            click.echo(f"  crash: {example}")
    if out["total"]["crashes"] or out["total"]["tracebacks"]:
        raise SystemExit(1)


if __name__ == "__main__":
    fuzz_command()
