"""`ranpd bench xapp` runs end to end on a tiny config: the xApp and the echo floor answer the same
frames in one run (figures themselves belong to the benchmark, not to a test)."""
from ranpd.xapp.bench import run_bench
from ranpd.xapp.synthetic import write_synthetic_model


def test_bench_times_the_xapp_beside_the_echo_floor(tmp_path):
    report = run_bench([4], 20, write_synthetic_model(tmp_path / "student.onnx"), progress=False)
    (row,) = report["results"]
    assert row["ues"] == 4 and row["indications"] == 16
    assert 0 < row["echo_p50_us"] <= row["echo_p99_us"] and 0 < row["p50_us"] <= row["p99_us"]
    assert row["p50_vs_echo"] > 0 and row["max_indications_per_s"] > 0
    assert set(row["stages"]) == {"decode", "observation", "inference", "encode", "total"}
