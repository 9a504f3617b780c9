"""A throw-away PostgreSQL server for tests and benchmarks: Debian's binaries (package `postgresql`), a cluster
made with initdb in a temporary folder, started with pg_ctl on a free loopback port, removed afterwards.

initdb and postgres refuse to run as root: as root, they run as the `postgres` user (or `nobody`), which then
owns the temporary folder.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "postgres"  # the cluster's superuser (trust authentication on loopback only)


def binaries() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def unavailable_reason() -> str | None:
    """Why no server can be started here (None when one can)."""
    if binaries() is None:
        return "needs PostgreSQL's server binaries (apt-get install postgresql; `make test` installs them as root)"
    if os.geteuid() == 0 and _account() is None:
        return "PostgreSQL refuses to run as root and there is no postgres or nobody account to run it as"
    return None


def _account() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when we are root."""
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder; `url(name)` names a database in it."""

    def __init__(self, settings: tuple[str, ...] = ("fsync=off", "max_connections=200")) -> None:
        self.bin = binaries()
        self.settings = settings
        self.root = Path(tempfile.mkdtemp(prefix="recommender-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._user = _account() if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C",
                  "--no-sync")

    def _run(self, program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        user = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []} if self._user else {}
        done = subprocess.run([str(self.bin / program), *args], cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, **user)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}\n"
                               f"{self.log.read_text(errors='replace')[-2000:] if self.log.exists() else ''}")
        return done

    def start(self) -> "PostgresServer":
        """Start the server (on a new free port the first time; on the same one after a stop)."""
        for attempt in range(3):
            self.port = self.port or free_port()
            options = " ".join([f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1",
                                *(f"-c {s}" for s in self.settings)])
            try:
                self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60",
                          "start")
                return self
            except RuntimeError:
                if attempt == 2:
                    raise
                self.port = 0  # taken meanwhile by another process: try another
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (fast: open connections are cut, as in a restart by an operator)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        """Whether the server is up."""
        return subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True,
                              **({"user": self._user.pw_uid} if self._user else {})).returncode == 0

    def url(self, database: str = "postgres") -> str:
        """The URL of a database of this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = name or f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server if it runs and remove its folder."""
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
