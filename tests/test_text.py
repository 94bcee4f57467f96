"""The text encoder on real sentences, with the embedded model."""

import numpy as np
import pytest

from multimodal import EMOTIONS, Status, TextEncoder
from multimodal.text import clean_text, contrast_clauses, prepare_text

from .conftest import needs_data

TOP2 = [
    ("I am furious with you", {"angry"}),
    ("This makes me so angry I could scream", {"angry"}),
    ("I hate everyone today", {"angry"}),
    ("this traffic is driving me crazy", {"angry"}),
    ("I'm so happy today, everything is wonderful", {"happy"}),
    ("so proud of myself!!", {"happy"}),
    ("feeling blessed and grateful", {"happy"}),
    ("I love you so much", {"happy"}),
    ("best weekend ever 🎉", {"happy"}),
    ("I feel so lonely and sad since she left", {"sad"}),
    ("my dog died this morning", {"sad"}),
    ("I feel empty inside", {"sad"}),
    ("I'm not angry, just disappointed", {"sad"}),
    ("I'm terrified of what the doctor will say", {"fear"}),
    ("I'm scared and nervous about tomorrow", {"fear"}),
    ("I'm shaking, someone is following me", {"fear"}),
    ("I'm so nervous about the interview", {"fear"}),
    ("Wow, I did not expect that at all!", {"surprise"}),
    ("I can't believe I won!", {"surprise"}),
    ("omg no way!!", {"surprise"}),
    ("That is disgusting, I feel sick looking at it", {"disgust"}),
    ("what a gross thing to do", {"disgust"}),
    ("that smell makes me want to throw up", {"disgust"}),
    ("meh", {"neutral"}),
    ("nothing special today, just a normal day", {"neutral"}),
    ("ugh, Mondays", {"angry", "disgust"}),
    ("😭😭😭", {"sad"}),
    ("😭", {"sad"}),
    ("😡", {"angry"}),
]


@pytest.mark.parametrize("sentence,expected", TOP2)
def test_mood_sentences_have_the_expected_emotion_in_the_top_two(text_encoder, sentence, expected):
    r = text_encoder.predict(sentence)
    assert r.ok, r.message
    top2 = {e for e, _ in sorted(r.probabilities.items(), key=lambda kv: -kv[1])[:2]}
    assert expected & top2, (sentence, r.probabilities)


def test_furious_is_angry_on_top(text_encoder):
    assert text_encoder.predict("I am furious with you").top_emotion == "angry"


def test_distributions_are_calibrated_not_one_hot(text_encoder):
    for sentence, _ in TOP2[:6]:
        r = text_encoder.predict(sentence)
        ranked = sorted(r.probabilities.values(), reverse=True)
        assert ranked[0] < 0.999 and ranked[1] > 1e-3  # the runner-up keeps some mass
        assert sum(r.probabilities.values()) == pytest.approx(1.0)
        assert 0 < r.confidence < 1


def test_negation_moves_away_from_happy(text_encoder):
    plain = text_encoder.predict("I am happy")
    negated = text_encoder.predict("not happy at all")
    assert negated.probabilities["happy"] < plain.probabilities["happy"]
    assert "happy" not in {e for e, _ in sorted(negated.probabilities.items(), key=lambda kv: -kv[1])[:2]}


MIXED = [
    ("I feel exhausted but hopeful", {"sad", "happy"}),
    ("I am happy but also a little scared", {"fear", "happy"}),
    ("I love it but I am nervous", {"fear", "happy"}),
    ("I am sad but also a little excited", {"sad", "happy"}),
    ("Although I lost, I am proud of myself", {"sad", "happy"}),
]


@pytest.mark.parametrize("sentence,pair", MIXED)
def test_mixed_feelings_show_two_strong_classes(text_encoder, sentence, pair):
    r = text_encoder.predict(sentence)
    ranked = sorted(r.probabilities.items(), key=lambda kv: -kv[1])
    assert {e for e, _ in ranked[:2]} == pair, r.probabilities
    assert ranked[1][1] > 0.15 and r.extras["clauses"] == 2


def test_without_contrast_one_reading_of_the_whole(text_encoder):
    r = text_encoder.predict("I'm thrilled and a bit anxious about moving")
    top2 = sorted(r.probabilities, key=r.probabilities.get, reverse=True)[:2]
    # both feelings, in either order: the lexical half reads "a bit anxious" at full strength (model card, limits)
    assert set(top2) == {"happy", "fear"} and min(r.probabilities[e] for e in top2) > 0.2, r.probabilities
    assert "clauses" not in r.extras
    whole_only = TextEncoder(clauses=False)
    whole_only._backend = text_encoder.backend  # same model, clause reading off
    assert whole_only.predict("I feel exhausted but hopeful").probabilities["happy"] < \
        text_encoder.predict("I feel exhausted but hopeful").probabilities["happy"]


@pytest.mark.parametrize("text,clauses", [
    ("I feel exhausted but hopeful", ["I feel exhausted", "hopeful"]),
    ("Although I lost, I am proud of myself", ["I lost", "I am proud of myself"]),
    ("tired, yet happy", ["tired", "happy"]),
    ("but", []), ("I am happy", []), ("nobody butters bread", []), ("But why?", []),
])
def test_contrast_clauses(text, clauses):
    assert contrast_clauses(text) == clauses


def test_contrast_clauses_are_linear_in_the_text():
    """200,000 letters after "although" and no comma: the old pattern backtracked quadratically (4.6 s at 16,000,
    about 12 minutes here); a linear one answers at once."""
    assert contrast_clauses("although " + "a" * 200_000) == []
    assert contrast_clauses("although , " + "b" * 10) == []  # a side without a word is no clause


@pytest.mark.parametrize("bad,status", [("", Status.EMPTY), ("   \n\t ", Status.EMPTY), ("!!! ...", Status.EMPTY),
                                        (42, Status.INVALID), (["a list"], Status.INVALID),
                                        (bytes(range(256)) * 4, Status.INVALID)])
def test_bad_text_gives_a_status_not_an_exception(text_encoder, bad, status):
    r = text_encoder.predict(bad)
    assert r.status == status and r.message


def test_long_text_is_chunked_and_says_so(text_encoder):
    long = ("I am so angry about the delays and nobody listens to me. " * 900)[:50_000]
    r = text_encoder.predict(long)
    assert r.ok and r.extras["chunks"] > 1
    assert "pieces" in r.message
    assert r.top_emotion == "angry"


def test_non_english_text_counts_less_and_says_so(text_encoder):
    r = text_encoder.predict("Ich bin heute wirklich sehr traurig und möchte mit niemandem sprechen")
    assert r.ok and r.quality < 0.5 and "not English" in r.message
    r = text_encoder.predict("我今天非常难过，不想和任何人说话")
    assert r.ok and r.quality < 0.5
    assert text_encoder.predict("ugh, Mondays").quality == 1.0


def test_control_characters_are_stripped_and_emoji_spelled_out():
    assert clean_text("hi\x00\x07 there\u200b 😭") == "hi there loudly crying face (sad)"
    assert prepare_text(b"I feel fine").text == "I feel fine"


def test_batch_gives_one_reading_per_input_in_order(text_encoder):
    rs = text_encoder.predict_batch(["I am furious", "", None, "I love this so much"])
    assert [r.status for r in rs] == [Status.OK, Status.EMPTY, Status.MISSING, Status.OK]
    assert rs[0].top_emotion == "angry" and rs[3].top_emotion == "happy"


def test_batch_equals_single(text_encoder):
    single = text_encoder.predict("I can't stop crying").vector
    batch = text_encoder.predict_batch(["I am fine", "I can't stop crying"])[1].vector
    assert np.allclose(single, batch, atol=1e-5)


def test_a_missing_hub_model_falls_back_to_the_embedded_default_with_a_message():
    enc = TextEncoder("no-such-user/no-such-emotion-model")
    r = enc.predict("I am furious with you")
    assert r.ok and r.top_emotion == "angry"
    assert "embedded default" in r.message


@needs_data
def test_dair_validation_sample_accuracy(text_encoder, data_dir):
    from multimodal.datasets import load_text_split

    split = load_text_split(data_dir, "dair", "val")
    idx = np.random.default_rng(0).choice(len(split), 500, replace=False)
    readings = text_encoder.predict_batch([split.texts[i] for i in idx])
    covered = np.where(split.coverage, np.stack([r.vector for r in readings]), 0)
    gold = [EMOTIONS.index(split.labels[i][0]) for i in idx]
    acc = float(np.mean(covered.argmax(1) == np.array(gold)))
    assert acc >= 0.88, acc


@pytest.mark.slow  # builds and loads a transformers model
def test_hub_path_with_a_tiny_local_model(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from multimodal.backbones import minilm_dir

    labels = ["anger", "joy", "sadness", "neutral"]
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, num_labels=4, id2label=dict(enumerate(labels)),
                        label2id={l: i for i, l in enumerate(labels)})
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(tmp_path)
    enc = TextEncoder(model=str(tmp_path))
    r = enc.predict("I am furious with you")
    assert r.ok and r.model == str(tmp_path)
    assert set(r.coverage) == {"angry", "happy", "sad", "neutral"}
    assert r.probabilities["disgust"] == 0 and sum(r.probabilities.values()) == pytest.approx(1.0)
    long = enc.predict("word " * 2000)
    assert long.ok and long.extras["chunks"] > 1


# ------------------------------------------------------------------------------------------ text v2
def probe_sentences() -> list[tuple[str, str, str]]:
    import csv
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "models" / "text" / "probe_sentences.tsv"
    with open(path, encoding="utf-8", newline="") as f:
        return [(r["text"], r["emotion"], r["kind"]) for r in csv.DictReader(f, delimiter="\t")]


def test_probe_set_of_everyday_sentences(text_encoder):
    probes = probe_sentences()
    assert len(probes) >= 60 and {e for _, e, _ in probes} == set(EMOTIONS)
    readings = text_encoder.predict_batch([t for t, _, _ in probes])
    wrong = [(t, e, r.top_emotion) for (t, e, _), r in zip(probes, readings) if r.top_emotion != e]
    # The issue's target is 0.80; the shipped model reads 54 of 68 (0.794, see the model card): this guards that
    # level, it does not claim the target.
    assert 1 - len(wrong) / len(probes) >= 0.78, wrong


def test_situations_read_as_feelings_not_neutral(text_encoder):
    for sentence, expected in [("I got the job!!", "happy"), ("Someone broke into my car and stole my laptop.", "angry"),
                               ("I have an exam tomorrow and I haven't studied anything.", "fear")]:
        r = text_encoder.predict(sentence)
        assert r.top_emotion == expected and r.probabilities["neutral"] < 0.3, (sentence, r.probabilities)


@pytest.mark.parametrize("high,low,dim", [
    ("I am furious", "I feel calm", "arousal"),
    ("I can't wait, this is so exciting!!", "I feel sleepy and relaxed", "arousal"),
    ("I got the job!!", "Our dog died last night.", "valence"),
    ("What a wonderful day with my friends", "I hate my life", "valence"),
    ("I'm not sad at all, I'm great", "I'm sad", "valence"),
])
def test_valence_arousal_heads_are_monotone_on_obvious_pairs(text_encoder, high, low, dim):
    a, b = text_encoder.predict(high), text_encoder.predict(low)
    assert a.valence is not None and a.arousal is not None
    assert getattr(a, dim) > getattr(b, dim), (getattr(a, dim), getattr(b, dim))


def test_direct_valence_arousal_spread_like_the_emotion_table(text_encoder):
    """Calibrated to the table's range: the music moves as far as it did with table values, not less."""
    from multimodal.labels import VA_MATRIX

    probes = probe_sentences()
    readings = text_encoder.predict_batch([t for t, _, _ in probes])
    direct = np.array([r.valence_arousal() for r in readings])  # direct, or the table's where sarcasm overrode it
    table = np.array([VA_MATRIX[EMOTIONS.index(e)] for _, e, _ in probes])
    ratio = direct.std(0) / table.std(0)
    assert np.all(ratio > 0.5) and np.all(ratio < 1.6), ratio
    assert np.corrcoef(direct[:, 0], table[:, 0])[0, 1] > 0.7


def test_reading_reports_valence_and_arousal_in_to_dict(text_encoder):
    d = text_encoder.predict("I got the job!!").to_dict()
    assert -1 <= d["valence"] <= 1 and -1 <= d["arousal"] <= 1 and d["valence"] > 0.2


def test_onnx_model_matches_the_torch_model_it_was_exported_from(text_encoder):
    """The shipped ONNX file (float16 weights, fed the pip package's word embeddings) against the torch module the
    recipe trains (base + adapter + head, from token ids): the network half alone, as both run without the lexical
    half."""
    import torch

    from models.text.network import load_trained

    backend = text_encoder.backend
    sentences = [t for t, _, _ in probe_sentences()[::3]]
    chunks = [backend.chunk(s)[0] for s in sentences]
    onnx_out = backend.run(chunks)
    net = load_trained()
    width = max(map(len, chunks))
    ids = torch.tensor([c + [0] * (width - len(c)) for c in chunks])
    mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in chunks])
    with torch.inference_mode():
        logits, raw_va = (t.numpy() for t in net(ids, mask))
    torch_out = backend.postprocess(logits, raw_va)
    assert np.abs(onnx_out.probabilities - torch_out.probabilities).max() < 0.08
    assert np.mean(onnx_out.probabilities.argmax(1) == torch_out.probabilities.argmax(1)) >= 0.9
    assert np.abs(onnx_out.direct - torch_out.direct).max() < 0.08


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_the_shipped_text_model_stores_float16_weights_and_computes_in_float32():
    """Half the file size, float32 math: each large weight is float16 behind a Cast to float32 that ONNX Runtime
    folds at load (a float16 graph would be cast around nearly every node on a CPU, at every call)."""
    import math

    import onnx
    from onnx import TensorProto

    from multimodal.text import TEXT_ONNX

    model = onnx.load(str(TEXT_ONNX))
    weights = {i.name: i for i in model.graph.initializer if math.prod(i.dims) >= 1024}
    assert len(weights) >= 36 and all(i.data_type == TensorProto.FLOAT16 for i in weights.values())
    users = [n for n in model.graph.node if set(n.input) & set(weights)]
    assert users and all(n.op_type == "Cast" and n.attribute[0].i == TensorProto.FLOAT for n in users)
    assert all(v.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.INT64)
               for v in [*model.graph.input, *model.graph.output])


def test_no_emoji_is_ascii():
    """What the text encoder's fast path rests on: ASCII text skips the emoji scan."""
    import emoji

    assert not [e for e in emoji.EMOJI_DATA if e.isascii()]
    assert clean_text("I am so happy :) <3 #1") == "I am so happy :) <3 #1"


@pytest.mark.slow  # builds a transformers model
@pytest.mark.parametrize("va_hidden", [0, 8])
def test_the_text_network_saves_and_reloads_its_heads(tmp_path, va_hidden):
    """The recipe's head file, with or without a valence/arousal branch of its own, gives back the same network."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import BertConfig, BertModel

    from models.text.network import TextEmotionNet

    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=20))
    net = TextEmotionNet(encoder, hidden=12, va_hidden=va_hidden).eval()
    save_file(net.heads_state_dict(), str(tmp_path / "head.safetensors"))
    again = TextEmotionNet.from_heads(encoder, load_file(str(tmp_path / "head.safetensors"))).eval()
    assert (again.va_head is None) == (va_hidden == 0)
    ids, mask = torch.tensor([[1, 5, 7, 2], [1, 9, 2, 0]]), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.inference_mode():
        for a, b in zip(net(ids, mask), again(ids, mask)):
            assert a.shape[0] == 2 and torch.equal(a, b)


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_default_text_encoder_runs_without_torch_or_transformers():
    import subprocess
    import sys

    code = ("import sys; from multimodal import TextEncoder; r = TextEncoder().predict('I got the job!!'); "
            "assert r.ok, r.message; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("sentence,cue", [("Oh great, another Monday. Just what I needed.", True),
                                          ("Yeah right, like that will ever happen", True),
                                          ("Thanks a lot for the lovely gift!", False),
                                          ("Oh great, I got the job!", False)])
def test_sarcasm_markers_turn_happy_words_into_annoyance(text_encoder, sentence, cue):
    r = text_encoder.predict(sentence)
    if cue:
        assert r.top_emotion == "angry" and "sarcasm" in r.message and r.extras["sarcasm"]
        assert r.valence is None and r.valence_arousal()[0] < 0  # the table's valence of the annoyed reading
    else:
        assert r.top_emotion == "happy" and "sarcasm" not in r.message


def test_emoji_are_read_as_the_feeling_they_show(text_encoder):
    for emoji, feeling in (("😭😭😭", "sad"), ("😡", "angry"), ("🎉🎉", "happy")):
        assert text_encoder.predict(emoji).top_emotion == feeling, emoji


def test_an_unreachable_hub_falls_back_at_once_without_transformers_retries(monkeypatch):
    """Offline, transformers retried for about 50 s before the promised warning; now it is about a second."""
    import multimodal.base as base

    monkeypatch.setattr(base, "hub_reachable", lambda timeout=3.0: False)
    enc = TextEncoder(model="someone/not-cached-model")
    tried = []
    monkeypatch.setattr(enc, "_load_transformers", lambda ref: tried.append(ref))
    r = enc.predict("I am furious with you")
    assert r.ok and r.top_emotion == "angry" and not tried
    assert "cannot be reached" in r.message and "embedded default" in r.message


def test_the_recipe_swaps_a_saved_adapter_in_whole(tmp_path):
    """peft writes an adapter file by file: the recipe saves beside the old one and swaps, so a failed save keeps it."""
    from models.text.train_text import save_adapter

    class Encoder:
        def __init__(self, fail: bool) -> None:
            self.fail = fail

        def save_pretrained(self, folder: str) -> None:
            from pathlib import Path

            Path(folder).mkdir()
            (Path(folder) / "adapter_model.safetensors").write_text("new")
            if self.fail:
                raise OSError("disk full")
            (Path(folder) / "adapter_config.json").write_text("{}")

    target = tmp_path / "adapter"
    target.mkdir()
    (target / "adapter_model.safetensors").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        save_adapter(Encoder(fail=True), target)
    assert (target / "adapter_model.safetensors").read_text() == "old"
    save_adapter(Encoder(fail=False), target)
    assert (target / "adapter_model.safetensors").read_text() == "new" and (target / "adapter_config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]  # the failed save's leftovers are gone too


def test_the_recipe_takes_per_set_sample_sizes():
    from models.text.train_text import TRAIN_SETS, train_sets

    sizes = {c: n for c, _, n in train_sets(["goemotions=0", "dair=500"])}
    assert sizes["goemotions"] is None and sizes["dair"] == 500  # 0: every row
    assert train_sets(None) == TRAIN_SETS
    with pytest.raises(SystemExit, match="CORPUS=N"):
        train_sets(["tweets=5"])


def test_clearly_english_text_skips_the_language_identifier():
    from multimodal.text import _language_identifier, clearly_english, detect_language

    _language_identifier.cache_clear()
    assert detect_language("I got the job today") == ("en", 0.9)
    assert _language_identifier.cache_info().currsize == 0  # its 0.5-s model was not loaded
    for other in ("Ich bin heute so müde und traurig", "Je suis tellement fatigué aujourd'hui",
                  "Estoy muy cansado y triste hoy", "Ik ben vandaag zo moe en verdrietig", "Ich habe den Job bekommen",
                  "Sono molto stanco e triste oggi", "Hoy es un buen dia para mi", "Wir haben es nicht geschafft"):
        assert not clearly_english(other), other
    assert detect_language("Ich habe den Job heute bekommen")[0] == "de"  # the identifier still reads the rest
