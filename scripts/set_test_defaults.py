"""Set a checkpoint's test-time defaults (fields of its model config that change how it is read, not its weights),
in place: the shipped protocol model reads each crop mirrored too since session 19.

    python scripts/set_test_defaults.py src/lightmark/weights/lightmark_protocol.pt --flip-test
    make onnx    # the ONNX twin records the checkpoint's config and SHA-256: export it again

Everything else in the file (weights, training config, history) is kept as it is.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from lightmark.models.checkpoint import load_checkpoint
from lightmark.models.config import ModelConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a lightmark .pt, rewritten in place")
    ap.add_argument("--flip-test", action=argparse.BooleanOptionalAction, help="ModelConfig.flip_test")
    ap.add_argument("--refine", type=int, help="ModelConfig.refine_passes")
    a = ap.parse_args()
    ckpt = load_checkpoint(a.checkpoint)
    config = ModelConfig.from_dict(ckpt.config)
    changes = {k: v for k, v in (("flip_test", a.flip_test), ("refine_passes", a.refine)) if v is not None}
    ckpt.config = replace(config, **changes).to_dict()
    ckpt.save(a.checkpoint)
    print(f"{a.checkpoint}: " + ", ".join(f"{k}={v}" for k, v in changes.items()) if changes else "nothing to change")


if __name__ == "__main__":
    main()
