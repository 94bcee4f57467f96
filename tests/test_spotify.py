"""Spotify integration against a local fake Spotify server on loopback; no test touches the network."""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recommend import Catalog, recommend_tracks, target_from_va
from recommend.spotify import SpotifyClient, SpotifyUnavailable, genres_for, with_spotify

SECRET = "very-secret-value-123"


class FakeSpotify(BaseHTTPRequestHandler):
    mode = "ok"           # or an HTTP status to answer every API call with
    calls: list = []
    playlists: list = []  # what a signed-in user made: {"payload", "items"}

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # the token endpoint, and the playlist endpoints of a signed-in user
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/v1/"):
            return self._post_api(json.loads(body or b"null"))
        if FakeSpotify.mode == "bad-token":
            return self._send(400, {"error": "invalid_client"})
        self._send(200, {"access_token": "tok", "token_type": "bearer", "expires_in": 3600})

    def _post_api(self, payload):
        FakeSpotify.calls.append(("POST", self.path))
        mode = FakeSpotify.mode
        if isinstance(mode, int) or (mode == "add-fails" and self.path.endswith("/items")):
            status = mode if isinstance(mode, int) else 502
            return self._send(status, {"error": {"status": status, "message": "nope"}})
        if mode == "429-long":
            return self._send(429, {"error": {"status": 429, "message": "slow down"}}, {"Retry-After": "3600"})
        if self.path == "/v1/me/playlists":
            FakeSpotify.playlists.append({"payload": payload, "items": []})
            n = len(FakeSpotify.playlists) - 1
            return self._send(201, {"id": f"pl{n}", "external_urls": {"spotify": f"http://s/playlist/pl{n}"}})
        if self.path.startswith("/v1/playlists/pl") and self.path.split("?")[0].endswith("/items"):
            FakeSpotify.playlists[int(self.path.split("/")[3][2:])]["items"] += payload
            return self._send(201, {"snapshot_id": "x"})
        self._send(404, {"error": {"status": 404, "message": "not found"}})

    def do_GET(self):
        FakeSpotify.calls.append(self.path)
        mode = FakeSpotify.mode
        if mode == "timeout":
            import time

            time.sleep(2.0)
        if mode == "429-once" and len(FakeSpotify.calls) == 1:
            return self._send(429, {"error": {"status": 429, "message": "slow down"}}, {"Retry-After": "1"})
        if mode == "429-long":
            return self._send(429, {"error": {"status": 429, "message": "slow down"}}, {"Retry-After": "3600"})
        if isinstance(mode, int):
            return self._send(mode, {"error": {"status": mode, "message": "nope"}})
        if self.path.startswith("/v1/recommendations") and mode == "recommendations-ok":
            items = [{"id": f"r{i:021d}", "name": f"Rec {i}", "artists": [{"name": f"Band {i}"}]} for i in range(20)]
            return self._send(200, {"tracks": items})
        if self.path.startswith("/v1/search"):
            items = [{"id": f"{i:022d}", "name": f"Song {i}", "artists": [{"name": f"Artist {i}"}], "popularity": 50,
                      "album": {"images": [{"url": f"http://img/{i}"}]}, "external_urls": {"spotify": f"http://s/{i}"}}
                     for i in range(10)]
            return self._send(200, {"tracks": {"items": items}})
        if self.path.startswith("/v1/tracks"):
            from urllib.parse import parse_qs, urlparse

            ids = parse_qs(urlparse(self.path).query)["ids"][0].split(",")
            return self._send(200, {"tracks": [{"id": i, "album": {"images": [{"url": f"http://img/{i}"}]},
                                                "preview_url": None, "external_urls": {"spotify": f"http://s/{i}"}}
                                               for i in ids]})
        self._send(404, {"error": {"status": 404, "message": "not found"}})


@pytest.fixture
def fake(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSpotify)
    # serve_forever polls for shutdown every 0.5 s by default: each test would wait that long at teardown
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    FakeSpotify.mode, FakeSpotify.calls, FakeSpotify.playlists = "ok", [], []
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "client-id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", SECRET)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    client = SpotifyClient(prefix=f"{base}/v1/", token_url=f"{base}/api/token", timeout=1.0, sleep=lambda s: None)
    yield client
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def catalog_tracks():
    return recommend_tracks(0.5, 0.3, Catalog.default(), n=5)


def test_search_returns_playable_tracks_for_the_mood(fake):
    target = target_from_va(0.6, 0.4)
    tracks = fake.search(target, n=10)
    assert len(tracks) == 10 and all(t.spotify_url for t in tracks)
    assert "genre%3A" in FakeSpotify.calls[0] and "limit=10" in FakeSpotify.calls[0]
    assert tracks[0].genre in genres_for(target) and "Spotify search" in tracks[0].explanation


def test_enrich_adds_album_art_to_catalog_tracks(fake, catalog_tracks):
    enriched, note = with_spotify(catalog_tracks, target_from_va(0.5, 0.3), fake)
    assert all(t.extras.get("album_art") for t in enriched) and "enriched" in note


@pytest.mark.parametrize("mode", [400, 401, 403, 404, 500, 503, "429-long", "bad-token", "timeout"])
def test_every_failure_falls_back_to_the_catalog_with_one_message(fake, catalog_tracks, mode, caplog):
    FakeSpotify.mode = mode
    caplog.set_level(logging.DEBUG)
    tracks, note = with_spotify(catalog_tracks, target_from_va(0.5, 0.3), fake, source="spotify")
    assert tracks == catalog_tracks
    assert note.startswith("Spotify unavailable") and "showing the catalog" in note
    assert SECRET not in caplog.text and SECRET not in note


def test_429_with_a_short_retry_after_is_retried_once(fake):
    FakeSpotify.mode = "429-once"
    assert len(fake.search(target_from_va(0.0, 0.0), n=5)) == 5
    assert len(FakeSpotify.calls) == 2


def test_recommendations_only_behind_an_explicit_setting(fake):
    with pytest.raises(SpotifyUnavailable, match="recommendations are off"):
        fake.recommendations(target_from_va(0.2, 0.2))
    fake.allow_recommendations = True
    FakeSpotify.mode = 404  # what a new app gets in 2026
    with pytest.raises(SpotifyUnavailable, match="404"):
        fake.recommendations(target_from_va(0.2, 0.2))


def test_search_mode_tries_recommendations_only_when_allowed_and_falls_back_to_search(fake, catalog_tracks):
    target = target_from_va(0.2, 0.2)
    FakeSpotify.mode = "ok"  # recommendations answer 404, search works
    tracks, note = with_spotify(catalog_tracks, target, fake, source="spotify", n=5)
    assert note == "5 tracks from Spotify search" and not any("recommendations" in c for c in FakeSpotify.calls)
    fake.allow_recommendations = True
    tracks, note = with_spotify(catalog_tracks, target, fake, source="spotify", n=5)
    assert "recommendations unavailable" in note and "404" in note and "from Spotify search" in note and len(tracks) == 5
    FakeSpotify.mode = "recommendations-ok"
    tracks, note = with_spotify(catalog_tracks, target, fake, source="spotify", n=5)
    assert note == "5 tracks from Spotify recommendations" and tracks[0].name == "Rec 0"
    assert tracks[0].features["valence"] == pytest.approx(target.valence) and "recommendations for" in tracks[0].explanation


def test_no_credentials_means_catalog_and_no_cache_file(monkeypatch, tmp_path, catalog_tracks):
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    client = SpotifyClient()
    assert not client.available
    tracks, note = with_spotify(catalog_tracks, target_from_va(0, 0), client, source="spotify")
    assert tracks == catalog_tracks and "SPOTIPY_CLIENT_ID" in note
    assert not list(tmp_path.glob(".cache*"))


def test_token_is_kept_in_memory_only(fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake.search(target_from_va(0.1, 0.1), n=3)
    assert not list(tmp_path.glob(".cache*"))


# -- Save to Spotify: a private playlist in the user's own account (PKCE) ---------------------------------------
@pytest.fixture
def user(fake, monkeypatch):
    """A signed-in user against the fake server: a cached, valid PKCE token (no browser)."""
    import time

    from spotipy.cache_handler import MemoryCacheHandler

    from recommend.spotify_user import SCOPE, SpotifyUser

    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET")  # PKCE needs no secret
    token = {"access_token": "user-token", "token_type": "Bearer", "expires_in": 3600, "scope": SCOPE,
             "expires_at": int(time.time()) + 3600, "refresh_token": "r"}
    return SpotifyUser(cache=MemoryCacheHandler(token_info=token), open_browser=False, prefix=fake.prefix,
                       token_url=fake.token_url, timeout=1.0, sleep=lambda s: None)


def test_save_to_spotify_makes_a_private_playlist_with_the_tracks_in_order(user, catalog_tracks):
    saved = user.save_playlist("Calm  evening\n", catalog_tracks, description="moodtune: calm")
    assert saved.added == saved.asked == len(catalog_tracks) and saved.url.endswith(saved.id)
    made = FakeSpotify.playlists[0]
    assert made["payload"]["public"] is False and made["payload"]["name"] == "Calm evening"
    assert made["items"] == [f"spotify:track:{t.id}" for t in catalog_tracks]


@pytest.mark.parametrize("mode", [401, 403, 500, 503, "429-long"])
def test_a_failed_save_says_why_in_one_message(user, catalog_tracks, mode):
    FakeSpotify.mode = mode
    with pytest.raises(SpotifyUnavailable) as info:
        user.save_playlist("x", catalog_tracks)
    text = str(info.value)
    assert text.startswith("create playlist: ") and "\n" not in text and "user-token" not in text


def test_a_save_that_fails_halfway_says_what_was_made(user, catalog_tracks):
    FakeSpotify.mode = "add-fails"
    with pytest.raises(SpotifyUnavailable, match="made with 0 of 5 tracks"):
        user.save_playlist("x", catalog_tracks)


def test_the_user_token_lives_owner_only_in_moodtunes_folder_and_logout_removes_it(tmp_path, monkeypatch):
    from recommend.spotify_user import TokenFile, logout, redirect_uri

    monkeypatch.setenv("MOODTUNE_HOME", str(tmp_path))
    cache = TokenFile()
    assert cache.get_cached_token() is None and cache.path.parent == tmp_path
    cache.save_token_to_cache({"access_token": "a", "refresh_token": "b"})
    assert cache.path.stat().st_mode & 0o777 == 0o600 and cache.get_cached_token()["access_token"] == "a"
    cache.path.write_text("not json")
    assert cache.get_cached_token() is None
    assert logout() and not cache.path.exists() and not logout()
    monkeypatch.setenv("MOODTUNE_SPOTIFY_PORT", "80")
    with pytest.raises(SpotifyUnavailable, match="1024"):
        redirect_uri()
    monkeypatch.setenv("MOODTUNE_SPOTIFY_PORT", "9090")
    assert redirect_uri() == "http://127.0.0.1:9090/callback"


def test_a_user_who_never_signed_in_is_told_to_sign_in_not_sent_to_a_browser(fake, catalog_tracks, tmp_path, monkeypatch):
    from recommend.spotify_user import SpotifyUser

    monkeypatch.setenv("MOODTUNE_HOME", str(tmp_path))
    user = SpotifyUser(open_browser=False, prefix=fake.prefix, token_url=fake.token_url, timeout=1.0)
    assert not user.signed_in()  # the default token file, empty
    with pytest.raises(SpotifyUnavailable, match="moodtune spotify login"):
        user.save_playlist("x", catalog_tracks)
    assert FakeSpotify.playlists == []


def test_sign_in_reports_a_refusal_and_gives_up_after_its_time(monkeypatch, tmp_path):
    import threading
    import urllib.request

    from recommend.spotify_user import SpotifyUser

    from .conftest import free_port

    port = free_port()
    monkeypatch.setenv("MOODTUNE_HOME", str(tmp_path))
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "client-id")
    monkeypatch.setenv("MOODTUNE_SPOTIFY_PORT", str(port))
    said = []
    with pytest.raises(SpotifyUnavailable, match="did not come back within 1 s"):
        SpotifyUser(open_browser=False).login(timeout=1.0, say=said.append)
    assert said and "accounts.spotify.com" in said[0] and "code_challenge" in said[0]

    def refuse():
        for _ in range(50):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/callback?error=access_denied", timeout=1)
                return
            except OSError:
                threading.Event().wait(0.05)

    threading.Thread(target=refuse, daemon=True).start()
    with pytest.raises(SpotifyUnavailable, match="access_denied"):
        SpotifyUser(open_browser=False).login(timeout=5.0, say=said.append)
