"""Shared by the routers: the service, the admin bearer-token check, and the error body."""
from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from ranpd.xapp.service import XappService

_bearer = HTTPBearer(auto_error=False, description="admin token (RANPD_XAPP_ADMIN_TOKEN)")


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: `detail` says why; for invalid fields, one entry per field with
    its location (e.g. ["body", "ues", 0, "prbs"])."""

    detail: str | list[FieldError]


def error_responses(*codes: int, **descriptions: str) -> dict:
    """OpenAPI `responses` entries with the error body: `error_responses(401, _422="...")`."""
    described = {int(k.lstrip("_")): v for k, v in descriptions.items()}
    return {code: {"model": ErrorBody, "description": described.get(code, "error")}
            for code in (*codes, *described)}


ADMIN_RESPONSES = error_responses(_401="missing or wrong bearer token",
                                  _403="no admin token configured: changes are disabled")


def unprocessable(exc: ValidationError, where: str = "body") -> HTTPException:
    """A 422 naming each invalid field (no echo of the input)."""
    return HTTPException(422, [{"loc": [where, *err["loc"]], "msg": err["msg"], "type": err["type"]}
                               for err in exc.errors(include_url=False)])


def get_service(request: Request) -> XappService:
    return request.app.state.service


def require_admin(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
                  service: XappService = Depends(get_service)) -> None:
    token = service.settings.admin_token
    if token is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "changes are disabled: no admin token configured (RANPD_XAPP_ADMIN_TOKEN)")
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(),
                                                      token.get_secret_value().encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong admin bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
