import numpy as np
import pandas as pd
import pytest

from recommend import Catalog, CatalogError, Session, rank, recommend_tracks, target_from_va, target_path
from recommend.ranking import relevance


@pytest.fixture(scope="module")
def catalog():
    return Catalog.default()


def test_embedded_catalog_loads_with_features(catalog):
    assert len(catalog) > 2900
    t = next(iter(catalog))
    assert {"valence", "energy", "danceability", "tempo", "acousticness", "mode"} <= set(t.features)
    assert t.spotify_url and t.spotify_url.endswith(t.id)


def test_top_track_is_the_nearest_to_the_target(catalog):
    target = target_from_va(-0.7, -0.3)
    tracks = rank(catalog, [target], n=1)
    best = int(np.argmax(relevance(catalog.matrix, target)))
    assert tracks[0].id == catalog.track(best).id


@pytest.mark.parametrize("va", [(-0.8, -0.4), (0.9, 0.5), (-0.6, 0.7), (0.0, -0.2)])
def test_at_most_two_tracks_per_artist_and_explanations(catalog, va):
    tracks = recommend_tracks(*va, catalog, n=10)
    assert len(tracks) == 10
    assert max(pd.Series([t.artist for t in tracks]).value_counts()) <= 2
    assert all("valence" in t.explanation and "vs target" in t.explanation for t in tracks)


def test_happy_mood_gets_happier_music_than_sad_mood(catalog):
    happy = recommend_tracks(0.9, 0.5, catalog, n=10)
    sad = recommend_tracks(-0.9, -0.4, catalog, n=10)
    assert np.mean([t.features["valence"] for t in happy]) > np.mean([t.features["valence"] for t in sad]) + 0.3
    assert np.mean([t.features["energy"] for t in happy]) > np.mean([t.features["energy"] for t in sad])


def test_diversity_rises_as_lambda_falls(catalog):
    target = [target_from_va(0.2, 0.3)]

    def spread(lam):
        tracks = rank(catalog, target, n=10, mmr_lambda=lam)
        feats = np.array([[t.features["valence"], t.features["energy"], t.features["danceability"]] for t in tracks])
        return np.mean(np.std(feats, axis=0)) + len({t.genre for t in tracks}) / 10

    assert spread(1.0) < spread(0.7) < spread(0.3)


def test_uplift_moves_monotonically_toward_the_goal(catalog):
    path = target_path(-0.8, -0.4, 10, "uplift")
    vals = [t.valence for t in path]
    assert all(b >= a for a, b in zip(vals, vals[1:])) and vals[-1] > vals[0] + 0.3
    tracks = recommend_tracks(-0.8, -0.4, catalog, n=10, strategy="uplift")
    tv = [t.features["valence"] for t in tracks]
    assert np.mean(tv[-3:]) > np.mean(tv[:3]) + 0.2
    with pytest.raises(ValueError, match="match, uplift"):
        target_path(0, 0, 5, "sideways")


def test_feedback_shifts_the_next_list(catalog):
    from types import SimpleNamespace

    mood = SimpleNamespace(valence=0.0, arousal=0.0)
    start = Session()
    first = recommend_tracks(0.0, 0.0, catalog, n=10, session=start)
    energetic = max(catalog, key=lambda t: t.features["energy"] - abs(t.features["valence"] - 0.5))
    session = start
    for _ in range(3):
        session = session.like(energetic, mood)
    session = session.skip(first[0], mood)
    assert start == Session() and session.liked == (energetic.id,)  # feedback made new sessions
    second = recommend_tracks(0.0, 0.0, catalog, n=10, session=session)
    assert first[0].id not in {t.id for t in second}
    assert np.mean([t.features["energy"] for t in second]) > np.mean([t.features["energy"] for t in first])


def test_session_is_saved_only_when_asked(tmp_path):
    from fusion import Profile

    session = Session(offsets={"energy": 0.2})
    path = Profile(session).save(tmp_path / "profile.json")
    assert Profile.load(path).session.offsets["energy"] == pytest.approx(0.2)


def test_csv_import_of_other_schemas_skips_bad_rows(tmp_path):
    kaggle_1921 = pd.DataFrame({
        "id": ["a" * 22, "b" * 22, "c" * 22, "a" * 22, "d" * 22],
        "name": ["One", "Two", "Three", "One again", "Four"],
        "artists": ["['X', 'Y']", "['Z']", "['W']", "['X']", "['V']"],
        "valence": [0.5, 1.7, 0.2, 0.5, None], "energy": [0.5, 0.5, 0.4, 0.5, 0.5],
        "danceability": [0.5] * 5, "tempo": [120.0] * 5, "acousticness": [0.1] * 5, "mode": [1, 0, 1, 1, 1],
    })
    path = tmp_path / "data.csv"
    kaggle_1921.to_csv(path, index=False)
    cat = Catalog.from_csv(path)
    assert len(cat) == 2
    assert cat.report.skipped_out_of_range == 1 and cat.report.skipped_missing == 1 and cat.report.merged_duplicates == 1
    assert cat.track(0).artist == "X, Y" and cat.track(0).genre == "unknown"

    tracks_ds = pd.DataFrame({"track_id": ["e" * 22], "track_name": ["Song"], "artists": ["A;B"],
                              "track_genre": ["acoustic"], "valence": [0.3], "energy": [0.2], "danceability": [0.4],
                              "tempo": [80.0], "acousticness": [0.9], "mode": [0]})
    tracks_ds.to_csv(tmp_path / "dataset.csv", index=False)
    cat2 = Catalog.from_csv(tmp_path / "dataset.csv")
    assert cat2.track(0).genre == "acoustic" and cat2.track(0).artist == "A, B"


def test_csv_without_required_columns_is_a_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text("title,valence\nA,0.5\n")
    with pytest.raises(CatalogError, match="required columns"):
        Catalog.from_csv(tmp_path / "x.csv")
    with pytest.raises(CatalogError, match="no catalog file"):
        Catalog.from_csv(tmp_path / "missing.csv")
