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
