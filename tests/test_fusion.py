import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion import LateFusion, fuse
from multimodal import EMOTIONS, ModalityReading, Status
from multimodal.labels import SUPERB_ER

MODALITIES = ["face", "voice", "text", "speech_text"]

probs = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=7, max_size=7).filter(lambda p: sum(p) > 1e-3)


def reading(modality, p, quality=1.0, coverage=None):
    return ModalityReading.from_probs(modality, np.array(p), quality=quality, coverage=coverage)


def onehotish(emotion, peak=0.9):
    p = np.full(7, (1 - peak) / 6)
    p[EMOTIONS.index(emotion)] = peak
    return p


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(MODALITIES), probs, st.floats(0.05, 1.0)), min_size=1, max_size=4,
                unique_by=lambda t: t[0]),
       st.sampled_from(["linear", "poe"]))
def test_fused_distribution_is_a_distribution(items, method):
    mood = fuse([reading(m, p, q) for m, p, q in items], method=method)
    if mood.ok:
        assert sum(mood.probabilities.values()) == pytest.approx(1.0)
        assert all(0 <= v <= 1 for v in mood.probabilities.values())
        assert sum(mood.weights.values()) == pytest.approx(1.0)
        assert -1 <= mood.valence <= 1 and -1 <= mood.arousal <= 1
        assert 0 <= mood.confidence <= 1
    else:  # only possible when every reading is (nearly) uniform: it carries no information
        assert all(r.confidence < 0.005 for r in mood.readings.values())


@settings(max_examples=40, deadline=None)
@given(probs, probs)
def test_failed_signals_drop_out_and_the_rest_renormalise(p_text, p_face):
    text = reading("text", p_text)
    failed = ModalityReading.failed("face", Status.NO_FACE, "no face found")
    alone = fuse([text])
    with_failed = fuse([text, failed])
    assert with_failed.weights["face"] == 0
    if alone.ok:
        assert with_failed.vector == pytest.approx(alone.vector)
        assert with_failed.weights["text"] == pytest.approx(1.0)


def test_a_confident_signal_outweighs_an_uncertain_one():
    confident = reading("voice", onehotish("angry", 0.95))
    uncertain = reading("text", onehotish("happy", 0.25))
    mood = fuse([confident, uncertain])
    assert mood.weights["voice"] > mood.weights["text"]
    assert mood.top_emotion == "angry"


def test_low_quality_input_counts_less():
    good = fuse([reading("face", onehotish("sad"), quality=1.0), reading("text", onehotish("happy"), quality=1.0)])
    poor_face = fuse([reading("face", onehotish("sad"), quality=0.1), reading("text", onehotish("happy"), quality=1.0)])
    assert poor_face.weights["face"] < good.weights["face"]
    assert poor_face.top_emotion == "happy"


def test_coverage_mask_a_four_class_model_does_not_vote_zero_on_disgust():
    text = reading("text", onehotish("disgust", 0.8))
    voice_p = SUPERB_ER.to_emotions(np.array([0.05, 0.05, 0.85, 0.05]))  # neu, hap, ang, sad
    voice = reading("voice", voice_p, coverage=SUPERB_ER.coverage)
    naive_p = np.array(voice_p)  # what a naive average would use: zero on disgust
    mood = fuse([text, voice])
    w_text, w_voice = mood.weights["text"], mood.weights["voice"]
    naive_disgust = w_text * text.vector[1] + w_voice * naive_p[1]
    assert mood.probabilities["disgust"] > naive_disgust + 0.05
    # the voice model still votes where it can speak: angry rises above what text alone says
    assert mood.probabilities["angry"] > text.vector[0]


def test_no_usable_signal_says_so():
    mood = fuse([ModalityReading.failed("text", Status.EMPTY, "the text is empty"),
                 ModalityReading.failed("voice", Status.SILENCE, "silence")])
    assert not mood.ok and mood.status == "no_signal"
    assert "the text is empty" in mood.message and mood.top_emotion is None


def test_agreement_is_high_when_signals_agree():
    agree = fuse([reading("face", onehotish("happy")), reading("text", onehotish("happy"))])
    disagree = fuse([reading("face", onehotish("happy")), reading("text", onehotish("sad"))])
    assert agree.agreement > 0.9 > disagree.agreement
    assert disagree.confidence < agree.confidence
    assert fuse([reading("text", onehotish("happy"))]).agreement is None


def test_product_of_experts_is_sharper_when_signals_agree():
    rs = [reading("face", onehotish("happy", 0.6)), reading("text", onehotish("happy", 0.6))]
    assert fuse(rs, method="poe").probabilities["happy"] > fuse(rs, method="linear").probabilities["happy"]
    with pytest.raises(ValueError, match="linear, poe"):
        fuse(rs, method="max")


def test_fit_learns_to_trust_the_reliable_signal(rng):
    X, y = [], []
    for _ in range(80):
        truth = EMOTIONS[rng.integers(7)]
        noisy = EMOTIONS[rng.integers(7)]
        X.append({"face": reading("face", onehotish(truth, 0.7)), "text": reading("text", onehotish(noisy, 0.7))})
        y.append(truth)
    model = LateFusion().fit(X, y)
    assert model.priors_["face"] > model.priors_["text"]
    assert model.score(X, y) > 0.9
    assert model.predict_proba(X).shape == (80, 7)
    assert list(model.classes_) == list(EMOTIONS)


def test_words_without_emotion_do_not_outvote_an_emotional_voice():
    angry_voice = reading("voice", onehotish("angry", 0.8))
    flat_text = reading("text", onehotish("neutral", 0.95))  # "the report is due at 4 pm"
    assert fuse([angry_voice, flat_text]).top_emotion == "angry"
    assert fuse([angry_voice, flat_text], neutral_discount={"text": 0.0}).top_emotion == "neutral"
    sad_text = reading("text", onehotish("sad", 0.95))  # emotional words keep their full weight
    assert fuse([angry_voice, sad_text]).top_emotion == "sad"


def test_neutral_text_alone_still_reads_neutral():
    mood = fuse([reading("text", onehotish("neutral", 0.99))])
    assert mood.ok and mood.top_emotion == "neutral" and mood.weights["text"] == pytest.approx(1.0)


def test_direct_valence_arousal_replace_the_table_values_of_that_signal():
    from multimodal.labels import VALENCE_AROUSAL

    face = reading("face", onehotish("happy", 0.999))
    voice = ModalityReading.from_probs("voice", onehotish("happy", 0.999), valence=0.2, arousal=-0.9)
    both = fuse([face, voice], va_factors={"voice": (1.0, 1.0)})
    w_face, w_voice = both.weights["face"], both.weights["voice"]
    table_v, table_a = VALENCE_AROUSAL["happy"]
    # each signal contributes its own value: the face the table's (≈ happy), the voice its direct one
    assert both.valence == pytest.approx(w_face * table_v + w_voice * 0.2, abs=0.01)
    assert both.arousal == pytest.approx(w_face * table_a + w_voice * -0.9, abs=0.01)
    assert voice.to_dict()["arousal"] == -0.9 and face.to_dict()["arousal"] is None


def test_va_factors_shift_the_dimension_they_name_only():
    face = reading("face", onehotish("neutral", 0.999))
    voice = ModalityReading.from_probs("voice", onehotish("neutral", 0.999), valence=-0.8, arousal=0.8)
    even = fuse([face, voice], va_factors={"voice": (1.0, 1.0)})
    arousal_voice = fuse([face, voice], va_factors={"voice": (0.2, 3.0)})
    assert arousal_voice.arousal > even.arousal + 0.1      # the voice counts more for arousal...
    assert arousal_voice.valence > even.valence + 0.1      # ...and less for valence
    assert arousal_voice.probabilities == even.probabilities  # the emotion distribution does not change


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=7, max_size=7).filter(lambda p: sum(p) > 1e-3),
       st.lists(st.floats(0, 1), min_size=7, max_size=7).filter(lambda p: sum(p) > 1e-3))
def test_js_divergence_is_scipys_squared_jensen_shannon_distance(p, q):
    from scipy.spatial.distance import jensenshannon

    from multimodal.reading import js_divergence

    assert js_divergence(np.array(p), np.array(q)) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-9)
