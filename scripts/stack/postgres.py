"""A PostgreSQL 15 server of our own (Debian's postgresql-15 binaries), on a
free loopback port with its unix socket in its own directory: the audit
archive (contract §7.2) in tests and in `make run`.

The server refuses to run as root, so when we are root initdb and the
server run as the unprivileged `postgres` user (`runuser -u postgres`,
the user the postgresql package creates).  Its data directory must then be
reachable by that user: a directory under a root-only parent (pytest's
tmp_path) is replaced by one under /tmp, linked from where it was asked
for.  Never the host's clusters: no pg_ctlcluster, no port 5432.

Roles: the superuser `credit_admin` (trust on the unix socket only, for
setting up), and password logins (scram-sha-256, passwords in a pgpass
file, `env()` gives PGPASSFILE) `shipper`, `reader` and `operator`, which
the tests make members of the archive's roles after `ship --init`.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

from .proc import _children, free_port, subdir, tail, wait_for

PG_BIN = Path(os.environ.get("CREDIT_AUTH_PG_BIN",
                             "/usr/lib/postgresql/15/bin"))
SUPERUSER = "credit_admin"
DATABASE = "credit_audit"
LOGINS = ("shipper", "reader", "operator")


def _as_root():
    return os.geteuid() == 0


def _reachable_by(user, path):
    r = subprocess.run(["runuser", "-u", user, "--", "test", "-w",
                        str(path)], capture_output=True)
    return r.returncode == 0


class Postgres:
    def __init__(self, directory, port=None, user="postgres",
                 database=DATABASE, extra=()):
        """extra: more postgresql.conf lines (a benchmark's memory)."""
        self.home = subdir(directory, "postgres")
        self.port = port or free_port()
        self.database = database
        self.runas = user if _as_root() else None
        self.extra = list(extra)
        self.proc = None
        self.passwords = {name: "pw-" + uuid.uuid4().hex[:12]
                          for name in LOGINS}
        self.base = self.home
        if self.runas is not None:
            os.chmod(self.home, 0o777)
            if not _reachable_by(self.runas, self.home):
                self.base = Path(tempfile.mkdtemp(prefix="credit-pg-"))
                link = self.home / "data-elsewhere"
                if not link.exists():
                    link.symlink_to(self.base)
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.log = self.base / "postgres.log"
        self.passfile = self.home / "pgpass"

    # -- processes -----------------------------------------------------
    def _cmd(self, argv):
        if self.runas is None:
            return [str(a) for a in argv]
        return ["runuser", "-u", self.runas, "--", *map(str, argv)]

    def _own(self, path):
        if self.runas is not None:
            pw = pwd.getpwnam(self.runas)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def init(self):
        if (self.data / "PG_VERSION").exists():
            return self
        for d in (self.base, self.sock):
            d.mkdir(parents=True, exist_ok=True)
            self._own(d)
        os.chmod(self.base, 0o755)
        r = subprocess.run(self._cmd([PG_BIN / "initdb", "-D", self.data,
                                      "-U", SUPERUSER, "-A", "trust",
                                      "-E", "UTF8", "--locale", "C.UTF-8",
                                      "--no-sync"]),
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("initdb failed:\n" + r.stdout + r.stderr)
        (self.data / "pg_hba.conf").write_text(
            f"local all {SUPERUSER} trust\n"
            "local all all scram-sha-256\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# credit-auth tests\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.sock}'\n"
                    "fsync = on\n"
                    "shared_buffers = 64MB\n"
                    "max_connections = 40\n"
                    "log_min_messages = warning\n"
                    + "".join(line + "\n" for line in self.extra))
        self.passfile.write_text("".join(
            f"*:{self.port}:*:{n}:{p}\n" for n, p in self.passwords.items()))
        os.chmod(self.passfile, 0o600)
        return self

    def start(self, timeout=30):
        self.init()
        if not self.log.exists():
            self.log.touch()
            self._own(self.log)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            self._cmd([PG_BIN / "postgres", "-D", self.data]),
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
            start_new_session=True)
        logf.close()
        if not wait_for(self.ready, timeout, 0.1):
            self.kill()
            raise RuntimeError("postgres did not start:\n" + tail(self.log))
        self._bootstrap()
        return self

    def ready(self):
        if self.proc is not None and self.proc.poll() is not None:
            return False
        r = subprocess.run([PG_BIN / "pg_isready", "-q", "-h", self.sock,
                            "-p", str(self.port), "-d", "postgres"],
                           capture_output=True)
        return r.returncode == 0

    def _bootstrap(self):
        """The database and the logins, once."""
        have = self.psql("SELECT 1 FROM pg_database WHERE datname = %s",
                         (self.database,), dbname="postgres")
        if not have:
            self.psql(f'CREATE DATABASE "{self.database}"',
                      dbname="postgres", autocommit=True)
        for name, pw in self.passwords.items():
            if not self.psql("SELECT 1 FROM pg_roles WHERE rolname = %s",
                             (name,)):
                self.psql(f"CREATE ROLE {name} LOGIN PASSWORD %s", (pw,))

    def _postmaster_pid(self):
        try:
            return int((self.data / "postmaster.pid").read_text()
                       .split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self, timeout=30):
        """A fast shutdown (SIGINT: sessions are ended, the server stops
        cleanly)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            pid = self._postmaster_pid() or self.proc.pid
            try:
                os.kill(pid, signal.SIGINT)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()
        self.proc = None

    def kill(self):
        """kill -9 of the server and every backend: the postmaster first
        (runuser leaves it in a session of its own), then its children."""
        if self.proc is None:
            return
        pid = self._postmaster_pid()
        victims = []
        if pid is not None and self.proc.poll() is None:
            victims = [pid] + _children(pid)
        for v in victims:
            try:
                os.kill(v, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None
        # the backends go with the postmaster; the next start finds the
        # stale postmaster.pid, sees no process behind it, and recovers
        wait_for(lambda: not any(Path(f"/proc/{v}").exists()
                                 for v in victims), 10)

    def restart(self):
        self.stop()
        return self.start()

    def remove(self):
        """Stop and delete the data (a directory under /tmp included)."""
        self.stop()
        if self.base != self.home:
            shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)

    # -- clients -------------------------------------------------------
    def conninfo(self, user=SUPERUSER, tcp=False, dbname=None):
        """libpq key=value, no password (PGPASSFILE carries it)."""
        host = "127.0.0.1" if tcp else str(self.sock)
        return (f"host={host} port={self.port} "
                f"dbname={dbname or self.database} user={user}")

    def env(self):
        """What a client process needs besides the conninfo."""
        return {"PGPASSFILE": str(self.passfile)}

    def connect(self, user=SUPERUSER, dbname=None, **kw):
        import psycopg2
        dsn = self.conninfo(user, dbname=dbname)
        if user != SUPERUSER:
            dsn += f" password={self.passwords[user]}"
        return psycopg2.connect(dsn, **kw)

    def psql(self, sql, args=None, user=SUPERUSER, dbname=None,
             autocommit=True):
        """Runs one statement; the rows it returns (a list), or None."""
        c = self.connect(user, dbname)
        try:
            c.autocommit = autocommit
            with c.cursor() as cur:
                cur.execute(sql, args)
                rows = cur.fetchall() if cur.description else None
            if not autocommit:
                c.commit()
            return rows
        finally:
            c.close()

    def grant(self, group, login):
        self.psql(f"GRANT {group} TO {login}")
