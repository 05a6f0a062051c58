"""The xApp's REST API (FastAPI): routers per concern under /ric/v1; OpenAPI at /openapi.json
and interactive docs at /docs."""
from __future__ import annotations

from fastapi import FastAPI

from ranpd.xapp.routers import config, decide, health, metrics, model
from ranpd.xapp.service import XappService


def create_app(service: XappService) -> FastAPI:
    app = FastAPI(
        title="ranpd link-adaptation xApp",
        version=_version(),
        description="Near-RT RIC xApp choosing the PDSCH MCS of every scheduled UE with a "
                    "distilled student policy. E2 traffic uses the stream port; this API serves "
                    "health, configuration, metrics, the model and one-shot decisions.")
    app.state.service = service
    for router in (health.router, config.router, metrics.router, model.router, decide.router):
        app.include_router(router)
    return app


def _version() -> str:
    from importlib.metadata import version

    return version("ranpd")
