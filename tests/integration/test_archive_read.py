"""The reading commands over the archive and Redis together (contract §7.2,
docs/archive.md "Reading the archive"): `query`, `report`, `verify` and
`export` with `--archive CONNINFO` read a real PostgreSQL 15 for what
`ship` moved out of a real Redis and Redis for the rest, each entry once:
some entries shipped and trimmed, some shipped and still in Redis, some
only in Redis.  `verify --archive` gives the verdict `verify` gives over
the same entries, and sees an entry changed or removed in the archive
behind its triggers.  An archive that cannot be reached is an error,
never an answer from Redis alone; libpq's password and service files are
what the commands use."""

import calendar
import datetime
import json
import subprocess
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey)

from conftest import E1, E2, S
from shipkit import (Shipper, archive, gw, json_lines, pg,  # noqa: F401
                     stop_shippers, tool)

E3 = S.make_uscc("91350100M00010099")
DAY = 86400 * 1000


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    r = S.Redis(tmp_path_factory.mktemp("redis")).start()
    try:
        yield r
    finally:
        r.stop()


def month_start(months_ago):
    """Unix ms of the first instant (UTC) of a month before this one."""
    d = datetime.date.today().replace(day=1)
    for _ in range(months_ago):
        d = (d - datetime.timedelta(days=1)).replace(day=1)
    return calendar.timegm(d.timetuple()) * 1000, d.strftime("%Y-%m")


class Trail:
    """A synthetic stream written as a gateway writes it
    (scripts/stack/auditgen.py), in phases; a mirror stream in the same
    Redis holds every entry ever written (what Redis alone would hold had
    nothing been trimmed); what each request was, for the expected
    answers."""

    def __init__(self, redis, tmp):
        self.priv = Ed25519PrivateKey.generate()
        self.pub = str(tmp / "audit.pub.pem")
        with open(self.pub, "wb") as f:
            f.write(self.priv.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo))
        self.raw = redis.client(decode_responses=False)
        self.redis_addr = redis.address
        self.stream = "credit:audit:read-" + uuid.uuid4().hex[:8]
        self.mirror = self.stream + ":mirror"
        self.w = S.AuditWriter(self.priv, gw="gw-read", lanes=2)
        self.ids = []           # every stream id, in order
        self.requests = []      # (enterprise, bank, decision, month)

    def phase(self, n, ts, month, extra=()):
        """n requests at ts (ms) of month: enterprises and banks in turn,
        every fifth refused without an outcome; then extra ones (ent,
        bank, reason or None); then checkpoints."""
        todo = [((E1, E2, E3)[i % 3], f"BANK00{1 + i % 2}",
                 "token_expired" if i % 5 == 4 else None)
                for i in range(n)] + list(extra)
        self.w.ts = ts
        for ent, bank, reason in todo:
            if reason:
                self.w.decision(enterprise=ent, bank=bank, decision="deny",
                                reason=reason)
                self.requests.append((ent, bank, "deny", month))
            else:
                self.w.request(enterprise=ent, bank=bank)
                self.requests.append((ent, bank, "allow", month))
        self.w.checkpoint()
        self.flush()

    def flush(self):
        """What the writer wrote since, into the stream and the mirror."""
        out = self.w.take()
        for stream in (self.stream, self.mirror):
            p = self.raw.pipeline(transaction=False)
            for fields in out:
                args = []
                for k, v in fields:
                    args += [k, v]
                p.execute_command("XADD", stream, "*", *args)
            ids = [i.decode() for i in p.execute()]
            if stream == self.stream:
                self.ids += ids

    def redis_ids(self):
        return [i.decode() for i, _ in self.raw.xrange(self.stream)]


def read(*args, archive=None, trail=None, pgenv=True, env=None):
    argv = [*args, "--redis", trail.redis_addr, "--tz", "UTC"]
    if "--stream" not in args:
        argv += ["--stream", trail.stream]
    if archive is not None:
        argv += ["--archive", archive.conninfo("reader")]
    return tool(*argv, pgenv=archive.pg if archive and pgenv else None,
                env=env)


@pytest.fixture
def boundary(redis, archive, tmp_path):
    """Three months of requests: the oldest shipped and trimmed, the next
    shipped and still in Redis (--keep 1h), the newest only in Redis."""
    t = Trail(redis, tmp_path)
    s = Shipper(archive, t, tmp_path, user="shipper")
    m2, t.month2 = month_start(2)
    m1, t.month1 = month_start(1)
    m0, t.month0 = month_start(0)
    t.phase(40, m2 + 3 * DAY, t.month2)
    r = s.once("--keep", "0")
    assert r.returncode == 0, r.stderr
    t.phase(30, m1 + 5 * DAY, t.month1)
    r = s.once("--keep", "1h")
    assert r.returncode == 0, r.stderr
    t.phase(25, min(m0 + DAY, int(time.time() * 1000)), t.month0)
    t.shipped = {i for _, i, _, _ in archive.rows(t.stream)}
    in_redis = set(t.redis_ids())
    # the three kinds are all there
    assert t.shipped - in_redis and t.shipped & in_redis \
        and in_redis - t.shipped
    assert t.shipped | in_redis == set(t.ids)
    return t


def chains_of(doc):
    """verify --json without what names the stream or its ids."""
    return sorted((c["chain"], c["entries"], c["first_seq"], c["last_seq"],
                   c["checkpoints"], c["checkpoints_verified"],
                   c["last_signed_seq"], c["unsigned_tail"],
                   c["duplicates"], c["intact"],
                   tuple(b["kind"] for b in c["breaks"]))
                  for c in doc["chains"])


def verdict(doc):
    return (doc["intact"], doc["entries"], doc["breaks"],
            doc["heads_checked"], doc["heads_missing"], chains_of(doc))


def test_export_counts_each_entry_once_in_stream_order(boundary, archive):
    t = boundary
    r = read("export", archive=archive, trail=t)
    assert r.returncode == 0, r.stderr
    assert [e["id"] for e in json_lines(r.stdout)] == t.ids
    # CSV: the same rows, a header first
    r = read("export", "--format", "csv", archive=archive, trail=t)
    assert r.returncode == 0, r.stderr
    assert [line.split(",", 1)[0] for line in r.stdout.splitlines()[1:]] \
        == t.ids
    # a month: the archived and trimmed one
    r = read("export", "--month", t.month2, archive=archive, trail=t)
    want = sum(1 for *_, m in t.requests if m == t.month2)
    decisions = [e for e in json_lines(r.stdout)
                 if e.get("event") == "decision"]
    assert len(decisions) == want
    # without --archive: Redis alone, and a note saying so
    r = read("export", trail=t)
    assert r.returncode == 0
    assert [e["id"] for e in json_lines(r.stdout)] == t.redis_ids()
    assert "--archive" in r.stderr and "trimmed" in r.stderr


def test_requests_view_and_query_across_the_boundary(boundary, archive):
    t = boundary
    # export --view requests: one row per decision
    r = read("export", "--view", "requests", archive=archive, trail=t)
    assert r.returncode == 0, r.stderr
    rows = json_lines(r.stdout)
    assert len(rows) == len(t.requests)
    assert len({row["rid"] for row in rows}) == len(rows)
    # allowed requests carry their outcome's status, across the boundary
    assert sum(row["status"] == "200" for row in rows) == sum(
        1 for _, _, d, _ in t.requests if d == "allow")
    for ent in (E1, E2, E3):
        want = [q for q in t.requests if q[0] == ent]
        # the short view: a line per request, under a header
        r = read("query", "--enterprise", ent, archive=archive, trail=t)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()[1:]
        assert len(lines) == len(want), r.stdout
        # the entries: each decision, each allowed one's outcome
        r = read("query", "--enterprise", ent, "--json", archive=archive,
                 trail=t)
        es = json_lines(r.stdout)
        assert len({e["id"] for e in es}) == len(es)
        assert sum(e["event"] == "decision" for e in es) == len(want)
        assert sum(e["event"] == "outcome" for e in es) == sum(
            1 for q in want if q[2] == "allow")
    # bank and period, pushed down together
    r = read("query", "--bank", "BANK002", "--month", t.month1,
             "--event", "decision", "--json", archive=archive, trail=t)
    assert len(json_lines(r.stdout)) == sum(
        1 for _, b, _, m in t.requests if b == "BANK002" and m == t.month1)
    # --reason alone: the refusals, none twice
    r = read("query", "--reason", "token_expired", "--json",
             archive=archive, trail=t)
    assert len(json_lines(r.stdout)) == sum(
        1 for _, _, d, _ in t.requests if d == "deny")


def test_report_of_a_month_across_the_boundary(boundary, archive):
    t = boundary
    for month in (t.month2, t.month1, t.month0):
        r = read("report", "--month", month, "--json", archive=archive,
                 trail=t)
        assert r.returncode == 0, r.stderr
        m = json.loads(r.stdout)
        want = [q for q in t.requests if q[3] == month]
        assert m["decisions"] == len(want), (month, m["decisions"])
        assert m["outcomes"] == sum(1 for q in want if q[2] == "allow")
    # without the archive the trimmed month reads as empty: the note says
    # why instead of a silent 0
    r = read("report", "--month", t.month2, "--json", trail=t)
    assert json.loads(r.stdout)["decisions"] == 0
    assert "archive" in r.stderr
    # with the keys: the whole trail verified, the month counted
    r = read("report", "--month", t.month2, "--json", "--pubkey", t.pub,
             archive=archive, trail=t)
    m = json.loads(r.stdout)
    assert m["decisions"] == 40 and m["integrity"]["intact"] is True, \
        m["integrity"]


def test_verify_archive_is_verify_of_the_same_entries(boundary, archive):
    t = boundary
    r = read("verify", "--pubkey", t.pub, "--json", archive=archive,
             trail=t)
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(r.stdout)
    r = read("verify", "--pubkey", t.pub, "--json", "--stream", t.mirror,
             trail=t)
    assert r.returncode == 0, r.stderr
    want = json.loads(r.stdout)
    assert verdict(got) == verdict(want)
    assert got["entries"] == len(t.ids)
    # Redis alone lacks the trimmed start of every chain
    r = read("verify", "--pubkey", t.pub, "--json", trail=t)
    assert r.returncode == 1 and "--archive" in r.stderr


def _archived(archive, t, k):
    """The k-th archived decision of the stream: (ord, stream id, raw)."""
    return archive.sql("SELECT ord, stream_id, raw FROM "
                       "credit_audit.entries WHERE stream = %s AND event = "
                       "'decision' ORDER BY ord OFFSET %s LIMIT 1",
                       (t.stream, k))[0]


def _behind_the_triggers(archive, q, args):
    """As a superuser who switches the triggers off: what the archive's
    own defences cannot stop, and what verifying must see."""
    c = archive.pg.connect(dbname=archive.db)
    try:
        with c.cursor() as cur:
            cur.execute("SET session_replication_role = replica")
            cur.execute(q, args)
        c.commit()
    finally:
        c.close()


def test_verify_archive_sees_an_entry_changed_or_removed(boundary, archive):
    t = boundary
    o, sid, raw = _archived(archive, t, 10)
    raw = bytes(raw)
    forged = raw.replace(b"BANK001", b"BANK666").replace(b"BANK002",
                                                         b"BANK666")
    assert forged != raw
    _behind_the_triggers(archive, "UPDATE credit_audit.entries SET raw = %s "
                         "WHERE ord = %s", (forged, o))
    r = read("verify", "--pubkey", t.pub, "--json", archive=archive,
             trail=t)
    assert r.returncode == 1, r.stdout
    doc = json.loads(r.stdout)
    kinds = {(b["kind"], b["id"]) for c in doc["chains"]
             for b in c["breaks"]}
    assert ("modified", sid) in kinds, kinds
    # put back: intact again (what is read is exactly what is stored)
    _behind_the_triggers(archive, "UPDATE credit_audit.entries SET raw = %s "
                         "WHERE ord = %s", (raw, o))
    r = read("verify", "--pubkey", t.pub, archive=archive, trail=t)
    assert r.returncode == 0, r.stdout
    # an entry removed from the archive
    o, sid, _ = _archived(archive, t, 20)
    _behind_the_triggers(archive, "DELETE FROM credit_audit.entries WHERE "
                         "ord = %s", (o,))
    r = read("verify", "--pubkey", t.pub, "--json", archive=archive,
             trail=t)
    assert r.returncode == 1, r.stdout
    doc = json.loads(r.stdout)
    assert doc["entries"] == len(t.ids) - 1
    assert any(b["kind"] == "deleted" for c in doc["chains"]
               for b in c["breaks"]), doc


def test_anchor_taken_before_trimming_still_checks(redis, archive,
                                                   tmp_path):
    t = Trail(redis, tmp_path)
    s = Shipper(archive, t, tmp_path)
    t.phase(30, int(time.time() * 1000), "now")
    anchor = tmp_path / "anchor.json"
    r = tool("anchor", "--redis", t.redis_addr, "--stream", t.stream,
             "--pubkey", t.pub, "--out", str(anchor))
    assert r.returncode == 0, r.stderr
    assert s.once("--keep", "0").returncode == 0
    t.phase(10, int(time.time() * 1000), "now")
    assert len(t.redis_ids()) < len(t.ids)
    r = read("verify", "--pubkey", t.pub, "--anchor", str(anchor),
             archive=archive, trail=t)
    assert r.returncode == 0, r.stdout + r.stderr
    # Redis alone has lost what the anchor names
    r = read("verify", "--pubkey", t.pub, "--anchor", str(anchor), trail=t)
    assert r.returncode == 1


def test_no_note_when_nothing_was_trimmed(redis, archive, tmp_path):
    t = Trail(redis, tmp_path)
    t.phase(5, int(time.time() * 1000), "now")
    s = Shipper(archive, t, tmp_path)
    assert s.once("--keep", "1h").returncode == 0
    r = read("export", trail=t)
    assert r.returncode == 0 and r.stderr == ""
    assert len(json_lines(r.stdout)) == len(t.ids)


def test_an_unreachable_archive_is_an_error_not_a_partial_answer(
        redis, archive, tmp_path):
    t = Trail(redis, tmp_path)
    t.phase(5, int(time.time() * 1000), "now")
    down = f"host=127.0.0.1 port={S.free_port()} dbname=x user=reader"
    for cmd in (["query"], ["report"], ["export"],
                ["export", "--view", "requests"],
                ["verify", "--pubkey", t.pub]):
        r = tool(*cmd, "--redis", t.redis_addr, "--stream", t.stream,
                 "--archive", down)
        assert r.returncode == 2, (cmd, r.stdout)
        assert r.stdout == "" and "archive" in r.stderr, cmd
    # a wrong password from the password file: refused, and not shown
    bad = tmp_path / "pgpass"
    bad.write_text(f"*:*:*:reader:not-{archive.pg.passwords['reader']}\n")
    bad.chmod(0o600)
    r = tool("export", "--redis", t.redis_addr, "--stream", t.stream,
             "--archive", archive.conninfo("reader", tcp=True),
             env={"PGPASSFILE": str(bad)})
    assert r.returncode == 2 and r.stdout == ""
    assert "password" in r.stderr and "not-" not in r.stderr
    # a password on the command line: refused before anything is tried
    pw = archive.pg.passwords["reader"]
    r = tool("export", "--redis", t.redis_addr, "--stream", t.stream,
             "--archive", archive.conninfo("reader") + f" password={pw}")
    assert r.returncode == 2 and pw not in r.stderr + r.stdout


def test_password_and_service_files_are_libpq_s(redis, archive, tmp_path):
    t = Trail(redis, tmp_path)
    t.phase(5, int(time.time() * 1000), "now")
    s = Shipper(archive, t, tmp_path)
    assert s.once("--keep", "0").returncode == 0
    pg_ = archive.pg
    svc = tmp_path / "pg_service.conf"
    svc.write_text(f"[audit]\nhost=127.0.0.1\nport={pg_.port}\n"
                   f"dbname={archive.db}\nuser=reader\nsslmode=disable\n")
    base = ["export", "--redis", t.redis_addr, "--stream", t.stream]
    env = {"PGSERVICEFILE": str(svc), **pg_.env()}
    for how, extra in (("service=audit", {}), ("", {"PGSERVICE": "audit"})):
        r = tool(*base, "--archive", how, env={**env, **extra})
        assert r.returncode == 0, (how, r.stderr)
        assert [e["id"] for e in json_lines(r.stdout)] == t.ids
    # over TCP the login needs its password: without the file, refused
    r = tool(*base, "--archive", "service=audit",
             env={"PGSERVICEFILE": str(svc), "PGPASSFILE": "/nonexistent"})
    assert r.returncode == 2 and r.stdout == "", r.stderr


def _rows_read(archive):
    """Index entries and heap rows the archive's entries gave out so far."""
    archive.sql("SELECT pg_stat_force_next_flush()")
    return archive.sql(
        "SELECT (SELECT coalesce(sum(idx_tup_read), 0) FROM "
        "pg_stat_user_indexes WHERE schemaname = 'credit_audit' AND relname "
        "LIKE 'entries_%%') + (SELECT coalesce(sum(seq_tup_read), 0) FROM "
        "pg_stat_user_tables WHERE schemaname = 'credit_audit' AND relname "
        "LIKE 'entries_%%')")[0][0]


def test_filters_are_answered_by_the_archive_s_indexes(redis, archive,
                                                       tmp_path):
    """A rare enterprise, bank and reason among 200 requests: the archive
    reads their few rows, not the month's."""
    t = Trail(redis, tmp_path)
    e4 = S.make_uscc("91350100M00010077")
    t.phase(200, month_start(1)[0] + DAY, "m1",
            extra=[(e4, "BANK777", None), (E1, "BANK777", None),
                   (e4, "BANK001", "cnf_mismatch")])
    assert Shipper(archive, t, tmp_path).once("--keep", "0").returncode == 0
    total = archive.count(t.stream)
    assert total > 300
    for opt, value, want in (("--enterprise", e4, 2),
                             ("--bank", "BANK777", 2),
                             ("--reason", "cnf_mismatch", 1)):
        before = _rows_read(archive)
        # whether the query can use the index, not the planner's costing
        # of a small table
        r = read("query", opt, value, "--since", "2020-01", "--json",
                 archive=archive, trail=t,
                 env={"PGOPTIONS": "-c enable_seqscan=off"})
        assert r.returncode == 0, r.stderr
        assert sum(e["event"] == "decision"
                   for e in json_lines(r.stdout)) == want, opt
        deadline = time.monotonic() + 10
        while True:
            n = _rows_read(archive) - before
            if n > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert 0 < n < 40, f"{opt}: {n} rows read of {total}"


def test_a_shipper_trimming_while_export_reads(redis, archive, tmp_path):
    """The shipper ships and trims (--keep 0) while export reads: each
    read is the stream's entries from the start, once each, in order,
    with nothing skipped where the trim passed the reader."""
    t = Trail(redis, tmp_path)
    for _ in range(6):
        t.phase(1000, int(time.time() * 1000), "now")
    s = Shipper(archive, t, tmp_path).start("--keep", "0", "--batch", "300")
    try:
        seen_both = 0
        for _ in range(6):
            r = read("export", archive=archive, trail=t)
            assert r.returncode == 0, r.stderr
            ids = [e["id"] for e in json_lines(r.stdout)]
            assert ids == t.ids[:len(ids)] and len(ids) == len(t.ids)
            n = archive.count(t.stream)
            seen_both += 0 < n < len(t.ids)
            if n == len(t.ids):
                break
    finally:
        s.stop()
    assert seen_both, "the shipper finished before a read overlapped it"
