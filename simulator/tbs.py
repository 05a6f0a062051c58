"""PDSCH transport block size (TS 38.214 §5.1.3.2) and LDPC code-block segmentation (TS 38.212).

The TBS is computed exactly as the clause's four steps: resource elements (step 1), intermediate
information bits N_info (step 2), the small-TBS table for N_info ≤ 3824 (step 3) and the byte-aligned
formula with code-block segmentation otherwise (step 4). The segmentation that the PHY abstraction needs
(number of code blocks C and bits per code block, for TBLER = 1 − (1 − BLER_cb)^C) follows TS 38.212
§7.2.2 (base-graph selection) and §5.2.2 (code block segmentation).
"""
from __future__ import annotations

import numpy as np

from ranpd.simulator.tables import MAX_PRBS, MCS_TABLES, SUBCARRIERS_PER_PRB, SYMBOLS_PER_SLOT

# TS 38.214 Table 5.1.3.2-1: TBS for N_info ≤ 3824 (93 entries).
SMALL_TBS_TABLE = np.array([
    24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 160, 168, 176,
    184, 192, 208, 224, 240, 256, 272, 288, 304, 320, 336, 352, 368, 384, 408, 432, 456, 480,
    504, 528, 552, 576, 608, 640, 672, 704, 736, 768, 808, 848, 888, 928, 984, 1032, 1064, 1128,
    1160, 1192, 1224, 1256, 1288, 1320, 1352, 1416, 1480, 1544, 1608, 1672, 1736, 1800, 1864,
    1928, 2024, 2088, 2152, 2216, 2280, 2408, 2472, 2536, 2600, 2664, 2728, 2792, 2856, 2976,
    3104, 3240, 3368, 3496, 3624, 3752, 3824,
], dtype=np.int64)

SMALL_TBS_LIMIT = 3824        # §5.1.3.2 step 2: N_info ≤ 3824 uses the table
MAX_RE_PER_PRB = 156          # §5.1.3.2 step 1: N_RE = min(156, N'_RE)·n_PRB
OVERHEAD_VALUES = (0, 6, 12, 18)  # xOverhead in PDSCH-ServingCellConfig (TS 38.331)
MAX_LAYERS_ONE_CODEWORD = 4   # TS 38.214 §5.1.3: more than 4 layers needs two codewords
BG1_MAX_CODE_BLOCK = 8448     # TS 38.212 §5.2.2: K_cb for LDPC base graph 1
BG2_MAX_CODE_BLOCK = 3840     # TS 38.212 §5.2.2: K_cb for LDPC base graph 2
CRC_BITS = 24                 # TB CRC for TBS > 3824 and per-code-block CRC (TS 38.212 §7.2.1, §5.2.2)
SMALL_TB_CRC_BITS = 16        # TB CRC for TBS ≤ 3824 (TS 38.212 §7.2.1)


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {bounds}, got {value}")
    return int(value)


def _check_resources(n_prb, n_symbols: int, n_dmrs_per_prb: int, n_overhead: int) -> int:
    """Validate the step-1 inputs and return N'_RE (resource elements per PRB before the 156 cap)."""
    for prb in np.ravel(n_prb):
        _check_int("n_prb", prb, 1, MAX_PRBS)
    _check_int("n_symbols", n_symbols, 1, SYMBOLS_PER_SLOT)
    _check_int("n_dmrs_per_prb", n_dmrs_per_prb, 0)
    if n_overhead not in OVERHEAD_VALUES:
        raise ValueError(f"n_overhead (xOverhead) must be one of {OVERHEAD_VALUES}, got {n_overhead!r}")
    re_per_prb = SUBCARRIERS_PER_PRB * n_symbols - n_dmrs_per_prb - n_overhead
    if re_per_prb <= 0:
        raise ValueError(
            f"no data resource elements left: 12·{n_symbols} symbols − {n_dmrs_per_prb} DM-RS − "
            f"{n_overhead} overhead = {re_per_prb} per PRB")
    return re_per_prb


def n_re(n_prb, n_symbols: int, n_dmrs_per_prb: int, n_overhead: int = 0):
    """TS 38.214 §5.1.3.2 step 1: N'_RE = 12·N_symb − N_DMRS − N_oh; N_RE = min(156, N'_RE)·n_PRB.

    ``n_prb`` may be an int (returns an int) or an array of PRB counts (returns an int64 array).
    """
    re_per_prb = min(MAX_RE_PER_PRB, _check_resources(n_prb, n_symbols, n_dmrs_per_prb, n_overhead))
    if np.ndim(n_prb) == 0:
        return re_per_prb * int(n_prb)
    return re_per_prb * np.asarray(n_prb, dtype=np.int64)


def tbs_from_n_info(n_info, code_rate) -> np.ndarray:
    """TS 38.214 §5.1.3.2 steps 3-4: TBS (int64) from N_info = N_RE·R·Qm·v and target code rate R.

    Element-wise over broadcastable arrays. With R from the MCS tables float64 is exact: R·1024 is a
    multiple of 0.5, so N_info is a dyadic rational far below 2^52.
    """
    n_info, code_rate = np.broadcast_arrays(np.asarray(n_info, np.float64), np.asarray(code_rate, np.float64))
    if np.any(~(n_info > 0)):
        raise ValueError("N_info must be > 0")
    if np.any(~((code_rate > 0) & (code_rate < 1))):
        raise ValueError("code_rate must be in (0, 1)")
    small = n_info <= SMALL_TBS_LIMIT

    # Step 3: n = max(3, ⌊log2 N_info⌋ − 6); N'_info = max(24, 2^n·⌊N_info / 2^n⌋); the smallest
    # Table 5.1.3.2-1 entry not less than N'_info.
    step3 = 2.0 ** np.maximum(3, np.floor(np.log2(n_info)) - 6)
    n_info_q_small = np.maximum(24, step3 * np.floor(n_info / step3))
    tbs_small = SMALL_TBS_TABLE[np.searchsorted(SMALL_TBS_TABLE, np.minimum(n_info_q_small, SMALL_TBS_LIMIT))]

    # Step 4: n = ⌊log2(N_info − 24)⌋ − 5; N'_info = max(3840, 2^n·round((N_info − 24) / 2^n)),
    # ties rounded up. The max() keeps log2 defined on the lanes that step 3 handles.
    excess = np.maximum(n_info - CRC_BITS, SMALL_TBS_LIMIT)
    step4 = 2.0 ** (np.floor(np.log2(excess)) - 5)
    n_info_q = np.maximum(3840, step4 * np.floor(excess / step4 + 0.5))
    payload = n_info_q + CRC_BITS
    # C: R ≤ 1/4 → ⌈(N'_info + 24)/3816⌉; else N'_info > 8424 → ⌈(N'_info + 24)/8424⌉; else 1.
    n_blocks = np.where(code_rate <= 0.25, np.ceil(payload / (BG2_MAX_CODE_BLOCK - CRC_BITS)),
                        np.where(n_info_q > BG1_MAX_CODE_BLOCK - CRC_BITS,
                                 np.ceil(payload / (BG1_MAX_CODE_BLOCK - CRC_BITS)), 1.0))
    tbs_large = 8 * n_blocks * np.ceil(payload / (8 * n_blocks)) - CRC_BITS

    return np.where(small, tbs_small, tbs_large).astype(np.int64)


def _check_table(table: int):
    if table not in MCS_TABLES:
        raise ValueError(f"MCS table must be one of {sorted(MCS_TABLES)}, got {table!r}")
    return MCS_TABLES[table]


def transport_block_size(mcs: int, table: int, n_prb: int, n_symbols: int = 12, n_dmrs_per_prb: int = 12,
                         layers: int = 1, n_overhead: int = 0) -> int:
    """PDSCH TBS in bits, TS 38.214 §5.1.3.2 (single codeword, scaling factor S = 1).

    Qm and R come from MCS table ``table`` (TS 38.214 Table 5.1.3.1-1 or -2); N_info = N_RE·R·Qm·v.
    Only the selectable (non-reserved) MCS rows are accepted.
    """
    mcs_table = _check_table(table)
    mcs = _check_int(f"mcs (MCS table {table} selectable rows)", mcs, 0, mcs_table.size - 1)
    layers = _check_int("layers (one codeword)", layers, 1, MAX_LAYERS_ONE_CODEWORD)
    res = n_re(n_prb, n_symbols, n_dmrs_per_prb, n_overhead)
    rate = mcs_table.code_rate[mcs]
    n_info = res * rate * mcs_table.qm[mcs] * layers
    return int(tbs_from_n_info(n_info, rate))


def tbs_per_mcs(table: int, n_prb, n_symbols: int = 12, n_dmrs_per_prb: int = 12, layers: int = 1,
                n_overhead: int = 0) -> np.ndarray:
    """TBS (bits) of every selectable MCS of ``table`` at once, same rules as ``transport_block_size``.

    Returns int64 of shape ``np.shape(n_prb) + (table size,)``: one row per allocation size when
    ``n_prb`` is an array (the simulator's start-up lookup table).
    """
    mcs_table = _check_table(table)
    layers = _check_int("layers (one codeword)", layers, 1, MAX_LAYERS_ONE_CODEWORD)
    res = np.asarray(n_re(n_prb, n_symbols, n_dmrs_per_prb, n_overhead), dtype=np.float64)
    n_info = res[..., None] * mcs_table.code_rate * mcs_table.qm * layers
    return tbs_from_n_info(n_info, mcs_table.code_rate)


def ldpc_segmentation(tbs: int, code_rate: float) -> tuple[int, int, int]:
    """LDPC base graph, number of code blocks C and bits per code block K' for one transport block.

    TS 38.212 §7.2.2: base graph 2 if TBS ≤ 292, or TBS ≤ 3824 and R ≤ 0.67, or R ≤ 0.25; else base
    graph 1. §7.2.1: TB CRC L = 24 bits (16 if TBS ≤ 3824), B = TBS + L. §5.2.2: K_cb = 8448 (BG1) or
    3840 (BG2); C = 1 if B ≤ K_cb, else C = ⌈B / (K_cb − 24)⌉ with a 24-bit CRC per block,
    B' = B + 24·C; K' = B'/C (code-block bits including CRC, before filler bits).

    For every TBS from §5.1.3.2 B' is a multiple of C; for other sizes K' is rounded up (⌈B'/C⌉).
    Returns ``(base_graph, n_code_blocks, code_block_bits)``.
    """
    tbs = _check_int("tbs", tbs, 1)
    if not 0.0 < code_rate < 1.0:
        raise ValueError(f"code_rate must be in (0, 1), got {code_rate!r}")
    graph, blocks, block_bits = ldpc_segmentation_array(np.array([tbs]), np.array([code_rate]))
    return int(graph[0]), int(blocks[0]), int(block_bits[0])


def ldpc_segmentation_array(tbs, code_rate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`ldpc_segmentation` element-wise over arrays (int64 base graph, C, K'); inputs unchecked."""
    tbs, code_rate = np.broadcast_arrays(np.asarray(tbs, np.int64), np.asarray(code_rate, np.float64))
    base_graph = np.where((tbs <= 292) | ((tbs <= SMALL_TBS_LIMIT) & (code_rate <= 0.67)) | (code_rate <= 0.25),
                          2, 1)
    max_block = np.where(base_graph == 1, BG1_MAX_CODE_BLOCK, BG2_MAX_CODE_BLOCK)
    with_crc = tbs + np.where(tbs > SMALL_TBS_LIMIT, CRC_BITS, SMALL_TB_CRC_BITS)
    n_blocks = np.where(with_crc <= max_block, 1, -(-with_crc // (max_block - CRC_BITS)))
    block_bits = np.where(n_blocks == 1, with_crc, -(-(with_crc + CRC_BITS * n_blocks) // n_blocks))
    return base_graph.astype(np.int64), n_blocks.astype(np.int64), block_bits.astype(np.int64)
