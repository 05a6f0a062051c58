"""The E2 node's side of the stream: one blocking connection to the xApp (E2 Setup, the
subscriptions, framed envelopes). The one E2 client: the simulator's E2 node, `ranpd bench xapp`
and the tests all connect through it.

E2 Setup (O-RAN E2AP §8.3.1), then a RIC Subscription (§8.2.1) to RANPD-E2SM-LA -- per-slot
INSERT indications in the real-time loop, one POLICY action in the near-RT loop (the node runs
the model the xApp deploys, see e2sm_la.proto) -- and, when the node reports KPM and the xApp
accepts the function, one to periodic KPM REPORT indications (the near-RT loop needs them). Transport: one blocking TCP socket (TCP_NODELAY) with the stream framing
of `ranpd.proto.framing`; a per-slot request/response loop needs no event loop.
"""
from __future__ import annotations

import itertools
import socket
import time

from ranpd.proto import e2ap_pb2, kpm, la_codec
from ranpd.proto.framing import FrameDecoder, FrameError, encode_frame, message_type, wrap

LA_ACTION_ID = 1
REQUEST_ID = e2ap_pb2.RicRequestId(requestor_id=1, instance_id=1)
KPM_ACTION_ID = 1
KPM_REQUEST_ID = e2ap_pb2.RicRequestId(requestor_id=1, instance_id=2)
MODEL_ACTION_ID = 1
MODEL_REQUEST_ID = e2ap_pb2.RicRequestId(requestor_id=1, instance_id=3)
LOOPS = ("rt", "near-rt")


def setup_request(node_id: str, kpm_reports: bool = False) -> e2ap_pb2.E2SetupRequest:
    """E2 Setup (E2AP §8.3.1) offering the LA function, and KPM when the node reports it."""
    functions = [la_codec.LA_RAN_FUNCTION] + ([kpm.KPM_RAN_FUNCTION] if kpm_reports else [])
    return e2ap_pb2.E2SetupRequest(global_e2_node_id=node_id, ran_functions=functions)


def la_subscription_request() -> e2ap_pb2.RICSubscriptionRequest:
    """RIC Subscription (E2AP §8.2.1) to per-slot LA INSERT indications (REQUEST_ID, LA_ACTION_ID)."""
    return e2ap_pb2.RICSubscriptionRequest(
        request_id=REQUEST_ID, ran_function_id=la_codec.LA_RAN_FUNCTION.id,
        event_trigger=e2ap_pb2.EventTrigger(per_slot_insert=True),
        actions=[e2ap_pb2.RicAction(action_id=LA_ACTION_ID, type=e2ap_pb2.ACTION_TYPE_INSERT)])


def la_policy_subscription_request(report_period_ms: int) -> e2ap_pb2.RICSubscriptionRequest:
    """RIC Subscription (E2AP §8.2.1) of the near-RT loop: one LA POLICY action (MODEL_REQUEST_ID),
    on which the xApp sends model controls."""
    return e2ap_pb2.RICSubscriptionRequest(
        request_id=MODEL_REQUEST_ID, ran_function_id=la_codec.LA_RAN_FUNCTION.id,
        event_trigger=e2ap_pb2.EventTrigger(report_period_ms=report_period_ms),
        actions=[e2ap_pb2.RicAction(action_id=MODEL_ACTION_ID, type=e2ap_pb2.ACTION_TYPE_POLICY)])


class E2LinkError(ConnectionError):
    """The E2 connection is unusable (closed, reset, out of sync, or refused by the xApp)."""


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


class E2Link:
    """One E2 connection to the xApp over a blocking socket: setup, subscription, frames.

    Every failure surfaces as `E2LinkError`; the caller drops the link and reconnects later.
    """

    def __init__(self, host: str, port: int, node_id: str, timeout_s: float = 2.0, kpm_period_ms: int = 0,
                 loop: str = "rt"):
        if loop not in LOOPS:
            raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
        if loop == "near-rt" and not kpm_period_ms:
            raise ValueError("the near-RT loop needs KPM reports (kpm_period_ms > 0): the xApp supervises with them")
        self.node_id, self.timeout_s, self.kpm_period_ms, self.loop = node_id, timeout_s, kpm_period_ms, loop
        self.kpm_subscribed = False
        self._decoder = FrameDecoder()
        self._inbox: list = []
        self._transactions = itertools.count(1)
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise E2LinkError(f"cannot connect to the xApp at {host}:{port}: {exc}") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _request(self, message, response_type: str):
        """Send one E2AP request and wait for the response that echoes its transaction id."""
        transaction = next(self._transactions)
        self.send(wrap(message, transaction_id=transaction))
        deadline = time.monotonic_ns() + int(self.timeout_s * 1e9)
        while (envelope := self.receive(deadline)) is not None:
            kind = message_type(envelope)
            if kind == response_type and envelope.transaction_id == transaction:
                return getattr(envelope, kind)
            if kind == "error_indication":
                raise E2LinkError(f"xApp refused {message.DESCRIPTOR.name}: "
                                  f"{e2ap_pb2.Cause.Name(envelope.error_indication.cause)} "
                                  f"{envelope.error_indication.text}")
        raise E2LinkError(f"no {response_type} within {self.timeout_s} s")

    def _setup(self) -> None:
        """E2 Setup (E2AP §8.3.1); subscribe to KPM reports when the node reports them and the xApp
        accepted the function, then to LA (§8.2.1): per-slot inserts, or the near-RT POLICY action
        (last, so that the model the xApp deploys on it finds the KPM subscription in place)."""
        setup = self._request(setup_request(self.node_id, kpm_reports=bool(self.kpm_period_ms)), "e2_setup_response")
        if la_codec.LA_RAN_FUNCTION.id not in setup.accepted_ran_function_ids:
            raise E2LinkError(f"xApp did not accept RAN function {la_codec.LA_RAN_FUNCTION.name}")
        if self.kpm_period_ms and kpm.KPM_RAN_FUNCTION.id in setup.accepted_ran_function_ids:
            reports = self._request(e2ap_pb2.RICSubscriptionRequest(
                request_id=KPM_REQUEST_ID, ran_function_id=kpm.KPM_RAN_FUNCTION.id,
                event_trigger=e2ap_pb2.EventTrigger(report_period_ms=self.kpm_period_ms),
                actions=[e2ap_pb2.RicAction(action_id=KPM_ACTION_ID, type=e2ap_pb2.ACTION_TYPE_REPORT)]),
                "ric_subscription_response")
            self.kpm_subscribed = KPM_ACTION_ID in reports.admitted_action_ids
        if self.loop == "near-rt" and not self.kpm_subscribed:
            raise E2LinkError("the near-RT loop needs a KPM subscription and the xApp did not admit one")
        la, action = ((la_policy_subscription_request(self.kpm_period_ms), MODEL_ACTION_ID) if self.loop == "near-rt"
                      else (la_subscription_request(), LA_ACTION_ID))
        subscription = self._request(la, "ric_subscription_response")
        if action not in subscription.admitted_action_ids:
            raise E2LinkError(f"xApp did not admit the LA {'POLICY' if self.loop == 'near-rt' else 'INSERT'} "
                              f"action: {subscription.not_admitted}")

    def send(self, envelope: e2ap_pb2.Envelope) -> None:
        self.send_frames(encode_frame(envelope))

    def send_frames(self, data: bytes) -> None:
        """Send already framed envelopes (one or several, back to back)."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise E2LinkError(f"send failed: {exc}") from exc

    def receive(self, deadline_ns: int) -> e2ap_pb2.Envelope | None:
        """The next envelope, or None when none arrives before `deadline_ns` (monotonic clock)."""
        while not self._inbox:
            # Past the deadline the timeout is 0: take only what has already arrived.
            self.sock.settimeout(max(deadline_ns - time.monotonic_ns(), 0) / 1e9)
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                return None
            except OSError as exc:
                raise E2LinkError(f"receive failed: {exc}") from exc
            if not data:
                raise E2LinkError("the xApp closed the connection")
            try:
                self._inbox = [e for e in self._decoder.feed(data) if not isinstance(e, FrameError)]
            except FrameError as exc:       # fatal: the stream is out of sync
                raise E2LinkError(exc.text) from exc
        return self._inbox.pop(0)

    def close(self) -> None:
        self.sock.close()
