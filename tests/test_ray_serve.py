"""`moodtune serve --ray`: two replicas on a local Ray cluster, everything on 127.0.0.1."""

import os
import shutil
import subprocess
import sys

import psutil
import pytest

from .conftest import free_port, wav_bytes

ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
pytestmark = [pytest.mark.ray, pytest.mark.skipif(ray_cli is None, reason="Ray is absent: pip install 'moodtune[serve]'")]


def ray_processes() -> list[psutil.Process]:
    found = []
    for pid in ray_pids():
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    return found


def listeners(processes: list[psutil.Process]) -> set[str]:
    from benchmarks.serving import listeners

    return listeners(processes)


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-node Ray cluster on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: without it, Ray 2.60 replaces
    --node-ip-address=127.0.0.1 with the machine's network address), with token authentication on and a token of its
    own in the environment: a token left in ~/.ray, or another cluster running beside it, changes nothing."""
    from interfaces.ray_serve import private_cluster_environment

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    private_cluster_environment(env)  # what `moodtune serve --ray` gives a cluster of its own
    port = free_port()
    before = set(ray_pids())
    subprocess.run([ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats"], env=env, check=True, capture_output=True,
                   timeout=120)
    ours = set(ray_pids()) - before
    try:
        yield env, f"127.0.0.1:{port}"
    finally:
        stop_processes(ours)  # this cluster only (`ray stop` would stop every cluster of this user)


def ray_pids() -> list[int]:
    from benchmarks.serving import ray_pids

    return ray_pids()


def stop_processes(pids, timeout: float = 30) -> None:
    """Terminate these processes (and their children), then kill what is left after ``timeout``."""
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    for p in psutil.wait_procs(procs, timeout=timeout)[1]:
        p.kill()


def start_service(ray_cluster, replicas: str, home) -> tuple[subprocess.Popen, str]:
    """`moodtune serve --ray --replicas REPLICAS` on the test cluster, once /healthz has been answered by as many
    replicas as it starts with (the first replica answers while Serve still deploys the others)."""
    from benchmarks.serving import wait_ready

    env, address = ray_cluster
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "serve", "--ray", "--replicas", replicas,
                             "--port", str(port)], env={**env, "RAY_ADDRESS": address, "MOODTUNE_HOME": str(home)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, workers=int(replicas.split("-")[0]), timeout=300)
    except (RuntimeError, TimeoutError) as exc:
        proc.terminate()
        pytest.fail(str(exc))
    return proc, url


def cluster_processes(cluster_env) -> list[psutil.Process]:
    """The processes of the test cluster (they carry its token), not those of any other cluster on this machine."""
    found = []
    for p in ray_processes():
        try:
            if p.environ().get("RAY_AUTH_TOKEN") == cluster_env["RAY_AUTH_TOKEN"]:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def serve_replicas(cluster_env) -> list[psutil.Process]:
    return [p for p in cluster_processes(cluster_env) if "ServeReplica" in " ".join(p.cmdline())]


def test_an_autoscaled_service_starts_at_its_minimum_and_answers(ray_cluster, tmp_path):
    """--replicas 1-2: Serve's autoscaler owns the count; it starts at the minimum, and the limits travel along."""
    import httpx

    proc, url = start_service(ray_cluster, "1-2", tmp_path)
    try:
        r = httpx.post(f"{url}/v1/analyze", data={"text": "I am furious with you", "n": "3"}, timeout=120)
        assert r.status_code == 200 and r.json()["mood"]["top_emotion"] == "angry", r.text[:300]
        assert len(serve_replicas(ray_cluster[0])) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    assert not serve_replicas(ray_cluster[0]), "replicas left after the service stopped"


def test_two_replicas_answer_share_sessions_stay_on_loopback_and_shut_down_cleanly(ray_cluster, tmp_path):
    import httpx

    env, _ = ray_cluster
    proc, url = start_service(ray_cluster, "2", tmp_path)
    try:
        # every answer is right, and both replicas answer
        workers = {}
        for i in range(12):
            r = httpx.post(f"{url}/v1/analyze", data={"text": "I am furious with you", "n": "5"},
                           files={"audio": ("me.wav", wav_bytes(), "audio/wav")} if i % 3 == 0 else None, timeout=120)
            assert r.status_code == 200 and r.json()["mood"]["top_emotion"] == "angry", r.text[:300]
            workers.setdefault(r.headers["x-moodtune-worker"], r.json())
        assert len(workers) == 2, workers.keys()
        # a skip answered by one replica changes the next list from the other: the session travels with the request
        (first_worker, first), (other_worker, _) = list(workers.items())
        skipped = first["tracks"][0]
        session = None
        for _ in range(20):
            fb = httpx.post(f"{url}/v1/feedback", json={"session": first["session"], "track": skipped, "kind": "skip",
                                                          "mood": first["mood"]}, timeout=60)
            if fb.headers["x-moodtune-worker"] == first_worker:
                session = fb.json()["session"]
                break
        assert session is not None and session["skipped"] == [skipped["id"]]
        for _ in range(20):
            again = httpx.post(f"{url}/v1/recommend", json={"mood": first["mood"], "n": 5, "session": session},
                               timeout=60)
            if again.headers["x-moodtune-worker"] == other_worker:
                break
        assert again.headers["x-moodtune-worker"] == other_worker
        assert skipped["id"] not in {t["id"] for t in again.json()["tracks"]}
        # every listener of the cluster and the service is on loopback
        addresses = listeners([*cluster_processes(env), psutil.Process(proc.pid)])
        assert addresses and addresses <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, addresses
    finally:
        proc.terminate()  # SIGTERM: the command takes its deployment down and disconnects
        proc.wait(timeout=120)
    assert not serve_replicas(env), "replicas left after the service stopped"


def test_serve_ray_alone_starts_a_private_loopback_cluster_and_leaves_nothing_after_sigterm(tmp_path):
    """No RAY_ADDRESS: `moodtune serve --ray` starts its own cluster, on 127.0.0.1 only, with a token of its own
    (nothing written to ~/.ray), and SIGTERM stops every process of it (Ray's agents included)."""
    import httpx

    from benchmarks.serving import wait_ready

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), MOODTUNE_HOME=str(tmp_path / "moodtune"))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "serve", "--ray", "--replicas", "1",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    service = psutil.Process(proc.pid)
    family: list[psutil.Process] = []
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout=300)
        assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=30).status_code == 200
        family = service.children(recursive=True)
        assert any("raylet" in p.name() for p in family)  # its own cluster, not one found running
        addresses = listeners([service, *family])
        assert addresses and addresses <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, addresses
        assert not (home / ".ray" / "auth_token").exists()  # the one-time token lives in the cluster's environment
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    left = psutil.wait_procs(family, timeout=10)[1]  # the shutdown itself waits for them: 10 s is a bound, not a speed
    stop_processes([p.pid for p in left])
    assert not left, [p.pid for p in left]


def test_replica_counts_ranges_and_bounded_queues_become_valid_serve_options():
    from ray import serve

    from interfaces.ray_serve import MAX_ONGOING, MAX_QUEUED, MoodService, deployment_options, parse_replicas

    assert parse_replicas("3") == (3, 3) and parse_replicas(" 1-4 ") == (1, 4) and parse_replicas(2) == (2, 2)
    for bad in ("0", "4-1", "two", "1-", "-3"):
        with pytest.raises(ValueError, match="replicas"):
            parse_replicas(bad)
    fixed, scaled = deployment_options("2"), deployment_options("1-4", threads=2)
    assert fixed["num_replicas"] == 2 and "autoscaling_config" not in fixed
    assert scaled["autoscaling_config"]["min_replicas"] == 1 and scaled["autoscaling_config"]["max_replicas"] == 4
    assert "num_replicas" not in scaled and scaled["ray_actor_options"] == {"num_cpus": 2}
    for options in (fixed, scaled):  # Serve validates them (no cluster needed)
        config = serve.deployment(MoodService, **options)._deployment_config
        assert config.max_ongoing_requests == MAX_ONGOING and config.max_queued_requests == MAX_QUEUED
    assert serve.deployment(MoodService, **scaled)._deployment_config.autoscaling_config.max_replicas == 4


def test_a_bad_replica_range_is_refused_before_ray_starts():
    before = set(ray_pids())  # another test's cluster may be up: only new processes count
    done = subprocess.run([sys.executable, "-m", "interfaces.cli", "serve", "--ray", "--replicas", "4-1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "1 ≤ min ≤ max" in done.stderr + done.stdout
    assert not set(ray_pids()) - before


def test_joining_sends_the_users_token_by_ray_starts_rule(tmp_path, monkeypatch):
    """`ray start` turns token authentication on when it finds ~/.ray/auth_token; a driver that joins must then send
    it (Ray 2.60 does not on its own: InvalidAuthToken). An explicit RAY_AUTH_MODE is the user's choice."""
    from interfaces.ray_serve import joining_environment, private_cluster_environment

    monkeypatch.setenv("HOME", str(tmp_path))
    env: dict[str, str] = {}
    joining_environment(env)
    assert env == {}  # no token anywhere: nothing to send
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t" * 64)
    joining_environment(env)
    assert env == {"RAY_AUTH_MODE": "token"}
    chosen = {"RAY_AUTH_MODE": "disabled"}
    joining_environment(chosen)
    assert chosen == {"RAY_AUTH_MODE": "disabled"}
    private = {"RAY_AUTH_TOKEN": "mine"}
    private_cluster_environment(private)
    assert private == {"RAY_AUTH_TOKEN": "mine", "RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    fresh: dict[str, str] = {}
    private_cluster_environment(fresh)
    assert fresh["RAY_AUTH_MODE"] == "token" and len(fresh["RAY_AUTH_TOKEN"]) == 64  # one-time, never ~/.ray
    assert not (tmp_path / ".ray" / "auth_token").read_text() == fresh["RAY_AUTH_TOKEN"]
