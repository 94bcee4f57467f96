"""Lists you can keep (M3U, CSV) and clean lists by default (explicit words hidden)."""

import csv
import io

import pytest

from recommend import Catalog, PlaylistError, Track, export_playlist, recommend_tracks, to_csv, to_m3u
from recommend.explicit import explicit_words


def _track(i, **kw):
    base = dict(id=f"{i:022d}", name=f"Song {i}", artist=f"Artist {i}", genre="", explanation="calm: acoustic (90 BPM)",
                features={"valence": 0.5, "energy": 0.2, "danceability": 0.4, "tempo": 90.0, "acousticness": 0.9,
                          "mode": 1.0})
    return Track(**{**base, **kw})


def test_m3u_lists_local_files_and_spotify_links_in_order_and_no_name_breaks_a_line():
    tracks = [_track(1), _track(2, name="Evil\n/etc/passwd", id="local-1", extras={"path": "/music/a b.flac"}),
              _track(3, id="not-on-spotify")]
    text = to_m3u(tracks)
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[2] == tracks[0].spotify_url and lines[4] == "/music/a b.flac"
    assert lines[3] == "#EXTINF:-1,Artist 2 - Evil /etc/passwd"
    assert len(lines) == 5  # the third track has no location: left out, not an empty entry


def test_csv_keeps_the_order_and_never_starts_a_cell_like_a_formula():
    tracks = [_track(1, name="=HYPERLINK(\"http://x\")"), _track(2, artist="@evil")]
    rows = list(csv.reader(io.StringIO(to_csv(tracks))))
    assert rows[0][:3] == ["position", "name", "artist"] and [r[0] for r in rows[1:]] == ["1", "2"]
    assert rows[1][1].startswith("'=") and rows[2][2] == "'@evil"


def test_an_m3u_without_any_playable_track_is_refused(tmp_path):
    with pytest.raises(PlaylistError, match="write a .csv instead"):
        export_playlist([_track(1, id="no-link")], tmp_path / "x.m3u")
    assert not (tmp_path / "x.m3u").exists()
    assert "\u2028" not in to_m3u([_track(1, name="a\u2028#EXTINF:-1,fake\x85b")])


def test_export_writes_whole_files_and_never_overwrites_without_force(tmp_path):
    tracks = [_track(1), _track(2)]
    path = export_playlist(tracks, tmp_path / "list.m3u")
    assert path.read_text().count("#EXTINF") == 2
    with pytest.raises(PlaylistError, match="--force"):
        export_playlist(tracks[:1], path)
    export_playlist(tracks[:1], path, force=True)
    assert path.read_text().count("#EXTINF") == 1
    with pytest.raises(PlaylistError, match=".m3u, .m3u8 or .csv"):
        export_playlist(tracks, tmp_path / "list.txt")
    with pytest.raises(PlaylistError, match="does not exist"):
        export_playlist(tracks, tmp_path / "missing" / "list.csv")
    (tmp_path / "target").write_text("keep me")
    (tmp_path / "link.csv").symlink_to(tmp_path / "target")
    with pytest.raises(PlaylistError, match="not a regular file"):
        export_playlist(tracks, tmp_path / "link.csv", force=True)
    assert (tmp_path / "target").read_text() == "keep me"
    assert not list(tmp_path.glob(".*.tmp"))


def test_explicit_words_come_from_the_package_list_as_whole_words():
    assert explicit_words("Crazy Bitch") == ["bitch"]
    assert explicit_words("B*tch Better Have My Money") == ["bitch"] and explicit_words("Hot N*gga") == ["nigga"]
    assert explicit_words("I'm *NSYNC") == [] and explicit_words("Rock'n'roll") == []
    assert explicit_words("Young Niggas") == ["niggas"]
    assert explicit_words("Jack Off Jill") == ["jack off"]
    # whole words only, and everyday words the list also holds are let through
    assert explicit_words("Classic Assembly") == [] and explicit_words("God Only Knows") == []


def test_explicit_tracks_are_hidden_unless_asked():
    catalog = Catalog.default()
    hidden = catalog.explicit
    assert 300 < hidden.sum() < 0.02 * len(catalog)
    for va in [(-0.8, 0.8), (0.5, 0.6), (-0.6, -0.2)]:
        clean = recommend_tracks(*va, catalog, n=30, strategy="uplift")
        assert not any(explicit_words(f"{t.name} {t.artist}") for t in clean)
    # an imported catalog is checked too, on first use
    rows = [_track(i).to_dict() | _track(i).features for i in range(3)]
    rows[1]["name"] = "Fuck You"
    import pandas as pd

    small = Catalog.from_frame(pd.DataFrame(rows).drop(columns=["features"]))
    assert small.explicit.tolist() == [False, True, False]
    assert small.track(1).id not in {t.id for t in recommend_tracks(0, 0, small, n=3)}
    assert len(recommend_tracks(0, 0, small, n=3, allow_explicit=True)) == 3


@pytest.mark.slow
def test_the_cli_writes_the_list_it_shows_and_says_what_it_hid(tmp_path):
    from typer.testing import CliRunner

    from interfaces.cli import app

    out = tmp_path / "calm.csv"
    result = CliRunner().invoke(app, ["analyze", "--text", "a slow, quiet evening", "--n", "5", "--export", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["position"] for r in rows] == ["1", "2", "3", "4", "5"] and all(r["location"] for r in rows)
    said = " ".join(result.output.split())  # rich wraps lines at the terminal's width
    assert "are hidden" in said and "list written to" in said
    again = CliRunner().invoke(app, ["analyze", "--text", "a slow, quiet evening", "--n", "5", "--export", str(out)])
    # refused before any model loads, in one message
    assert again.exit_code == 2 and "--force" in " ".join(again.output.split()) and "Mood:" not in again.output
    none = CliRunner().invoke(app, ["analyze", "--text", "a slow evening", "--n", "0", "--export", str(tmp_path / "z.csv")])
    assert none.exit_code == 2 and "nothing was exported" in none.output and not (tmp_path / "z.csv").exists()
