"""`ranpd bench sensitivity`: every policy under every interference model, gains computed right."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ranpd.cli import main
from ranpd.simulator.scenarios import BUILTIN_SCENARIOS
from ranpd.training.config import EvalConfig
from ranpd.training.sensitivity import INTERFERENCE_MODELS, gains, markdown, run_sensitivity, summary


def test_every_interference_model_and_policy_is_run_with_olla_tuned_per_model():
    cfg = EvalConfig(slots=60, seeds=(1001,), olla_targets=(0.1, 0.3), olla_steps_db=(1.0,))
    result = run_sensitivity([BUILTIN_SCENARIOS["uma-low-pedestrian"]], None, cfg)
    assert list(result["kpis"]) == list(INTERFERENCE_MODELS)
    for model, kpis in result["kpis"].items():
        row = kpis["uma-low-pedestrian"]
        assert set(row) == {"illa", "olla", "olla-best"}
        assert result["olla_best"][model]["uma-low-pedestrian"]["target_bler"] in (0.1, 0.3)
    # The same seed under another interference model is another run.
    throughputs = {m: k["uma-low-pedestrian"]["olla"]["throughput_mbps"] for m, k in result["kpis"].items()}
    assert len(set(throughputs.values())) == 3
    text = markdown(result, cfg, "none")
    assert "| always_on |" in text and "uma-low-pedestrian" in text


def test_gains_are_relative_throughput_differences():
    kpis = {"a": {"x": {"throughput_mbps": 11.0}, "olla": {"throughput_mbps": 10.0}},
            "b": {"x": {"throughput_mbps": 9.0}, "olla": {"throughput_mbps": 10.0}}}
    assert gains(kpis, "x", "olla") == pytest.approx({"a": 10.0, "b": -10.0})
    table = summary({"kpis": {"scheduled": kpis}})
    assert table["scheduled"] == {}   # no illa / olla-best / model column in this toy table


def test_cli_runs_one_model_and_reports_json():
    result = CliRunner().invoke(main, ["bench", "sensitivity", "--model", "none", "--scenario", "uma-low-pedestrian",
                                       "--slots", "50", "--seeds", "1001", "--interference", "always_on", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out["kpis"]) == ["always_on"] and "illa_vs_olla_pct" in out["summary"]["always_on"]
    bad = CliRunner().invoke(main, ["bench", "sensitivity", "--seeds", "x"])
    assert bad.exit_code != 0 and "comma-separated" in bad.output
