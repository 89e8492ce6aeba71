"""credit-audit ship (contract §7.2) with a real gateway writing the stream,
a real Redis and a real PostgreSQL 15: every entry archived once, byte
for byte; trimmed only once archived and older than --keep; a break found
while shipping archived, recorded, its chain kept in Redis until
acknowledged; a writer that never reloads shipped as it goes; a month
exported verified; metrics that promtool accepts; the lag published."""

import json
import subprocess
import time

import pytest

from conftest import S
from shipkit import (Shipper, archive, assert_exactly_once,  # noqa: F401
                     decode_raw, gw, json_lines, lag_key, pg, stop_shippers,
                     tool)


def test_ship_needs_its_options(gw, archive, tmp_path):
    s = Shipper(archive, gw, tmp_path)
    r = tool("ship", "--archive", archive.conninfo(), "--once")
    assert r.returncode == 2 and "--pubkey" in r.stderr
    r = tool("ship", "--once", "--pubkey", gw.pub)
    assert r.returncode == 2 and "--archive" in r.stderr
    for bad in (["--keep", "soon"], ["--batch", "0"], ["--interval", "0"]):
        r = tool(*s.argv(*bad))
        assert r.returncode == 2 and bad[0] in r.stderr, bad
    # a stream that does not exist is an error, not an empty success
    r = s.once(stream="credit:audit:no-such-stream")
    assert r.returncode == 2 and "does not exist" in r.stderr
    # an archive without the schema says what to run
    archive.pg.psql('CREATE DATABASE "bare"', dbname="postgres")
    r = tool("ship", "--once", "--archive",
             archive.pg.conninfo("credit_admin", dbname="bare"),
             "--redis", gw.redis_addr, "--stream", gw.stream,
             "--pubkey", gw.pub)
    assert r.returncode == 2 and "ship --init" in r.stderr


def test_every_entry_archived_once_byte_for_byte(gw, archive, tmp_path):
    gw.traffic(12)
    before = gw.wait_signed()
    s = Shipper(archive, gw, tmp_path)
    r = s.once("--keep", "0", "--batch", "7")
    assert r.returncode == 0, r.stderr
    assert f"{len(before)} entries archived" in r.stdout
    rows = assert_exactly_once(archive, gw, before)
    assert [i for _, i, _, _ in rows] == [i for i, _ in before]
    assert all(c is None for _, _, c, _ in rows)
    # archived and older than --keep 0: gone from Redis
    assert gw.xlen() == 0
    # the typed columns say what the entries say
    for (o, i, _, raw), (_, fields) in zip(rows, before):
        d = dict(decode_raw(raw))
        ev, ts, chain, seq, h = archive.sql(
            "SELECT event, ts, chain, seq, hash FROM credit_audit.entries "
            "WHERE ord = %s", (o,))[0]
        assert (ev, str(ts), chain, str(seq), h) == tuple(
            d[k].decode() for k in (b"event", b"ts", b"chain", b"seq",
                                    b"hash"))
    # the shipper's state per chain: its head, verified
    for chain, last_seq, signed in archive.sql(
            "SELECT chain, last_seq, signed_seq FROM credit_audit.chains"):
        tail = [dict(f) for _, f in before if dict(f)[b"chain"]
                == chain.encode()][-1]
        assert int(tail[b"seq"]) == last_seq
        assert signed == last_seq - 1       # each ends in its checkpoint
    # a second run finds nothing new and changes nothing
    r = s.once("--keep", "0")
    assert r.returncode == 0 and "0 entries archived" in r.stdout
    assert archive.count(gw.stream) == len(before)
    k = lag_key(gw)
    assert k["lag_ms"] == "0" and k["archived_id"] == before[-1][0]
    assert k["archived"] == str(len(before)) and k["findings_open"] == "0"
    assert abs(int(k["updated_ms"]) - time.time() * 1000) < 60000


def test_keep_leaves_the_recent_entries_in_redis(gw, archive, tmp_path):
    gw.traffic(4)
    before = gw.wait_signed()
    s = Shipper(archive, gw, tmp_path)
    r = s.once("--keep", "1h")
    assert r.returncode == 0, r.stderr
    assert archive.count(gw.stream) == len(before)
    assert gw.xlen() == len(before)        # archived, but recent
    # the group acknowledged them all
    assert gw.raw.xpending(gw.stream, "credit-audit-ship")["pending"] == 0
    r = s.once("--keep", "0")
    assert gw.xlen() == 0 and archive.count(gw.stream) == len(before)


def test_a_writer_that_never_reloads_is_shipped_as_it_goes(gw, archive,
                                                          tmp_path):
    """No chain has ended: the worker is alive throughout.  Each run ships
    and trims what there is; the chains continue across runs without a
    finding, and the archive holds each chain's seqs 1..N once."""
    s = Shipper(archive, gw, tmp_path)
    seen = []
    for round_ in range(3):
        gw.traffic(5)
        es = gw.wait_signed()
        seen += [e for e in es if e[0] not in {i for i, _ in seen}]
        r = s.once("--keep", "0")
        assert r.returncode == 0, r.stdout + r.stderr
        assert gw.xlen() == 0
    assert archive.findings(gw.stream) == []
    assert_exactly_once(archive, gw, seen)
    for chain, n, lo, hi in archive.sql(
            "SELECT chain, count(*), min(seq), max(seq) FROM "
            "credit_audit.entries GROUP BY chain"):
        assert (lo, hi) == (1, n), chain


def copy_stream(gw, entries, edit=None):
    """entries into a new stream of the same Redis (new ids), the one at
    index edit[0] with field edit[1] set to edit[2] (hash left as was)."""
    dst = gw.stream + ":copy"
    for k, (_, fields) in enumerate(entries):
        if edit and k == edit[0]:
            fields = [(n, edit[2] if n == edit[1] else v)
                      for n, v in fields]
        args = []
        for n, v in fields:
            args += [n, v]
        gw.raw.execute_command("XADD", dst, "*", *args)
    return dst


def test_tampered_entry_is_a_finding_and_its_chain_stays(gw, archive,
                                                        tmp_path):
    gw.traffic(6)
    es = gw.wait_signed()
    # an allow decision in the middle of a lane chain, its bank changed
    k = next(n for n, (_, f) in enumerate(es[len(es) // 3:], len(es) // 3)
             if dict(f)[b"event"] == b"decision")
    chain = dict(es[k][1])[b"chain"]
    dst = copy_stream(gw, es, (k, b"bank", b"BANK666"))
    copied = [(i.decode(), list(f.items())) for i, f in gw.raw.xrange(dst)]
    s = Shipper(archive, gw, tmp_path)
    r = s.once("--keep", "0", stream=dst)
    assert r.returncode == 1, r.stdout + r.stderr     # a finding
    assert "FINDING" in r.stderr and "modified" in r.stderr
    # archived anyway, as it was: the evidence
    rows = archive.rows(dst)
    assert [decode_raw(raw) for _, _, _, raw in rows] == \
        [f for _, f in copied]
    f = archive.findings(dst)
    assert [(x[1], x[2].encode(), x[3]) for x in f] == \
        [("modified", chain, copied[k][0])]
    # the chain stays in Redis from the break on; every other entry went
    left = [(i.decode(), dict(fl)) for i, fl in gw.raw.xrange(dst)]
    assert left and all(d[b"chain"] == chain for _, d in left)
    assert [i for i, _ in left] == [i for i, fl in copied[k:]
                                    if dict(fl)[b"chain"] == chain]
    assert s.metric("credit_audit_ship_findings_total",
                    'kind="modified"') == 1
    assert s.metric("credit_audit_ship_findings_open") == 1
    assert lag_key(type("G", (), {"raw": gw.raw, "stream": dst})())[
        "findings_open"] == "1"
    # the findings command lists it (exit 1: open), acknowledges it
    fa = ["--archive", archive.conninfo("operator"), "--stream", dst]
    r = tool("findings", *fa, pgenv=archive.pg)
    assert r.returncode == 1 and "modified" in r.stdout and "open" in r.stdout
    r = tool("findings", *fa, "--json", pgenv=archive.pg)
    (doc,) = json_lines(r.stdout)
    assert doc["kind"] == "modified" and doc["acknowledged_at"] is None
    r = tool("findings", "--archive", archive.conninfo("reader"),
             "--stream", dst, "--acknowledge", str(doc["id"]),
             pgenv=archive.pg)
    assert r.returncode == 2 and "permission denied" in r.stderr
    r = tool("findings", *fa, "--acknowledge", str(doc["id"]), "--by",
             "alice", "--note", "copied stream, bank edited on purpose",
             pgenv=archive.pg)
    assert r.returncode == 0, r.stderr
    assert "acknowledged" in r.stdout and "alice" in r.stdout
    r = tool("findings", *fa, "--acknowledge", str(doc["id"]), "--by", "bob",
             pgenv=archive.pg)
    assert r.returncode == 2 and "was acknowledged" in r.stderr
    r = tool("findings", *fa, pgenv=archive.pg)
    assert r.returncode == 0 and "0 open" in r.stdout
    r = tool("findings", *fa, "--all", pgenv=archive.pg)
    assert "alice" in r.stdout and "role operator" in r.stdout
    # acknowledged: the chain goes too
    r = s.once("--keep", "0", stream=dst)
    assert r.returncode == 0 and gw.raw.xlen(dst) == 0
    assert archive.count(dst) == len(copied)


def test_forged_second_entry_is_archived_beside_the_first(gw, archive,
                                                          tmp_path):
    gw.traffic(3)
    es = gw.wait_signed()
    k = next(n for n, (_, f) in enumerate(es)
             if dict(f)[b"event"] == b"outcome")
    forged = [(n, b"404" if n == b"status" else v) for n, v in es[k][1]]
    h = S.entry_hash(forged)
    forged = [(n, h.encode() if n == b"hash" else v) for n, v in forged]
    dup = es[k - 1 if k else 0]
    dst = copy_stream(gw, es + [(None, forged), dup])
    s = Shipper(archive, gw, tmp_path)
    r = s.once("--keep", "1h", stream=dst)
    assert r.returncode == 1
    rows = archive.rows(dst)
    assert len(rows) == len(es) + 2
    first = {o for o, _, _, _ in rows}
    # the forgery and the identical copy point at the entries that hold
    # their seqs; only the forgery is a finding
    forged_row, dup_row = rows[-2], rows[-1]
    assert forged_row[2] == rows[k][0] and dup_row[2] == rows[es.index(
        dup)][0]
    assert forged_row[2] in first
    assert [(x[1], x[3]) for x in archive.findings(dst)] == \
        [("inserted", forged_row[1])]
    assert s.metric("credit_audit_ship_duplicates_total") == 1
    assert s.metric("credit_audit_ship_copies_total") == 2


def test_metrics_pass_promtool(gw, archive, tmp_path):
    gw.traffic(2)
    gw.wait_signed()
    s = Shipper(archive, gw, tmp_path)
    assert s.once("--keep", "0").returncode == 0
    text = s.metrics.read_text()
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert s.metric("credit_audit_ship_entries_total") == archive.count(
        gw.stream)
    assert s.metric("credit_audit_ship_lag_seconds") == 0
    assert s.metric("credit_audit_ship_last_commit_timestamp_seconds") > \
        time.time() - 120
    for kind in ("modified", "inserted", "deleted", "reordered",
                 "truncated", "bad_signature", "discontinuity"):
        assert s.metric("credit_audit_ship_findings_total",
                        f'kind="{kind}"') == 0


def test_month_export_is_verified(gw, archive, tmp_path):
    gw.traffic(5)
    es = gw.wait_signed()
    s = Shipper(archive, gw, tmp_path)
    assert s.once("--keep", "0").returncode == 0
    month = time.strftime("%Y-%m", time.gmtime(int(dict(es[0][1])[b"ts"])
                                               / 1000))
    out = tmp_path / "month.jsonl"
    base = ["archive", "--month", month, "--tz", "UTC", "--archive",
            archive.conninfo("reader"), "--stream", gw.stream,
            "--pubkey", gw.pub]
    r = tool(*base, "--out", str(out), pgenv=archive.pg)
    assert r.returncode == 0, r.stderr
    lines = json_lines(out.read_text())
    assert [l["id"] for l in lines] == [i for i, _ in es]
    assert [l["ord"] for l in lines] == list(range(len(es)))
    for l, (_, fields) in zip(lines, es):
        assert l["fields"] == {n.decode(): v.decode() for n, v in fields}
        assert "raw" not in l
    man = json.loads((tmp_path / "month.jsonl.manifest.json").read_text())
    import hashlib
    assert man["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert man["entries"] == len(es) and man["verified"] is True
    assert man["findings"] == [] and man["month"] == month
    # never written over
    r = tool(*base, "--out", str(out), pgenv=archive.pg)
    assert r.returncode == 2 and "never written over" in r.stderr
    # the old Redis mode is gone, with a pointer
    r = tool("archive", "--before", "2026-01", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "ship" in r.stderr
    # a typed column changed behind the triggers' back: refused, nothing
    # written
    archive.sql("ALTER TABLE credit_audit.entries DISABLE TRIGGER USER")
    archive.sql("UPDATE credit_audit.entries SET bank = 'BANK666' WHERE "
                "ord = (SELECT min(ord) FROM credit_audit.entries WHERE "
                "bank IS NOT NULL)")
    archive.sql("ALTER TABLE credit_audit.entries ENABLE TRIGGER USER")
    bad = tmp_path / "bad.jsonl"
    r = tool(*base, "--out", str(bad), pgenv=archive.pg)
    assert r.returncode == 1 and "column bank" in r.stderr
    assert not bad.exists() and not (tmp_path / "bad.jsonl.tmp").exists()
    # a verbatim copy changed: its break is not one the archive recorded
    archive.sql("ALTER TABLE credit_audit.entries DISABLE TRIGGER USER")
    archive.sql("UPDATE credit_audit.entries SET bank = 'BANK001', raw = "
                "overlay(raw placing 'X'::bytea from length(raw) - 70) "
                "WHERE bank = 'BANK666'")
    archive.sql("ALTER TABLE credit_audit.entries ENABLE TRIGGER USER")
    r = tool(*base, "--out", str(bad), pgenv=archive.pg)
    assert r.returncode == 1 and "did not record" in r.stderr
    assert not bad.exists()


def test_a_row_the_archive_refuses_rolls_the_batch_back(gw, archive,
                                                        tmp_path):
    """The database's own keys behind the shipper's state: an entry that
    is (somehow) archived already makes the whole batch roll back, never
    a row skipped (a gap in archive orders, or lost evidence)."""
    gw.traffic(3)
    es = gw.wait_signed()
    third = es[2]
    ts = int(dict(third[1])[b"ts"])
    archive.sql("SELECT credit_audit.ensure_month(to_timestamp(%s / 1000.0))",
                (ts,))
    archive.sql("INSERT INTO credit_audit.entries (ord, entry_time, stream, "
                "stream_id, raw) VALUES (1000000, to_timestamp(%s / 1000.0), "
                "%s, %s, '\\x00')", (ts, gw.stream, third[0]))
    s = Shipper(archive, gw, tmp_path)
    r = s.once("--keep", "0")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "already holds" in r.stderr and "duplicate key" in r.stderr, \
        r.stderr
    assert archive.count(gw.stream) == 1            # only the planted row
    assert archive.sql("SELECT next_ord FROM credit_audit.log") == [(0,)]
    assert gw.xlen() == len(es)                     # nothing trimmed
