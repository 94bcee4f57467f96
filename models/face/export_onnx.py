"""Export the trained face CNN (``fer_cnn.safetensors``) to ONNX for inference with ONNX Runtime.

    pip install -e ".[train]"            # onnx + onnxscript: needed to export, not to run
    python -m models.face.export_onnx    # models/face/fer_cnn.safetensors → models/face/fer_cnn.onnx

The recipe (``train_face.py``) runs this after every export. ONNX Runtime runs the net about 1.8x faster than
PyTorch for one face and its mirror on 2 CPU cores (docs/benchmarks.md). The ONNX file carries the safetensors
metadata (temperature, labels, accuracy) and the SHA-256 of the weights it was made from, so a stale export is
detected (``tests/test_face.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multimodal.backbones import file_sha256

HERE = Path(__file__).resolve().parent


def export_onnx(weights: Path = HERE / "fer_cnn.safetensors", out: Path | None = None) -> Path:
    """Write ``out`` (default: ``weights`` with the suffix .onnx); the batch dimension is dynamic."""
    import onnx
    import torch
    from safetensors.torch import load_file

    from multimodal.face_net import FaceExpressionNet
    from multimodal.heads import read_metadata

    out = out or weights.with_suffix(".onnx")
    meta = read_metadata(weights)
    net = FaceExpressionNet(width=int(meta.get("width", 32)))
    net.load_state_dict(load_file(str(weights)))
    program = torch.onnx.export(net.eval(), (torch.rand(2, 1, 48, 48),), dynamo=True, input_names=["image"],
                                output_names=["logits"], dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    model = program.model_proto
    meta["source_sha256"] = file_sha256(weights)
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=HERE / "fer_cnn.safetensors")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    print(f"exported {export_onnx(args.weights, args.out)}")


if __name__ == "__main__":
    main()
