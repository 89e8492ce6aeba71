#!/usr/bin/python3
"""make bench-transparency: what the Merkle log and the statements cost on
this machine (docs/transparency.md, "Measured").

A Redis and a PostgreSQL 15 of our own, a synthetic stream as in
bench/archive_bench.py in which one enterprise has --decisions decisions,
then: `ship --once` with the log key (shipping rate with the log built in
each batch), the log alone rebuilt from `raw` (the tree's own rate), an
inclusion proof (`proof --rid`, a whole process), the enterprise's month
statement, and `credit-consent statement verify` of it.  Not a test:
figures on a shared 2-core box vary; run it alone.

    bench/transparency_bench.py [--entries N] [--decisions D]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

import stack as S  # noqa: E402
from archive_bench import pg_cpu, write_stream  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: E402
    Ed25519PrivateKey)

TOOL = ROOT / "build" / "bin" / "credit-audit"
CONSENT = ROOT / "build" / "bin" / "credit-consent"
E = "91350100M000100Y43"


def pem(priv, d, name):
    (d / name).write_bytes(priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    pub = d / (name + ".pub")
    pub.write_bytes(priv.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
    return d / name, pub


def ship(argv):
    """One `ship --once`: wall seconds and its CPU (from the children's
    rusage), or the run's stderr as the exit."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    return wall, ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime, r


def timed(argv, runs=5, input=None):
    """The best wall time of runs, the mean CPU (user + system) of a run,
    and the last run."""
    best, out = 1e9, None
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        t0 = time.monotonic()
        out = subprocess.run(argv, capture_output=True, text=True,
                             input=input)
        best = min(best, time.monotonic() - t0)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    timed.cpu = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime
                 - ru0.ru_stime) / runs
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1000000)
    ap.add_argument("--decisions", type=int, default=1000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--keep", action="store_true",
                    help="leave Redis and PostgreSQL running (to look)")
    a = ap.parse_args()

    d = Path(a.dir or tempfile.mkdtemp(prefix="transparency-bench-"))
    redis = S.Redis(d, appendfsync="everysec", extra=["maxmemory 0"]).start()
    pg = S.Postgres(d, extra=["shared_buffers = 512MB", "max_wal_size = 8GB",
                              "wal_compression = lz4",
                              "checkpoint_timeout = 30min"]).start()
    try:
        audit_key, audit_pub = pem(Ed25519PrivateKey.generate(), d, "audit")
        log_key, log_pub = pem(Ed25519PrivateKey.generate(), d, "log")
        c = redis.client(decode_responses=False)
        stream = "credit:audit"
        priv = serialization.load_pem_private_key(audit_key.read_bytes(),
                                                  None)
        writers = [S.AuditWriter(priv, gw=f"gw-bench-{w}", pid=1000 + w,
                                 lanes=4) for w in range(a.writers)]
        every = max(1, a.entries // 2 // a.decisions)
        written = write_stream(c, stream, writers, a.entries, every)
        print(f"stream: {written} entries")

        ci = pg.conninfo(dbname=pg.database)
        subprocess.run([str(TOOL), "ship", "--init", "--archive", ci],
                       check=True, capture_output=True)
        logargs = ["--log-key", str(log_key), "--log-name", "bench/log"]
        argv = [str(TOOL), "ship", "--once", "--keep", "0", "--archive", ci,
                "--redis", redis.address, "--stream", stream, "--pubkey",
                str(audit_pub), *logargs]
        pg0 = pg_cpu(pg)
        wall, ship_cpu, r = ship(argv)
        pgc = pg_cpu(pg) - pg0
        print(f"ship with the log: {written / wall:,.0f} entries/s wall, "
              f"shipper {ship_cpu / written * 1e6:.1f} us/entry, "
              f"PostgreSQL {pgc / written * 1e6:.1f} us/entry")
        size = pg.psql("SELECT pg_total_relation_size('credit_audit.merkle')"
                       ", (SELECT count(*) FROM credit_audit.merkle)")[0]
        print(f"log: {int(size[0]) / written:.0f} B/entry on disk "
              f"({size[1]} rows)")

        # the log alone: rebuilt from raw in one transaction
        pg.psql("ALTER TABLE credit_audit.merkle DISABLE TRIGGER "
                "no_truncate; TRUNCATE credit_audit.merkle; ALTER TABLE "
                "credit_audit.merkle ENABLE TRIGGER no_truncate")
        pg.psql("VACUUM (ANALYZE)")
        writers[0].request(enterprise=E, bank="BANK001")   # a batch to
        writers[0].checkpoint()                              # sign after
        written += len(writers[0].xadd(c, stream))
        pg0 = pg_cpu(pg)
        wall, ship_cpu, r = ship(argv)
        pgc = pg_cpu(pg) - pg0
        if "adding the rest" not in r.stderr:
            raise SystemExit(r.stderr[-2000:])
        print(f"the log alone, from raw: {written / wall:,.0f} leaves/s "
              f"wall, tool {ship_cpu / written * 1e6:.1f} us/leaf, "
              f"PostgreSQL {pgc / written * 1e6:.1f} us/leaf "
              f"(reading raw back included)")

        rid = pg.psql("SELECT rid FROM credit_audit.entries WHERE "
                      "enterprise = %s ORDER BY ord LIMIT 1 OFFSET 17",
                      (E,))[0][0]
        base, _ = timed([str(TOOL), "findings", "--archive", ci])
        best, r = timed([str(TOOL), "proof", "--archive", ci, "--rid", rid])
        n = len(json.loads(r.stdout)["entries"])
        proof_cpu = timed.cpu
        print(f"proof --rid: {best * 1000:.1f} ms (best of 5, a whole "
              f"process; {n} entries with proofs; tool CPU "
              f"{proof_cpu * 1000:.1f} ms); a process that only "
              f"connects and checks the schema (findings): "
              f"{base * 1000:.1f} ms")
        # a portal's prover: one process, one connection, many requests
        # (`--rid -`), each proof against the same checkpoint
        rids = [x for (x,) in pg.psql(
            "SELECT rid FROM credit_audit.entries WHERE rid IS NOT NULL "
            "AND event = 'decision' ORDER BY random() LIMIT 1000")]
        best, r = timed([str(TOOL), "proof", "--archive", ci, "--rid", "-"],
                        runs=3, input="\n".join(rids) + "\n")
        print(f"proof --rid - of {len(rids)} random requests in one "
              f"process: {best / len(rids) * 1000:.2f} ms a request "
              f"(best of 3, {best * 1000:.0f} ms in all; tool CPU "
              f"{timed.cpu / len(rids) * 1000:.2f} ms a request)")
        month = time.strftime("%Y-%m", time.gmtime())
        best, r = timed([str(TOOL), "statement", "--archive", ci,
                         "--enterprise", E, "--month", month, "--tz", "UTC",
                         "--log-key", str(log_key)], runs=3)
        doc = json.loads(r.stdout)
        (d / "statement.json").write_text(r.stdout)
        print(f"statement: {best * 1000:.0f} ms (best of 3; tool CPU "
              f"{timed.cpu * 1000:.0f} ms) for "
              f"{len(doc['requests'])} decisions, {len(doc['entries'])} "
              f"entries, {len(doc['nodes'])} distinct proof nodes, "
              f"{len(r.stdout) / 2**20:.1f} MiB")
        best, r = timed([str(CONSENT), "statement", "verify",
                         str(d / "statement.json"), "--log-key",
                         str(log_pub)])
        print(f"statement verify: {best * 1000:.0f} ms (best of 5; CPU "
              f"{timed.cpu * 1000:.0f} ms): {r.stdout.strip()}")
    finally:
        if a.keep:
            print(f"kept: {d} (PostgreSQL: {pg.conninfo(dbname=pg.database)})")
        else:
            pg.remove()
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
