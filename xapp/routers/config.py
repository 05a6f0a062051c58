"""The effective configuration and the onboarded descriptor."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from ranpd.xapp.config import XappDescriptor
from ranpd.xapp.routers.deps import get_service
from ranpd.xapp.service import XappService

router = APIRouter(prefix="/ric/v1", tags=["config"])


@router.get("/config")
def config(service: XappService = Depends(get_service)) -> dict[str, Any]:
    """Settings in effect (the admin token only as `admin_token_set`) and the descriptor."""
    settings = service.settings
    return {"settings": settings.public(),
            "descriptor": XappDescriptor.load(settings.descriptor_path).model_dump(mode="json")}
