"""Baseband C export (`ranpd export c`): the student as dependency-free C99 for a DU, where the paper runs
it (no accelerator; legacy budget < 1 Mbit of model and < 100 µs per decision).

`export_c` reads the student's ONNX graph with `onnx` (no torch, no onnxruntime) and checks it is what
ranpd exports: Slice(obs)[0:18] -> Gemm (+Relu) ... -> Gemm of width 2A, then the priced score
score = V - price·P, V and the logit of P = Sigmoid(logit) the two halves of the last Gemm, price
the last feature (`nack_price`, Slice [18:]). An op outside `SUPPORTED_OPS`, or these ops in another
arrangement, is refused in one line (`ExportError`). It writes `ranpd_student.{h,c}` (weights as
`static const` arrays in hexadecimal floats, transposed to [in][out] so that -O2 vectorises each layer
without reassociating a sum; no allocation, no libm, no writable state) and `main.c`, a harness that
reads recorded states (`write_states`) and prints decisions or scores, or times them.

Both kernels follow the xApp's decision path (`OnnxPolicyModel.decide_mcs`): clip into the card's
`obs_range` (nack_price into [PRICE_MIN, PRICE_MAX], as `_InputRange`), the network, the first argmax
(`scores_to_mcs`, NaN first), `action_mcs`, min with the last index of TS 38.214 MCS table 1 or 2, and
MCS 0 where CQI is 0: the builder writes cqi/15 as the first feature, so C reads the CQI from it; then
the minimum over the row rescored at every better CQI (`decide_mcs`: monotone in the CQI by construction). The
Sigmoid is MLAS's rational approximation (Eigen's coefficients), as onnxruntime computes it.

int8 kernel — from the int8 twin (`X.int8.onnx`) when the model has one, because that is the model
the xApp serves as int8 and its activation scales were calibrated on visited states: static QDQ,
uint8 activations, int8 per-channel weights (stored as int8), int32 biases, fp32 head. Each
QDQ-wrapped Gemm runs as onnxruntime fuses it (QGemm): uint8 x int8 -> int32, requantised by the float
multiplier x_scale·w_scale/y_scale, rounded half to even; QuantizeLinear divides by the scale, as MLAS.
Compiled with -DRANPD_INT8_AVX2_SATURATION the sum is taken as onnxruntime's AVX2 u8s8 kernel takes it
(vpmaddubsw: each pair of products saturated to int16), which is what the xApp computes on x86 without
AVX-VNNI; without it the sum is exact (the ONNX semantics, and what onnxruntime gives with VNNI or on
ARM). Without a twin: per-tensor symmetric int8 weights of the hidden layers (scale max|W|/127) with
fp32 activations and head — no activation ranges exist to calibrate uint8 activations on.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import click
import numpy as np
import onnx
from onnx import numpy_helper

from ranpd.simulator.observation import OBS_DIM, OBS_SPEC_VERSION, PRICE_MAX, PRICE_MIN
from ranpd.simulator.policies import MAX_CQI, OUT_OF_RANGE_MCS
from ranpd.simulator.tables import MCS_TABLES
from ranpd.xapp.model import PACKAGED_MODEL
from ranpd.xapp.model_card import ModelCard, card_path_for

TEMPLATES = Path(__file__).parent / "baseband_c"
SUPPORTED_OPS = {"Constant", "Slice", "Gemm", "Relu", "Sigmoid", "Sub", "Mul", "QuantizeLinear", "DequantizeLinear"}
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Werror"]


class ExportError(ValueError):
    """A model the C export cannot translate; the text says why, in one line."""


@dataclass
class Layer:
    w: np.ndarray                       # [out, in] float32, or int8 with `w_scale`
    b: np.ndarray                       # [out] float32, or int32 (scale in_scale * w_scale)
    relu: bool = False
    w_scale: np.ndarray | None = None   # per output channel
    in_q: tuple | None = None           # (scale, zero point) of the uint8 input
    out_q: tuple | None = None          # (scale, zero point) of the uint8 output


@dataclass
class Student:
    n_in: int
    price: int
    layers: list[Layer] = field(default_factory=list)


def _values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def parse_student(model: onnx.ModelProto, n_actions: int) -> Student:
    """The layers of a ranpd student graph (fp32, or QDQ int8); ExportError if it is anything else."""
    graph, values = model.graph, _values(model)
    for node in graph.node:
        if node.op_type not in SUPPORTED_OPS or node.domain not in ("", "ai.onnx"):
            raise ExportError(f"unsupported ONNX op {node.domain + '.' if node.domain else ''}{node.op_type} "
                              f"(node {node.name!r}); the C export translates {', '.join(sorted(SUPPORTED_OPS))}")
    producer = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    attrs = lambda n: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}  # noqa: E731

    def sliced(n, dim):
        if n.op_type != "Slice" or len(n.input) < 3:
            raise ExportError(f"{n.op_type} {n.name!r} reads a sliced tensor; expected a Slice")
        get = lambda i, d: int(values[n.input[i]][0]) if len(n.input) > i and n.input[i] else d  # noqa: E731
        if get(3, 0) not in (1, -1) or get(4, 1) != 1:
            raise ExportError(f"Slice {n.name!r} is not a unit-step slice of the feature axis")
        return get(1, 0), min(get(2, dim), dim)

    obs = graph.input[0].name
    parts = {sliced(n, OBS_DIM): n for n in consumers.get(obs, [])}
    body = parts.pop(next((p for p in parts if p[0] == 0), None), None)
    if body is None or len(parts) != 1 or next(iter(parts)) != (OBS_DIM - 1, OBS_DIM):
        raise ExportError(f"the observation must feed a Slice [0:n] and the price Slice [{OBS_DIM - 1}:]; got {sorted(parts)}")
    student, (price_node,) = Student(n_in=sliced(body, OBS_DIM)[1], price=OBS_DIM - 1), parts.values()
    tensor, pending = body.output[0], None

    def qparams(q, dq):
        if dq.op_type != "DequantizeLinear" or [values.get(x) is None for x in q.input[1:3]] != [False, False] \
                or any(not np.array_equal(values[a], values.get(b)) for a, b in zip(q.input[1:3], dq.input[1:3])):
            raise ExportError(f"QuantizeLinear {q.name!r} is not followed by its DequantizeLinear")
        zp = values[q.input[2]]
        if zp.dtype != np.uint8 or zp.size != 1 or values[q.input[1]].size != 1:
            raise ExportError(f"QuantizeLinear {q.name!r}: only per-tensor uint8 activations are supported")
        return float(values[q.input[1]]), int(zp)

    def const_or_dq(name, dtype):
        if name in values:
            return values[name].astype(np.float32), None
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or values.get(dq.input[0]) is None:
            raise ExportError(f"Gemm operand {name!r} is neither a constant nor a dequantised constant")
        q, scale = values[dq.input[0]], values[dq.input[1]].astype(np.float32)
        zp = values.get(dq.input[2]) if len(dq.input) > 2 else None
        if q.dtype != dtype or (zp is not None and np.any(zp != 0)):
            raise ExportError(f"{name!r}: only symmetric {np.dtype(dtype).name} constants are supported")
        return q, scale

    while len(consumers.get(tensor, [])) == 1:
        n = consumers[tensor][0]
        if n.op_type == "QuantizeLinear":
            (dq,) = consumers.get(n.output[0], [None])
            qp = qparams(n, dq)
            last = student.layers[-1] if student.layers else None
            if last is not None and last.w_scale is not None and last.out_q is None:
                last.out_q = qp                  # the QGemm's output
            else:
                pending = qp                     # the next Gemm's input
            tensor = dq.output[0]
            continue
        if n.op_type == "Relu" and student.layers and not student.layers[-1].relu:
            student.layers[-1].relu = True
        elif n.op_type == "Gemm" and n.input[0] == tensor and len(n.input) == 3:
            a = attrs(n)
            if (a.get("alpha", 1.0), a.get("beta", 1.0), a.get("transA", 0), a.get("transB", 0)) != (1.0, 1.0, 0, 1):
                raise ExportError(f"Gemm {n.name!r} must be alpha=1, beta=1, transA=0, transB=1; got {a}")
            w, w_scale = const_or_dq(n.input[1], np.int8)
            b, _ = const_or_dq(n.input[2], np.int32)
            layer = Layer(w=w, b=b, w_scale=w_scale, in_q=pending)
            if (w_scale is None) != (pending is None) or (w_scale is not None and b.dtype != np.int32):
                raise ExportError(f"Gemm {n.name!r} mixes float and quantised operands")
            if w.shape[1] != (student.layers[-1].w.shape[0] if student.layers else student.n_in):
                raise ExportError(f"Gemm {n.name!r} reads {w.shape[1]} inputs; the layer before gives another width")
            student.layers.append(layer)
            pending = None
        else:
            raise ExportError(f"{n.op_type} {n.name!r} is not part of an MLP this export translates")
        tensor = n.output[0]
    head = student.layers[-1] if student.layers else None
    if head is None or head.w_scale is not None or head.relu or head.w.shape[0] != 2 * n_actions:
        raise ExportError(f"the last layer must be an fp32 Gemm of width 2x{n_actions} (the card's actions)")
    if any(x.w_scale is not None and x.out_q is None for x in student.layers):
        raise ExportError("a quantised Gemm must be followed by QuantizeLinear/DequantizeLinear")
    _check_priced_head(graph, consumers, values, tensor, price_node.output[0], n_actions, sliced)
    return student


def _check_priced_head(graph, consumers, values, head, price, n_actions, sliced):
    """score = V - price*P with V = head[:A], P = Sigmoid(head[A:]), as the ONNX graph says."""
    halves = {sliced(n, 2 * n_actions): n.output[0] for n in consumers.get(head, [])}
    value, logit = halves.get((0, n_actions)), halves.get((n_actions, 2 * n_actions))
    ops = {(n.op_type, tuple(n.input)): n.output[0] for n in graph.node}
    p = ops.get(("Sigmoid", (logit,)))
    cost = ops.get(("Mul", (price, p))) or ops.get(("Mul", (p, price)))
    if None in (value, logit, p, cost) or ops.get(("Sub", (value, cost))) != graph.output[0].name:
        raise ExportError("the graph's output is not the priced score V - price*P of its last Gemm")


def _floats(a) -> str:
    items = [float(np.float32(v)).hex() + "f" for v in np.ravel(a)]
    return ",\n    ".join(", ".join(items[i:i + 6]) for i in range(0, len(items), 6))


def _ints(a) -> str:
    items = [str(int(v)) for v in np.ravel(a)]
    return ",\n    ".join(", ".join(items[i:i + 16]) for i in range(0, len(items), 16))


def _array(ctype: str, name: str, a) -> tuple[str, int]:
    body = _floats(a) if ctype == "float" else _ints(a)
    width = {"int8_t": 1, "int16_t": 2}.get(ctype, 4)
    return f"static const {ctype} {name}[{np.size(a)}] = {{\n    {body}}};", int(np.size(a)) * width


def _padded(w: np.ndarray, b: np.ndarray):
    """W transposed to [in][out] and b, outputs padded with zeros to a multiple of 4 (whole SSE vectors)."""
    pad = -w.shape[0] % 4
    return np.pad(w.T, ((0, 0), (0, pad))), np.pad(b, (0, pad)), w.shape[0] + pad


def _gemm(x: str, n_in: int, w: str, b: str, n_out: int, relu: bool, y: str, acc: str = "float",
          xk: str = "{x}[k]", finish: str = "{y}[j] + {b}[j]") -> list[str]:
    """C for y = x W^T + b (+ReLU), W transposed [in][out]: sums in input order, inner loop over outputs."""
    value = finish.format(y=y, b=b)
    return [f"    {acc} {y}[{n_out}];",
            f"    for (int j = 0; j < {n_out}; ++j) {y}[j] = 0;",
            f"    for (int k = 0; k < {n_in}; ++k) {{",
            f"        const {acc} xk = {xk.format(x=x)};",
            f"        for (int j = 0; j < {n_out}; ++j) {y}[j] += {w}[k * {n_out} + j] * xk;",
            "    }"] + ([f"    for (int j = 0; j < {n_out}; ++j) {{ float s = {value}; {y}[j] = s > 0.0f ? s : 0.0f; }}"]
                     if relu else [f"    for (int j = 0; j < {n_out}; ++j) {y}[j] = {value};"])


def _fp32_code(student: Student, prefix: str, int8_weights: bool = False):
    """Weights and body of a kernel whose layers run in float (int8_weights: per-tensor int8 hidden weights)."""
    decls, body, nbytes, x, width = [], [], 0, "x", student.n_in
    for i, layer in enumerate(student.layers):
        name, out = f"{prefix}{i}", ("z" if i == len(student.layers) - 1 else f"h{i}")
        wt, b, n_out = _padded(layer.w, layer.b)
        finish = "{y}[j] + {b}[j]"
        if int8_weights and out != "z":
            scale = np.float32(np.abs(layer.w).max() / 127.0) or np.float32(1.0)
            wt = np.clip(np.rint(wt / scale), -127, 127).astype(np.int8)
            finish = "{y}[j] * " + float(scale).hex() + "f + {b}[j]"
        for d, n in (_array("int8_t" if wt.dtype == np.int8 else "float", f"{name}_W", wt), _array("float", f"{name}_B", b)):
            decls.append(d)
            nbytes += n
        body += _gemm(x, width, f"{name}_W", f"{name}_B", n_out, layer.relu, out, finish=finish)
        x, width = out, layer.w.shape[0]
    return decls, body, nbytes


def _qdq_code(student: Student):
    """Weights and body of the integer kernel for a QDQ twin: per quantised layer, the uint8 input
    (QuantizeLinear), an int32 QGemm, requantisation to the output's uint8 (MLAS: acc * (x_scale*w_scale/
    y_scale) in float, clamped, rounded half to even), DequantizeLinear, ReLU; then the fp32 head."""
    decls, body, nbytes, x, width = [], [], 0, "x", student.n_in
    for i, layer in enumerate(student.layers):
        name = f"Q{i}"
        if layer.w_scale is None:              # the fp32 head
            wt, b, n_out = _padded(layer.w, layer.b)
            for d, n in (_array("float", f"{name}_W", wt), _array("float", f"{name}_B", b)):
                decls.append(d)
                nbytes += n
            body += _gemm(x, width, f"{name}_W", f"{name}_B", n_out, False, "z")
            break
        (s_in, z_in), (s_out, z_out), n_out = layer.in_q, layer.out_q, layer.w.shape[0]
        w_scale = np.broadcast_to(layer.w_scale, (n_out,)).astype(np.float32)
        mult = (np.float32(s_in) * w_scale) / np.float32(s_out)          # as onnxruntime's QGemm: a*b/y in float
        wt = layer.w.T                                                     # [in][out]
        pairs = np.stack([wt[0::2], np.pad(wt[1::2], ((0, len(wt) % 2), (0, 0)))], 1)   # [in/2][2][out]
        for d, n in (_array("int8_t", f"{name}_W", pairs), _array("int32_t", f"{name}_B", layer.b),
                     _array("float", f"{name}_M", mult), _array("int32_t", f"{name}_WSUM", layer.w.astype(np.int64).sum(1))):
            decls.append(d)
            nbytes += n
        body += [f"    int32_t q{i}[{width + width % 2}];",
                 f"    for (int k = 0; k < {width}; ++k) q{i}[k] = quantize_u8({x}[k], {float(s_in).hex()}f, {z_in});",
                 *([f"    q{i}[{width}] = {z_in};"] if width % 2 else []),
                 f"    int32_t a{i}[{n_out}];",
                 f"    qgemm(q{i}, {(width + 1) // 2}, {z_in}, {name}_W, {name}_B, {name}_WSUM, {n_out}, a{i});",
                 f"    float h{i}[{n_out}];",
                 f"    for (int j = 0; j < {n_out}; ++j) {{",
                 f"        float d = (float)(requantize_u8(a{i}[j], {name}_M[j], {z_out}) - {z_out}) * {float(s_out).hex()}f;",
                 f"        h{i}[j] = {'d > 0.0f ? d : 0.0f' if layer.relu else 'd'};",
                 "    }"]
        x, width = f"h{i}", n_out
    return decls, body, nbytes


QDQ_HELPERS = (TEMPLATES / "qgemm.c").read_text()


def _parse(path: Path, n_actions: int) -> Student:
    try:
        return parse_student(onnx.load(path), n_actions)
    except (KeyError, TypeError, ValueError, IndexError, StopIteration) as exc:
        raise ExportError(f"{path.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    except Exception as exc:  # onnx.load raises protobuf's DecodeError on a file that is not ONNX
        raise ExportError(f"{path.name} is not an ONNX model: {type(exc).__name__}") from None


@dataclass
class Export:
    out: Path
    files: list[Path]
    params: int
    weights_bytes_fp32: int
    weights_bytes_int8: int
    int8_source: str


def export_c(model_path: str | Path, out: str | Path) -> Export:
    """Write ranpd_student.h, ranpd_student.c and main.c for the model (and its int8 twin) into `out`."""
    model_path = Path(PACKAGED_MODEL if str(model_path) == "default" else model_path)
    card_path = card_path_for(model_path)
    for path in (model_path, card_path):
        if not path.is_file():
            raise ExportError(f"{path} not found (a model needs its card beside it)")
    try:
        card = ModelCard.load(card_path)
    except Exception as exc:  # pydantic and json raise several types; one line is what the user needs
        raise ExportError(f"model card {card_path} is invalid: {str(exc).splitlines()[0]}") from None
    if card.sha256 != hashlib.sha256(model_path.read_bytes()).hexdigest():
        raise ExportError(f"sha256 of {model_path.name} differs from its card's (the xApp would refuse it too)")
    if card.obs_spec_version != OBS_SPEC_VERSION or card.obs_dim != OBS_DIM:
        raise ExportError(f"card speaks observation spec {card.obs_spec_version!r} ({card.obs_dim} features); "
                          f"this export speaks {OBS_SPEC_VERSION!r} ({OBS_DIM})")
    n_actions = len(card.action_table.mcs)
    student = _parse(model_path, n_actions)
    if any(layer.w_scale is not None for layer in student.layers):
        raise ExportError(f"{model_path.name} is quantised: pass the fp32 model (its int8 twin is read beside it)")
    twin = model_path.with_name(model_path.stem + ".int8.onnx")
    fp32_decls, fp32_body, fp32_bytes = _fp32_code(student, "F")
    if twin.is_file():
        quant = _parse(twin, n_actions)
        if [q.w.shape for q in quant.layers] != [s.w.shape for s in student.layers] or quant.n_in != student.n_in:
            raise ExportError(f"{twin.name} does not have the layers of {model_path.name}")
        int8_decls, int8_body, int8_bytes = _qdq_code(quant)
        helpers, source = QDQ_HELPERS, f"{twin.name} (static QDQ: uint8 activations, int8 per-channel weights, fp32 head)"
    else:
        int8_decls, int8_body, int8_bytes = _fp32_code(student, "W", int8_weights=True)
        helpers, source = "", "per-tensor symmetric int8 weights of the hidden layers (no int8 twin), fp32 activations"
    low, high = (np.array(card.obs_range.low, np.float32), np.array(card.obs_range.high, np.float32)) \
        if card.obs_range else (None, None)
    if low is not None:
        low[-1], high[-1] = PRICE_MIN, PRICE_MAX     # as the xApp's _InputRange: the operator's price range
    clip = "v < OBS_LOW[i] ? OBS_LOW[i] : (v > OBS_HIGH[i] ? OBS_HIGH[i] : v)" if low is not None else "v"
    max_mcs = [-1] * (max(MCS_TABLES) + 1)
    for number, table in MCS_TABLES.items():
        max_mcs[number] = table.size - 1
    fields = dict(
        NAME=card.name, SOURCE=model_path.name, SHA256=card.sha256, OBS_SPEC=card.obs_spec_version, OBS_DIM=OBS_DIM,
        N_ACTIONS=n_actions, N_IN=student.n_in, PRICE=student.price, OUT_OF_RANGE_MCS=OUT_OF_RANGE_MCS,
        MAX_CQI=MAX_CQI, CQI_FEATURE=_floats(np.arange(MAX_CQI + 1) / MAX_CQI),
        OBS_LOW=_floats(low) if low is not None else "0", OBS_HIGH=_floats(high) if low is not None else "0",
        ACTION_MCS=_ints(card.action_table.mcs), N_TABLES=len(max_mcs), MAX_MCS=_ints(max_mcs),
        WEIGHTS="\n".join(fp32_decls + int8_decls), CLIP_EXPR=clip, CQI_CLIP=clip.replace("v", "c").replace("[i]", "[0]"),
        FP32_BODY="\n".join(fp32_body), INT8_BODY="\n".join(int8_body), INT8_HELPERS=helpers, INT8_SUMMARY=source)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for template, name in (("student.h", "ranpd_student.h"), ("student.c", "ranpd_student.c"), ("main.c", "main.c")):
        text = Template((TEMPLATES / template).read_text()).substitute(fields)
        if low is None:
            text = text.replace("static const float OBS_LOW[OBS_DIM] = {0};\n", "").replace(
                "static const float OBS_HIGH[OBS_DIM] = {0};\n", "")
        (out / name).write_text(text)
        files.append(out / name)
    return Export(out, files, card.params, fp32_bytes, int8_bytes, source)


# ---- recorded states, compiling, running ----

def write_states(path: str | Path, obs: np.ndarray, mcs_table: np.ndarray) -> None:
    """The harness's input: "RPDS", uint32 version 1, n, obs_dim, int32 mcs_table[n], float32 obs[n][obs_dim]."""
    obs = np.ascontiguousarray(obs, "<f4")
    header = np.array([1, obs.shape[0], obs.shape[1]], "<u4").tobytes()
    Path(path).write_bytes(b"RPDS" + header + np.asarray(mcs_table, "<i4").tobytes() + obs.tobytes())


RECORD_SCENARIOS = ("uma-mid-pedestrian", "uma-low-pedestrian", "rma-low-train", "umi-mmwave-pedestrian",
                    "uma-mid-vehicular", "umi-mid-dense")


def recorded_states(n_min: int = 4096, seed: int = 0):
    """Observations the observation builder gives while OLLA drives the simulator (every other
    scenario in MCS table 1; BLER targets 10%, throughput mode, 2%, 30%), until `n_min`; then 1/16
    of them again with CQI 0 and 1/16 with features pushed outside the card's range (price,
    buffer, PRBs, ages, CQI above 1). Returns (obs float32 [n, OBS_DIM], mcs_table int32 [n],
    cqi int64 [n]: the builder's, or that of the changed feature)."""
    from ranpd.simulator.engine import run_closed_loop
    from ranpd.simulator.observation import ObservationBuilder
    from ranpd.simulator.policies import Olla
    from ranpd.simulator.scenarios import BUILTIN_SCENARIOS

    rows: list[tuple] = []

    class Recorder(Olla):
        def __init__(self, bler_target):
            super().__init__()
            self.bler_target = bler_target

        def reset(self, n_ues, mcs_table, cqi_table):
            super().reset(n_ues, mcs_table, cqi_table)
            self.builder = ObservationBuilder(n_ues, mcs_table, cqi_table, bler_target=self.bler_target)

        def decide(self, report):
            obs = self.builder.observe_report(report)
            rows.append((obs, np.full(len(obs), report.mcs_table, np.int32), self.builder.cqi[report.ue].copy()))
            return super().decide(report)

    for i in range(64):
        scenario = BUILTIN_SCENARIOS[RECORD_SCENARIOS[i % len(RECORD_SCENARIOS)]]
        if i % 2:
            scenario = scenario.model_copy(update={"mcs_table": 1, "cqi_table": 1})
        run_closed_loop(scenario, Recorder((0.1, None, 0.02, 0.3)[i % 4]), slots=150, seed=seed + i, n_ues=24)
        if sum(len(r[0]) for r in rows) >= n_min:
            break
    obs, tables, cqi = (np.concatenate(c) for c in zip(*rows))
    rng = np.random.default_rng(seed)
    k = max(len(obs) // 16, 1)
    pick = rng.choice(len(obs), 2 * k)
    cold, wild = obs[pick[:k]].copy(), obs[pick[k:]].copy()
    cold[:, 0], cold[:, 2] = 0.0, 0.0
    for col, values in ((18, (-5.0, 40.0)), (16, (1.5, -0.1)), (15, (0.9,)), (1, (-0.5, 3.0)), (0, (1.4,)), (5, (-3.0, 2.0))):
        hit = rng.random(k) < 0.4
        wild[hit, col] = rng.choice(values, hit.sum())
    cqi_of = lambda o: np.rint(np.clip(o[:, 0], 0.0, 1.0) * 15).astype(np.int64)  # noqa: E731
    return (np.concatenate([obs, cold, wild]), np.concatenate([tables, tables[pick]]),
            np.concatenate([cqi, cqi_of(cold), cqi_of(wild)]))


def find_cc() -> str | None:
    """The system C compiler ($CC, cc or gcc), None if there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def compile_c(out: str | Path, binary: str = "ranpd_student", defines: tuple[str, ...] = ()) -> Path:
    """cc -O2 -std=c99 -Wall -Werror main.c ranpd_student.c -> out/binary; ExportError with the compiler's first error."""
    cc, out = find_cc(), Path(out)
    if cc is None:
        raise ExportError("no C compiler found (set CC, or install cc/gcc)")
    cmd = [cc, *CFLAGS, *(f"-D{d}" for d in defines), "main.c", "ranpd_student.c", "-o", binary]
    done = subprocess.run(cmd, cwd=out, capture_output=True, text=True)
    if done.returncode:
        raise ExportError(f"{' '.join(cmd)} failed: {(done.stderr.strip().splitlines() or ['?'])[0]}")
    return out / binary


def run_decide(binary: Path, states: Path) -> np.ndarray:
    """The harness's decisions: [n, 2] int (fp32 MCS, int8 MCS)."""
    done = subprocess.run([str(binary), "decide", str(states)], capture_output=True, text=True, check=True)
    return np.loadtxt(done.stdout.splitlines(), dtype=np.int64, ndmin=2)


# ---- commands ----

@click.group("export")
def export() -> None:
    """Export the student for runtimes other than the xApp."""


@export.command("c")
@click.option("--model", default="default", show_default=True,
              help="fp32 ONNX student with its card beside it (X.card.json), or 'default' (xapp/models/default.onnx); "
                   "its int8 twin X.int8.onnx is used when present.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory to write into.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def export_c_command(model: str, out: Path, as_json: bool) -> None:
    """Dependency-free C99 (fp32 and int8 kernels, weights as const arrays, no allocation, no libm) plus main.c,
    a harness that prints the decisions for recorded states. Build: cc -O2 -std=c99 main.c ranpd_student.c."""
    try:
        result = export_c(model, out)
    except (ExportError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    summary = {"out": str(result.out), "files": [p.name for p in result.files], "params": result.params,
               "weights_bytes_fp32": result.weights_bytes_fp32, "weights_bytes_int8": result.weights_bytes_int8,
               "int8_source": result.int8_source}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"wrote {', '.join(summary['files'])} to {result.out}: {result.params} params, weights "
               f"{result.weights_bytes_fp32} B fp32 / {result.weights_bytes_int8} B int8 ({result.int8_source})")
    click.echo(f"build: cd {result.out} && cc {' '.join(CFLAGS)} main.c ranpd_student.c -o ranpd_student")


def _code_bytes(out: Path) -> dict | None:
    """text/data of ranpd_student.o at -O2 (binutils `size`), None without it."""
    size, cc = shutil.which("size"), find_cc()
    if not size or not cc or subprocess.run([cc, *CFLAGS, "-c", "ranpd_student.c"], cwd=out).returncode:
        return None
    text, data, bss = (int(v) for v in subprocess.run([size, "ranpd_student.o"], cwd=out, capture_output=True,
                                                      text=True).stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def _ort_ns(model, obs, tables, cqi, batch: int, reps: int) -> dict:
    """decide_mcs per call (the xApp's path: bound IO, clip, onnxruntime, decide_mcs: monotone in the CQI), same rows as the C run."""
    samples, row, clock = np.empty(reps), 0, time.perf_counter_ns
    for r in range(-reps // 10, reps):
        if row + batch > len(obs):
            row = 0
        x, c = obs[row:row + batch], cqi[row:row + batch]
        t0 = clock()
        model.decide_mcs(x, int(tables[row]), c)
        t1 = clock()
        if r >= 0:
            samples[r] = t1 - t0
        row += batch
    return {"median": float(np.median(samples)) / batch, "p99": float(np.percentile(samples, 99)) / batch}


@click.command("c-export")
@click.option("--model", default="default", show_default=True, help="fp32 ONNX student (card and int8 twin beside it).")
@click.option("--reps", type=click.IntRange(1000), default=20_000, show_default=True, help="Timed calls per figure.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_c_export(model: str, reps: int, as_json: bool) -> None:
    """The exported C (-O2, timed inside C with clock_gettime) beside onnxruntime (OnnxPolicyModel.decide_mcs) in
    one run: ns per decision at batch 1, ns per UE at batch 64 (median, p99), agreement on recorded states."""
    from ranpd.xapp.model import OnnxPolicyModel

    obs, tables, cqi = recorded_states()
    with tempfile.TemporaryDirectory(prefix="ranpd-c-export-") as tmp:
        try:
            result = export_c(model, tmp)
            plain, saturating = compile_c(tmp), compile_c(tmp, "ranpd_student_sat", ("RANPD_INT8_AVX2_SATURATION",))
        except ExportError as exc:
            raise click.ClickException(str(exc)) from None
        states = Path(tmp) / "states.bin"
        write_states(states, obs, tables)
        c = {}
        for name, binary in (("c", plain), ("c_sat", saturating)):
            out = subprocess.run([str(binary), "bench", str(states), str(reps)], capture_output=True, text=True, check=True)
            c[name] = json.loads(out.stdout)
        decisions = run_decide(plain, states)
        decisions_sat = run_decide(saturating, states)
        code = _code_bytes(Path(tmp))
    fp32_path = Path(PACKAGED_MODEL if model == "default" else model)
    ort = {"fp32": OnnxPolicyModel.load(fp32_path)}
    if fp32_path.with_name(fp32_path.stem + ".int8.onnx").is_file():
        ort["int8"] = OnnxPolicyModel.load(fp32_path.with_name(fp32_path.stem + ".int8.onnx"))
    reference = {k: np.empty(len(obs), np.int64) for k in ort}
    for k, m in ort.items():
        for table in np.unique(tables):
            reference[k][tables == table] = m.decide_mcs(obs[tables == table], int(table), cqi[tables == table])
    rows = {
        "C fp32": (c["c"]["fp32"], decisions[:, 0], "fp32"),
        "C int8": (c["c"]["int8"], decisions[:, 1], "int8"),
        "C int8, AVX2 u8s8 saturation": (c["c_sat"]["int8"], decisions_sat[:, 1], "int8"),
    }
    report = {"model": str(fp32_path), "states": len(obs), "reps": reps, "params": result.params,
              "weights_bytes_fp32": result.weights_bytes_fp32, "weights_bytes_int8": result.weights_bytes_int8,
              "int8_source": result.int8_source, "object_bytes": code, "cflags": CFLAGS,
              "clock_overhead_ns": c["c"]["clock_overhead_ns"], "load_1min": os.getloadavg()[0], "kernels": {}}
    for name, (timing, mcs, precision) in rows.items():
        ref = reference.get(precision)
        report["kernels"][name] = {"batch1_ns": timing["batch1_ns"], "batch64_ns_per_ue": timing["batch64_ns_per_ue"],
                                   "agreement_with_onnxruntime": None if ref is None else float(np.mean(mcs == ref))}
    for precision, m in ort.items():
        report["kernels"][f"onnxruntime {precision}"] = {
            "batch1_ns": _ort_ns(m, obs, tables, cqi, 1, reps), "batch64_ns_per_ue": _ort_ns(m, obs, tables, cqi, 64, reps),
            "agreement_with_onnxruntime": 1.0}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{report['model']}: {result.params} params; weights {result.weights_bytes_fp32} B fp32, "
               f"{result.weights_bytes_int8} B int8; object {code}; {len(obs)} recorded states; load {report['load_1min']:.2f}")
    click.echo(f"{'kernel':32s} {'batch 1 ns/decision p50 / p99':>30s} {'batch 64 ns/UE p50 / p99':>26s} {'same MCS as ORT':>16s}")
    for name, k in report["kernels"].items():
        b1, b64, agree = k["batch1_ns"], k["batch64_ns_per_ue"], k["agreement_with_onnxruntime"]
        click.echo(f"{name:32s} {b1['median']:14.0f} / {b1['p99']:<13.0f} {b64['median']:12.1f} / {b64['p99']:<11.1f} "
                   f"{'-' if agree is None else f'{agree:.4f}':>16s}")
    click.echo(f"(C timed with clock_gettime around each call, overhead {report['clock_overhead_ns']} ns included; "
               "onnxruntime with perf_counter_ns around decide_mcs)")
