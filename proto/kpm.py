"""RANPD-E2SM-KPM codec: periodic cell and UE measurements (names of 3GPP TS 28.552 §5.1.1).

The node fills `encode_report` with the values it measured over one granularity period; the
xApp decodes with `decode_report`, which rejects unknown names, repeated names or UEs, NaN,
infinite or negative values, and reports larger than `MAX_UES` UEs or `MAX_BINS` values a record.
`fallback_ratio` reads the two link-adaptation counters a node adds to its cell records.
"""
from __future__ import annotations

import math

from google.protobuf.message import DecodeError

from ranpd.proto import e2ap_pb2, e2sm_kpm_pb2
from ranpd.proto.framing import CodecError

KPM_RAN_FUNCTION = e2ap_pb2.RanFunction(id=1, revision=1, name="ORAN-E2SM-KPM", oid="ranpd.e2sm.kpm.1")

# name -> (unit, description); distributions have one value per bin.
MEASUREMENTS = {
    "DRB.UEThpDl": ("kbit/s", "DL UE throughput"),
    "TB.TotNbrDl": ("count", "DL transport blocks, all transmissions"),
    "TB.TotNbrDlInitial": ("count", "DL transport blocks, initial transmissions"),
    "TB.IntialErrNbrDl": ("count", "erroneous initial DL transport blocks (spec's spelling)"),
    "TB.ResidualErrNbrDl": ("count", "DL transport blocks in error after the last HARQ attempt"),
    "RRU.PrbUsedDl": ("count", "DL PRBs used"),
    "CARR.WBCQIDist": ("count per bin", "wideband CQI distribution, bins CQI 0..15"),
    "CARR.PDSCHMCSDist": ("count per bin", "PDSCH MCS distribution, bins MCS 0..31"),
    # Not in TS 28.552: link-adaptation decisions of the period and how many of them the node
    # took from its own OLLA because the xApp's control was missing, late or for another slot.
    "RANPD.LaDecisionNbr": ("count", "UE link-adaptation decisions (new transmissions)"),
    "RANPD.LaFallbackNbr": ("count", "decisions taken by the node's fallback (OLLA), not the xApp"),
    # Near-RT loop (the node runs the deployed model): decisions the active model took, and the
    # shadow period's comparison of the candidate with what was applied: UE-slots it decided,
    # where its MCS differed, and the expected delivered bits of both choices as the node
    # estimates them (`ranpd.simulator.nearrt.expected_bits`).
    "RANPD.LaModelDecisionNbr": ("count", "decisions taken by the deployed model (near-RT loop)"),
    "RANPD.ShadowDecisionNbr": ("count", "decisions the candidate model made in shadow"),
    "RANPD.ShadowDisagreeNbr": ("count", "shadow decisions whose MCS differs from the applied one"),
    "RANPD.ShadowExpBitsCandidate": ("bit", "expected delivered bits of the candidate's choices"),
    "RANPD.ShadowExpBitsApplied": ("bit", "expected delivered bits of the applied choices"),
}
DECISIONS, FALLBACKS = "RANPD.LaDecisionNbr", "RANPD.LaFallbackNbr"
MAX_BINS = 64          # values per record (the widest distribution has 32 bins)
MAX_UES = 4096         # UE entries per report

Records = dict[str, list[float]]


def _records(values: Records) -> list[e2sm_kpm_pb2.MeasurementRecord]:
    return [e2sm_kpm_pb2.MeasurementRecord(name=name, values=list(v)) for name, v in values.items()]


def encode_report(cell: Records, ues: dict[int, Records], *, sender_name: str,
                  granularity_period_ms: int, collection_start_ns: int) -> tuple[bytes, bytes]:
    """(header, message) bytes of one KPM REPORT indication; a scalar is a one-value list."""
    header = e2sm_kpm_pb2.KpmIndicationHeader(
        collection_start_ns=collection_start_ns, granularity_period_ms=granularity_period_ms,
        sender_name=sender_name)
    message = e2sm_kpm_pb2.KpmIndicationMessage(
        cell=_records(cell),
        ues=[e2sm_kpm_pb2.UeMeasurements(ue_id=ue, records=_records(r)) for ue, r in ues.items()])
    return header.SerializeToString(), message.SerializeToString()


def _invalid(text: str) -> CodecError:
    return CodecError(e2ap_pb2.CAUSE_INVALID_FIELD, text)


def _decode_records(records, where: str) -> Records:
    if len(records) > len(MEASUREMENTS):
        raise _invalid(f"{where}: {len(records)} records, more than the {len(MEASUREMENTS)} measurements known")
    out: Records = {}
    for record in records:
        if record.name not in MEASUREMENTS:
            raise _invalid(f"{where}: unknown measurement {record.name[:64]!r}")
        if record.name in out:
            raise _invalid(f"{where}: {record.name} reported twice")
        if len(record.values) > MAX_BINS:
            raise _invalid(f"{where}: {record.name} has {len(record.values)} values (at most {MAX_BINS})")
        values = list(record.values)
        if not all(math.isfinite(v) and v >= 0.0 for v in values):
            raise _invalid(f"{where}: {record.name} has a NaN, infinite or negative value: {values[:8]}")
        out[record.name] = values
    return out


def decode_report(header: bytes, message: bytes) -> tuple[e2sm_kpm_pb2.KpmIndicationHeader, Records,
                                                         dict[int, Records]]:
    """Parse and validate a KPM REPORT: (header, cell records, UE id -> records)."""
    try:
        head = e2sm_kpm_pb2.KpmIndicationHeader.FromString(header)
        msg = e2sm_kpm_pb2.KpmIndicationMessage.FromString(message)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise CodecError(e2ap_pb2.CAUSE_MALFORMED_MESSAGE, f"KPM indication does not parse: {exc}") from exc
    if len(msg.ues) > MAX_UES:
        raise CodecError(e2ap_pb2.CAUSE_OVERLOAD, f"KPM report lists {len(msg.ues)} UEs (at most {MAX_UES})")
    cell = _decode_records(msg.cell, "cell")
    ues: dict[int, Records] = {}
    for ue in msg.ues:
        if ue.ue_id in ues:
            raise _invalid(f"KPM report lists UE {ue.ue_id} twice")
        ues[ue.ue_id] = _decode_records(ue.records, f"UE {ue.ue_id}")
    return head, cell, ues


def fallback_ratio(cell: Records) -> tuple[float, float] | None:
    """(fallbacks, decisions) of one report's cell records, or None when the node reports
    neither; a report with more fallbacks than decisions is an INVALID_FIELD."""
    if DECISIONS not in cell or FALLBACKS not in cell:
        return None
    decisions = cell[DECISIONS][0] if cell[DECISIONS] else 0.0
    fallbacks = cell[FALLBACKS][0] if cell[FALLBACKS] else 0.0
    if fallbacks > decisions:
        raise _invalid(f"{FALLBACKS} {fallbacks} exceeds {DECISIONS} {decisions}")
    return fallbacks, decisions
