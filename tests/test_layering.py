"""The architecture's layering as tests: import contracts (import-linter, pyproject.toml) and the
runtime commands importing no torch (each run in a fresh interpreter, `sys.modules` inspected)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(config: Path) -> int:
    from importlinter.cli import lint_imports

    return lint_imports(config_filename=str(config), no_cache=True, no_logo=True)


def test_import_contracts_hold():
    """proto imports nothing of ours; simulator never imports xapp/training/torch; xapp never
    imports training or torch (direct or indirect imports, including imports inside functions)."""
    assert _lint(ROOT / "pyproject.toml") == 0


def test_a_broken_contract_is_caught(tmp_path):
    """Control: the same machinery flags a dependency that does exist (training -> torch)."""
    config = tmp_path / "control.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["ranpd.training", "ranpd.xapp"]\n'
                      'include_external_packages = true\n\n[[tool.importlinter.contracts]]\n'
                      'name = "control"\ntype = "forbidden"\nsource_modules = ["ranpd.training"]\n'
                      'forbidden_modules = ["torch"]\n')
    assert _lint(config) == 1


RUNTIME_COMMANDS = [
    ["--help"],
    ["scenarios", "--json"],
    ["simulate", "--scenario", "uma-mid-pedestrian", "--slots", "20", "--ues", "4", "--json"],
    ["xapp", "--help"],
    ["e2node", "--help"],
    ["bench", "sim", "--help"],
    ["bench", "student", "--help"],
    ["bench", "soak", "--help"],
    ["demo", "--help"],
]

# Runs each command in one interpreter and prints, per command, its exit code and the torch modules
# imported by then.
PROBE = """
import json, sys
from ranpd.cli import main
out = []
for args in json.loads(sys.argv[1]):
    try:
        main(args, prog_name="ranpd", standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    out.append({"args": args, "code": code, "heavy": heavy[:5]})
print("PROBE" + json.dumps(out))
"""


def test_runtime_commands_import_no_torch():
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(RUNTIME_COMMANDS)], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("PROBE")]
    for run in json.loads(line[len("PROBE"):]):
        assert run["code"] == 0, run
        assert run["heavy"] == [], f"`ranpd {' '.join(run['args'])}` imported {run['heavy']}"


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_the_probe_sees_torch_when_a_command_imports_it():
    """Control: torch imported in the probe's interpreter (via training) is reported."""
    probe = PROBE.replace("from ranpd.cli import main", "from ranpd.cli import main\nimport ranpd.training.pipeline")
    result = subprocess.run([sys.executable, "-c", probe, json.dumps([["--help"]])], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("PROBE")]
    assert "torch" in json.loads(line[len("PROBE"):])[0]["heavy"]
