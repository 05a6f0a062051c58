"""Child process of `validate_model_isolated`: `python -m ranpd.xapp.model_check MODEL LIMITS_JSON`.

Caps its own address space (RLIMIT_AS) and CPU time (RLIMIT_CPU, a backstop should the parent
die) before loading onnxruntime, runs `validate_model`, and prints one JSON line: the measured
latency, or the error.
"""
from __future__ import annotations

import json
import math
import resource
import sys
from dataclasses import asdict


def main(model_path: str, limits_json: str) -> dict:
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
