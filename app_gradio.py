"""moodtune web demo: show your face, speak, type; see the fused mood and play music that fits.

A thin Gradio front end over :class:`fusion.MoodEngine`; run ``moodtune demo`` or ``python app_gradio.py``.
Binds 127.0.0.1, no share link, analytics off; uploads are read into memory and deleted within 30 s.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Gradio writes uploads (and its converted copies) here: a private folder of this process, emptied by UPLOADS.
# Gradio reads the setting when it is imported; the folder itself is made (owner only) when a demo is built, so
# importing this module for its handlers leaves nothing behind.
OWN_UPLOAD_DIR = "GRADIO_TEMP_DIR" not in os.environ
os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(tempfile.gettempdir(),
                                                      f"moodtune-uploads-{os.getpid()}-{secrets.token_hex(8)}"))

import html  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fusion import Calibration, MoodEngine, MoodReading, Profile  # noqa: E402
from interfaces.journal import Journal, JournalError, daily  # noqa: E402
from interfaces.uploads import UploadJanitor  # noqa: E402
from multimodal.errors import MoodtuneError  # noqa: E402
from multimodal.files import moodtune_home  # noqa: E402
from multimodal.labels import EMOTIONS  # noqa: E402
from multimodal.live import EmaSmoother  # noqa: E402
from recommend import EMBEDDED, Session, Track, load_catalog, user_catalogs  # noqa: E402

MAX_UPLOAD = "25mb"
CONCURRENCY = 2  # requests analysed at once (the queue holds the rest)
PRIVACY_NOTE = ("**Runs on this computer; nothing is stored unless you turn it on.** Your picture, voice and words are "
                "analysed in memory and uploads are deleted within 30 seconds of use. Spotify players load from Spotify "
                "only if you turn them on. The mood journal (tab *My week*) and your profile are off until you ask.")
MAX_PLOT_MOODS = 1000  # beyond this many moods, the week plot shows hourly means
EMOJI = {"angry": "😠", "disgust": "🤢", "fear": "😨", "happy": "😊", "sad": "😢", "surprise": "😮", "neutral": "😐"}
UPLOADS = UploadJanitor(grace_s=30)  # identical uploads share a path: delete 30 s after the last use
PROFILE_PATH = moodtune_home() / "profile.json"  # the only place the demo writes a profile
SIGNAL_NAMES = {"face": "face", "voice": "voice (how you sound)", "text": "typed text", "speech_text": "spoken words"}

_engine: MoodEngine | None = None
JOURNAL = Journal()  # records only once the user turns it on (tab "My week")


BACKEND: str | None = None  # a moodtune service's URL (launch(backend=...)); None: the models run in this process


def get_engine() -> Any:
    """The engine in this process, or a :class:`interfaces.remote.RemoteEngine` for ``BACKEND``."""
    global _engine
    if _engine is None:
        if BACKEND:
            from interfaces.remote import RemoteEngine

            _engine = RemoteEngine(BACKEND)
        else:
            _engine = MoodEngine(workers=CONCURRENCY)  # models run on 2 fixed threads: memory stays flat
    return _engine


def catalog_for(name: str | None) -> Any:
    """What ``recommend`` takes: a catalog loaded here, or its name for the service to load."""
    return name if BACKEND else load_catalog(name)


def catalog_names() -> list[str]:
    if not BACKEND:
        return user_catalogs()
    try:
        return get_engine().catalogs()
    except MoodtuneError:
        return [EMBEDDED]


def backend_errors(handler: Any) -> Any:
    """A handler whose service errors (no answer, an error status) show on the page as an error message."""
    import functools

    @functools.wraps(handler)
    def wrapped(*args: Any, **kw: Any) -> Any:
        try:
            return handler(*args, **kw)
        except MoodtuneError as exc:
            raise gr.Error(str(exc)) from exc

    return wrapped


def signal_bars(mood: MoodReading) -> pd.DataFrame:
    rows = [{"signal": f"{SIGNAL_NAMES.get(m, m)} (w={mood.weights.get(m, 0):.2f})", "emotion": e, "probability": p}
            for m, r in mood.readings.items() if r.ok for e, p in r.probabilities.items()]
    rows += [{"signal": "fused", "emotion": e, "probability": p} for e, p in mood.probabilities.items()] if mood.ok else []
    return pd.DataFrame(rows, columns=["signal", "emotion", "probability"])


#: one colour per signal on the valence-arousal plane, the same in every analysis (Okabe-Ito, colour-blind safe)
SIGNAL_COLOURS = {"face": "#E69F00", "voice (how you sound)": "#56B4E9", "typed text": "#009E73",
                  "spoken words": "#CC79A7", "fused": "#000000"}
PLANE_EDGE = 0.92  # points are drawn at most this far out, so a point at ±1 sits wholly inside the plane
PLANE_APART = 0.06  # points closer than this are spread on a small circle, so equal points do not hide each other


def va_points(mood: MoodReading) -> pd.DataFrame:
    """The signals and the fused mood on the valence-arousal plane, drawn inside it and apart from each other
    (``valence_read``/``arousal_read`` keep the values read, for the tooltip)."""
    rows = [{"signal": SIGNAL_NAMES.get(m, m), "valence": v, "arousal": a}
            for m, r in mood.readings.items() if r.ok for v, a in [r.valence_arousal()]]
    if mood.ok:
        rows.append({"signal": "fused", "valence": mood.valence, "arousal": mood.arousal})
    frame = pd.DataFrame(rows, columns=["signal", "valence", "arousal"])
    frame["valence_read"], frame["arousal_read"] = frame["valence"].round(2), frame["arousal"].round(2)
    drawn = np.clip(frame[["valence", "arousal"]].to_numpy(dtype=float), -PLANE_EDGE, PLANE_EDGE)
    for i in range(len(drawn)):
        close = [j for j in range(i) if np.hypot(*(drawn[i] - drawn[j])) < PLANE_APART]
        if close:  # the i-th point at one spot: nudged around it, each at its own angle
            angle = 2 * np.pi * len(close) / 6
            drawn[i] = np.clip(drawn[i] + PLANE_APART * np.array([np.cos(angle), np.sin(angle)]), -PLANE_EDGE, PLANE_EDGE)
    frame[["valence", "arousal"]] = drawn
    return frame


def status_markdown(mood: MoodReading) -> str:
    lines = [f"**{mood.summary()}**" if mood.ok else f"**{mood.message}**"]
    for m, r in mood.readings.items():
        state = f"{r.top_emotion} ({r.probabilities[r.top_emotion]:.0%})" if r.ok else r.status.value.replace("_", " ")
        note = f" — {html.escape(r.message)}" if r.message else ""
        lines.append(f"- **{SIGNAL_NAMES.get(m, m)}**: {state}, weight {mood.weights.get(m, 0):.2f}{note}")
    if mood.agreement is not None:
        lines.append(f"- signals agree: {mood.agreement:.0%}")
    return "\n".join(lines)


TRACK_COLUMNS = ["#", "track", "artist", "genre", "why", "link"]
# fixed shares, so the long "why" wraps inside the table instead of pushing "link" out of sight at laptop widths
TRACK_WIDTHS = ["4%", "20%", "14%", "8%", "44%", "10%"]


def tracks_frame(tracks: list[Track]) -> pd.DataFrame:
    """The recommendations table; the link is a markdown link the table renders as one."""
    return pd.DataFrame([{"#": i, "track": t.name, "artist": t.artist, "genre": t.genre, "why": t.explanation,
                          "link": f"[Spotify]({t.spotify_url})" if t.spotify_url else ""}
                         for i, t in enumerate(tracks, 1)], columns=TRACK_COLUMNS)


def players_html(tracks: list[Track], show_players: bool) -> str:
    """Spotify's embedded players when the user asks for them; nothing otherwise (the table has every link)."""
    if not tracks or not show_players:
        return ""
    return "".join(f'<iframe src="{html.escape(t.embed_url)}" width="100%" height="80" frameborder="0" loading="lazy" '
                   f'allow="encrypted-media" title="{html.escape(t.name)}"></iframe>' for t in tracks[:5] if t.embed_url)


def faces_html(image: bytes | None, mood: MoodReading, max_side: int = 480) -> str:
    """The photo with a numbered box and label per face read, as an inline data URI: sent to this page only,
    never written to disk."""
    face = mood.readings.get("face")
    if image is None or face is None or not face.ok:
        return ""
    faces = mood.faces or ([{"box": face.extras["box"], "top_emotion": face.top_emotion}] if face.extras.get("box") else [])
    if not faces:
        return ""
    import base64

    import cv2

    from multimodal.image_io import downscale, to_rgb

    small, scale = downscale(to_rgb(image), max_side)
    canvas = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    for i, f in enumerate(faces, 1):
        x, y, w, h = (int(round(v * scale)) for v in f["box"])
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (60, 200, 60), 2)
        label = f"{i} {f['top_emotion']}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y - th - base - 4)  # on a filled box above the face (inside the photo at its top edge)
        cv2.rectangle(canvas, (x, top), (x + tw + 6, top + th + base + 4), (40, 120, 40), cv2.FILLED)
        cv2.putText(canvas, label, (x + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        return ""
    spread = f" · spread {face.extras['spread']:.2f}" if "spread" in face.extras else ""
    return (f'<figure><img alt="faces read" style="max-width:100%" src="data:image/jpeg;base64,'
            f'{base64.b64encode(jpeg.tobytes()).decode()}"/><figcaption>{len(faces)} face(s){spread}</figcaption></figure>')


def _mood_outputs(mood: MoodReading, tracks: list[Track], show_players: bool, image: bytes | None = None):
    label = {e: p for e, p in mood.probabilities.items()} if mood.ok else {"no usable signal": 1.0}
    heard = mood.readings["voice"].extras if "voice" in mood.readings else {}
    transcript = heard.get("transcript", "") + (f"  (not used: {heard['transcript_problem']})"
                                                if heard.get("transcript_problem") and heard.get("transcript") else "")
    choices = [(f"{t.name} — {t.artist}", i) for i, t in enumerate(tracks)]
    return (label, signal_bars(mood), va_points(mood), status_markdown(mood), transcript, tracks_frame(tracks),
            players_html(tracks, show_players), gr.update(choices=choices, value=None), faces_html(image, mood))


def _journal(write: Any, *args: Any) -> Any:
    """A journal write that never fails the request (a full disk is a warning on the page, not a lost mood)."""
    try:
        return write(*args)
    except JournalError as exc:
        gr.Warning(f"journal not written: {exc}")
        return None


def analyze(image: str | None, audio: str | None, text: str | None, strategy: str, n: float, show_players: bool,
            session: Session | None, catalog: str | None = EMBEDDED, every_face: bool = False,
            calibration: Calibration | None = None, explicit: bool = False):
    """Read every given signal, fuse, recommend. Uploaded files are read into memory, then deleted."""
    engine = get_engine()
    image_bytes, audio_bytes = UPLOADS.consume(image), UPLOADS.consume(audio)
    session = session or Session()
    mood = engine.analyze(image=image_bytes, audio=audio_bytes, text=text or None,
                          faces="all" if every_face else "largest",
                          profile=Profile(session, calibration or Calibration()))
    tracks = engine.recommend(mood, n=int(n), strategy=strategy, session=session, catalog=catalog_for(catalog),
                              allow_explicit=bool(explicit)) if mood.ok else []
    entry = _journal(JOURNAL.record_analysis, mood, strategy, text)
    outputs = list(_mood_outputs(mood, tracks, show_players, image_bytes))
    outputs[6] = hidden_note(tracks, catalog, explicit) + outputs[6]
    return (*outputs, entry, session, mood, tracks)


def correct(emotion: str | None, mood: MoodReading | None, calibration: Calibration | None, entry: int | None,
            strategy: str = "match", n: float = 10, show_players: bool = False, session: Session | None = None,
            catalog: str | None = EMBEDDED, explicit: bool = False):
    """"That's my mood": learn the emotion the user picked into their calibration (kept in this page) and show it
    at once: the mood they gave and music for it. Returns (calibration, note, mood label, track table, players,
    track choices, tracks)."""
    if emotion not in EMOTIONS or mood is None or not mood.ok:
        unchanged = gr.update()
        return (calibration, "Analyze first, then pick how you really feel.", *[unchanged] * 4, None)
    engine = get_engine()
    profile = engine.correct(mood, emotion, Profile(calibration=calibration or Calibration()))
    _journal(JOURNAL.record_correction, entry, emotion)
    given = mood.given(emotion)
    tracks = engine.recommend(given, n=int(n), strategy=strategy, session=session or Session(),
                              catalog=catalog_for(catalog), allow_explicit=bool(explicit))
    learned = "; ".join(line[0].upper() + line[1:] for line in profile.calibration.explain())
    note = (f"Thanks: you feel **{emotion}**, and the music below is for {emotion}. {learned}. Save your profile "
            "to keep what was learned.")
    choices = [(f"{t.name} — {t.artist}", i) for i, t in enumerate(tracks)]
    return (profile.calibration, note, {emotion: 1.0}, tracks_frame(tracks),
            hidden_note(tracks, catalog, explicit) + players_html(tracks, show_players),
            gr.update(choices=choices, value=None), tracks)


def show_correction(mood: MoodReading | None):
    """The "not quite?" controls, shown only once there is a mood to correct."""
    return gr.update(visible=mood is not None and mood.ok)


def recommend(strategy: str, n: float, show_players: bool, session: Session | None, mood: MoodReading | None,
              catalog: str | None = EMBEDDED, explicit: bool = False):
    """Re-rank for the last mood (after a strategy, catalog, explicit-titles or feedback change)."""
    if mood is None or not mood.ok:
        return (tracks_frame([]), "", gr.update(choices=[], value=None), session, [])
    session = session or Session()
    tracks = get_engine().recommend(mood, n=int(n), strategy=strategy, session=session, catalog=catalog_for(catalog),
                                    allow_explicit=bool(explicit))
    choices = [(f"{t.name} — {t.artist}", i) for i, t in enumerate(tracks)]
    return (tracks_frame(tracks), hidden_note(tracks, catalog, explicit) + players_html(tracks, show_players),
            gr.update(choices=choices, value=None), session, tracks)


def hidden_note(tracks: list[Track], catalog: str | None, explicit: bool) -> str:
    """A line under the list saying how many of the catalog's tracks are hidden for explicit words (if any)."""
    if not tracks or explicit:
        return ""
    try:
        hidden = int(catalog_for(catalog).explicit.sum())
    except (MoodtuneError, AttributeError):  # a remote backend's catalog is not here to count
        return ""
    return (f'<p class="hidden-note">{hidden:,} tracks with explicit words in the title or artist are hidden '
            "(tick <em>Allow explicit titles</em> to list them).</p>") if hidden else ""


def save_to_spotify(name: str | None, tracks: list[Track] | None, mood: MoodReading | None) -> str:
    """Save the list shown as a private playlist in the user's Spotify account (PKCE; a browser tab asks once)."""
    if not tracks or mood is None:
        return "Analyze first: there is no list to save yet."
    from recommend.spotify_user import SpotifyUser

    try:
        saved = SpotifyUser().save_playlist(name or "moodtune", tracks, description=f"moodtune: {mood.top_emotion}")
    except MoodtuneError as exc:
        return f"Not saved to Spotify: {exc}. Your list is still here."
    link = f": [open it]({saved.url})" if saved.url else ""
    return f"Saved to Spotify as a private playlist ({saved.added} tracks){link}."


def feedback(kind: str, choice: int | None, strategy: str, n: float, show_players: bool, session: Session | None,
             mood: MoodReading | None, tracks: list[Track] | None, catalog: str | None = EMBEDDED,
             entry: int | None = None, explicit: bool = False):
    session = session or Session()
    if choice is not None and tracks and mood is not None and 0 <= int(choice) < len(tracks):
        session = (session.like if kind == "like" else session.skip)(tracks[int(choice)], mood)
        _journal(JOURNAL.record_feedback, entry, kind, tracks[int(choice)])
    return recommend(strategy, n, show_players, session, mood, catalog, explicit)


def like(choice: int | None, strategy: str, n: float, show_players: bool, session: Session | None,
         mood: MoodReading | None, tracks: list[Track] | None, catalog: str | None = EMBEDDED, entry: int | None = None,
         explicit: bool = False):
    """More like this track (``choice``: its index in the last list)."""
    return feedback("like", choice, strategy, n, show_players, session, mood, tracks, catalog, entry, explicit)


def skip(choice: int | None, strategy: str, n: float, show_players: bool, session: Session | None,
         mood: MoodReading | None, tracks: list[Track] | None, catalog: str | None = EMBEDDED, entry: int | None = None,
         explicit: bool = False):
    """Less like this track, and never again in this session."""
    return feedback("skip", choice, strategy, n, show_players, session, mood, tracks, catalog, entry, explicit)


def save_profile(session: Session | None, calibration: Calibration | None = None) -> str:
    """Save likes/skips, the learned offsets and the corrections to moodtune's own folder, only when the user
    clicks for it."""
    profile = Profile(session or Session(), calibration or Calibration())
    if not (profile.session.liked or profile.session.skipped or profile.calibration):
        return "Nothing to save yet: like or skip a track, or correct a mood, first."
    return f"Saved to {profile.save(PROFILE_PATH)}"


def load_profile() -> tuple[Session | None, Calibration | None, str]:
    """The saved profile, if the user saved one (read when the page opens)."""
    try:
        profile = Profile.load(PROFILE_PATH, missing_ok=True)
    except Exception as exc:  # noqa: BLE001 - a broken profile must not stop the page from opening
        return None, None, f"Your saved profile could not be read ({exc}); it will be replaced when you save."
    if profile == Profile():
        return None, None, ""
    return profile.session, profile.calibration, f"Loaded your profile from {PROFILE_PATH}."


def week_view(days: int = 7) -> tuple[pd.DataFrame, str, str]:
    """The journal's valence/arousal over the last ``days`` and a mood calendar (colour: mean valence)."""
    events = JOURNAL.events(since=pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=days))
    moods = events[events["kind"] == "analysis"]
    points = moods[["time", "valence", "arousal"]]
    if len(points) > MAX_PLOT_MOODS:  # hourly means: the browser draws a dense week as fast as a light one
        points = points.set_index("time").resample("1h").mean().dropna().reset_index()
    series = points.melt(id_vars=["time"], value_vars=["valence", "arousal"], var_name="dimension")
    state = ("on" + (", keeping your words" if JOURNAL.keep_words else "") if JOURNAL.enabled else "off")
    note = f"Journal {state} · {len(moods):,} moods in the last {days} days · `{JOURNAL.path}`"
    return series, calendar_html(daily(events, days=days)), note


EMPTY_WEEK = ("<p><b>No moods here yet.</b> Turn on <i>Keep a mood journal</i> above, then analyze a mood on the "
              "first tab: each one shows here, with its day's colour.</p>")


def calendar_html(days: pd.DataFrame) -> str:
    if not days["analyses"].any():
        return EMPTY_WEEK
    cells = []
    for day, r in days.iterrows():
        if r["analyses"]:
            v = float(r["valence"])
            colour = f"rgba({int(200 - 120 * max(v, 0))}, {int(120 + 100 * max(v, 0))}, {int(200 - 80 * abs(v))}, 0.5)"
            body = f"{EMOJI.get(r['emotion'], '')} {html.escape(str(r['emotion']))}<br><small>{r['analyses']} · v {v:+.2f}</small>"
        else:
            colour, body = "transparent", "<small>–</small>"
        cells.append(f'<td style="background:{colour};padding:6px;text-align:center;border:1px solid #ccc">'
                     f"<b>{day.strftime('%a %d')}</b><br>{body}</td>")
    rows = [cells[i:i + 7] for i in range(0, len(cells), 7)]
    return "<table style='border-collapse:collapse'>" + "".join(f"<tr>{''.join(r)}</tr>" for r in rows) + "</table>"


def open_week() -> tuple[bool, bool, pd.DataFrame, str, str]:
    """The "My week" tab as it opens: the journal's switches as they are now (the CLI may have changed them), and
    the week."""
    series, calendar, note = week_view()
    return JOURNAL.enabled, JOURNAL.keep_words, week_plot(series), calendar, note


def week_plot(series: pd.DataFrame) -> Any:
    """The week's chart, hidden while it has nothing to draw (an empty chart collapses to a strip)."""
    return gr.update(value=series, visible=not series.empty)


def set_journal(on: bool, keep_words: bool) -> str:
    if on:
        JOURNAL.turn_on(keep_words=keep_words)
    else:
        JOURNAL.turn_off()
    return week_view()[2]


def export_journal() -> str:
    if not JOURNAL.path.exists():
        return "The journal is empty."
    try:  # the demo's own export file in moodtune's folder: replaced each time (never a link or a device)
        return f"Exported to `{JOURNAL.export_csv(moodtune_home() / 'journal.csv', force=True)}`"
    except JournalError as exc:
        return f"Not exported: {exc}"


def delete_journal() -> tuple[bool, pd.DataFrame, str, str]:
    try:
        note = "Journal deleted." if JOURNAL.delete() else "There was no journal."
    except JournalError as exc:  # a link or another user's file: refused, and the page says why
        note = f"Not deleted: {exc}"
    series, calendar, _ = week_view()
    return False, week_plot(series), calendar, note


def live_face(frame, smoother: EmaSmoother | None):
    """One webcam frame (about twice a second) → smoothed face reading."""
    smoother = smoother or EmaSmoother()
    if frame is None:
        return gr.update(), "waiting for the camera…", smoother
    reading = get_engine().read(image=frame)["face"]
    probs = smoother.update(reading)
    note = "face found" if reading.ok else reading.message
    return (probs or {"no face yet": 1.0}), note, smoother


def raw_on_failure(component: Any) -> Any:
    """The component, except that an upload Gradio cannot decode reaches moodtune as its path instead of failing
    the whole request: moodtune's own readers then give that signal a status and a message, and the rest counts.
    (An instance attribute, not a subclass: Gradio writes a .pyi file beside any module that subclasses one.)"""
    decode = component.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return decode(payload)
        except Exception:  # noqa: BLE001 - PIL/ffmpeg raise many types for a corrupt or mistyped upload
            return getattr(payload, "path", None)

    component.preprocess = preprocess
    return component


def private_folder(path: str) -> None:
    """Make ``path`` readable by this user only; refuse one that someone else made first."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise RuntimeError(f"{path} exists and is not this user's private folder; set GRADIO_TEMP_DIR elsewhere")


def build_demo() -> gr.Blocks:
    if OWN_UPLOAD_DIR:  # also delete what no request read (converted copies, failed requests), and all on exit
        private_folder(os.environ["GRADIO_TEMP_DIR"])
        UPLOADS.watch(os.environ["GRADIO_TEMP_DIR"])
    with gr.Blocks(title="moodtune", delete_cache=(300, 600), analytics_enabled=False) as demo:
        gr.Markdown("# moodtune\nShow your face, speak, and/or type how you feel. Any subset works.")
        gr.Markdown(PRIVACY_NOTE)
        session, mood_state, tracks_state, smoother = gr.State(None), gr.State(None), gr.State([]), gr.State(None)
        calibration, entry = gr.State(None), gr.State(None)
        with gr.Tabs():
            with gr.Tab("Mood & music"):
                with gr.Row():
                    with gr.Column():
                        # image_mode=None: the file as uploaded, no converted copy (moodtune reads RGBA, grey, palettes)
                        image = raw_on_failure(gr.Image(sources=["webcam", "upload"], type="filepath", image_mode=None,
                                                        label="Your face (snapshot or photo)", elem_id="face-input"))
                        every_face = gr.Checkbox(False, label="Read every face in the picture (a group's mood)",
                                                 info="Off: the clearest face. Nothing about any face is kept.")
                        audio = raw_on_failure(gr.Audio(sources=["microphone", "upload"], type="filepath",
                                                        label="Your voice"))
                        text = gr.Textbox(label="How do you feel?", placeholder="e.g. exhausted but hopeful", lines=2,
                                          max_length=50_000, elem_id="mood-text")
                        with gr.Row():
                            strategy = gr.Radio(["match", "uplift"], value="match", label="Music that…",
                                                info="match: fits your mood · uplift: starts there and lifts it")
                            n = gr.Slider(5, 20, value=10, step=1, label="Tracks")
                        with gr.Row():
                            catalog = gr.Dropdown(catalog_names(), value=EMBEDDED, label="Catalog",
                                                  info="import more with: moodtune catalog import FILE / library scan DIR")
                            show_players = gr.Checkbox(False, label="Show Spotify players (loads from Spotify)")
                            explicit = gr.Checkbox(False, label="Allow explicit titles", elem_id="explicit",
                                                   info="Off: titles or artists with explicit words or slurs are hidden")
                        go = gr.Button("Analyze", variant="primary", elem_id="analyze-button")
                    with gr.Column():
                        mood_label = gr.Label(num_top_classes=7, label="Your mood", elem_id="mood-label")
                        status = gr.Markdown(elem_id="signal-status")
                        faces_view = gr.HTML(elem_id="faces-view")
                        with gr.Row(visible=False) as correction_row:  # shown once there is a mood to correct
                            feel = gr.Dropdown(list(EMOTIONS), value=None, label="Not quite? How do you really feel?",
                                               elem_id="feel")
                            teach = gr.Button("That's my mood: learn it", elem_id="teach-button")
                        taught = gr.Markdown(elem_id="taught")
                        transcript = gr.Textbox(label="What you said (transcript)", interactive=False)
                with gr.Row():
                    bars = gr.BarPlot(x="signal", y="probability", color="emotion",
                                      label="Each signal and the fused mood", y_lim=[0, 1], elem_id="signal-bars")
                    plane = gr.ScatterPlot(x="valence", y="arousal", color="signal", x_lim=[-1, 1], y_lim=[-1, 1],
                                           color_map=SIGNAL_COLOURS, tooltip=["signal", "valence_read", "arousal_read"],
                                           label="Valence–arousal plane", elem_id="va-plane")
                table = gr.Dataframe(label="Recommendations", headers=TRACK_COLUMNS, wrap=True, elem_id="tracks-table",
                                     interactive=False, column_widths=TRACK_WIDTHS, max_height=2000,  # every row
                                     datatype=["number", "str", "str", "str", "str", "markdown"])
                players = gr.HTML()
                # Only with a Spotify app's client id: saving needs the user's own sign-in (PKCE), never a secret.
                with gr.Row(visible=bool(os.environ.get("SPOTIPY_CLIENT_ID"))):
                    playlist_name = gr.Textbox("moodtune", label="Playlist name", max_length=100, scale=2)
                    save_spotify = gr.Button("Save to Spotify (private playlist)", elem_id="save-spotify", scale=1)
                spotify_note = gr.Markdown(elem_id="spotify-note")
                with gr.Row():
                    pick = gr.Dropdown(choices=[], label="A track you liked or want to skip", type="value")
                    like_button = gr.Button("Like (more like this)")
                    skip_button = gr.Button("Skip (less like this)")
                with gr.Accordion("Keep my likes, skips and corrections (saved only when you click)", open=False):
                    gr.Markdown(f"Saved to `{PROFILE_PATH}` (moodtune's folder; set `MOODTUNE_HOME` to move it).")
                    save = gr.Button("Save my profile")
                    saved = gr.Markdown()
                with gr.Accordion("Live face mode (about two frames a second)", open=False):
                    cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Live camera")
                    live_label = gr.Label(num_top_classes=3, label="Face, smoothed")
                    live_note = gr.Markdown()
            with gr.Tab("My week") as week_tab:
                gr.Markdown("An opt-in diary of your moods, kept only on this computer: the time, valence, arousal and "
                            "top emotion of each analysis, which signals counted, your likes, skips and corrections. "
                            "Never a picture or a recording; your words only if you tick *keep my words*.")
                with gr.Row():
                    journal_on = gr.Checkbox(False, label="Keep a mood journal on this computer", elem_id="journal-on")
                    keep_words = gr.Checkbox(False, label="Keep my words too")
                journal_note = gr.Markdown()
                week_chart = gr.LinePlot(x="time", y="value", color="dimension", y_lim=[-1, 1], visible=False,
                                        label="Valence and arousal over the last 7 days", elem_id="week-plot")
                week_calendar = gr.HTML(elem_id="week-calendar")
                with gr.Row():
                    refresh = gr.Button("Refresh")
                    export = gr.Button("Export CSV")
                    delete = gr.Button("Delete my journal", variant="stop")
        mood_outputs = [mood_label, bars, plane, status, transcript, table, players, pick, faces_view]
        analyze_inputs = [image, audio, text, strategy, n, show_players, session, catalog, every_face, calibration,
                          explicit]
        analyze_outputs = [*mood_outputs, entry, session, mood_state, tracks_state]
        for event in (go.click(backend_errors(analyze), analyze_inputs, analyze_outputs, api_name="analyze",
                               concurrency_limit=2),
                      text.submit(backend_errors(analyze), analyze_inputs, analyze_outputs, api_visibility="private")):
            event.then(show_correction, mood_state, correction_row, api_visibility="private")
        rec_outputs = [table, players, pick, session, tracks_state]
        rec_inputs = [strategy, n, show_players, session, mood_state, catalog, explicit]
        strategy.change(backend_errors(recommend), rec_inputs, rec_outputs, api_name="recommend")
        for changed in (catalog, explicit):
            changed.change(backend_errors(recommend), rec_inputs, rec_outputs, api_visibility="private")
        feedback_inputs = [pick, strategy, n, show_players, session, mood_state, tracks_state, catalog, entry, explicit]
        save_spotify.click(save_to_spotify, [playlist_name, tracks_state, mood_state], spotify_note,
                           api_visibility="private")
        like_button.click(backend_errors(like), feedback_inputs, rec_outputs, api_name="like")
        skip_button.click(backend_errors(skip), feedback_inputs, rec_outputs, api_name="skip")
        teach.click(backend_errors(correct), [feel, mood_state, calibration, entry, strategy, n, show_players, session,
                                              catalog, explicit],
                    [calibration, taught, mood_label, table, players, pick, tracks_state], api_name="correct")
        save.click(save_profile, [session, calibration], saved, api_visibility="private")
        demo.load(load_profile, None, [session, calibration, saved], api_visibility="private")
        week_outputs = [journal_on, keep_words, week_chart, week_calendar, journal_note]
        for trigger in (week_tab.select, refresh.click):
            trigger(open_week, None, week_outputs, api_visibility="private")
        for box in (journal_on, keep_words):
            box.input(set_journal, [journal_on, keep_words], journal_note, api_visibility="private")
        export.click(export_journal, None, journal_note, api_visibility="private")
        delete.click(delete_journal, None, [journal_on, week_chart, week_calendar, journal_note],
                     api_visibility="private")
        cam.stream(backend_errors(live_face), [cam, smoother], [live_label, live_note, smoother], stream_every=0.5, time_limit=600,
                   api_visibility="private", concurrency_limit=1)
    return demo


def plot_preload() -> str:
    """A script for the page's head that loads Gradio's plotting module (vega-embed) while the page opens, where
    Gradio would load it only once a plot has data: the first plot (the week's, the mood's) then waits only for its
    data. Empty if this Gradio build does not have exactly one such module."""
    found = sorted((Path(gr.__file__).parent / "templates" / "frontend" / "assets").glob("embed-*.js"))
    if len(found) != 1:
        return ""
    return f'<script type="module">import("./assets/{found[0].name}").catch(() => {{}});</script>'


#: How the demo's page is served, by ``launch`` and by the tests alike.
PAGE_OPTIONS: dict[str, Any] = {"max_file_size": MAX_UPLOAD, "show_error": True, "footer_links": ["api"],
                                "head": plot_preload()}


def launch(host: str | None = None, port: int | None = None, inbrowser: bool = False, backend: str | None = None,
           **kw: Any) -> None:
    """Serve the demo on ``host:port``: by default ``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT`` if set, else
    127.0.0.1:7860 (this computer only). ``backend``: the URL of a running ``moodtune serve`` to send the work to
    (default: ``MOODTUNE_BACKEND``, else the models run in this process)."""
    global BACKEND
    BACKEND = backend or os.environ.get("MOODTUNE_BACKEND") or None
    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = port or int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    import signal
    import sys

    # SIGTERM (systemd, docker stop) exits through atexit, where UPLOADS deletes what it still holds
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    demo = build_demo()
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    # quiet: no "set share=True" hint; this demo never makes a public link (share=False), it says where it is itself
    print(f"moodtune demo on http://{host}:{port} (this computer only unless you chose another host)", flush=True)
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=inbrowser, quiet=True, **PAGE_OPTIONS, **kw)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The moodtune web demo.")
    parser.add_argument("--backend", help="URL of a running moodtune service (moodtune serve); default: in process")
    launch(backend=parser.parse_args().backend)
