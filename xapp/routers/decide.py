"""One-shot decision: one LA indication in, one MCS per UE out (JSON or protobuf).

Stateless: the request's CQI and HARQ events are applied to fresh UE contexts (at the default
BLER target, without the per-UE guard, which needs a UE's history), then the UEs in `ues` are
decided. For stateful serving use the E2 stream. Both forms go through the same
codec validation and decision path as the E2 server, and the same UE cap
(`max_indication_ues` entries per list).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from google.protobuf.message import DecodeError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ranpd.proto import e2ap_pb2 as e2
from ranpd.proto import e2sm_la_pb2, la_codec
from ranpd.proto.framing import CodecError, wrap
from ranpd.xapp.routers.deps import error_responses, get_service, unprocessable
from ranpd.xapp.service import XappService
from ranpd.xapp.state import UeStateStore

router = APIRouter(prefix="/ric/v1", tags=["decide"])
UNPROCESSABLE = 422   # (starlette renamed the constant; the code is what counts)
PROTOBUF = "application/x-protobuf"


def _integral(value: Any) -> Any:
    """JSON Schema counts 7.0 as an integer (2020-12 §6.1.1 of the validation vocabulary)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_integral)]
Table = Annotated[Literal[1, 2], BeforeValidator(_integral)]
UeId = Field(ge=0, lt=1 << 32)


class _Strict(BaseModel):
    """Unknown fields and wrong JSON types (`false` or "5" for a number) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class CqiReport(_Strict):
    ue: Int = UeId
    value: Int = Field(ge=0, le=la_codec.MAX_CQI, description="wideband CQI (TS 38.214 §5.2.2.1)")
    age_slots: Int = Field(0, ge=0, lt=1 << 32, description="slots since the CSI reference resource")


class HarqFeedback(_Strict):
    ue: Int = UeId
    ack: bool
    mcs: Int = Field(ge=0, le=la_codec.MAX_MCS_INDEX, description="MCS of the acknowledged transmission")
    tbs: Int = Field(0, ge=0, lt=1 << 32, description="transport block size, bits")
    tx: Int = Field(1, ge=1, le=la_codec.MAX_HARQ_TX, description="transmission number, 1 = first")
    process: Int = Field(0, ge=0, le=la_codec.MAX_HARQ_PROCESS)


class ScheduledUe(_Strict):
    ue: Int = UeId
    prbs: Int = Field(ge=1, le=la_codec.MAX_PRBS)
    layers: Int = Field(1, ge=1, le=la_codec.MAX_LAYERS)
    buffer_bytes: Int = Field(0, ge=0, le=la_codec.MAX_INT64)


class DecideRequest(_Strict):
    """One LA indication. Each list holds at most `max_indication_ues` entries (default 4096) and
    names a UE at most once."""

    slot: Int = Field(ge=0, le=la_codec.MAX_SLOT)
    mcs_table: Table = Field(2, description="TS 38.214 Table 5.1.3.1-1 (1) or -2 (2)")
    cqi_table: Table = Field(2, description="TS 38.214 Table 5.2.2.1-2 (1) or -3 (2)")
    cqi: list[CqiReport] = Field(default_factory=list)
    harq: list[HarqFeedback] = Field(default_factory=list)
    ues: list[ScheduledUe] = Field(description="UEs scheduled for a new transmission: one MCS each")

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
    mcs: int = Field(description="MCS index in the request's MCS table")


class DecideResponse(BaseModel):
    slot: int
    model: str = Field(description="version of the model that decided")
    decisions: list[Decision]


def _decide(service: XappService, header: bytes, message: bytes):
    head, fields = la_codec.decode_indication(header, message, service.settings.max_indication_ues)
    service.check_mcs_table(head.mcs_table)
    n_ues = len(set(np.concatenate((fields["cqi_ue"], fields["harq_ue"], fields["ue"])).tolist()))
    store = UeStateStore(max(n_ues, 1), head.mcs_table, head.cqi_table, bler_target=service.bler_targets.default)
    ue, mcs = service.decide(store, fields)
    return head, ue, mcs


_STATUS = {e2.CAUSE_NO_MODEL: status.HTTP_503_SERVICE_UNAVAILABLE,
           e2.CAUSE_INFERENCE_FAILED: status.HTTP_500_INTERNAL_SERVER_ERROR}
_BINARY = {"type": "string", "format": "binary"}
_OPENAPI = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/DecideRequest"}},
    PROTOBUF: {"schema": {**_BINARY, "description": "ranpd.e2.Envelope with an LA INSERT RICIndication"}}}}}
_ERROR_PROTOBUF = {PROTOBUF: {"schema": {**_BINARY, "description": "ranpd.e2.Envelope with an ErrorIndication"}}}
_RESPONSES = {
    200: {"content": {PROTOBUF: {"schema": {**_BINARY, "description": "ranpd.e2.Envelope with the "
                                            "RICControlRequest the E2 server would send"}}}},
    **error_responses(_413="body larger than max_body_bytes", _415="neither JSON nor protobuf",
                      _422="invalid indication (`detail` names the field), or an MCS table the model was not trained for", _500="inference failed",
                      _503="no model loaded")}
for _code in (422, 500, 503):
    _RESPONSES[_code]["content"] = _ERROR_PROTOBUF


@router.post("/decide", response_model=DecideResponse, openapi_extra=_OPENAPI, responses=_RESPONSES)
async def decide(request: Request, service: XappService = Depends(get_service)):
    """MCS per scheduled UE for one slot. JSON: `DecideRequest` -> `DecideResponse`.
    `application/x-protobuf`: an Envelope holding an LA RICIndication -> an Envelope holding the
    RICControlRequest the E2 server would send (ErrorIndication with an HTTP error status)."""
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in ("application/json", PROTOBUF):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"Content-Type {media!r}: send application/json or {PROTOBUF}")
    body = await request.body()
    if media == PROTOBUF:
        return _decide_protobuf(service, body)
    try:
        parsed = DecideRequest.model_validate_json(body)
    except ValidationError as exc:
        raise unprocessable(exc)
    cap = service.settings.max_indication_ues
    too_long = [{"loc": ["body", name], "msg": f"at most {cap} entries (max_indication_ues)", "type": "too_long"}
                for name in ("cqi", "harq", "ues") if len(getattr(parsed, name)) > cap]
    if too_long:
        raise HTTPException(UNPROCESSABLE, too_long)
    try:
        head, ue, mcs = _decide(service, *parsed.to_proto())
    except CodecError as exc:
        raise HTTPException(_STATUS.get(exc.cause, UNPROCESSABLE), f"{e2.Cause.Name(exc.cause)}: {exc.text}")
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
