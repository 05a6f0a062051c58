"""Onboarding: the xApp descriptor, its controls schema, the Kubernetes manifests and the compose file.

- xapp/config-file.json passes the O-RAN SC onboarder's checks (restated in
  tests/data/onboarder-descriptor-checks.schema.json; the onboarder's own schema too when
  RANPD_ONBOARDER_SCHEMA points at it), with xapp/schema.json as its controls schema, applied the
  onboarder's way, and the checks refuse the faults the descriptor used to have;
- xapp/schema.json agrees with XappSettings (every key a field, same bounds and defaults, and the
  same values refused), and the controls reach the settings;
- deploy/k8s and deploy/compose.yaml run the descriptor's image, command, ports and probes, on
  the routes the xApp serves, non-root with a read-only root and a writable numba cache.
"""
from __future__ import annotations

import ast
import copy
import json
import os
import re
import tomllib
from pathlib import Path

import annotated_types
import jsonschema
import pytest
import yaml

from ranpd.cli import main as cli
from ranpd.proto import e2ap_pb2
from ranpd.xapp.config import DESCRIPTOR_PATH, XappSettings

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTOR = ROOT / "xapp" / "config-file.json"
CONTROLS_SCHEMA = ROOT / "xapp" / "schema.json"
ONBOARDER_CHECKS = ROOT / "tests" / "data" / "onboarder-descriptor-checks.schema.json"
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

# Descriptor message names -> the ranpd.e2.Envelope oneof field each stands for.
E2_MESSAGES = {
    "E2_SETUP_REQ": "e2_setup_request", "E2_SETUP_RESP": "e2_setup_response",
    "RIC_SUB_REQ": "ric_subscription_request", "RIC_SUB_RESP": "ric_subscription_response",
    "RIC_SUB_DEL_REQ": "ric_subscription_delete_request",
    "RIC_SUB_DEL_RESP": "ric_subscription_delete_response",
    "RIC_INDICATION": "ric_indication", "RIC_CONTROL_REQ": "ric_control_request",
    "RIC_CONTROL_ACK": "ric_control_acknowledge", "RIC_CONTROL_FAILURE": "ric_control_failure",
    "RIC_ERROR_INDICATION": "error_indication",
    "RIC_E2_RESET_REQ": "reset_request", "RIC_E2_RESET_RESP": "reset_response",
}


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())


def descriptor() -> dict:
    return load_json(DESCRIPTOR)


def onboarder_schemas() -> list[tuple[str, dict]]:
    """The descriptor schemas to check against: the restated checks, and the onboarder's own one
    when RANPD_ONBOARDER_SCHEMA names a copy (its xapp_schema.py, or that dict as JSON)."""
    schemas = [("restated", load_json(ONBOARDER_CHECKS))]
    path = os.environ.get("RANPD_ONBOARDER_SCHEMA")
    if path:
        text = Path(path).read_text()
        if path.endswith(".py"):  # `schema = {...}`: read the literal, never execute the file
            tree = ast.parse(text)
            schema = next(ast.literal_eval(node.value) for node in tree.body
                          if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "schema")
        else:
            schema = json.loads(text)
        schemas.append(("onboarder", schema))
    return schemas


def onboard(config: dict, schema: dict, controls_schema: dict | None) -> None:
    """What the onboarder does with config-file.json and schema.json (api/onboard.py)."""
    combined = copy.deepcopy(schema)
    if controls_schema:
        combined["properties"]["controls"] = controls_schema
    jsonschema.Draft7Validator.check_schema(combined)
    jsonschema.validate(config, combined, cls=jsonschema.Draft7Validator)


SCHEMAS = onboarder_schemas()


@pytest.fixture(params=SCHEMAS, ids=[name for name, _ in SCHEMAS])
def onboarder_schema(request) -> dict:
    return request.param[1]


def test_upstream_schema_given_or_skipped():
    if len(SCHEMAS) == 1:
        pytest.skip("RANPD_ONBOARDER_SCHEMA not set: checked against the restated onboarder checks only "
                    "(tests/data/README.md)")


def test_descriptor_onboards(onboarder_schema):
    onboard(descriptor(), onboarder_schema, load_json(CONTROLS_SCHEMA))


def _break_registry(d):
    d["containers"][0]["image"]["registry"] = "localhost"


def _drop_policies(d):
    del ports(d)["e2"]["policies"]


def _drop_period(d):
    del d["readinessProbe"]["periodSeconds"]


def _port_as_string(d):
    ports(d)["e2"]["port"] = "36421"


def _bad_version(d):
    d["version"] = "0.1"


def _unknown_control(d):
    d["controls"]["ue_capacty"] = 10


def _out_of_range_control(d):
    d["controls"]["bler_target"] = 1.5


@pytest.mark.parametrize("fault", [_break_registry, _drop_policies, _drop_period, _port_as_string, _bad_version,
                                   _unknown_control, _out_of_range_control])
def test_onboarding_refuses_faults(onboarder_schema, fault):
    config = descriptor()
    fault(config)
    with pytest.raises(jsonschema.ValidationError):
        onboard(config, onboarder_schema, load_json(CONTROLS_SCHEMA))


def test_controls_need_their_schema(onboarder_schema):
    """The onboarder refuses a controls section when no controls schema comes with it."""
    with pytest.raises(jsonschema.ValidationError):
        onboard(descriptor(), onboarder_schema, None)


def ports(d: dict) -> dict[str, dict]:
    return {p["name"]: p for p in d["messaging"]["ports"]}


def test_e2_port_messages_are_envelope_messages():
    fields = {f.name for f in e2ap_pb2.Envelope.DESCRIPTOR.oneofs_by_name["message"].fields}
    assert set(E2_MESSAGES.values()) <= fields
    e2 = ports(descriptor())["e2"]
    for name in e2["txMessages"] + e2["rxMessages"]:
        assert name in E2_MESSAGES, f"descriptor names {name}, which no Envelope message stands for"
    assert "RIC_INDICATION" in e2["rxMessages"] and "RIC_CONTROL_REQ" in e2["txMessages"]


# --- the controls schema against XappSettings ---------------------------------------------------

def _bounds(field) -> dict:
    """A pydantic field's numeric bounds as JSON-schema keywords."""
    keywords = {annotated_types.Ge: ("ge", "minimum"), annotated_types.Gt: ("gt", "exclusiveMinimum"),
                annotated_types.Le: ("le", "maximum"), annotated_types.Lt: ("lt", "exclusiveMaximum")}
    out = {}
    for meta in field.metadata:
        for kind, (attribute, keyword) in keywords.items():
            if isinstance(meta, kind):
                out[keyword] = getattr(meta, attribute)
    return out


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("RANPD_XAPP_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_controls_schema_matches_settings():
    schema = load_json(CONTROLS_SCHEMA)
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    fields = XappSettings.model_fields
    for key, spec in schema["properties"].items():
        assert key in fields, f"controls key {key} is no XappSettings field"
        field = fields[key]
        assert spec.get("description"), key
        assert spec["default"] == field.default, key
        bounds = _bounds(field)
        if key == "bler_target":  # (0, 1) or "max": parse_bler_target's range
            assert spec["oneOf"][0]["exclusiveMinimum"] == 0 and spec["oneOf"][0]["exclusiveMaximum"] == 1
            assert spec["oneOf"][1] == {"const": "max"}
        else:
            assert {k: spec[k] for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
                    if k in spec} == bounds, key
    # host, ports, paths and the token are deployment's, not controls
    assert not {"host", "e2_port", "http_port", "admin_token", "model_path", "model_dir",
                "descriptor_path"} & set(schema["properties"])


def _edge_values(spec: dict) -> tuple[list, list]:
    """Values at the schema's edge that it accepts, and just beyond it that it refuses."""
    if "minimum" in spec:
        return [spec["minimum"]], [spec["minimum"] - 1]
    if "exclusiveMinimum" in spec:
        return [spec["exclusiveMinimum"] + 1e-6], [spec["exclusiveMinimum"]]
    if "enum" in spec:
        return list(spec["enum"]), ["verbose"]
    if "oneOf" in spec:
        return [1e-6, 0.999, "max"], [0, 1, "min"]
    return [], []


def test_controls_schema_refuses_what_settings_refuse(clean_env):
    schema = load_json(CONTROLS_SCHEMA)
    validator = jsonschema.Draft7Validator(schema)
    checked = 0
    for key, spec in schema["properties"].items():
        good, bad = _edge_values(spec)
        for value in good:
            assert validator.is_valid({key: value}), (key, value)
            XappSettings(**{key: value})
        for value in bad:
            assert not validator.is_valid({key: value}), (key, value)
            with pytest.raises(ValueError):
                XappSettings(**{key: value})
            checked += 1
    assert checked >= 12


def test_descriptor_controls_reach_the_settings(clean_env, tmp_path):
    config = descriptor()
    jsonschema.validate(config["controls"], load_json(CONTROLS_SCHEMA))
    settings = XappSettings()
    assert settings.descriptor_path == DESCRIPTOR_PATH
    for key, value in config["controls"].items():
        assert getattr(settings, key) == value, key
    config["controls"]["ue_capacity"] = 123
    config["controls"]["bler_target"] = "max"
    path = tmp_path / "config-file.json"
    path.write_text(json.dumps(config))
    clean_env.setenv("RANPD_XAPP_DESCRIPTOR_PATH", str(path))
    settings = XappSettings()
    assert (settings.ue_capacity, settings.bler_target) == (123, "max")


def test_controls_schema_ships_beside_the_descriptor():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"config-file.json", "schema.json"} <= set(package_data["ranpd.xapp"])


# --- manifests ----------------------------------------------------------------------------------

def k8s_objects() -> dict[str, dict]:
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                objects[doc["kind"]] = doc
    return objects


def dockerfile_env(name: str) -> str:
    match = re.search(rf"\b{name}=(\S+)", DOCKERFILE.read_text())
    assert match, f"Dockerfile sets no {name}"
    return match.group(1)


def health_routes() -> set[str]:
    from ranpd.xapp.routers.health import router
    return {route.path for route in router.routes}


def _resolve(port, container: dict) -> int:
    """A probe's or Service's port (number or container port name) as a number."""
    if isinstance(port, int):
        return port
    return {p["name"]: p["containerPort"] for p in container["ports"]}[port]


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml")
                                                         if p.name != "kustomization.yaml")


def test_deployment_runs_the_descriptor():
    d = descriptor()
    objects = k8s_objects()
    assert {"Deployment", "Service", "ConfigMap"} <= set(objects)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (described,) = d["containers"]
    image = described["image"]
    assert container["name"] == described["name"]
    assert container["image"] == f"{image['registry']}/{image['name']}:{image['tag']}"
    assert container["command"] == described["command"]
    args = container["command"]
    assert int(args[args.index("--e2-port") + 1]) == ports(d)["e2"]["port"]
    assert int(args[args.index("--http-port") + 1]) == ports(d)["http"]["port"]
    cli.get_command(None, "xapp").make_context("xapp", args[2:])  # the xApp's CLI takes these options
    # container ports: the descriptor's, by name
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        name: p["port"] for name, p in ports(d).items()}
    assert {p["name"]: p["port"] for p in d["messaging"]["ports"]} == {"e2": 36421, "http": 8080}
    # probes: the descriptor's paths, ports and timing, on routes the xApp serves
    for probe in ("livenessProbe", "readinessProbe"):
        ours, theirs = container[probe], d[probe]
        assert ours["httpGet"]["path"] == theirs["httpGet"]["path"]
        assert _resolve(ours["httpGet"]["port"], container) == theirs["httpGet"]["port"] == ports(d)["http"]["port"]
        assert ours["initialDelaySeconds"] == theirs["initialDelaySeconds"]
        assert ours["periodSeconds"] == theirs["periodSeconds"]
        assert ours["httpGet"]["path"] in health_routes()
    assert container["livenessProbe"]["httpGet"]["path"] == "/ric/v1/health/alive"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ric/v1/health/ready"
    assert "/ric/v1/health/alive" in DOCKERFILE.read_text()  # the image's HEALTHCHECK


def test_deployment_is_hardened():
    objects = k8s_objects()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    mounts_of_volume = {v["name"]: v for v in pod["volumes"]}
    for container in pod.get("initContainers", []) + pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["capabilities"]["drop"] == ["ALL"], container["name"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), (container["name"], kind)
        for mount in container.get("volumeMounts", []):
            assert "emptyDir" in mounts_of_volume[mount["name"]]
    (xapp,) = pod["containers"]
    writable = {m["mountPath"] for m in xapp["volumeMounts"]}
    # numba refuses to load its cache from a read-only NUMBA_CACHE_DIR; model checks write to /tmp
    assert {dockerfile_env("NUMBA_CACHE_DIR"), "/tmp"} <= writable
    # the init container seeds that cache from the same image
    (init,) = pod["initContainers"]
    assert init["image"] == xapp["image"]
    assert dockerfile_env("NUMBA_CACHE_DIR") in " ".join(init["command"])


def test_service_exposes_the_descriptor_ports():
    d = descriptor()
    objects = k8s_objects()
    service, deployment = objects["Service"], objects["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {n: p["port"] for n, p in ports(d).items()}
    for port in service["spec"]["ports"]:
        assert _resolve(port["targetPort"], container) == ports(d)[port["name"]]["port"]
        assert port.get("protocol", "TCP") == "TCP"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_configmap_holds_valid_xapp_settings(clean_env):
    objects = k8s_objects()
    configmap = objects["ConfigMap"]
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {"configMapRef": {"name": configmap["metadata"]["name"]}} in container["envFrom"]
    data = configmap["data"]
    assert data
    for name, value in data.items():
        assert isinstance(value, str), name  # ConfigMap data are strings
        field = name.removeprefix("RANPD_XAPP_").lower()
        assert name.startswith("RANPD_XAPP_") and field in XappSettings.model_fields, name
        assert field not in {"host", "e2_port", "http_port"}, f"{name}: the command sets it, the descriptor's"
        clean_env.setenv(name, value)
    XappSettings()  # every value is one the xApp accepts
    secret_env = {e["name"]: e for e in container.get("env", [])}
    assert secret_env["RANPD_XAPP_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_compose_runs_the_xapp_and_an_e2_node():
    d = descriptor()
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"xapp", "e2node"}
    xapp, node = services["xapp"], services["e2node"]
    assert xapp["image"] == node["image"] and xapp["build"]["context"] == ".."
    assert (COMPOSE.parent / xapp["build"]["context"] / xapp["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert xapp["command"] == d["containers"][0]["command"]
    published = {int(spec.rsplit(":", 1)[1]) for spec in xapp["ports"]}
    assert published == {p["port"] for p in d["messaging"]["ports"]}
    health = " ".join(xapp["healthcheck"]["test"])
    assert f":{ports(d)['http']['port']}{d['readinessProbe']['httpGet']['path']}" in health
    # the node reaches the xApp by its service name on the descriptor's E2 port, once it is ready
    args = node["command"]
    assert args[:2] == ["ranpd", "e2node"]
    assert args[args.index("--xapp") + 1] == f"xapp:{ports(d)['e2']['port']}"
    assert node["depends_on"]["xapp"]["condition"] == "service_healthy"
    defaults = [re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", a) for a in args[2:]]
    cli.get_command(None, "e2node").make_context("e2node", defaults)  # the node's CLI takes them
    # hardened like the Deployment, with a writable numba cache for each
    cache = dockerfile_env("NUMBA_CACHE_DIR")
    for name, service in services.items():
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert any(v.endswith(f":{cache}") for v in service["volumes"]), name
        assert "/tmp" in service["tmpfs"], name
