"""The xApp process: the E2 stream server and the REST API, each on its own thread and event loop.

- `serve_xapp(settings)`: async context manager, yields a `RunningXapp` with the bound ports.
- `XappThread(settings)`: the same in a background thread, for synchronous callers and tests
  (`stop()` ends it; start a new one on the same port to bring the xApp back).

Why two loops (docs/xapp-isolation.md): a REST request (a model upload, a big decide body,
a slow client) never runs on the E2 loop, so it cannot hold up an E2 node's decision; the E2
loop does nothing but E2. Within the E2 loop no peer can starve the others:

- frames are handled one at a time, always from the connection that has used the least E2-loop
  CPU so far (a virtual-runtime order, as Linux CFS does for threads), and the sockets are read
  again every `SLICE_S`: a light node's indication waits for at most the one frame in progress,
  however much a heavy peer has queued;
- each set-up connection has a `WorkBudget` of loop CPU time; beyond it, it is not read until
  the budget refills (its queued indications go stale and are dropped unanswered); connections
  not yet set up share one budget (`setup_work_share`), however many there are, and nodes
  using the loop beyond half their budget share one more (`heavy_work_share`), however many
  heavy peers there are;
- a connection waits for E2 Setup in a bounded pre-setup pool (oldest dropped when full, and
  after `setup_timeout_s`), separate from the `max_connections` slots of set-up nodes;
- deployed (REST served too), E2 runs in two worker processes: the **front** (CPU nice
  `FRONT_NICE`) listens and serves every connection until its E2 Setup, then hands the socket
  (and the bytes it buffered) to the **main** worker, which serves set-up nodes only. A node that
  turns heavy in the main worker -- its own budget below half, more than its share (`work_share`)
  of the worker's CPU over a second whether or not others waited, frames that cost more than
  `HEAVY_FRAME_RATIO` times the other nodes' (median of their running means; one such frame holds
  every other node's decision up for its whole length), or answers it does not read (write
  high-water mark) -- is dropped with ErrorIndication OVERLOAD and its node id is sent to the
  front, which keeps serving it itself for `PENALTY_S` after it reconnects. So garbage, idle
  sockets, never-set-up peers and heavy nodes all run in a process the kernel preempts for the
  main worker: isolation by the OS scheduler, not only by the loop's budgets
  (docs/xapp-isolation.md has the picture);
- idle, read (a frame left half-sent) and write (a peer that does not read) timeouts drop a
  peer; reading pauses at the write high-water mark, so a peer that never reads costs at most
  `write_high_bytes`.

The E2 server is an `asyncio.Protocol` (no coroutine per message). A bad frame costs its
connection an ErrorIndication (or, for an oversized or truncated frame, the connection).
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing import reduction

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto.framing import FrameDecoder, FrameError, encode_frame, message_type
from ranpd.xapp.budgets import E2Limits, WorkBudget, wire
from ranpd.xapp.config import XappSettings
from ranpd.xapp.handlers import E2Session
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.service import XappService, load_configured_model, warm_up

log = logging.getLogger(__name__)
SWEEP_S = 0.1                   # how often timeouts are checked
SLICE_S = 0.0002                # frames handled between two reads of the sockets
VRUNTIME_SLACK_NS = 10_000_000  # CPU credit a connection keeps from being quiet (10 ms)
GIL_SWITCH_S = 0.0005           # E2 and REST threads hand the GIL over at least this often
ACCEPTS_PER_TURN = 4            # connections accepted per wake-up of the listener (asyncio's default: 100)
LISTEN_BACKLOG = 1024           # the kernel's queue of connections not yet accepted
HEAVY_HOLD_S = 1.0              # a node stays heavy this long after its own budget dipped below half
REST_NICE = 10                  # the REST thread's CPU priority below E2 (Linux per-thread nice)
FRONT_NICE = 10                 # the front E2 worker's CPU priority below the main one
PENALTY_S = 60.0                # a node moved for being heavy is served by the front this long
MAX_PENALTIES = 4096            # node ids the front remembers as heavy (oldest forgotten)
HANDOFF_MAX_BYTES = 64 << 10    # a connection with more buffered than this at E2 Setup stays in the front
HEAVY_FRAME_RATIO = 3.0         # main: frames this many times costlier than the other nodes' move a node
HEAVY_FRAME_MIN_S = 200e-6      # ... if they also cost at least this much CPU (a cheap node is never moved)
FRAME_COST_ALPHA = 0.1          # weight of the newest frame in a connection's running mean of frame CPU
FRAME_CHECK_EVERY = 16          # frames between two checks of a node's frame cost against the others'
SHARE_WINDOW_S = 1.0            # main: a node's CPU share is measured over windows this long
ROLES = ("single", "front", "main")


def _closed(session) -> bool:
    """The `admit` check of a session whose connection is gone."""
    return False


class E2Protocol(asyncio.Protocol):
    def __init__(self, server: "E2Server"):
        self.server, self.service = server, server.service
        self.limits = limits = server.service.limits
        self.decoder = FrameDecoder(self.service.settings.max_frame_bytes)
        self.budget = WorkBudget(limits.work_share, limits.work_burst_s)
        self._paused: set[str] = set()        # why reading is paused: backlog, budget, write
        # E2-loop CPU ns used (the scheduler's order). A new connection starts level with the
        # least-served one, as CFS places a new task: no credit, or a peer that reconnects
        # would be served ahead of every node for VRUNTIME_SLACK_NS of CPU on each reconnect.
        self.vruntime = server._min_vruntime
        self.heavy_until = 0.0                # monotonic time until which it draws on the heavy budget
        now = time.monotonic()
        self.frames, self.frame_cost = 0, 0.0     # frames handled, running mean of their CPU (s)
        self.window_start, self.window_cpu_ns = now, 0  # CPU used in the current share window
        self.queued = self.closed = False
        self.connected_at = self.last_rx = now
        self.partial_since: float | None = None
        self.write_paused_since: float | None = None

    # -- life cycle ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.session = E2Session(self.service, f"{peer[0]}:{peer[1]}" if peer else "?")
        self.session.transport = transport
        self.session.admit = lambda session: self.server.admit(self)
        high = self.limits.write_high_bytes
        transport.set_write_buffer_limits(high=high, low=high // 4)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.limits.socket_send_bytes)
        self.server.pending[self] = None
        if len(self.server.pending) > self.limits.max_pending_setups:
            oldest = next(iter(self.server.pending))
            oldest.drop("setup_pool_full")

    def drop(self, reason: str, flush: bool = False) -> None:
        """Close this connection now; unsent bytes are discarded unless `flush`."""
        if not self.closed:
            self.service.metrics.dropped.labels(reason).inc()
            self.service.log_limiter.log(logging.INFO, f"drop {reason}", "E2 %s (%s) dropped: %s",
                                         wire(self.session.node_id), self.session.peer, reason)
            self.closed = True
            self.transport.close() if flush else self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.forget(self)
        # The protocol, its session (the `admit` callback) and the transport refer to each other,
        # so a closed session would wait for a full garbage collection, holding its UE store
        # (arrays sized for `ue_capacity` UEs): with nodes reconnecting, dozens of dead stores piled
        # up between collections and the E2 worker's RSS stepped up. Release them now.
        session = self.session
        session.store, session.transport, session.admit = None, None, _closed
        if self.decoder.pending:
            self.service.metrics.error("received", e2.CAUSE_MALFORMED_MESSAGE)
            self.service.log_limiter.log(logging.WARNING, "truncated", "E2 %s closed inside a frame "
                                         "(%d bytes pending): truncated", self.session.peer, self.decoder.pending)
        log.debug("E2 connection from %s (%s) closed", self.session.peer, wire(self.session.node_id))

    # -- reading, fairly -----------------------------------------------------------------------
    def _pause(self, reason: str) -> None:
        if not self._paused and not self.closed:
            self.transport.pause_reading()
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        if reason in self._paused:
            self._paused.discard(reason)
            if not self._paused and not self.closed:
                self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self._received_ns = time.perf_counter_ns()
        self.decoder.push(data)
        if self.decoder.pending > self.limits.read_backlog_bytes and self.decoder.complete():
            self._pause("backlog")               # enough queued: the peer waits for its turn
        self.partial_since = None if self.decoder.complete() or not self.decoder.pending else \
            self.partial_since or self.last_rx
        self.server.ready(self)

    def turn(self) -> bool:
        """Handle one frame (called by the server's scheduler); True if another is waiting."""
        if self.closed:
            return False
        start = time.thread_time_ns()
        try:
            item = self.decoder.pop()
        except FrameError as exc:                # oversized: nothing to resynchronise on
            self.transport.write(b"".join(self.session.error(exc.cause, exc.text)))
            self.drop("oversized_frame", flush=True)
            return False
        if item is not None and not isinstance(item, FrameError) and self.server.hand_off(self, item):
            return False
        if item is not None:
            out = self.session.error(item.cause, item.text) if isinstance(item, FrameError) else self._handle(item)
            if out and not self.closed:
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        used = time.thread_time_ns() - start     # CPU, not wall time: load on the machine is not work
        self.vruntime += used
        if item is not None:
            self.frames += 1
            self.frame_cost += (used * 1e-9 - self.frame_cost) * (1.0 if self.frames == 1 else FRAME_COST_ALPHA)
            self.window_cpu_ns += used
            if self.frames % FRAME_CHECK_EVERY == 0 and (self.server.heavy_frames(self) or self._over_share()):
                self.server.move(self)
                return False
        more = self.decoder.complete()
        if not more:
            self._resume("backlog")
            self.partial_since = (self.partial_since or time.monotonic()) if self.decoder.pending else None
        wait = self._charge(used * 1e-9) if self.server.contended() else 0.0
        if wait > 0:
            self.service.metrics.throttled.inc()
            self._pause("budget")
            asyncio.get_running_loop().call_later(wait, self._refilled)
            return False
        return more

    def _over_share(self) -> bool:
        """Main: whether this set-up node used more than `work_share` of the worker's CPU over the
        last SHARE_WINDOW_S (checked as each window closes)."""
        now = time.monotonic()
        elapsed = now - self.window_start
        if self.server.role != "main" or elapsed < SHARE_WINDOW_S:
            return False
        share = self.window_cpu_ns * 1e-9 / elapsed
        self.window_start, self.window_cpu_ns = now, 0
        return self.session.node_id is not None and share > self.limits.work_share

    def _charge(self, seconds: float) -> float:
        """Charge loop CPU to the budgets; how long to pause (0: none). Work-conserving: called only
        while another connection has a frame waiting, so a node alone on the loop is never throttled.

        - A connection not (yet) set up draws on the pre-setup pool's one budget: unidentified
          peers, however many sockets they open, share `setup_work_share` of the loop.
        - A set-up node draws on its own budget (`work_share`). While that is below half its burst
          (it has been using the loop faster than its share refills), it is heavy and also draws
          on one budget that all heavy nodes share (`heavy_work_share`), and stays heavy for
        `HEAVY_HOLD_S` after its last dip below half: two or three heavy peers
          together get what one may, not two or three times that, so the worker keeps idle time
          and a light node's frame finds it ready. A light node never draws on the shared budget,
          so heavy peers cannot pause it."""
        if self.session.node_id is None:
            return self.server.setup_budget.spend(seconds)
        budget = self.budget
        wait = budget.spend(seconds)
        now = time.monotonic()
        if budget.tokens < budget.burst / 2:
            if self.server.role == "main":
                self.server.move(self)                # to the front, at lower CPU priority
                return 0.0
            self.heavy_until = now + HEAVY_HOLD_S     # sticky: throttled, its own bucket refills
        if now < self.heavy_until:
            wait = max(wait, self.server.heavy_budget.spend(seconds))
        return wait

    def _refilled(self) -> None:
        self._resume("budget")
        self.server.ready(self)

    def _handle(self, envelope: e2.Envelope) -> list[bytes]:
        session = self.session
        try:
            return session.handle(envelope, self._received_ns)
        except Exception as exc:             # a bug must not take the connection down
            self.service.metrics.internal_errors.inc()
            self.service.log_limiter.log(logging.ERROR, "internal error", "E2 %s: internal error on %s: %s",
                                         session.peer, envelope.WhichOneof("message"), wire(repr(exc), 300))
            return session.error(e2.CAUSE_UNSPECIFIED, "internal error", envelope.transaction_id)

    # -- writing -------------------------------------------------------------------------------
    def pause_writing(self) -> None:
        self.write_paused_since = time.monotonic()
        self._pause("write")
        if self.server.role == "main" and self.session.node_id is not None:
            asyncio.get_running_loop().call_soon(self.server.move, self, False)   # not inside write()

    def resume_writing(self) -> None:
        self.write_paused_since = None
        self._resume("write")


class E2Server:
    """The E2 server on its own thread and event loop; `start()` returns the bound port.

    `role`: "single" listens and serves everything; "front" listens, serves connections until
    their E2 Setup and penalised nodes, and hands the rest to "main" through `channel` (a
    multiprocessing Connection to the other worker); "main" only serves what it is handed."""

    def __init__(self, service: XappService, role: str = "single", channel=None):
        if role not in ROLES or (role != "single") != (channel is not None):
            raise ValueError(f"role {role!r} with{'' if channel is not None else 'out'} a channel")
        self.role, self.channel = role, channel
        self.penalties: OrderedDict[str, float] = OrderedDict()     # front: node id -> until (monotonic)
        self.service, self.limits = service, service.limits
        self.pending: OrderedDict[E2Protocol, None] = OrderedDict()   # waiting for E2 Setup
        self.nodes: set[E2Protocol] = set()                           # set up
        self.setup_budget = WorkBudget(self.limits.setup_work_share, self.limits.work_burst_s)
        self.heavy_budget = WorkBudget(self.limits.heavy_work_share, self.limits.work_burst_s)
        self._heap: list = []                                          # (vruntime, seq, protocol)
        self._seq = itertools.count()
        self._min_vruntime = 0
        self._scheduled = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xapp-e2", daemon=True)
        self.port = 0

    # -- scheduling (called on the E2 loop) ----------------------------------------------------
    def contended(self) -> bool:
        """Whether another connection has a frame waiting for the loop."""
        return bool(self._heap)

    def ready(self, protocol: E2Protocol) -> None:
        """Queue a connection that has a frame to handle, ordered by the CPU it has used."""
        if protocol.queued or protocol.closed or "budget" in protocol._paused or not protocol.decoder.pending:
            return
        protocol.vruntime = max(protocol.vruntime, self._min_vruntime - VRUNTIME_SLACK_NS)
        heapq.heappush(self._heap, (protocol.vruntime, next(self._seq), protocol))
        protocol.queued = True
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._serve_ready)

    def _serve_ready(self) -> None:
        """Handle frames, least-served connection first, for one slice; then let the loop read
        the sockets again, so a frame that just arrived from a light node is next."""
        self._scheduled = False
        end = time.perf_counter() + SLICE_S
        while self._heap and time.perf_counter() < end:
            vruntime, _, protocol = heapq.heappop(self._heap)
            protocol.queued = False
            self._min_vruntime = vruntime
            if protocol.turn():
                self.ready(protocol)
        if self._heap and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._serve_ready)

    # -- connection slots (called on the E2 loop) ----------------------------------------------
    def admit(self, protocol: E2Protocol) -> bool:
        """Move a connection from the pre-setup pool to a node slot, if one is free."""
        if len(self.nodes) >= self.service.settings.max_connections:
            return False
        self.pending.pop(protocol, None)
        self.nodes.add(protocol)
        self.service.sessions.add(protocol.session)
        self.service.metrics.connections.inc()
        return True

    # -- the two workers (front and main), called on the E2 loop -------------------------------
    def hand_off(self, protocol: E2Protocol, envelope: e2.Envelope) -> bool:
        """Front: pass a connection whose E2 Setup just arrived, with the setup and the bytes
        buffered after it, to the main worker (True), unless its node is penalised, it buffered
        more than HANDOFF_MAX_BYTES, or the main worker is gone (False: served here)."""
        if self.role != "front" or protocol.session.node_id is not None or \
                message_type(envelope) != "e2_setup_request":
            return False
        penalty = self.penalties.get(envelope.e2_setup_request.global_e2_node_id)
        if penalty is not None and penalty > time.monotonic():
            return False
        rest = protocol.decoder.take_rest()
        payload = encode_frame(envelope) + rest
        sock = protocol.transport.get_extra_info("socket")
        if len(payload) > HANDOFF_MAX_BYTES or sock is None:
            protocol.decoder.push(rest)
            return False
        try:
            reduction.send_handle(self.channel, sock.fileno(), 0)   # SCM_RIGHTS: the main worker's own fd
            self.channel.send_bytes(payload)
        except OSError as exc:
            log.error("E2 front: handing a connection to the main worker failed (%s): serving it here", exc)
            protocol.decoder.push(rest)
            return False
        protocol.closed = True
        protocol.transport.abort()               # closes this process's fd only
        return True

    def _take_handoffs(self) -> None:
        """Main: adopt the connections the front handed over and replay their buffered bytes."""
        try:
            while self.channel.poll():
                sock = socket.socket(fileno=reduction.recv_handle(self.channel))
                payload = self.channel.recv_bytes()
                sock.setblocking(False)
                adopted = self._loop.create_task(self._loop.connect_accepted_socket(lambda: E2Protocol(self), sock))
                adopted.add_done_callback(functools.partial(self._adopted, payload))
        except (EOFError, OSError):
            self._loop.remove_reader(self.channel.fileno())      # the front is gone

    def _adopted(self, payload: bytes, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is not None:
            log.warning("E2 main: adopting a connection failed: %r", None if task.cancelled() else task.exception())
            return
        self.service.metrics.handed_off.inc()       # before its setup is answered
        task.result()[1].data_received(payload)

    def heavy_frames(self, protocol: E2Protocol) -> bool:
        """Main: whether a set-up node's frames cost more than HEAVY_FRAME_RATIO times the median of
        the other nodes' running means (and at least HEAVY_FRAME_MIN_S)."""
        if self.role != "main" or protocol.session.node_id is None or protocol.frame_cost < HEAVY_FRAME_MIN_S:
            return False
        others = sorted(p.frame_cost for p in self.nodes if p is not protocol and p.frames >= FRAME_CHECK_EVERY)
        return bool(others) and protocol.frame_cost > HEAVY_FRAME_RATIO * others[len(others) // 2]

    def move(self, protocol: E2Protocol, flush: bool = True) -> None:
        """Main: drop a heavy node (ErrorIndication OVERLOAD, unless it does not read) and tell the
        front to serve it from its next connection."""
        if protocol.closed:
            return
        if flush:
            protocol.transport.write(b"".join(protocol.session.error(
                e2.CAUSE_OVERLOAD, "this node uses more of the E2 worker than the others: it is served at "
                f"lower priority after it reconnects (for {PENALTY_S:.0f} s)")))
        with contextlib.suppress(OSError):
            self.channel.send_bytes(protocol.session.node_id.encode())
        protocol.drop("moved_heavy", flush=flush)

    def _take_penalties(self) -> None:
        """Front: remember the node ids the main worker moved."""
        try:
            while self.channel.poll():
                node = self.channel.recv_bytes().decode(errors="replace")
                self.penalties[node] = time.monotonic() + PENALTY_S
                self.penalties.move_to_end(node)
                while len(self.penalties) > MAX_PENALTIES:
                    self.penalties.popitem(last=False)
        except (EOFError, OSError):
            self._loop.remove_reader(self.channel.fileno())      # the main worker is gone

    def forget(self, protocol: E2Protocol) -> None:
        self.pending.pop(protocol, None)
        if protocol in self.nodes:
            self.nodes.discard(protocol)
            self.service.sessions.discard(protocol.session)
            self.service.metrics.connections.dec()

    def _sweep(self) -> None:
        """Drop peers past a timeout: setup, idle, read (half a frame) and write (not reading)."""
        now, limits = time.monotonic(), self.limits
        for protocol in list(self.pending):
            if now - protocol.connected_at > limits.setup_timeout_s:
                protocol.drop("setup_timeout")
        for protocol in list(self.nodes) + list(self.pending):
            if protocol.closed:
                continue
            if protocol in self.nodes and now - protocol.last_rx > limits.idle_timeout_s:
                protocol.drop("idle_timeout")
            elif protocol.partial_since is not None and now - protocol.partial_since > limits.read_timeout_s:
                protocol.drop("read_timeout")
            elif (protocol.write_paused_since is not None
                  and now - protocol.write_paused_since > limits.write_stall_s):
                protocol.drop("write_stall")
        self._loop.call_later(SWEEP_S, self._sweep)

    # -- thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            settings = self.service.settings
            warm_up()                          # before listening: the first indication finds them compiled
            server = None
            if self.role == "main":
                self._loop.add_reader(self.channel.fileno(), self._take_handoffs)
            else:
                # asyncio accepts up to `backlog` connections per wake-up of the listener and sets
                # each up (transport, E2Protocol, E2Session) before the next frame is handled: with
                # the default of 100, a connection flood stalled the loop for tens of ms at a time.
                # So the server accepts ACCEPTS_PER_TURN per wake-up; the kernel queue keeps its length.
                server = await self._loop.create_server(lambda: E2Protocol(self), settings.host, settings.e2_port,
                                                        backlog=ACCEPTS_PER_TURN)
                for listening in server.sockets:
                    with socket.fromfd(listening.fileno(), listening.family, listening.type) as dup:
                        dup.listen(LISTEN_BACKLOG)
                self.port = server.sockets[0].getsockname()[1]
                if self.role == "front":
                    self._loop.add_reader(self.channel.fileno(), self._take_penalties)
            self.service.e2_listening = True
            self._loop.call_later(SWEEP_S, self._sweep)
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                self.service.e2_listening = False
                if server is not None:
                    server.close()
                for protocol in list(self.nodes) + list(self.pending):   # nodes fall back at once
                    protocol.transport.close()
                if server is not None:
                    await server.wait_closed()
        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def start(self, timeout: float = 10.0) -> int:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("E2 server did not start")
        if self._error is not None:
            raise self._error
        return self.port

    def stop(self) -> None:
        if self._thread.is_alive() and self._ready.is_set():
            with contextlib.suppress(RuntimeError):          # loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)


def _e2_worker(settings: XappSettings, limits: E2Limits, onnx_bytes: bytes | None, card_json: str | None,
               conn, role: str, channel) -> None:
    """Main of an E2 worker process (`role` front or main, `channel` to the other worker): serve E2;
    the parent sends models and BLER targets and asks for metrics.
    Ctrl-C and SIGTERM sent to the process group are the parent's to handle: it stops this worker
    through the pipe (and a parent that dies closes the pipe, which stops it too)."""
    from prometheus_client import disable_created_metrics, generate_latest

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    from ranpd.xapp.model_card import ModelCard

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    disable_created_metrics()

    def model(onnx: bytes | None, card: str | None) -> OnnxPolicyModel | None:
        return None if onnx is None else OnnxPolicyModel(onnx, ModelCard.model_validate_json(card))

    if role == "front":
        os.nice(FRONT_NICE)
    service = XappService(settings, model(onnx_bytes, card_json), limits)
    server = E2Server(service, role, channel)
    try:
        conn.send(("ready", server.start()))
    except BaseException as exc:
        conn.send(("error", repr(exc)))
        return
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
    try:
        while (message := conn.recv())[0] != "stop":
            if message[0] == "install":
                service.install(model(*message[1:]))
            elif message[0] == "bler_target":
                service.set_bler_target(*message[1:])
            elif message[0] == "metrics":
                conn.send(generate_latest(service.metrics.registry))
    except (EOFError, OSError):             # the parent is gone
        pass
    finally:
        server.stop()


class E2Process:
    """One E2 worker in its own process (spawned), so that no REST work, however heavy, shares a
    CPU or the GIL with E2 decisions: the front or the main worker (`E2Server` roles), `channel`
    its end of their pipe. It gets the serving model at start and every model installed later
    (`XappService.install` calls `install`), and every BLER target set over REST
    (`XappService.set_bler_target`); the parent's /metrics includes its metrics (fetched per
    scrape). `E2Workers` starts the pair."""

    def __init__(self, service: XappService, role: str, channel):
        import multiprocessing as mp

        self.service = service
        context = mp.get_context("spawn")
        self._conn, child = context.Pipe()
        model = service.model
        self._process = context.Process(
            target=_e2_worker, name=f"xapp-e2-{role}", daemon=True,
            args=(service.settings, service.limits, model.onnx_bytes if model else None,
                  model.card.model_dump_json() if model else None, child, role, channel))
        self._lock = threading.Lock()

    def start(self, timeout: float = 60.0) -> int:
        self.launch()
        return self.ready(timeout)

    def launch(self) -> None:
        self._process.start()

    def ready(self, timeout: float = 60.0) -> int:
        """Wait for the worker to serve; its port (0 for the main worker)."""
        if not self._conn.poll(timeout):
            raise RuntimeError("E2 worker process did not start")
        status, value = self._conn.recv()
        if status != "ready":
            raise OSError(f"E2 server failed to start: {value}")
        self.service.replicas.append(self)
        self.service.metrics.remote.append(self.metrics)
        threading.Thread(target=self._watch, name="xapp-e2-watch", daemon=True).start()
        return value

    def _watch(self) -> None:
        self._process.join()
        self.service.e2_listening = False
        if self.metrics in self.service.metrics.remote:
            log.error("E2 worker process %s exited (code %s): E2 is down", self._process.name, self._process.exitcode)
            self.service.metrics.remote.remove(self.metrics)

    def _call(self, message: tuple, reply: bool = False):
        with self._lock:
            self._conn.send(message)
            return self._conn.recv() if reply else None

    def install(self, model: OnnxPolicyModel) -> None:
        self._call(("install", model.onnx_bytes, model.card.model_dump_json()))

    def set_bler_target(self, target: float | None, node_id: str | None) -> None:
        with contextlib.suppress(EOFError, OSError):      # worker gone: E2 is down, nothing to apply
            self._call(("bler_target", target, node_id))

    def metrics(self) -> bytes:
        try:
            return self._call(("metrics",), reply=True)
        except (EOFError, OSError):
            return b""

    def stop(self) -> None:
        if self.metrics in self.service.metrics.remote:
            self.service.metrics.remote.remove(self.metrics)
        if self in self.service.replicas:
            self.service.replicas.remove(self)
        with contextlib.suppress(EOFError, OSError):
            self._call(("stop",))
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()


class E2Workers:
    """The front and main E2 worker processes (`E2Server` roles) joined by one pipe; `start()`
    returns the front's port."""

    def __init__(self, service: XappService):
        import multiprocessing as mp

        self.service = service
        front_end, main_end = mp.get_context("spawn").Pipe()
        self.main = E2Process(service, "main", main_end)
        self.front = E2Process(service, "front", front_end)

    def start(self, timeout: float = 60.0) -> int:
        self.main.launch()                  # both start at once (a handoff waits in the pipe)
        self.front.launch()
        self.main.ready(timeout)
        port = self.front.ready(timeout)
        self.service.e2_listening = True
        return port

    def stop(self) -> None:
        self.front.stop()
        self.main.stop()


def _lower_priority(steps: int) -> None:
    """Lower the calling thread's CPU priority by `steps` nice levels (Linux: nice is per thread;
    threads and processes it starts inherit it). Raising it back needs privileges, so this only
    ever makes the thread yield to others."""
    with contextlib.suppress(AttributeError, OSError):       # not Linux, or not allowed
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + steps))


class RestServer:
    """uvicorn serving the FastAPI app on its own thread and event loop, at a lower CPU priority
    than E2 (`REST_NICE`): on a host with few cores, REST work (parsing bodies, refusing big ones,
    model validation, which runs in a child of this thread) yields the CPU to E2 decisions, which
    have a deadline every slot."""

    def __init__(self, service: XappService):
        import uvicorn

        from ranpd.xapp.api import create_app   # FastAPI import only when serving REST

        settings = service.settings
        self.address = f"{settings.host}:{settings.http_port}"
        self.server = uvicorn.Server(uvicorn.Config(
            create_app(service), host=settings.host, port=settings.http_port, log_level=settings.log_level,
            access_log=False, lifespan="off"))
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xapp-rest", daemon=True)

    def _run(self) -> None:
        _lower_priority(REST_NICE)
        try:
            asyncio.run(self.server.serve())     # not the main thread: uvicorn installs no signals
        except BaseException:                   # e.g. SystemExit when the port is taken
            pass
        finally:
            self._done.set()

    def start(self, timeout: float = 10.0) -> int:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._done.is_set() or time.monotonic() > deadline:
                raise OSError(f"REST server failed to start on {self.address}")
            time.sleep(0.01)
        return self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)


@dataclass
class RunningXapp:
    service: XappService
    e2_port: int
    http_port: int

    async def stopped(self) -> None:
        """Wait for SIGTERM (main thread only) or forever; SIGINT cancels the caller as usual."""
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


@contextlib.asynccontextmanager
async def serve_xapp(settings: XappSettings | None = None, model: OnnxPolicyModel | None = None,
                     http: bool = True, limits: E2Limits | None = None, e2_process: bool | None = None):
    """Run the E2 server and (unless `http=False`) the REST API until the block exits.

    E2 runs in its own processes (front and main workers) when REST is served too (`e2_process`,
    default: `http`): REST work then never shares a CPU or the GIL with E2. Without REST, or with
    `e2_process=False` (tests that look inside the sessions), E2 runs on a thread of this process. The model is
    `model` if given, else the one the settings name (see load_configured_model)."""
    settings = settings or XappSettings()
    service = XappService(settings, model if model is not None else load_configured_model(settings), limits)
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
    e2_server = E2Workers(service) if (http if e2_process is None else e2_process) else E2Server(service)
    rest = None
    try:
        e2_port = await asyncio.to_thread(e2_server.start)
        http_port = 0
        if http:
            rest = RestServer(service)
            http_port = await asyncio.to_thread(rest.start)
        log.info("xApp serving E2 on %s:%d, REST on %s:%s, model %s", settings.host, e2_port,
                 settings.host, http_port or "-", service.model.version if service.model else "none")
        yield RunningXapp(service, e2_port, http_port)
    finally:
        if rest is not None:
            await asyncio.to_thread(rest.stop)
        await asyncio.to_thread(e2_server.stop)


class XappThread:
    """`serve_xapp` in a background thread with its own event loop (E2 on a thread of this
    process unless `e2_process`, so tests can look at `running.service.sessions`)."""

    def __init__(self, settings: XappSettings | None = None, model: OnnxPolicyModel | None = None,
                 http: bool = True, limits: E2Limits | None = None, e2_process: bool = False):
        self.settings, self.model, self.http, self.limits = settings, model, http, limits
        self.e2_process = e2_process
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xapp", daemon=True)

    def _run(self) -> None:
        async def main():
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with serve_xapp(self.settings, self.model, self.http, self.limits, self.e2_process) as running:
                self.running = running
                self._ready.set()
                await self._stop.wait()
        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def start(self, timeout: float = 60.0) -> RunningXapp:
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"xApp did not start: {self._error!r}")
        return self.running

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> RunningXapp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
