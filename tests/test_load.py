"""A short version of the demo load test (benchmarks/load_test.py runs the full 16 × 25)."""

def test_short_load_run_with_face_voice_and_text_has_no_errors_and_bounded_memory(data_dir):
    from benchmarks.load_test import run

    r = run(users=4, requests=3, timeout_s=300, data=data_dir)
    assert r["errors"] == 0, r["first_errors"]
    assert r["ok"] == 12
    assert r["rss_growth"] < 0.10
