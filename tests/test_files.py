"""Files moodtune reads and writes: regular files only, names checked, writes atomic, one folder of its own."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from fusion import Profile
from multimodal.files import is_regular_file, moodtune_home, write_atomic
from recommend import Catalog, CatalogError, ProfileError, Session
from recommend import catalog as catalog_module
from recommend.library import artist_of, scan


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    folder = tmp_path / "catalogs"
    monkeypatch.setattr(catalog_module, "USER_CATALOG_DIR", folder)
    return folder


def small_catalog() -> Catalog:
    return Catalog(Catalog.default().frame.head(20), name="small")


def test_moodtune_home_is_one_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("MOODTUNE_HOME", str(tmp_path / "mt"))
    assert moodtune_home() == tmp_path / "mt"
    monkeypatch.delenv("MOODTUNE_HOME")
    assert moodtune_home().name == ".moodtune"


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "catalog.csv"
    target.write_text("old")

    class Boom(str):
        def encode(self, *a, **k):
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(target, Boom("new"))
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["catalog.csv"]


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "embedded", ".hidden", "", "x" * 65, "a\\b"])
def test_catalog_names_cannot_leave_the_folder_or_shadow_the_embedded_one(user_dir, name):
    with pytest.raises(CatalogError, match="cannot name a catalog"):
        catalog_module.save_user_catalog(small_catalog(), name)
    assert not user_dir.exists() or not any(user_dir.iterdir())


def test_overwriting_a_catalog_needs_force(user_dir):
    cat = small_catalog()
    path = catalog_module.save_user_catalog(cat, "mine")
    with pytest.raises(CatalogError, match="--force"):
        catalog_module.save_user_catalog(cat, "mine")
    catalog_module.save_user_catalog(Catalog(cat.frame.head(5)), "mine", force=True)
    assert len(pd.read_csv(path)) == 5


def test_only_regular_files_are_imported(tmp_path):
    fifo = tmp_path / "tracks.csv"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(CatalogError, match="not a regular file"):
            Catalog.from_csv(path)


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_cli_import_refuses_devices_and_bad_names_quickly(tmp_path):
    env = {**os.environ, "MOODTUNE_HOME": str(tmp_path / "home")}
    csv = tmp_path / "x.csv"
    small_catalog().frame.to_csv(csv, index=False)
    for args, message in ((["/dev/zero"], "not a regular file"), ([str(csv), "--name", "../../x"], "cannot name"),
                          ([str(csv), "--name", "embedded"], "cannot name")):
        out = subprocess.run([sys.executable, "-m", "interfaces.cli", "catalog", "import", *args], capture_output=True,
                             text=True, timeout=60, env=env)
        assert out.returncode == 2 and message in " ".join(out.stderr.split()), out.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x.csv").exists()


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_library_scan_skips_pipes_devices_and_broken_links(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    t = np.arange(22050 * 3) / 22050
    sf.write(music / "Band - Song.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    sf.write(music / "untitled.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 22050)
    os.mkfifo(music / "pipe.wav")
    (music / "zero.mp3").symlink_to("/dev/zero")
    (music / "dangling.flac").symlink_to(music / "nowhere.flac")
    (music / "loop.wav").symlink_to(music / "loop.wav")
    (music / "sub").mkdir()
    (music / "sub" / "up").symlink_to(music, target_is_directory=True)  # a folder loop: not followed
    (music / "list.mp3").write_text(f"#EXTM3U\n{music / 'untitled.wav'}\n")  # a playlist is not audio
    cat, failed = scan(music, cache=None, progress=False)
    assert sorted(cat.frame["name"]) == ["Band - Song", "untitled"]
    assert sorted(cat.frame["artist"]) == ["Band", "untitled"]  # not the folder's name for every file
    assert len(failed) == 5 and any("list.mp3" in f for f in failed)


@pytest.mark.parametrize("content", ["[]", "null", "{\"k\": 3}", "not json"])
def test_a_strange_library_cache_is_ignored(tmp_path, content):
    music = tmp_path / "music"
    music.mkdir()
    t = np.arange(22050 * 2) / 22050
    sf.write(music / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    cache = tmp_path / "cache.json"
    cache.write_text(content)
    cat, _ = scan(music, cache=cache, progress=False)
    assert len(cat) == 1 and isinstance(json.loads(cache.read_text()), dict)


def test_artist_of():
    from pathlib import Path

    root = Path("/music")
    assert artist_of(root / "Nina Simone - Feeling Good.mp3", root) == "Nina Simone"
    assert artist_of(root / "x.wav", root) == "x" and artist_of(root / "Band" / "Album" / "x.wav", root) == "Band"


@pytest.mark.parametrize("content", ["{", "[]", "{\"offsets\": {\"energy\": \"NaN\"}}", "{\"offsets\": 3}", "\xff"])
def test_a_corrupt_profile_is_a_clear_error(tmp_path, content):
    path = tmp_path / "profile.json"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(ProfileError, match="profile"):
        Profile.load(path)


def test_profile_round_trip_is_bounded(tmp_path):
    s = Session(liked=tuple(f"t{i}" for i in range(5000)))
    loaded = Profile.load(Profile(s).save(tmp_path / "p.json")).session
    assert len(loaded.liked) == 1000 and loaded.liked[-1] == "t4999"


def test_a_profile_saved_before_corrections_existed_still_loads(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(Session(offsets={"energy": 0.2}, liked=("a",)).to_dict()))
    profile = Profile.load(path)
    assert profile.session.liked == ("a",) and profile.session.offsets["energy"] == pytest.approx(0.2)
    assert not profile.calibration


def test_a_session_travels_as_data_and_recommending_does_not_change_it():
    from types import SimpleNamespace

    from recommend import recommend_tracks

    cat = Catalog.default()
    mood = SimpleNamespace(valence=-0.4, arousal=0.3)
    s = Session()
    tracks = recommend_tracks(mood.valence, mood.arousal, cat, n=5, session=s)
    assert s == Session()
    liked = s.like(tracks[0], mood).skip(tracks[1], mood)
    again = Session.from_dict(json.loads(json.dumps(liked.to_dict())))
    assert again == liked and again.liked == (tracks[0].id,) and again.skipped == (tracks[1].id,)
    assert tracks[1].id not in {t.id for t in recommend_tracks(mood.valence, mood.arousal, cat, n=5, session=again)}
    with pytest.raises(ProfileError):
        Session.from_dict({"offsets": {"energy": "x"}})


def test_is_regular_file(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert is_regular_file(tmp_path / "f") and not is_regular_file(tmp_path / "loop")
    assert not is_regular_file(tmp_path) and not is_regular_file("/dev/null")


def test_the_cli_imports_no_model_package_before_a_command_needs_it():
    code = ("import sys, interfaces.cli; heavy = ('torch', 'onnxruntime', 'ctranslate2', 'transformers', 'pandas', "
            "'gradio', 'cv2'); print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr[-500:]


def test_every_error_moodtune_raises_on_purpose_has_one_base():
    from multimodal import InputError, MoodtuneError
    from multimodal.backbones import BackboneError
    from recommend.spotify import SpotifyUnavailable

    for error in (InputError, BackboneError, CatalogError, ProfileError, SpotifyUnavailable):
        assert issubclass(error, MoodtuneError), error


def test_a_csv_without_usable_tracks_says_so(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("track_id,track_name,track_artist,valence,energy,danceability,tempo,acousticness,mode\n"
                    "x,y,z,7,7,7,7,7,7\n")
    with pytest.raises(CatalogError, match="no usable track|missing"):
        Catalog.from_csv(path)


def test_a_huge_n_is_capped_by_the_catalog():
    from recommend import target_from_va
    from recommend.ranking import rank

    cat = small_catalog()
    assert len(rank(cat, [target_from_va(0.5, 0.5)], n=10**8, max_per_artist=100)) <= len(cat)


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_cli_import_hint_can_be_pasted_as_printed(tmp_path):
    env = {**os.environ, "MOODTUNE_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    csv = tmp_path / "kaggle 1921.csv"
    small_catalog().frame.to_csv(csv, index=False)
    out = subprocess.run([sys.executable, "-m", "interfaces.cli", "catalog", "import", str(csv)], capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0 and "--catalog 'kaggle 1921'" in out.stdout, out.stdout + out.stderr


def test_a_save_killed_midway_leaves_no_temp_file_for_long(tmp_path):
    target = tmp_path / "profile.json"
    stale = tmp_path / ".profile.json.abc123.tmp"  # what a save killed by SIGKILL/SIGTERM leaves
    stale.write_text("{half")
    os.utime(stale, (1, 1))
    fresh = tmp_path / ".profile.json.def456.tmp"  # another process's save in progress: left alone
    fresh.write_text("{")
    write_atomic(target, "{}")
    assert target.read_text() == "{}" and not stale.exists() and fresh.exists()


def test_saving_a_profile_into_a_folder_that_cannot_be_made_is_a_profile_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(ProfileError, match="cannot save"):
        Profile().save(blocker / "me.json")


@pytest.mark.parametrize("payload", ['{"calibration": {"corrections": [{"emotion": "sad", "signals": {"text": '
                                     '{"probabilities": [' + "9" * 400 + ', 0, 0, 0, 0, 0, 0], "weight": 1}}}]}}',
                                     "[" * 100_000 + "]" * 100_000,
                                     '{"session": {"offsets": {"valence": ' + "9" * 400 + '}}}'])
def test_a_profile_with_a_huge_integer_or_deep_nesting_is_a_profile_error(tmp_path, payload):
    path = tmp_path / "me.json"
    path.write_text(payload)
    with pytest.raises(ProfileError):
        Profile.load(path)


@pytest.mark.slow  # a process, a model or many cases: seconds
def test_cli_import_into_a_moodtune_home_that_is_a_file_is_one_line(tmp_path):
    home = tmp_path / "home"
    home.write_text("a file")
    csv = tmp_path / "x.csv"
    small_catalog().frame.to_csv(csv, index=False)
    out = subprocess.run([sys.executable, "-m", "interfaces.cli", "catalog", "import", str(csv)], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "MOODTUNE_HOME": str(home)})
    assert out.returncode == 2 and "Traceback" not in out.stderr and "MOODTUNE_HOME" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
