#!/usr/bin/python3
"""CPU per request of the audit path, gateway vs plain proxy, in one run.

1 KiB record, one cached ES256 token (the 1k-es256-cached scenario of
bench.py), wrk against the plain proxy and then the gateway (1 worker
each).  Printed per gateway request (= one decision entry and one outcome
entry):

  redis_cmd_us   Redis command time, INFO commandstats (usec) delta
  redis_cpu_us   Redis process CPU, INFO cpu (user + sys) delta
  evalsha_us     usec_per_call of the audit script (one call = one batch)
  decisions/call decisions per script call (group commit)
  worker_us      the gateway worker's CPU (/proc/<pid>/stat) per request,
                 next to the plain proxy worker's, and the throughput ratio

The stack's Redis appends to an AOF (everysec); the run writes about 2 KB
per request, so Redis rewrites the AOF during it, and the rewrite's fork
and copy-on-write faults show up in the commands' time: --no-aof-rewrite
turns the automatic rewrite off for the run.

CREDIT_AUTH_MODULE selects the module (to compare two builds).
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack as S  # noqa: E402
import bench as B  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pids):
    """user + system seconds of these processes."""
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def redis_state(st):
    c = st.redis.client()
    cmd = c.info("commandstats")
    cpu = c.info("cpu")
    # commands a script runs count inside the script's own time too:
    # only top-level calls add up to Redis's command time
    usec = sum(v["usec"] for k, v in cmd.items()
               if k in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_ping"))
    ev = cmd.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return dict(usec=usec, cpu=cpu["used_cpu_user"] + cpu["used_cpu_sys"],
                evalsha_calls=ev["calls"], evalsha_usec=ev["usec"],
                each={k[8:]: (v["calls"], v["usec"]) for k, v in cmd.items()})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verbose", action="store_true",
                    help="every Redis command's calls and time")
    ap.add_argument("--no-aof-rewrite", action="store_true",
                    help="no AOF rewrite during the run (its fork and "
                         "copy-on-write land in the commands' time)")
    args = ap.parse_args()

    st = S.Stack().setup()
    try:
        bank = st.add_bank(B.BANK, "Benchmark Bank")
        uscc = B.USCC_BY_KB[(1, False)]
        priv, jwk = st.add_enterprise_key(uscc, "ES256", kid="bench-es256",
                                          write=False)
        st.write_keys()
        st.platform_root = S.write_platform(
            S.subdir(st.dir, "platform"),
            {(uscc, "tax"): S.record_of_size(uscc, 1)})
        st.start()
        if args.no_aof_rewrite:
            st.redis.client().config_set("auto-aof-rewrite-percentage", 0)
        plain = S.PlainProxy(st.dir, st.upstream.port).start()
        try:
            path = f"/api/v1/enterprises/{uscc}/tax"
            tok = S.mint_token(priv, "ES256", jwk["kid"],
                               S.claims(uscc, B.BANK, lifetime=86400))
            headers = {"Client-Cert": S.client_cert_header(bank.cert),
                       "Authorization": f"Bearer {tok}",
                       "X-Credit-Purpose": B.PURPOSE}
            pw = plain.workers()
            c0 = proc_cpu(pw)
            p = B.wrk(f"http://127.0.0.1:{plain.port}{path}", headers, args)
            plain_us = (proc_cpu(pw) - c0) * 1e6 / max(p["total"], 1)

            gw = st.gateway.workers()
            r0, c0 = redis_state(st), proc_cpu(gw)
            g = B.wrk(st.gateway.url(path, plain=True), headers, args)
            r1, c1 = redis_state(st), proc_cpu(gw)
            n = max(g["total"], 1)
            calls = max(r1["evalsha_calls"] - r0["evalsha_calls"], 1)
            res = dict(
                requests=g["total"], non2xx=g["non2xx"],
                rps=g["rps"] or 0, plain_rps=p["rps"] or 0,
                latency=g["latency"], plain_latency=p["latency"],
                redis_cmd_us=(r1["usec"] - r0["usec"]) / n,
                redis_cpu_us=(r1["cpu"] - r0["cpu"]) * 1e6 / n,
                evalsha_us=(r1["evalsha_usec"] - r0["evalsha_usec"]) / calls,
                decisions_per_call=n / calls,
                worker_us=(c1 - c0) * 1e6 / n, plain_worker_us=plain_us,
                ratio=(g["rps"] / p["rps"]) if g["rps"] and p["rps"] else 0)
            if args.verbose:
                for k, (c, u) in sorted(r1["each"].items()):
                    c0_, u0 = r0["each"].get(k, (0, 0))
                    print(f"  {k:<12} {(c - c0_) / n:7.2f} calls/req "
                          f"{(u - u0) / n:7.2f} us/req")
        finally:
            plain.stop()
    finally:
        st.stop()
        import shutil
        shutil.rmtree(st.dir, ignore_errors=True)

    print(f"module {S.module_path()}")
    print(f"requests {res['requests']} (non-2xx {res['non2xx']})  "
          f"gateway {res['rps']:.0f} req/s (latency {res['latency']}), "
          f"plain {res['plain_rps']:.0f} req/s (latency "
          f"{res['plain_latency']}), ratio {res['ratio']:.3f}")
    print(f"redis per request: commands {res['redis_cmd_us']:.1f} us, "
          f"process cpu {res['redis_cpu_us']:.1f} us; script "
          f"{res['evalsha_us']:.1f} us per call, "
          f"{res['decisions_per_call']:.2f} requests per call")
    print(f"worker per request: gateway {res['worker_us']:.1f} us, "
          f"plain proxy {res['plain_worker_us']:.1f} us")
    return 0 if res["non2xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
