"""Model validation, hot-swap, and the bounded per-UE state store."""
from __future__ import annotations

import asyncio
import hashlib
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ranpd.simulator.observation import OBS_DIM, ObservationBuilder
from ranpd.simulator.report import SlotReport
from ranpd.xapp.config import XappSettings
from ranpd.xapp.model import ModelError, ModelLimits, OnnxPolicyModel, validate_model, validate_model_isolated
from ranpd.xapp.model_card import ModelCard, card_path_for
from ranpd.xapp.model_store import ModelStore
from ranpd.xapp.service import XappService, load_configured_model
from ranpd.xapp.state import UeStateStore
from ranpd.xapp.synthetic import OPSET, mlp_onnx, write_synthetic_model


@pytest.fixture
def model_path(tmp_path):
    return write_synthetic_model(tmp_path / "student.onnx", hidden=(8,), seed=1)


def _card(path) -> ModelCard:
    return ModelCard.load(card_path_for(path))


def test_scores_match_a_plain_session_for_every_batch_size(model_path):
    import onnxruntime as ort

    model = OnnxPolicyModel.load(model_path)
    plain = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for n in (1, 5, 64, 5):
        obs = rng.random((n, OBS_DIM), np.float32)
        np.testing.assert_allclose(model.score(obs), plain.run(None, {"obs": obs})[0], rtol=1e-6)
    cqi = np.full(n, 7)
    assert model.decide_mcs(obs, 1, cqi).max() <= 28 and model.decide_mcs(obs[:0], 2, cqi[:0]).size == 0


@pytest.mark.parametrize("breakage, match", [
    (lambda b, c: (b, c.model_copy(update={"obs_spec_version": "0"})), "observation spec"),
    (lambda b, c: (b, c.model_copy(update={"sha256": "0" * 64})), "sha256"),
    (lambda b, c: (b[:-7], c.model_copy(update={"sha256": __import__("hashlib").sha256(b[:-7]).hexdigest()})),
     "checker|onnxruntime"),
    (lambda b, c: (b, c.model_copy(update={"action_table": c.action_table.model_copy(update={"mcs": [0, 1]})})),
     r"output must be \[N, 2\]"),
])
def test_validation_rejects_bad_models(model_path, breakage, match):
    onnx_bytes, card = breakage(model_path.read_bytes(), _card(model_path))
    with pytest.raises(ModelError, match=match):
        validate_model(onnx_bytes, card)


def test_validation_rejects_wrong_input_width(tmp_path):
    model = mlp_onnx((4,))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = OBS_DIM + 1
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.zeros((OBS_DIM + 1, 4), np.float32), "W0"))
    data = model.SerializeToString()
    import hashlib
    card = ModelCard(name="wide", kind="student", action_table={"mcs": list(range(29))}, params=0,
                     onnx_opset=17, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(ModelError, match="input must be float32"):
        validate_model(data, card)


def test_hot_swap_installs_a_valid_model_and_keeps_the_old_one_on_failure(model_path, tmp_path):
    service = XappService(XappSettings(), OnnxPolicyModel.load(model_path))
    old = service.model
    other = write_synthetic_model(tmp_path / "other.onnx", hidden=(8,), seed=2)
    bad_card = _card(other).model_copy(update={"obs_spec_version": "999"})
    with pytest.raises(ModelError):
        asyncio.run(service.hot_swap(other.read_bytes(), bad_card))
    assert service.model is old
    new = asyncio.run(service.hot_swap(other.read_bytes(), _card(other)))
    assert service.model is new and new.sha256 != old.sha256
    assert service.metrics.model_swaps.labels("rejected")._value.get() == 1


def test_missing_card_is_a_clear_error(model_path):
    card_path_for(model_path).unlink()
    with pytest.raises(ModelError, match="model card .* not found"):
        OnnxPolicyModel.load(model_path)


def _stream(n_slots=60, n_ues=10, seed=0):
    rng = np.random.default_rng(seed)
    for slot in range(n_slots):
        cqi_ue = rng.choice(n_ues, 3, replace=False)
        harq_ue = rng.choice(n_ues, 4, replace=False)
        ue = rng.choice(n_ues, 5, replace=False)
        yield SlotReport(slot=slot, cqi_ue=cqi_ue, cqi_value=rng.integers(0, 16, 3), cqi_slot=np.full(3, slot - 4),
                         harq_ue=harq_ue, harq_ack=rng.random(4) < 0.8, harq_mcs=rng.integers(0, 28, 4),
                         harq_tbs=np.full(4, 1000), harq_tx=rng.integers(1, 3, 4), harq_process=np.zeros(4, np.int64),
                         ue=ue, prbs=rng.integers(1, 100, 5), layers=np.ones(5, np.int64),
                         buffer_bytes=rng.integers(0, 10**6, 5))


def test_store_observations_equal_the_builder_indexed_by_ue_id():
    builder, store = ObservationBuilder(10), UeStateStore(capacity=10)
    for report in _stream():
        np.testing.assert_array_equal(store.observe(report), builder.observe_report(report))


def test_store_evicts_least_recently_seen_and_idle_ues():
    store = UeStateStore(capacity=3, idle_slots=100)
    store.rows(np.array([1, 2]), slot=0)
    store.rows(np.array([3]), slot=5)
    store.rows(np.array([1]), slot=6)
    store.rows(np.array([4]), slot=7)             # full: UE 2 (seen at 0) goes
    assert 2 not in store and all(ue in store for ue in (1, 3, 4)) and store.evictions == 1
    with pytest.raises(OverflowError):
        store.rows(np.array([5, 6, 7, 8]), slot=8)
    assert len(store) == 3
    assert store.evict_idle(slot=50) == 0
    assert store.evict_idle(slot=500) == 3 and len(store) == 0


def test_new_ue_in_a_reused_row_starts_from_a_clean_state():
    store = UeStateStore(capacity=1)
    store.observe(SlotReport(slot=0, cqi_ue=np.array([7]), cqi_value=np.array([12]), cqi_slot=np.array([0]),
                             harq_ue=np.array([7]), harq_ack=np.array([False]), harq_mcs=np.array([20]),
                             harq_tbs=np.array([1000]), harq_tx=np.array([1]), harq_process=np.array([0])))
    fresh = SlotReport(slot=1, ue=np.array([99]), prbs=np.array([10]), layers=np.array([1]),
                       buffer_bytes=np.array([0]))
    np.testing.assert_array_equal(store.observe(fresh), ObservationBuilder(1).observe_report(
        SlotReport(slot=1, ue=np.array([0]), prbs=np.array([10]), layers=np.array([1]), buffer_bytes=np.array([0]))))


def test_offline_and_online_map_scores_through_one_permuted_action_table(model_path):
    """Evaluation (`onnx_policy` -> ObservationPolicy) and the xApp (`decide_mcs`) pick the same
    MCS, and it is the card's table entry of the argmax, lowered to the least such entry at any
    better CQI (the monotone construction): with a permuted table, ignoring the table on either side
    gives other MCS indices."""
    from ranpd.simulator.policies import ObservationPolicy
    from ranpd.training.evaluate import onnx_policy

    card = _card(model_path)
    permuted = np.random.default_rng(3).permutation(len(card.action_table.mcs)).tolist()
    card.model_copy(update={"action_table": card.action_table.model_copy(update={"mcs": permuted}),
                            "mcs_tables": [1, 2]}).save(card_path_for(model_path))
    online = OnnxPolicyModel.load(model_path)
    offline = onnx_policy(model_path, "student")
    identity = ObservationPolicy(online.score)
    builder = ObservationBuilder(10, 1, 2)
    for policy in (offline, identity):
        policy.reset(10, mcs_table=1, cqi_table=2)
    differs = 0
    for report in _stream(n_slots=40):
        obs, cqi = builder.observe_report(report), builder.cqi[report.ue]
        by_cqi = []
        for better in range(1, 16):
            probe = obs.copy()
            probe[:, 0] = better / 15
            by_cqi.append(np.minimum(np.asarray(permuted)[np.argmax(online.score(probe), axis=1)], 28))
        by_cqi = np.stack(by_cqi, axis=1)
        expected = np.array([by_cqi[i, c - 1:].min() if c > 0 else 0 for i, c in enumerate(cqi)])
        np.testing.assert_array_equal(online.decide_mcs(obs, 1, cqi), expected)
        np.testing.assert_array_equal(offline.decide(report), expected)
        differs += int((identity.decide(report) != expected).sum())
    assert differs > 0


def with_card(model: onnx.ModelProto) -> tuple[bytes, ModelCard]:
    data = model.SerializeToString()
    return data, ModelCard(name="hostile", kind="student", action_table={"mcs": list(range(29))}, params=0,
                           onnx_opset=OPSET, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def endless_loop_model() -> onnx.ModelProto:
    """A valid student whose scores pass through an ONNX Loop with a 2^62 trip count."""
    model = mlp_onnx((4,))
    model.graph.node[-1].output[0] = "z"
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Identity", ["x"], ["x_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_out", TensorProto.FLOAT, None)])
    model.graph.initializer.extend([numpy_helper.from_array(np.array(1 << 62, np.int64), "trips"),
                                    numpy_helper.from_array(np.array(True), "go")])
    model.graph.node.append(helper.make_node("Loop", ["trips", "go", "z"], ["scores"], body=body))
    onnx.checker.check_model(model)
    return model


def memory_hog_model() -> onnx.ModelProto:
    """A valid student that adds the sum of a 4 GiB tensor to its scores."""
    model = mlp_onnx((4,))
    model.graph.node[-1].output[0] = "z"
    model.graph.initializer.append(numpy_helper.from_array(np.array([1 << 15, 1 << 15], np.int64), "shape"))
    model.graph.node.extend([
        helper.make_node("ConstantOfShape", ["shape"], ["big"], value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
        helper.make_node("Add", ["z", "total"], ["scores"])])
    onnx.checker.check_model(model)
    return model


def test_isolated_validation_stops_an_endless_loop_and_a_memory_hog(model_path):
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="did not finish within 3 s"):
        asyncio.run(validate_model_isolated(*with_card(endless_loop_model()), ModelLimits(timeout_s=3)))
    assert time.monotonic() - t0 < 10
    with pytest.raises(ModelError, match="test inference with batch 1 failed"):
        asyncio.run(validate_model_isolated(*with_card(memory_hog_model()), ModelLimits(memory_mb=1024)))
    model = asyncio.run(validate_model_isolated(model_path.read_bytes(), _card(model_path), ModelLimits()))
    assert model.latency.batch == 64 and 0 < model.latency.median_us <= model.latency.p99_us <= 500


def test_validation_refuses_a_model_over_the_latency_budget(model_path, tmp_path):
    """A 2x512 hidden MLP takes far more than 5 us for 64 UEs; the tiny one is well inside 500 us."""
    slow = write_synthetic_model(tmp_path / "slow.onnx", hidden=(512, 512))
    with pytest.raises(ModelError, match=r"too slow: p99 of a 64-UE inference is \d+ us"):
        OnnxPolicyModel.load(slow, limits=ModelLimits(latency_budget_us=5))
    assert OnnxPolicyModel.load(model_path, limits=ModelLimits()).latency.p99_us <= ModelLimits().latency_budget_us
    assert OnnxPolicyModel.load(slow).latency is None             # offline use: latency not judged


def test_store_persists_atomically_and_rolls_back(model_path, tmp_path):
    other = write_synthetic_model(tmp_path / "other.onnx", hidden=(8,), seed=2)
    first, second = (p.read_bytes() for p in (model_path, other))
    store = ModelStore(tmp_path / "models")
    store.seed(first, _card(model_path))
    assert not any((tmp_path / "models").iterdir())           # seeding writes nothing
    store.commit(second, _card(other))
    reopened = ModelStore(tmp_path / "models")
    assert reopened.current.onnx_bytes == second and reopened.previous.onnx_bytes == first
    reopened.rollback()
    again = ModelStore(tmp_path / "models")
    assert again.current.card == _card(model_path) and again.previous.card == _card(other)
    third = write_synthetic_model(tmp_path / "third.onnx", hidden=(8,), seed=3)
    again.commit(third.read_bytes(), _card(third))            # `other` is no longer named: removed
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert names == sorted(["state.json", *(f"{c.sha256}{ext}" for c in (_card(model_path), _card(third))
                                             for ext in (".onnx", ".card.json"))])


def test_persisted_model_is_served_after_a_restart(model_path, tmp_path):
    other = write_synthetic_model(tmp_path / "other.onnx", hidden=(8,), seed=2)
    settings = XappSettings(model_path=model_path, model_dir=tmp_path / "models")
    assert load_configured_model(settings).sha256 == _card(model_path).sha256
    ModelStore(settings.model_dir).commit(other.read_bytes(), _card(other))
    assert load_configured_model(settings).sha256 == _card(other).sha256
    (settings.model_dir / "state.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        load_configured_model(settings)


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` and that run the model check (from /proc)."""
    from pathlib import Path

    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"ranpd.xapp.model_check" in cmdline:
            found.append(int(proc.name))
    return found


def _gone(pid: int) -> bool:
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_sigterm_stops_the_xapp_while_an_endless_model_is_being_validated(model_path, tmp_path):
    """Upload a never-ending model to a real `ranpd xapp` process (validation timeout 120 s),
    then SIGTERM it mid-validation: the xApp exits promptly and takes the validation along."""
    import base64
    import contextlib
    import signal
    import threading

    import httpx
    from test_xapp_rest import xapp_process       # tests/ is on sys.path (pytest's rootdir imports)

    env = {"RANPD_XAPP_ADMIN_TOKEN": "t", "RANPD_XAPP_MODEL_CHECK_TIMEOUT_S": "120",
           "RANPD_XAPP_MODEL_PATH": str(model_path)}
    with xapp_process(env) as (xapp, port):
        data, card = with_card(endless_loop_model())
        body = {"card": card.model_dump(mode="json"), "onnx_base64": base64.b64encode(data).decode()}

        def upload():
            with contextlib.suppress(httpx.HTTPError):      # the xApp goes away mid-request
                httpx.put(f"http://127.0.0.1:{port}/ric/v1/model", json=body, headers={"Authorization": "Bearer t"},
                          timeout=60)
        threading.Thread(target=upload, daemon=True).start()
        deadline = time.monotonic() + 20
        while not (checks := _children(xapp.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert checks, "no validation process was started"
        time.sleep(1.0)                            # the check is now inside the endless inference
        t0 = time.monotonic()
        xapp.send_signal(signal.SIGTERM)
        xapp.wait(timeout=30)
        stopped_s = time.monotonic() - t0
        deadline = time.monotonic() + 5
        while not all(_gone(pid) for pid in checks) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(pid) for pid in checks), "the validation outlived the xApp"
        print(f"SIGTERM -> exit in {stopped_s:.1f} s")
        assert stopped_s < 20, stopped_s
