"""The mood journal: opt-in, append-only, crash-safe, and gone with one command."""

import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from interfaces.journal import Journal, JournalError


def mood(emotion="happy", valence=0.6, arousal=0.3):
    return SimpleNamespace(ok=True, top_emotion=emotion, valence=valence, arousal=arousal, confidence=0.8,
                           weights={"text": 0.7, "face": 0.3, "voice": 0.0})


def test_nothing_is_recorded_or_created_until_the_user_turns_it_on(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    assert journal.record_analysis(mood()) is None and not journal.path.exists()
    assert journal.events().empty and journal.days()["analyses"].sum() == 0
    journal.turn_on()
    first = journal.record_analysis(mood(), "match", words="I got the job")
    journal.record_feedback(first, "like", SimpleNamespace(id="t1", name="Song", artist="Band"))
    journal.record_correction(first, "surprise")
    events = journal.events()
    assert list(events["kind"]) == ["analysis", "like", "correction"]
    assert events["words"].isna().all()  # words only with "keep my words"
    assert events.iloc[0]["signals"] == "text,face" and list(events["analysis_id"][1:]) == [first, first]
    assert (journal.path.stat().st_mode & 0o777) == 0o600
    journal.turn_off()
    assert journal.record_analysis(mood()) is None and len(journal.events()) == 3


def test_words_are_kept_only_when_asked_and_rows_cannot_be_changed(tmp_path):
    with Journal(tmp_path / "j.sqlite3").turn_on(keep_words=True) as journal:
        journal.record_analysis(mood(), words="exhausted but hopeful")
        assert journal.events()["words"].tolist() == ["exhausted but hopeful"]
    conn = sqlite3.connect(tmp_path / "j.sqlite3")
    for sql in ("UPDATE events SET emotion = 'sad'", "DELETE FROM events"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    conn.close()


def test_week_view_export_and_delete(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3").turn_on()
    now = datetime.now(timezone.utc)
    for days_ago, emotion, valence in ((0, "happy", 0.8), (0, "happy", 0.6), (2, "sad", -0.7), (30, "angry", -0.6)):
        journal.record_analysis(mood(emotion, valence), time=(now - timedelta(days=days_ago)).isoformat())
    week = journal.days(7)
    assert len(week) == 7 and week["analyses"].sum() == 3  # a month ago is outside the week
    assert week.iloc[-1]["emotion"] == "happy" and week.iloc[-1]["valence"] == pytest.approx(0.7)
    csv = journal.export_csv(tmp_path / "journal.csv")
    assert csv.read_text().count("\n") == 5
    assert journal.delete() and not journal.path.exists() and not list(tmp_path.glob("j.sqlite3*"))
    assert not journal.enabled and journal.events().empty


def test_a_file_that_is_not_a_journal_is_a_clear_error(tmp_path):
    path = tmp_path / "j.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(JournalError, match="not a moodtune journal"):
        Journal(path).enabled


def test_a_crash_mid_write_loses_at_most_the_entry_being_written(tmp_path):
    """A writer is killed (SIGKILL) while appending as fast as it can; every entry it reported is there."""
    path = tmp_path / "j.sqlite3"
    Journal(path).turn_on().close()
    script = textwrap.dedent(f"""
        import sys
        from types import SimpleNamespace
        from interfaces.journal import Journal
        j = Journal({str(path)!r})
        m = SimpleNamespace(ok=True, top_emotion="sad", valence=-0.5, arousal=0.1, confidence=0.5, weights={{"text": 1}})
        while True:
            print(j.record_analysis(m), flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acknowledged = 0
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 150:
            break
    proc.kill()
    proc.wait()
    events = Journal(path).events()
    assert len(events) >= acknowledged and events["id"].is_unique
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_tied_day_names_both_moods_not_the_first_listed(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3").turn_on()
    journal.record_analysis(mood("happy", 0.8))
    journal.record_analysis(mood("sad", -0.7))
    assert journal.days(1).iloc[-1]["emotion"] == "happy / sad"  # before: "happy" (whichever came first)
    journal.record_analysis(mood("sad", -0.5))
    assert journal.days(1).iloc[-1]["emotion"] == "sad"


# -- hostile use (issue 35) ---------------------------------------------------------------------------------------

def test_a_journal_name_that_is_a_link_is_refused_and_delete_leaves_the_words_alone_but_says_so(tmp_path):
    target = tmp_path / "elsewhere.sqlite3"
    Journal(target).turn_on(keep_words=True).record_analysis(mood(), words="my secret words")
    link = tmp_path / "journal.sqlite3"
    link.symlink_to(target)
    journal = Journal(link)
    for action in (journal.delete, journal.turn_on, lambda: journal.enabled):
        with pytest.raises(JournalError, match="symbolic link"):
            action()
    assert link.is_symlink() and Journal(target).events()["words"].tolist() == ["my secret words"]


def test_a_journal_of_another_user_is_refused(tmp_path):
    import os

    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    path = tmp_path / "j.sqlite3"
    Journal(path).turn_on().close()
    os.chown(path, 65534, 65534)
    with pytest.raises(JournalError, match="another user"):
        Journal(path).enabled


def test_a_process_holding_the_journal_stops_recording_once_it_is_deleted(tmp_path):
    path = tmp_path / "j.sqlite3"
    held = Journal(path).turn_on()  # the demo keeps one open for its whole life
    assert held.record_analysis(mood()) is not None
    assert Journal(path).delete()  # `moodtune journal delete` from another process
    assert held.record_analysis(mood()) is None and not held.enabled
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing written into a file nobody can see


def test_export_never_overwrites_without_force_and_never_a_device_or_a_link(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3").turn_on()
    journal.record_analysis(mood())
    mine = tmp_path / "mine.csv"
    mine.write_text("keep me")
    with pytest.raises(JournalError, match="--force"):
        journal.export_csv(mine)
    assert mine.read_text() == "keep me"
    assert journal.export_csv(mine, force=True).read_text().count("\n") == 2
    link = tmp_path / "link.csv"
    link.symlink_to(mine)
    for target, why in ((link, "symbolic link"), (tmp_path / "no-folder" / "x.csv", "does not exist")):
        with pytest.raises(JournalError, match=why):
            journal.export_csv(target, force=True)
    import os

    if os.path.exists("/dev/null"):
        with pytest.raises(JournalError, match="not a regular file"):
            journal.export_csv("/dev/null", force=True)


@pytest.mark.parametrize("args", [["journal"], ["journal", "on"], ["journal", "off"], ["journal", "export", "x.csv"]])
def test_journal_commands_on_a_corrupt_journal_say_so_in_one_line(tmp_path, monkeypatch, args):
    from typer.testing import CliRunner

    from interfaces.cli import app

    monkeypatch.setenv("MOODTUNE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "journal.sqlite3").write_bytes(b"\x13garbage, not SQLite" * 300)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "not a moodtune journal" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("args", [["journal", "on"], ["journal", "export", "x.csv"]])
def test_journal_commands_with_moodtune_home_a_file_say_so_in_one_line(tmp_path, monkeypatch, args):
    from typer.testing import CliRunner

    from interfaces.cli import app

    home = tmp_path / "home"
    home.write_text("a file, not a folder")
    monkeypatch.setenv("MOODTUNE_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert "Traceback" not in result.output and not isinstance(result.exception, OSError)
    if args[1] == "on":
        assert result.exit_code == 2 and "MOODTUNE_HOME" in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.slow  # loads the text model
def test_analyze_shows_the_mood_when_the_journal_is_locked_or_broken_or_the_profile_cannot_be_saved(tmp_path,
                                                                                                   monkeypatch):
    from typer.testing import CliRunner

    from interfaces.cli import app

    monkeypatch.setenv("MOODTUNE_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "journal.sqlite3"
    Journal(path).turn_on().close()
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write
    try:
        locked = CliRunner().invoke(app, ["analyze", "--text", "I am furious with you", "--n", "3"])
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    path.unlink()
    path.write_bytes(b"\x13garbage, not SQLite" * 300)
    broken = CliRunner().invoke(app, ["analyze", "--text", "I am furious with you", "--n", "3"])
    for result in (locked, broken):
        assert result.exit_code == 0, result.output
        assert "Mood: angry" in result.output and "Recommendations" in result.output
        warnings = [line for line in result.output.splitlines() if "not written to the journal" in line]
        assert len(warnings) == 1 and "Traceback" not in result.output
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    path.unlink()
    unsaved = CliRunner().invoke(app, ["analyze", "--text", "I am furious with you", "--profile",
                                       str(blocker / "me.json"), "--feel", "sad"])
    assert unsaved.exit_code == 2 and "Mood: angry" in unsaved.output
    assert [line for line in unsaved.output.splitlines() if "not learned" in line] and "Traceback" not in unsaved.output


def test_a_hard_linked_journal_is_not_reported_deleted_while_its_words_stay(tmp_path):
    import os

    path = tmp_path / "j.sqlite3"
    with Journal(path).turn_on(keep_words=True) as journal:
        journal.record_analysis(mood(), words="my secret words")
    os.link(path, tmp_path / "copy")
    with pytest.raises(JournalError, match="hard links"):
        Journal(path).delete()
    assert path.exists()


def test_rows_edited_by_hand_do_not_break_the_week(tmp_path):
    path = tmp_path / "j.sqlite3"
    journal = Journal(path).turn_on()
    journal.record_analysis(mood("happy", 0.6))
    journal.close()
    conn = sqlite3.connect(path)
    now = datetime.now(timezone.utc).isoformat()
    conn.execute("INSERT INTO events (time, kind, emotion, valence, arousal) VALUES (?, 'analysis', 'sad', 'abc', 0.1)",
                 (now,))
    conn.execute("INSERT INTO events (time, kind, emotion, valence) VALUES ('not a time', 'analysis', 'sad', 0.2)")
    conn.commit()
    conn.close()
    week = Journal(path).days(7)
    assert week["analyses"].sum() == 2 and week.iloc[-1]["valence"] == pytest.approx(0.6)
