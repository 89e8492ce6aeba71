"""What made `credit-audit ship` faster (docs/archive.md, "Measured"),
held with a real gateway, Redis and PostgreSQL 15: the phase clock
(CREDIT_AUDIT_SHIP_STATS) says where the time went; the regulator's
questions, asked with a parameter as the readers ask them, still run on
their (now partial) indexes; the archive's text compares byte by byte.
No timing is asserted."""

import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey)

from conftest import S
from shipkit import (Shipper, archive, assert_exactly_once,  # noqa: F401
                     gw, pg, stop_shippers, tool)

PHASES = ("read (XREADGROUP)", "parse", "lock (BEGIN, rows)", "verify",
          "encode (COPY rows)", "COPY entries", "state (chains, log)",
          "COMMIT", "XACK", "trim, lag, metrics")


def test_ship_stats_say_where_the_time_went(gw, archive, tmp_path):
    gw.traffic(6)
    before = gw.wait_signed()
    s = Shipper(archive, gw, tmp_path)
    r = tool(*s.argv("--once", "--keep", "0", "--batch", "5"),
             env={"CREDIT_AUDIT_SHIP_STATS": "1"}, pgenv=archive.pg)
    assert r.returncode == 0, r.stderr
    assert_exactly_once(archive, gw, before)
    batches = -(-len(before) // 5)
    m = re.search(r"ship: (\d+) entries, (\d+) batches, ([\d.]+) s in the "
                  r"phases:", r.stderr)
    assert m, r.stderr
    assert (int(m.group(1)), int(m.group(2))) == (len(before), batches)
    took = {}
    for line in r.stderr.splitlines():
        for p in PHASES:
            if line.startswith("  " + p + " "):
                took[p] = float(line[len(p) + 2:].split()[0])
    assert set(took) == set(PHASES), r.stderr
    assert abs(sum(took.values()) - float(m.group(3))) < 0.01
    assert took["verify"] > 0 and took["COMMIT"] > 0
    # without the variable: nothing of the kind
    gw.traffic(1)
    gw.wait_signed()
    r = s.once("--keep", "0")
    assert r.returncode == 0 and "phases" not in r.stderr, r.stderr


# The regulator's questions as a reader asks them: a prepared statement
# with a parameter, run with a generic plan (what a driver's prepared
# statement gets after five runs), sequential scans off so that a tiny
# test archive still shows which index the planner may use.
QUESTIONS = {
    "enterprise": "SELECT bank, count(*) FROM credit_audit.entries WHERE "
                  "enterprise = $1 AND entry_time >= now() - interval "
                  "'12 months' AND event = 'decision' GROUP BY bank",
    "bank": "SELECT count(*) FROM credit_audit.entries WHERE bank = $1 AND "
            "entry_time >= now() - interval '1 month'",
    "consent": "SELECT rid FROM credit_audit.entries WHERE consent = $1 AND "
               "entry_time >= now() - interval '12 months'",
    "rid": "SELECT event FROM credit_audit.entries WHERE rid = $1 AND "
           "entry_time >= now() - interval '1 day'",
    "reason": "SELECT count(*) FROM credit_audit.entries WHERE reason = $1 "
              "AND entry_time >= now() - interval '1 month'",
}


def plan(archive, sql, arg):
    c = archive.pg.connect(dbname=archive.db)
    try:
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("SET enable_seqscan = off")
            cur.execute("SET plan_cache_mode = force_generic_plan")
            cur.execute(f"PREPARE q(text) AS {sql}")
            cur.execute("EXPLAIN EXECUTE q(%s)", (arg,))
            return "\n".join(r[0] for r in cur.fetchall())
    finally:
        c.close()


def test_regulator_questions_run_on_their_indexes(gw, archive, tmp_path):
    gw.traffic(8)
    before = gw.wait_signed()
    s = Shipper(archive, gw, tmp_path)
    assert s.once("--keep", "0").returncode == 0
    assert_exactly_once(archive, gw, before)
    archive.sql("VACUUM ANALYZE credit_audit.entries")
    for col, sql in QUESTIONS.items():
        p = plan(archive, sql, "x")
        assert "Seq Scan" not in p, (col, p)
        # the month partition's copy of entries_<col>: <col>_entry_time
        assert re.search(rf"Index (Only )?Scan using \w*{col}_entry_time\w*",
                         p) or re.search(rf"Bitmap Index Scan on "
                                         rf"\w*{col}_entry_time\w*", p), \
            (col, p)
    # "which banks queried X": the index answers alone
    assert "Index Only Scan" in plan(archive, QUESTIONS["enterprise"], "x")


def test_archive_text_compares_byte_by_byte(archive):
    cols = archive.sql(
        "SELECT column_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = 'credit_audit' AND table_name = 'entries' AND "
        "data_type = 'text'")
    assert len(cols) > 30
    assert {c for c, coll in cols if coll != "C"} == set()


def test_a_row_refused_while_the_rows_are_still_sent(gw, archive, tmp_path):
    """The rows go to the server in pieces while they are encoded, so the
    server may refuse one (a unique key) before the last piece is sent:
    that is still "the archive already holds some of this batch" (state
    reloaded, the batch redone, never a row skipped), not a lost
    connection.  A batch of several megabytes, the refused row early."""
    priv = Ed25519PrivateKey.generate()
    pub = tmp_path / "big.pub.pem"
    pub.write_bytes(priv.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
    stream = gw.stream + ":big"
    w = S.AuditWriter(priv, gw="gw-big", lanes=4)
    for i in range(2500):
        w.request(bank=f"BANK{i % 37:03d}")
        if i % 100 == 99:
            w.checkpoint()
    w.checkpoint()
    ids = w.xadd(gw.raw, stream)
    assert len(ids) > 5000
    second = gw.raw.xrange(stream, ids[1], ids[1])[0]
    ts = int(second[1][b"ts"])
    archive.sql("SELECT credit_audit.ensure_month(to_timestamp(%s / 1000.0))",
                (ts,))
    archive.sql("INSERT INTO credit_audit.entries (ord, entry_time, stream, "
                "stream_id, raw) VALUES (1000000, to_timestamp(%s / 1000.0), "
                "%s, %s, '\\x00')", (ts, stream, ids[1].decode()))
    s = Shipper(archive, gw, tmp_path)
    argv = s.argv("--once", "--keep", "0", "--batch", "10000",
                  stream=stream)
    argv[argv.index("--pubkey") + 1] = str(pub)
    r = tool(*argv, pgenv=archive.pg)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "already holds" in r.stderr and "duplicate key" in r.stderr, \
        r.stderr
    assert archive.count(stream) == 1               # only the planted row
    assert archive.sql("SELECT next_ord FROM credit_audit.log") == [(0,)]
    assert gw.raw.xlen(stream) == len(ids)          # nothing trimmed
