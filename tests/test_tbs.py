"""TBS (TS 38.214 §5.1.3.2) and LDPC segmentation (TS 38.212 §7.2.2, §5.2.2) against the standard.

Every expected value is worked by hand from the clauses' formulas in the comments (notation of the
spec: N'_RE, N_RE, N_info, n, N'_info, C), or taken from published vectors named at the case.
"""
import numpy as np
import pytest

from ranpd.simulator.tables import MCS_TABLES
from ranpd.simulator.tbs import (
    SMALL_TBS_TABLE,
    ldpc_segmentation,
    n_re,
    tbs_from_n_info,
    tbs_per_mcs,
    transport_block_size,
)


def test_small_tbs_table_entries():
    # TS 38.214 Table 5.1.3.2-1: 93 entries from 24 to 3824, a few spot values by index.
    assert len(SMALL_TBS_TABLE) == 93
    assert SMALL_TBS_TABLE[0] == 24 and SMALL_TBS_TABLE[-1] == 3824
    spot = {21: 192, 22: 208, 33: 384, 34: 408, 52: 984, 53: 1032, 72: 2024, 76: 2280, 77: 2408, 85: 2976,
            86: 3104, 91: 3752}
    assert {i: int(SMALL_TBS_TABLE[i]) for i in spot} == spot
    assert np.all(np.diff(SMALL_TBS_TABLE) > 0) and np.all(SMALL_TBS_TABLE % 8 == 0)


@pytest.mark.parametrize("n_info, expected", [
    # n = max(3, ⌊log2 N_info⌋ − 6) = 5 for 2048 ≤ N_info < 4096; N'_info = 32·⌊N_info/32⌋.
    (3824, 3824),     # 32·⌊119.5⌋ = 3808 → first entry ≥ 3808 is 3824 (N_info exactly at the limit)
    (2977, 2976),     # 32·⌊93.03⌋ = 2976 → 2976 (an entry itself)
    (2975.9, 2976),   # 32·⌊92.99⌋ = 2944 → 2976
    (3009, 3104),     # 32·⌊94.03⌋ = 3008 → 3104 (next entry after 2976)
    (30.9, 24),       # n = 3: 8·⌊3.86⌋ = 24 = max(24, ·) → 24
    (200, 208),       # n = 3 (⌊log2 200⌋ = 7): 8·25 = 200 → 208
    # Just above the limit, step 4: n = ⌊log2 3801⌋ − 5 = 6, N'_info = max(3840, 64·round(59.39)) = 3840;
    # R = 0.5 > 1/4 and N'_info ≤ 8424 → TBS = 8·⌈3864/8⌉ − 24 = 3840.
    (3825, 3840),
    # A tie in step 4 rounds up: N_info − 24 = 3872 = 64·60.5 → N'_info = 64·61 = 3904 (not 64·60);
    # TBS = 8·⌈3928/8⌉ − 24 = 3904.
    (3896, 3904),
])
def test_tbs_from_n_info_around_the_small_tbs_limit(n_info, expected):
    assert int(tbs_from_n_info(n_info, 0.5)) == expected


def test_tbs_from_n_info_matlab_doc_example():
    # MathWorks nrTBS doc example: 16QAM, 4 layers, 52 PRB, 120 RE/PRB, tcr 0.48.
    # By hand: N_info = 6240·0.48·4·4 = 47923.2; n = 15 − 5 = 10; N'_info = 1024·round(46.78) = 48128;
    # C = ⌈48152/8424⌉ = 6; TBS = 48·⌈48152/48⌉ − 24 = 48·1004 − 24 = 48168.
    assert int(tbs_from_n_info(52 * 120 * 0.48 * 4 * 4, 0.48)) == 48168


# srsRAN_Project tests/unittests/scheduler/support/tbs_calculator_test_data.h (generated with MATLAB):
# {N_symb, N_DMRS, N_oh, {mod, R×1024}, layers, scaling field 0 (S = 1), n_PRB} → TBS.
@pytest.mark.parametrize("symbols, dmrs, overhead, qm, rate_x1024, layers, n_prb, expected", [
    (12, 6, 0, 2, 102.4, 1, 6, 160),       # 828 RE; N_info 165.6; 8·⌊20.7⌋ = 160 → 160
    (12, 36, 12, 4, 921.6, 1, 11, 3824),   # 1056 RE; N_info 3801.6; 32·⌊118.8⌋ = 3776 → 3824
    (12, 36, 0, 2, 921.6, 4, 11, 8456),    # N_info 8553.6; N'_info 256·33 = 8448 > 8424 → C = 2; 8456
    (12, 6, 12, 4, 921.6, 4, 11, 19968),
    (12, 36, 12, 6, 921.6, 4, 6, 12552),
    # 1518 RE; N_info 32788.8; n = 9; N'_info 512·64 = 32768; C = ⌈32792/8424⌉ = 4;
    # TBS = 32·⌈32792/32⌉ − 24 = 32·1025 − 24 = 32776.
    (12, 6, 0, 6, 921.6, 4, 11, 32776),
])
def test_tbs_matches_published_vectors(symbols, dmrs, overhead, qm, rate_x1024, layers, n_prb, expected):
    resource_elements = n_re(n_prb, symbols, dmrs, overhead)
    rate = rate_x1024 / 1024
    assert int(tbs_from_n_info(resource_elements * rate * qm * layers, rate)) == expected


def test_n_re_caps_at_156_per_prb():
    assert n_re(1, 14, 0) == 156                    # 12·14 = 168 → min(156, 168)
    assert n_re(10, 14, 6) == 1560                  # 162 → 156 per PRB
    assert n_re(10, 14, 12) == 1560                 # exactly 156
    assert n_re(10, 14, 12, n_overhead=18) == 1380  # 138 per PRB, below the cap
    assert n_re(10, 12, 12) == 1320
    np.testing.assert_array_equal(n_re(np.array([1, 2, 275]), 12, 12), [132, 264, 36300])
    # Above the cap, extra symbols do not change the TBS.
    assert transport_block_size(28, 1, 100, n_symbols=14, n_dmrs_per_prb=0) == \
        transport_block_size(28, 1, 100, n_symbols=13, n_dmrs_per_prb=0)


@pytest.mark.parametrize("kwargs, rate_x1024, expected_tbs, expected_segmentation", [
    # Step 3, table 1 MCS 0 (Qm 2, R 120): N_RE 132; N_info = 132·120/1024·2 = 30.94;
    # n = 3; N'_info = max(24, 8·3) = 24 → 24. BG2 (TBS ≤ 292); B = 24 + 16 → C = 1, K' = 40.
    (dict(mcs=0, table=1, n_prb=1), 120, 24, (2, 1, 40)),
    # Step 3, table 2 MCS 4 (Qm 2, R 602): N_RE 1320; N_info = 1552.03; n = 4; N'_info = 16·97 = 1552
    # → 1608. BG2 (TBS ≤ 3824, R = 0.588 ≤ 0.67); B = 1608 + 16 = 1624, C = 1.
    (dict(mcs=4, table=2, n_prb=10), 602, 1608, (2, 1, 1624)),
    # Step 3, table 1 MCS 28 (Qm 6, R 948): N_RE 132; N_info = 733.2; n = 3; N'_info = 8·91 = 728 → 736.
    # BG1 (TBS > 292, R = 0.926 > 0.67); B = 736 + 16 = 752, C = 1.
    (dict(mcs=28, table=1, n_prb=1), 948, 736, (1, 1, 752)),
    # Step 4 without segmentation, table 1 MCS 20 (Qm 6, R 567): N_RE 1584; N_info = 5262.47;
    # n = 12 − 5 = 7; N'_info = 128·round(40.93) = 5248; R > 1/4, N'_info ≤ 8424 →
    # TBS = 8·⌈5272/8⌉ − 24 = 5248. BG1 (TBS > 3824, R > 0.25); B = 5272 ≤ 8448 → C = 1.
    (dict(mcs=20, table=1, n_prb=12), 567, 5248, (1, 1, 5272)),
    # Step 4, R ≤ 1/4, BG2 with C > 1: table 1 MCS 0, 273 PRB, 4 layers: N_RE 36036;
    # N_info = 36036·120/1024·2·4 = 33783.75; n = 15 − 5 = 10; N'_info = 1024·round(32.97) = 33792;
    # C = ⌈33816/3816⌉ = 9; TBS = 72·⌈33816/72⌉ − 24 = 72·470 − 24 = 33816.
    # Segmentation: BG2 (R ≤ 0.25); B = 33840 > 3840; C = ⌈33840/3816⌉ = 9; K' = (33840 + 9·24)/9 = 3784.
    (dict(mcs=0, table=1, n_prb=273, layers=4), 120, 33816, (2, 9, 3784)),
    # Step 4, N'_info > 8424, BG1 with C > 1, N'_RE capped: table 1 MCS 28, 100 PRB, 14 symbols, no DM-RS:
    # N_RE = 156·100; N_info = 15600·948/1024·6 = 86653.125; n = 16 − 5 = 11;
    # N'_info = 2048·round(42.30) = 86016; C = ⌈86040/8424⌉ = 11; TBS = 88·⌈86040/88⌉ − 24 = 88·978 − 24
    # = 86040. Segmentation: BG1; B = 86064; C = ⌈86064/8424⌉ = 11; K' = (86064 + 264)/11 = 7848.
    (dict(mcs=28, table=1, n_prb=100, n_symbols=14, n_dmrs_per_prb=0), 948, 86040, (1, 11, 7848)),
    # Step 4, table 2 MCS 20 (Qm 8, R 682.5), 52 PRB, 2 layers: N_RE 6864; N_info = 73198.125;
    # n = 16 − 5 = 11; N'_info = 2048·round(35.73) = 73728; C = ⌈73752/8424⌉ = 9;
    # TBS = 72·⌈73752/72⌉ − 24 = 72·1025 − 24 = 73776. BG1; B = 73800; C = 9; K' = (73800 + 216)/9 = 8224.
    (dict(mcs=20, table=2, n_prb=52, layers=2), 682.5, 73776, (1, 9, 8224)),
])
def test_transport_block_size_and_segmentation(kwargs, rate_x1024, expected_tbs, expected_segmentation):
    tbs = transport_block_size(**kwargs)
    assert tbs == expected_tbs
    assert ldpc_segmentation(tbs, rate_x1024 / 1024) == expected_segmentation


@pytest.mark.parametrize("tbs, rate, expected", [
    (292, 0.9, (2, 1, 308)),     # TBS ≤ 292 → BG2 whatever R
    (296, 0.9, (1, 1, 312)),     # just above 292 with R > 0.67 → BG1
    (3824, 0.67, (2, 1, 3840)),  # TBS ≤ 3824 and R ≤ 0.67 → BG2; B = 3840 = K_cb → still one block
    (3824, 0.68, (1, 1, 3840)),
    (3840, 0.5, (1, 1, 3864)),   # TBS > 3824 with R > 0.25 → BG1, 24-bit TB CRC
    # 8456 (published vector above, R 0.9): BG1; B = 8480 > 8448; C = 2; K' = (8480 + 48)/2 = 4264.
    (8456, 0.9, (1, 2, 4264)),
])
def test_ldpc_base_graph_and_crc_edges(tbs, rate, expected):
    assert ldpc_segmentation(tbs, rate) == expected


def test_tbs_per_mcs_agrees_with_scalar_function():
    prbs = np.array([1, 7, 52, 273])
    for table, size in ((1, 29), (2, 28)):
        grid = tbs_per_mcs(table, prbs, n_symbols=13, n_dmrs_per_prb=18, layers=2)
        assert grid.shape == (len(prbs), size)
        expected = [[transport_block_size(m, table, int(p), 13, 18, layers=2) for m in range(size)] for p in prbs]
        np.testing.assert_array_equal(grid, expected)
    assert tbs_per_mcs(1, 10).shape == (29,)


@pytest.mark.parametrize("table", [1, 2])
def test_every_standard_tbs_segments_into_equal_code_blocks(table):
    # §5.1.3.2 step 4 makes TBS + 24 a multiple of 8·C, so B' = B + 24·C divides evenly (K' = B'/C exact);
    # the TBS also never shrinks as the allocation grows.
    prbs = np.arange(1, 276)
    code_rates = MCS_TABLES[table].code_rate
    for layers in (1, 4):
        grid = tbs_per_mcs(table, prbs, layers=layers)
        assert np.all(np.diff(grid, axis=0) >= 0)
        for mcs, column in enumerate(grid.T):
            for tbs in np.unique(column[column > 3824]):
                _, blocks, block_bits = ldpc_segmentation(int(tbs), float(code_rates[mcs]))
                if blocks > 1:
                    assert blocks * block_bits == tbs + 24 + 24 * blocks


@pytest.mark.parametrize("kwargs, message", [
    (dict(mcs=29, table=1, n_prb=10), "mcs"),
    (dict(mcs=28, table=2, n_prb=10), "mcs"),
    (dict(mcs=-1, table=1, n_prb=10), "mcs"),
    (dict(mcs=1.5, table=1, n_prb=10), "integer"),
    (dict(mcs=5, table=3, n_prb=10), "MCS table"),
    (dict(mcs=5, table=1, n_prb=0), "n_prb"),
    (dict(mcs=5, table=1, n_prb=276), "n_prb"),
    (dict(mcs=5, table=1, n_prb=10, n_symbols=0), "n_symbols"),
    (dict(mcs=5, table=1, n_prb=10, n_symbols=15), "n_symbols"),
    (dict(mcs=5, table=1, n_prb=10, layers=5), "layers"),
    (dict(mcs=5, table=1, n_prb=10, layers=0), "layers"),
    (dict(mcs=5, table=1, n_prb=10, n_overhead=5), "xOverhead"),
    (dict(mcs=5, table=1, n_prb=10, n_dmrs_per_prb=-1), "n_dmrs_per_prb"),
    (dict(mcs=5, table=1, n_prb=10, n_symbols=1, n_dmrs_per_prb=12), "no data resource elements"),
])
def test_transport_block_size_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        transport_block_size(**kwargs)


def test_other_functions_reject_bad_input():
    with pytest.raises(ValueError, match="n_prb"):
        tbs_per_mcs(1, [1, 300])
    with pytest.raises(ValueError, match="tbs"):
        ldpc_segmentation(0, 0.5)
    with pytest.raises(ValueError, match="code_rate"):
        ldpc_segmentation(100, 1.0)
    with pytest.raises(ValueError, match="N_info"):
        tbs_from_n_info(0.0, 0.5)
    with pytest.raises(ValueError, match="code_rate"):
        tbs_from_n_info(100.0, 0.0)
