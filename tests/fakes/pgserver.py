"""A throwaway PostgreSQL server for tests: its own data folder, a free port on 127.0.0.1, removed afterwards.

    with ThrowawayPostgres() as server:
        psycopg.connect(server.url)   # postgresql://spark@127.0.0.1:<port>/spark, trust auth

`stop()` and `start()` take the server down and bring it back on the same port and data (a test can check what
a client does while it is gone); `restart()` does both. Run as root, the server runs as `nobody` (PostgreSQL
refuses to run as root). Needs the server binaries (`initdb`, `pg_ctl`): on PATH or in Debian's
/usr/lib/postgresql/<version>/bin; without them `PostgresUnavailable` is raised.
"""
from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.fakes.ports import free_port

USER = "spark"  # the superuser initdb makes, and the database the url names
UNPRIVILEGED = "nobody"  # who runs the server when we are root
START_TIMEOUT_S = 60
MISSING = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


class PostgresStartError(RuntimeError):
    """initdb or the server failed; the message carries the end of its output or log."""


def find_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: PATH first, else the highest /usr/lib/postgresql/<version>/bin."""
    initdb = shutil.which("initdb")
    if initdb:
        for bin_dir in (Path(initdb).resolve().parent, Path(initdb).parent):  # the real folder first (/usr/local/bin may hold symlinks only)
            if os.access(bin_dir / "pg_ctl", os.X_OK):
                return bin_dir

    def version(bin_dir: str) -> tuple:
        name = Path(bin_dir).parent.name
        return tuple(int(part) if part.isdigit() else -1 for part in name.split("."))
    for bin_dir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if all(os.access(Path(bin_dir) / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(bin_dir)
    raise PostgresUnavailable(MISSING)


def _traversable_by_others(path: Path) -> bool:
    """Every folder from / down to `path` lets other users through (x for others)."""
    return all(os.stat(folder).st_mode & 0o001 for folder in [path, *path.parents])


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class ThrowawayPostgres:
    """A PostgreSQL server in a temporary folder. Attributes: `url`, `port`, `data_dir`, `root` (the folder)."""

    def __init__(self, bin_dir: str | Path | None = None) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir else find_bin_dir()
        self.root: Path | None = None
        self.data_dir: Path | None = None
        self.log_file: Path | None = None
        self.port: int | None = None
        self.running = False
        self._as_nobody = os.geteuid() == 0

    # -- the url ------------------------------------------------------------------------------------------
    def url_for(self, dbname: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        return self.url_for(USER)

    # -- life cycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> "ThrowawayPostgres":
        try:
            self.setup()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def setup(self) -> None:
        """Make the folder, initdb, start on a free port, create the `spark` database."""
        self._make_root()
        self._initdb()
        for attempt in range(3):  # another process may take the free port between our probe and the server
            self.port = free_port()
            self._write_conf()
            try:
                self.start()
                break
            except PostgresStartError as error:
                if attempt == 2 or "could not bind" not in str(error).lower():
                    raise
        self._create_database(USER)
        atexit.register(self.cleanup)  # a session that ends without __exit__ leaves no server behind

    def start(self) -> None:
        """Start the server (same port, same data) and wait until it accepts connections."""
        if self.running:
            return
        done = self._run([self.bin_dir / "pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_S),
                          "-D", self.data_dir, "-l", self.log_file])
        if done.returncode != 0:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise PostgresStartError(f"PostgreSQL did not start on 127.0.0.1:{self.port} (pg_ctl exit "
                                     f"{done.returncode}): {_tail(done.stdout + done.stderr, 5)}\n"
                                     f"server log ({self.log_file}):\n{_tail(log)}")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; the data stays for `start()`. mode: fast (a clean shutdown) or immediate."""
        if not self.running:
            return
        self._run([self.bin_dir / "pg_ctl", "stop", "-w", "-m", mode, "-D", self.data_dir])
        self.running = False

    def restart(self) -> None:
        """Stop, then start again on the same port: open connections are lost, the data is kept."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server at once and remove the folder. Safe to call more than once."""
        try:
            self.stop(mode="immediate")
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None
            atexit.unregister(self.cleanup)

    # -- helpers ------------------------------------------------------------------------------------------
    def _make_root(self) -> None:
        base = Path(tempfile.gettempdir())
        if self._as_nobody and not _traversable_by_others(base):
            base = Path("/tmp")  # the temp folder root chose is closed to `nobody`; /tmp is 1777
        self.root = Path(tempfile.mkdtemp(prefix="pgserver-", dir=base))
        self.data_dir, self.log_file = self.root / "data", self.root / "server.log"
        if self._as_nobody:
            if not _traversable_by_others(self.root.parent):
                raise PostgresStartError(f"{self.root.parent} is not traversable by {UNPRIVILEGED!r}, who runs "
                                         f"the server when we are root: set TMPDIR to a folder that is")
            user = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _initdb(self) -> None:
        done = self._run([self.bin_dir / "initdb", "-D", self.data_dir, "-U", USER, "--auth=trust",
                          "--no-sync", "--encoding=UTF8", "--locale=C"])
        if done.returncode != 0:
            raise PostgresStartError(f"initdb failed (exit {done.returncode}):\n{_tail(done.stdout + done.stderr)}")

    def _write_conf(self) -> None:
        """Settings in postgresql.auto.conf (read last), so every start uses them."""
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        text = "".join(f"{key} = '{value}'\n" for key, value in settings.items())
        conf = self.data_dir / "postgresql.auto.conf"
        conf.write_text(text)
        if self._as_nobody:
            user = pwd.getpwnam(UNPRIVILEGED)
            os.chown(conf, user.pw_uid, user.pw_gid)

    def _create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')

    def _run(self, argv: list) -> subprocess.CompletedProcess:
        """Run a server binary, as `nobody` when we are root; the PG* variables of our environment left out."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs = {}
        if self._as_nobody:
            user = pwd.getpwnam(UNPRIVILEGED)
            kwargs = dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
            env["HOME"] = str(self.root)
        return subprocess.run([str(part) for part in argv], cwd=self.root, env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, **kwargs)


if __name__ == "__main__":  # python -m tests.fakes.pgserver: start one, time it, print its url
    began = time.perf_counter()
    with ThrowawayPostgres() as server:
        print(f"{server.url} ready in {time.perf_counter() - began:.2f} s (data in {server.data_dir})")
