"""PHY abstraction: per-subband SINR -> effective SINR (EESM) -> code-block BLER -> TBLER.

Chain (as in system-level simulators, e.g. NVIDIA Sionna SYS, ns-3 5G-LENA):

1. EESM (exponential effective SINR mapping):  SINR_eff = -β·ln( mean_k exp(-SINR_k / β) ),
   β per MCS (linear SINRs; mean over allocated subbands).
2. Code-block BLER from an AWGN LDPC curve per MCS and code-block size K:
   BLER_cb(x) = 1 / (1 + exp((x - x50) / s(K)))  with x in dB, the 10% point at
   x10 = T(SE) + Δ(K), so x50 = x10 - s(K)·ln 9.
3. TBLER = 1 - (1 - BLER_cb)^C for C code blocks (TS 38.212 §5.2.2 segmentation).
4. HARQ chase combining: effective SINRs of the transmissions of one TB add (linear).

Curve parameters and where they come from:
- T(SE), the 10%-BLER SINR at long code blocks, is the Shannon bound plus a gap:
  T = 10·log10(2^SE - 1) + gap(SE). The gap is interpolated from one public link-level
  calibration of PDSCH MCS table 2 with long code blocks (points below; shared/reference/nr-facts.md:
  MCS2 -1.6, MCS4 1.7, MCS5 3.7, MCS9 7.9, MCS11 9.5, MCS14 12.8, MCS17 15.6, MCS19 17.4, MCS20 18.6,
  MCS23 20.9, MCS26 23.9 dB), held constant beyond its ends. The same T(SE) serves every MCS and CQI
  row, so thresholds rise with SE by construction and sit on the published figures (±0.3 dB).
- Δ(K) (short-block penalty) and s(K) (waterfall width) are this project's model of the known LDPC
  behaviour — shorter blocks need more SINR and have wider waterfalls: Δ = 1 dB at K = 256 bits,
  growing with log2(8448/K), 0 at K = 8448; s = 0.25 dB + 4 dB/sqrt(K).
- EESM β(SE) is interpolated log-linearly through values of the order published for EESM
  calibrations (≈1.6 for the lowest QPSK rates, tens for 64QAM, >100 for high 256QAM).
"""
from __future__ import annotations

import numpy as np

from ranpd.simulator.tables import CQI_TABLES, McsTable

# (spectral efficiency of the calibrated MCS-table-2 row, 10%-BLER SINR in dB)
_CALIBRATION = np.array([
    (0.6016, -1.6), (1.1758, 1.7), (1.4766, 3.7), (2.4063, 7.9), (2.7305, 9.5), (3.6094, 12.8),
    (4.5234, 15.6), (5.1152, 17.4), (5.3320, 18.6), (6.2266, 20.9), (7.1602, 23.9),
])
_EESM_BETA = np.array([(0.2344, 1.6), (1.1758, 3.0), (2.5703, 10.0), (5.5547, 45.0), (7.4063, 130.0)])

LONG_CODE_BLOCK_BITS = 8448  # BG1 maximum code-block size (TS 38.212 §5.2.2)
LN9 = np.log(9.0)


def shannon_sinr_db(efficiency) -> np.ndarray:
    """SINR (dB) at which the AWGN capacity log2(1 + SINR) equals `efficiency`."""
    return 10.0 * np.log10(np.exp2(np.asarray(efficiency, np.float64)) - 1.0)


_GAP_DB = _CALIBRATION[:, 1] - shannon_sinr_db(_CALIBRATION[:, 0])


def bler10_sinr_db(efficiency) -> np.ndarray:
    """10%-BLER SINR T(SE) for long code blocks: Shannon bound + calibrated gap."""
    se = np.asarray(efficiency, np.float64)
    return shannon_sinr_db(se) + np.interp(se, _CALIBRATION[:, 0], _GAP_DB)


def eesm_beta(efficiency) -> np.ndarray:
    """EESM β for a modulation-and-coding scheme of the given spectral efficiency."""
    se = np.asarray(efficiency, np.float64)
    return np.exp(np.interp(se, _EESM_BETA[:, 0], np.log(_EESM_BETA[:, 1])))


def short_block_penalty_db(code_block_bits) -> np.ndarray:
    """Δ(K): extra SINR a code block of K bits needs over a long block for the same BLER."""
    k = np.maximum(np.asarray(code_block_bits, np.float64), 24.0)
    return np.maximum(np.log2(LONG_CODE_BLOCK_BITS / k), 0.0) / np.log2(LONG_CODE_BLOCK_BITS / 256.0)


def waterfall_width_db(code_block_bits) -> np.ndarray:
    """s(K): logistic scale of the BLER waterfall (dB)."""
    return 0.25 + 4.0 / np.sqrt(np.maximum(np.asarray(code_block_bits, np.float64), 24.0))


def mcs_sinr_threshold_db(table: McsTable) -> np.ndarray:
    """10%-BLER SINR of each MCS of a table (long code blocks), non-decreasing with MCS.

    Table 1's MCS 17 (64QAM) has a hair less efficiency than MCS 16 (16QAM); a higher modulation
    order never needs less SINR in link-level curves, so it takes its predecessor's threshold.
    """
    return np.maximum.accumulate(bler10_sinr_db(table.efficiency))


def cqi_sinr_estimate_db(cqi_table: int) -> np.ndarray:
    """SINR a gNB infers from a CQI: the 10%-BLER SINR of that CQI's (Qm, R); index by CQI.

    CQI 0 ("out of range") maps 3 dB below CQI 1.
    """
    thr = bler10_sinr_db(CQI_TABLES[cqi_table].efficiency[1:])
    return np.concatenate([[thr[0] - 3.0], thr])


def eesm_db(sinr_linear: np.ndarray, beta) -> np.ndarray:
    """Effective SINR (dB) over the last axis of linear per-subband SINRs; `beta` broadcasts."""
    beta = np.asarray(beta, np.float64)[..., None]
    mean = np.mean(np.exp(-sinr_linear / beta), axis=-1)
    return 10.0 * np.log10(-beta[..., 0] * np.log(np.maximum(mean, 1e-300)))


def _decoding_margin(sinr_db, threshold_db, code_block_bits) -> np.ndarray:
    """(x - x50) / s(K): how far the effective SINR sits above the waterfall's midpoint."""
    s = waterfall_width_db(code_block_bits)
    x50 = np.asarray(threshold_db) + short_block_penalty_db(code_block_bits) - s * LN9
    return (np.asarray(sinr_db) - x50) / s


def code_block_bler(sinr_db, threshold_db, code_block_bits) -> np.ndarray:
    """BLER of one code block of K bits at effective SINR `sinr_db`: 1 / (1 + exp(margin))."""
    return np.exp(-np.logaddexp(0.0, _decoding_margin(sinr_db, threshold_db, code_block_bits)))


def transport_block_bler(sinr_db, threshold_db, code_block_bits, n_code_blocks) -> np.ndarray:
    """TBLER = 1 - (1 - BLER_cb)^C: the TB fails if any of its C code blocks fails.

    Evaluated as -expm1(-C·log(1 + exp(-margin))), exact in both tails.
    """
    margin = _decoding_margin(sinr_db, threshold_db, code_block_bits)
    return -np.expm1(-np.asarray(n_code_blocks) * np.logaddexp(0.0, -margin))
