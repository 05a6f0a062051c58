"""Dependencies shared by the routers: the service and the admin bearer-token check."""
from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ranpd.xapp.service import XappService

_bearer = HTTPBearer(auto_error=False, description="admin token (RANPD_XAPP_ADMIN_TOKEN)")


def get_service(request: Request) -> XappService:
    return request.app.state.service


def require_admin(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
                  service: XappService = Depends(get_service)) -> None:
    token = service.settings.admin_token
    if token is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "model upload is disabled: no admin token configured (RANPD_XAPP_ADMIN_TOKEN)")
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(),
                                                      token.get_secret_value().encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong admin bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
