from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KpmIndicationHeader(_message.Message):
    __slots__ = ("collection_start_ns", "granularity_period_ms", "sender_name")
    COLLECTION_START_NS_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_PERIOD_MS_FIELD_NUMBER: _ClassVar[int]
    SENDER_NAME_FIELD_NUMBER: _ClassVar[int]
    collection_start_ns: int
    granularity_period_ms: int
    sender_name: str
    def __init__(self, collection_start_ns: _Optional[int] = ..., granularity_period_ms: _Optional[int] = ..., sender_name: _Optional[str] = ...) -> None: ...

class MeasurementRecord(_message.Message):
    __slots__ = ("name", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class UeMeasurements(_message.Message):
    __slots__ = ("ue_id", "records")
    UE_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    ue_id: int
    records: _containers.RepeatedCompositeFieldContainer[MeasurementRecord]
    def __init__(self, ue_id: _Optional[int] = ..., records: _Optional[_Iterable[_Union[MeasurementRecord, _Mapping]]] = ...) -> None: ...

class KpmIndicationMessage(_message.Message):
    __slots__ = ("cell", "ues")
    CELL_FIELD_NUMBER: _ClassVar[int]
    UES_FIELD_NUMBER: _ClassVar[int]
    cell: _containers.RepeatedCompositeFieldContainer[MeasurementRecord]
    ues: _containers.RepeatedCompositeFieldContainer[UeMeasurements]
    def __init__(self, cell: _Optional[_Iterable[_Union[MeasurementRecord, _Mapping]]] = ..., ues: _Optional[_Iterable[_Union[UeMeasurements, _Mapping]]] = ...) -> None: ...
