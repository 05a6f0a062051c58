"""Fuzzing the E2 codecs and handlers with hypothesis: the structure-aware generator of
`ranpd.xapp.fuzz` draws its choices from hypothesis (which then shrinks a failure to a small
envelope), and raw bytes go through the frame decoder. Every input must be answered with a
parseable reply and a specific cause, never an exception or a logged traceback. The full-size
run is `python3 -m ranpd.xapp.fuzz --frames 1000000 --envelopes 100000`."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ranpd.proto import framing
from ranpd.xapp import fuzz
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.synthetic import write_synthetic_model

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


class DrawSource:
    """The `RandomSource` interface on hypothesis' `data.draw`."""

    def __init__(self, data):
        self.draw = data.draw

    def int(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def pick(self, options):
        return self.draw(st.sampled_from(options))

    def ints(self, high: int, length: int) -> list[int]:
        if length > 16:                     # long columns: drawn from a seed (hypothesis lists are slow)
            return fuzz.RandomSource(self.draw(st.integers(0, 2**32))).ints(high, length)
        return self.draw(st.lists(st.integers(0, high), min_size=length, max_size=length))

    def float(self) -> float:
        return self.draw(st.floats(allow_nan=True, allow_infinity=True))

    def text(self) -> str:
        return self.draw(st.text(max_size=200))

    def bytes(self, max_len: int = 64) -> bytes:
        return self.draw(st.binary(max_size=max_len))


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    path = write_synthetic_model(tmp_path_factory.mktemp("fuzz") / "student.onnx", hidden=(8,), seed=2)
    with fuzz.Harness(OnnxPolicyModel.load(path)) as h:
        yield h
    assert h.summary()["crashes"] == 0 and h.tracebacks == 0


@FUZZ
@given(data=st.data())
def test_structure_aware_envelopes_get_specific_answers(harness, data):
    before = harness.crashes, harness.tracebacks
    envelope = fuzz.envelope(DrawSource(data))
    harness.handle(envelope)
    assert (harness.crashes, harness.tracebacks) == before, harness.examples[-1:]


@FUZZ
@given(chunks=st.lists(st.binary(max_size=80), max_size=6), prefix=st.booleans())
def test_arbitrary_bytes_never_crash_the_decoder_or_session(harness, chunks, prefix):
    before = harness.crashes, harness.tracebacks
    valid = framing.encode_frame(framing.wrap(framing.e2ap_pb2.ResetRequest()))
    for i, chunk in enumerate(([valid] if prefix else []) + chunks):
        harness.feed(chunk, last=i == len(chunks))
    assert (harness.crashes, harness.tracebacks) == before, harness.examples[-1:]


def test_the_harness_sees_a_crash_and_an_unspecific_answer(harness):
    """The checks can fail: a handler that raises, or answers CAUSE_UNSPECIFIED, is counted."""
    from ranpd.proto import e2ap_pb2 as e2

    probe = fuzz.Harness(harness.service.model)
    probe._ensure_subscribed()
    reset = framing.wrap(e2.ResetRequest(), 1)
    probe.session._handlers["reset_request"] = lambda *a: 1 / 0
    probe.handle(reset)
    assert probe.crashes == 1
    probe.session._handlers["reset_request"] = lambda *a: probe.session.error(e2.CAUSE_UNSPECIFIED, "?")
    probe.handle(reset)
    assert probe.crashes == 2


def test_random_source_covers_every_message_type_and_valid_decisions(harness):
    """The seeded generator reaches the deep paths: decisions are made, KPM is parsed."""
    src, before = fuzz.RandomSource(7), dict(harness.replies)
    for _ in range(400):
        harness.handle(fuzz.envelope(src))
    new = {k: v - before.get(k, 0) for k, v in harness.replies.items()}
    assert new.get("ric_control_request", 0) > 20 and new.get("error_indication", 0) > 100
    assert harness.service.metrics.kpm_indications._value.get() > 0
