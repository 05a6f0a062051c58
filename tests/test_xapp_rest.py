"""The xApp's REST API: health, config, metrics, model card and upload (auth), decide."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto import framing, la_codec
from ranpd.simulator.observation import ObservationBuilder
from ranpd.simulator.report import SlotReport
from ranpd.xapp.api import create_app
from ranpd.xapp.config import XappDescriptor, XappSettings
from ranpd.xapp.limits import BodyLimit
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.model_card import ModelCard, card_path_for
from ranpd.xapp.service import XappService, load_configured_model
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


def test_bad_setting_names_the_field(monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("RANPD_XAPP_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError) as err:
        XappSettings()
    assert [e["loc"] for e in err.value.errors()] == [("log_level",)]
    monkeypatch.setenv("RANPD_XAPP_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("RANPD_XAPP_MAX_INDICATION_UES", "0")
    with pytest.raises(ValidationError) as err:
        XappSettings()
    assert [e["loc"] for e in err.value.errors()] == [("max_indication_ues",)]


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
    builder = ObservationBuilder(2)
    return model.decide_mcs(builder.observe_report(report), 2, builder.cqi[report.ue]).tolist()


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


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_openapi_defines_every_schema_it_references(client):
    document = client.get("/openapi.json").json()
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            refs.update(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(document)
    defined = {f"#/components/schemas/{name}" for name in document["components"]["schemas"]}
    assert "#/components/schemas/DecideRequest" in refs and refs <= defined
    decide = document["paths"]["/ric/v1/decide"]["post"]
    assert {"413", "415", "422", "503"} <= set(decide["responses"])
    assert document["components"]["schemas"]["DecideRequest"]["additionalProperties"] is False
    assert {"401", "403", "409", "413", "422"} <= set(document["paths"]["/ric/v1/model"]["put"]["responses"])


def test_metrics_have_process_series_and_no_created_series(client):
    text = client.get("/ric/v1/metrics").text
    assert "process_resident_memory_bytes" in text and "process_open_fds" in text
    assert "_created" not in text


def _body_limit_app(limit):
    """A FastAPI echo of the body length behind BodyLimit."""
    app = FastAPI()

    @app.post("/")
    async def length(request: Request) -> int:
        return len(await request.body())
    return BodyLimit(app, lambda method, path: limit)


def test_body_limit_refuses_a_declared_length_without_reading_and_cuts_a_stream():
    app = _body_limit_app(100)
    reads = []

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"x" * 200, "more_body": False}
    sent = []

    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"200")],
             "query_string": b"", "root_path": ""}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413 and reads == []
    client = TestClient(app)
    assert client.post("/", content=b"x" * 100).text == "100"
    streamed = client.post("/", content=iter([b"x" * 60, b"x" * 60]))       # chunked: no Content-Length
    assert streamed.status_code == 413 and "limit of 100 bytes" in streamed.json()["detail"]


def test_upload_checks_the_token_before_reading_the_body(service, paths):
    app = create_app(service)
    for headers, status in (([], 401), ([(b"authorization", b"Bearer nope")], 401)):
        sent = []

        async def receive():
            raise AssertionError("the body was read before the bearer check")

        async def send(message):
            sent.append(message)
        scope = {"type": "http", "method": "PUT", "path": "/ric/v1/model", "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000"), *headers]}
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == status
    too_big = TestClient(app).put("/ric/v1/model", content=b"x", headers={
        **AUTH, "Content-Length": str(service.settings.max_model_bytes * 2)})
    assert too_big.status_code == 413


@pytest.mark.parametrize("patch, field", [
    ({"slot": 1 << 63}, ["body", "slot"]),
    ({"ues": [{"ue": 1, "prbs": 5, "buffer_bytes": 1 << 63}]}, ["body", "ues", 0, "buffer_bytes"]),
    ({"ues": [{"ue": -1, "prbs": 5}]}, ["body", "ues", 0, "ue"]),
    ({"ues": [{"ue": 1, "prbs": False}]}, ["body", "ues", 0, "prbs"]),
    ({"ues": [{"ue": 1, "prbs": 5, "colour": "red"}]}, ["body", "ues", 0, "colour"]),
    ({"extra": 1}, ["body", "extra"]),
    ({"harq": [{"ue": 1, "ack": 1, "mcs": 3}]}, ["body", "harq", 0, "ack"]),
    ({"ues": [{"ue": u, "prbs": 5} for u in range(4)]}, ["body", "ues"]),
])
def test_decide_names_the_invalid_field(client, service, patch, field):
    service.settings.max_indication_ues = 3
    response = client.post("/ric/v1/decide", json={**REQUEST, **patch})
    assert response.status_code == 422 and [e["loc"] for e in response.json()["detail"]] == [field]


def test_decide_protobuf_caps_ues_and_names_bad_columns(client, service):
    from ranpd.proto import e2sm_la_pb2

    service.settings.max_indication_ues = 3
    headers = {"Content-Type": "application/x-protobuf"}

    def post(**message):
        header = e2sm_la_pb2.LaIndicationHeader(slot=5, mcs_table=2, cqi_table=2).SerializeToString()
        indication = e2.RICIndication(header=header, message=e2sm_la_pb2.LaIndicationMessage(**message).SerializeToString())
        response = client.post("/ric/v1/decide", content=framing.wrap(indication).SerializeToString(), headers=headers)
        return response.status_code, e2.Envelope.FromString(response.content).error_indication
    code, error = post(ue=[1, 2, 3, 4], prbs=[5] * 4, layers=[1] * 4, buffer_bytes=[0] * 4)
    assert code == 422 and error.cause == e2.CAUSE_OVERLOAD and "at most 3" in error.text
    code, error = post(ue=[1, 2], prbs=[5], layers=[1, 1], buffer_bytes=[0, 0])
    assert code == 422 and error.cause == e2.CAUSE_INVALID_FIELD and "prbs" in error.text
    code, error = post(ue=[1], prbs=[5], layers=[1], buffer_bytes=[1 << 63])
    assert code == 422 and error.cause == e2.CAUSE_INVALID_FIELD and "buffer_bytes" in error.text


def test_decide_refuses_other_media_types(client):
    response = client.post("/ric/v1/decide", content=json.dumps(REQUEST), headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_upload_persists_and_rolls_back(paths, tmp_path):
    settings = XappSettings(admin_token=TOKEN, model_dir=tmp_path / "models")
    first = OnnxPolicyModel.load(paths[0])
    client = TestClient(create_app(XappService(settings, first)))
    assert client.post("/ric/v1/model/rollback", headers=AUTH).status_code == 409
    assert client.post("/ric/v1/model/rollback").status_code == 401
    installed = client.put("/ric/v1/model", json=_upload(paths[1]), headers=AUTH).json()
    assert installed["persisted"] is True and installed["previous"] == first.version
    assert installed["latency"]["batch"] == 64

    restarted = XappService(settings, load_configured_model(settings))        # a restart
    assert restarted.model.version == installed["version"]
    client = TestClient(create_app(restarted))
    back = client.post("/ric/v1/model/rollback", headers=AUTH)
    assert back.status_code == 200 and back.json()["version"] == first.version
    assert back.json()["previous"] == installed["version"]
    assert load_configured_model(settings).version == first.version             # survives a restart too


def test_a_second_model_change_during_validation_is_refused(service, paths):
    import httpx

    async def two_uploads():
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://xapp") as client:
            return await asyncio.gather(*(client.put("/ric/v1/model", json=_upload(paths[1]), headers=AUTH)
                                          for _ in range(2)))
    codes = sorted(r.status_code for r in asyncio.run(two_uploads()))
    assert codes == [200, 409]


@contextlib.contextmanager
def xapp_process(env: dict[str, str]):
    """A real `ranpd xapp` process on free ports: yields (Popen, REST port); killed at exit."""
    env = {**os.environ, "RANPD_XAPP_LOG_LEVEL": "warning", **env}
    xapp = subprocess.Popen([sys.executable, "-c", "from ranpd.cli import main; main()", "xapp", "--e2-port", "0",
                             "--http-port", "0"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        port = next((int(m.group(1)) for line in xapp.stderr if (m := re.search(r"REST http://[^:]+:(\d+)", line))),
                    None)
        assert port, "the xApp did not start"
        yield xapp, port
    finally:
        if xapp.poll() is None:
            xapp.kill()
        xapp.wait()


def _peak_rss_mb(pid: int) -> int:
    return int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{pid}/status").read()).group(1)) // 1024


def test_oversized_bodies_cost_the_xapp_no_memory(paths):
    """8 parallel 50 MB uploads (with and without the token) and 8 /decide indications naming
    1M UEs (5 MB) are refused before their bodies are read; 8 unauthenticated 20 MB uploads
    (under the size limit) before theirs are parsed. The process's peak RSS barely moves (before
    these limits, 8 such uploads cost +820 MB)."""
    import concurrent.futures

    import httpx

    from ranpd.proto import e2sm_la_pb2

    n = 1_000_000
    indication = e2.RICIndication(
        header=e2sm_la_pb2.LaIndicationHeader(slot=1, mcs_table=2, cqi_table=2).SerializeToString(),
        message=e2sm_la_pb2.LaIndicationMessage(ue=range(n), prbs=[5] * n, layers=[1] * n,
                                                buffer_bytes=[0] * n).SerializeToString())
    big = b"x" * (50 << 20)
    abuse = [("PUT", "/ric/v1/model", big, {}, 413), ("PUT", "/ric/v1/model", big, AUTH, 413),
             ("PUT", "/ric/v1/model", big[:20 << 20], {}, 401),
             ("POST", "/ric/v1/decide", framing.wrap(indication).SerializeToString(),
              {"Content-Type": "application/x-protobuf"}, 413)]
    with xapp_process({"RANPD_XAPP_ADMIN_TOKEN": TOKEN, "RANPD_XAPP_MODEL_PATH": str(paths[0])}) as (xapp, port):
        before = _peak_rss_mb(xapp.pid)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for method, path, body, headers, status in abuse:
                codes = set(pool.map(lambda _: httpx.request(method, f"http://127.0.0.1:{port}{path}", content=body,
                                                             headers=headers, timeout=60).status_code, range(8)))
                assert codes == {status}, (path, codes)
        grown = _peak_rss_mb(xapp.pid) - before
        print(f"peak RSS {before} MB -> +{grown} MB")
        assert grown < 40
