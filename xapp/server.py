"""The xApp process: the E2 stream server (asyncio TCP) and the REST API (uvicorn) on one loop.

- `serve_xapp(settings)`: async context manager, yields a `RunningXapp` with the bound ports.
- `XappThread(settings)`: the same in a background thread, for synchronous callers and tests
  (`stop()` ends it; start a new one on the same port to bring the xApp back).

The E2 server is an `asyncio.Protocol`: frames are decoded and answered inside `data_received`,
with no coroutine or task per message, which keeps the indication -> control path short. Every
connection has its own `E2Session`; a bad frame costs that connection an ErrorIndication (or,
for an oversized or truncated frame, the connection), never the process.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

import uvicorn

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto.framing import FrameDecoder, FrameError
from ranpd.xapp.config import XappSettings
from ranpd.xapp.handlers import E2Session
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.service import XappService, load_configured_model

log = logging.getLogger(__name__)


class E2Protocol(asyncio.Protocol):
    def __init__(self, service: XappService):
        self.service = service
        self.decoder = FrameDecoder(service.settings.max_frame_bytes)

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.session = E2Session(self.service, f"{peer[0]}:{peer[1]}" if peer else "?")
        self.session.transport = transport
        if len(self.service.sessions) >= self.service.settings.max_connections:
            transport.write(b"".join(self.session.error(
                e2.CAUSE_OVERLOAD, f"xApp at its limit of {self.service.settings.max_connections} connections")))
            transport.close()
            return
        self.service.sessions.add(self.session)
        self.service.metrics.connections.inc()
        log.info("E2 connection from %s", self.session.peer)

    def data_received(self, data: bytes) -> None:
        received_ns = time.perf_counter_ns()
        session, out = self.session, []
        try:
            items = self.decoder.feed(data)
        except FrameError as exc:            # oversized: nothing to resynchronise on
            self.transport.write(b"".join(session.error(exc.cause, exc.text)))
            self.transport.close()
            return
        for item in items:
            if isinstance(item, FrameError):
                out += session.error(item.cause, item.text)
                continue
            try:
                out += session.handle(item, received_ns)
            except Exception as exc:         # a bug must not take the connection down
                log.exception("E2 %s: internal error on %s", session.peer, item.WhichOneof("message"))
                out += session.error(e2.CAUSE_UNSPECIFIED, f"internal error: {exc!r}", item.transaction_id)
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session in self.service.sessions:
            self.service.sessions.discard(self.session)
            self.service.metrics.connections.dec()
        if self.decoder.pending:
            self.service.metrics.error("received", e2.CAUSE_MALFORMED_MESSAGE)
            log.warning("E2 %s closed inside a frame (%d bytes pending): truncated",
                        self.session.peer, self.decoder.pending)
        log.info("E2 connection from %s (%s) closed", self.session.peer, self.session.node_id)


@dataclass
class RunningXapp:
    service: XappService
    e2_port: int
    http_port: int
    _http_task: asyncio.Task | None = None

    async def stopped(self) -> None:
        """Wait until the REST server stops (uvicorn handles SIGINT/SIGTERM), or forever."""
        if self._http_task is None:
            await asyncio.Event().wait()
        await asyncio.shield(self._http_task)


@contextlib.asynccontextmanager
async def serve_xapp(settings: XappSettings | None = None, model: OnnxPolicyModel | None = None,
                     http: bool = True):
    """Run the E2 server (and the REST API unless `http=False`) until the block exits.

    The model is `model` if given, else the one the settings name (see load_configured_model).
    """
    from ranpd.xapp.api import create_app   # FastAPI import only when serving REST

    settings = settings or XappSettings()
    service = XappService(settings, model if model is not None else load_configured_model(settings))
    loop = asyncio.get_running_loop()
    e2_server = await loop.create_server(lambda: E2Protocol(service), settings.host, settings.e2_port)
    service.e2_listening = True
    e2_port = e2_server.sockets[0].getsockname()[1]
    http_server, http_task, http_port = None, None, 0
    try:
        if http:
            config = uvicorn.Config(create_app(service), host=settings.host, port=settings.http_port,
                                    log_level=settings.log_level, access_log=False, lifespan="off")
            http_server = uvicorn.Server(config)
            http_task = asyncio.create_task(http_server.serve())
            while not http_server.started:
                if http_task.done():        # e.g. port in use: uvicorn logs it and exits
                    raise OSError(f"REST server failed to start on {settings.host}:{settings.http_port}")
                await asyncio.sleep(0.01)
            http_port = http_server.servers[0].sockets[0].getsockname()[1]
        log.info("xApp serving E2 on %s:%d, REST on %s:%s, model %s", settings.host, e2_port,
                 settings.host, http_port or "-", service.model.version if service.model else "none")
        yield RunningXapp(service, e2_port, http_port, http_task)
    finally:
        service.e2_listening = False
        e2_server.close()
        for session in list(service.sessions):   # nodes see the xApp go away and fall back
            session.transport.close()
        if http_server is not None:
            http_server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await http_task
        await e2_server.wait_closed()


class XappThread:
    """`serve_xapp` in a background thread with its own event loop."""

    def __init__(self, settings: XappSettings | None = None, model: OnnxPolicyModel | None = None,
                 http: bool = True):
        self.settings, self.model, self.http = settings, model, http
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xapp", daemon=True)

    def _run(self) -> None:
        async def main():
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with serve_xapp(self.settings, self.model, self.http) as running:
                self.running = running
                self._ready.set()
                await self._stop.wait()
        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def start(self, timeout: float = 10.0) -> RunningXapp:
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
