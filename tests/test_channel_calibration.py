"""The network interference model: geometry vs the 3GPP TR 38.901 §7.8 calibration, neighbour occupancy."""
from __future__ import annotations

import numpy as np
import pytest

from ranpd.simulator.calibration.geometry import compare, load_reference
from ranpd.simulator.channel import (DEPLOYMENTS, N_DYNAMIC, drop_sectors, geometry_db, hex_sites,
                                     interference_per_subband, neighbour_occupancy_traces, read_traces,
                                     sector_antenna_gain_db)

# Tolerances on the 5/50/95th geometry percentiles (dB). With the Table 7.8-1 UE distribution:
# 3 sampling standard deviations at 10k UEs (0.15 dB at the median, measured over 20 seeds) plus
# 0.25 dB for the reference itself (a median over companies, read at 0.1 dB, run with TR 38.900
# v14.0.0 parameters). The simulator's all-outdoor drop has a known gap (up to ~1 dB too high at
# UMi's median: no UEs on upper floors), allowed 1.5 dB.
TOL_3GPP_UES_DB, TOL_OUTDOOR_DB = 0.7, 1.5


def test_reference_and_comparison_script():
    reference = load_reference()
    assert set(reference) == {(env, fc) for env in ("UMa", "UMi") for fc in (6.0, 30.0)}
    for pct, values in reference.values():
        np.testing.assert_array_equal(pct, np.arange(5, 100, 5))
        assert np.all(np.diff(values) > 0)
    rows = compare(n_ues=300, seed=1)
    assert len(rows) == 4 and all(len(r["outdoor_db"]) == 19 for r in rows)


def test_layout_is_two_tiers_of_hexagonal_sites():
    sites = hex_sites(500.0)
    distance = np.sort(np.hypot(*sites.T))
    assert len(sites) == 19 and distance[0] == 0
    np.testing.assert_allclose(distance[1:7], 500.0)
    np.testing.assert_allclose(distance[7:13], 500.0 * np.sqrt(3))
    np.testing.assert_allclose(distance[13:], 1000.0)


def test_sector_pattern_follows_table_7_3_1():
    # Horizontal cut at the tilted main beam: -12(φ/65)² dB; the element floors at 30 dB below its
    # own peak, which lies 12(12/65)² dB above the element's gain at the 12° tilt.
    phi = np.array([0.0, 32.5, 65.0, 180.0])
    gain = sector_antenna_gain_db(phi, np.full(4, 102.0))
    np.testing.assert_allclose(gain[:3], -12 * (phi[:3] / 65) ** 2, atol=1e-9)
    assert gain[3] == pytest.approx(-30.0 + 12 * (12 / 65) ** 2)
    # Vertical cut: the 10-element half-wavelength column peaks at the tilt with a ~10° half-power
    # beam (0.886·2/M rad) and a null near the horizon.
    zenith = np.linspace(90.0, 130.0, 4001)
    cut = sector_antenna_gain_db(np.zeros_like(zenith), zenith)
    assert zenith[np.argmax(cut)] == pytest.approx(102.0, abs=0.5)  # the element pulls it up a little
    assert np.ptp(zenith[cut >= -3.0]) == pytest.approx(np.degrees(0.886 * 2 / 10) / np.sin(np.radians(102)), abs=0.5)
    assert cut[0] < -20.0


@pytest.mark.parametrize("env", ["UMa", "UMi"])
@pytest.mark.parametrize("indoor_fraction, tol", [(0.8, TOL_3GPP_UES_DB), (0.0, TOL_OUTDOOR_DB)])
def test_geometry_percentiles_match_3gpp_calibration(env, indoor_fraction, tol):
    h_bs, isd, d_min = DEPLOYMENTS[env]
    pct, reference = load_reference()[(env, 6.0)]
    drop = drop_sectors(env, 10_000, 6.0, isd, h_bs, d_min, np.random.default_rng(7),
                        indoor_fraction=indoor_fraction)
    ours = np.percentile(geometry_db(drop), [5, 50, 95])
    np.testing.assert_allclose(ours, reference[np.searchsorted(pct, [5, 50, 95])], atol=tol)


def test_drop_orders_interferers_and_scales_with_load():
    drop = drop_sectors("UMa", 500, 3.5, 500.0, 25.0, 35.0, np.random.default_rng(0))
    assert drop.interferer_db.shape == (500, N_DYNAMIC)
    assert np.all(np.diff(drop.interferer_db, axis=1) <= 0)
    assert np.all(drop.serving_db >= drop.interferer_db[:, 0])
    assert np.all(drop.residual_db < drop.interferer_db[:, -1] + 10 * np.log10(57))
    # Halving the load raises every UE's SIR by 3 dB; no load, no interference.
    np.testing.assert_allclose(geometry_db(drop, 0.5) - geometry_db(drop), 10 * np.log10(2), atol=1e-9)
    assert np.all(np.isinf(geometry_db(drop, 0.0)))
    assert np.all(geometry_db(drop, 1.0, noise_db=-100.0) < geometry_db(drop))


SLOT_S = 0.5e-3


@pytest.mark.parametrize("load", [0.1, 0.3, 0.6, 0.9])
def test_long_run_occupancy_equals_load(load):
    occupancy = neighbour_occupancy_traces(load, 8, 64, 65536, SLOT_S, seed=3)
    # Per-chain utilisation has a standard deviation <= 0.05 (heavy-tailed bursts over 33 s);
    # over 64 chains that is <= 0.006, so 0.03 is a 5-sigma bound.
    assert occupancy.mean() == pytest.approx(load, abs=0.03)


def test_occupancy_churns_every_slot_and_across_subbands():
    occupancy = neighbour_occupancy_traces(0.5, 8, 4, 16384, SLOT_S, seed=0)
    busy = occupancy.any(axis=2)
    both = busy[:, 1:] & busy[:, :-1]
    changed = (occupancy[:, 1:] != occupancy[:, :-1]).any(axis=2)
    assert changed[both].mean() > 0.5                 # consecutive busy slots use different subsets
    partial = occupancy.any(axis=2) & ~occupancy.all(axis=2)
    assert partial.mean() > 0.3                      # part of the band, not all or nothing
    assert 0.0 < busy.mean() < 1.0                   # and idle periods


def test_busy_periods_span_milliseconds_to_seconds():
    busy = neighbour_occupancy_traces(0.3, 8, 16, 65536, SLOT_S, seed=1).any(axis=2)
    lengths = []
    for chain in busy:
        edges = np.flatnonzero(np.diff(chain.astype(np.int8)))
        lengths.extend(np.diff(edges)[chain[edges[:-1] + 1]])     # complete busy runs, in slots
    seconds = np.array(lengths) * SLOT_S
    assert seconds.min() <= 2e-3 and seconds.max() >= 1.0
    assert 0.01 < np.median(seconds) < 0.1


def test_occupancy_edge_cases_and_seeds():
    assert not neighbour_occupancy_traces(0.0, 8, 2, 1000, SLOT_S, seed=0).any()
    assert neighbour_occupancy_traces(1.0, 8, 2, 1000, SLOT_S, seed=0).all()
    a = neighbour_occupancy_traces(0.4, 8, 16, 65536, SLOT_S, seed=5)
    assert a.nbytes <= 16 * 2 ** 20 and a.dtype == bool
    neighbour_occupancy_traces.cache_clear()
    np.testing.assert_array_equal(a, neighbour_occupancy_traces(0.4, 8, 16, 65536, SLOT_S, seed=5))
    b = neighbour_occupancy_traces(0.4, 8, 16, 65536, SLOT_S, seed=6)
    assert (a != b).mean() > 0.2


def test_interference_per_subband_sums_occupied_faded_links():
    rng = np.random.default_rng(0)
    inr = rng.exponential(size=(5, 3))
    occupancy = rng.random((5, 3, 4)) < 0.5
    fading = rng.exponential(size=(5, 3, 4)).astype(np.float32)
    expected = np.array([[sum(inr[u, j] * occupancy[u, j, s] * fading[u, j, s] for j in range(3))
                          for s in range(4)] for u in range(5)])
    np.testing.assert_allclose(interference_per_subband(inr, occupancy, fading), expected, rtol=1e-5)


def test_read_traces_matches_fancy_indexing():
    traces = np.random.default_rng(0).random((3, 50, 4)).astype(np.float32)
    trace, sample = np.array([[0, 2], [1, 1]]), np.array([[49, 0], [7, 8]])
    np.testing.assert_array_equal(read_traces(traces, trace, sample), traces[trace, sample])
