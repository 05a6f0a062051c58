"""Where independent jobs run: in this process, on a local process pool, or as Ray tasks.

Every parallel stage of `ranpd train` (the teachers, the distillation jobs, the closed-loop
evaluation runs) goes through one dispatch, `Backend.as_completed`: a job is a picklable
`(fn, args)`, each runs single-threaded (torch), and results come back as jobs finish, so the
caller can checkpoint each at once. A job's result depends on its arguments only, never on where it
ran: the backends give bit-identical results for the same seed.

Ray (the `ray` extra): a local Ray started here (`num_cpus=workers`, no dashboard, worker logs kept
off the console), or the cluster at `address` (`ray.init(address=...)`), one CPU per task. On exit
the local Ray stops and a cluster is left running; a Ray the caller started is left alone.
"""
from __future__ import annotations

import logging
import sys
import time
from concurrent import futures as cf
from typing import Any, Callable, Iterator

Job = tuple[Callable, tuple]
BACKENDS = ("local", "ray")


def timed_call(fn: Callable, args: tuple) -> tuple[Any, float]:
    """`fn(*args)` on one torch thread (where the job uses torch), with the seconds it took."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    t0 = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t0


class Backend:
    """Runs jobs here (`local`, workers 1), on `workers` processes (`local`), or as Ray tasks (`ray`,
    on a local Ray with `workers` CPUs, or on the cluster at `address`). Use as a context manager."""

    def __init__(self, kind: str = "local", workers: int = 1, address: str | None = None):
        if kind not in BACKENDS:
            raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
        self.kind, self.workers, self.address = kind, workers, address
        self._pool: cf.ProcessPoolExecutor | None = None
        self._ray = self._remote = None
        self._started_ray = False

    def __enter__(self) -> "Backend":
        if self.kind == "ray":
            self._start_ray()
        elif self.workers > 1:
            self._pool = cf.ProcessPoolExecutor(self.workers)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False

    def describe(self) -> str:
        if self.kind == "ray":
            return f"Ray tasks ({self.address or f'local Ray, {self.workers} CPU(s)'})"
        return f"{self.workers} process(es)"

    def _start_ray(self) -> None:
        import ray

        self._ray = ray
        if not ray.is_initialized():
            quiet = dict(log_to_driver=False, logging_level=logging.ERROR)
            if self.address:
                ray.init(address=self.address, **quiet)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, **quiet)
            self._started_ray = True
        self._remote = ray.remote(num_cpus=1)(timed_call)

    def as_completed(self, jobs: list[Job]) -> Iterator[tuple[int, Any, float]]:
        """(index in `jobs`, result, seconds) for every job, in the order they finish."""
        if self._remote is not None:
            refs = {self._remote.remote(fn, args): i for i, (fn, args) in enumerate(jobs)}
            pending = list(refs)
            while pending:
                done, pending = self._ray.wait(pending, num_returns=1)
                yield (refs[done[0]], *self._ray.get(done[0]))
        elif self._pool is not None and len(jobs) > 1:
            futures = {self._pool.submit(timed_call, fn, args): i for i, (fn, args) in enumerate(jobs)}
            for future in cf.as_completed(futures):
                yield (futures[future], *future.result())
        else:
            for i, (fn, args) in enumerate(jobs):
                yield (i, *timed_call(fn, args))

    def map(self, jobs: list[Job]) -> list[Any]:
        """Every job's result, in the order of `jobs`."""
        results: list[Any] = [None] * len(jobs)
        for i, result, _ in self.as_completed(jobs):
            results[i] = result
        return results
