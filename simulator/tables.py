"""3GPP NR tables that link adaptation feels, kept as data with their source.

- MCS index tables for PDSCH: TS 38.214 Table 5.1.3.1-1 ("table 1", up to 64QAM) and
  Table 5.1.3.1-2 ("table 2", up to 256QAM). Rows are (Qm, R x 1024); reserved rows
  (retransmission-only MCS 29-31 / 28-31) are not selectable by link adaptation.
- CQI tables: TS 38.214 Table 5.2.2.1-2 ("table 1") and Table 5.2.2.1-3 ("table 2").
  CQI 0 is "out of range" and has no row here (index 0 of the arrays is a placeholder).
- Numerology: TS 38.211 §4.2-4.3 (SCS = 15·2^mu kHz, 14 symbols per slot, 1 ms subframe).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MCS_TABLE_1 = [  # TS 38.214 Table 5.1.3.1-1: (Qm, R x 1024)
    (2, 120), (2, 157), (2, 193), (2, 251), (2, 308), (2, 379), (2, 449), (2, 526),
    (2, 602), (2, 679), (4, 340), (4, 378), (4, 434), (4, 490), (4, 553), (4, 616),
    (4, 658), (6, 438), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666), (6, 719),
    (6, 772), (6, 822), (6, 873), (6, 910), (6, 948),
]
_MCS_TABLE_2 = [  # TS 38.214 Table 5.1.3.1-2: (Qm, R x 1024)
    (2, 120), (2, 193), (2, 308), (2, 449), (2, 602), (4, 378), (4, 434), (4, 490),
    (4, 553), (4, 616), (4, 658), (6, 466), (6, 517), (6, 567), (6, 616), (6, 666),
    (6, 719), (6, 772), (6, 822), (6, 873), (8, 682.5), (8, 711), (8, 754), (8, 797),
    (8, 841), (8, 885), (8, 916.5), (8, 948),
]
_CQI_TABLE_1 = [  # TS 38.214 Table 5.2.2.1-2, CQI 1..15: (Qm, R x 1024)
    (2, 78), (2, 120), (2, 193), (2, 308), (2, 449), (2, 602), (4, 378), (4, 490),
    (4, 616), (6, 466), (6, 567), (6, 666), (6, 772), (6, 873), (6, 948),
]
_CQI_TABLE_2 = [  # TS 38.214 Table 5.2.2.1-3, CQI 1..15: (Qm, R x 1024)
    (2, 78), (2, 193), (2, 449), (4, 378), (4, 490), (4, 616), (6, 466), (6, 567),
    (6, 666), (6, 772), (6, 873), (8, 711), (8, 797), (8, 885), (8, 948),
]

MAX_SUPPORTED_MCS_ACTIONS = len(_MCS_TABLE_1)  # 29: the widest selectable table


@dataclass(frozen=True)
class McsTable:
    """One PDSCH MCS table: modulation order Qm, target code rate R and efficiency Qm·R."""

    number: int
    qm: np.ndarray          # int, bits per symbol
    code_rate: np.ndarray   # R (not x1024)

    @property
    def efficiency(self) -> np.ndarray:
        """Spectral efficiency Qm·R in bit/RE per layer (the "SE" column of the table)."""
        return self.qm * self.code_rate

    @property
    def size(self) -> int:
        return len(self.qm)


@dataclass(frozen=True)
class CqiTable:
    """One CQI table; arrays are indexed by CQI, row 0 ("out of range") has efficiency 0."""

    number: int
    qm: np.ndarray
    code_rate: np.ndarray

    @property
    def efficiency(self) -> np.ndarray:
        return self.qm * self.code_rate


def _build(rows, cls, number, pad_out_of_range=False):
    qm = np.array([q for q, _ in rows], dtype=np.int64)
    rate = np.array([r for _, r in rows], dtype=np.float64) / 1024.0
    if pad_out_of_range:
        qm, rate = np.concatenate([[0], qm]), np.concatenate([[0.0], rate])
    return cls(number=number, qm=qm, code_rate=rate)


MCS_TABLES = {1: _build(_MCS_TABLE_1, McsTable, 1), 2: _build(_MCS_TABLE_2, McsTable, 2)}
CQI_TABLES = {
    1: _build(_CQI_TABLE_1, CqiTable, 1, pad_out_of_range=True),
    2: _build(_CQI_TABLE_2, CqiTable, 2, pad_out_of_range=True),
}


def cqi_to_mcs_map(mcs_table: int, cqi_table: int) -> np.ndarray:
    """ILLA mapping (index 0..15 -> MCS): the highest MCS whose efficiency does not exceed the CQI's.

    CQI 0 (out of range) and CQIs below MCS 0 map to MCS 0, the most robust choice. Searched by
    comparison, not bisection: table 1's efficiency is not monotone (MCS 16 > MCS 17).
    """
    fits = MCS_TABLES[mcs_table].efficiency[None, :] <= CQI_TABLES[cqi_table].efficiency[:, None] + 1e-9
    highest = fits.shape[1] - 1 - np.argmax(fits[:, ::-1], axis=1)
    return np.where(fits.any(axis=1), highest, 0).astype(np.int64)


def slot_duration_s(numerology: int) -> float:
    """TS 38.211 §4.3.2: 2^mu slots per 1 ms subframe."""
    if not 0 <= numerology <= 6:
        raise ValueError(f"numerology mu must be in 0..6, got {numerology}")
    return 1e-3 / (1 << numerology)


def subcarrier_spacing_hz(numerology: int) -> float:
    """TS 38.211 §4.2: SCS = 15·2^mu kHz."""
    return 15e3 * (1 << numerology)


SYMBOLS_PER_SLOT = 14  # normal cyclic prefix
SUBCARRIERS_PER_PRB = 12
MAX_PRBS = 275
