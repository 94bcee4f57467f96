"""The ``moodtune`` command line."""

from __future__ import annotations

import functools
import json
import shlex
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

# plain (click-style) help, rich_markup_mode=None: Typer's rich help prints a type beside every flag ("--json <bool>")
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Read your mood from your face, voice and words, and get music that fits it. Runs offline.")
catalog_app = typer.Typer(no_args_is_help=True, help="Inspect and import music catalogs.", rich_markup_mode=None)
app.add_typer(catalog_app, name="catalog")
library_app = typer.Typer(no_args_is_help=True, help="Use your own music files as a catalog.", rich_markup_mode=None)
app.add_typer(library_app, name="library")
journal_app = typer.Typer(help="Your mood journal (off until you turn it on; kept only on this computer).",
                          rich_markup_mode=None)
app.add_typer(journal_app, name="journal")
console = Console()
err = Console(stderr=True)



def one_line(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command whose moodtune errors (a corrupt journal, a read-only folder...) are one red line and exit 2."""
    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)  # typer reads the wrapped signature
        def run(*args: Any, **kwargs: Any) -> Any:
            from multimodal.errors import MoodtuneError

            try:
                return command(*args, **kwargs)
            except MoodtuneError as exc:
                err.print(f"[red]{what}:[/red] {exc}", soft_wrap=True)
                raise typer.Exit(2) from exc
        return run
    return wrap


def _load_catalog(name: str | None):
    from recommend.catalog import load_catalog

    return load_catalog(name)


def mood_table(mood) -> Table:
    table = Table(title=f"Mood: {mood.top_emotion or 'unknown'}  ({mood.summary()})", title_justify="left")
    table.add_column("signal")
    table.add_column("status")
    table.add_column("top emotion")
    table.add_column("weight", justify="right")
    table.add_column("valence, arousal", justify="right")
    table.add_column("note", overflow="fold")
    for name, r in mood.readings.items():
        top = f"{r.top_emotion} {r.probabilities[r.top_emotion]:.0%}" if r.ok else "-"
        # "direct": the model's own estimate; otherwise read off its emotion probabilities
        direct = " and ".join(d for d, x in (("valence", r.valence), ("arousal", r.arousal)) if x is not None)
        va = "-" if not r.ok else "{:+.2f}, {:+.2f}".format(*r.valence_arousal()) + (
            f" ({direct} direct)" if direct else "")
        note = r.message
        if r.extras.get("transcript"):
            note = f'heard: "{r.extras["transcript"]}"' + (f"; {note}" if note else "")
        table.add_row(name, str(r.status), top, f"{mood.weights.get(name, 0):.2f}", va, note)
    return table


def faces_table(mood) -> Table:
    table = Table(title=f"Faces ({len(mood.faces)}; the group's mood is the face signal)", title_justify="left")
    for col in ("#", "box (x, y, w, h)", "top emotion", "weight in the group"):
        table.add_column(col)
    for i, f in enumerate(mood.faces, 1):
        top = f["top_emotion"]
        table.add_row(str(i), ", ".join(map(str, f["box"] or [])) or "whole image",
                      f"{top} {f['probabilities'][top]:.0%}", f"{f['weight']:.2f}")
    return table


def tracks_table(tracks, strategy: str) -> Table:
    table = Table(title=f"Recommendations ({strategy})", title_justify="left")
    for col in ("#", "track", "artist", "genre", "why"):
        table.add_column(col, overflow="fold")
    for i, t in enumerate(tracks, 1):
        table.add_row(str(i), t.name, t.artist, t.genre, t.explanation)
    return table


@app.command()
def analyze(
    text: Optional[str] = typer.Option(None, "--text", "-t", help="How you feel, in words."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="A photo with your face."),
    audio: Optional[Path] = typer.Option(None, "--audio", "-a", help="A recording of your voice (wav/flac/ogg)."),
    n: int = typer.Option(10, "--n", "-n", min=0, max=100, help="How many tracks to recommend."),
    strategy: str = typer.Option("match", "--strategy", "-s", help="match (fit the mood) or uplift (lead it up)."),
    catalog: Optional[str] = typer.Option(None, "--catalog", "-c", help="A catalog CSV or the name of an imported one."),
    fusion_method: str = typer.Option("linear", "--fusion", help="linear or poe (product of experts)."),
    spotify: str = typer.Option("off", "--spotify", help="off, enrich (links/art for catalog tracks) or search "
                                "(playable tracks from Spotify search); needs SPOTIPY_CLIENT_ID/SECRET."),
    faces: str = typer.Option("largest", "--faces", help="largest (one face: the clearest) or all (every face in the "
                              "image; their group mood is the face signal)."),
    profile_file: Optional[Path] = typer.Option(None, "--profile", help="Your profile file (JSON): its likes, skips "
                                                "and calibration are used; created or updated only with --feel."),
    feel: Optional[str] = typer.Option(None, "--feel", help="What you really feel (one of the seven emotions): "
                                       "learned into --profile, so the next readings fit you better."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object for machines."),
    explicit: bool = typer.Option(False, "--explicit", help="Also list tracks whose title or artist has explicit "
                                  "words or slurs (hidden by default)."),
    export: Optional[Path] = typer.Option(None, "--export", dir_okay=False, help="Also write the list to this file: "
                                          "an .m3u/.m3u8 playlist (local files or Spotify links) or a .csv table."),
    force: bool = typer.Option(False, "--force", help="With --export: replace an existing file."),
    save_playlist: Optional[str] = typer.Option(None, "--save-playlist", metavar="NAME", help="Also save the list "
                                                "as a private playlist NAME in your Spotify account (needs "
                                                "SPOTIPY_CLIENT_ID; signs you in once: see 'moodtune spotify')."),
) -> None:
    """Fuse the given signals into one mood and recommend music for it."""
    from recommend import STRATEGIES

    from fusion.engine import MoodEngine
    from fusion.late import METHODS
    from fusion.profile import Profile
    from multimodal.face import FACE_MODES
    from multimodal.labels import EMOTIONS

    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"choose one of {', '.join(STRATEGIES)}", param_hint="--strategy")
    if fusion_method not in METHODS:
        raise typer.BadParameter(f"choose one of {', '.join(METHODS)}", param_hint="--fusion")
    if spotify not in ("off", "enrich", "search"):
        raise typer.BadParameter("choose one of off, enrich, search", param_hint="--spotify")
    if faces not in FACE_MODES:
        raise typer.BadParameter(f"choose one of {', '.join(FACE_MODES)}", param_hint="--faces")
    if feel is not None and feel not in EMOTIONS:
        raise typer.BadParameter(f"choose one of {', '.join(EMOTIONS)}", param_hint="--feel")
    if feel is not None and profile_file is None:
        raise typer.BadParameter("--feel needs --profile FILE: the file where what you teach moodtune is kept")
    if text is None and image is None and audio is None:
        raise typer.BadParameter("give at least one of --text, --image, --audio")
    check_keep(export, force, save_playlist)
    from interfaces.journal import Journal
    from multimodal.errors import MoodtuneError

    try:
        cat = _load_catalog(catalog)
        profile = Profile.load(profile_file, missing_ok=True) if profile_file else None
    except MoodtuneError as exc:
        err.print(f"[red]{'catalog' if profile_file is None else 'catalog or profile'}:[/red] {exc}")
        raise typer.Exit(2) from exc
    engine = MoodEngine(catalog=cat, fusion=fusion_method)
    with console.status("reading your mood…", spinner="dots") if not as_json else nullcontext():
        mood = engine.analyze(image=str(image) if image else None, audio=str(audio) if audio else None, text=text,
                              faces=faces, profile=profile)
        shown = mood.given(feel) if feel is not None and mood.ok else mood
        tracks = engine.recommend(shown, n=n, strategy=strategy, session=profile.session if profile else None,
                                  allow_explicit=explicit) if shown.ok else []
        note = ""
        if tracks and spotify != "off":
            from recommend import target_from_va
            from recommend.spotify import SpotifyClient, with_spotify

            tracks, note = with_spotify(tracks, target_from_va(shown.valence, shown.arousal), SpotifyClient(),
                                        source="spotify" if spotify == "search" else "catalog", n=n)
    journal_problem = saved_problem = None
    try:
        with Journal() as journal:
            entry = journal.record_analysis(mood, strategy, words=text)
            if feel is not None and mood.ok:
                journal.record_correction(entry, feel)
    except MoodtuneError as exc:  # the mood is still shown; the journal's trouble is one line after it
        journal_problem = exc
    learned: list[str] = []
    if feel is not None and profile is not None and profile_file is not None and mood.ok:
        try:
            profile = engine.correct(mood, feel, profile)
            profile.save(profile_file)
            learned = profile.calibration.explain()
        except MoodtuneError as exc:
            saved_problem = exc
    dropped = mood.extras.get("calibration_note", "")
    if as_json:
        print(json.dumps({"mood": mood.to_dict(), "given": shown.to_dict() if shown is not mood else None,
                          "tracks": [t.to_dict() for t in tracks], "spotify": note, "learned": learned,
                          "dropped": dropped}, indent=1, default=str))
    else:
        console.print(mood_table(mood))
        if mood.faces:
            console.print(faces_table(mood))
        if dropped:
            console.print(f"profile: {dropped}")
        if shown is not mood:
            read = f"{mood.top_emotion} {mood.probabilities.get(mood.top_emotion or '', 0.0):.0%}"
            console.print(f"Your mood, as you gave it: [bold]{feel}[/bold] (moodtune read {read}); music for {feel}:")
        if tracks:
            console.print(tracks_table(tracks, strategy if shown is mood else f"{strategy}, for {feel}"))
        if note:
            console.print(f"spotify: {note}")
        if feel is not None and saved_problem is None:
            console.print(f"learned into {profile_file}: " + ("; ".join(learned) if learned else "nothing (no signal)"))
    hidden = 0 if explicit or not tracks else int(cat.explicit.sum())
    if hidden and not as_json:
        console.print(f"{hidden:,} tracks of the catalog have explicit words in their title or artist and are hidden "
                      "(--explicit lists them)")
    kept = not (export or save_playlist) or keep_list(tracks, export, force, save_playlist, mood, quiet=as_json)
    if journal_problem is not None:
        err.print(f"[yellow]warning: not written to the journal:[/yellow] {journal_problem}", soft_wrap=True)
    if saved_problem is not None:
        err.print(f"[red]not learned:[/red] {saved_problem}", soft_wrap=True)
    if saved_problem is not None or not kept:
        raise typer.Exit(2)
    if not mood.ok:
        raise typer.Exit(1)


def check_keep(export: Path | None, force: bool, playlist: str | None) -> None:
    """Refuse --export and --save-playlist that cannot work before any model loads."""
    from multimodal.errors import MoodtuneError

    if export is not None:
        from recommend.playlists import check_target

        try:
            check_target(export, force)
        except MoodtuneError as exc:
            raise typer.BadParameter(str(exc), param_hint="--export") from None
    if playlist is not None:
        from recommend.spotify_user import SpotifyUser  # spotipy (and redis) take 0.34 s to import: only when asked

        user = SpotifyUser()
        try:
            if not user.available:
                raise typer.BadParameter("needs SPOTIPY_CLIENT_ID (your Spotify app's client id)")
            if not user.signed_in():
                raise typer.BadParameter("not signed in: run 'moodtune spotify login' once first")
        except MoodtuneError as exc:
            raise typer.BadParameter(str(exc), param_hint="--save-playlist") from None
        except typer.BadParameter as exc:
            exc.param_hint = "--save-playlist"
            raise


def keep_list(tracks, export: Path | None, force: bool, playlist: str | None, mood, quiet: bool = False) -> bool:
    """Write the list to a file and/or save it to Spotify; one line each for what happened. False if one failed
    (the list itself was printed already, so nothing is lost)."""
    from multimodal.errors import MoodtuneError
    from recommend.playlists import export_playlist
    from recommend.spotify_user import SpotifyUser

    say = err.print if quiet else console.print
    if not tracks:
        err.print("[red]no tracks to keep:[/red] nothing was exported or saved")
        return False
    ok = True
    if export is not None:
        try:
            say(f"list written to {export_playlist(tracks, export, force=force)}")
        except MoodtuneError as exc:
            err.print(f"[red]not written:[/red] {exc}")
            ok = False
    if playlist is not None:
        try:
            saved = SpotifyUser().save_playlist(playlist, tracks, description=f"moodtune: {mood.top_emotion} "
                                                f"(valence {mood.valence:+.2f}, arousal {mood.arousal:+.2f})")
            say(f"saved to Spotify as a private playlist ({saved.added} tracks){': ' + saved.url if saved.url else ''}")
        except MoodtuneError as exc:
            err.print(f"[red]not saved to Spotify:[/red] {exc}")
            ok = False
    return ok


spotify_app = typer.Typer(no_args_is_help=True, help="Your Spotify account, for --save-playlist (private playlists "
                          "only; the sign-in is kept in $MOODTUNE_HOME until you log out).")
app.add_typer(spotify_app, name="spotify")


@spotify_app.command("login")
def spotify_login() -> None:
    """Sign in to Spotify once (a browser tab asks you); needs SPOTIPY_CLIENT_ID and the redirect URI
    http://127.0.0.1:8888/callback (or MOODTUNE_SPOTIFY_PORT) registered for your app."""
    from multimodal.errors import MoodtuneError
    from recommend.spotify_user import SpotifyUser, token_path

    try:
        SpotifyUser().login(say=console.print)
    except MoodtuneError as exc:
        err.print(f"[red]not signed in:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"signed in; the token is kept in {token_path()} until 'moodtune spotify logout'")


@spotify_app.command("logout")
def spotify_logout() -> None:
    """Forget your Spotify sign-in (deletes the token moodtune kept)."""
    from recommend.spotify_user import logout, token_path

    try:
        gone = logout()
    except OSError as exc:
        err.print(f"[red]could not remove {token_path()}:[/red] {exc.strerror or exc}")
        raise typer.Exit(2) from None
    console.print("signed out; the token is deleted" if gone else "you were not signed in")


@catalog_app.command("import")
@one_line("cannot import")
def catalog_import(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A CSV with audio features."),
                   name: Optional[str] = typer.Option(None, help="Name to use with --catalog (default: file stem)."),
                   force: bool = typer.Option(False, "--force", help="Replace an imported catalog of the same name.")) -> None:
    """Check a CSV (TidyTuesday, Kaggle Tracks, Kaggle 1921-2020 schemas) and keep a clean copy for --catalog."""
    from recommend import Catalog
    from recommend.catalog import check_catalog_name, save_user_catalog

    name = check_catalog_name(name or file.stem)  # before the file is read
    cat = Catalog.from_csv(file)
    save_user_catalog(cat, name, force=force)
    console.print(f"imported {cat.report} → use it with --catalog {shlex.quote(name)}")


@catalog_app.command("info")
@one_line("catalog")
def catalog_info(catalog: Optional[str] = typer.Argument(None, help="CSV path or imported name (default: embedded).")) -> None:
    """Show a catalog's size, genres and feature ranges."""
    cat = _load_catalog(catalog)
    console.print(f"{cat!r}: {cat.report}")
    console.print(cat.frame[["valence", "energy", "danceability", "tempo", "acousticness"]].describe().round(3).to_string())
    console.print("genres: " + ", ".join(f"{g or 'no genre'} ({c:,})"
                                         for g, c in cat.frame["genre"].value_counts().head(12).items()))


@library_app.command("scan")
@one_line("cannot scan")
def library_scan(folder: Path = typer.Argument(..., exists=True, file_okay=False, help="A folder of music files."),
                 name: str = typer.Option("library", help="Name to use with --catalog."),
                 force: bool = typer.Option(False, "--force", help="Replace a catalog of the same name.")) -> None:
    """Estimate energy/valence/tempo/mode of your own files (librosa) and keep them as a catalog."""
    from recommend import CatalogError
    from recommend.catalog import USER_CATALOG_DIR, check_catalog_name, save_user_catalog
    from recommend.library import scan

    check_catalog_name(name)
    if (USER_CATALOG_DIR / f"{name}.csv").exists() and not force:
        raise CatalogError(f"a catalog named {name!r} exists already; choose another name or pass --force")
    cat, failed = scan(folder)
    save_user_catalog(cat, name, force=force)
    console.print(f"{len(cat):,} tracks scanned (features are estimates) → use them with --catalog {shlex.quote(name)}")
    for f in failed:
        err.print(f"[yellow]skipped[/yellow] {f}")


@journal_app.callback(invoke_without_command=True)
@one_line("journal")
def journal_week(ctx: typer.Context, days: int = typer.Option(7, "--days", min=1, max=366,
                                                                help="How many days to show.")) -> None:
    """Your last days, one row per day (the default command)."""
    if ctx.invoked_subcommand is not None:
        return
    from interfaces.journal import Journal

    with Journal() as journal:
        if not journal.path.exists():
            console.print("The journal is off and empty. Turn it on with: moodtune journal on [--keep-words]")
            return
        week = journal.days(days)
        state = "on" + (", keeping your words" if journal.keep_words else "") if journal.enabled else "off"
    table = Table(title=f"Your last {days} days (journal {state}; {journal.path})", title_justify="left")
    for col in ("day", "moods", "mostly", "valence", "arousal", "likes", "skips", "corrections"):
        table.add_column(col, justify="left" if col in ("day", "mostly") else "right")
    for day, r in week.iterrows():
        seen = r["analyses"] > 0
        table.add_row(day.strftime("%a %d %b"), str(r["analyses"]), r["emotion"] if seen else "-",
                      f"{r['valence']:+.2f}" if seen else "-", f"{r['arousal']:+.2f}" if seen else "-",
                      str(r["likes"]), str(r["skips"]), str(r["corrections"]))
    console.print(table)


@journal_app.command("on")
@one_line("journal")
def journal_on(keep_words: bool = typer.Option(False, "--keep-words", help="Also keep what you type.")) -> None:
    """Start keeping a journal of your moods on this computer."""
    from interfaces.journal import Journal

    with Journal() as journal:
        journal.turn_on(keep_words=keep_words)
    console.print(f"journal on ({'with' if keep_words else 'without'} your words): {journal.path}")


@journal_app.command("off")
@one_line("journal")
def journal_off() -> None:
    """Stop keeping the journal (what is in it stays until `moodtune journal delete`)."""
    from interfaces.journal import Journal

    with Journal() as journal:
        journal.turn_off()
    console.print("journal off")


@journal_app.command("export")
@one_line("journal not exported")
def journal_export(file: Path = typer.Argument(..., dir_okay=False, help="The CSV file to write."),
                   force: bool = typer.Option(False, "--force", help="Replace FILE if it exists (only a regular "
                                                                     "file of your own).")) -> None:
    """Every entry of the journal as CSV (never over an existing file without --force)."""
    from interfaces.journal import Journal

    with Journal() as journal:
        console.print(f"{len(journal.events()):,} entries → {journal.export_csv(file, force=force)}")


@journal_app.command("delete")
@one_line("journal")
def journal_delete(yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete the whole journal, now (it is also turned off)."""
    from interfaces.journal import Journal

    if not yes and not typer.confirm("Delete your whole mood journal?"):
        console.print("kept your journal")  # a "no" is an answer, not an error: exit 0
        return
    console.print("journal deleted" if Journal().delete() else "there was no journal")


@app.command()
def live(camera: Optional[int] = typer.Option(None, "--camera", help="Webcam index (e.g. 0)."),
         mic: bool = typer.Option(False, "--mic", help="Listen to the default microphone in rolling 4-s windows."),
         frames: Optional[int] = typer.Option(None, help="Stop after this many frames (default: until q/Ctrl-C).")) -> None:
    """Live mood from the webcam and/or microphone (nothing is recorded to disk)."""
    import threading

    from multimodal import FaceEncoder, VoiceEncoder
    from multimodal.live import camera_loop, microphone_loop, open_camera, open_microphone

    if camera is None and not mic:
        raise typer.BadParameter("give --camera N and/or --mic")
    stop = threading.Event()
    mic_thread = None
    try:
        if mic:
            stream, blocks = open_microphone()
            voice = VoiceEncoder()
            mic_thread = threading.Thread(target=lambda: list(microphone_loop(voice, stream, blocks, stop=stop)),
                                          daemon=True)
            mic_thread.start()
        if camera is not None:
            for _ in camera_loop(FaceEncoder(), open_camera(camera), max_frames=frames):
                pass
        elif mic_thread is not None:
            mic_thread.join()
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()


@app.command()
def evaluate(what: str = typer.Argument("models", help="models (every signal and the fusion study) or music (does "
                                        "the list carry the asked mood? listener-rated songs, artist folds)"),
             data: Optional[Path] = typer.Option(None, "--data", help="The data folder (see its README; default: "
                                                 "$MOODTUNE_DATA or ../shared/data beside the checkout)."),
             out: Path = typer.Option(Path("moodtune-evaluation"), "--out",
                                      help="Folder for <signal>/metrics.json, the model cards and fusion_metrics.json "
                                           "(from a checkout, --out models updates the repository's own)."),
             write: bool = typer.Option(True, help="Write the results to --out.")) -> None:
    """Accuracy, macro-F1, recall, confusion, calibration per signal, and the fusion study on triplets; or, with
    'music', the music-mood check (r per dimension, leakage, corners, uplift: recommend/MUSIC_CARD.md)."""
    from multimodal.datasets import default_data_dir

    if what not in ("models", "music"):
        raise typer.BadParameter("choose models or music", param_hint="WHAT")
    data = data or default_data_dir()
    if what == "music":
        if data is None or not (data / "music" / "music_mood_dev.csv").exists():
            err.print(f"[red]no music_mood_dev.csv under {data}/music[/red] (pass --data or set MOODTUNE_DATA)")
            raise typer.Exit(2)
        from models.music.mood_study import main as music_study

        if write:
            (out / "music").mkdir(parents=True, exist_ok=True)
        music_study(["--data", str(data), *(["--write", str(out / "music" / "metrics.json")] if write else [])])
        return
    from models.evaluation import run

    if data is None or not (data / "face").exists():
        err.print(f"[red]no data at {data}[/red] (expected the folder described in ../shared/data/README.md; "
                  "pass --data or set MOODTUNE_DATA)")
        raise typer.Exit(2)
    report = run(data, out=out if write else None)
    if write:
        console.print(f"results written to {out.resolve()}")
    table = Table(title="Per signal (validation splits)", title_justify="left")
    for col in ("signal / split", "n", "accuracy", "macro-F1", "bal. acc.", "ECE T=1", "ECE calibrated"):
        table.add_column(col)
    rows = [("face: FER2013 val", report["face"]),
            *((f"voice: {c} speakers left out", {**report["voice"]["clean"][c], **report["voice"]["calibration"][c]})
              for c in ("ravdess", "emodb"))] + [
        (f"text: {name}", r) for name, r in report["text"].items() if "confusion_matrix" in r]
    for name, r in rows:
        table.add_row(name, str(r["n"]), f"{r['accuracy']:.3f}", f"{r.get('macro_f1_multilabel', r['macro_f1']):.3f}",
                      f"{r['balanced_accuracy']:.3f}", f"{r['ece_before_temperature']:.3f}",
                      f"{r['ece_after_temperature']:.3f}")
    console.print(table)
    fusion = report["fusion"]
    t2 = Table(title=f"Fusion on {fusion['n_test']} same-label triplets ({', '.join(fusion['emotions'])})",
               title_justify="left")
    t2.add_column("condition")
    methods = list(fusion["all_signals"])
    for m in methods:
        t2.add_column(m)
    t2.add_row("single signals", ", ".join(f"{k} {v:.3f}" for k, v in fusion["single_signal"].items()),
               *[""] * (len(methods) - 1))
    for key in ["all_signals"] + [k for k in fusion if k.startswith(("without_", "corrupted_"))]:
        t2.add_row(key.replace("_", " "), *[f"{fusion[key][m]:.3f}" for m in methods])
    console.print(t2)
    study = fusion["corrections"]
    t3 = Table(title=f"Corrections: {study['users']} simulated users each, {study['corrections']} corrections, then "
                     f"{study['horizon']} analyses ({study['protocol']})", title_justify="left")
    for col in ("user", "fused accuracy without", "with the calibration", "gain (points)", "worst user"):
        t3.add_column(col)
    for kind, r in study.items():
        if isinstance(r, dict):
            t3.add_row(kind, f"{r['accuracy_without']:.3f}", f"{r['accuracy_with']:.3f}", f"{r['gain_points']:+.1f}",
                       f"{r['worst_user_gain_points']:+.1f}")
    console.print(t3)


MAX_CONNECTIONS = 512  # open connections one `moodtune serve` process holds


def _bound_socket(host: str, port: int):
    """A listening socket on ``host:port``, before any model loads (a taken port fails at once, in one line)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:  # taken, not an address of this computer, a privileged port...
        sock.close()
        err.print(f"[red]cannot listen on {host}:{port}:[/red] {exc.strerror or exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    sock.listen(2048)
    sock.set_inheritable(True)  # --workers: uvicorn's worker processes share it
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to bind (default: this computer only; elsewhere, set "
                                                     "MOODTUNE_API_KEY and put TLS in a reverse proxy)."),
          port: int = typer.Option(8000, help="TCP port (1-65535)."),
          workers: int = typer.Option(1, "--workers", min=1, max=64, help="Processes (uvicorn's word); each loads "
                                      "and warms its own models and runs them on 2 pool threads × 1 math thread."),
          ray: bool = typer.Option(False, "--ray", help="Serve on Ray Serve (pip install 'moodtune[serve]'): "
                                   "--replicas copies of the engine, on this machine or a Ray cluster."),
          replicas: str = typer.Option("2", "--replicas", help="With --ray: how many replicas (e.g. 2), or a range "
                                       "to autoscale within (e.g. 1-4)."),
          threads: int = typer.Option(1, "--threads", min=1, help="With --ray: CPUs (and math threads) per replica."),
          ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --ray: the cluster to join "
                                                    "(default: RAY_ADDRESS, else a new private cluster on 127.0.0.1; 'auto': the one running here).")) -> None:
    """Serve the HTTP API (FastAPI): POST /v1/analyze, /v1/recommend, /v1/feedback, /v1/correct; GET /healthz,
    /v1/catalogs; /docs."""
    import os

    if not 1 <= port <= 65535:  # before anything loads (the OS would take 70000 modulo 65536)
        err.print(f"[red]--port:[/red] {port} is not a TCP port (1-65535)", soft_wrap=True)
        raise typer.Exit(2)
    if host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get("MOODTUNE_API_KEY"):
        err.print("[yellow]warning:[/yellow] serving beyond this computer without MOODTUNE_API_KEY: anyone who can "
                  "reach the port can use it")
    if ray:
        from interfaces.ray_serve import RayUnavailable, ReplicasError, run

        _bound_socket(host, port).close()  # a taken port is one line now, not after Ray has started
        try:
            run(host=host, port=port, replicas=replicas, threads=threads, address=ray_address,
                on_ready=lambda: print(f"moodtune serving on {_url(host, port)} (Ray Serve)", flush=True))
        except (RayUnavailable, ReplicasError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        return
    import uvicorn

    sock = _bound_socket(host, port)  # bind first: /healthz answers 503 "loading" while the models warm
    print(f"moodtune serving on {_url(host, *sock.getsockname()[1:2])} (loading models…)", flush=True)
    # limit_concurrency: beyond that many open connections uvicorn answers 503 instead of holding them
    from interfaces.protocol import HeaderDeadlineProtocol

    config = uvicorn.Config("interfaces.http:serving_app", factory=True, workers=workers, log_level="warning",
                            timeout_graceful_shutdown=10, limit_concurrency=MAX_CONNECTIONS, http=HeaderDeadlineProtocol)
    server = uvicorn.Server(config)
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])


@app.command()
def demo(host: str = typer.Option("127.0.0.1", envvar="GRADIO_SERVER_NAME",
                                  help="Address to bind (default: this computer only)."),
         port: int = typer.Option(7860, envvar="GRADIO_SERVER_PORT"), open_browser: bool = typer.Option(False, "--open"),
         backend: Optional[str] = typer.Option(None, "--backend", envvar="MOODTUNE_BACKEND",
                                               help="URL of a running `moodtune serve` (one or many replicas) to "
                                                    "send the work to; default: the models run in the demo.")) -> None:
    """Start the web demo (Gradio) on this computer."""
    import app_gradio

    app_gradio.launch(host=host, port=port, inbrowser=open_browser, backend=backend)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context, signal: str = typer.Argument(..., metavar="face|text|voice",
                                                          help="The signal whose model to train.")) -> None:
    """Run a training recipe (models/<signal>/train_*.py); resumable where the recipe says so. Options after the
    signal go to the recipe: python -m models.face.train_face --help lists them."""
    recipes = {"face": "models.face.train_face", "text": "models.text.train_text", "voice": "models.voice.train_voice"}
    if signal not in recipes:
        raise typer.BadParameter(f"choose one of {', '.join(recipes)}")
    import importlib

    importlib.import_module(recipes[signal]).main(list(ctx.args))


def main() -> None:  # console entry point
    app()


if __name__ == "__main__":
    main()
