"""The text model's lexical half: numpy features equal scikit-learn's, the file round-trips, and it pays its way."""

import numpy as np
import pytest

from multimodal.labels import EMOTIONS
from multimodal.text import LEXICAL_FILE, TEXT_ONNX, OnnxTextBackend, clean_text
from multimodal.text_lexical import LexicalModel, lexical_source, terms

from .conftest import needs_data

CORPUS = ["I got the job!!", "my dog died this morning", "I am so so angry at you", "a quiet day at home",
          "Someone broke into my car", "I got a dog"]


def fitted(corpus: list[str] = CORPUS) -> tuple[LexicalModel, object]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer=terms, sublinear_tf=True, dtype=np.float32).fit(corpus)
    rng = np.random.default_rng(0)
    n = len(vec.vocabulary_)
    model = LexicalModel(dict(vec.vocabulary_), vec.idf_.astype(np.float64), rng.normal(size=(9, n)).astype(np.float32),
                         rng.normal(size=9), np.full(9, 0.5))
    return model, vec


def test_terms_are_words_pairs_and_letter_grams():
    t = terms("I am OK")
    assert {"w:am", "w:ok", "w:am ok"} <= set(t) and "w:i" not in t  # one-letter words are not words (as sklearn)
    assert t.count("c: i ") == 1 and "c: i" in t  # a short word's n-grams counted once
    assert {"c: ok", "c:ok ", "c: ok "} <= set(t) and not any(len(x) > 7 for x in t if x.startswith("c:"))


def test_lexical_features_are_scikit_learns_tfidf():
    """The encoder's numpy TF-IDF is what the recipe's scikit-learn vectorizer computes, unseen words included."""
    model, vec = fitted()
    for text in CORPUS + ["I got the job, and a dog!!", "zzz qqq", ""]:
        idx, values = model.features(text)
        dense = np.zeros(len(model.vocabulary))
        dense[idx] = values
        np.testing.assert_allclose(dense, vec.transform([text]).toarray()[0], atol=1e-6)


def test_lexical_model_round_trips_through_its_file(tmp_path):
    model, _ = fitted()
    path = tmp_path / "lex.npz"
    model.save(path)
    again = LexicalModel.load(path)
    assert again.vocabulary == model.vocabulary
    np.testing.assert_allclose(again.outputs(CORPUS), model.outputs(CORPUS), atol=1e-2)  # coefficients in float16
    assert [p.name for p in tmp_path.iterdir()] == ["lex.npz"]  # no temporary file left behind


def test_too_few_typed_words_are_read_by_the_network_alone():
    """Emoji do not count as words: "🎉🎉" is spelled out as six words, yet the lexical half stays out of it."""
    assert lexical_source("ugh, Mondays", "ugh, Mondays") is None
    assert lexical_source("🎉🎉", "party popper (happy) party popper (happy)") is None
    assert lexical_source("I got the job 🎉", "I got the job party popper (happy)") is not None
    model, _ = fitted()
    out = model.outputs(["I got the job", None])
    assert np.abs(out[0]).sum() > 0 and not out[1].any()


def test_the_model_refuses_to_run_without_its_lexical_half(tmp_path):
    """The ONNX file was calibrated with its lexical half: without it the encoder stops with a clear message."""
    (tmp_path / TEXT_ONNX.name).symlink_to(TEXT_ONNX)
    with pytest.raises(FileNotFoundError, match=LEXICAL_FILE):
        OnnxTextBackend(tmp_path / TEXT_ONNX.name)


@needs_data
def test_the_lexical_half_reads_situations_better_than_the_network_alone(text_encoder, data_dir):
    """EmpatheticDialogues situations (val): the shipped blend beats the network alone (0.791 → 0.806 in the recipe)."""
    from multimodal.datasets import load_text_split

    split = load_text_split(data_dir, "ed", "val")
    backend = text_encoder.backend
    texts = [clean_text(t) for t in split.texts]
    chunks = [backend.chunk(t)[0] for t in texts]
    sources = [lexical_source(raw, t) for raw, t in zip(split.texts, texts)]
    gold = split.targets.argmax(1)
    alone, blended = (np.mean(np.where(split.coverage, out.probabilities, 0).argmax(1) == gold)
                      for out in (backend.run(chunks), backend.run(chunks, sources=sources)))
    assert blended >= alone + 0.01, (alone, blended)
    assert backend.lexical is not None and backend.lexical.weights[:len(EMOTIONS)].max() > 0
