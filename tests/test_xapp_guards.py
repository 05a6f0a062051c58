"""The xApp's serving guards: the model card's MCS tables, inputs clipped into the training range,
the per-UE guard over E2, and the operator's BLER target per E2 node (REST, settings, metrics)."""
from __future__ import annotations

import json
import re
import time

import httpx
import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import numpy_helper
from pydantic import ValidationError

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto import framing, la_codec
from ranpd.proto.e2link import E2Link
from ranpd.simulator.observation import FEATURES, OBS_DIM, PRICE_INIT, PRICE_MAX
from ranpd.simulator.report import SlotReport
from ranpd.simulator.tables import MAX_SUPPORTED_MCS_ACTIONS
from ranpd.xapp.api import create_app
from ranpd.xapp.config import XappSettings
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.model_card import ModelCard, card_path_for, file_sha256
from ranpd.xapp.server import XappThread
from ranpd.xapp.service import XappService
from ranpd.xapp.synthetic import mlp_onnx, write_synthetic_model

TOKEN = "guard-token"
NODE = "gnb-guarded"
PRICE = FEATURES.index("nack_price")


def constant_model(path, mcs: int, **card_update) -> OnnxPolicyModel:
    """An ONNX 'student' that always scores MCS `mcs` highest, with its card (updated)."""
    model = mlp_onnx(hidden=())
    bias = np.zeros(MAX_SUPPORTED_MCS_ACTIONS, np.float32)
    bias[mcs] = 1.0
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.zeros((OBS_DIM, bias.size), np.float32), "W0"))
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(bias, "b0"))
    onnx.save(model, str(path))
    card = ModelCard(name=f"always-mcs-{mcs}", kind="student", action_table={"mcs": list(range(bias.size))},
                     params=0, onnx_opset=17, bytes=path.stat().st_size, sha256=file_sha256(path), **card_update)
    card.save(card_path_for(path))
    return OnnxPolicyModel.load(path)


def _metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in the exposition"
    return float(match.group(1))


# ---------------------------------------------------------------------------------- model card
def test_an_older_card_declares_its_action_tables_mcs_table(tmp_path):
    path = write_synthetic_model(tmp_path / "old.onnx", hidden=(4,))
    raw = json.loads(card_path_for(path).read_text())
    raw.pop("mcs_tables", None)
    raw["action_table"]["mcs_table"] = 1
    assert ModelCard.model_validate(raw).mcs_tables == [1]
    assert ModelCard.model_validate({**raw, "mcs_tables": [1, 2]}).mcs_tables == [1, 2]
    for bad in ([3], []):
        with pytest.raises(ValidationError):
            ModelCard.model_validate({**raw, "mcs_tables": bad})


@pytest.mark.parametrize("obs_range, match", [
    ({"low": [0.0] * OBS_DIM, "high": [1.0] * (OBS_DIM - 1)}, "at least"),
    ({"low": [0.0] * OBS_DIM, "high": [1.0] * (OBS_DIM - 1) + [-1.0]}, "nack_price"),
])
def test_obs_range_needs_one_ordered_pair_per_feature(tmp_path, obs_range, match):
    raw = json.loads(card_path_for(write_synthetic_model(tmp_path / "m.onnx", hidden=(4,))).read_text())
    with pytest.raises(ValidationError, match=match):
        ModelCard.model_validate({**raw, "obs_range": obs_range})


# ---------------------------------------------------------------------------------- clipping
def test_inputs_outside_the_training_range_are_clipped_and_counted(tmp_path):
    path = write_synthetic_model(tmp_path / "m.onnx", hidden=(8,), seed=4)
    low, high = [0.0] * OBS_DIM, [0.5] * OBS_DIM
    high[PRICE] = 0.01                       # ignored: the price is always allowed up to PRICE_MAX
    card = ModelCard.model_validate({**ModelCard.load(card_path_for(path)).model_dump(),
                                     "obs_range": {"low": low, "high": high}})
    ranged, plain = OnnxPolicyModel(path.read_bytes(), card), OnnxPolicyModel.load(path)
    obs = np.full((3, OBS_DIM), 0.25, np.float32)
    obs[0, 0], obs[1, 0], obs[2, 4] = 0.9, -0.2, 0.7         # cqi above, cqi below, nack_ewma above
    obs[:, PRICE] = [PRICE_MAX, 3.0, 0.0]
    expected = obs.copy()
    expected[0, 0], expected[1, 0], expected[2, 4] = 0.5, 0.0, 0.5
    np.testing.assert_allclose(ranged.score(obs), plain.score(expected), rtol=1e-6)
    assert obs[0, 0] == np.float32(0.9)                       # the caller's array is left alone
    counts = ranged.clipped_by_feature()
    assert counts["cqi"] == 2 and counts["nack_ewma"] == 1 and counts["nack_price"] == 0
    assert sum(counts.values()) == 3
    assert ranged.take_clipped().tolist() == ranged.clipped_rows.tolist() and ranged.take_clipped() is None
    ranged.score(np.full((64, OBS_DIM), 0.25, np.float32))   # inside: nothing counted
    assert ranged.clipped_rows.sum() == 3 and plain.clipped_rows.sum() == 0

    service = XappService(XappSettings(), ranged)
    ranged.score(obs)
    service._count_clipped(ranged)
    body = TestClient(create_app(service)).get("/ric/v1/metrics").text
    assert _metric(body, "ranpd_xapp_clipped_inputs_total", '{feature="cqi"}') == 2
    assert _metric(body, "ranpd_xapp_clipped_inputs_total", '{feature="prbs"}') == 0


# ---------------------------------------------------------------------------------- E2 helpers
def _report(slot: int, cqi: int = 9, harq: dict[int, bool] | None = None, mcs_table: int = 2) -> SlotReport:
    """UEs 3 and 5 scheduled; CQI `cqi` for both; first-tx HARQ outcomes `harq` (UE -> ACK)."""
    harq = harq or {}
    n = len(harq)
    return SlotReport(slot=slot, mcs_table=mcs_table, cqi_ue=np.array([3, 5]), cqi_value=np.full(2, cqi),
                      cqi_slot=np.full(2, slot - 4), harq_ue=np.array(list(harq), np.int64),
                      harq_ack=np.array(list(harq.values()), bool), harq_mcs=np.full(n, 27),
                      harq_tbs=np.full(n, 8000), harq_tx=np.ones(n, np.int64), harq_process=np.zeros(n, np.int64),
                      ue=np.array([3, 5]), prbs=np.full(2, 20), layers=np.ones(2, np.int64),
                      buffer_bytes=np.full(2, 10_000))


def _exchange(link: E2Link, report: SlotReport, seq: int) -> e2.Envelope:
    link.send(la_codec.indication_envelope(report, request_id=e2.RicRequestId(requestor_id=1, instance_id=1),
                                           sequence_number=seq, deadline_ns=time.monotonic_ns() + 10**9,
                                           max_harq_tx=4))
    envelope = link.receive(time.monotonic_ns() + 5 * 10**9)
    assert envelope is not None, "no answer from the xApp"
    return envelope


def _settings(**kw) -> XappSettings:
    return XappSettings(e2_port=0, http_port=0, admin_token=TOKEN, log_level="warning", **kw)


# ---------------------------------------------------------------------------------- MCS tables
def test_an_indication_in_an_undeclared_mcs_table_is_refused_with_its_cause(tmp_path):
    model = constant_model(tmp_path / "t2.onnx", 10, mcs_tables=[2])
    with XappThread(_settings(), model, http=True) as xapp:
        link = E2Link("127.0.0.1", xapp.e2_port, NODE)
        refused = _exchange(link, _report(10, mcs_table=1), seq=1)
        assert framing.message_type(refused) == "error_indication"
        error = refused.error_indication
        assert error.cause == e2.CAUSE_MCS_TABLE_NOT_SUPPORTED and error.sequence_number == 1
        assert "MCS table 1" in error.text and "[2]" in error.text and model.version in error.text
        served = _exchange(link, _report(11, mcs_table=2), seq=2)
        assert la_codec.decode_control(served.ric_control_request).mcs.tolist() == [10, 10]
        link.close()
        rest = f"http://127.0.0.1:{xapp.http_port}/ric/v1"
        body = httpx.get(f"{rest}/metrics").text
        assert _metric(body, "ranpd_xapp_mcs_table_refusals_total", '{mcs_table="1"}') == 1
        assert _metric(body, "ranpd_xapp_errors_total", '{cause="mcs_table_not_supported",direction="sent"}') == 1
        decide = httpx.post(f"{rest}/decide", json={"slot": 1, "mcs_table": 1, "ues": [{"ue": 1, "prbs": 5}]})
        assert decide.status_code == 422 and "CAUSE_MCS_TABLE_NOT_SUPPORTED" in decide.json()["detail"]


# ---------------------------------------------------------------------------------- per-UE guard
def test_the_guard_leaves_a_failing_ue_to_the_node_and_returns_it_after_recovery(tmp_path):
    """UE 3 NACKs every first transmission: it is handed back (left out of the control) while
    UE 5 keeps getting the model's MCS; once UE 3's NACKs fall back to ~10% and its hold has
    passed, it is returned. Gauges and counters follow."""
    model = constant_model(tmp_path / "m.onnx", 20)
    with XappThread(_settings(), model, http=True) as xapp:
        link = E2Link("127.0.0.1", xapp.e2_port, NODE)
        slot, seq = 100, 0

        def step(ack3: bool) -> list[int]:
            nonlocal slot, seq
            slot, seq = slot + 1, seq + 1
            control = la_codec.decode_control(
                _exchange(link, _report(slot, harq={3: ack3, 5: True}), seq).ric_control_request)
            return control.ue.tolist()

        assert step(True) == [3, 5]
        decided = [step(False) for _ in range(40)]
        assert decided[0] == [3, 5] and decided[-1] == [5]
        rest = f"http://127.0.0.1:{xapp.http_port}/ric/v1"
        body = httpx.get(f"{rest}/metrics").text
        assert _metric(body, "ranpd_xapp_guard_handed_back_ues") == 1
        assert _metric(body, "ranpd_xapp_guard_hand_backs_total") == 1
        left = _metric(body, "ranpd_xapp_guard_left_to_node_total")
        assert left == sum(ues == [5] for ues in decided) > 0
        recovered = [step(i % 10 != 0) for i in range(400)]
        assert recovered[0] == [5] and recovered[-1] == [3, 5]
        body = httpx.get(f"{rest}/metrics").text
        assert _metric(body, "ranpd_xapp_guard_returns_total") == 1
        assert _metric(body, "ranpd_xapp_guard_handed_back_ues") == 0
        link.close()


# ---------------------------------------------------------------------------------- BLER target
def _prices(xapp) -> np.ndarray:
    session = next(s for s in xapp.service.sessions if s.node_id == NODE)
    rows = session.store._lookup(np.array([3, 5]))
    return session.store.builder.bler_target[rows], session.store.builder.nack_price[rows]


def test_bler_target_round_trip_over_rest_changes_the_observed_price(tmp_path):
    model = constant_model(tmp_path / "m.onnx", 12)
    with XappThread(_settings(), model, http=True) as xapp:
        rest = f"http://127.0.0.1:{xapp.http_port}/ric/v1/config/bler-target"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(rest).json() == {"default": 0.1, "nodes": {}}
        assert httpx.put(rest, json={"target": "max"}).status_code == 401
        assert httpx.put(rest, content=b"\xff{", headers={"Content-Type": "application/json"}).status_code == 401
        assert httpx.put(rest, content=b"\xff{", headers={**auth, "Content-Type": "application/json"}).status_code == 422
        document = httpx.get(f"http://127.0.0.1:{xapp.http_port}/openapi.json").json()
        assert set(document["paths"]["/ric/v1/config/bler-target"]) == {"get", "put"}
        assert "BlerTargetUpdate" in document["components"]["schemas"]
        for bad in ({"target": 1.0}, {"target": 0}, {"target": "0.2"}, {"target": "min"},
                    {"target": 0.2, "node": ""}, {"target": 0.2, "extra": 1}):
            assert httpx.put(rest, json=bad, headers=auth).status_code == 422, bad
        link = E2Link("127.0.0.1", xapp.e2_port, NODE)
        _exchange(link, _report(10, harq={3: False}), seq=1)
        target, price = _prices(xapp)
        assert np.allclose(target, 0.1) and price[0] > PRICE_INIT and price[1] == PRICE_INIT

        answer = httpx.put(rest, json={"target": "max", "node": NODE}, headers=auth)
        assert answer.status_code == 200 and answer.json() == {"default": 0.1, "nodes": {NODE: "max"}}
        _exchange(link, _report(11, harq={3: False}), seq=2)   # applied at the node's next indication
        target, price = _prices(xapp)
        assert np.isnan(target).all() and (price == 0).all()   # throughput mode: no price on NACKs

        assert httpx.put(rest, json={"target": 0.3}, headers=auth).json() == {"default": 0.3, "nodes": {NODE: "max"}}
        _exchange(link, _report(12, harq={3: False}), seq=3)
        assert np.isnan(_prices(xapp)[0]).all()                 # the node's own target wins
        httpx.put(rest, json={"target": 0.3, "node": NODE}, headers=auth)
        _exchange(link, _report(13, harq={3: False, 5: True}), seq=4)
        target, price = _prices(xapp)
        assert np.allclose(target, 0.3) and price[0] > PRICE_INIT > price[1]      # NACK up, ACK down
        metrics = httpx.get(f"http://127.0.0.1:{xapp.http_port}/ric/v1/metrics").text
        assert _metric(metrics, "ranpd_xapp_bler_target", f'{{node="{NODE}"}}') == 0.3
        link.close()


def test_bler_target_reaches_the_e2_worker_process_and_new_ues(tmp_path):
    """With E2 in its own process (the default when REST is served), a target set over REST
    reaches the worker: its gauge says so, and the setting's 'max' is the default."""
    model = constant_model(tmp_path / "m.onnx", 12)
    with XappThread(_settings(bler_target="max"), model, http=True, e2_process=True) as xapp:
        base = f"http://127.0.0.1:{xapp.http_port}/ric/v1"
        assert httpx.get(f"{base}/config/bler-target").json()["default"] == "max"
        assert httpx.get(f"{base}/config").json()["settings"]["bler_target"] == "max"
        link = E2Link("127.0.0.1", xapp.e2_port, NODE)
        _exchange(link, _report(10), seq=1)
        assert _metric(httpx.get(f"{base}/metrics").text, "ranpd_xapp_bler_target", f'{{node="{NODE}"}}') == 1.0
        httpx.put(f"{base}/config/bler-target", json={"target": 0.2, "node": NODE},
                  headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
        _exchange(link, _report(11), seq=2)
        assert _metric(httpx.get(f"{base}/metrics").text, "ranpd_xapp_bler_target", f'{{node="{NODE}"}}') == 0.2
        link.close()


def test_bler_target_setting_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANPD_XAPP_BLER_TARGET", "0.25")
    assert XappService(XappSettings()).bler_targets.default == 0.25
    monkeypatch.setenv("RANPD_XAPP_BLER_TARGET", "max")
    assert XappService(XappSettings()).bler_targets.default is None
    monkeypatch.setenv("RANPD_XAPP_BLER_TARGET", "1")
    with pytest.raises(ValidationError, match="bler_target"):
        XappSettings()


def test_bler_target_nodes_are_bounded(monkeypatch):
    from ranpd.xapp import service as service_module

    monkeypatch.setattr(service_module, "MAX_TARGET_NODES", 2)
    service = XappService(XappSettings(admin_token=TOKEN))
    client = TestClient(create_app(service))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for node in ("a", "b", "a"):
        assert client.put("/ric/v1/config/bler-target", json={"target": 0.2, "node": node}, headers=auth).status_code == 200
    full = client.put("/ric/v1/config/bler-target", json={"target": 0.2, "node": "c"}, headers=auth)
    assert full.status_code == 409 and "2 nodes" in full.json()["detail"]
    assert set(client.get("/ric/v1/config/bler-target").json()["nodes"]) == {"a", "b"}


def test_a_forgotten_ue_is_no_longer_counted_as_handed_back():
    from ranpd.simulator.guard import GuardConfig
    from ranpd.xapp.state import UeStateStore

    store = UeStateStore(capacity=2, idle_slots=50, guard=GuardConfig())
    for slot in range(40):
        store.observe_rows(SlotReport(slot=slot, harq_ue=np.array([7]), harq_ack=np.array([False]),
                                      harq_mcs=np.array([27]), harq_tbs=np.array([100]), harq_tx=np.array([1]),
                                      harq_process=np.array([0])))
    assert store.guard.n_handed_back == 1
    assert store.evict_idle(slot=200) == 1 and store.guard.n_handed_back == 0
