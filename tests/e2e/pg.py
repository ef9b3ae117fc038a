"""A throwaway PostgreSQL server for end-to-end tests (as src/testing/postgres_server.h).

    with PostgresServer() as pg:
        url = pg.create_database("shared")

initdb into a new temporary folder (UTF8, the C locale, password authentication
over TCP), `pg_ctl start` with fsync=on, listening on 127.0.0.1 on a free port
with the unix socket in that folder. PostgreSQL refuses to run as root: as root
the folder is given to the `postgres` user and the programs run through
`runuser -u postgres --`. Leaving the `with` block (or stop()) stops the server
and removes the folder.

`unavailable()` says why no server can be started ("" when one can), for
`self.skipTest(...)`.
"""

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile

PG_BIN = os.environ.get("POSTLINE_PG_BIN") or "/usr/lib/postgresql/15/bin"


def unavailable():
    """Why a server cannot be started here, or "" when it can."""
    if not os.access(os.path.join(PG_BIN, "initdb"), os.X_OK):
        return (f"PostgreSQL is not installed (no initdb in {PG_BIN}; "
                "scripts/bootstrap installs postgresql)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run PostgreSQL as"
    return ""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self):
        why = unavailable()
        if why:
            raise RuntimeError(why)
        self.dir = tempfile.mkdtemp(prefix="postline-pg-")
        self.password = "pw-" + secrets.token_hex(8)
        self.port = None
        self._running = False
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _run(self, *args):
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["/usr/sbin/runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=120)

    def _give(self, path):
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(path, user.pw_uid, user.pw_gid)

    def _start(self):
        self._give(self.dir)
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        self._give(pwfile)
        # The server runs with fsync=on; initdb's final sync of a cluster that
        # is thrown away after the test is skipped (--no-sync).
        r = self._run(os.path.join(PG_BIN, "initdb"), "-D", os.path.join(self.dir, "data"),
                      "-U", "postgres", f"--pwfile={pwfile}", "--auth-local=trust",
                      "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
        os.remove(pwfile)
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{r.stdout}{r.stderr}")
        for _ in range(5):  # the free port may be taken before the server binds it
            port = _free_port()
            r = self._run(os.path.join(PG_BIN, "pg_ctl"), "-D", os.path.join(self.dir, "data"),
                          "-l", os.path.join(self.dir, "server.log"), "-w", "-t", "60", "-o",
                          f"-c listen_addresses=127.0.0.1 -p {port} -k {self.dir} -c fsync=on",
                          "start")
            if r.returncode == 0:
                self.port = port
                self._running = True
                return
        log = ""
        try:
            with open(os.path.join(self.dir, "server.log")) as f:
                log = f.read()[-2000:]
        except OSError:
            pass
        raise RuntimeError(f"pg_ctl start failed:\n{r.stdout}{r.stderr}\n{log}")

    def url(self, name):
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{name}"

    def psql(self, name, sql):
        """Runs `sql` on database `name` with psql; returns its unaligned output."""
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", self.url(name), "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def create_database(self, name):
        """Creates database `name` (letters, digits, '_'); returns its URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and '_' only")
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self):
        if self._running:
            self._running = False
            # Immediate: no shutdown checkpoint for a cluster deleted next.
            self._run(os.path.join(PG_BIN, "pg_ctl"), "-D", os.path.join(self.dir, "data"),
                      "-m", "immediate", "-w", "-t", "60", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
