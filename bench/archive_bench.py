#!/usr/bin/python3
"""make bench-archive: how fast `credit-audit ship` moves a stream into
PostgreSQL on this machine, and whether Redis stays flat under a steady
load with the shipper running (docs/archive.md, "Measured").

A Redis and a PostgreSQL 15 of our own (scripts/stack/), a synthetic
stream written as a gateway writes it (scripts/stack/auditgen.py: hash
chains, v2 checkpoints every 100 requests per writer, Ed25519), then

1. throughput: `ship --once --keep 0` timed (--runs times, each into a
   fresh database from the same stream), CPU of the shipper and of
   PostgreSQL counted from /proc, the shipper's own account of where its
   time went (CREDIT_AUDIT_SHIP_STATS), and a regulator's question timed
   on the result;
2. steady state (--steady SECONDS, 0 to skip): gateway-like writers at
   --rate requests a second while a long-running `ship --keep KEEP` ships
   them; Redis's used_memory sampled every second into --csv (default
   build/bench/archive-steady.csv, with the stream's length and the
   shipper's lag) and drawn as text.

Not a test: figures on a shared 2-core box vary; run it alone.

    bench/archive_bench.py [--entries N] [--writers W] [--batch B]
        [--runs R] [--cache DIR] [--steady S] [--rate R] [--keep D]
        [--csv FILE] [--dir DIR] [--variant LABEL,TOOL[,SQLFILE]]...
        [--skip-read]

--cache DIR keeps the generated stream (a Redis RDB file and the key) and
reuses it: generating 10^7 entries takes longer than shipping them.
"""

import argparse
import csv
import os
import resource
import shutil
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
STREAM = "credit:audit"
ENTERPRISE = "91350100M000100Y43"


def cpu_of(pids, reaped=()):
    """CPU seconds of the processes; for those in reaped, their children
    that exited too (cutime, cstime: a backend gone with its session)."""
    t = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        f = f[f.rindex(")") + 2:].split()
        t += int(f[11]) + int(f[12])
        if pid in reaped:
            t += int(f[13]) + int(f[14])
    return t / os.sysconf("SC_CLK_TCK")


def pg_pids(pg):
    pid = pg._postmaster_pid()
    return [pid] + S._children(pid) if pid else []


def pg_cpu(pg):
    """PostgreSQL's CPU seconds so far: the postmaster, its children, and
    the children it reaped (the shipper's backend exits with it)."""
    return cpu_of(pg_pids(pg), reaped=(pg._postmaster_pid(),))


def requests(writers, c, stream, n, i=0, every=50):
    """n requests (a decision and an outcome each) over the writers, one in
    `every` for the demo enterprise, the rest for 997 others; a checkpoint
    per writer every 100 of its requests; returns the new i and the
    entries written."""
    written = 0
    for _ in range(n):
        w = writers[i % len(writers)]
        w.request(enterprise=S.make_uscc(f"9135010{i % 997:03d}M000100")
                  if i % every else ENTERPRISE, bank=f"BANK{i % 37:03d}")
        i += 1
        if i % (100 * len(writers)) == 0:
            for x in writers:
                x.checkpoint()
        if i % 5000 == 0:
            for x in writers:
                written += len(x.xadd(c, stream))
    for x in writers:
        written += len(x.xadd(c, stream))
    return i, written


def write_stream(c, stream, writers, entries, every=50):
    """Requests through the writers until at least `entries` are in the
    stream (in steps of 1,000 requests), each writer's chain then closed by
    a checkpoint.  Returns the count."""
    written = i = 0
    while written < entries:
        i, n = requests(writers, c, stream, 1000, i, every)
        written += n
    for x in writers:
        x.checkpoint()
        written += len(x.xadd(c, stream))
    return written


def redis_from_rdb(d, rdb):
    """A Redis holding the cached stream: loaded from the RDB file, then
    made append-only (everysec) as in the generated case."""
    redis = S.Redis(d, appendfsync="everysec", appendonly="no",
                    extra=["maxmemory 0", "dbfilename stream.rdb"])
    shutil.copy(rdb, redis.dir / "stream.rdb")
    redis.start(timeout=600)
    c = redis.client(decode_responses=False)
    c.config_set("appendonly", "yes")
    while True:
        info = c.info("persistence")
        if (not info.get("aof_rewrite_in_progress")
                and not info.get("aof_rewrite_scheduled")
                and info.get("aof_enabled")):
            break
        time.sleep(0.5)
    return redis


def make_stream(a, d):
    """The Redis with the stream, the private key, the entries."""
    key = rdb = None
    if a.cache:
        cache = Path(a.cache)
        cache.mkdir(parents=True, exist_ok=True)
        rdb = cache / f"stream-{a.entries}-{a.writers}.rdb"
        key = cache / f"stream-{a.entries}-{a.writers}.key.pem"
    if rdb is not None and rdb.exists() and key.exists():
        priv = serialization.load_pem_private_key(key.read_bytes(), None)
        t0 = time.monotonic()
        redis = redis_from_rdb(d, rdb)
        written = redis.client().xlen(STREAM)
        print(f"stream: {written} entries loaded from {rdb} in "
              f"{time.monotonic() - t0:.0f} s")
        return redis, priv, written
    redis = S.Redis(d, appendfsync="everysec",
                    extra=["maxmemory 0"]).start()
    priv = Ed25519PrivateKey.generate()
    c = redis.client(decode_responses=False)
    t0 = time.monotonic()
    writers = [S.AuditWriter(priv, gw=f"gw-bench-{w}", pid=1000 + w,
                             lanes=4) for w in range(a.writers)]
    # two entries a request, and a checkpoint per chain every 100 requests
    _, written = requests(writers, c, STREAM, int(a.entries / 2.05))
    for x in writers:
        x.checkpoint()
        written += len(x.xadd(c, STREAM))
    print(f"stream: {written} entries written in "
          f"{time.monotonic() - t0:.0f} s (generator)")
    if rdb is not None:
        c.save()
        shutil.copy(redis.dir / "dump.rdb", rdb)
        key.write_bytes(priv.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        os.chmod(key, 0o600)
    return redis, priv, written


def ship_once(a, redis, pg, pub, db, written, tool=TOOL, sql=None):
    """One `ship --once --keep 0` of the whole stream into database db,
    with that tool, sql (a file) run after its --init."""
    pg.psql(f'CREATE DATABASE "{db}"', dbname="postgres")
    ci = pg.conninfo(dbname=db)
    subprocess.run([str(tool), "ship", "--init", "--archive", ci],
                   check=True, capture_output=True)
    if sql:
        pg.psql(Path(sql).read_text(), dbname=db)
    pg_cpu0 = pg_cpu(pg)
    redis_cpu0 = cpu_of([redis.proc.pid])
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run([str(tool), "ship", "--once", "--keep", "0",
                        "--batch", str(a.batch), "--archive", ci,
                        "--redis", redis.address, "--stream", STREAM,
                        "--pubkey", str(pub)], capture_output=True,
                       text=True, env=dict(os.environ,
                                           CREDIT_AUDIT_SHIP_STATS="1"))
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    pg_used = pg_cpu(pg) - pg_cpu0
    redis_used = cpu_of([redis.proc.pid]) - redis_cpu0
    user = ru1.ru_utime - ru0.ru_utime
    sys_ = ru1.ru_stime - ru0.ru_stime
    print(r.stdout.strip())
    if r.returncode != 0:
        print(r.stderr[-2000:])
        raise SystemExit(1)
    print("\n".join(x for x in r.stderr.splitlines() if x.startswith("  ")
                    or "phases" in x))
    print(f"ship: {written / wall:,.0f} entries/s wall ({wall:.1f} s), "
          f"shipper CPU {user + sys_:.1f} s "
          f"({(user + sys_) / written * 1e6:.1f} us/entry, "
          f"{sys_ / written * 1e6:.1f} of it system), PostgreSQL CPU "
          f"{pg_used:.1f} s ({pg_used / written * 1e6:.1f} us/entry), "
          f"Redis CPU {redis_used / written * 1e6:.1f} us/entry; "
          f"load average {os.getloadavg()[0]:.1f}")
    return ci, written / wall, (user + sys_, pg_used, redis_used)


def regulator_query(pg, db, written):
    size = pg.psql("SELECT pg_size_pretty(sum(pg_total_relation_size("
                   "c.oid))), sum(pg_total_relation_size(c.oid)) FROM "
                   "pg_class c JOIN pg_namespace n ON n.oid = "
                   "c.relnamespace WHERE n.nspname = 'credit_audit' AND "
                   "c.relkind = 'r'", dbname=db)[0]
    print(f"archive size: {size[0]} ({int(size[1]) / written:.0f} "
          f"B/entry, indexes and TOAST included)")
    # each index's size per entry, summed over the month partitions
    rows = pg.psql("SELECT regexp_replace(c.relname, '^entries_[0-9_]+', "
                   "'entries'), sum(pg_relation_size(c.oid)) FROM pg_class "
                   "c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                   "n.nspname = 'credit_audit' AND c.relkind = 'i' AND "
                   "c.relname LIKE 'entries_%' GROUP BY 1 ORDER BY 2 DESC",
                   dbname=db)
    print("indexes, bytes/entry: " + ", ".join(
        f"{name} {int(n) / written:.0f}" for name, n in rows))
    q = ("SELECT bank, count(*) FROM credit_audit.entries WHERE "
         "enterprise = %s AND entry_time >= now() - interval "
         "'12 months' AND event = 'decision' AND decision = 'allow' "
         "GROUP BY bank")
    # what autovacuum does after a bulk load: the visibility map lets
    # the (enterprise, entry_time) INCLUDE (...) index answer alone
    pg.psql("VACUUM (ANALYZE) credit_audit.entries", dbname=db)
    plan = "\n".join(r[0] for r in pg.psql("EXPLAIN " + q.replace(
        "%s", f"'{ENTERPRISE}'"), dbname=db))
    # on one open connection: the query, not a connection's start
    conn = pg.connect(dbname=db)
    best = 1e9
    try:
        with conn.cursor() as cur:
            for _ in range(5):
                t0 = time.monotonic()
                cur.execute(q, (ENTERPRISE,))
                rows = cur.fetchall()
                best = min(best, time.monotonic() - t0)
    finally:
        conn.close()
    print(f"banks that queried one enterprise in 12 months: {len(rows)} "
          f"banks, {best * 1000:.1f} ms (best of 5 on one connection, "
          f"{sum(n for _, n in rows)} decisions; "
          f"{'index only' if 'Index Only Scan' in plan else 'not index-only'})")


def plot(samples, rows=12, cols=72):
    """used_memory over time as text: one column per slice of seconds."""
    mem = [m for _, m, _, _ in samples]
    lo, hi = 0, max(mem)
    span = max(hi - lo, 1)
    step = max(1, -(-len(mem) // cols))
    cols_v = [max(mem[i:i + step]) for i in range(0, len(mem), step)]
    out = []
    for r in range(rows, 0, -1):
        edge = lo + span * (r - 0.5) / rows
        label = f"{(lo + span * r / rows) / 2**20:8.1f} MiB |" \
            if r in (rows, 1) or r == rows // 2 else " " * 13 + "|"
        out.append(label + "".join("#" if v >= edge else " "
                                   for v in cols_v))
    out.append(" " * 13 + "+" + "-" * len(cols_v))
    out.append(" " * 14 + f"0 s{'':>{max(len(cols_v) - 10, 1)}}"
               f"{samples[-1][0]:.0f} s")
    return "\n".join(out)


def steady(a, d, redis, pg, priv, pub):
    """Writers at a.rate requests/s for a.steady seconds while a
    long-running shipper ships them; used_memory every second."""
    stream = STREAM + ":steady"
    db = "bench_steady"
    pg.psql(f'CREATE DATABASE "{db}"', dbname="postgres")
    ci = pg.conninfo(dbname=db)
    subprocess.run([str(TOOL), "ship", "--init", "--archive", ci],
                   check=True, capture_output=True)
    c = redis.client(decode_responses=False)
    writers = [S.AuditWriter(priv, gw=f"gw-steady-{w}", pid=2000 + w,
                             lanes=4) for w in range(a.writers)]
    # the stream exists before the shipper starts, as a gateway's does
    i, _ = requests(writers, c, stream, 1)
    log = open(d / "steady-ship.log", "w")
    ship = subprocess.Popen([str(TOOL), "ship", "--keep", a.keep,
                             "--interval", "1s", "--batch", str(a.batch),
                             "--archive", ci, "--redis", redis.address,
                             "--stream", stream, "--pubkey", str(pub)],
                            stdout=log, stderr=log)
    samples = []
    csv_path = Path(a.csv)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    written = 0
    try:
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["seconds", "used_memory", "stream_entries",
                        "lag_ms"])
            tick = 0
            while True:
                now = time.monotonic() - t0
                if now >= a.steady:
                    break
                if now >= tick:
                    info = c.info("memory")
                    sh = c.hgetall(stream + ":shipper")
                    row = (round(now, 1), int(info["used_memory"]),
                           c.xlen(stream),
                           int(sh.get(b"lag_ms", b"-1")))
                    samples.append(row)
                    w.writerow(row)
                    f.flush()
                    tick += 1
                # a tenth of a second's requests at a time
                n = max(1, a.rate // 10)
                i, got = requests(writers, c, stream, n, i)
                written += got
                late = (i / a.rate) - (time.monotonic() - t0)
                if late > 0:
                    time.sleep(late)
    finally:
        ship.terminate()
        ship.wait(30)
        log.close()
    dur = time.monotonic() - t0
    print(f"\nsteady: {written} entries in {dur:.0f} s "
          f"({written / dur:,.0f} entries/s, {a.rate} requests/s asked), "
          f"ship --keep {a.keep}; samples in {csv_path}")
    print(plot(samples))
    # flat: after the keep window filled, the memory neither grows nor
    # falls (a linear fit over the second half of the run)
    half = samples[len(samples) // 2:]
    xs = [s[0] for s in half]
    ys = [s[1] for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs) or 1
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var
    lags = [s[3] for s in half if s[3] >= 0]
    print(f"second half: used_memory {min(ys) / 2**20:.1f}-"
          f"{max(ys) / 2**20:.1f} MiB (mean {my / 2**20:.1f}), slope "
          f"{slope / 1024:+.1f} KiB/s; stream {min(s[2] for s in half)}-"
          f"{max(s[2] for s in half)} entries; shipper lag max "
          f"{max(lags) if lags else -1} ms")


def bench_postgres(d):
    """A server sized for the load, as a platform's would be: WAL enough
    not to checkpoint in the middle of the run."""
    return S.Postgres(d, extra=["shared_buffers = 512MB",
                                "max_wal_size = 8GB",
                                "wal_compression = lz4",
                                "checkpoint_timeout = 30min"]).start()


def public_key(priv, d):
    pub = d / "audit.pub.pem"
    pub.write_bytes(priv.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
    return pub


def teardown(a, d, pg, redis):
    pg.remove()
    if redis is not None:
        redis.stop()
    if a.dir is None:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1000000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--steady", type=int, default=300)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--keep", default="60s")
    ap.add_argument("--csv", default=str(ROOT / "build" / "bench" /
                                         "archive-steady.csv"))
    ap.add_argument("--dir", default=None)
    # interleaved comparisons: LABEL,TOOL[,SQLFILE] (SQLFILE run after
    # --init, e.g. an index dropped); each run ships once per variant
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--skip-read", action="store_true",
                    help="not the reading commands (bench/archive_read.py)")
    a = ap.parse_args()
    variants = [(v.split(",") + [None, None])[:3] for v in a.variant] \
        or [["this", str(TOOL), None]]

    d = Path(a.dir or tempfile.mkdtemp(prefix="archive-bench-"))
    redis = None
    pg = bench_postgres(d)
    try:
        redis, priv, written = make_stream(a, d)
        # COPY of a large stream takes longer than the client's 5 s
        c = redis.client(decode_responses=False, socket_timeout=600)
        mem = int(c.info("memory")["used_memory"])
        print(f"Redis used_memory {mem / 2**20:.0f} MiB "
              f"({mem / written:.0f} B/entry)")
        pub = public_key(priv, d)
        if a.runs > 1:
            c.copy(STREAM, STREAM + ":source")
        if a.runs * len(variants) > 1:
            c.copy(STREAM, STREAM + ":source")
        got = {label: [] for label, _, _ in variants}
        db = None
        for k in range(a.runs):
            for j, (label, tool, sql) in enumerate(variants):
                if db is not None:
                    c.delete(STREAM)
                    c.copy(STREAM + ":source", STREAM)
                    pg.psql(f'DROP DATABASE "{db}"', dbname="postgres")
                db = f"bench_{k}_{j}"
                print(f"\nrun {k + 1}, {label}:")
                _, rate, cpu = ship_once(a, redis, pg, pub, db, written,
                                         tool, sql)
                got[label].append((rate,) + cpu)
        if a.runs * len(variants) > 1:
            c.delete(STREAM + ":source")
            print()
            for label, runs in got.items():
                print(f"{label}: " + "; ".join(
                    f"{r:,.0f}/s, us/entry shipper {s / written * 1e6:.1f} "
                    f"PostgreSQL {p / written * 1e6:.1f} Redis "
                    f"{x / written * 1e6:.1f}" for r, s, p, x in runs))
        regulator_query(pg, db, written)
        if not a.skip_read:
            # the reading commands on that archive (bench/archive_read.py)
            archive_read.measure(TOOL, redis, pg, STREAM, pub, ENTERPRISE,
                                 written, db=db)
        if a.steady > 0:
            steady(a, d, redis, pg, priv, pub)
    finally:
        teardown(a, d, pg, redis)
    return 0


if __name__ == "__main__":
    sys.exit(main())
