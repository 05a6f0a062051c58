from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelCommand(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_COMMAND_UNSPECIFIED: _ClassVar[ModelCommand]
    MODEL_COMMAND_DEPLOY: _ClassVar[ModelCommand]
    MODEL_COMMAND_PROMOTE: _ClassVar[ModelCommand]
    MODEL_COMMAND_DISCARD: _ClassVar[ModelCommand]
    MODEL_COMMAND_ROLLBACK: _ClassVar[ModelCommand]
MODEL_COMMAND_UNSPECIFIED: ModelCommand
MODEL_COMMAND_DEPLOY: ModelCommand
MODEL_COMMAND_PROMOTE: ModelCommand
MODEL_COMMAND_DISCARD: ModelCommand
MODEL_COMMAND_ROLLBACK: ModelCommand

class LaIndicationHeader(_message.Message):
    __slots__ = ("slot", "timestamp_ns", "deadline_ns", "mcs_table", "cqi_table", "max_harq_tx")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_NS_FIELD_NUMBER: _ClassVar[int]
    MCS_TABLE_FIELD_NUMBER: _ClassVar[int]
    CQI_TABLE_FIELD_NUMBER: _ClassVar[int]
    MAX_HARQ_TX_FIELD_NUMBER: _ClassVar[int]
    slot: int
    timestamp_ns: int
    deadline_ns: int
    mcs_table: int
    cqi_table: int
    max_harq_tx: int
    def __init__(self, slot: _Optional[int] = ..., timestamp_ns: _Optional[int] = ..., deadline_ns: _Optional[int] = ..., mcs_table: _Optional[int] = ..., cqi_table: _Optional[int] = ..., max_harq_tx: _Optional[int] = ...) -> None: ...

class LaIndicationMessage(_message.Message):
    __slots__ = ("cqi_ue", "cqi_value", "cqi_age_slots", "harq_ue", "harq_ack", "harq_mcs", "harq_tbs", "harq_tx", "harq_process", "ue", "prbs", "layers", "buffer_bytes")
    CQI_UE_FIELD_NUMBER: _ClassVar[int]
    CQI_VALUE_FIELD_NUMBER: _ClassVar[int]
    CQI_AGE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    HARQ_UE_FIELD_NUMBER: _ClassVar[int]
    HARQ_ACK_FIELD_NUMBER: _ClassVar[int]
    HARQ_MCS_FIELD_NUMBER: _ClassVar[int]
    HARQ_TBS_FIELD_NUMBER: _ClassVar[int]
    HARQ_TX_FIELD_NUMBER: _ClassVar[int]
    HARQ_PROCESS_FIELD_NUMBER: _ClassVar[int]
    UE_FIELD_NUMBER: _ClassVar[int]
    PRBS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    BUFFER_BYTES_FIELD_NUMBER: _ClassVar[int]
    cqi_ue: _containers.RepeatedScalarFieldContainer[int]
    cqi_value: _containers.RepeatedScalarFieldContainer[int]
    cqi_age_slots: _containers.RepeatedScalarFieldContainer[int]
    harq_ue: _containers.RepeatedScalarFieldContainer[int]
    harq_ack: _containers.RepeatedScalarFieldContainer[bool]
    harq_mcs: _containers.RepeatedScalarFieldContainer[int]
    harq_tbs: _containers.RepeatedScalarFieldContainer[int]
    harq_tx: _containers.RepeatedScalarFieldContainer[int]
    harq_process: _containers.RepeatedScalarFieldContainer[int]
    ue: _containers.RepeatedScalarFieldContainer[int]
    prbs: _containers.RepeatedScalarFieldContainer[int]
    layers: _containers.RepeatedScalarFieldContainer[int]
    buffer_bytes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, cqi_ue: _Optional[_Iterable[int]] = ..., cqi_value: _Optional[_Iterable[int]] = ..., cqi_age_slots: _Optional[_Iterable[int]] = ..., harq_ue: _Optional[_Iterable[int]] = ..., harq_ack: _Optional[_Iterable[bool]] = ..., harq_mcs: _Optional[_Iterable[int]] = ..., harq_tbs: _Optional[_Iterable[int]] = ..., harq_tx: _Optional[_Iterable[int]] = ..., harq_process: _Optional[_Iterable[int]] = ..., ue: _Optional[_Iterable[int]] = ..., prbs: _Optional[_Iterable[int]] = ..., layers: _Optional[_Iterable[int]] = ..., buffer_bytes: _Optional[_Iterable[int]] = ...) -> None: ...

class LaControlHeader(_message.Message):
    __slots__ = ("slot", "indication_sequence_number")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    INDICATION_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    slot: int
    indication_sequence_number: int
    def __init__(self, slot: _Optional[int] = ..., indication_sequence_number: _Optional[int] = ...) -> None: ...

class LaControlMessage(_message.Message):
    __slots__ = ("ue", "mcs")
    UE_FIELD_NUMBER: _ClassVar[int]
    MCS_FIELD_NUMBER: _ClassVar[int]
    ue: _containers.RepeatedScalarFieldContainer[int]
    mcs: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ue: _Optional[_Iterable[int]] = ..., mcs: _Optional[_Iterable[int]] = ...) -> None: ...

class LaModelControlHeader(_message.Message):
    __slots__ = ("command", "model_version")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    command: ModelCommand
    model_version: str
    def __init__(self, command: _Optional[_Union[ModelCommand, str]] = ..., model_version: _Optional[str] = ...) -> None: ...

class LaModelDeploy(_message.Message):
    __slots__ = ("onnx", "card_json", "activate")
    ONNX_FIELD_NUMBER: _ClassVar[int]
    CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_FIELD_NUMBER: _ClassVar[int]
    onnx: bytes
    card_json: str
    activate: bool
    def __init__(self, onnx: _Optional[bytes] = ..., card_json: _Optional[str] = ..., activate: bool = ...) -> None: ...

class LaModelStatus(_message.Message):
    __slots__ = ("active", "candidate", "previous")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    active: str
    candidate: str
    previous: str
    def __init__(self, active: _Optional[str] = ..., candidate: _Optional[str] = ..., previous: _Optional[str] = ...) -> None: ...
