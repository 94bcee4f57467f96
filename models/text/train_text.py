"""Recipe: train moodtune's text emotion model (seeded, resumable, with progress bars).

    # v0: frozen all-MiniLM-L6-v2 sentence embeddings + an MLP head (minutes)
    python models/text/train_text.py --mode head --data ../shared/data
    # v1: LoRA adapter on all-MiniLM-L6-v2 + the head, fine-tuned together (about an hour on 2 cores)
    python models/text/train_text.py --mode lora --data ../shared/data

Data: GoEmotions-Ekman train (multi-label: the soft target spreads over every gold label) and dair-ai
train (love→happy; it cannot say neutral or disgust, so its loss is a softmax over the covered classes
only). Classes are weighted by inverse square-root frequency. The temperature is fitted on the dev
splits. Output: models/text/head.safetensors (+ models/text/adapter/ for --mode lora) and
models/text/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score
from tqdm import tqdm

from multimodal.backbones import minilm_dir
from multimodal.datasets import TextSplit, load_text_split
from multimodal.heads import MLPHead, fit_temperature, save_head, softmax
from multimodal.labels import EMOTIONS
from multimodal.text import clean_text, mean_pool

HERE = Path(__file__).resolve().parent
MAX_TOKENS = 128


def masked_soft_ce(logits: torch.Tensor, targets: torch.Tensor, cover: torch.Tensor,
                   class_w: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets, softmax restricted to each row's covered classes."""
    logp = torch.log_softmax(logits.masked_fill(~cover, -1e4), dim=-1)
    per_row = -(targets * logp * class_w).sum(-1)
    return per_row.mean()


def tokenize(tokenizer, texts: list[str], max_len: int) -> dict[str, torch.Tensor]:
    return tokenizer([clean_text(t) for t in texts], padding=True, truncation=True, max_length=max_len,
                     return_tensors="pt")


def evaluate(probs: np.ndarray, split: TextSplit) -> dict[str, float]:
    """dair: accuracy of the argmax over its covered classes; GoEmotions: multi-label macro-F1
    (a class is predicted when its probability ≥ 0.3 or it is the top class), plus top-1 accuracy."""
    cover = split.coverage
    p = np.where(cover, probs, 0)
    top = p.argmax(1)
    gold_sets = [{EMOTIONS.index(lab) for lab in labs} for labs in split.labels]
    top1 = float(np.mean([t in g for t, g in zip(top, gold_sets)]))
    if split.name.startswith("dair"):
        gold = np.array([next(iter(g)) for g in gold_sets])
        return {"accuracy": float(accuracy_score(gold, top)),
                "macro_f1": float(f1_score(gold, top, labels=np.flatnonzero(cover), average="macro"))}
    pred = (p >= 0.3)
    pred[np.arange(len(p)), top] = True
    gold = np.zeros_like(pred)
    for i, g in enumerate(gold_sets):
        gold[i, list(g)] = True
    return {"macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)), "top1_in_gold": top1}


class Model(torch.nn.Module):
    def __init__(self, encoder, head: MLPHead) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return self.head(F.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1))


@torch.inference_mode()
def predict_logits(model: Model, tokenizer, texts: list[str], batch: int = 128, desc: str = "predict") -> np.ndarray:
    model.eval()
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), len(EMOTIONS)), dtype=np.float32)
    for i in tqdm(range(0, len(texts), batch), desc=desc, leave=False):
        idx = order[i:i + batch]
        out[idx] = model(tokenize(tokenizer, [texts[j] for j in idx], MAX_TOKENS)).float().numpy()
    return out


@torch.inference_mode()
def embed_all(model: Model, tokenizer, texts: list[str], cache: Path) -> torch.Tensor:
    if cache.exists():
        return torch.load(cache)
    order = np.argsort([len(t) for t in texts])
    out = torch.zeros(len(texts), model.encoder.config.hidden_size)
    for i in tqdm(range(0, len(texts), 256), desc=f"embedding {cache.stem}"):
        idx = order[i:i + 256]
        b = tokenize(tokenizer, [texts[j] for j in idx], MAX_TOKENS)
        hidden = model.encoder(**b).last_hidden_state
        out[torch.as_tensor(idx)] = F.normalize(mean_pool(hidden, b["attention_mask"]), dim=-1)
    torch.save(out, cache)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["head", "lora"], default="lora")
    ap.add_argument("--data", type=Path, default=HERE.parents[1].parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "moodtune" / "train_text")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--epochs", type=float, default=1.0, help="passes over the training data (lora)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=64, help="tokens per training sentence (lora)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    work = args.work / args.mode
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    from transformers import AutoModel, AutoTokenizer

    base = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoder = AutoModel.from_pretrained(base)
    train = [load_text_split(args.data, "goemotions", "train"), load_text_split(args.data, "dair", "train")]
    dev = [load_text_split(args.data, "goemotions", "dev"), load_text_split(args.data, "dair", "val")]
    texts = train[0].texts + train[1].texts
    targets = torch.tensor(np.concatenate([s.targets for s in train]), dtype=torch.float32)
    cover = torch.tensor(np.concatenate([np.tile(s.coverage, (len(s), 1)) for s in train]))
    freq = targets.sum(0).clamp(min=1)
    class_w = (freq.sum() / freq).sqrt()
    class_w = class_w / (class_w * freq).sum() * freq.sum()
    head = MLPHead(encoder.config.hidden_size, len(EMOTIONS), hidden=256, dropout=0.2)

    if args.mode == "lora":
        from peft import LoraConfig, get_peft_model

        encoder = get_peft_model(encoder, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.1,
                                                     target_modules=["query", "key", "value", "dense"]))
    model = Model(encoder, head)

    if args.mode == "head":
        for p in encoder.parameters():
            p.requires_grad_(False)
        x = embed_all(model, tokenizer, texts, work / "train_emb.pt")
        opt = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=1e-4)
        best, best_state = -1.0, None
        dev_x = [embed_all(model, tokenizer, s.texts, work / f"{s.name}_emb.pt") for s in dev]
        for epoch in tqdm(range(30), desc="head epochs"):
            head.train()
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 256):
                idx = perm[i:i + 256]
                loss = masked_soft_ce(head(x[idx]), targets[idx], cover[idx], class_w)
                opt.zero_grad(); loss.backward(); opt.step()
            head.eval()
            with torch.no_grad():
                scores = [evaluate(softmax(head(dx).numpy()), s) for dx, s in zip(dev_x, dev)]
            score = scores[0]["macro_f1"] + scores[1]["accuracy"]
            if score > best:
                best, best_state = score, {k: v.clone() for k, v in head.state_dict().items()}
        head.load_state_dict(best_state)
        with torch.no_grad():
            dev_logits = [head(dx).numpy() for dx in dev_x]
    else:
        params = [{"params": [p for p in encoder.parameters() if p.requires_grad], "lr": args.lr},
                  {"params": head.parameters(), "lr": 2e-3}]
        opt = torch.optim.AdamW(params, weight_decay=0.01)
        total_steps = int(math.ceil(len(texts) / args.batch) * args.epochs)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, 2e-3], total_steps=total_steps,
                                                    pct_start=0.06, anneal_strategy="linear")
        step, ckpt = 0, work / "last.pt"
        order = np.concatenate([rng.permutation(len(texts)) for _ in range(int(math.ceil(args.epochs)))])
        if ckpt.exists():
            saved = torch.load(ckpt, weights_only=False)
            model.load_state_dict(saved["model"]); opt.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"]); step = saved["step"]
            print(f"resuming at step {step}/{total_steps}")
        bar = tqdm(total=total_steps, initial=step, desc="lora fine-tuning")
        running = 0.0
        t0 = time.time()
        while step < total_steps:
            model.train()
            idx = order[step * args.batch:(step + 1) * args.batch]
            batch = tokenize(tokenizer, [texts[j] for j in idx], args.max_len)
            loss = masked_soft_ce(model(batch), targets[idx], cover[idx], class_w)
            opt.zero_grad(set_to_none=True); loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); step += 1
            running = 0.98 * running + 0.02 * float(loss) if step > 1 else float(loss)
            bar.update(1); bar.set_postfix(loss=f"{running:.3f}")
            if step % 200 == 0 or step == total_steps:
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                            "step": step}, ckpt)
        bar.close()
        print(f"trained {step} steps in {time.time() - t0:.0f}s", flush=True)
        dev_logits = [predict_logits(model, tokenizer, s.texts, desc=f"dev {s.name}") for s in dev]

    temperature = fit_temperature(np.concatenate([np.where(s.coverage, z, -1e4) for z, s in zip(dev_logits, dev)]),
                                  np.concatenate([s.targets for s in dev]))
    metrics = {s.name: evaluate(softmax(z, temperature), s) for z, s in zip(dev_logits, dev)}
    metrics["temperature"] = temperature
    metrics["mode"] = args.mode
    version = "v1" if args.mode == "lora" else "v0"
    meta = {"in_dim": encoder.config.hidden_size, "n_out": len(EMOTIONS), "hidden": 256, "temperature": temperature,
            "labels": ",".join(EMOTIONS), "normalize": 1, "max_tokens": MAX_TOKENS, "version": version,
            "adapter": int(args.mode == "lora"), "seed": args.seed}
    if args.mode == "lora":
        encoder.peft_config["default"].base_model_name_or_path = "sentence-transformers/all-MiniLM-L6-v2"
        encoder.save_pretrained(str(args.out / "adapter"))
        (args.out / "adapter" / "README.md").unlink(missing_ok=True)  # peft's empty template card
    save_head(head, args.out / "head.safetensors", meta)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
