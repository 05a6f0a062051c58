"""simulator/tables.py equals TS 38.214 MCS tables 5.1.3.1-1/-2 and CQI tables 5.2.2.1-2/-3.

Expected rows are transcribed independently from the TS 38.214 tables (
MCS, Qm, R×1024 and the spectral-efficiency column to 4 decimals), not derived from the module under test.
"""
import numpy as np
import pytest

from ranpd.simulator.tables import CQI_TABLES, MAX_SUPPORTED_MCS_ACTIONS, MCS_TABLES, cqi_to_mcs_map

# TS 38.214 Table 5.1.3.1-1 (64QAM), MCS 0..28: (Qm, R×1024, SE).
MCS_TABLE_1 = [
    (2, 120, 0.2344), (2, 157, 0.3066), (2, 193, 0.3770), (2, 251, 0.4902), (2, 308, 0.6016),
    (2, 379, 0.7402), (2, 449, 0.8770), (2, 526, 1.0273), (2, 602, 1.1758), (2, 679, 1.3262),
    (4, 340, 1.3281), (4, 378, 1.4766), (4, 434, 1.6953), (4, 490, 1.9141), (4, 553, 2.1602),
    (4, 616, 2.4063), (4, 658, 2.5703), (6, 438, 2.5664), (6, 466, 2.7305), (6, 517, 3.0293),
    (6, 567, 3.3223), (6, 616, 3.6094), (6, 666, 3.9023), (6, 719, 4.2129), (6, 772, 4.5234),
    (6, 822, 4.8164), (6, 873, 5.1152), (6, 910, 5.3320), (6, 948, 5.5547),
]
# TS 38.214 Table 5.1.3.1-2 (256QAM), MCS 0..27: (Qm, R×1024, SE).
MCS_TABLE_2 = [
    (2, 120, 0.2344), (2, 193, 0.3770), (2, 308, 0.6016), (2, 449, 0.8770), (2, 602, 1.1758),
    (4, 378, 1.4766), (4, 434, 1.6953), (4, 490, 1.9141), (4, 553, 2.1602), (4, 616, 2.4063),
    (4, 658, 2.5703), (6, 466, 2.7305), (6, 517, 3.0293), (6, 567, 3.3223), (6, 616, 3.6094),
    (6, 666, 3.9023), (6, 719, 4.2129), (6, 772, 4.5234), (6, 822, 4.8164), (6, 873, 5.1152),
    (8, 682.5, 5.3320), (8, 711, 5.5547), (8, 754, 5.8906), (8, 797, 6.2266), (8, 841, 6.5703),
    (8, 885, 6.9141), (8, 916.5, 7.1602), (8, 948, 7.4063),
]
# TS 38.214 Table 5.2.2.1-2 ("table 1"), CQI 1..15: (Qm, R×1024, efficiency).
CQI_TABLE_1 = [
    (2, 78, 0.1523), (2, 120, 0.2344), (2, 193, 0.3770), (2, 308, 0.6016), (2, 449, 0.8770),
    (2, 602, 1.1758), (4, 378, 1.4766), (4, 490, 1.9141), (4, 616, 2.4063), (6, 466, 2.7305),
    (6, 567, 3.3223), (6, 666, 3.9023), (6, 772, 4.5234), (6, 873, 5.1152), (6, 948, 5.5547),
]
# TS 38.214 Table 5.2.2.1-3 ("table 2"), CQI 1..15: (Qm, R×1024, efficiency).
CQI_TABLE_2 = [
    (2, 78, 0.1523), (2, 193, 0.3770), (2, 449, 0.8770), (4, 378, 1.4766), (4, 490, 1.9141),
    (4, 616, 2.4063), (6, 466, 2.7305), (6, 567, 3.3223), (6, 666, 3.9023), (6, 772, 4.5234),
    (6, 873, 5.1152), (8, 711, 5.5547), (8, 797, 6.2266), (8, 885, 6.9141), (8, 948, 7.4063),
]
HALF_LAST_DIGIT = 0.5e-4 + 1e-12  # the spec prints the efficiency rounded to 4 decimals


def _columns(rows):
    qm, rate_x1024, efficiency = zip(*rows)
    return np.array(qm), np.array(rate_x1024, dtype=float), np.array(efficiency)


@pytest.mark.parametrize("number, rows", [(1, MCS_TABLE_1), (2, MCS_TABLE_2)])
def test_mcs_table_equals_standard(number, rows):
    qm, rate_x1024, efficiency = _columns(rows)
    table = MCS_TABLES[number]
    assert table.size == len(rows)
    np.testing.assert_array_equal(table.qm, qm)
    np.testing.assert_array_equal(table.code_rate * 1024, rate_x1024)
    np.testing.assert_allclose(table.efficiency, efficiency, rtol=0, atol=HALF_LAST_DIGIT)


@pytest.mark.parametrize("number, rows", [(1, CQI_TABLE_1), (2, CQI_TABLE_2)])
def test_cqi_table_equals_standard(number, rows):
    qm, rate_x1024, efficiency = _columns(rows)
    table = CQI_TABLES[number]
    assert len(table.qm) == 16 and table.efficiency[0] == 0  # CQI 0 = out of range
    np.testing.assert_array_equal(table.qm[1:], qm)
    np.testing.assert_array_equal(table.code_rate[1:] * 1024, rate_x1024)
    np.testing.assert_allclose(table.efficiency[1:], efficiency, rtol=0, atol=HALF_LAST_DIGIT)


def test_action_space_is_the_widest_table():
    assert MAX_SUPPORTED_MCS_ACTIONS == len(MCS_TABLE_1) == 29


@pytest.mark.parametrize("mcs_number, mcs_rows", [(1, MCS_TABLE_1), (2, MCS_TABLE_2)])
@pytest.mark.parametrize("cqi_number, cqi_rows", [(1, CQI_TABLE_1), (2, CQI_TABLE_2)])
def test_illa_map_is_highest_mcs_not_above_cqi_efficiency(mcs_number, mcs_rows, cqi_number, cqi_rows):
    mapping = cqi_to_mcs_map(mcs_number, cqi_number)
    assert mapping.shape == (16,) and mapping[0] == 0
    assert np.all(np.diff(mapping) >= 0)
    assert np.all((mapping >= 0) & (mapping < len(mcs_rows)))
    mcs_eff = [q * r / 1024 for q, r, _ in mcs_rows]
    for cqi, (q, r, _) in enumerate(cqi_rows, start=1):
        cqi_eff = q * r / 1024
        fitting = [m for m, eff in enumerate(mcs_eff) if eff <= cqi_eff]
        # Highest MCS whose efficiency does not exceed the CQI's; MCS 0 when none fits (CQI 1 = 0.1523).
        assert mapping[cqi] == (max(fitting) if fitting else 0), f"CQI {cqi}"
        if fitting:
            assert mcs_eff[mapping[cqi]] <= cqi_eff


def test_illa_map_matched_tables_hit_identical_rows():
    # Every CQI row from 2 up has an MCS row with the same (Qm, R) in the matching MCS table.
    np.testing.assert_array_equal(cqi_to_mcs_map(1, 1), [0, 0, 0, 2, 4, 6, 8, 11, 13, 15, 18, 20, 22, 24, 26, 28])
    np.testing.assert_array_equal(cqi_to_mcs_map(2, 2), [0, 0, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27])
