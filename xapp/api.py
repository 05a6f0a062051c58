"""The xApp's REST API (FastAPI): routers per concern under /ric/v1; OpenAPI at /openapi.json
and interactive docs at /docs.

Limits come before work: `BodyLimit` refuses a body over the route's limit before reading it,
the admin routes check the bearer token before reading theirs, and `/decide` caps the UEs of one
request (see `XappSettings`).
"""
from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import disable_created_metrics
from pydantic.json_schema import models_json_schema
from starlette.routing import Match

from ranpd.xapp.limits import BodyLimit
from ranpd.xapp.model_store import ModelStore
from ranpd.xapp.routers import config, decide, health, metrics, model
from ranpd.xapp.service import XappService

MODEL_PATH = "/ric/v1/model"
# Bodies the routes read themselves (after their checks), so FastAPI does not put them in the
# document: their schemas are added to its components here.
_OWN_BODIES = (decide.DecideRequest, model.ModelUpload, config.BlerTargetUpdate)


def create_app(service: XappService) -> FastAPI:
    settings = service.settings
    disable_created_metrics()
    app = FastAPI(
        title="ranpd link-adaptation xApp",
        version=_version(),
        description="Near-RT RIC xApp choosing the PDSCH MCS of every scheduled UE with a "
                    "distilled student policy. E2 traffic uses the stream port; this API serves "
                    "health, configuration, metrics, the model and one-shot decisions.")
    app.state.service = service
    app.state.model_store = store = ModelStore(settings.model_dir)
    app.state.model_lock = asyncio.Lock()
    if service.model is not None:
        store.seed(service.model.onnx_bytes, service.model.card)
    for router in (health.router, config.router, metrics.router, model.router, decide.router):
        app.include_router(router)
    model_body = -(-settings.max_model_bytes // 3) * 4 + settings.max_body_bytes   # base64 + the card
    app.add_middleware(BodyLimit, limit_for=lambda method, path: model_body if (
        method == "PUT" and path == MODEL_PATH) else settings.max_body_bytes)
    app.openapi = lambda: _openapi(app)
    app.add_exception_handler(405, _method_not_allowed)
    return app


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 with `Allow` naming every method of the path (RFC 9110 §15.5.6); Starlette names only
    those of the first route that matches it."""
    methods = sorted({method for route in request.app.routes
                      if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE
                      for method in route.methods})
    return JSONResponse({"detail": "Method Not Allowed"}, 405, headers={"Allow": ", ".join(methods)})


def _openapi(app: FastAPI) -> dict:
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, description=app.description,
                               routes=app.routes)
        _, schemas = models_json_schema([(body, "validation") for body in _OWN_BODIES],
                                        ref_template="#/components/schemas/{model}")
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in schemas.get("$defs", {}).items():
            components.setdefault(name, schema)
        cap = app.state.service.settings.max_indication_ues       # as configured, not a constant
        for name in ("cqi", "harq", "ues"):
            components["DecideRequest"]["properties"][name]["maxItems"] = cap
        app.openapi_schema = document
    return app.openapi_schema


def _version() -> str:
    from importlib.metadata import version

    return version("ranpd")
