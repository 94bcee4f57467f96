"""Lists you can keep: a recommended list as an M3U playlist or a CSV file.

M3U entries are local file paths for tracks of a scanned library (``moodtune library scan``), else the track's
Spotify link, which players that know Spotify open. Names never break a line of the playlist, and a CSV cell
never starts like a spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Iterable, Literal

from multimodal.errors import MoodtuneError
from multimodal.files import check_user_file, write_user_file

from .catalog import FEATURES, Track

PlaylistFormat = Literal["m3u", "csv"]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # every character some reader takes as a line end


class PlaylistError(MoodtuneError, ValueError):
    """A playlist cannot be written where asked."""


def _line(text: str) -> str:
    return _CONTROL.sub(" ", str(text)).strip()


def location(track: Track) -> str | None:
    """Where a player finds the track: its local file, else its Spotify link (None: neither)."""
    return _line(track.extras["path"]) if track.extras.get("path") else track.spotify_url


def to_m3u(tracks: Iterable[Track]) -> str:
    """An extended M3U playlist (UTF-8): ``#EXTINF`` with artist and title, then where to find each track.
    Tracks with neither a file nor a Spotify link are left out; :class:`PlaylistError` if that is all of them."""
    lines = ["#EXTM3U"]
    for t in tracks:
        where = location(t)
        if where:
            lines += [f"#EXTINF:-1,{_line(t.artist)} - {_line(t.name)}", where]
    if len(lines) == 1:
        raise PlaylistError("none of these tracks has a file or a Spotify link to play it from; write a .csv instead")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> object:
    """A value a spreadsheet shows as text: a leading ``= + - @`` (a formula) gets a quote in front."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(tracks: Iterable[Track]) -> str:
    """One row per track, in list order: position, title, artist, genre, decade, link or path, why, features."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["position", "name", "artist", "genre", "decade", "location", "explanation", *FEATURES])
    for i, t in enumerate(tracks, start=1):
        writer.writerow([_cell(v) for v in (i, t.name, t.artist, t.genre, t.extras.get("decade", ""),
                                             location(t) or "", t.explanation,
                                             *(t.features.get(f, "") for f in FEATURES))])
    return out.getvalue()


def format_of(path: Path) -> PlaylistFormat:
    suffix = path.suffix.lower()
    if suffix in (".m3u", ".m3u8"):
        return "m3u"
    if suffix == ".csv":
        return "csv"
    raise PlaylistError(f"{path.name}: name the file .m3u, .m3u8 or .csv to say which playlist to write")


def check_target(path: str | Path, force: bool = False) -> Path:
    """The path a playlist may be written to, checked before any work: a known ending, an existing folder, and no
    file in the way unless ``force`` (and never a link, a folder or a device)."""
    path = Path(path).expanduser()
    if not path.name:
        raise PlaylistError("name the file to write, for example mood.m3u or mood.csv")
    format_of(path)
    return check_user_file(path, force, PlaylistError)


def export_playlist(tracks: list[Track], path: str | Path, *, force: bool = False) -> Path:
    """Write ``tracks`` to ``path`` as M3U or CSV (by its ending), whole or not at all; an existing file is
    replaced only with ``force``, and only when it is a regular file of the user's own."""
    path = check_target(path, force)
    if not tracks:
        raise PlaylistError("there is no track to write")
    text = to_m3u(tracks) if format_of(path) == "m3u" else to_csv(tracks)
    return write_user_file(path, text, force, PlaylistError)
