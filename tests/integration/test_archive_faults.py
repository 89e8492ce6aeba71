"""credit-audit ship when things fail (contract §7.2, docs/archive.md
"Failure modes"), with a real gateway under traffic, a real Redis and a
real PostgreSQL 15: the shipper killed -9 inside a batch's transaction,
two shippers at once with the active one killed, a crash between the
archive's commit and Redis's acknowledgement, and PostgreSQL down for a
while.  Each time: nothing lost, nothing twice, nothing trimmed that is
not archived."""

import time

import psycopg2
import pytest

from conftest import S
from shipkit import (Shipper, archive, assert_exactly_once,  # noqa: F401
                     gw, lag_key, pg, stop_shippers, tool)


def in_transaction(archive, timeout=20.0):
    """Waits until a shipper's session is inside a transaction (a batch
    being written); True when seen."""
    c = archive.pg.connect(dbname=archive.db)
    c.autocommit = True
    try:
        deadline = time.monotonic() + timeout
        with c.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                            "application_name = 'credit-audit ship' AND "
                            "xact_start IS NOT NULL AND query NOT LIKE "
                            "'%pg_try_advisory_lock%'")
                if cur.fetchone()[0] > 0:
                    return True
        return False
    finally:
        c.close()


def wait(pred, timeout=30.0, what="condition"):
    v = S.wait_for(pred, timeout, 0.1)
    assert v, f"timed out waiting for {what}"
    return v


def chains_whole(archive, stream):
    """Each chain archived as seq 1..N, once each, without a finding."""
    assert archive.findings(stream) == []
    for chain, n, lo, hi, distinct in archive.sql(
            "SELECT chain, count(*), min(seq), max(seq), count(DISTINCT seq) "
            "FROM credit_audit.entries WHERE stream = %s GROUP BY chain",
            (stream,)):
        assert (lo, hi, distinct) == (1, n, n), chain


def test_kill9_inside_a_batch_loses_nothing_and_doubles_nothing(
        gw, archive, tmp_path):
    gw.traffic(60)
    s = Shipper(archive, gw, tmp_path)
    caught = 0
    gw.start_traffic()
    try:
        for _ in range(4):
            s.start("--keep", "1h", "--batch", "25")
            caught += in_transaction(archive)
            s.kill9()
            # no half batch: what is archived is whole batches, contiguous
            n, nxt = archive.sql("SELECT count(*), (SELECT next_ord FROM "
                                 "credit_audit.log) FROM "
                                 "credit_audit.entries")[0]
            assert n == nxt
    finally:
        gw.stop_traffic()
    assert caught >= 3, "the kill never landed inside a transaction"
    entries = gw.wait_signed()
    r = s.once("--keep", "1h")
    assert r.returncode == 0, r.stdout + r.stderr
    assert_exactly_once(archive, gw, gw.entries())
    assert len(entries) == archive.count(gw.stream)
    chains_whole(archive, gw.stream)
    # the killed consumers' pending entries were taken over and acknowledged
    assert gw.raw.xpending(gw.stream, "credit-audit-ship")["pending"] == 0


def test_crash_between_commit_and_acknowledgement(env, gw, archive,
                                                  tmp_path):
    """A shipper whose XACK never reaches Redis (an ACL user without it:
    as if it died right after COMMIT) leaves the batch pending; the next
    one finds it archived already and only acknowledges it."""
    gw.traffic(5)
    es = gw.wait_signed()
    env.st.redis.client().execute_command(
        "ACL", "SETUSER", "noack", "on", ">noack-pw", "~*", "&*", "+@all",
        "-xack")
    s = Shipper(archive, gw, tmp_path)
    r = tool(*s.argv("--once", "--keep", "0", "--user", "noack"),
             env={"CREDIT_REDIS_PASSWORD": "noack-pw"}, pgenv=archive.pg)
    assert r.returncode == 2 and "XACK" in r.stderr
    assert archive.count(gw.stream) == len(es)      # committed
    assert gw.xlen() == len(es)                     # nothing trimmed
    assert gw.raw.xpending(gw.stream, "credit-audit-ship")["pending"] \
        == len(es)
    r = s.once("--keep", "0")
    assert r.returncode == 0, r.stderr
    assert s.metric("credit_audit_ship_redelivered_total") == len(es)
    assert s.metric("credit_audit_ship_entries_total") == 0
    assert archive.count(gw.stream) == len(es) and gw.xlen() == 0
    assert gw.raw.xpending(gw.stream, "credit-audit-ship")["pending"] == 0


def test_two_shippers_one_active_the_other_takes_over(gw, archive,
                                                      tmp_path):
    a = Shipper(archive, gw, tmp_path, name="a")
    b = Shipper(archive, gw, tmp_path, name="b")
    gw.traffic(30)
    gw.start_traffic()
    try:
        a.start("--keep", "1h", "--batch", "20")
        wait(lambda: a.metric("credit_audit_ship_active") == 1, what="a")
        b.start("--keep", "1h", "--batch", "20")
        wait(lambda: b.metric("credit_audit_ship_active") == 0,
             what="b standing by")
        wait(lambda: "standing by" in b.logtext(), what="b's log")
        time.sleep(1)
        assert a.metric("credit_audit_ship_entries_total") > 0
        assert b.metric("credit_audit_ship_entries_total") == 0
        # kill -9 of the active one, inside a batch
        assert in_transaction(archive)
        a.kill9()
        wait(lambda: b.metric("credit_audit_ship_active") == 1, 15,
             "b taking over")
        wait(lambda: (b.metric("credit_audit_ship_entries_total") or 0) > 0,
             what="b shipping")
    finally:
        gw.stop_traffic()
    gw.wait_signed()
    wait(lambda: lag_key(gw).get("lag_ms") == "0"
         and lag_key(gw).get("archived") == str(gw.xlen()), 30,
         "b catching up")
    b.stop()
    assert_exactly_once(archive, gw, gw.entries())
    chains_whole(archive, gw.stream)
    # a's pending entries were claimed: the group forgot a
    assert [c["name"] for c in gw.raw.xinfo_consumers(
        gw.stream, "credit-audit-ship")] == [b"b"]


def test_postgres_down_nothing_trimmed_then_resumes(gw, archive, tmp_path):
    s = Shipper(archive, gw, tmp_path)
    gw.traffic(10)
    s.start("--keep", "0", "--batch", "50")
    wait(lambda: s.metric("credit_audit_ship_active") == 1
         and lag_key(gw).get("lag_ms") == "0" and gw.xlen() == 0,
         what="shipped and trimmed")
    archived = archive.count(gw.stream)
    gw.start_traffic(pause=0.02)
    try:
        archive.pg.stop()
        wait(lambda: (s.metric("credit_audit_ship_errors_total",
                               'server="postgresql"') or 0) > 0,
             what="the shipper noticing")
        n0 = gw.xlen()
        time.sleep(3)
        # the gateway keeps writing; nothing leaves Redis; the lag grows
        # and is published for the status page
        assert gw.xlen() > n0 + 10
        lag = int(lag_key(gw)["lag_ms"])
        assert lag > 2000, lag
        assert s.metric("credit_audit_ship_active") == 0
        assert s.metric("credit_audit_ship_lag_seconds") > 2
        archive.pg.start()
        wait(lambda: s.metric("credit_audit_ship_active") == 1, 40,
             "the shipper back")
    finally:
        gw.stop_traffic()
    time.sleep(1)       # the gateway's last checkpoints (every 200 ms)
    wait(lambda: gw.xlen() == 0 and lag_key(gw).get("lag_ms") == "0", 40,
         "shipped again")
    s.stop()
    assert archive.count(gw.stream) > archived
    chains_whole(archive, gw.stream)
    n, nxt = archive.sql("SELECT count(*), (SELECT next_ord FROM "
                         "credit_audit.log) FROM credit_audit.entries")[0]
    assert n == nxt
    # the daemon's log says what happened
    assert "standing down" in s.logtext()
    with pytest.raises(psycopg2.Error):
        archive.sql("DELETE FROM credit_audit.entries")
