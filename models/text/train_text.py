"""Recipe: train moodtune's text model (v2) and export it to ONNX (seeded, resumable, with progress bars).

    pip install -e ".[train]"
    python -m models.text.train_text --data ../shared/data            # train + export + evaluate
    python -m models.text.train_text --data ../shared/data --export-only   # re-export from models/text/

One network (``models/text/network.py``): all-MiniLM-L6-v2 with a LoRA adapter, mean pooling and a shared MLP
with 7 emotion logits and 2 valence/arousal outputs, trained on mixed batches of
- situations: EmpatheticDialogues situation prompts (6 classes), enISEAR event descriptions (5 classes);
- dialogue: DailyDialog utterances (7 classes incl. neutral);
- feeling words: a sample of GoEmotions-Ekman (multi-label, 7 classes) and of dair-ai tweets (5 classes);
- valence/arousal: EmoBank's train split (z-scored ratings), plus a light valence target on every labelled row
  (the emotion table's valence of its label) so that the valence output knows everyday situations.
A label a set cannot have is unknown there, not negative: each row's softmax runs over its set's classes only;
but "neutral" is a true negative for the sets whose rows carry an emotion by construction (EMOTION_BEARING).
Within each set, classes are weighted by inverse square-root frequency.

After training, the recipe fits the lexical half (``multimodal/text_lexical.py``: TF-IDF with logistic regression on
every training row and ridge regression on EmoBank) and picks on the dev splits how much of it to add to the
network's outputs; then it fits the temperature and the valence/arousal calibration of the two together, merges
the adapter, exports the network to ONNX from the word embeddings on, with float16 weights and float32 math
(measuring what a dynamic int8 file would cost: it is not shipped, because its activation scales depend on the
batch) and writes
models/text/{adapter/, head.safetensors, text_model.onnx, text_lexical.npz, metrics.json}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score, recall_score
from tqdm import tqdm

from models.evaluation import ece, multilabel_macro_f1
from multimodal.files import work_dir
from multimodal.backbones import minilm_dir, minilm_word_embeddings
from multimodal.datasets import TextSplit, default_data_dir, load_emobank, load_text_split
from multimodal.files import write_atomic
from multimodal.heads import fit_temperature, fit_va_calibration, softmax
from multimodal.labels import EMOTIONS, VA_MATRIX, blend_valence_arousal
from multimodal.text import LEXICAL_FILE, clean_text
from multimodal.text_lexical import LexicalModel, lexical_source, terms

from .network import FromWordEmbeddings, TextEmotionNet, base_encoder, with_lora

HERE = Path(__file__).resolve().parent
MAX_TOKENS = 128
#: (corpus, split, rows sampled per epoch; None = all). GoEmotions and dair are sampled: they are large and
#: already well read; the situation and dialogue sets are what v1 lacked.
TRAIN_SETS = [("ed", "train", None), ("enisear", "train", None), ("dailydialog", "train", None),
              ("goemotions", "train", 20000), ("dair", "train", 10000)]
DEV_SETS = [("ed", "val"), ("dailydialog", "val"), ("dair", "val"), ("goemotions", "dev")]
#: Sets whose every row carries an emotion by construction (a situation written for a given feeling, an event
#: when the writer felt it, a tweet picked by its emotion hashtag): for them "neutral" is a true negative, while
#: the other classes they lack (dair has no disgust, enISEAR no surprise) stay unknown.
EMOTION_BEARING = ("ed", "enisear", "dair")
AUX_VALENCE_WEIGHT = 0.2   # the table-valence target on labelled rows counts this much of EmoBank's
AUX_VALENCE_SCALE = 2.0    # table valence 1 ≈ 2 EmoBank standard deviations
DIRECT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
LEXICAL_MIN_DF = 3          # a term in fewer training texts than this is not in the lexical model's vocabulary
LEXICAL_EMOTION_WEIGHTS = (0.0, 0.4, 0.6, 0.8, 1.0, 1.2)  # share of the lexical logits added to the network's
LEXICAL_VA_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: the one number per dev split that the lexical weight is chosen on (the issue's target metric of each)
HEADLINE = {"ed_val": "accuracy", "dailydialog_val": "macro_f1_classes_with_10_or_more", "dair_val": "accuracy",
            "goemotions_dev": "macro_f1_multilabel"}


@dataclass
class TrainRows:
    """Every training row: token ids, soft emotion target and the classes its set can have, z-scored V/A."""

    ids: list[list[int]]
    targets: np.ndarray      # (n, 7); all zero for EmoBank rows
    cover: np.ndarray        # (n, 7) bool
    row_weight: np.ndarray   # (n,) class-balancing weight of the emotion loss (0: no emotion label)
    va: np.ndarray           # (n, 2) regression targets, NaN where unknown
    va_weight: np.ndarray    # (n, 2)


def tokenize_all(tokenizer, texts: list[str], max_len: int = MAX_TOKENS) -> list[list[int]]:
    return tokenizer([clean_text(t) for t in texts], truncation=True, max_length=max_len)["input_ids"]


def known_classes(corpus: str, split: TextSplit) -> np.ndarray:
    """The classes a training set's rows say something about: its own, plus "neutral" as a true negative for the
    sets whose rows carry an emotion by construction (:data:`EMOTION_BEARING`)."""
    return split.coverage | (np.array(EMOTIONS) == "neutral") if corpus in EMOTION_BEARING else split.coverage


def class_weights(targets: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Inverse square-root class frequency within one set, normalised so that a mean row weighs 1."""
    freq = np.maximum(targets.sum(0), 1.0)
    w = np.where(cover, np.sqrt(freq.sum() / freq), 0.0)
    return w / (targets @ w).mean()


def train_sets(rows: list[str] | None = None) -> list[tuple[str, str, int | None]]:
    """:data:`TRAIN_SETS` with the per-epoch sample sizes given as ``corpus=N`` (0: every row)."""
    sizes = {}
    for item in rows or []:
        corpus, _, n = item.partition("=")
        if corpus not in {c for c, _, _ in TRAIN_SETS} or not n.isdigit():
            raise SystemExit(f"--rows {item!r}: expected CORPUS=N with CORPUS one of {', '.join(c for c, _, _ in TRAIN_SETS)}")
        sizes[corpus] = int(n) or None
    return [(c, split, sizes.get(c, n)) for c, split, n in TRAIN_SETS]


def build_rows(data: Path, tokenizer, rng: np.random.Generator,
               sets: list[tuple[str, str, int | None]] = TRAIN_SETS, emobank_repeat: int = 1) -> tuple[TrainRows, dict[str, int]]:
    ids, targets, cover, weights, va, va_w, counts = [], [], [], [], [], [], {}
    for corpus, split, n in sets:
        s = load_text_split(data, corpus, split)
        keep = np.sort(rng.choice(len(s), n, replace=False)) if n and n < len(s) else np.arange(len(s))
        t = s.targets[keep]
        ids += tokenize_all(tokenizer, [s.texts[i] for i in keep])
        targets.append(t)
        known = known_classes(corpus, s)
        cover.append(np.tile(known, (len(keep), 1)))
        weights.append(t @ class_weights(t, known))
        v = AUX_VALENCE_SCALE * (t @ VA_MATRIX[:, 0])
        va.append(np.stack([v, np.full(len(keep), np.nan)], 1))
        va_w.append(np.tile([AUX_VALENCE_WEIGHT, 0.0], (len(keep), 1)))
        counts[s.name] = len(keep)
    bank = load_emobank(data, "train")
    z = np.stack([bank.valence, bank.arousal], 1)
    z = np.tile((z - z.mean(0)) / z.std(0), (emobank_repeat, 1))
    ids += tokenize_all(tokenizer, bank.texts) * emobank_repeat
    targets.append(np.zeros((len(z), len(EMOTIONS))))
    cover.append(np.zeros((len(z), len(EMOTIONS)), dtype=bool))
    weights.append(np.zeros(len(z)))
    va.append(z)
    va_w.append(np.ones((len(z), 2)))
    counts["emobank_train"] = len(z)
    return TrainRows(ids, np.concatenate(targets), np.concatenate(cover), np.concatenate(weights),
                     np.concatenate(va), np.concatenate(va_w)), counts


def length_batches(ids: list[list[int]], batch: int, rng: np.random.Generator, pool: int = 50) -> list[np.ndarray]:
    """Shuffled batches of rows of similar length (less padding), drawn from pools of ``pool`` batches."""
    order = rng.permutation(len(ids))
    out = []
    for start in range(0, len(order), batch * pool):
        chunk = order[start:start + batch * pool]
        chunk = chunk[np.argsort([len(ids[i]) for i in chunk], kind="stable")]
        out += [chunk[i:i + batch] for i in range(0, len(chunk), batch)]
    return [out[i] for i in rng.permutation(len(out))]


def pad(ids: list[list[int]], max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [r[:max_len] if max_len else r for r in ids]
    if max_len:  # keep [SEP] at the end of a cut row
        rows = [r if len(r) == len(o) else r[:-1] + o[-1:] for r, o in zip(rows, ids)]
    width = max(len(r) for r in rows)
    x = torch.zeros((len(rows), width), dtype=torch.long)
    m = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        x[i, :len(r)] = torch.tensor(r)
        m[i, :len(r)] = 1
    return x, m


def loss_fn(logits: torch.Tensor, va: torch.Tensor, rows: TrainRows, idx: np.ndarray, va_loss: float = 1.0) -> torch.Tensor:
    targets = torch.as_tensor(rows.targets[idx], dtype=torch.float32)
    cover = torch.as_tensor(rows.cover[idx])
    w = torch.as_tensor(rows.row_weight[idx], dtype=torch.float32)
    logp = torch.log_softmax(logits.masked_fill(~cover, -1e4), dim=-1)
    ce = -(targets * logp.masked_fill(~cover, 0)).sum(-1)
    cls = (w * ce).sum() / w.sum().clamp(min=1e-6)
    goal = torch.as_tensor(np.nan_to_num(rows.va[idx]), dtype=torch.float32)
    vw = torch.as_tensor(rows.va_weight[idx], dtype=torch.float32)
    reg = (vw * (va - goal) ** 2).sum() / vw.sum().clamp(min=1e-6)
    return cls + va_loss * reg


def train(args: argparse.Namespace, tokenizer) -> TextEmotionNet:
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    rows, counts = build_rows(args.data, tokenizer, rng, train_sets(args.rows), args.emobank_repeat)
    print("training rows:", json.dumps(counts), flush=True)
    net = TextEmotionNet(with_lora(base_encoder(), args.rank), va_hidden=args.va_hidden)
    heads = [p for name, p in net.named_parameters() if not name.startswith("encoder.")]
    params = [{"params": [p for p in net.encoder.parameters() if p.requires_grad], "lr": args.lr},
              {"params": heads, "lr": 2e-3}]
    opt = torch.optim.AdamW(params, weight_decay=0.01)
    epochs = [length_batches(rows.ids, args.batch, rng) for _ in range(math.ceil(args.epochs))]
    plan = [b for e in epochs for b in e][:int(len(epochs[0]) * args.epochs)]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, 2e-3], total_steps=len(plan),
                                                pct_start=0.06, anneal_strategy="linear")
    step, ckpt = 0, args.work / "last.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        if saved.get("steps") == len(plan):
            net.load_state_dict(saved["model"]); opt.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"]); step = saved["step"]
            print(f"resuming at step {step}/{len(plan)}", flush=True)
    bar = tqdm(total=len(plan), initial=step, desc="fine-tuning (LoRA)")
    running, t0 = None, time.time()
    net.train()
    while step < len(plan):
        idx = plan[step]
        x, m = pad([rows.ids[i] for i in idx], args.max_len)
        logits, va = net(x, m)
        loss = loss_fn(logits, va, rows, idx, args.va_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step(); sched.step(); step += 1
        running = float(loss) if running is None else 0.98 * running + 0.02 * float(loss)
        bar.update(1); bar.set_postfix(loss=f"{running:.3f}")
        if step % 200 == 0 or step == len(plan):
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step, "steps": len(plan)}, tmp)
            os.replace(tmp, ckpt)
    bar.close()
    print(f"trained {len(plan)} steps ({step} this run) in {time.time() - t0:.0f}s", flush=True)
    return net.eval()


# ----------------------------------------------------------------------------------------- evaluation
def score_split(probs: np.ndarray, split: TextSplit, min_support: int = 10) -> dict[str, object]:
    """Accuracy and macro-F1 of the argmax over the classes the set can express, per-class recall, ECE;
    GoEmotions (multi-label) also gets v1's multi-label macro-F1 (a class counts when p ≥ 0.3 or it is on top)."""
    p = np.where(split.coverage, probs, 0)
    p = p / p.sum(1, keepdims=True)
    pred = p.argmax(1)
    gold = split.targets.argmax(1)
    present = [k for k in np.flatnonzero(split.coverage) if (gold == k).sum() > 0]
    large = [k for k in present if (gold == k).sum() >= min_support]
    gold_sets = [{EMOTIONS.index(lab) for lab in labs} for labs in split.labels]
    out: dict[str, object] = {
        "n": len(split), "accuracy": float(np.mean([t in g for t, g in zip(pred, gold_sets)])),
        "macro_f1": float(f1_score(gold, pred, labels=present, average="macro", zero_division=0)),
        "per_class_recall": {EMOTIONS[k]: float(recall_score(gold == k, pred == k, zero_division=0)) for k in present},
        "ece": ece(p, gold)}
    if len(large) < len(present):
        out[f"macro_f1_classes_with_{min_support}_or_more"] = float(
            f1_score(gold, pred, labels=large, average="macro", zero_division=0))
    if split.name.startswith("goemotions"):
        out["macro_f1_multilabel"] = multilabel_macro_f1(p, split.labels)
    return out


def fit_lexical(data: Path) -> LexicalModel:
    """TF-IDF over :func:`multimodal.text_lexical.terms` with logistic regression on every row of the training sets
    (a multi-label row once per label; classes weighted within each set as for the network) and ridge regression
    on EmoBank train's z-scored ratings. Its weights are 1 until :func:`choose_lexical_weights` sets them."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge

    texts, labels, weights = [], [], []
    for corpus, split, _ in TRAIN_SETS:
        s = load_text_split(data, corpus, split)
        known = known_classes(corpus, s)
        w = class_weights(s.targets, known)
        for text, target in zip(s.texts, s.targets):
            for k in np.flatnonzero(target):
                texts.append(clean_text(text))
                labels.append(k)
                weights.append(target[k] * w[k])
    bank = load_emobank(data, "train")
    bank_texts = [clean_text(t) for t in bank.texts]
    print(f"lexical model: TF-IDF and logistic regression on {len(texts):,} rows, ridge on {len(bank_texts):,} "
          "(about 4 minutes)", flush=True)
    vectorizer = TfidfVectorizer(analyzer=terms, sublinear_tf=True, min_df=LEXICAL_MIN_DF, dtype=np.float32)
    vectorizer.fit(texts + bank_texts)
    emotions = LogisticRegression(C=4.0, max_iter=2000).fit(vectorizer.transform(texts), labels, sample_weight=weights)
    assert list(emotions.classes_) == list(range(len(EMOTIONS))), emotions.classes_
    z = np.stack([bank.valence, bank.arousal], 1)
    va = Ridge(alpha=1.0).fit(vectorizer.transform(bank_texts), (z - z.mean(0)) / z.std(0))
    return LexicalModel(dict(vectorizer.vocabulary_), vectorizer.idf_.astype(np.float64),
                        np.vstack([emotions.coef_, va.coef_]).astype(np.float32),
                        np.concatenate([emotions.intercept_, va.intercept_]), np.ones(len(EMOTIONS) + 2))


def with_lexical(net: tuple[np.ndarray, np.ndarray], lexical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network's (logits, raw V/A) plus the lexical model's weighted outputs, as the encoder adds them."""
    return net[0] + lexical[:, :len(EMOTIONS)], net[1] + lexical[:, len(EMOTIONS):]


def choose_lexical_weights(outputs: dict[str, tuple[np.ndarray, np.ndarray]], lexical: dict[str, np.ndarray],
                           dev: dict[str, TextSplit], bank) -> tuple[np.ndarray, dict[str, object]]:
    """The share of the lexical logits that maximises the mean of the dev splits' headline numbers (temperature
    refitted for each), and per dimension the share of its valence/arousal that best follows EmoBank dev."""
    n = len(EMOTIONS)
    tried: dict[str, object] = {}
    for w in LEXICAL_EMOTION_WEIGHTS:
        logits = {k: outputs[k][0] + w * lexical[k][:, :n] for k in dev}
        t = fit_temperature(np.concatenate([np.where(dev[k].coverage, logits[k], -1e4) for k in dev]),
                            np.concatenate([dev[k].targets for k in dev]))
        scores = {k: score_split(softmax(logits[k], t), dev[k])[HEADLINE[k]] for k in dev}
        tried[f"emotions x{w:g}"] = {**scores, "mean": float(np.mean(list(scores.values())))}
    best = max(LEXICAL_EMOTION_WEIGHTS, key=lambda w: tried[f"emotions x{w:g}"]["mean"])  # type: ignore[index]
    truth = np.stack([bank.valence, bank.arousal], 1)
    raw, lex = outputs["emobank_dev"][1], lexical["emobank_dev"][:, n:]
    va_weights = []
    for d, dim in enumerate(("valence", "arousal")):
        r = {w: pearson(raw[:, d] + w * lex[:, d], truth[:, d]) for w in LEXICAL_VA_WEIGHTS}
        tried.update({f"{dim} x{w:g}": v for w, v in r.items()})
        va_weights.append(max(r, key=r.get))  # type: ignore[arg-type]
    return np.array([best] * n + va_weights, dtype=float), tried


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@torch.inference_mode()
def torch_outputs(net: TextEmotionNet, ids: list[list[int]], batch: int = 128, desc: str = "") -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort([len(r) for r in ids])
    logits, va = np.zeros((len(ids), len(EMOTIONS)), np.float32), np.zeros((len(ids), 2), np.float32)
    for s in tqdm(range(0, len(ids), batch), desc=desc, leave=False):
        idx = order[s:s + batch]
        z, v = net(*pad([ids[i] for i in idx]))
        logits[idx], va[idx] = z.numpy(), v.numpy()
    return logits, va


def onnx_outputs(path: Path, ids: list[list[int]], batch: int = 128, desc: str = "") -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    table = minilm_word_embeddings()
    order = np.argsort([len(r) for r in ids])
    logits, va = np.zeros((len(ids), len(EMOTIONS)), np.float32), np.zeros((len(ids), 2), np.float32)
    for s in tqdm(range(0, len(ids), batch), desc=desc, leave=False):
        idx = order[s:s + batch]
        x, m = pad([ids[i] for i in idx])
        logits[idx], va[idx] = sess.run(None, {"inputs_embeds": table[x.numpy()], "attention_mask": m.numpy()})
    return logits, va


def calibrate(outputs: dict[str, tuple[np.ndarray, np.ndarray]], dev: dict[str, TextSplit], bank) -> dict[str, object]:
    """Temperature (on every dev split, over each set's classes), the V/A affine map onto the table's spread on
    the labelled dev splits, and per dimension the share of the direct value that best follows EmoBank dev."""
    temperature = fit_temperature(np.concatenate([np.where(dev[k].coverage, outputs[k][0], -1e4) for k in dev]),
                                  np.concatenate([dev[k].targets for k in dev]))
    raw = np.concatenate([outputs[k][1] for k in dev])
    table = np.concatenate([dev[k].targets @ VA_MATRIX for k in dev])
    scale, shift = fit_va_calibration(raw, table)
    bank_logits, bank_raw = outputs["emobank_dev"]
    direct = np.clip(bank_raw * scale + shift, -1, 1)
    probs = softmax(bank_logits, temperature)
    truth = np.stack([bank.valence, bank.arousal], 1)
    weights = []
    for d in range(2):
        r = {w: pearson(blend_valence_arousal(direct, probs, np.array([w, w]))[:, d], truth[:, d]) for w in DIRECT_WEIGHTS}
        weights.append(max(r, key=r.get))
    return {"temperature": temperature, "va_scale": scale, "va_shift": shift, "va_direct_weight": weights}


def report(outputs: dict[str, tuple[np.ndarray, np.ndarray]], dev: dict[str, TextSplit], bank,
           cal: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {k: score_split(softmax(outputs[k][0], cal["temperature"]), dev[k]) for k in dev}
    logits, raw = outputs["emobank_dev"]
    direct = np.clip(raw * cal["va_scale"] + cal["va_shift"], -1, 1)
    probs = softmax(logits, cal["temperature"])
    table = probs @ VA_MATRIX
    shipped = blend_valence_arousal(direct, probs, np.array(cal["va_direct_weight"]))
    truth = np.stack([bank.valence, bank.arousal], 1)
    out["emobank_dev"] = {"n": len(truth), **{
        f"{dim}_r_{how}": pearson(vals[:, d], truth[:, d]) for d, dim in enumerate(("valence", "arousal"))
        for how, vals in (("direct", direct), ("from_emotions", table), ("shipped", shipped))},
        "spread_shipped": shipped.std(0).tolist(), "spread_table": table.std(0).tolist()}
    return out


# ----------------------------------------------------------------------------------------- export
def export_onnx(net: TextEmotionNet, path: Path, metadata: dict[str, str]) -> None:
    import onnx

    x, m = pad([[101, 2023, 2003, 102], [101, 7592, 102]])
    with torch.inference_mode():
        embeds = net.encoder.get_input_embeddings()(x)
    # scaled_dot_product_attention exports as a chain of IsNaN/Where/Slice nodes that ONNX Runtime cannot fuse;
    # eager attention (the same numbers) lets it fuse layer norms, GELU and the attention products
    net.encoder.set_attn_implementation("eager")
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("tokens", max=512)
    program = torch.onnx.export(FromWordEmbeddings(net).eval(), (embeds, m), dynamo=True,
                                input_names=["inputs_embeds", "attention_mask"], output_names=["logits", "valence_arousal"],
                                dynamic_shapes={"inputs_embeds": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}})
    model = program.model_proto
    onnx.helper.set_model_props(model, metadata)
    tmp = path.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def half_weights(src: Path, dst: Path, min_size: int = 1024) -> None:
    """``src`` with every float initializer of at least ``min_size`` values stored as float16 behind a Cast to
    float32: half the file, and ONNX Runtime folds the casts when it loads the model, so the math stays float32.
    Why not a float16 graph: ONNX Runtime's CPU kernels are float32, so it casts around nearly every node at every
    call (a 64-sentence batch took about a fifth longer than with these weights)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph, casts = model.graph, []
    for init in list(graph.initializer):
        if init.data_type == TensorProto.FLOAT and math.prod(init.dims) >= min_size:
            graph.initializer.remove(init)
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16),
                                                             f"{init.name}_fp16"))
            casts.append(helper.make_node("Cast", [f"{init.name}_fp16"], [init.name], to=TensorProto.FLOAT,
                                          name=f"{init.name}_to_fp32"))
    for i, node in enumerate(casts):  # a node list in topological order: the casts first
        graph.node.insert(i, node)
    tmp = dst.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, dst)


def quantize_int8(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dst.with_suffix(".tmp")
    quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"])
    model = onnx.load(str(tmp))  # quantize_dynamic drops the model's properties: put them back
    onnx.helper.set_model_props(model, {p.key: p.value for p in onnx.load(str(src)).metadata_props})
    onnx.save(model, str(tmp))
    os.replace(tmp, dst)


def save_adapter(encoder: Any, folder: Path) -> None:
    """peft's ``save_pretrained`` into a fresh folder beside ``folder``, then swapped in: a failed save leaves the old
    adapter whole (peft writes file by file into the target)."""
    fresh = folder.with_name(f".{folder.name}.new")
    old = folder.with_name(f".{folder.name}.old")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    encoder.save_pretrained(str(fresh))
    (fresh / "README.md").unlink(missing_ok=True)  # peft's empty template card
    if folder.exists():
        folder.rename(old)
    fresh.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--work", type=Path, default=work_dir("train_text_v2"))
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--epochs", type=float, default=1.5, help="passes over the mixed training rows")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=64, help="tokens per training sentence")
    ap.add_argument("--lr", type=float, default=1e-3, help="LoRA learning rate (the head uses 2e-3)")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--va-hidden", type=int, default=0, help="width of a valence/arousal branch of its own (0: shared head)")
    ap.add_argument("--va-loss", type=float, default=1.0, help="weight of the valence/arousal loss beside the emotion loss")
    ap.add_argument("--emobank-repeat", type=int, default=1, help="times EmoBank's rows appear in an epoch")
    ap.add_argument("--export-only", action="store_true", help="skip training: export the adapter in --out")
    ap.add_argument("--rows", action="append", metavar="CORPUS=N",
                    help="rows sampled per epoch from a training set (0: all), e.g. --rows goemotions=0")
    args = ap.parse_args(argv)
    if args.data is None:
        ap.error("no data folder: pass --data ../shared/data or set MOODTUNE_DATA")
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from .network import load_trained

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    if args.export_only:
        net = load_trained(args.out / "adapter", args.out / "head.safetensors")
    else:
        net = train(args, tokenizer)
        net.encoder.peft_config["default"].base_model_name_or_path = "sentence-transformers/all-MiniLM-L6-v2"
        save_adapter(net.encoder, args.out / "adapter")
        head_tmp = args.out / "head.safetensors.tmp"  # written whole or not at all, like every file the recipe writes
        save_file(net.heads_state_dict(), str(head_tmp))
        os.replace(head_tmp, args.out / "head.safetensors")
        net.encoder = net.encoder.merge_and_unload()

    dev = {f"{c}_{s}": load_text_split(args.data, c, s) for c, s in DEV_SETS}
    bank = load_emobank(args.data, "dev")
    raw = {k: s.texts for k, s in dev.items()} | {"emobank_dev": bank.texts}
    texts = {k: [clean_text(t) for t in v] for k, v in raw.items()}
    ids = {k: tokenize_all(tokenizer, v) for k, v in raw.items()}  # tokenize_all cleans them itself
    sources = {k: [lexical_source(r, t) for r, t in zip(raw[k], v)] for k, v in texts.items()}  # as the encoder reads
    network_out = {k: torch_outputs(net, v, desc=f"torch {k}") for k, v in ids.items()}
    lexical = fit_lexical(args.data)
    weights, tried = choose_lexical_weights(network_out, {k: lexical.outputs(v) for k, v in sources.items()}, dev, bank)
    lexical = dataclasses.replace(lexical, weights=weights)
    lexical_out = {k: lexical.outputs(v) for k, v in sources.items()}
    torch_out = {k: with_lexical(v, lexical_out[k]) for k, v in network_out.items()}
    cal = calibrate(torch_out, dev, bank)
    metadata = {"labels": ",".join(EMOTIONS), "temperature": f"{cal['temperature']:.5f}",
                "va_scale": ",".join(f"{v:.5f}" for v in cal["va_scale"]),
                "va_shift": ",".join(f"{v:.5f}" for v in cal["va_shift"]),
                "va_direct_weight": ",".join(f"{w:g}" for w in cal["va_direct_weight"]),
                "max_tokens": str(MAX_TOKENS), "version": "v2.1", "seed": str(args.seed), "lexical": LEXICAL_FILE,
                "data": "EmpatheticDialogues situations (CC BY-NC 4.0), enISEAR (ODC-By 1.0), DailyDialog/RECCON "
                        "(CC BY-NC-SA 4.0), GoEmotions-Ekman (Apache-2.0), dair-ai emotion (research use), "
                        "EmoBank (CC BY-SA 4.0)"}
    fp32 = args.work / "text_model_fp32.onnx"
    export_onnx(net, fp32, metadata)
    int8 = args.work / "text_model_int8.onnx"
    quantize_int8(fp32, int8)
    metrics = {"version": "v2.1", "torch": report(torch_out, dev, bank, cal),
               "network_alone": report(network_out, dev, bank, calibrate(network_out, dev, bank)),
               "lexical_weights": weights.tolist(), "lexical_weights_tried": tried,
               "lexical_vocabulary": len(lexical.vocabulary)}
    for name, path in (("onnx_fp32", fp32), ("onnx_int8", int8)):
        metrics[name] = report({k: with_lexical(onnx_outputs(path, v, desc=f"{name} {k}"), lexical_out[k])
                                for k, v in ids.items()}, dev, bank, cal)
    loss = {k: metrics["onnx_fp32"][k]["accuracy"] - metrics["onnx_int8"][k]["accuracy"] for k in dev}
    # float16 weights ship, int8 is only measured: dynamic int8 scales the activations per batch, so a sentence's
    # reading would depend on the other sentences in its batch (up to 0.01 in a probability here)
    half_weights(fp32, args.out / "text_model.onnx")
    lexical.save(args.out / LEXICAL_FILE)
    metrics.update({"shipped": "onnx_fp16_weights", "int8_accuracy_cost": loss,
                    "calibration": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in cal.items()},
                    "train_sets": train_sets(args.rows), "epochs": args.epochs, "rank": args.rank, "seed": args.seed,
                    "va_hidden": args.va_hidden, "va_loss": args.va_loss, "emobank_repeat": args.emobank_repeat})
    write_atomic(args.out / "metrics.json", json.dumps(metrics, indent=1, default=float))
    print(json.dumps({k: metrics[k] for k in ("shipped", "int8_accuracy_cost")}, indent=1))
    print(json.dumps(metrics["onnx_fp32"], indent=1, default=float))


if __name__ == "__main__":
    main()
