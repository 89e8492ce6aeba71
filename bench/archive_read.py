"""The reading commands over the archive (docs/archive.md "Reading the
archive", "Measured"): run by bench/archive_bench.py after it has shipped
the stream, each command timed on the archive it made.  Not a test."""

import datetime
import json
import os
import resource
import subprocess
import time


PG = None     # the server whose CPU is counted beside the tool's


def _run(argv, env):
    """The command's result, wall time, CPU of the tool and of
    PostgreSQL (its backend and helpers, from /proc), max RSS."""
    import archive_bench
    pg0 = archive_bench.pg_cpu(PG) if PG is not None else 0
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    _run.pg = (archive_bench.pg_cpu(PG) - pg0) if PG is not None else 0
    rss = ru1.ru_maxrss
    if r.returncode not in (0, 1):
        raise RuntimeError(f"{argv[1]}: {r.stderr[-1000:]}")
    return r, wall, cpu, rss


def measure(tool, redis, pg, stream, pub, enterprise, written, db=None,
            verify=True):
    """Prints the figures of the reading commands with --archive (db: the
    archive's database, default pg's; verify: also verify --archive)."""
    global PG
    PG = pg
    ci = pg.conninfo(dbname=db or pg.database)
    env = dict(os.environ)
    env.update(pg.env())
    base = ["--archive", ci, "--redis", redis.address, "--stream", stream,
            "--tz", "UTC"]
    since = (datetime.datetime.now(datetime.timezone.utc)
             - datetime.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    month = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m")

    best = None
    for _ in range(3):
        r, wall, cpu, _ = _run([str(tool), "query", "--enterprise",
                                enterprise, "--since", since,
                                "--event", "decision", "--json", *base], env)
        best = wall if best is None else min(best, wall)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    banks = {x.get("bank") for x in lines}
    print(f"query --archive --enterprise X --since <12 months ago>: "
          f"{len(lines)} decisions of {len(banks)} banks, "
          f"{best * 1000:.0f} ms wall (best of 3, the whole command; last: "
          f"tool CPU {cpu:.2f} s, PostgreSQL CPU {_run.pg:.2f} s)")

    best = None
    for _ in range(3):
        r, wall, cpu, _ = _run([str(tool), "query", "--enterprise",
                                enterprise, "--since", since, *base], env)
        best = wall if best is None else min(best, wall)
    print(f"query --archive --enterprise X --since <12 months ago> (the "
          f"requests, outcomes joined): {len(r.stdout.splitlines()) - 1} "
          f"lines, {best * 1000:.0f} ms wall (best of 3)")

    for what, period in ((f"--month {month}", ["--month", month]),
                         ("--since <12 months ago>", ["--since", since])):
        r, wall, cpu, rss = _run([str(tool), "report", *period, "--json",
                                  *base], env)
        m = json.loads(r.stdout)
        print(f"report --archive {what}: {m['decisions']} decisions, "
              f"{wall:.1f} s wall, {cpu:.1f} s CPU of the tool, "
              f"{_run.pg:.1f} s of PostgreSQL, max RSS {rss / 1024:.0f} MiB")
    if not verify:
        return

    r, wall, cpu, rss = _run([str(tool), "verify", "--pubkey", str(pub),
                              "--json", *base], env)
    v = json.loads(r.stdout)
    print(f"verify --archive: {v['entries']} entries "
          f"({'intact' if v['intact'] else 'NOT INTACT'}), {wall:.1f} s "
          f"wall, {v['entries'] / wall:,.0f} entries/s, "
          f"{cpu:.1f} s CPU of the tool, {_run.pg:.1f} s of PostgreSQL, "
          f"max RSS {rss / 1024:.0f} MiB")
    if v["entries"] != written:
        print(f"  (written: {written})")
