"""Recipe: train moodtune's facial-expression CNN on FER2013 (resumable, seeded).

    python models/face/train_face.py --data ../shared/data --epochs 30

Checkpoints go to --work (default $MOODTUNE_HOME/work/train_face) after every epoch; running the same
command again resumes. The best epoch (validation accuracy with flip test-time augmentation) is
exported to models/face/fer_cnn.safetensors with a temperature fitted on the validation split, then to
fer_cnn.onnx beside it, which the encoder runs (needs the ``[train]`` extra; see export_onnx.py).

``--swa`` (with ``--init``) runs a stochastic-weight-averaging stage instead of a one-cycle one
(Izmailov et al., UAI 2018): every epoch is one cosine cycle from --lr down to --lr/20, the weights at
the end of each cycle are averaged, and batch-norm statistics are recomputed on un-augmented training
images. Exported: the best on validation of the best single epoch, the same with batch norm recomputed,
and the average. Running the command again with a smaller --epochs stops the stage where it is and
exports. ``--augment 0.5`` (or less) eases the augmentation for a last stage: the network under-fits the
fully augmented images; SWA stages at 0.5, then 0.25 gained +0.005 and +0.010, then 0.1 only +0.0003
(see MODEL_CARD.md). ``--sam 0.05`` makes every step sharpness-aware (Foret et al., ICLR 2021): twice the
compute a step, for flatter minima (an SWA stage with it from the shipped weights: 0.6871, no gain).

Training runs in channels-last memory format (1.5x faster convolutions on the CPU than the default layout).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from multimodal.files import work_dir
from multimodal.datasets import default_data_dir, load_fer2013
from multimodal.face_net import FaceExpressionNet
from multimodal.heads import fit_temperature
from multimodal.labels import EMOTIONS

HERE = Path(__file__).resolve().parent


def load_split(data: Path, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_fer2013(data, name)
    return torch.from_numpy(images).float().div_(255).unsqueeze(1), torch.from_numpy(labels)


def augment(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random flip, rotation (±12°), scale (0.9–1.1), shift (±10%), brightness/contrast, erasing (half the images).

    ``strength`` scales every range and the share of erased images (0.5: ±6°, ±5%, a quarter erased).
    """
    n = x.shape[0]
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(12) * strength
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * 0.1 * strength
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    tx, ty = ((torch.rand(2, n, generator=gen) * 2 - 1) * 0.2 * strength)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.3 * strength
    bias = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.1 * strength
    out = ((out - 0.5) * gain + 0.5 + bias).clamp_(0, 1)
    # random erasing: one rectangle in half of the images (at full strength)
    for i in torch.nonzero(torch.rand(n, generator=gen) < 0.5 * strength).flatten().tolist():
        h, w = (torch.randint(8, 20, (2,), generator=gen)).tolist()
        r, c = torch.randint(0, 48 - h, (1,), generator=gen).item(), torch.randint(0, 48 - w, (1,), generator=gen).item()
        out[i, :, r:r + h, c:c + w] = torch.rand(1, generator=gen).item()
    return out


@torch.no_grad()
def predict_logits(model: FaceExpressionNet, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Logits averaged over the image and its mirror (flip test-time augmentation)."""
    model.eval()
    outs = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        outs.append((model(xb) + model(torch.flip(xb, dims=[3]))) / 2)
    return torch.cat(outs)


def val_accuracy(model: FaceExpressionNet, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of ``predict_logits`` (flip test-time augmentation) against gold indices."""
    return float((predict_logits(model, x).argmax(1) == y).float().mean())


def recompute_batch_norm(model: torch.nn.Module, x: torch.Tensor, batch: int = 512) -> None:
    """Batch-norm running statistics from scratch over ``x`` (un-augmented images), as SWA needs; eval mode after."""
    batches = tqdm(x.split(batch), desc="batch-norm statistics", leave=False)
    torch.optim.swa_utils.update_bn(batches, model)
    model.eval()


def train_step(model: torch.nn.Module, loss_of: Callable[[], tuple[torch.Tensor, torch.Tensor]],
               opt: torch.optim.Optimizer, sam: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on the loss ``loss_of()`` returns with its logits; returns those (of the first pass).

    With ``sam`` > 0 the step is sharpness-aware (Foret et al., ICLR 2021): the gradient is taken again at the
    weights moved by ``sam`` along the normalised gradient, then applied to the original weights.
    """
    loss, logits = loss_of()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if sam:
        params = [p for p in model.parameters() if p.grad is not None]
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
            steps = [p.grad * (sam / (norm + 1e-12)) for p in params]
            for p, step in zip(params, steps):
                p.add_(step)
        opt.zero_grad(set_to_none=True)
        loss_of()[0].backward()
        with torch.no_grad():
            for p, step in zip(params, steps):
                p.sub_(step)
    opt.step()
    return loss, logits


def class_weights(y: torch.Tensor) -> torch.Tensor:
    """Loss weight per class: the inverse square root of its frequency in ``y``, scaled so the mean weight over
    the samples is 1 (disgust, 436 of 28,709 training images, weighs about 4× happy)."""
    counts = torch.bincount(y, minlength=len(EMOTIONS)).float().clamp(min=1)
    w = (counts.sum() / counts).sqrt()
    return w / (w * counts).sum() * counts.sum()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data_dir(), help="default: $MOODTUNE_DATA or ../shared/data")
    ap.add_argument("--work", type=Path, default=work_dir("train_face"))
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--limit", type=int, default=0, help="use only N training images, a seeded random draw (smoke test)")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these weights (a fer_cnn.safetensors): a second, shorter fine-tuning stage")
    ap.add_argument("--swa", action="store_true",
                    help="stochastic weight averaging: one cosine cycle per epoch, average of the cycle ends")
    ap.add_argument("--augment", type=float, default=1.0, metavar="STRENGTH",
                    help="augmentation strength (1: full; 0.5: half the ranges and erasing, for a last stage)")
    ap.add_argument("--sam", type=float, default=0.0, metavar="RHO",
                    help="sharpness-aware minimisation with this radius (0.05 is usual; 0: plain SGD); "
                         "two forward-backward passes a step")
    args = ap.parse_args(argv)
    if args.swa and args.init is None:
        ap.error("--swa averages around trained weights: give --init")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)  # before hours of training, not at the export

    xtr, ytr = load_split(args.data, "train")
    xva, yva = load_split(args.data, "val")
    if args.limit:  # a seeded random subset: the split is sorted by class (its first 1,024 images are all angry)
        keep = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(args.seed))[:args.limit]
        xtr, ytr = xtr[keep], ytr[keep]
    class_w = class_weights(ytr)

    model = FaceExpressionNet(width=args.width)
    if args.init is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(args.init)))
        print(f"starting from {args.init}")
    model.to(memory_format=torch.channels_last)  # 1.5x faster convolutions on the CPU
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(xtr) / args.batch)
    if args.swa:
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=steps_per_epoch, eta_min=args.lr / 20)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                    steps_per_epoch=steps_per_epoch, pct_start=0.2)
    swa = torch.optim.swa_utils.AveragedModel(model) if args.swa else None
    gen = torch.Generator().manual_seed(args.seed)
    state = {"epoch": 0, "best_acc": 0.0, "history": []}
    ckpt = args.work / "last.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"]); opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"]); gen.set_state(saved["gen"]); state = saved["state"]
        if swa is not None:
            swa.load_state_dict(saved["swa"])
        print(f"resuming after epoch {state['epoch']} (best val acc {state['best_acc']:.4f})")
    if args.init is not None and state["epoch"] == 0:
        torch.save(model.state_dict(), args.work / "best.pt")  # a stage never exports worse than its start
        state["best_acc"] = val_accuracy(model, xva, yva)
        print(f"starting weights: val acc {state['best_acc']:.4f}")

    for epoch in range(state["epoch"], args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        t0, total, correct, seen = time.time(), 0.0, 0, 0
        bar = tqdm(range(0, len(xtr), args.batch), desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
        for i in bar:
            idx = perm[i:i + args.batch]
            xb, yb = augment(xtr[idx], gen, args.augment).contiguous(memory_format=torch.channels_last), ytr[idx]

            def loss_of() -> tuple[torch.Tensor, torch.Tensor]:
                out = model(xb)
                return F.cross_entropy(out, yb, weight=class_w, label_smoothing=0.1), out

            loss, logits = train_step(model, loss_of, opt, sam=args.sam)
            sched.step()
            total += loss.item() * len(idx); seen += len(idx); correct += int((logits.argmax(1) == yb).sum())
            bar.set_postfix(loss=f"{total / seen:.3f}", acc=f"{correct / seen:.3f}")
        acc = val_accuracy(model, xva, yva)
        record = {"epoch": epoch + 1, "train_loss": total / seen, "train_acc": correct / seen, "val_acc": acc}
        if swa is not None:
            swa.update_parameters(model)
            probe = copy.deepcopy(swa.module)  # a quick look: batch norm from 4,096 training images
            recompute_batch_norm(probe, xtr[perm[:4096]])
            record["swa_val_acc_probe"] = val_accuracy(probe, xva, yva)
        record["seconds"] = time.time() - t0
        state["history"].append(record)
        print(json.dumps(state["history"][-1]), flush=True)
        if acc > state["best_acc"]:
            state["best_acc"] = acc
            torch.save(model.state_dict(), args.work / "best.pt")
        state["epoch"] = epoch + 1
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "gen": gen.get_state(), "state": state, "swa": swa.state_dict() if swa is not None else None},
                   ckpt)

    model.load_state_dict(torch.load(args.work / "best.pt"))
    exported = f"best single epoch ({state['best_acc']:.4f})"
    if swa is not None and state["epoch"] > 0:
        # Candidates, each with batch norm recomputed on un-augmented training images (the statistics
        # test-time crops have); the best on validation is exported.
        clean = copy.deepcopy(model)
        recompute_batch_norm(clean, xtr)
        averaged = swa.module
        recompute_batch_norm(averaged, xtr)
        candidates = {"best single epoch": (model, state["best_acc"]),
                      "best single epoch, batch norm recomputed": (clean, val_accuracy(clean, xva, yva)),
                      f"average of {int(swa.n_averaged)} cycle ends": (averaged, val_accuracy(averaged, xva, yva))}
        state["swa"] = {"n_averaged": int(swa.n_averaged), "val_acc": {k: a for k, (_, a) in candidates.items()}}
        for name, (_, a) in candidates.items():
            print(f"{name}: val acc {a:.4f}")
        exported, (model, state["best_acc"]) = max(candidates.items(), key=lambda kv: kv[1][1])
        exported = f"{exported} ({state['best_acc']:.4f})"
    val_logits = predict_logits(model, xva)
    temperature = fit_temperature(val_logits.numpy(), np.eye(len(EMOTIONS))[yva.numpy()])
    tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    meta = {"width": str(args.width), "temperature": f"{temperature:.6f}", "labels": ",".join(EMOTIONS),
            "best_val_acc": f"{state['best_acc']:.4f}", "epochs": str(state["epoch"]), "seed": str(args.seed),
            "stage": "swa" if args.swa else "one-cycle", "augment": str(args.augment)}
    save_file(tensors, args.out / "fer_cnn.safetensors", metadata=meta)
    history = {"history": state["history"], "swa": state["swa"]} if "swa" in state else state["history"]
    (args.out / "train_history.json").write_text(json.dumps(history, indent=1))
    print(f"exported {args.out / 'fer_cnn.safetensors'}: {exported}, T={temperature:.3f}")
    try:
        from models.face.export_onnx import export_onnx

        print(f"exported {export_onnx(args.out / 'fer_cnn.safetensors')} for inference")
    except ImportError as exc:
        print(f"not exported to ONNX ({exc}): pip install -e '.[train]', then "
              f"python -m models.face.export_onnx --weights {args.out / 'fer_cnn.safetensors'}")


if __name__ == "__main__":
    main()
