"""Regenerate the Python modules of the E2-like protocol from the .proto files beside this one.

    python3 -m ranpd.proto.generate            # rewrite proto/*_pb2.py(i) in place
    python3 -m ranpd.proto.generate --out DIR  # write them elsewhere (the reproducibility test)

Uses grpc_tools' bundled protoc (test extra). The generated code embeds the protobuf version of
that protoc; the `grpcio-tools` pin in pyproject.toml fixes it, so that regenerating gives
byte-identical files and they load on the pinned protobuf runtime.
"""
from __future__ import annotations

import argparse
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PROTO_FILES = ("e2ap.proto", "e2sm_kpm.proto", "e2sm_la.proto")


def generate(out_dir: Path = PROTO_DIR) -> list[Path]:
    """Run protoc on PROTO_FILES; returns the files written (`*_pb2.py` and `*_pb2.pyi`)."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            *(str(PROTO_DIR / name) for name in PROTO_FILES)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO_FILES}")
    return sorted(p for name in PROTO_FILES
                  for p in out_dir.glob(name.replace(".proto", "_pb2.py*")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROTO_DIR, help="output directory")
    for path in generate(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
