"""The readers of ../shared/data: sizes, label spaces and what each set can and cannot say."""

import numpy as np

from multimodal.datasets import load_emobank, load_ravdess, load_text_split
from multimodal.labels import EMOTIONS

from .conftest import needs_data


@needs_data
def test_situation_sets_keep_their_own_label_space(data_dir):
    ed = load_text_split(data_dir, "ed", "val")
    enisear = load_text_split(data_dir, "enisear", "train")
    dialog = load_text_split(data_dir, "dailydialog", "val")
    assert (len(ed), len(enisear), len(dialog)) == (1625, 715, 493)
    # a label a set cannot have is unknown there, not a negative: coverage says which it can have
    assert not ed.coverage[EMOTIONS.index("neutral")] and ed.coverage.sum() == 6
    assert enisear.coverage.sum() == 5 and not enisear.coverage[EMOTIONS.index("surprise")]
    assert dialog.coverage.all()
    for split in (ed, enisear, dialog):
        assert np.allclose(split.targets.sum(1), 1) and not split.targets[:, ~split.coverage].any()


@needs_data
def test_emobank_and_ravdess_readers(data_dir):
    dev = load_emobank(data_dir, "dev")
    assert len(dev.texts) == 1000 and 1 <= dev.valence.min() and dev.arousal.max() <= 5
    rav = load_ravdess(data_dir)
    assert len(rav) == 960 and rav.sample_rate == 16000
    assert sorted(set(rav.labels)) == sorted({"neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"})
    lengths = np.diff(rav.offsets) / rav.sample_rate
    assert len(rav.clip(0)) == rav.offsets[1] - rav.offsets[0] and 1.0 < np.median(lengths) < 5.0
