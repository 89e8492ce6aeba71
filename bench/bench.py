#!/usr/bin/python3
"""`make bench`: the gateway against a plain nginx proxy, in one run.

One stack: Redis, an upstream serving JSON records, a plain nginx reverse
proxy (no module, keepalive upstream, 1 worker) and the gateway's
plain-HTTP listener (1 worker; bank certificate in an RFC 9440 Client-Cert
header, as behind a TLS-terminating load balancer).  For each scenario wrk
runs against both, back to back, and the ratio gateway / plain is printed:
ratios measured in one run, never lone absolute figures (ENGINEERING §8).

Exit status: 0, or 1 if a run fails or the gateway answers anything but 2xx.

Scenarios are a list (SCENARIOS); --all runs every one, --scenario NAME
picks some.  A scenario with tokens > 1 rotates that many distinct tokens
through a wrk Lua script, so the verified-token cache cannot help.  Records
are the sparse tax record the tests use (a year, an amount and a reference
per row) or one dense with numbers (ten amounts per row, three bucketed,
twelve monthly figures withheld: what tax and utilities platforms send).

Next to each ratio: CPU per request.  nginx worker CPU (utime + stime of
the worker processes, /proc/<pid>/stat) over wrk's request count, for the
gateway and the plain proxy; Redis CPU (INFO cpu, used_cpu_sys +
used_cpu_user) per gateway request, and the scripts' own time per call
(INFO commandstats, usec / calls of EVALSHA).  Clock-tick resolution
(10 ms) over thousands of requests: a few µs.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import stack as S  # noqa: E402

BANK = "BENCH01"
PURPOSE = "loan_application"

# name, record size (KiB), token alg, number of distinct tokens, default?
# dense: the record dense with numbers
SCENARIOS = [
    dict(name="1k-es256-cached", kb=1, alg="ES256", tokens=1, default=True),
    dict(name="16k-es256-cached", kb=16, alg="ES256", tokens=1, default=True),
    dict(name="256k-es256-cached", kb=256, alg="ES256", tokens=1,
         default=True),
    dict(name="16k-dense-cached", kb=16, dense=True, alg="ES256", tokens=1,
         default=True),
    dict(name="256k-dense-cached", kb=256, dense=True, alg="ES256",
         tokens=1, default=True),
    dict(name="1k-rs256-cached", kb=1, alg="RS256", tokens=1),
    dict(name="1k-eddsa-cached", kb=1, alg="EdDSA", tokens=1),
    dict(name="1k-es256-uncached", kb=1, alg="ES256", tokens=20000,
         default=True),
    dict(name="1k-rs256-uncached", kb=1, alg="RS256", tokens=20000),
    dict(name="1k-eddsa-uncached", kb=1, alg="EdDSA", tokens=20000),
]

# One enterprise (and record) per payload: (size, dense?).
USCC_BY_KB = {(1, False): S.DEMO_USCC,
              (16, False): S.make_uscc("91110108MA01BEN16"),
              (256, False): S.make_uscc("91110108MA01BEN25"),
              (16, True): S.make_uscc("91110108MA01DEN16"),
              (256, True): S.make_uscc("91110108MA01DEN25")}


def dense_record(uscc, kb):
    """A tax record of about kb KiB dense with numbers; the same shape as
    bench/filter_speed.c's dense record."""
    rec = S.tax_record(uscc)
    rows = []
    i = 0
    while True:
        rows.append({"year": 2021 - i,
                     "tax_paid": round(1234567 + 37 * i + (i % 100) / 100, 2),
                     "revenue": round(98765432 + 101 * i
                                      + (i * 7 % 100) / 100, 2),
                     "vat_paid": round(234567 + 13 * i
                                       + (i * 3 % 100) / 100, 2),
                     "arrears": 0 if i % 5 else 1000 + i,
                     "monthly": [round(10000 + 17 * i + m
                                       + ((i + m) % 100) / 100, 2)
                                 for m in range(12)]})
        rec["annual"] = rows
        i += 1
        # measured every row for small records, every 16th for large ones
        if (i % max(1, kb // 16) == 0
                and len(json.dumps(rec, indent=1)) >= kb * 1024):
            return rec


def record(kb, dense):
    uscc = USCC_BY_KB[(kb, dense)]
    return dense_record(uscc, kb) if dense else S.record_of_size(uscc, kb)


def worker_cpu(nginx):
    """utime + stime of an nginx's worker processes, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in nginx.workers():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])    # utime, stime
    return total / tick


def redis_cpu(st):
    """Redis's own CPU seconds so far and its commandstats."""
    c = st.redis.client()
    cpu = c.info("cpu")
    return (cpu["used_cpu_sys"] + cpu["used_cpu_user"],
            c.info("commandstats"))


def script_usec(before, after):
    """usec per EVALSHA call between two commandstats snapshots."""
    a = after.get("cmdstat_evalsha", {})
    b = before.get("cmdstat_evalsha", {})
    calls = a.get("calls", 0) - b.get("calls", 0)
    return (a.get("usec", 0) - b.get("usec", 0)) / calls if calls else 0

LUA_ROTATE = """
local tokens = {}
for line in io.lines("%s") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i %% #tokens + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[i]
  return wrk.format(nil)
end
"""


def parse_wrk(out):
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rps = float(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:\s+(.*)", out)
    sock = m.group(1).strip() if m else ""
    m = re.search(r"(\d+) requests in", out)
    total = int(m.group(1)) if m else 0
    lat = re.search(r"Latency\s+(\S+)", out)
    return dict(rps=rps, non2xx=non2xx, socket_errors=sock, total=total,
                latency=lat.group(1) if lat else "?")


def redis_calls(st):
    """Calls per Redis command so far (INFO commandstats)."""
    stats = st.redis.client().info("commandstats")
    return {k[len("cmdstat_"):] if k.startswith("cmdstat_") else k:
            v["calls"] for k, v in stats.items()
            if k not in ("cmdstat_info", "info")}


def wrk(url, headers, args, script=None):
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}",
            f"-d{args.duration}s"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    if script:
        argv += ["-s", str(script)]
    argv.append(url)
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=args.duration + 60)
    res = parse_wrk(r.stdout)
    res.update(rc=r.returncode, output=r.stdout + r.stderr)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--all", action="store_true", help="every scenario")
    ap.add_argument("--scenario", action="append", default=[],
                    help="scenario name (repeatable); see --list")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--json", action="store_true", help="JSON results")
    ap.add_argument("--durability", choices=("aof", "none"), default="aof",
                    help="Redis with appendfsync always and the gateway's "
                         "default durability=aof (default), or Redis "
                         "without persistence and durability=none: what "
                         "the audit costs Redis apart from its fsyncs")
    ap.add_argument("--keep", action="store_true",
                    help="keep the working directory")
    args = ap.parse_args()

    if args.list:
        for s in SCENARIOS:
            print(s["name"] + ("  (default)" if s.get("default") else ""))
        return 0
    if args.scenario:
        names = {s["name"] for s in SCENARIOS}
        bad = set(args.scenario) - names
        if bad:
            ap.error(f"unknown scenario(s): {', '.join(sorted(bad))}")
        chosen = [s for s in SCENARIOS if s["name"] in args.scenario]
    elif args.all:
        chosen = SCENARIOS
    else:
        chosen = [s for s in SCENARIOS if s.get("default")]

    mod = S.module_path()
    if not mod.is_file():
        print(f"bench: module not built: {mod} (make build)", file=sys.stderr)
        return 1

    if args.durability == "none":
        port = S.free_port()
        st = S.Stack(redis_kw=dict(port=port, appendonly="no"),
                     gateway_kw=dict(redis_addr=f"127.0.0.1:{port} "
                                     "durability=none")).setup()
    else:
        st = S.Stack().setup()
    results = []
    failed = False
    try:
        bank = st.add_bank(BANK, "Benchmark Bank")
        algs = sorted({s["alg"] for s in chosen})
        keys = {}
        for uscc in USCC_BY_KB.values():
            for alg in algs:
                keys[(uscc, alg)] = st.add_enterprise_key(
                    uscc, alg, kid=f"bench-{uscc}-{alg.lower()}", write=False)
        st.write_keys()
        records = {(uscc, "tax"): record(kb, dense)
                   for (kb, dense), uscc in USCC_BY_KB.items()}
        st.platform_root = S.write_platform(S.subdir(st.dir, "platform"),
                                            records)
        st.start()
        plain = S.PlainProxy(st.dir, st.upstream.port).start()
        try:
            cc = S.client_cert_header(bank.cert)
            for sc in chosen:
                uscc = USCC_BY_KB[(sc["kb"], sc.get("dense", False))]
                path = f"/api/v1/enterprises/{uscc}/tax"
                priv, jwk = keys[(uscc, sc["alg"])]

                def tok():
                    return S.mint_token(priv, sc["alg"], jwk["kid"],
                                        S.claims(uscc, BANK, lifetime=86400))
                headers = {"Client-Cert": cc,
                           "Authorization": f"Bearer {tok()}",
                           "X-Credit-Purpose": PURPOSE}
                script = None
                if sc["tokens"] > 1:
                    tf = st.dir / f"tokens-{sc['name']}.txt"
                    tf.write_text("\n".join(tok() for _ in
                                            range(sc["tokens"])) + "\n")
                    script = st.dir / f"rotate-{sc['name']}.lua"
                    script.write_text(LUA_ROTATE % tf)
                # sanity: one request through the gateway before measuring
                import requests
                r = requests.get(st.gateway.url(path, plain=True),
                                 headers=headers, timeout=10)
                if r.status_code != 200:
                    print(f"{sc['name']}: gateway answered {r.status_code}: "
                          f"{r.text[:300]}", file=sys.stderr)
                    failed = True
                    continue
                cpu0 = worker_cpu(plain)
                p = wrk(f"http://127.0.0.1:{plain.port}{path}", headers, args)
                plain_cpu = worker_cpu(plain) - cpu0
                before = redis_calls(st)
                cpu0 = worker_cpu(st.gateway)
                rcpu0, rstats0 = redis_cpu(st)
                g = wrk(st.gateway.url(path, plain=True), headers, args,
                        script)
                gw_cpu = worker_cpu(st.gateway) - cpu0
                rcpu1, rstats1 = redis_cpu(st)
                after = redis_calls(st)
                # every wrk request plus the sanity request above
                cmds = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                ratio = (g["rps"] / p["rps"]) if g["rps"] and p["rps"] else None
                ok = (p["rc"] == 0 and g["rc"] == 0 and p["rps"] and g["rps"]
                      and g["non2xx"] == 0)
                if not ok:
                    failed = True
                    for who, res in (("plain", p), ("gateway", g)):
                        print(f"--- {sc['name']} {who} wrk output:\n"
                              f"{res['output']}", file=sys.stderr)
                # EVALSHA = one round trip; the commands a script runs
                # inside Redis are counted by INFO too, but cost no trip
                per_req = (cmds.get("evalsha", 0) / g["total"]
                           if g["total"] else 0)

                def us(sec, n):
                    return 1e6 * sec / n if n else 0
                gw_us = us(gw_cpu, g["total"])
                plain_us = us(plain_cpu, p["total"])
                redis_us = us(rcpu1 - rcpu0, g["total"])
                evalsha_us = script_usec(rstats0, rstats1)
                results.append(dict(scenario=sc["name"], plain_rps=p["rps"],
                                    gateway_worker_us_per_request=gw_us,
                                    plain_worker_us_per_request=plain_us,
                                    redis_cpu_us_per_request=redis_us,
                                    evalsha_us_per_call=evalsha_us,
                                    redis_round_trips_per_request=per_req,
                                    redis_commands=cmds,
                                    gateway_rps=g["rps"], ratio=ratio,
                                    gateway_non2xx=g["non2xx"],
                                    plain_latency=p["latency"],
                                    gateway_latency=g["latency"],
                                    gateway_socket_errors=g["socket_errors"],
                                    ok=bool(ok)))
                if not args.json:
                    print(f"{sc['name']:<20} plain {p['rps'] or 0:>10.0f} req/s"
                          f"   gateway {g['rps'] or 0:>10.0f} req/s"
                          f"   ratio {ratio if ratio is not None else 0:.3f}"
                          f"{'' if ok else '   FAILED'}"
                          + (f"  (non-2xx {g['non2xx']})"
                             if g["non2xx"] else "")
                          + f"   redis trips/req {per_req:.2f}", flush=True)
                    print(f"{'':<20} worker CPU µs/req: gateway {gw_us:7.0f}"
                          f"  plain {plain_us:6.0f}"
                          f"  ({gw_us / plain_us if plain_us else 0:.2f} ×)"
                          f"   redis CPU µs/req {redis_us:5.0f}"
                          f" (script {evalsha_us * per_req:4.1f})"
                          f"  EVALSHA µs/call {evalsha_us:5.1f}", flush=True)
            problems = st.gateway.log_problems()
            if problems:
                failed = True
                print("gateway error log:\n" + "\n".join(problems[:20]),
                      file=sys.stderr)
        finally:
            plain.stop()
    finally:
        st.stop()
        if not args.keep:
            import shutil
            shutil.rmtree(st.dir, ignore_errors=True)
        else:
            print(f"working directory kept: {st.dir}", file=sys.stderr)
    if args.json:
        print(json.dumps(dict(duration=args.duration,
                              durability=args.durability,
                              connections=args.connections,
                              threads=args.threads, results=results),
                         indent=2))
    else:
        print(f"(wrk -t{args.threads} -c{args.connections} -d{args.duration}s;"
              " 1 gateway worker, 1 plain-proxy worker; ratio = gateway ÷ "
              f"plain, same run; durability={args.durability})")
        print("(worker CPU µs/req: utime+stime of the nginx workers ÷ wrk's "
              "requests; redis CPU µs/req: INFO cpu sys+user ÷ gateway "
              "requests, (script): the audit script's share of it; EVALSHA "
              "µs/call: INFO commandstats, the script's own time inside "
              "Redis per call)")
        print("(redis trips/req: EVALSHA calls per gateway request: every "
              "entry sealed in one event-loop turn (decisions, outcomes, "
              "refusals, checkpoints) goes in one script call, so a request "
              "waits for one call before it goes upstream and shares it with "
              "the others of its turn)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
