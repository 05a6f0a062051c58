"""The effective configuration and the onboarded descriptor; the operator's BLER target per E2 node.

LA indications carry no cell id, so the target is set per E2 node (a cell, or the cells of one
DU): a default for every node, and a target of its own for any node. A change reaches the
node's UE contexts at its next indication (`ObservationBuilder.set_bler_target`: the price each
observation carries) and applies to UEs that join later. As for model upload, the bearer token
is checked before the body is read (the route reads its own body).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ranpd.xapp.budgets import E2Limits
from ranpd.xapp.config import XappDescriptor
from ranpd.xapp.routers.deps import ADMIN_RESPONSES, error_responses, get_service, require_admin, unprocessable
from ranpd.xapp.service import MAX_TARGET_NODES, XappService

router = APIRouter(prefix="/ric/v1", tags=["config"])

Target = Annotated[float, Field(gt=0.0, lt=1.0)] | Literal["max"]
NODE_ID_CHARS = E2Limits.model_fields["max_node_id_chars"].default


@router.get("/config")
def config(service: XappService = Depends(get_service)) -> dict[str, Any]:
    """Settings in effect (the admin token only as `admin_token_set`) and the descriptor."""
    settings = service.settings
    return {"settings": settings.public(),
            "descriptor": XappDescriptor.load(settings.descriptor_path).model_dump(mode="json")}


class BlerTargets(BaseModel):
    """First-tx BLER targets in effect: a number in (0, 1), or "max" (throughput mode)."""

    default: Target = Field(description="target of every E2 node without one of its own")
    nodes: dict[str, Target] = Field(description="targets of single E2 nodes, by global E2 node id")


class BlerTargetUpdate(BaseModel):
    """Set the default target (no `node`) or one E2 node's."""

    model_config = ConfigDict(extra="forbid", strict=True)
    target: Target = Field(description='first-tx BLER target in (0, 1), or "max" for throughput mode')
    node: str | None = Field(None, min_length=1, max_length=NODE_ID_CHARS, pattern=r"^[ -~]+$",
                             description="global E2 node id (printable ASCII); absent: the default")


def _external(target: float | None) -> float | str:
    return "max" if target is None else target


def _targets(service: XappService) -> BlerTargets:
    targets = service.bler_targets
    return BlerTargets(default=_external(targets.default),
                       nodes={node: _external(t) for node, t in list(targets.nodes.items())})


@router.get("/config/bler-target", response_model=BlerTargets)
def get_bler_target(service: XappService = Depends(get_service)) -> BlerTargets:
    """The operator's first-tx BLER targets: the default and those of single E2 nodes."""
    return _targets(service)


_UPDATE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/BlerTargetUpdate"}}}}}


@router.put("/config/bler-target", response_model=BlerTargets, dependencies=[Depends(require_admin)],
            openapi_extra=_UPDATE_BODY, responses={**ADMIN_RESPONSES, **error_responses(
                _409=f"{MAX_TARGET_NODES} nodes have a target of their own already",
                _413="body larger than max_body_bytes",
                _422="not JSON, a target neither in (0, 1) nor \"max\", or a bad node id")})
async def put_bler_target(request: Request, service: XappService = Depends(get_service)) -> BlerTargets:
    """Set the default first-tx BLER target or one E2 node's (admin; body: `BlerTargetUpdate`).
    The node's UEs hold it from its next indication on; "max" is throughput mode. Answers the
    targets now in effect."""
    try:
        update = BlerTargetUpdate.model_validate_json(await request.body())
    except ValidationError as exc:
        raise unprocessable(exc)
    try:
        service.set_bler_target(None if update.target == "max" else update.target, update.node)
    except OverflowError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return _targets(service)
