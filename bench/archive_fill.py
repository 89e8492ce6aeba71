#!/usr/bin/python3
"""An archive of N entries for the reading commands' figures at 10^7
(docs/archive.md "Measured", "The reading commands at 10^7"), made in
minutes rather than the hours the generator would take through Redis.

1. A real stream (scripts/stack/auditgen.py through Redis, or the RDB a
   `bench/archive_bench.py --cache DIR` run left) is shipped once with
   `ship --once --keep 0`: those entries are real, chained and signed,
   in the current month.  `verify --archive` is measured on them (and only
   on them: the copies below do not verify, see 3).
2. The current month's rows are copied server-side, by the `shipper`
   login (a member of credit_audit_shipper: INSERT, ensure_month() for
   the partitions, UPDATE of the log's next_ord), into the 11 previous
   months, one INSERT ... SELECT a month: (N - real) / 11 rows each (the
   first ones in archive order, so whole requests), entry_time, the `ts`
   column and the `ts` inside `raw`, and the stream id shifted back k
   months; ord after every earlier one.  The enterprises are permuted
   per month (E_j becomes E_{j+k} of the generator's 998, the same 18
   bytes replaced in `raw`), so that the demo enterprise, 1 request in 50
   in the real month, is an ordinary one of 997 in the 11 others.
   Nothing is disabled: the append-only triggers stay, and only INSERT
   and the log's UPDATE are used, which the shipper's role has.
3. The copies keep their `hash`, `prev` and signatures: verify finds them
   broken (their ts and enterprise changed), so the verify figure is the
   real month's rate, extrapolated linearly (its work per entry does not
   depend on the archive's size: one pass in archive order).

    bench/archive_fill.py [--archived N] [--entries REAL] [--cache DIR]
        [--dir DIR] [--hold] [--no-reads]

--hold leaves the servers running (their addresses printed) until
interrupted: for measuring by hand.  Not a test.
"""

import argparse
import datetime
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

import stack as S  # noqa: E402
import archive_bench as B  # noqa: E402
import archive_read  # noqa: E402

MONTHS = 11


def enterprises():
    """The generator's enterprises (archive_bench.requests), the demo one
    last."""
    return ([S.make_uscc(f"9135010{i:03d}M000100") for i in range(997)]
            + [B.ENTERPRISE])


def _columns(pg, db):
    return [r[0] for r in pg.psql(
        "SELECT column_name FROM information_schema.columns WHERE "
        "table_schema = 'credit_audit' AND table_name = 'entries' ORDER BY "
        "ordinal_position", dbname=db)]


# the u32be-length-prefixed name and length of a field in raw (its
# value follows): ts is 13 digits of ms, an enterprise 18 characters
TS_TAG = "\\x00000002" + b"ts".hex() + "0000000d"
ENT_TAG = "\\x0000000a" + b"enterprise".hex() + "00000012"


def _select(cols, k, base):
    """The SELECT list of month k's copy."""
    shift = f"interval '{k} months'"
    ms = ("(extract(epoch FROM entry_time - (entry_time - " + shift
          + ")) * 1000)::bigint")
    new_ts = f"(ts - {ms})"
    expr = {
        "ord": f"ord + {base}",
        "entry_time": f"entry_time - {shift}",
        "stream_id": ("((split_part(stream_id, '-', 1)::bigint - " + ms
                      + ")::text || '-' || split_part(stream_id, '-', 2))"),
        "ts": f"CASE WHEN ts IS NULL THEN NULL ELSE {new_ts} END",
        "enterprise": "coalesce(m.dst, e.enterprise)",
        # the same bytes replaced in the verbatim copy
        "raw": (
            "(SELECT CASE WHEN p2 = 0 OR m.dst IS NULL THEN r1 ELSE "
            "overlay(r1 PLACING convert_to(m.dst, 'UTF8') FROM p2 + "
            f"length('{ENT_TAG}'::bytea) FOR 18) END FROM (SELECT r1, "
            f"position('{ENT_TAG}'::bytea IN r1) AS p2 FROM (SELECT CASE "
            "WHEN p1 = 0 OR e.ts IS NULL OR length(e.ts::text) <> 13 OR "
            f"length({new_ts}::text) <> 13 THEN raw ELSE overlay(raw "
            f"PLACING convert_to({new_ts}::text, 'UTF8') FROM p1 + "
            f"length('{TS_TAG}'::bytea) FOR 13) END AS r1 FROM (SELECT "
            f"position('{TS_TAG}'::bytea IN raw) AS p1) a) b) c)"),
    }
    return ", ".join(expr.get(c, c) for c in cols)


def fill(pg, db, stream, archived, log=print):
    """Copies the real month's rows into the 11 previous months until the
    archive holds `archived` entries (step 2 above).  Returns the count."""
    real = int(pg.psql("SELECT count(*) FROM credit_audit.entries",
                       dbname=db)[0][0])
    per = max(0, (archived - real) // MONTHS)
    if per == 0:
        return real
    per = min(per, real)
    pg.grant("credit_audit_shipper", "shipper")
    cols = _columns(pg, db)
    ents = enterprises()
    conn = pg.connect("shipper", dbname=db)
    t_all = time.monotonic()
    try:
        with conn.cursor() as cur:
            cur.execute("SET search_path = credit_audit, pg_catalog")
            cur.execute("SELECT min(entry_time) FROM entries")
            first = cur.fetchone()[0]
            for k in range(1, MONTHS + 1):
                t0 = time.monotonic()
                cur.execute("CREATE TEMP TABLE IF NOT EXISTS emap (src text "
                            "COLLATE \"C\" PRIMARY KEY, dst text)")
                cur.execute("DELETE FROM emap")
                cur.executemany("INSERT INTO emap VALUES (%s, %s)", [
                    (e, ents[(j + k) % len(ents)])
                    for j, e in enumerate(ents)])
                cur.execute("SELECT ensure_month(%s::timestamptz - "
                            "%s::interval)", (first, f"{k} months"))
                # a partition made holds the parent's lock: not the copy
                conn.commit()
                base = real + (k - 1) * per
                cur.execute(
                    f"INSERT INTO entries ({', '.join(cols)}) SELECT "
                    f"{_select(cols, k, base)} FROM entries e LEFT JOIN "
                    "emap m ON m.src = e.enterprise WHERE e.stream = %s "
                    "AND e.ord < %s", (stream, per))
                n = cur.rowcount
                conn.commit()
                log(f"  month -{k}: {n} entries copied in "
                    f"{time.monotonic() - t0:.0f} s")
            cur.execute("UPDATE log SET next_ord = %s",
                        (real + MONTHS * per,))
            conn.commit()
    finally:
        conn.close()
    t0 = time.monotonic()
    # what autovacuum does after a bulk load (the visibility map for
    # index-only scans, the statistics for the planner)
    pg.psql("VACUUM (ANALYZE) credit_audit.entries", dbname=db)
    total = real + MONTHS * per
    log(f"fill: {total} entries ({real} real, {MONTHS} x {per} copies) "
        f"in {time.monotonic() - t_all:.0f} s, VACUUM ANALYZE "
        f"{time.monotonic() - t0:.0f} s")
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archived", type=int, default=10000000)
    ap.add_argument("--entries", type=int, default=1000000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--no-reads", action="store_true")
    a = ap.parse_args()

    d = Path(a.dir or tempfile.mkdtemp(prefix="archive-fill-"))
    redis = None
    pg = B.bench_postgres(d)
    try:
        redis, priv, written = B.make_stream(a, d)
        pub = B.public_key(priv, d)
        db = "fill"
        B.ship_once(a, redis, pg, pub, db, written)
        pg.psql("VACUUM (ANALYZE) credit_audit.entries", dbname=db)
        if not a.no_reads:
            print(f"\nthe reading commands on the real {written} entries:")
            archive_read.measure(B.TOOL, redis, pg, B.STREAM, pub,
                                 B.ENTERPRISE, written, db=db)
        total = fill(pg, db, B.STREAM, a.archived)
        size = pg.psql("SELECT pg_size_pretty(pg_database_size(%s))",
                       (db,), dbname=db)[0][0]
        print(f"database: {size}")
        if not a.no_reads:
            print(f"\nthe reading commands on {total} entries:")
            archive_read.measure(B.TOOL, redis, pg, B.STREAM, pub,
                                 B.ENTERPRISE, total, db=db, verify=False)
        if a.hold:
            print(f"\nholding: PGPASSFILE={pg.passfile} "
                  f"{pg.conninfo(dbname=db)!r} redis {redis.address} "
                  f"pubkey {pub}; interrupt to stop", flush=True)
            signal.pthread_sigmask(signal.SIG_BLOCK,
                                   {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        B.teardown(a, d, pg, redis)
    return 0


if __name__ == "__main__":
    sys.exit(main())
