"""Prometheus exposition of the xApp's metrics, plus the process's own (CPU, RSS, open fds:
`process_*` from prometheus_client's ProcessCollector). `*_created` series are switched off
(`disable_created_metrics`): they double the series count and no dashboard here reads them."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest

from ranpd.xapp.routers.deps import get_service
from ranpd.xapp.service import XappService

router = APIRouter(prefix="/ric/v1", tags=["metrics"])
_PROCESS = CollectorRegistry()
ProcessCollector(registry=_PROCESS)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format 0.0.4"}})
def metrics(service: XappService = Depends(get_service)) -> Response:
    """Per-stage decision latency histograms, decisions, fallbacks, errors by cause, model info,
    and the process's CPU, memory and file descriptors."""
    return Response(generate_latest(service.metrics.registry) + generate_latest(_PROCESS),
                    media_type=CONTENT_TYPE_LATEST)
