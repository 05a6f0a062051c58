from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProtocolVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_VERSION_UNSPECIFIED: _ClassVar[ProtocolVersion]
    PROTOCOL_VERSION_1: _ClassVar[ProtocolVersion]

class Cause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAUSE_UNSPECIFIED: _ClassVar[Cause]
    CAUSE_PROTOCOL_VERSION: _ClassVar[Cause]
    CAUSE_MALFORMED_MESSAGE: _ClassVar[Cause]
    CAUSE_MESSAGE_TOO_LARGE: _ClassVar[Cause]
    CAUSE_UNKNOWN_MESSAGE_TYPE: _ClassVar[Cause]
    CAUSE_MESSAGE_NOT_COMPATIBLE: _ClassVar[Cause]
    CAUSE_UNKNOWN_RAN_FUNCTION: _ClassVar[Cause]
    CAUSE_UNKNOWN_SUBSCRIPTION: _ClassVar[Cause]
    CAUSE_INVALID_FIELD: _ClassVar[Cause]
    CAUSE_UNKNOWN_UE: _ClassVar[Cause]
    CAUSE_ACTION_NOT_SUPPORTED: _ClassVar[Cause]
    CAUSE_NO_MODEL: _ClassVar[Cause]
    CAUSE_INFERENCE_FAILED: _ClassVar[Cause]
    CAUSE_CONTROL_TOO_LATE: _ClassVar[Cause]
    CAUSE_OVERLOAD: _ClassVar[Cause]
    CAUSE_MCS_TABLE_NOT_SUPPORTED: _ClassVar[Cause]

class ActionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_TYPE_UNSPECIFIED: _ClassVar[ActionType]
    ACTION_TYPE_REPORT: _ClassVar[ActionType]
    ACTION_TYPE_INSERT: _ClassVar[ActionType]
    ACTION_TYPE_POLICY: _ClassVar[ActionType]

class IndicationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDICATION_TYPE_UNSPECIFIED: _ClassVar[IndicationType]
    INDICATION_TYPE_REPORT: _ClassVar[IndicationType]
    INDICATION_TYPE_INSERT: _ClassVar[IndicationType]

class ControlAckRequest(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTROL_ACK_REQUEST_NO_ACK: _ClassVar[ControlAckRequest]
    CONTROL_ACK_REQUEST_ACK: _ClassVar[ControlAckRequest]
    CONTROL_ACK_REQUEST_NACK: _ClassVar[ControlAckRequest]
PROTOCOL_VERSION_UNSPECIFIED: ProtocolVersion
PROTOCOL_VERSION_1: ProtocolVersion
CAUSE_UNSPECIFIED: Cause
CAUSE_PROTOCOL_VERSION: Cause
CAUSE_MALFORMED_MESSAGE: Cause
CAUSE_MESSAGE_TOO_LARGE: Cause
CAUSE_UNKNOWN_MESSAGE_TYPE: Cause
CAUSE_MESSAGE_NOT_COMPATIBLE: Cause
CAUSE_UNKNOWN_RAN_FUNCTION: Cause
CAUSE_UNKNOWN_SUBSCRIPTION: Cause
CAUSE_INVALID_FIELD: Cause
CAUSE_UNKNOWN_UE: Cause
CAUSE_ACTION_NOT_SUPPORTED: Cause
CAUSE_NO_MODEL: Cause
CAUSE_INFERENCE_FAILED: Cause
CAUSE_CONTROL_TOO_LATE: Cause
CAUSE_OVERLOAD: Cause
CAUSE_MCS_TABLE_NOT_SUPPORTED: Cause
ACTION_TYPE_UNSPECIFIED: ActionType
ACTION_TYPE_REPORT: ActionType
ACTION_TYPE_INSERT: ActionType
ACTION_TYPE_POLICY: ActionType
INDICATION_TYPE_UNSPECIFIED: IndicationType
INDICATION_TYPE_REPORT: IndicationType
INDICATION_TYPE_INSERT: IndicationType
CONTROL_ACK_REQUEST_NO_ACK: ControlAckRequest
CONTROL_ACK_REQUEST_ACK: ControlAckRequest
CONTROL_ACK_REQUEST_NACK: ControlAckRequest

class RanFunction(_message.Message):
    __slots__ = ("id", "revision", "name", "oid")
    ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OID_FIELD_NUMBER: _ClassVar[int]
    id: int
    revision: int
    name: str
    oid: str
    def __init__(self, id: _Optional[int] = ..., revision: _Optional[int] = ..., name: _Optional[str] = ..., oid: _Optional[str] = ...) -> None: ...

class RanFunctionRejection(_message.Message):
    __slots__ = ("ran_function_id", "cause")
    RAN_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    ran_function_id: int
    cause: Cause
    def __init__(self, ran_function_id: _Optional[int] = ..., cause: _Optional[_Union[Cause, str]] = ...) -> None: ...

class E2SetupRequest(_message.Message):
    __slots__ = ("global_e2_node_id", "ran_functions")
    GLOBAL_E2_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    RAN_FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    global_e2_node_id: str
    ran_functions: _containers.RepeatedCompositeFieldContainer[RanFunction]
    def __init__(self, global_e2_node_id: _Optional[str] = ..., ran_functions: _Optional[_Iterable[_Union[RanFunction, _Mapping]]] = ...) -> None: ...

class E2SetupResponse(_message.Message):
    __slots__ = ("global_ric_id", "accepted_ran_function_ids", "rejected")
    GLOBAL_RIC_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_RAN_FUNCTION_IDS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    global_ric_id: str
    accepted_ran_function_ids: _containers.RepeatedScalarFieldContainer[int]
    rejected: _containers.RepeatedCompositeFieldContainer[RanFunctionRejection]
    def __init__(self, global_ric_id: _Optional[str] = ..., accepted_ran_function_ids: _Optional[_Iterable[int]] = ..., rejected: _Optional[_Iterable[_Union[RanFunctionRejection, _Mapping]]] = ...) -> None: ...

class RicRequestId(_message.Message):
    __slots__ = ("requestor_id", "instance_id")
    REQUESTOR_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    requestor_id: int
    instance_id: int
    def __init__(self, requestor_id: _Optional[int] = ..., instance_id: _Optional[int] = ...) -> None: ...

class EventTrigger(_message.Message):
    __slots__ = ("report_period_ms", "per_slot_insert")
    REPORT_PERIOD_MS_FIELD_NUMBER: _ClassVar[int]
    PER_SLOT_INSERT_FIELD_NUMBER: _ClassVar[int]
    report_period_ms: int
    per_slot_insert: bool
    def __init__(self, report_period_ms: _Optional[int] = ..., per_slot_insert: bool = ...) -> None: ...

class RicAction(_message.Message):
    __slots__ = ("action_id", "type", "definition")
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    action_id: int
    type: ActionType
    definition: bytes
    def __init__(self, action_id: _Optional[int] = ..., type: _Optional[_Union[ActionType, str]] = ..., definition: _Optional[bytes] = ...) -> None: ...

class RicActionNotAdmitted(_message.Message):
    __slots__ = ("action_id", "cause")
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    action_id: int
    cause: Cause
    def __init__(self, action_id: _Optional[int] = ..., cause: _Optional[_Union[Cause, str]] = ...) -> None: ...

class RICSubscriptionRequest(_message.Message):
    __slots__ = ("request_id", "ran_function_id", "event_trigger", "actions")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RAN_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: RicRequestId
    ran_function_id: int
    event_trigger: EventTrigger
    actions: _containers.RepeatedCompositeFieldContainer[RicAction]
    def __init__(self, request_id: _Optional[_Union[RicRequestId, _Mapping]] = ..., ran_function_id: _Optional[int] = ..., event_trigger: _Optional[_Union[EventTrigger, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[RicAction, _Mapping]]] = ...) -> None: ...

class RICSubscriptionResponse(_message.Message):
    __slots__ = ("request_id", "ran_function_id", "admitted_action_ids", "not_admitted")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RAN_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_ACTION_IDS_FIELD_NUMBER: _ClassVar[int]
    NOT_ADMITTED_FIELD_NUMBER: _ClassVar[int]
    request_id: RicRequestId
    ran_function_id: int
    admitted_action_ids: _containers.RepeatedScalarFieldContainer[int]
    not_admitted: _containers.RepeatedCompositeFieldContainer[RicActionNotAdmitted]
    def __init__(self, request_id: _Optional[_Union[RicRequestId, _Mapping]] = ..., ran_function_id: _Optional[int] = ..., admitted_action_ids: _Optional[_Iterable[int]] = ..., not_admitted: _Optional[_Iterable[_Union[RicActionNotAdmitted, _Mapping]]] = ...) -> None: ...

class RICSubscriptionDeleteRequest(_message.Message):
    __slots__ = ("request_id", "ran_function_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RAN_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: RicRequestId
    ran_function_id: int
    def __init__(self, request_id: _Optional[_Union[RicRequestId, _Mapping]] = ..., ran_function_id: _Optional[int] = ...) -> None: ...

class RICSubscriptionDeleteResponse(_message.Message):
    __slots__ = ("request_id", "ran_function_id", "deleted", "cause")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RAN_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    request_id: RicRequestId
    ran_function_id: int
    deleted: bool
    cause: Cause
    def __init__(self, request_id: _Optional[_Union[RicRequestId, _Mapping]] = ..., ran_function_id: _Optional[int] = ..., deleted: bool = ..., cause: _Optional[_Union[Cause, str]] = ...) -> None: ...

class RICIndication(_message.Message):
    __slots__ = ("request_id", "ran_function_id", "action_id", "sequence_number", "type", "header", "message", "call_process_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RAN_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CALL_PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: RicRequestId
    ran_function_id: int
    action_id: int
    sequence_number: int
    type: IndicationType
    header: bytes
    message: bytes
    call_process_id: bytes
    def __init__(self, request_id: _Optional[_Union[RicRequestId, _Mapping]] = ..., ran_function_id: _Optional[int] = ..., action_id: _Optional[int] = ..., sequence_number: _Optional[int] = ..., type: _Optional[_Union[IndicationType, str]] = ..., header: _Optional[bytes] = ..., message: _Optional[bytes] = ..., call_process_id: _Optional[bytes] = ...) -> None: ...

class RICControlRequest(_message.Message):
    __slots__ = ("request_id", "ran_function_id", "call_process_id", "header", "message", "ack_request")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RAN_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ACK_REQUEST_FIELD_NUMBER: _ClassVar[int]
    request_id: RicRequestId
    ran_function_id: int
    call_process_id: bytes
    header: bytes
    message: bytes
    ack_request: ControlAckRequest
    def __init__(self, request_id: _Optional[_Union[RicRequestId, _Mapping]] = ..., ran_function_id: _Optional[int] = ..., call_process_id: _Optional[bytes] = ..., header: _Optional[bytes] = ..., message: _Optional[bytes] = ..., ack_request: _Optional[_Union[ControlAckRequest, str]] = ...) -> None: ...

class RICControlAcknowledge(_message.Message):
    __slots__ = ("request_id", "ran_function_id", "call_process_id", "outcome")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RAN_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    request_id: RicRequestId
    ran_function_id: int
    call_process_id: bytes
    outcome: bytes
    def __init__(self, request_id: _Optional[_Union[RicRequestId, _Mapping]] = ..., ran_function_id: _Optional[int] = ..., call_process_id: _Optional[bytes] = ..., outcome: _Optional[bytes] = ...) -> None: ...

class RICControlFailure(_message.Message):
    __slots__ = ("request_id", "ran_function_id", "call_process_id", "cause", "text")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RAN_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    request_id: RicRequestId
    ran_function_id: int
    call_process_id: bytes
    cause: Cause
    text: str
    def __init__(self, request_id: _Optional[_Union[RicRequestId, _Mapping]] = ..., ran_function_id: _Optional[int] = ..., call_process_id: _Optional[bytes] = ..., cause: _Optional[_Union[Cause, str]] = ..., text: _Optional[str] = ...) -> None: ...

class ErrorIndication(_message.Message):
    __slots__ = ("request_id", "ran_function_id", "cause", "text", "sequence_number")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RAN_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    request_id: RicRequestId
    ran_function_id: int
    cause: Cause
    text: str
    sequence_number: int
    def __init__(self, request_id: _Optional[_Union[RicRequestId, _Mapping]] = ..., ran_function_id: _Optional[int] = ..., cause: _Optional[_Union[Cause, str]] = ..., text: _Optional[str] = ..., sequence_number: _Optional[int] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ("cause",)
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    cause: Cause
    def __init__(self, cause: _Optional[_Union[Cause, str]] = ...) -> None: ...

class ResetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("protocol_version", "transaction_id", "e2_setup_request", "e2_setup_response", "ric_subscription_request", "ric_subscription_response", "ric_subscription_delete_request", "ric_subscription_delete_response", "ric_indication", "ric_control_request", "ric_control_acknowledge", "ric_control_failure", "error_indication", "reset_request", "reset_response")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    E2_SETUP_REQUEST_FIELD_NUMBER: _ClassVar[int]
    E2_SETUP_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    RIC_SUBSCRIPTION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    RIC_SUBSCRIPTION_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    RIC_SUBSCRIPTION_DELETE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    RIC_SUBSCRIPTION_DELETE_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    RIC_INDICATION_FIELD_NUMBER: _ClassVar[int]
    RIC_CONTROL_REQUEST_FIELD_NUMBER: _ClassVar[int]
    RIC_CONTROL_ACKNOWLEDGE_FIELD_NUMBER: _ClassVar[int]
    RIC_CONTROL_FAILURE_FIELD_NUMBER: _ClassVar[int]
    ERROR_INDICATION_FIELD_NUMBER: _ClassVar[int]
    RESET_REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESET_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    protocol_version: ProtocolVersion
    transaction_id: int
    e2_setup_request: E2SetupRequest
    e2_setup_response: E2SetupResponse
    ric_subscription_request: RICSubscriptionRequest
    ric_subscription_response: RICSubscriptionResponse
    ric_subscription_delete_request: RICSubscriptionDeleteRequest
    ric_subscription_delete_response: RICSubscriptionDeleteResponse
    ric_indication: RICIndication
    ric_control_request: RICControlRequest
    ric_control_acknowledge: RICControlAcknowledge
    ric_control_failure: RICControlFailure
    error_indication: ErrorIndication
    reset_request: ResetRequest
    reset_response: ResetResponse
    def __init__(self, protocol_version: _Optional[_Union[ProtocolVersion, str]] = ..., transaction_id: _Optional[int] = ..., e2_setup_request: _Optional[_Union[E2SetupRequest, _Mapping]] = ..., e2_setup_response: _Optional[_Union[E2SetupResponse, _Mapping]] = ..., ric_subscription_request: _Optional[_Union[RICSubscriptionRequest, _Mapping]] = ..., ric_subscription_response: _Optional[_Union[RICSubscriptionResponse, _Mapping]] = ..., ric_subscription_delete_request: _Optional[_Union[RICSubscriptionDeleteRequest, _Mapping]] = ..., ric_subscription_delete_response: _Optional[_Union[RICSubscriptionDeleteResponse, _Mapping]] = ..., ric_indication: _Optional[_Union[RICIndication, _Mapping]] = ..., ric_control_request: _Optional[_Union[RICControlRequest, _Mapping]] = ..., ric_control_acknowledge: _Optional[_Union[RICControlAcknowledge, _Mapping]] = ..., ric_control_failure: _Optional[_Union[RICControlFailure, _Mapping]] = ..., error_indication: _Optional[_Union[ErrorIndication, _Mapping]] = ..., reset_request: _Optional[_Union[ResetRequest, _Mapping]] = ..., reset_response: _Optional[_Union[ResetResponse, _Mapping]] = ...) -> None: ...
