"""What one E2 peer may cost the xApp: timeouts, per-connection budgets, bounded labels and logs.

`E2Limits` holds the E2 side's limits (settings `RANPD_XAPP_E2_<FIELD>`, e.g.
RANPD_XAPP_E2_SETUP_TIMEOUT_S); the helpers below enforce the ones that are not plain numbers:

- `WorkBudget`: a token bucket of E2-loop CPU time per set-up connection (a peer that keeps the
  loop busy beyond its share is paused until its bucket refills; its waiting indications go
  stale); one shared by every connection that has not completed E2 Setup, and one shared by the
  heavy nodes (see `server.E2Protocol._charge`),
- `LabelBudget`: a bounded set of metric label values (overflow: "other"),
- `LogLimiter`: at most a few lines per kind of event per window, then one "suppressed" count,
- `wire`: a string from the wire, truncated and escaped for a log line (repr: no raw newlines).
"""
from __future__ import annotations

import logging
import time

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

OTHER = "other"


class E2Limits(BaseSettings):
    """Limits of the E2 server; defaults suit nodes on a LAN with 0.5-1 ms slots."""

    model_config = SettingsConfigDict(env_prefix="RANPD_XAPP_E2_", extra="ignore")

    setup_timeout_s: float = Field(2.0, gt=0, description="a connection must complete E2 Setup within this")
    max_pending_setups: int = Field(64, ge=1, description="connections waiting for E2 Setup; when full "
                                    "the oldest is dropped (set-up nodes have their own max_connections)")
    idle_timeout_s: float = Field(30.0, gt=0, description="a set-up node silent this long is dropped")
    read_timeout_s: float = Field(5.0, gt=0, description="a frame started must be complete within this")
    write_high_bytes: int = Field(256 << 10, ge=4096, description="unsent bytes at which the xApp stops "
                                  "reading a peer (it is not reading its answers)")
    socket_send_bytes: int = Field(64 << 10, ge=4096, description="kernel send buffer per connection "
                                   "(SO_SNDBUF), so unread answers cost bounded kernel memory too")
    write_stall_s: float = Field(2.0, gt=0, description="a peer paused this long for not reading is dropped")
    max_ues_per_indication: int = Field(512, ge=1, description="UE entries in each list of one E2 indication "
                                        "(with the REST cap max_indication_ues, the lower applies): bounds "
                                        "the E2-loop time one frame can take from the other nodes")
    max_subscriptions: int = Field(16, ge=1, description="subscriptions per connection")
    max_ran_functions: int = Field(256, ge=1, description="RAN functions in one E2 Setup (E2AP maxofRANfunctionID)")
    max_node_id_chars: int = Field(150, ge=1, description="longest global E2 node id accepted")
    work_share: float = Field(0.25, gt=0, le=1, description="fraction of the E2 loop's time one connection "
                              "may use over a second (token bucket)")
    work_burst_s: float = Field(0.02, gt=0, description="E2-loop time one connection may use in a burst")
    heavy_work_share: float = Field(0.25, gt=0, le=1, description="fraction of the E2 loop's time that all "
                                    "heavy nodes (those that have used over half their own burst) share "
                                    "while others wait: several heavy peers get what one may")
    setup_work_share: float = Field(0.05, gt=0, le=1, description="fraction of the E2 loop's time that all "
                                    "connections not yet set up share (one token bucket for the pre-setup "
                                    "pool: garbage, probes and connection floods, however many sockets)")
    read_backlog_bytes: int = Field(64 << 10, ge=4096, description="buffered bytes (with a whole frame) "
                                    "at which a connection is not read until its frames are handled")
    fallback_warn_ratio: float = Field(0.05, ge=0, le=1, description="KPM fallback share above which "
                                       "a node is counted and warned about")
    max_label_nodes: int = Field(64, ge=1, description="distinct node ids used as metric labels (rest: other)")
    log_lines_per_window: int = Field(5, ge=1, description="log lines per kind of event per window")
    log_window_s: float = Field(10.0, gt=0, description="window of the log rate limit")


class WorkBudget:
    """Token bucket of seconds of loop CPU time: `rate` seconds per second, at most `burst` saved."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens, self._t = burst, time.monotonic()

    def spend(self, seconds: float) -> float:
        """Charge `seconds`; returns how long to wait before the bucket is positive again (0: none)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self._t) * self.rate) - seconds
        self._t = now
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class LabelBudget:
    """Maps label values to themselves for the first `size` distinct ones, then to "other"."""

    def __init__(self, size: int):
        self.size, self._known = size, set()

    def __call__(self, value: str) -> str:
        if value in self._known:
            return value
        if len(self._known) < self.size:
            self._known.add(value)
            return value
        return OTHER


class LogLimiter:
    """Rate limit for repeated log lines, by key: `per_window` lines per `window_s`, then the rest
    are counted and reported in one line when the key's next window opens."""

    def __init__(self, logger: logging.Logger, per_window: int = 5, window_s: float = 10.0,
                 max_keys: int = 256):
        self.logger, self.per_window, self.window_s, self.max_keys = logger, per_window, window_s, max_keys
        self._windows: dict[str, list] = {}      # key -> [window start, lines, suppressed]

    def log(self, level: int, key: str, msg: str, *args) -> None:
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.window_s:
            if window is not None and window[2]:
                self.logger.log(level, "%d more %r lines suppressed in the last %.0f s", window[2], key,
                                now - window[0])
            if window is None and len(self._windows) >= self.max_keys:
                self._windows.clear()
            window = self._windows[key] = [now, 0, 0]
        if window[1] < self.per_window:
            window[1] += 1
            self.logger.log(level, msg, *args)
        else:
            window[2] += 1


def wire(text: str | bytes | None, limit: int = 120) -> str:
    """A peer-supplied string for a log line: truncated, quoted and escaped (repr), so newlines
    or control characters cannot forge log lines."""
    if text is None:
        return "None"
    return repr(text[:limit]) + ("..." if len(text) > limit else "")
