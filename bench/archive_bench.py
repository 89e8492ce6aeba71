#!/usr/bin/python3
"""make bench-archive: how fast `credit-audit ship` moves a stream into
PostgreSQL on this machine (docs/archive.md, "Measured").

A Redis and a PostgreSQL 15 of our own (scripts/stack/), a synthetic
stream written as a gateway writes it (scripts/stack/auditgen.py: hash
chains, v2 checkpoints every 100 requests per writer, Ed25519), then one
`ship --once --keep 0` timed, CPU of the shipper and of PostgreSQL counted
from /proc, and a regulator's question timed on the result.  Not a test:
figures on a shared 2-core box vary; run it alone.

    bench/archive_bench.py [--entries N] [--writers W] [--batch B]
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import stack as S  # noqa: E402
sys.path.insert(0, str(ROOT / "bench"))
import archive_read  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: E402
    Ed25519PrivateKey)

TOOL = ROOT / "build" / "bin" / "credit-audit"


def cpu_of(pids):
    t = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        f = f[f.rindex(")") + 2:].split()
        t += int(f[11]) + int(f[12])
    return t / os.sysconf("SC_CLK_TCK")


def pg_pids(pg):
    pid = pg._postmaster_pid()
    return [pid] + S._children(pid) if pid else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1000000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()

    d = Path(a.dir or tempfile.mkdtemp(prefix="archive-bench-"))
    redis = S.Redis(d, appendfsync="everysec",
                    extra=["maxmemory 0"]).start()
    # a server sized for the load, as a platform's would be: WAL enough
    # not to checkpoint in the middle of the run
    pg = S.Postgres(d, extra=["shared_buffers = 512MB",
                              "max_wal_size = 8GB",
                              "wal_compression = lz4",
                              "checkpoint_timeout = 30min"]).start()
    try:
        priv = Ed25519PrivateKey.generate()
        pub = d / "audit.pub.pem"
        pub.write_bytes(priv.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo))
        c = redis.client(decode_responses=False)
        stream = "credit:audit"
        t0 = time.monotonic()
        writers = [S.AuditWriter(priv, gw=f"gw-bench-{w}", pid=1000 + w,
                                 lanes=4) for w in range(a.writers)]
        written = 0
        i = 0
        while written < a.entries:
            w = writers[i % a.writers]
            w.request(enterprise=S.make_uscc(f"9135010{i % 997:03d}M000100")
                      if i % 50 else "91350100M000100Y43",
                      bank=f"BANK{i % 37:03d}")
            i += 1
            if i % (100 * a.writers) == 0:
                for x in writers:
                    x.checkpoint()
            if i % 5000 == 0:
                for x in writers:
                    written += len(x.xadd(c, stream))
        for x in writers:
            x.checkpoint()
            written += len(x.xadd(c, stream))
        gen = time.monotonic() - t0
        mem = int(c.info("memory")["used_memory"])
        print(f"stream: {written} entries written in {gen:.0f} s "
              f"(generator), Redis used_memory {mem / 2**20:.0f} MiB "
              f"({mem / written:.0f} B/entry)")

        ci = pg.conninfo(dbname=pg.database)
        subprocess.run([str(TOOL), "ship", "--init", "--archive", ci],
                       check=True, capture_output=True)
        pg_cpu0 = cpu_of(pg_pids(pg))
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        r = subprocess.run([str(TOOL), "ship", "--once", "--keep", "0",
                            "--batch", str(a.batch), "--archive", ci,
                            "--redis", redis.address, "--stream", stream,
                            "--pubkey", str(pub)], capture_output=True,
                           text=True)
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        pg_cpu = cpu_of(pg_pids(pg)) - pg_cpu0
        ship_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime
                                                    - ru0.ru_stime)
        print(r.stdout.strip())
        if r.returncode != 0:
            print(r.stderr[-2000:])
            return 1
        print(f"ship: {written / wall:,.0f} entries/s wall ({wall:.1f} s), "
              f"shipper CPU {ship_cpu:.1f} s "
              f"({ship_cpu / written * 1e6:.1f} us/entry), PostgreSQL CPU "
              f"{pg_cpu:.1f} s ({pg_cpu / written * 1e6:.1f} us/entry)")
        size = pg.psql("SELECT pg_size_pretty(sum(pg_total_relation_size("
                       "c.oid))), sum(pg_total_relation_size(c.oid)) FROM "
                       "pg_class c JOIN pg_namespace n ON n.oid = "
                       "c.relnamespace WHERE n.nspname = 'credit_audit' AND "
                       "c.relkind = 'r'")[0]
        print(f"archive size: {size[0]} ({int(size[1]) / written:.0f} "
              f"B/entry, indexes and TOAST included)")
        q = ("SELECT bank, count(*) FROM credit_audit.entries WHERE "
             "enterprise = %s AND entry_time >= now() - interval "
             "'12 months' AND event = 'decision' AND decision = 'allow' "
             "GROUP BY bank")
        # what autovacuum does after a bulk load: the visibility map lets
        # the (enterprise, entry_time) INCLUDE (...) index answer alone
        pg.psql("VACUUM (ANALYZE) credit_audit.entries")
        plan = "\n".join(r[0] for r in pg.psql("EXPLAIN " + q.replace(
            "%s", "'91350100M000100Y43'")))
        best = 1e9
        for _ in range(5):
            t0 = time.monotonic()
            rows = pg.psql(q, ("91350100M000100Y43",))
            best = min(best, time.monotonic() - t0)
        print(f"banks that queried one enterprise in 12 months: {len(rows)} "
              f"banks, {best * 1000:.1f} ms (best of 5, "
              f"{sum(n for _, n in rows)} decisions; "
              f"{'index only' if 'Index Only Scan' in plan else 'not index-only'})")
        # the reading commands on that archive (bench/archive_read.py)
        archive_read.measure(TOOL, redis, pg, stream, pub,
                             "91350100M000100Y43", written)
    finally:
        pg.remove()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
