"""The REST contract, fuzzed: schemathesis (`run --checks all`) against the running xApp.

Every check is on (server errors, status codes and content types as documented, response schemas,
negative data rejected, positive data accepted, auth not ignored, unsupported methods). Two
operations have rules JSON Schema cannot state, so for them a schema-valid request may also be
refused with 422: `/decide` (a UE id at most once per list) and `PUT /model` (the bytes must be a
valid ONNX model whose sha256 is the card's). Bounded examples keep this under a minute; a
bigger run is the same command with a larger `--max-examples` (SCHEMATHESIS_EXAMPLES).
"""
from __future__ import annotations

import os
import subprocess
import sys

from ranpd.xapp.config import XappSettings
from ranpd.xapp.model import OnnxPolicyModel
from ranpd.xapp.server import XappThread
from ranpd.xapp.synthetic import write_synthetic_model

TOKEN = "fuzz-token"
CONFIG = """
[[operations]]
include-path = ["/ric/v1/decide", "/ric/v1/model"]
include-method = ["POST", "PUT"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"""


def test_schemathesis_finds_no_failure(tmp_path):
    model = OnnxPolicyModel.load(write_synthetic_model(tmp_path / "student.onnx", hidden=(8,)))
    settings = XappSettings(e2_port=0, http_port=0, admin_token=TOKEN, model_dir=tmp_path / "models",
                            log_level="warning")
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    examples = os.environ.get("SCHEMATHESIS_EXAMPLES", "25")
    with XappThread(settings, model) as xapp:
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(tmp_path / "schemathesis.toml"),
             "run", f"http://127.0.0.1:{xapp.http_port}/openapi.json", "--checks", "all",
             "--max-examples", examples, "--seed", "1", "--continue-on-failure",
             "-H", f"Authorization: Bearer {TOKEN}"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert xapp.service.model is not None                 # fuzzing never replaced the model
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    cases = summary.split("Test cases:")[1].strip().splitlines()[0]
    print(f"schemathesis, {examples} examples per operation: {cases}")
    assert "failure" not in cases
