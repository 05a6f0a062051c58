"""One-shot decision: one LA indication in, one MCS per UE out (JSON or protobuf).

Stateless: the request's CQI and HARQ events are applied to fresh UE contexts, then the UEs
in `ues` are decided. For stateful serving use the E2 stream. Both forms go through the same
codec validation and decision path as the E2 server.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from google.protobuf.message import DecodeError
from pydantic import BaseModel, Field, ValidationError

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto import e2sm_la_pb2, la_codec
from ranpd.proto.framing import CodecError, wrap
from ranpd.xapp.routers.deps import get_service
from ranpd.xapp.service import XappService
from ranpd.xapp.state import UeStateStore

router = APIRouter(prefix="/ric/v1", tags=["decide"])
UNPROCESSABLE = 422   # (starlette renamed the constant; the code is what counts)
PROTOBUF = "application/x-protobuf"
MAX_UES = 4096
UeId = Field(ge=0, lt=1 << 32)


class CqiReport(BaseModel):
    ue: int = UeId
    value: int = Field(ge=0, le=la_codec.MAX_CQI)
    age_slots: int = Field(0, ge=0, lt=1 << 32)


class HarqFeedback(BaseModel):
    ue: int = UeId
    ack: bool
    mcs: int = Field(ge=0, le=la_codec.MAX_MCS_INDEX)
    tbs: int = Field(0, ge=0, lt=1 << 32)
    tx: int = Field(1, ge=1, le=la_codec.MAX_HARQ_TX)
    process: int = Field(0, ge=0, le=la_codec.MAX_HARQ_PROCESS)


class ScheduledUe(BaseModel):
    ue: int = UeId
    prbs: int = Field(ge=1, le=la_codec.MAX_PRBS)
    layers: int = Field(1, ge=1, le=la_codec.MAX_LAYERS)
    buffer_bytes: int = Field(0, ge=0, lt=1 << 64)


class DecideRequest(BaseModel):
    slot: int = Field(ge=0, lt=1 << 64)
    mcs_table: Literal[1, 2] = 2
    cqi_table: Literal[1, 2] = 2
    cqi: list[CqiReport] = Field(default_factory=list, max_length=MAX_UES)
    harq: list[HarqFeedback] = Field(default_factory=list, max_length=MAX_UES)
    ues: list[ScheduledUe] = Field(max_length=MAX_UES)

    def to_proto(self) -> tuple[bytes, bytes]:
        header = e2sm_la_pb2.LaIndicationHeader(slot=self.slot, mcs_table=self.mcs_table,
                                                cqi_table=self.cqi_table)
        message = e2sm_la_pb2.LaIndicationMessage(
            cqi_ue=[c.ue for c in self.cqi], cqi_value=[c.value for c in self.cqi],
            cqi_age_slots=[c.age_slots for c in self.cqi],
            harq_ue=[h.ue for h in self.harq], harq_ack=[h.ack for h in self.harq],
            harq_mcs=[h.mcs for h in self.harq], harq_tbs=[h.tbs for h in self.harq],
            harq_tx=[h.tx for h in self.harq], harq_process=[h.process for h in self.harq],
            ue=[u.ue for u in self.ues], prbs=[u.prbs for u in self.ues],
            layers=[u.layers for u in self.ues], buffer_bytes=[u.buffer_bytes for u in self.ues])
        return header.SerializeToString(), message.SerializeToString()


class Decision(BaseModel):
    ue: int
    mcs: int


class DecideResponse(BaseModel):
    slot: int
    model: str
    decisions: list[Decision]


def _decide(service: XappService, header: bytes, message: bytes):
    head, fields = la_codec.decode_indication(header, message)
    n_ues = len(set(np.concatenate((fields["cqi_ue"], fields["harq_ue"], fields["ue"])).tolist()))
    store = UeStateStore(max(n_ues, 1), head.mcs_table, head.cqi_table)
    ue, mcs = service.decide(store, fields)
    return head, ue, mcs


_STATUS = {e2.CAUSE_NO_MODEL: status.HTTP_503_SERVICE_UNAVAILABLE,
           e2.CAUSE_INFERENCE_FAILED: status.HTTP_500_INTERNAL_SERVER_ERROR}

_OPENAPI = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/DecideRequest"}},
    PROTOBUF: {"schema": {"type": "string", "format": "binary",
                          "description": "ranpd.e2.Envelope with an LA INSERT RICIndication"}}}}}


@router.post("/decide", response_model=DecideResponse, openapi_extra=_OPENAPI,
             responses={200: {"content": {PROTOBUF: {"schema": {
                 "type": "string", "format": "binary",
                 "description": "ranpd.e2.Envelope with a RICControlRequest (or ErrorIndication on error)"}}}},
                 422: {"description": "invalid indication"}, 503: {"description": "no model loaded"}})
async def decide(request: Request, service: XappService = Depends(get_service)):
    """MCS per scheduled UE for one slot. JSON: `DecideRequest` -> `DecideResponse`.
    `application/x-protobuf`: an Envelope holding an LA RICIndication -> an Envelope holding the
    RICControlRequest the E2 server would send (ErrorIndication with an HTTP error status)."""
    body = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip() == PROTOBUF:
        return _decide_protobuf(service, body)
    try:
        parsed = DecideRequest.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(UNPROCESSABLE, exc.errors(include_url=False, include_input=False, include_context=False))
    try:
        head, ue, mcs = _decide(service, *parsed.to_proto())
    except CodecError as exc:
        raise HTTPException(_STATUS.get(exc.cause, UNPROCESSABLE),
                            f"{e2.Cause.Name(exc.cause)}: {exc.text}")
    return DecideResponse(slot=head.slot, model=service.model.version,
                          decisions=[Decision(ue=u, mcs=m) for u, m in zip(ue.tolist(), mcs.tolist())])


def _decide_protobuf(service: XappService, body: bytes) -> Response:
    def reply(message, code=status.HTTP_200_OK) -> Response:
        return Response(wrap(message).SerializeToString(), status_code=code, media_type=PROTOBUF)

    try:
        indication = e2.Envelope.FromString(body).ric_indication
    except (DecodeError, RuntimeError, ValueError) as exc:
        return reply(e2.ErrorIndication(cause=e2.CAUSE_MALFORMED_MESSAGE, text=f"body is not an Envelope: {exc}"),
                     UNPROCESSABLE)
    try:
        head, ue, mcs = _decide(service, indication.header, indication.message)
    except CodecError as exc:
        return reply(e2.ErrorIndication(request_id=indication.request_id, cause=exc.cause, text=exc.text,
                                        sequence_number=indication.sequence_number),
                     _STATUS.get(exc.cause, UNPROCESSABLE))
    header, message = la_codec.encode_control(head.slot, indication.sequence_number, ue, mcs)
    return reply(e2.RICControlRequest(request_id=indication.request_id,
                                      ran_function_id=indication.ran_function_id,
                                      call_process_id=indication.call_process_id,
                                      header=header, message=message))
