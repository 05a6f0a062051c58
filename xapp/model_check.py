"""Child process of `validate_model_isolated`: `python -m ranpd.xapp.model_check MODEL LIMITS_JSON`.

Asks Linux to kill it when the thread that started it goes (prctl PR_SET_PDEATHSIG, so an
xApp that stops takes its validation along), caps its own address space (RLIMIT_AS) and CPU time
(RLIMIT_CPU, a backstop) before loading onnxruntime, runs `validate_model`, and prints one JSON
line: the measured latency, or the error.
"""
from __future__ import annotations

import ctypes
import json
import math
import resource
import signal
import sys
from dataclasses import asdict

PR_SET_PDEATHSIG = 1    # <linux/prctl.h>


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):     # not Linux: RLIMIT_CPU still ends a runaway check
        pass


def main(model_path: str, limits_json: str) -> dict:
    _die_with_parent()
    limits = json.loads(limits_json)
    cap = limits["memory_mb"] << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    cpu = math.ceil(limits["timeout_s"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    from ranpd.xapp.model import ModelError, ModelLimits, OnnxPolicyModel

    try:
        model = OnnxPolicyModel.load(model_path, limits=ModelLimits(**limits))
    except ModelError as exc:
        return {"error": str(exc)}
    except MemoryError:
        return {"error": f"validation ran out of memory (cap {limits['memory_mb']} MB)"}
    return {"latency": asdict(model.latency)}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])), flush=True)
