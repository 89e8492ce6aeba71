"""What the archive's tests share (test_archive_*.py): a PostgreSQL 15 of
our own, a fresh archive database per test with `ship --init` run as its
owner and the roles granted to the logins, our own gateway writing to its
own stream, traffic through it, and `credit-audit ship` runs."""

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import E1, PURPOSE, ROOT, TAX, S

TOOL = Path(os.environ.get("CREDIT_AUDIT_BIN")
            or Path(ROOT) / "build" / "bin" / "credit-audit")
GROUPS = {"shipper": "credit_audit_shipper", "reader": "credit_audit_reader",
          "operator": "credit_audit_acknowledger"}


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    p = S.Postgres(tmp_path_factory.mktemp("pg")).start()
    try:
        yield p
    finally:
        p.remove()


@pytest.fixture
def archive(pg):
    """A fresh archive database for the test."""
    return Archive(pg)


@pytest.fixture
def gw(env):
    """Our own gateway on its own stream, stopped after the test."""
    g = Gateway(env)
    yield g
    g.stop()


class Archive:
    """One archive database on pg, initialised, roles granted."""

    def __init__(self, pg, name=None):
        self.pg = pg
        self.db = name or "archive_" + uuid.uuid4().hex[:8]
        pg.psql(f'CREATE DATABASE "{self.db}"', dbname="postgres")
        r = tool("ship", "--init", "--archive", self.conninfo("credit_admin"))
        assert r.returncode == 0, r.stderr
        for login, group in GROUPS.items():
            pg.grant(group, login)

    def conninfo(self, user="shipper", tcp=False):
        return self.pg.conninfo(user, tcp=tcp, dbname=self.db)

    def sql(self, q, args=None, user="credit_admin"):
        return self.pg.psql(q, args, user=user, dbname=self.db)

    def rows(self, stream):
        """[(ord, stream_id, copy_of, raw bytes)] in archive order."""
        return [(o, i, c, bytes(r)) for o, i, c, r in self.sql(
            "SELECT ord, stream_id, copy_of, raw FROM credit_audit.entries "
            "WHERE stream = %s ORDER BY ord", (stream,))]

    def count(self, stream=None):
        if stream is None:
            return self.sql("SELECT count(*) FROM credit_audit.entries")[0][0]
        return self.sql("SELECT count(*) FROM credit_audit.entries WHERE "
                        "stream = %s", (stream,))[0][0]

    def findings(self, stream):
        return self.sql("SELECT id, kind, chain, stream_id, seq, "
                        "acknowledged_at FROM credit_audit.findings WHERE "
                        "stream = %s ORDER BY id", (stream,))


def decode_raw(raw):
    """The verbatim copy back into [(name, value)] (bytes)."""
    out, i = [], 0
    while i < len(raw):
        n = int.from_bytes(raw[i:i + 4], "big")
        name = raw[i + 4:i + 4 + n]
        i += 4 + n
        n = int.from_bytes(raw[i:i + 4], "big")
        value = raw[i + 4:i + 4 + n]
        i += 4 + n
        out.append((name, value))
    return out


def tool(*args, env=None, timeout=120, pgenv=None, input=None):
    e = dict(os.environ)
    e.update(env or {})
    if pgenv is not None:
        e.update(pgenv.env())
    return subprocess.run([str(TOOL), *args], capture_output=True, text=True,
                          env=e, timeout=timeout, input=input)


class Gateway:
    """Our own gateway on the session's files and Redis, writing to its own
    stream with checkpoints every 200 ms; traffic through it."""

    def __init__(self, env, stream=None):
        self.env = env
        self.stream = stream or "credit:audit:ship-" + uuid.uuid4().hex[:8]
        self.gw = env.st.make_gateway(
            stream=self.stream, gateway_id="gw-ship",
            http_directives={"credit_auth_audit_key":
                             f"{env.st.audit_key} interval=200ms"})
        self.gw.start()
        self.raw = env.st.redis.client(decode_responses=False)
        self.redis_addr = env.st.redis.directive_value()
        self.pub = str(env.st.audit_pub)
        self._stop = threading.Event()
        self._thread = None
        self.sent = 0

    def request(self, bank="BANK001"):
        priv, _ = self.env.key("e1-es256")
        c = S.claims(E1, bank)
        h = {"X-Credit-Purpose": PURPOSE,
             "Authorization": "Bearer " + S.mint_token(priv, "ES256",
                                                       "e1-es256", c)}
        cert = self.env.certs[bank]
        r = requests.get(self.gw.url(TAX), headers=h,
                         cert=(cert.cert, cert.key),
                         verify=self.env.pki.server_ca_path, timeout=10)
        self.sent += 1
        return r

    def traffic(self, n):
        for _ in range(n):
            assert self.request().status_code == 200

    def start_traffic(self, pause=0.0):
        def loop():
            while not self._stop.is_set():
                try:
                    self.request()
                except requests.RequestException:
                    pass
                if pause:
                    time.sleep(pause)
        self._stop.clear()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_traffic(self):
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    def entries(self):
        """[(id str, [(name, value)] bytes)] in stream order."""
        return [(i.decode(), list(f.items()))
                for i, f in self.raw.xrange(self.stream)]

    def xlen(self):
        return self.raw.xlen(self.stream)

    def wait_signed(self, timeout=10.0):
        """Until every chain ends in a checkpoint covering all before it
        and nothing new arrives for a while."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            es = self.entries()
            last = {}
            for _, f in es:
                d = dict(f)
                last[d[b"chain"]] = d
            if last and all(d.get(b"event") == b"checkpoint"
                            and int(d[b"covers"]) + 1 == int(d[b"seq"])
                            for d in last.values()):
                time.sleep(0.5)
                if len(self.entries()) == len(es):
                    return es
            time.sleep(0.1)
        pytest.fail("chains not all signed")

    def stop(self):
        self.stop_traffic()
        self.gw.stop()


_RUNNING = []


@pytest.fixture(autouse=True)
def stop_shippers():
    """No shipper outlives its test, whatever failed."""
    yield
    while _RUNNING:
        _RUNNING.pop().stop()


class Shipper:
    """`credit-audit ship` against one stream and archive."""

    def __init__(self, archive, gw, tmp, name="s1", user="shipper"):
        self.archive, self.gw = archive, gw
        self.name = name
        self.metrics = Path(tmp) / f"{name}.prom"
        self.log = Path(tmp) / f"{name}.log"
        self.user = user
        self.proc = None

    def argv(self, *extra, stream=None):
        return ["ship", "--archive", self.archive.conninfo(self.user),
                "--redis", self.gw.redis_addr,
                "--stream", stream or self.gw.stream,
                "--pubkey", self.gw.pub, "--consumer", self.name,
                "--metrics", str(self.metrics), *extra]

    def once(self, *extra, **kw):
        return tool(*self.argv("--once", *extra, **kw),
                    pgenv=self.archive.pg)

    def start(self, *extra):
        env = dict(os.environ)
        env.update(self.archive.pg.env())
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([str(TOOL), *self.argv(
            "--interval", "200ms", *extra)], stdout=self.logf,
            stderr=self.logf, env=env, start_new_session=True)
        _RUNNING.append(self)
        return self

    def kill9(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def metric(self, name, labels=None):
        """The value of one metric line, or None."""
        try:
            text = self.metrics.read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + "{") and (labels is None
                                                or labels in line):
                return float(line.rsplit(" ", 1)[1])
        return None

    def logtext(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def lag_key(gw):
    """The shipper's published state (docs/archive.md)."""
    h = gw.raw.hgetall(gw.stream + ":shipper")
    return {k.decode(): v.decode() for k, v in h.items()}


def assert_exactly_once(archive, gw, redis_entries):
    """Every entry Redis held archived once, byte for byte, archive orders
    contiguous from where the stream's first entry went."""
    rows = archive.rows(gw.stream)
    by_id = {}
    for o, i, c, raw in rows:
        assert i not in by_id, f"stream id {i} archived twice"
        by_id[i] = (o, decode_raw(raw))
    missing = [i for i, _ in redis_entries if i not in by_id]
    assert missing == [], f"{len(missing)} entries not archived"
    for i, fields in redis_entries:
        assert by_id[i][1] == fields, f"entry {i} archived differently"
    ords = sorted(o for o, _, _, _ in rows)
    assert ords == list(range(ords[0], ords[0] + len(ords)))
    total = archive.sql("SELECT next_ord, (SELECT count(*) FROM "
                        "credit_audit.entries) FROM credit_audit.log")[0]
    assert total[0] == total[1]
    assert archive.sql("SELECT min(ord), max(ord) FROM credit_audit.entries")[
        0] == (0, total[0] - 1)
    return rows


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]
