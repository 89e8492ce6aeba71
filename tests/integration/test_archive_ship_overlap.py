"""credit-audit ship verifies a batch while the server inserts its rows
(docs/archive.md, "The shipping protocol"): the verifier's look-ups in
the archive (a chain's state, the entry holding a seq) go over a
connection of its own, since the batch's COPY holds the shipper's.  With
a real gateway, Redis and PostgreSQL 15: that connection is there, and
when it dies the batch it was verifying rolls back whole and is shipped
again over a new one — nothing lost, nothing twice."""

from conftest import S
from shipkit import (Shipper, archive, assert_exactly_once,  # noqa: F401
                     gw, lag_key, pg, stop_shippers)

VERIFIER = "credit-audit ship (verifier)"


def verifiers(archive):
    return [r[0] for r in archive.pg.psql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND "
        "datname = %s", (VERIFIER, archive.db), dbname="postgres")]


def wait(pred, timeout=30.0, what="condition"):
    v = S.wait_for(pred, timeout, 0.1)
    assert v, f"timed out waiting for {what}"
    return v


def test_the_verifier_s_connection_lost_mid_run_loses_nothing(
        gw, archive, tmp_path):
    s = Shipper(archive, gw, tmp_path)
    gw.traffic(10)
    s.start("--keep", "1h", "--batch", "20")
    wait(lambda: lag_key(gw).get("archived") == str(gw.xlen())
         and lag_key(gw).get("lag_ms") == "0", what="shipped")
    # the chains' states were looked up over the verifier's connection
    first = wait(lambda: verifiers(archive), what="the verifier's session")
    assert len(first) == 1
    archive.pg.psql("SELECT pg_terminate_backend(%s)", (first[0],),
                    dbname="postgres")
    # new workers write new chains: their states are looked up, over the
    # dead connection first
    gw.gw.reload()
    gw.traffic(10)
    gw.wait_signed()
    wait(lambda: lag_key(gw).get("archived") == str(gw.xlen())
         and lag_key(gw).get("lag_ms") == "0", what="shipped again")
    again = verifiers(archive)
    s.stop()
    assert len(again) == 1 and again != first
    # the batch that met the dead connection was rolled back and redone
    assert (s.metric("credit_audit_ship_errors_total",
                     'server="postgresql"') or 0) >= 1, s.logtext()
    assert_exactly_once(archive, gw, gw.entries())
    assert archive.findings(gw.stream) == []
