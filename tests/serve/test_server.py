"""`recommender serve`: gunicorn with two gevent workers over a real socket on loopback, and its signals."""
import json
import os
import signal
import socket
import threading
import time

import pytest
from servers import ServerProcess, get, tiny_tfidf_index


@pytest.fixture
def tiny_index(tmp_path):
    """A 4-article tfidf index and the environment a server over it needs: (index_dir, env)."""
    return tiny_tfidf_index(tmp_path)


@pytest.fixture
def server(tiny_index, tmp_path):
    index_dir, env = tiny_index
    with ServerProcess(index_dir, tmp_path / "server.log", env) as process:
        process.wait_ready()
        yield process


def metric(base: str, name: str, endpoint: str) -> float:
    """The merged value of a counter for one endpoint (summed over statuses and methods)."""
    _, body = get(base + "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith(name + "{") and f'endpoint="{endpoint}"' in line)


def test_serves_related_links_with_two_workers_and_merged_metrics(server):
    for _ in range(6):
        status, body = get(server.base + "/v1/articles/a0/related?k=2")
        assert status == 200 and len(json.loads(body)["items"]) == 2
    assert metric(server.base, "recommender_requests_total", "/v1/articles/<article_id>/related") == 6.0
    assert len(server.workers()) == 2  # wait_ready waited for both


def test_prints_where_it_serves(server):
    assert server.stop() < 5
    assert f"{server.base}/v1/articles/" in server.output() and "with 2 workers" in server.output()
    assert server.process.returncode == 0


# (signal, to the whole group?, when): the moments a deployment tool or a terminal stops a server.
STOPS = [
    (signal.SIGTERM, True, "announced"),    # systemd's KillMode=control-group right after start: workers booting
    (signal.SIGTERM, True, "ready"),
    (signal.SIGTERM, False, "announced"),   # the master alone (docker stop, kill PID)
    (signal.SIGTERM, False, "ready"),
    (signal.SIGINT, True, "announced"),     # Ctrl-C in a terminal reaches the whole foreground group
    (signal.SIGINT, True, "ready"),
    (signal.SIGQUIT, False, "ready"),
    (signal.SIGTERM, True, "request"),      # while requests are being answered
    (signal.SIGTERM, True, "forking"),      # as soon as the first worker exists
    (signal.SIGTERM, True, "announced"),
]


def test_stops_within_seconds_at_any_moment(tiny_index, tmp_path):
    """Each stop over 5 s fails: a worker that missed the signal used to live on for the 30 s graceful timeout."""
    index_dir, env = tiny_index
    seconds = []
    for number, (sig, group, moment) in enumerate(STOPS):
        with ServerProcess(index_dir, tmp_path / f"server-{number}.log", env) as server:
            server.wait_announced()
            if moment == "forking":
                until = time.monotonic() + 60
                while not server.workers() and time.monotonic() < until:
                    time.sleep(0.005)
            if moment in ("ready", "request"):
                server.wait_ready()
            load = _requests_in_background(server.base) if moment == "request" else None
            took = server.stop(sig, group)
            if load:
                load.join(timeout=30)
            assert not server.group_alive(), f"a worker outlived its master ({sig!r}, {moment})"
            seconds.append(took)
            assert took < 5, f"stop with {signal.Signals(sig).name} to {'group' if group else 'master'} " \
                             f"at '{moment}' took {took:.1f} s:\n{server.output()}"
    assert len(seconds) == len(STOPS)


def _requests_in_background(base: str) -> threading.Thread:
    def ask() -> None:
        for _ in range(200):
            try:
                get(base + "/v1/articles/a0/related?k=2", timeout=5)
            except OSError:  # the server is going away: that is the point of this test
                return

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    time.sleep(0.05)
    return thread


def all_answer(base: str, times: int = 20) -> list[int]:
    """Statuses of /healthz, /readyz, a related list and /metrics, asked several times (both workers)."""
    statuses = []
    for _ in range(times):
        for path in ("/healthz", "/readyz", "/v1/articles/a1/related?k=2", "/metrics"):
            statuses.append(get(base + path)[0])
    return statuses


def wait_for_workers(server: ServerProcess, replacing: set[int], deadline: float = 60) -> list[int]:
    """Wait until two workers run and none of them is one of the replaced pids."""
    until = time.monotonic() + deadline
    while True:
        workers = server.workers()
        if len(workers) == 2 and not replacing & set(workers):
            return workers
        assert time.monotonic() < until, f"workers were not replaced: {workers}\n{server.output()}"
        time.sleep(0.05)


def test_reloads_and_dying_workers_never_break_the_others(tiny_index, tmp_path):
    """HUP (log rotation, config reload), gunicorn's timeout abort, a SIGKILL: every endpoint stays 200 and
    the merged counters never go back (the metrics folder used to be deleted by the first worker to exit)."""
    index_dir, env = tiny_index
    with ServerProcess(index_dir, tmp_path / "server.log", {**env, "RECOMMENDER_WORKER_TIMEOUT": "2"}) as server:
        base = server.wait_ready()
        counted = metric(base, "recommender_requests_total", "/healthz")
        failures: list[str] = []
        stop = threading.Event()

        def poll_health() -> None:
            while not stop.is_set():
                status = get(base + "/healthz")[0]
                if status != 200:
                    failures.append(f"/healthz answered {status}")
                time.sleep(0.01)

        poller = threading.Thread(target=poll_health)
        poller.start()
        try:
            for _ in range(2):  # twice: the second reload's old workers are the first reload's new ones
                old = set(server.workers())
                server.process.send_signal(signal.SIGHUP)
                wait_for_workers(server, old)
        finally:
            stop.set()
            poller.join()
        assert failures == []
        assert set(all_answer(base)) == {200}
        for sig in (signal.SIGABRT, signal.SIGKILL, signal.SIGSTOP):  # SIGSTOP: the 2 s worker timeout kills it
            victim = server.workers()[0]
            os.kill(victim, sig)
            wait_for_workers(server, {victim})
            assert set(all_answer(base)) == {200}, server.output()
            now = metric(base, "recommender_requests_total", "/healthz")
            assert now >= counted + 20, "a counter went back"
            counted = now
        assert "FileNotFoundError" not in server.output() and "Traceback" not in server.output()


def test_slow_and_idle_clients_cannot_starve_the_service(tiny_index, tmp_path):
    """16 clients sending their headers a byte at a time, 16 idle ones: everybody else is still answered, and
    the slow ones are dropped once request_read_timeout has passed.

    With sync workers two such clients blocked every endpoint until gunicorn's 30 s timeout; the 50 ms figure
    is measured by bench/slow_clients.py, this test only proves nobody waits for the slow ones.
    """
    index_dir, env = tiny_index
    with ServerProcess(index_dir, tmp_path / "server.log", {**env, "RECOMMENDER_REQUEST_READ_TIMEOUT": "3"}) as server:
        server.wait_ready()
        port = int(server.base.rsplit(":", 1)[1])
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
        try:
            for connection in slow[:16]:
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            for round_number in range(6):
                for connection in slow[:16]:
                    try:
                        connection.sendall(b"s")  # one more byte of the header, never the end of it
                    except OSError:  # already dropped by the server
                        pass
                for path in ("/healthz", "/v1/articles/a0/related?k=2"):
                    started = time.monotonic()
                    assert get(server.base + path, timeout=10)[0] == 200
                    assert time.monotonic() - started < 2.0, f"{path} waited behind slow clients"
                time.sleep(0.2)
            assert hung_up_on(slow) == 32  # unfinished headers and silence are cut off, not kept for ever
        finally:
            for connection in slow:
                connection.close()
        assert server.stop() < 5


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process pid holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def listening_inode(port: int) -> str:
    """The inode of the socket listening on loopback port (state 0A in /proc/net/tcp)."""
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
            return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def running(pid: int) -> bool:
    """Whether pid is a process that has not exited (a zombie has)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, seconds: float = 10.0, what: str = "") -> float:
    """Poll condition() every 5 ms until true; the monotonic time it was, or fail after seconds."""
    until = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < until, f"not within {seconds} s: {what}"
        time.sleep(0.005)
    return time.monotonic()


def test_a_stopped_worker_answers_what_it_holds_takes_nothing_new_and_leaves_right_after(tiny_index, tmp_path):
    """A publish's roll stops old workers with SIGTERM: each must answer the connection it holds, stop taking
    new ones at once, and exit as soon as it answered (gunicorn's own loop looked once a second at both, so
    old and new workers served side by side for up to two seconds)."""
    index_dir, env = tiny_index
    with ServerProcess(index_dir, tmp_path / "server.log", {**env, "RECOMMENDER_WORKERS": "1"}) as server:
        base = server.wait_ready(workers=1)
        port = int(base.rsplit(":", 1)[1])
        old = server.workers()[0]
        listener, before = listening_inode(port), socket_inodes(old)
        assert listener in before
        held = socket.create_connection(("127.0.0.1", port))
        try:
            held.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")  # accepted; the request not finished
            wait_until(lambda: len(socket_inodes(old) - before) >= 1, what="the worker accepted the connection")
            os.kill(old, signal.SIGTERM)
            wait_until(lambda: listener not in socket_inodes(old), what="the stopped worker closed its listener")
            assert running(old)  # still there: it holds a connection whose request it has not answered
            held.sendall(b"Connection: close\r\n\r\n")
            held.settimeout(10)
            answer = b""
            while chunk := held.recv(65536):
                answer += chunk
            answered = time.monotonic()
        finally:
            held.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        gone = wait_until(lambda: not running(old), what="the stopped worker exited")
        assert gone - answered < 0.75, f"exited {gone - answered:.2f} s after its last answer"
        replacement = wait_for_one_worker(server, old)
        assert get(base + "/healthz")[0] == 200 and server.workers() == [replacement]


def wait_for_one_worker(server: ServerProcess, replaced: int, deadline: float = 60) -> int:
    """The one worker that runs once replaced has been replaced."""
    until = time.monotonic() + deadline
    while True:
        workers = server.workers()
        if len(workers) == 1 and workers[0] != replaced:
            return workers[0]
        assert time.monotonic() < until, f"worker {replaced} was not replaced: {workers}\n{server.output()}"
        time.sleep(0.05)


def test_a_body_that_does_not_arrive_in_time_is_a_408(tiny_index, tmp_path):
    index_dir, env = tiny_index
    with ServerProcess(index_dir, tmp_path / "server.log", {**env, "RECOMMENDER_REQUEST_READ_TIMEOUT": "2"}) as server:
        server.wait_ready()
        status, headers, body = raw_request(server.base, b"POST /v1/related HTTP/1.1\r\nHost: a\r\n"
                                            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        assert status.split()[1] == "408" and json.loads(body)["error"] == "request_timeout"


def hung_up_on(connections: list[socket.socket], seconds: float = 15) -> int:
    """How many of the connections the server closes within seconds (each read returns nothing)."""
    closed = 0
    for connection in connections:
        connection.settimeout(seconds)
        try:
            closed += connection.recv(1024) == b""
        except (ConnectionResetError, BrokenPipeError):
            closed += 1
        except TimeoutError:
            pass
    return closed


def raw_request(base: str, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send bytes as they are; (status line, headers, body) of the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}, body


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    (b"GET /healthz HTTP/1.1\r\nHost: a\r\nBad Header: 1\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431),
    (b"BREW /healthz HTTP/9.9\r\n\r\n", 400),
])
def test_errors_of_the_http_server_itself_are_json(server, request_bytes, status):
    line, headers, body = raw_request(server.base, request_bytes)
    assert line.split()[1] == str(status)
    assert headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"
    assert set(json.loads(body)) == {"error", "message"}


def test_the_master_freezes_what_it_loaded_before_each_fork():
    # A worker's full garbage collection would walk every object of the libraries and the loaded app (90 ms
    # holding the GIL, measured while a snapshot was prepared); frozen in the master, it never does.
    import gc

    from recommender.config import load_settings
    from recommender.serve.server import _gunicorn

    application = _gunicorn(load_settings(index_dir="unused", state_dir=""), None, print)
    gc.unfreeze()
    loaded = [object()]  # a tracked object the master made before the fork
    try:
        application.cfg.pre_fork(None, None)
        assert gc.get_freeze_count() > 0
        assert not any(obj is loaded for obj in gc.get_objects())  # frozen: in no generation a collection walks
    finally:
        gc.unfreeze()


class _Heartbeat:
    def __init__(self) -> None:
        self.beat = 0.0

    def last_update(self) -> float:
        return self.beat


class _Worker:
    def __init__(self, age: int) -> None:
        self.age, self.tmp = age, _Heartbeat()


class _Engine:
    """What the master's roll reads of the engine: a publish it finished preparing, once."""

    def __init__(self) -> None:
        self.ready, self.preparing, self.base = False, False, type("Base", (), {"version": "v2"})

    def follow_published(self) -> bool:
        ready, self.ready = self.ready, False
        return ready


def _master(workers: int = 2):
    """gunicorn's master as far as the roll goes: forks and signals recorded, not made."""
    from recommender.serve.gunicorn_worker import SignalSafeArbiter

    class Master(SignalSafeArbiter):
        def __init__(self) -> None:  # gunicorn's own set-up reads a whole configuration: not needed here
            self.WORKERS, self.worker_age, self._num_workers, self.killed = {}, 0, workers, []
            self.engine, self.embedder, self.log = _Engine(), None, type("Log", (), {"info": print})()
            self._roll_from, self._fresh, self._retiring = None, None, set()

        num_workers = property(lambda self: self._num_workers)

        def spawn_worker(self) -> int:
            self.worker_age += 1
            pid = 1000 + self.worker_age
            self.WORKERS[pid] = _Worker(self.worker_age)
            return pid

        def kill_worker(self, pid: int, sig: int) -> None:
            self.killed.append(pid)

        def serves(self, pid: int) -> None:  # the worker's first heartbeat: it accepts connections
            self.WORKERS[pid].tmp.beat = 1.0

        def exits(self, pid: int) -> None:
            del self.WORKERS[pid]

    master = Master()
    master.manage_workers()
    for pid in master.WORKERS:
        master.serves(pid)
    return master


def test_the_roll_replaces_one_worker_at_a_time_once_its_fork_serves():
    master = _master()
    old = sorted(master.WORKERS)
    master.engine.ready = True
    master.manage_workers()  # the new snapshot is the master's: one fork
    fresh = max(master.WORKERS)
    assert len(master.WORKERS) == 3 and master.killed == []
    master.manage_workers()
    assert len(master.WORKERS) == 3 and master.killed == []  # not serving yet: every old worker stays
    master.serves(fresh)
    master.manage_workers()  # the oldest stops, the second fork starts
    assert master.killed == [old[0]] and len(master.WORKERS) == 4
    master.exits(old[0])
    second = max(master.WORKERS)
    master.manage_workers()
    assert master.killed == [old[0]]
    master.serves(second)
    master.manage_workers()
    assert master.killed == old and master._roll_from is None
    master.exits(old[1])
    master.manage_workers()  # back to keeping the count: nothing to do
    assert sorted(master.WORKERS) == [fresh, second] and master.killed == old


def test_the_roll_survives_workers_dying_in_it_and_forks_nothing_while_a_snapshot_is_prepared():
    master = _master()
    old = sorted(master.WORKERS)
    master.engine.ready = True
    master.manage_workers()
    master.exits(max(master.WORKERS))  # the first fork dies before it serves
    master.exits(old[0])  # and an old worker dies too
    master.manage_workers()  # another fork, nobody stopped: one old worker is all that serves
    fresh = max(master.WORKERS)
    assert len(master.WORKERS) == 2 and master.killed == []
    master.serves(fresh)
    master.manage_workers()  # a second fork; the last old worker stays until it serves
    assert master.killed == [] and len(master.WORKERS) == 3
    master.serves(max(master.WORKERS))
    master.manage_workers()
    assert master.killed == [old[1]] and master._roll_from is None
    master.exits(old[1])
    master.engine.preparing = True  # the next publish is being prepared: a dead worker waits for it to end
    master.exits(fresh)
    master.manage_workers()
    assert len(master.WORKERS) == 1
    master.engine.preparing = False
    master.manage_workers()
    assert len(master.WORKERS) == 2 and master._roll_from is None


def test_a_reload_waits_for_the_snapshot_being_prepared_and_rolled_out_without_holding_the_master(monkeypatch):
    """HUP while a snapshot is prepared or rolled out: the master's loop goes on (a dead worker is replaced once
    it may fork), and gunicorn's reload runs once, when every worker serves the new snapshot."""
    from gunicorn.arbiter import Arbiter

    reloads = []
    monkeypatch.setattr(Arbiter, "reload", lambda self: reloads.append(sorted(self.WORKERS)))
    master = _master()
    old = sorted(master.WORKERS)
    master.engine.preparing = True
    master.engine.wait_prepared = lambda: pytest.fail("the master waited for the preparation")
    master.reload()  # the HUP's handler
    master.reload()  # a second HUP meanwhile: still one reload
    master.exits(old[0])
    master.manage_workers()
    assert reloads == [] and sorted(master.WORKERS) == [old[1]]  # nothing forked while it is prepared
    master.engine.preparing, master.engine.ready = False, True
    master.manage_workers()  # ready: the roll starts, the reload still waits
    assert reloads == [] and master._roll_from is not None
    master.reload()  # another HUP during the roll
    while master._roll_from is not None:
        for pid in master.WORKERS:
            master.serves(pid)
        for pid in master.killed:
            if pid in master.WORKERS:
                master.exits(pid)
        master.manage_workers()
    fresh = set(master.WORKERS) - set(master.killed)
    assert reloads == [] and len(fresh) == 2 and not fresh & set(old)
    master.manage_workers()  # every worker serves the new snapshot: gunicorn's reload, once
    master.manage_workers()
    assert len(reloads) == 1 and set(reloads[0]) - set(master.killed) == fresh


def test_the_entry_points_gevent_announces_its_patches_to_are_read_once_and_the_same():
    from importlib import metadata

    from recommender.serve.gunicorn_worker import _entry_points, installed_entry_points

    for group in ("gevent.plugins.monkey.will_patch_all", "console_scripts"):
        assert sorted(installed_entry_points(group=group)) == sorted(metadata.entry_points(group=group))
    assert "recommender" in installed_entry_points(group="console_scripts").names
    assert _entry_points.cache_info().misses == 1  # read once in this process, however often asked


def test_an_unforeseen_error_while_following_publishes_never_stops_the_master():
    master = _master()
    workers = sorted(master.WORKERS)
    logged = []
    master.log = type("Log", (), {"info": print, "exception": lambda self, message: logged.append(message)})()

    def broken() -> bool:
        raise OSError("current: Input/output error")

    master.engine.follow_published = broken
    master.manage_workers()  # in gunicorn's loop an exception here would halt the server
    assert sorted(master.WORKERS) == workers and master.killed == [] and len(logged) == 1
