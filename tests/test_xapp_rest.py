"""The xApp's REST API: health, config, metrics, model card and upload (auth), decide."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto import framing, la_codec
from ranpd.simulator.observation import ObservationBuilder
from ranpd.simulator.report import SlotReport
from ranpd.xapp.api import create_app
from ranpd.xapp.config import XappDescriptor, XappSettings
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.model_card import ModelCard, card_path_for
from ranpd.xapp.service import XappService
from ranpd.xapp.synthetic import write_synthetic_model

TOKEN = "s3cret"


@pytest.fixture
def paths(tmp_path):
    return [write_synthetic_model(tmp_path / f"m{seed}.onnx", hidden=(8,), seed=seed) for seed in (1, 2)]


@pytest.fixture
def service(paths):
    service = XappService(XappSettings(admin_token=TOKEN), OnnxPolicyModel.load(paths[0]))
    service.e2_listening = True
    return service


@pytest.fixture
def client(service):
    return TestClient(create_app(service))


def test_health_config_openapi(client, service):
    assert client.get("/ric/v1/health/alive").json() == {"status": "alive", "reasons": []}
    assert client.get("/ric/v1/health/ready").status_code == 200
    service.models.current = None
    not_ready = client.get("/ric/v1/health/ready")
    assert not_ready.status_code == 503 and not_ready.json()["reasons"] == ["no model loaded"]
    config = client.get("/ric/v1/config").json()
    assert config["settings"]["admin_token_set"] is True and TOKEN not in json.dumps(config)
    assert config["descriptor"]["messaging"]["ports"][1]["port"] == config["settings"]["e2_port"]
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ric/v1/health/alive", "/ric/v1/health/ready", "/ric/v1/config", "/ric/v1/metrics",
            "/ric/v1/model", "/ric/v1/decide"} <= set(paths)


def test_descriptor_ports_are_the_settings_defaults():
    descriptor = XappDescriptor.load()
    settings = XappSettings()
    assert (descriptor.port("e2"), descriptor.port("http")) == (settings.e2_port, settings.http_port)


def test_env_overrides_descriptor(monkeypatch):
    monkeypatch.setenv("RANPD_XAPP_UE_CAPACITY", "17")
    assert XappSettings().ue_capacity == 17 and XappSettings(ue_capacity=5).ue_capacity == 5


def _upload(path, **card_update) -> dict:
    card = ModelCard.load(card_path_for(path)).model_copy(update=card_update)
    return {"card": card.model_dump(mode="json"), "onnx_base64": base64.b64encode(path.read_bytes()).decode()}


def test_model_upload_requires_the_admin_token_and_validates(client, service, paths):
    old = client.get("/ric/v1/model").json()["version"]
    assert client.put("/ric/v1/model", json=_upload(paths[1])).status_code == 401
    wrong = client.put("/ric/v1/model", json=_upload(paths[1]), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    rejected = client.put("/ric/v1/model", json=_upload(paths[1], obs_spec_version="42"), headers=auth)
    assert rejected.status_code == 422 and "observation spec" in rejected.json()["detail"]
    assert client.get("/ric/v1/model").json()["version"] == old
    installed = client.put("/ric/v1/model", json=_upload(paths[1]), headers=auth)
    assert installed.status_code == 200 and installed.json()["version"] != old
    assert client.get("/ric/v1/model").json()["version"] == installed.json()["version"]
    metrics = client.get("/ric/v1/metrics").text
    assert 'ranpd_xapp_model_swaps_total{result="installed"} 1.0' in metrics
    assert ModelCard.load(card_path_for(paths[1])).sha256 in metrics


def test_upload_disabled_without_token(paths):
    service = XappService(XappSettings(), OnnxPolicyModel.load(paths[0]))
    response = TestClient(create_app(service)).put("/ric/v1/model", json=_upload(paths[1]),
                                                   headers={"Authorization": "Bearer x"})
    assert response.status_code == 403


REQUEST = {"slot": 20, "mcs_table": 2, "cqi_table": 2,
           "cqi": [{"ue": 4, "value": 11, "age_slots": 6}],
           "harq": [{"ue": 4, "ack": False, "mcs": 20, "tbs": 5000, "tx": 1, "process": 3}],
           "ues": [{"ue": 4, "prbs": 40, "layers": 2, "buffer_bytes": 9000},
                   {"ue": 8, "prbs": 10, "layers": 1, "buffer_bytes": 0}]}


def _expected(model: OnnxPolicyModel) -> list[int]:
    report = SlotReport(slot=20, cqi_ue=np.array([0]), cqi_value=np.array([11]), cqi_slot=np.array([14]),
                        harq_ue=np.array([0]), harq_ack=np.array([False]), harq_mcs=np.array([20]),
                        harq_tbs=np.array([5000]), harq_tx=np.array([1]), harq_process=np.array([3]),
                        ue=np.array([0, 1]), prbs=np.array([40, 10]), layers=np.array([2, 1]),
                        buffer_bytes=np.array([9000, 0]))
    return model.decide_mcs(ObservationBuilder(2).observe_report(report), 2).tolist()


def test_decide_json(client, service):
    response = client.post("/ric/v1/decide", json=REQUEST)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [d["ue"] for d in body["decisions"]] == [4, 8] and body["model"] == service.model.version
    assert [d["mcs"] for d in body["decisions"]] == _expected(service.model)
    assert 'ranpd_xapp_decisions_total 2.0' in client.get("/ric/v1/metrics").text


@pytest.mark.parametrize("patch", [
    {"cqi": [{"ue": 4, "value": 16}]}, {"ues": [{"ue": 1, "prbs": 0}]}, {"slot": -1},
    {"ues": [{"ue": 1, "prbs": 5}, {"ue": 1, "prbs": 6}]}, {"mcs_table": 3},
])
def test_decide_rejects_invalid_json(client, patch):
    assert client.post("/ric/v1/decide", json={**REQUEST, **patch}).status_code == 422


def test_decide_rejects_nan_and_garbage(client):
    body = json.dumps(REQUEST).replace('"prbs": 40', '"prbs": NaN')
    assert client.post("/ric/v1/decide", content=body, headers={"Content-Type": "application/json"}).status_code == 422
    assert client.post("/ric/v1/decide", content=b"{not json").status_code == 422


def test_decide_protobuf(client, service):
    report = SlotReport(slot=20, cqi_ue=np.array([4]), cqi_value=np.array([11]), cqi_slot=np.array([14]),
                        harq_ue=np.array([4]), harq_ack=np.array([False]), harq_mcs=np.array([20]),
                        harq_tbs=np.array([5000]), harq_tx=np.array([1]), harq_process=np.array([3]),
                        ue=np.array([4, 8]), prbs=np.array([40, 10]), layers=np.array([2, 1]),
                        buffer_bytes=np.array([9000, 0]))
    envelope = la_codec.indication_envelope(report, request_id=e2.RicRequestId(requestor_id=1),
                                            sequence_number=3, deadline_ns=0)
    headers = {"Content-Type": "application/x-protobuf"}
    response = client.post("/ric/v1/decide", content=envelope.SerializeToString(), headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-protobuf"
    reply = e2.Envelope.FromString(response.content)
    decision = la_codec.decode_control(reply.ric_control_request)
    assert decision.slot == 20 and decision.mcs.tolist() == _expected(service.model)
    garbage = client.post("/ric/v1/decide", content=b"\xff\xff", headers=headers)
    assert garbage.status_code == 422
    assert e2.Envelope.FromString(garbage.content).error_indication.cause == e2.CAUSE_MALFORMED_MESSAGE
    service.models.current = None
    no_model = client.post("/ric/v1/decide", content=envelope.SerializeToString(), headers=headers)
    assert no_model.status_code == 503
    assert e2.Envelope.FromString(no_model.content).error_indication.cause == e2.CAUSE_NO_MODEL
    assert framing.message_type(reply) == "ric_control_request"
