"""The policy model behind the xApp: an ONNX student scored with onnxruntime.

`OnnxPolicyModel` runs one thread and pre-binds its IO: for each batch size it keeps an input and
an output buffer bound to the session once (onnxruntime `io_binding`), so a call copies the
observations in, runs, and reads the scores, with no allocation. Batch sizes up to
`EXACT_BOUND_BATCH` (a cell's slot) are bound exactly; larger ones share the binding of the next
power of two (rows padded, their scores ignored), so a peer varying its batch size cannot grow
the cache (one binding per size up to 1024 held ~136 MiB). When the card gives the inputs'
training range (`obs_range`), the bound input is clipped into it and the clipped rows are counted
per feature (`clipped_rows`); `nack_price` is always kept in [PRICE_MIN, PRICE_MAX] (it is the operator
target's price, not a learned input). `validate_model` is the gate a
model passes before it serves: onnx checker, input/output shapes, the card's observation-spec
version, the sha256 of the bytes, a test inference and, for a model about to serve, the latency
budget (p99 CPU time of a 64-UE batch).
`validate_model_isolated` runs that gate in a child process under a timeout and an address-space
cap, for models that come over the network (a never-ending ONNX Loop or a huge allocation kills
the child, not the xApp). `ModelSlot` holds the serving model and swaps it atomically (one
reference assignment) only after validation succeeds.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from ranpd.simulator.guard import DEFAULT_MAX_TRANSMISSIONS, GuardConfig
from ranpd.simulator.observation import DEFAULT_BLER_TARGET, FEATURES, OBS_DIM, OBS_SPEC_VERSION, PRICE_MAX, PRICE_MIN
from ranpd.simulator.policies import ObservationPolicy, decide_mcs
from ranpd.simulator.tables import MAX_SUPPORTED_MCS_ACTIONS, MCS_TABLES
from ranpd.xapp.model_card import ModelCard, card_path_for

log = logging.getLogger(__name__)

PACKAGED_MODEL = Path(__file__).parent / "models" / "default.onnx"
EXACT_BOUND_BATCH = 64     # batches up to this size are bound exactly (no padded rows on a cell's path)
MAX_BOUND_BATCH = 1024     # batches up to this size keep bound buffers (above EXACT: per power of two)


class ModelError(ValueError):
    """A model that cannot serve (missing file, bad card, failed check); the text says why."""


def _session(onnx_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


@dataclass
class _Bound:
    binding: ort.IOBinding
    obs: np.ndarray
    scores: np.ndarray


class _InputRange:
    """The card's `obs_range` (with `nack_price` over the builder's whole range), as rows of preallocated
    buffers shared by every batch size (grown when a larger batch comes), so that checking a
    batch is three flat element-wise passes and a count, with no allocation of data."""

    def __init__(self, low, high):
        self.low, self.high = np.array(low, np.float32), np.array(high, np.float32)
        price = FEATURES.index("nack_price")
        self.low[price], self.high[price] = PRICE_MIN, PRICE_MAX
        self._rows = 0
        self._grow(64)

    def _grow(self, n: int) -> None:
        self._rows = rows = max(n, 2 * self._rows)
        self._low, self._high = np.tile(self.low, (rows, 1)), np.tile(self.high, (rows, 1))
        self._outside, self._above = np.empty((rows, OBS_DIM), bool), np.empty((rows, OBS_DIM), bool)

    def clip(self, obs: np.ndarray) -> np.ndarray | None:
        """Clip `obs` [n, OBS_DIM] in place; the clipped rows per feature, None if none was."""
        n = obs.shape[0]
        if n > self._rows:
            self._grow(n)
        low, high, outside, above = self._low[:n], self._high[:n], self._outside[:n], self._above[:n]
        np.less(obs, low, out=outside)
        np.greater(obs, high, out=above)
        np.logical_or(outside, above, out=outside)
        if not np.count_nonzero(outside):
            return None
        np.clip(obs, low, high, out=obs)
        return outside.sum(axis=0)


class OnnxPolicyModel:
    """An ONNX policy: `score(obs float32 [n, OBS_DIM]) -> float32 scores [n, n_actions]`.

    Use `OnnxPolicyModel.load(path)` (card beside the file, `X.card.json`) or
    `from_bytes(onnx_bytes, card)`; both validate (see `validate_model`). Wrap it as an offline
    policy with `model.policy(...)` (card's action table and MCS tables, optional guard).
    `decide_mcs` maps scores to MCS indices through the card's action table (`decide_mcs` of
    `ranpd.simulator.policies`, shared with offline evaluation), clipped to the MCS table in use.
    `clipped_rows[i]` counts the rows whose feature i was clipped into the training range
    (`clipped_by_feature()` by name).
    """

    def __init__(self, onnx_bytes: bytes, card: ModelCard):
        self.card = card
        self.onnx_bytes = onnx_bytes
        self.sha256 = hashlib.sha256(onnx_bytes).hexdigest()
        self.latency: BatchLatency | None = None     # set by validation
        self.session = _session(onnx_bytes)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.n_actions = len(card.action_table.mcs)
        self.action_mcs = np.asarray(card.action_table.mcs, np.int64)
        self._max_mcs = {number: table.size - 1 for number, table in MCS_TABLES.items()}
        self._bound: dict[int, _Bound] = {}
        self._range = None if card.obs_range is None else _InputRange(card.obs_range.low, card.obs_range.high)
        self.clipped_rows = np.zeros(OBS_DIM, np.int64)
        self._unreported = np.zeros(OBS_DIM, np.int64)     # clipped rows not yet taken as metrics

    @classmethod
    def load(cls, path: str | Path, card_path: str | Path | None = None,
             limits: ModelLimits | None = None) -> "OnnxPolicyModel":
        """A model file the operator names (validated in this process: it is trusted not to hang);
        with `limits`, it must also meet the latency budget."""
        path = Path(path)
        card_path = Path(card_path) if card_path else card_path_for(path)
        if not path.is_file():
            raise ModelError(f"model file {path} not found")
        if not card_path.is_file():
            raise ModelError(f"model card {card_path} not found (expected beside the model)")
        try:
            card = ModelCard.load(card_path)
        except ValueError as exc:
            raise ModelError(f"model card {card_path} is invalid: {exc}") from exc
        return validate_model(path.read_bytes(), card, limits)

    @classmethod
    def from_bytes(cls, onnx_bytes: bytes, card: ModelCard, limits: ModelLimits | None = None) -> "OnnxPolicyModel":
        return validate_model(onnx_bytes, card, limits)

    @property
    def mcs_tables(self) -> list[int] | None:
        """The MCS tables the model was trained for (its card's)."""
        return self.card.mcs_tables

    @property
    def version(self) -> str:
        """`name@sha256[:12]` (validation proved the card's sha256 is that of these bytes)."""
        return self.card.version

    def _bound_for(self, n: int) -> _Bound:
        """Buffers of at least n rows: exactly n up to EXACT_BOUND_BATCH, else the next power of
        two (cached up to MAX_BOUND_BATCH: at most 64 + 4 bindings, ~1 MiB), else n (not kept)."""
        if n > EXACT_BOUND_BATCH:
            padded = 1 << (n - 1).bit_length()
            n = padded if padded <= MAX_BOUND_BATCH else n
        bound = self._bound.get(n)
        if bound is None:
            obs = np.zeros((n, OBS_DIM), np.float32)
            scores = np.zeros((n, self.n_actions), np.float32)
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(self.input_name, ort.OrtValue.ortvalue_from_numpy(obs))
            binding.bind_ortvalue_output(self.output_name, ort.OrtValue.ortvalue_from_numpy(scores))
            bound = _Bound(binding, obs, scores)
            if n <= MAX_BOUND_BATCH:
                self._bound[n] = bound
        return bound

    def score(self, obs: np.ndarray) -> np.ndarray:
        """Scores [n, n_actions] for observations [n, OBS_DIM] (one call for the whole batch), their
        inputs clipped into the training range and counted (`clipped_rows`).

        The returned array is a view of a bound output buffer: copy it to keep it past the next
        call. Padded rows (a batch above EXACT_BOUND_BATCH) hold earlier inputs; a policy scores
        each row on its own, so their scores are computed and ignored.
        """
        return self._scores(obs, count_clipped=True)

    def probe_scores(self, obs: np.ndarray) -> np.ndarray:
        """`score` without counting clipped inputs: for `decide_mcs`'s copies of states already
        scored (and counted) at their own CQI."""
        return self._scores(obs, count_clipped=False)

    def _scores(self, obs: np.ndarray, count_clipped: bool) -> np.ndarray:
        n = obs.shape[0]
        bound = self._bound_for(n)
        rows = bound.obs[:n]
        np.copyto(rows, obs, casting="same_kind")
        clipped = None if self._range is None else self._range.clip(rows)
        if clipped is not None and count_clipped:
            self.clipped_rows += clipped
            self._unreported += clipped
        self.session.run_with_iobinding(bound.binding)
        return bound.scores[:n]

    def decide_mcs(self, obs: np.ndarray, mcs_table: int, cqi: np.ndarray) -> np.ndarray:
        """MCS index per row (`decide_mcs`): the action table entry of the argmax, clipped to the
        MCS table, non-decreasing in the CQI by construction; MCS 0 where the row's latest CQI
        (`cqi`, the builder's) is 0."""
        if obs.shape[0] == 0:
            return np.zeros(0, np.int64)
        return decide_mcs(self.score, obs, self.action_mcs, self._max_mcs[mcs_table], cqi, self.probe_scores)

    def clipped_by_feature(self) -> dict[str, int]:
        """Rows clipped into the training range so far, per feature name."""
        return dict(zip(FEATURES, self.clipped_rows.tolist()))

    def take_clipped(self) -> np.ndarray | None:
        """Clipped rows per feature since the last call (None when there were none): for metrics."""
        if not self._unreported.any():
            return None
        taken, self._unreported = self._unreported, np.zeros(OBS_DIM, np.int64)
        return taken

    def policy(self, name: str | None = None, bler_target: float | None = DEFAULT_BLER_TARGET,
               guard: GuardConfig | None = None,
               max_transmissions: int = DEFAULT_MAX_TRANSMISSIONS) -> ObservationPolicy:
        """This model as an offline policy: its card's action table and MCS tables (a scenario in
        another MCS table is refused), at `bler_target`, optionally behind the per-UE guard."""
        return ObservationPolicy(self.score, name or self.card.name, action_mcs=self.action_mcs,
                                 bler_target=bler_target, mcs_tables=self.card.mcs_tables, guard=guard,
                                 max_transmissions=max_transmissions, probe=self.probe_scores)


@dataclass(frozen=True)
class ModelLimits:
    """What a model must meet to serve (defaults: the XappSettings defaults)."""

    latency_budget_us: float = 500.0    # p99 CPU time of one `batch`-UE inference; one 30 kHz slot
    batch: int = 64
    timeout_s: float = 30.0             # isolated validation only
    memory_mb: int = 2048               # isolated validation only (RLIMIT_AS of the child)

    @classmethod
    def from_settings(cls, settings) -> "ModelLimits":
        return cls(latency_budget_us=settings.model_latency_budget_us, timeout_s=settings.model_check_timeout_s,
                   memory_mb=settings.model_check_memory_mb)


@dataclass(frozen=True)
class BatchLatency:
    """Inference time of one batch, measured at validation (microseconds)."""

    batch: int
    median_us: float
    p99_us: float


ROUND, ROUNDS, WARMUP = 100, 3, 10


def measure_latency(model: OnnxPolicyModel, limits: ModelLimits) -> BatchLatency:
    """p99 and median of `ROUND` calls on a `limits.batch`-UE batch, best of up to `ROUNDS` rounds.

    Time is this thread's CPU time (onnxruntime runs a one-thread session on the caller's
    thread): what the model costs, not how busy the host is, so other processes cannot make a
    fast model fail. A round stops as soon as two calls exceed the budget: its p99 is then over
    budget whatever the rest would take."""
    obs = np.random.default_rng(0).random((limits.batch, OBS_DIM), dtype=np.float32)
    for _ in range(WARMUP):
        model.score(obs)
    best = None
    for _ in range(ROUNDS):
        times, over = [], 0
        while len(times) < ROUND and over < 2:
            t0 = time.thread_time_ns()
            model.score(obs)
            times.append((time.thread_time_ns() - t0) * 1e-3)
            over += times[-1] > limits.latency_budget_us
        latency = BatchLatency(limits.batch, float(np.median(times)), float(np.percentile(times, 99)))
        if best is None or latency.p99_us < best.p99_us:
            best = latency
        if best.p99_us <= limits.latency_budget_us:
            break
    return best


def _check_card(onnx_bytes: bytes, card: ModelCard) -> None:
    """The checks that need no ONNX parsing: spec version, width, sha256, action table."""
    if card.obs_spec_version != OBS_SPEC_VERSION:
        raise ModelError(f"model card speaks observation spec {card.obs_spec_version!r}; "
                         f"this xApp speaks {OBS_SPEC_VERSION!r}")
    if card.obs_dim != OBS_DIM:
        raise ModelError(f"model card says obs_dim {card.obs_dim}; this xApp builds {OBS_DIM}")
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    if digest != card.sha256:
        raise ModelError(f"sha256 of the model ({digest[:12]}...) differs from the card's "
                         f"({card.sha256[:12]}...)")
    mcs = card.action_table.mcs
    if not mcs or min(mcs) < 0 or max(mcs) >= MAX_SUPPORTED_MCS_ACTIONS:
        raise ModelError(f"action table has MCS outside 0..{MAX_SUPPORTED_MCS_ACTIONS - 1}: {mcs}")


def validate_model(onnx_bytes: bytes, card: ModelCard, limits: ModelLimits | None = None) -> OnnxPolicyModel:
    """Check a model end to end (in this process); raises ModelError saying what failed. With
    `limits` (a model about to serve) it must also meet the latency budget; without (offline
    evaluation) its latency is not judged."""
    _check_card(onnx_bytes, card)
    try:
        onnx.checker.check_model(onnx.load_model_from_string(onnx_bytes))
    except Exception as exc:  # onnx raises several unrelated types (DecodeError, ValidationError)
        raise ModelError(f"onnx checker rejected the model: {exc}") from exc
    try:
        model = OnnxPolicyModel(onnx_bytes, card)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"onnxruntime cannot load the model: {exc}") from exc
    inputs, outputs = model.session.get_inputs(), model.session.get_outputs()
    if len(inputs) != 1 or len(outputs) < 1:
        raise ModelError(f"expected one input and one output, got {len(inputs)} and {len(outputs)}")
    shape_in, shape_out = inputs[0].shape, outputs[0].shape
    if inputs[0].type != "tensor(float)" or len(shape_in) != 2 or shape_in[1] != OBS_DIM:
        raise ModelError(f"input must be float32 [N, {OBS_DIM}], got {inputs[0].type} {shape_in}")
    if len(shape_out) != 2 or shape_out[1] != model.n_actions:
        raise ModelError(f"output must be [N, {model.n_actions}] (the card's action table), got {shape_out}")
    for n in (1, 3, *([limits.batch] if limits else [])):   # also proves the batch axis is dynamic
        try:
            scores = model.score(np.zeros((n, OBS_DIM), np.float32))
        except Exception as exc:
            raise ModelError(f"test inference with batch {n} failed: {exc}") from exc
        if scores.shape != (n, model.n_actions) or not np.isfinite(scores).all():
            raise ModelError(f"test inference with batch {n} gave shape {scores.shape} or non-finite scores")
    if limits is None:
        return model
    model.latency = measure_latency(model, limits)
    if model.latency.p99_us > limits.latency_budget_us:
        raise ModelError(f"too slow: p99 of a {limits.batch}-UE inference is {model.latency.p99_us:.0f} us of CPU "
                         f"(median {model.latency.median_us:.0f} us), over the budget of "
                         f"{limits.latency_budget_us:.0f} us")
    return model


def load_deployed(onnx_bytes: bytes, card_json: str) -> OnnxPolicyModel:
    """A model an xApp deployed to an E2 node (the near-RT loop's inference host,
    `ranpd.simulator.nearrt.ModelLoader`): its card parsed, then `validate_model` (observation spec,
    sha256, ONNX checks, test inferences). Raises ModelError (a ValueError) saying what failed."""
    try:
        card = ModelCard.model_validate_json(card_json)
    except ValueError as exc:                  # pydantic's ValidationError is a ValueError
        raise ModelError(f"model card does not parse: {str(exc)[:300]}") from exc
    return validate_model(onnx_bytes, card)


async def validate_model_isolated(onnx_bytes: bytes, card: ModelCard, limits: ModelLimits) -> OnnxPolicyModel:
    """`validate_model` in a child process (`python -m ranpd.xapp.model_check`) killed after
    `limits.timeout_s` and capped at `limits.memory_mb` of address space; only a model that
    passed there is loaded here (off the event loop). Cancelling the await kills the child."""
    _check_card(onnx_bytes, card)
    with tempfile.TemporaryDirectory(prefix="ranpd-model-check-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx_bytes)
        card.save(card_path_for(path))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ranpd.xapp.model_check", str(path), json.dumps(asdict(limits)),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            out, err = await asyncio.wait_for(proc.communicate(), limits.timeout_s)
        except TimeoutError:
            raise ModelError(f"validation did not finish within {limits.timeout_s:g} s (the model "
                             "never completes an inference?); it was stopped") from None
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    try:
        verdict = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise ModelError(f"validation process failed: {tail[0][:300]}") from None
    if "error" in verdict:
        raise ModelError(verdict["error"][:1000])
    model = await asyncio.to_thread(OnnxPolicyModel, onnx_bytes, card)
    model.latency = BatchLatency(**verdict["latency"])
    return model


class ModelSlot:
    """The serving model; `swap` replaces it only with a model that passed validation."""

    def __init__(self, model: OnnxPolicyModel | None = None):
        self.current = model

    def swap(self, model: OnnxPolicyModel) -> OnnxPolicyModel | None:
        """Install an already validated model (a single reference assignment); returns the old one."""
        previous, self.current = self.current, model
        log.info("serving model %s (was %s)", model.version, previous.version if previous else "none")
        return previous
