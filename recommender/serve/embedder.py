"""Embedding articles received through PUT in a process of its own, at a lower CPU priority than the readers.

Embedding one article takes about a second of CPU (e5 and USE). Done inside a worker, it held that worker for
the second and, on 2 cores, took the CPU from the readers' requests (p99 from 26 to 200 ms while 15 articles
were PUT). `serve` forks one embedding process before gunicorn starts its workers; a PUT sends the article over a
unix socket and waits for its vectors (a gevent worker serves its other connections meanwhile), then stores
them as before, so the CMS still gets 201/200 once the article is served. The process runs at `embedder_nice`:
when readers keep the CPUs busy they go first. The master restarts it if it dies; a PUT meanwhile gets 503.

Frames on the socket: 4 bytes of big-endian length, then the bytes. A request is the article's JSON record;
an answer is b"ok" and the vectors as an .npz, or b"no" and an error message.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..ingest.corpus import Article, article_from_json

log = logging.getLogger(__name__)
MAX_FRAME = 64 << 20  # an article's record is at most max_record_bytes; vectors a few KB
PROCESS_NAME = b"rec-embedder"  # its name in ps and /proc/PID/comm (the workers keep the master's)


class EmbedderUnavailable(RuntimeError):
    """The embedding process could not be reached or did not answer in time: nothing was stored."""


class EmbeddingFailed(RuntimeError):
    """The embedding process reached the article but its encoder failed on it."""


def send_frame(sock: socket.socket, payload: bytes) -> None:
    """Send one length-prefixed frame."""
    sock.sendall(struct.pack(">I", len(payload)) + payload)


def receive_frame(sock: socket.socket) -> bytes:
    """Read one length-prefixed frame; ConnectionError if the peer closes first or announces too much."""
    (size,) = struct.unpack(">I", _exactly(sock, 4))
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size:,} bytes announced, more than {MAX_FRAME:,}")
    return _exactly(sock, size)


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class EmbedClient:
    """What a worker's PUT embeds with: the embedding process behind the socket at path."""

    def __init__(self, path: str | Path, timeout: float) -> None:
        self.path, self.timeout = str(path), timeout

    def embed_dense(self, article: Article) -> dict[str, np.ndarray]:
        """The article's dense vectors, embedded by the embedding process."""
        request = json.dumps(article.to_json(), ensure_ascii=False).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)  # queued behind other PUTs included
                sock.connect(self.path)
                send_frame(sock, request)
                answer = receive_frame(sock)
        except (OSError, ConnectionError) as exc:  # TimeoutError is an OSError
            raise EmbedderUnavailable(f"the embedding process did not answer ({exc or type(exc).__name__}); "
                                      f"nothing was stored, retry the PUT") from None
        if answer[:2] != b"ok":
            raise EmbeddingFailed(answer[2:].decode("utf-8", "replace"))
        with np.load(io.BytesIO(answer[2:]), allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}


class EmbeddingProcess:
    """The master's handle on the embedding process: started, restarted when it died, stopped."""

    def __init__(self, embed: Callable[[Article], dict[str, np.ndarray]], nice: int) -> None:
        self.embed, self.nice = embed, nice
        self.folder = Path(tempfile.mkdtemp(prefix="recommender-embedder-"))
        self.path = self.folder / "socket"
        self.pid: int | None = None
        self._owner = os.getpid()

    def start(self, close_in_child: tuple[int, ...] = ()) -> None:
        """Fork the process (listening before this returns, so a PUT right after start is answered)."""
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        pid = os.fork()
        if pid == 0:  # the embedding process: never returns into the caller's code
            _name_process(PROCESS_NAME)  # first: the tests tell it from the workers by name
            status = 1
            try:
                for fd in close_in_child:  # the server's listening sockets: only the workers answer there
                    with contextlib.suppress(OSError):
                        os.close(fd)
                _serve(listener, self.embed, self.nice, self._owner)
                status = 0
            except BaseException:  # noqa: BLE001 - logged, and the master starts another
                log.exception("the embedding process failed")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        listener.close()  # the master's copy: when the process dies, a PUT is refused at once, not queued
        self.pid = pid

    def alive(self) -> bool:
        """Whether the process runs (and reap it if it ended)."""
        if self.pid is None:
            return False
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            done = self.pid
        if done:
            self.pid = None
        return not done

    def keep_running(self, close_in_child: tuple[int, ...] = ()) -> None:
        """Start the process again if it died (called from the master's loop)."""
        if os.getpid() == self._owner and not self.alive():
            log.error("the embedding process ended; starting another")
            self.start(close_in_child)

    def stop(self) -> None:
        """End the process and remove its socket (only in the master that started it)."""
        if os.getpid() != self._owner:
            return
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self.pid, 0)
                self.pid = None
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()


def _serve(listener: socket.socket, embed: Callable[[Article], dict[str, np.ndarray]], nice: int,
           parent: int) -> None:
    """Answer embedding requests one at a time until the master is gone or SIGTERM arrives."""
    # Forked from gunicorn's master (a restart), the process would run the master's handlers. A stop is the
    # master's to make: Ctrl-C and gunicorn's other signals reach the whole group and are ignored here, a
    # reload (HUP) is the workers'; TERM and QUIT end it. Then what the master blocked across the fork.
    for name in ("SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGTTIN", "SIGTTOU"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    for number in (signal.SIGTERM, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    with contextlib.suppress(OSError):
        os.nice(nice)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")  # one core's worth at most: the other belongs to the readers
    listener.settimeout(1.0)
    while os.getppid() == parent:  # orphaned (the master was killed): nobody sends PUTs any more
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        with connection:
            connection.settimeout(30)
            try:
                article = article_from_json(json.loads(receive_frame(connection)))
            except (OSError, ConnectionError, ValueError) as exc:
                log.warning("embedding process: unreadable request (%s)", exc)
                continue
            try:
                buffer = io.BytesIO()
                np.savez(buffer, **{name: np.asarray(v, dtype=np.float32) for name, v in embed(article).items()})
                answer = b"ok" + buffer.getvalue()
            except Exception as exc:  # noqa: BLE001 - the PUT reports it; the process serves the next one
                log.exception("embedding process: could not embed article %r", article.id)
                answer = b"no" + f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
            with contextlib.suppress(OSError):  # the PUT gave up waiting: its client gets a 503 already
                send_frame(connection, answer)



def _name_process(name: bytes) -> None:
    """Name this process for ps and /proc/PID/comm (Linux prctl PR_SET_NAME); best effort elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)
