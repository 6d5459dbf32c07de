"""Set a checkpoint's test-time defaults (:data:`~lightmark.models.config.TEST_TIME_FIELDS`: how the model is read,
not its weights), in place: the shipped protocol model reads each crop mirrored too since session 19.

    python scripts/set_test_defaults.py src/lightmark/weights/lightmark_protocol.pt --flip-test
    make onnx    # the ONNX twin records the checkpoint's config and SHA-256: export it again

Everything else in the file (weights, training config, history) is kept as it is.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from lightmark.models.checkpoint import load_checkpoint
from lightmark.models.config import TEST_TIME_FIELDS, ModelConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a lightmark .pt, rewritten in place when a value changes")
    for name in TEST_TIME_FIELDS:
        ap.add_argument(
            f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, help=f"ModelConfig.{name}"
        )
    a = ap.parse_args()
    ckpt = load_checkpoint(a.checkpoint)
    config = ModelConfig.from_dict(ckpt.config)
    given = {k: getattr(a, k) for k in TEST_TIME_FIELDS if getattr(a, k) is not None}
    changes = {k: v for k, v in given.items() if getattr(config, k) != v}
    if not changes:
        print(f"{a.checkpoint}: nothing to change")
        return
    ckpt.config = replace(config, **changes).to_dict()
    ckpt.save(a.checkpoint)
    print(f"{a.checkpoint}: " + ", ".join(f"{k}={v}" for k, v in changes.items()))


if __name__ == "__main__":
    main()
