"""The ``moodtune`` command line."""

from __future__ import annotations

import json
import shlex
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

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
        # with --feel the music is for the mood the user gave, in this run: the correction is seen at once
        shown = mood.given(feel) if feel is not None and mood.ok else mood
        tracks = engine.recommend(shown, n=n, strategy=strategy,
                                  session=profile.session if profile else None) if shown.ok else []
        note = ""
        if tracks and spotify != "off":
            from recommend import target_from_va
            from recommend.spotify import SpotifyClient, with_spotify

            tracks, note = with_spotify(tracks, target_from_va(shown.valence, shown.arousal), SpotifyClient(),
                                        source="spotify" if spotify == "search" else "catalog", n=n)
    learned: list[str] = []
    try:
        with Journal() as journal:
            entry = journal.record_analysis(mood, strategy, words=text)
            if feel is not None and mood.ok:
                journal.record_correction(entry, feel)
        if feel is not None and profile is not None and profile_file is not None and mood.ok:
            profile = engine.correct(mood, feel, profile)
            profile.save(profile_file)
            learned = profile.calibration.explain()
    except MoodtuneError as exc:
        err.print(f"[red]not saved:[/red] {exc}")
        raise typer.Exit(2) from exc
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
        if feel is not None:
            console.print(f"learned into {profile_file}: " + ("; ".join(learned) if learned else "nothing (no signal)"))
    if not mood.ok:
        raise typer.Exit(1)


@catalog_app.command("import")
def catalog_import(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A CSV with audio features."),
                   name: Optional[str] = typer.Option(None, help="Name to use with --catalog (default: file stem)."),
                   force: bool = typer.Option(False, "--force", help="Replace an imported catalog of the same name.")) -> None:
    """Check a CSV (TidyTuesday, Kaggle Tracks, Kaggle 1921-2020 schemas) and keep a clean copy for --catalog."""
    from recommend import Catalog, CatalogError
    from recommend.catalog import check_catalog_name, save_user_catalog

    try:
        name = check_catalog_name(name or file.stem)  # before the file is read
        cat = Catalog.from_csv(file)
        save_user_catalog(cat, name, force=force)
    except CatalogError as exc:
        err.print(f"[red]cannot import:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"imported {cat.report} → use it with --catalog {shlex.quote(name)}")


@catalog_app.command("info")
def catalog_info(catalog: Optional[str] = typer.Argument(None, help="CSV path or imported name (default: embedded).")) -> None:
    """Show a catalog's size, genres and feature ranges."""
    cat = _load_catalog(catalog)
    console.print(f"{cat!r}: {cat.report}")
    console.print(cat.frame[["valence", "energy", "danceability", "tempo", "acousticness"]].describe().round(3).to_string())
    console.print("genres: " + ", ".join(f"{g} ({c})" for g, c in cat.frame["genre"].value_counts().head(12).items()))


@library_app.command("scan")
def library_scan(folder: Path = typer.Argument(..., exists=True, file_okay=False, help="A folder of music files."),
                 name: str = typer.Option("library", help="Name to use with --catalog."),
                 force: bool = typer.Option(False, "--force", help="Replace a catalog of the same name.")) -> None:
    """Estimate energy/valence/tempo/mode of your own files (librosa) and keep them as a catalog."""
    from recommend import CatalogError
    from recommend.catalog import USER_CATALOG_DIR, check_catalog_name, save_user_catalog
    from recommend.library import scan

    try:
        check_catalog_name(name)
        if (USER_CATALOG_DIR / f"{name}.csv").exists() and not force:
            raise CatalogError(f"a catalog named {name!r} exists already; choose another name or pass --force")
        cat, failed = scan(folder)
        save_user_catalog(cat, name, force=force)
    except CatalogError as exc:
        err.print(f"[red]cannot scan:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"{len(cat):,} tracks scanned (features are estimates) → use them with --catalog {shlex.quote(name)}")
    for f in failed:
        err.print(f"[yellow]skipped[/yellow] {f}")


@journal_app.callback(invoke_without_command=True)
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
def journal_on(keep_words: bool = typer.Option(False, "--keep-words", help="Also keep what you type.")) -> None:
    """Start keeping a journal of your moods on this computer."""
    from interfaces.journal import Journal

    with Journal() as journal:
        journal.turn_on(keep_words=keep_words)
    console.print(f"journal on ({'with' if keep_words else 'without'} your words): {journal.path}")


@journal_app.command("off")
def journal_off() -> None:
    """Stop keeping the journal (what is in it stays until `moodtune journal delete`)."""
    from interfaces.journal import Journal

    with Journal() as journal:
        journal.turn_off()
    console.print("journal off")


@journal_app.command("export")
def journal_export(file: Path = typer.Argument(..., dir_okay=False, help="The CSV file to write.")) -> None:
    """Every entry of the journal as CSV."""
    from interfaces.journal import Journal

    with Journal() as journal:
        console.print(f"{len(journal.events()):,} entries → {journal.export_csv(file)}")


@journal_app.command("delete")
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
def evaluate(data: Optional[Path] = typer.Option(None, "--data", help="The data folder (see its README; default: "
                                                 "$MOODTUNE_DATA or ../shared/data beside the checkout)."),
             out: Path = typer.Option(Path("moodtune-evaluation"), "--out",
                                      help="Folder for <signal>/metrics.json, the model cards and fusion_metrics.json "
                                           "(from a checkout, --out models updates the repository's own)."),
             write: bool = typer.Option(True, help="Write the results to --out.")) -> None:
    """Accuracy, macro-F1, recall, confusion, calibration per signal, and the fusion study on triplets."""
    from models.evaluation import run
    from multimodal.datasets import default_data_dir

    data = data or default_data_dir()
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


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Address to bind (default: this computer only; elsewhere, set "
                                                     "MOODTUNE_API_KEY and put TLS in a reverse proxy)."),
          port: int = typer.Option(8000),
          workers: int = typer.Option(1, "--workers", help="Processes (uvicorn's word); each loads and warms its own "
                                                          "models and runs them on 2 pool threads × 1 math thread."),
          ray: bool = typer.Option(False, "--ray", help="Serve on Ray Serve (pip install 'moodtune[serve]'): "
                                   "--replicas copies of the engine, on this machine or a Ray cluster."),
          replicas: str = typer.Option("2", "--replicas", help="With --ray: how many replicas (e.g. 2), or a range "
                                       "to autoscale within (e.g. 1-4)."),
          threads: int = typer.Option(1, "--threads", min=1, help="With --ray: CPUs (and math threads) per replica."),
          ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --ray: the cluster to join "
                                                    "(default: RAY_ADDRESS, else a running local one, else a new one).")) -> None:
    """Serve the HTTP API (FastAPI): POST /v1/analyze, /v1/recommend, /v1/feedback, /v1/correct; GET /healthz,
    /v1/catalogs; /docs."""
    import os

    if host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get("MOODTUNE_API_KEY"):
        err.print("[yellow]warning:[/yellow] serving beyond this computer without MOODTUNE_API_KEY: anyone who can "
                  "reach the port can use it")
    if ray:
        from interfaces.ray_serve import RayUnavailable, ReplicasError, run

        try:
            run(host=host, port=port, replicas=replicas, threads=threads, address=ray_address)
        except (RayUnavailable, ReplicasError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        return
    import uvicorn

    uvicorn.run("interfaces.http:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning")


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
