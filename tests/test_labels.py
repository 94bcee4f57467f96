import numpy as np
import pytest

from multimodal import EMOTIONS, LABEL_MAPS, VALENCE_AROUSAL, label_map_for, valence_arousal
from multimodal.labels import DAIR_EMOTION, EMODB, SUPERB_ER


def test_emotions_are_the_shared_label_set():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert set(VALENCE_AROUSAL) == set(EMOTIONS)


@pytest.mark.parametrize("name", sorted(LABEL_MAPS))
def test_every_source_label_maps_to_a_distribution(name):
    m = LABEL_MAPS[name].matrix
    assert np.allclose(m.sum(1), 1.0)


def test_coverage_masks():
    cov = dict(zip(EMOTIONS, SUPERB_ER.coverage))
    assert [e for e, c in cov.items() if c] == ["angry", "happy", "sad", "neutral"]
    assert not dict(zip(EMOTIONS, DAIR_EMOTION.coverage))["neutral"]
    assert not dict(zip(EMOTIONS, DAIR_EMOTION.coverage))["disgust"]
    assert not dict(zip(EMOTIONS, EMODB.coverage))["surprise"]
    assert all(LABEL_MAPS["goemotions_ekman"].coverage)


def test_love_and_joy_both_map_to_happy_and_boredom_splits():
    p = DAIR_EMOTION.to_emotions(np.array([0, 0.5, 0.5, 0, 0, 0]))
    assert p[EMOTIONS.index("happy")] == pytest.approx(1.0)
    b = EMODB.to_emotions(np.eye(7)[EMODB.source_labels.index("boredom")])
    assert b[EMOTIONS.index("neutral")] > b[EMOTIONS.index("sad")] > 0


def test_label_map_reorders_source_labels():
    probs = np.array([0.7, 0.1, 0.1, 0.1])  # in the order given below
    out = SUPERB_ER.to_emotions(probs, ["ang", "hap", "neu", "sad"])
    assert EMOTIONS[int(out.argmax())] == "angry"


def test_hub_labels_are_mapped_by_alias_and_unknown_dropped():
    m = label_map_for(["LABEL_JOY", "anger", "Sadness", "whatever"])
    assert m.coverage[EMOTIONS.index("angry")] and m.coverage[EMOTIONS.index("sad")]
    with pytest.raises(ValueError, match="none of the model's labels"):
        label_map_for(["LABEL_0", "LABEL_1"])


def test_valence_arousal_of_anchors():
    v, a = valence_arousal(np.eye(7)[EMOTIONS.index("happy")])
    assert v > 0.5 and a > 0
    v, a = valence_arousal(np.eye(7)[EMOTIONS.index("sad")])
    assert v < -0.5 and a < 0
