"""The HTTP API on Ray Serve: ``moodtune serve --ray --replicas N`` (needs ``pip install 'moodtune[serve]'``).

Each replica is the same FastAPI app as ``moodtune serve`` (:func:`interfaces.http.create_app`) around its own
engine: it reserves ``threads`` CPUs, runs its models with that many math threads, and loads and warms them in
its constructor, so a replica that answers is ready. The catalog is put into Ray's object store once and every
replica reads that one copy (numpy arrays zero-copy) instead of each unpickling its own. Requests are stateless
(the session and the calibration travel with each), so any replica can answer any call.

Several machines: ``ray start --head --disable-usage-stats`` on one, ``ray start --address HEAD:6379
--disable-usage-stats`` on the others, then ``moodtune serve --ray --replicas N`` on the head; ``--replicas 2-8``
lets Serve add replicas under load and remove them when it passes. Ray hands a replica at most
:data:`MAX_ONGOING` requests and holds at most :data:`MAX_QUEUED` more; beyond that a caller gets 503 at once.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from multimodal.errors import MoodtuneError


class RayUnavailable(MoodtuneError, RuntimeError):
    """Ray Serve is not installed."""


class ReplicasError(MoodtuneError, ValueError):
    """A replica count or range that cannot be deployed."""


def _ray():
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise RayUnavailable("Ray Serve is not installed: pip install 'moodtune[serve]'") from exc
    return ray, serve


LOOPBACK = ("127.0.0.1", "::1", "localhost")
#: requests Ray hands one replica at once; the replica's own queue (``interfaces.http.MAX_QUEUE``) takes the rest
MAX_ONGOING = 8
#: requests Ray's router holds when every replica is full; beyond this it answers 503 at once (memory stays bounded)
MAX_QUEUED = 64
#: with autoscaling, Serve adds a replica when the replicas average more requests in flight than this
TARGET_ONGOING = 2


MAX_REPLICAS = 1000


def parse_replicas(spec: str | int) -> tuple[int, int]:
    """``"3"`` → (3, 3): a fixed count; ``"1-4"`` → (1, 4): autoscaled between the two."""
    low, dash, high = str(spec).strip().partition("-")
    try:
        bounds = int(low), int(high if dash else low)
    except ValueError:
        raise ReplicasError(f"replicas: expected a count like 2 or a range like 1-4, not {spec!r}") from None
    if not 1 <= bounds[0] <= bounds[1] <= MAX_REPLICAS:
        raise ReplicasError(f"replicas: expected 1 ≤ min ≤ max ≤ {MAX_REPLICAS}, not {str(spec)[:40]!r}")
    return bounds


def deployment_options(replicas: str | int = 2, threads: int = 1) -> dict[str, Any]:
    """Ray Serve deployment options: a fixed count of replicas, or autoscaling between ``"min-max"``."""
    low, high = parse_replicas(replicas)
    scaling: dict[str, Any] = ({"num_replicas": low} if low == high else {"autoscaling_config": {
        "min_replicas": low, "initial_replicas": low, "max_replicas": high, "target_ongoing_requests": TARGET_ONGOING}})
    return {"name": "moodtune", **scaling, "ray_actor_options": {"num_cpus": threads},
            "max_ongoing_requests": MAX_ONGOING, "max_queued_requests": MAX_QUEUED,
            "health_check_period_s": 10, "graceful_shutdown_timeout_s": 20}


def _replica_grpc_on_loopback() -> None:
    """On a single machine whose Ray node is 127.0.0.1, bind the replica's inter-deployment gRPC server there too.

    Ray Serve 2.60 binds it on every interface (``"[::]:0"``, hard-coded in ``ray/serve/_private/replica.py``), after
    the replica's constructor; nothing off this machine needs it when the node itself is loopback. A Ray without
    that helper is left as it is.
    """
    from ray.serve._private import replica

    bind = getattr(replica, "add_port_to_grpc_server", None)
    if bind is None or getattr(bind, "_moodtune_loopback", False):
        return

    def on_loopback(server: Any, address: str) -> Any:
        return bind(server, "127.0.0.1:0" if address == "[::]:0" else address)

    on_loopback._moodtune_loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = on_loopback


class MoodService:
    """One replica: an engine on ``threads`` math threads around the catalog from the object store."""

    def __init__(self, catalog: list[Any], threads: int = 1) -> None:
        import ray

        # a list, so that Ray hands the reference over as is and the replica reads the shared copy here
        self.catalog = ray.get(catalog[0])
        self.threads = threads
        if ray.util.get_node_ip_address() in LOOPBACK:
            _replica_grpc_on_loopback()

    def __serve_build_asgi_app__(self) -> Any:
        from fusion import MoodEngine
        from interfaces.http import create_app

        engine = MoodEngine(catalog=self.catalog, workers=max(2, self.threads), threads=self.threads)
        return create_app(engine, warm=True)  # the app's startup warms the models before the replica takes traffic


def build_app(replicas: str | int = 2, threads: int = 1, catalog: str | None = None) -> Any:
    """The Serve application: copies of :class:`MoodService` (each ``num_cpus=threads``), ``replicas`` of them
    or autoscaled within ``"min-max"``."""
    ray, serve = _ray()
    from recommend import load_catalog

    options = deployment_options(replicas, threads)  # a bad count fails here, before the catalog is loaded
    shared = ray.put(load_catalog(catalog))
    return serve.deployment(serve.ingress()(MoodService), **options).bind([shared], threads)


def run(host: str = "127.0.0.1", port: int = 8000, replicas: str | int = 2, threads: int = 1,
        address: str | None = None, catalog: str | None = None, on_ready: Callable[[], None] | None = None) -> None:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``; ``"auto"``: the one running on this machine), or
    start a private one on loopback; deploy and serve on ``host:port`` until interrupted (SIGINT or SIGTERM); then
    take the deployment down and, for a cluster started here, every Ray process with it."""
    import signal

    parse_replicas(replicas)  # before Ray starts

    address = address or os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
    if address:
        joining_environment(os.environ)  # before Ray is imported: it reads these once
    else:
        private_cluster_environment(os.environ)
    ray, serve = _ray()

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM (systemd, docker stop) takes the deployment down like Ctrl-C

    try:
        ray.init(**init_options(address))
    except Exception as exc:  # noqa: BLE001 - Ray raises several types for a cluster it cannot join
        hint = " (a Ray token mismatch: see docs/serving.md, 'Ray: a private cluster, or joining one')" if "auth" in str(exc).lower() else ""
        raise RayUnavailable(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0][:200]}{hint}") from exc
    signal.signal(signal.SIGTERM, stop)  # after ray.init, whose own SIGTERM handler would end the process at once
    try:
        cpus = float(ray.cluster_resources().get("CPU", 0))
        if parse_replicas(replicas)[0] * threads > cpus:  # Serve would wait forever for replicas it cannot place
            raise ReplicasError(f"replicas: {parse_replicas(replicas)[0]} × {threads} CPUs asked, the cluster has "
                                f"{cpus:g}; ask for fewer replicas or --threads")
        try:
            serve.start(http_options={"host": host, "port": port})
            serve.run(build_app(replicas, threads, catalog), name="moodtune", route_prefix="/", blocking=False)
        except (RuntimeError, ValueError) as exc:  # e.g. the proxy cannot bind the port
            raise RayUnavailable(f"Ray Serve could not start: {str(exc).splitlines()[0][:200]}") from None
        if on_ready is not None:
            on_ready()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the shutdown short
        started_here = [] if address else _descendants()  # the raylet, GCS, agents and workers of our cluster
        serve.shutdown()
        ray.shutdown()
        if not address:
            _stop(started_here)  # Ray leaves its two agents running for minutes after their raylet is gone


def private_cluster_environment(env: Any) -> None:
    """The environment of a cluster moodtune starts for itself: every listener on 127.0.0.1, and a token of its own.

    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is Ray's single-machine mode: its node address is 127.0.0.1 (otherwise Ray
    2.60 swaps 127.0.0.1 for the machine's network address and its servers listen there). Ray 2.59+ turns token
    authentication on for a local cluster and writes a token to ``~/.ray``; this cluster gets a one-time token in its
    environment instead (never printed or written), unless the user chose a token or turned authentication off.
    """
    import secrets

    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if env.get("RAY_AUTH_MODE", "token") == "token":
        env["RAY_AUTH_MODE"] = "token"
        if not (env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH")):
            env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def joining_environment(env: Any) -> None:
    """Send the user's Ray token when joining a cluster, by the rule `ray start` follows: with ``RAY_AUTH_MODE`` unset
    and a token at hand (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), token mode. `ray start`
    turns authentication on when it finds that token, but Ray 2.60 does not for a driver that joins, so the driver
    was refused (``InvalidAuthToken``). ``RAY_AUTH_MODE`` set by the user is left as it is."""
    from pathlib import Path

    if "RAY_AUTH_MODE" not in env and (env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH")
                                       or (Path.home() / ".ray" / "auth_token").is_file()):
        env["RAY_AUTH_MODE"] = "token"


def init_options(address: str | None) -> dict[str, Any]:
    """``ray.init`` options: join ``address``; without one, a new single-machine cluster on 127.0.0.1 (see
    :func:`private_cluster_environment`), without the dashboard."""
    common = {"include_dashboard": False, "log_to_driver": False}
    if address:
        return {"address": address, **common}
    return {"address": "local", "_node_ip_address": "127.0.0.1", **common}


def _descendants() -> list[Any]:
    import psutil

    return psutil.Process().children(recursive=True)


def _stop(processes: list[Any], grace_s: float = 3.0) -> None:
    """Terminate whichever of ``processes`` still run, then kill those still there after ``grace_s``."""
    import psutil

    alive = [p for p in processes if p.is_running()]
    for p in alive:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, left = psutil.wait_procs(alive, timeout=grace_s)
    for p in left:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
