#!/usr/bin/python3
"""The key registry at scale (issue 12): startup, memory, key cost, revoke.

Fills a private Redis with --keys registry records (pipelined through
redis-cli --pipe: it is only data, so 64 real P-256 keys are shared by all
kids), then prints:

  fill           seconds to write the records, Redis used_memory
  nginx -t       seconds, with an empty registry and with --keys records
  start          seconds from exec to listening, and the worker RSS
                 (VmRSS) right after start and after the load below, for an
                 empty and a full registry
  requests/s     wrk over the plain listener (Client-Cert header), 1 worker:
                 one enterprise (one kid, one cached token) vs --tokens
                 distinct kids in random order (zone cache=10000, so most
                 requests miss the key cache: GET + parse + verify)
  key cost       per-request latency of a cached vs an uncached key
                 (sequential requests, fresh token each time: the
                 verified-token cache never helps)
  revoke         ms from `credit-consent key revoke` returning to the first
                 refusal (key_revoked) on each of two gateways

Sizes: make bench runs it with --keys 100000 --tokens 5000; the figures in
docs/keys.md come from --keys 1000000 --tokens 100000.
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack as S  # noqa: E402
import bench as B  # noqa: E402

BANK = "BANK001"
USCC = S.DEMO_USCC
PURPOSE = "loan_application"
CONSENT = S.ROOT / "build" / "bin" / "credit-consent"
POOL = 64


def resp(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def fill(st, n, pool):
    """n records credit:key:{bk-<i>}, kid i on pool key i % POOL."""
    t0 = time.monotonic()
    p = subprocess.Popen(["redis-cli", "-p", str(st.redis.port), "--pipe"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    chunk = []
    for i in range(n):
        kid = f"bk-{i}"
        jwk = dict(pool[i % POOL][1], kid=kid)
        rec = json.dumps({"kid": kid, "uscc": USCC, "state": "active",
                          "not_before": 0, "not_after": 0, "version": 1,
                          "jwk": jwk}, separators=(",", ":"))
        chunk.append(resp("SET", f"credit:key:{{{kid}}}", rec))
        if len(chunk) == 10000:
            p.stdin.write(b"".join(chunk))
            chunk = []
    chunk.append(resp("INCR", "credit:keyreg:version"))
    p.stdin.write(b"".join(chunk))
    p.stdin.close()
    p.wait()
    mem = st.redis.client().info("memory")["used_memory"]
    return time.monotonic() - t0, mem


def rss_kb(gw):
    total = 0
    for pid in gw.workers():
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def registry_gateway(st, cache=10000):
    return st.make_gateway(workers=1, http_directives={
        "credit_auth_key_registry": f"on cache={cache} ttl=60s"})


def timed_start(gw):
    t0 = time.monotonic()
    rc, out = gw.test()
    t_test = time.monotonic() - t0
    assert rc == 0, out
    t0 = time.monotonic()
    gw.start()
    t_start = time.monotonic() - t0
    time.sleep(0.3)
    return t_test, t_start, rss_kb(gw)


def token(pool, i):
    priv = pool[i % POOL][0]
    return S.mint_token(priv, "ES256", f"bk-{i}",
                        S.claims(USCC, BANK, lifetime=86400))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=1000000)
    ap.add_argument("--tokens", type=int, default=100000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=300)
    args = ap.parse_args()

    st = S.Stack().setup()
    bank = st.add_bank(BANK, "Benchmark Bank")
    st.add_enterprise_key(USCC, "ES256", kid="file-es256", write=False)
    st.write_keys()
    st.platform_root = S.write_platform(
        S.subdir(st.dir, "platform"), {(USCC, "tax"): B.record(1, False)})
    st.start(gateway=False)
    made = []
    try:
        pool = []
        for i in range(POOL):
            priv = S.generate_key("ES256")
            pool.append((priv, S.public_jwk(priv, "ES256", "x", USCC)))

        empty = registry_gateway(st)
        made.append(empty)
        e_test, e_start, e_rss = timed_start(empty)
        t_fill, mem = fill(st, args.keys, pool)
        print(f"fill: {args.keys} records in {t_fill:.1f} s, Redis "
              f"used_memory {mem / 1e6:.0f} MB")
        full = registry_gateway(st)
        made.append(full)
        f_test, f_start, f_rss = timed_start(full)
        print(f"nginx -t: {e_test:.3f} s (empty registry), {f_test:.3f} s "
              f"({args.keys} keys)")
        print(f"start to listening: {e_start:.3f} s / {f_start:.3f} s; "
              f"worker RSS {e_rss} kB / {f_rss} kB")
        empty.stop()
        made.remove(empty)

        cc = S.client_cert_header(bank.cert)
        path = f"/api/v1/enterprises/{USCC}/tax"
        url = full.url(path, plain=True)
        base = {"Client-Cert": cc, "X-Credit-Purpose": PURPOSE}

        import requests
        s = requests.Session()

        def one(tok):
            t0 = time.perf_counter()
            r = s.get(url, headers=dict(base, Authorization=f"Bearer {tok}"),
                      timeout=10)
            assert r.status_code == 200, r.text[:300]
            return (time.perf_counter() - t0) * 1e6

        # key cost: fresh tokens, so only the key cache differs
        n = args.samples
        one(token(pool, 7))
        cached = [one(token(pool, 7)) for _ in range(n)]
        kids = random.sample(range(args.keys), n)
        uncached = [one(token(pool, k)) for k in kids]
        print(f"latency, fresh token each (median of {n}): cached key "
              f"{statistics.median(cached):.0f} µs, uncached key "
              f"{statistics.median(uncached):.0f} µs")

        # throughput: one enterprise vs many kids in random order
        single = B.wrk(url, dict(base, Authorization=f"Bearer "
                                 f"{token(pool, 7)}"), args)
        ntok = min(args.tokens, args.keys)
        kids = random.sample(range(args.keys), ntok)
        tf = st.dir / "keyreg-tokens.txt"
        tf.write_text("\n".join(token(pool, k) for k in kids) + "\n")
        lua = st.dir / "keyreg-rotate.lua"
        lua.write_text(B.LUA_ROTATE % tf)
        calls0 = B.redis_calls(st).get("get", 0)
        many = B.wrk(url, base, args, script=lua)
        gets = B.redis_calls(st).get("get", 0) - calls0
        f_rss2 = rss_kb(full)
        print(f"requests/s: one enterprise {single['rps']:.0f} "
              f"(non-2xx {single['non2xx']}), {ntok} kids random "
              f"{many['rps']:.0f} (non-2xx {many['non2xx']}; "
              f"{gets} registry GETs incl. polls; zone cache=10000)")
        print(f"worker RSS after the load: {f_rss2} kB")

        # revoke: two gateways, the token cached on both
        gws = [full, registry_gateway(st)]
        made.append(gws[1])
        gws[1].start()
        tok = token(pool, 42)
        for g in gws:
            for _ in range(2):
                r = requests.get(g.url(path, plain=True), timeout=10,
                                 headers=dict(base,
                                              Authorization=f"Bearer {tok}"))
                assert r.status_code == 200, r.text[:200]
        subprocess.run([str(CONSENT), "key", "revoke", "bk-42", "--redis",
                        st.redis.address], check=True,
                       stdout=subprocess.DEVNULL)
        t0 = time.monotonic()
        seen = {}
        while len(seen) < 2 and time.monotonic() - t0 < 5:
            for i, g in enumerate(gws):
                if i in seen:
                    continue
                r = requests.get(g.url(path, plain=True), timeout=10,
                                 headers=dict(base,
                                              Authorization=f"Bearer {tok}"))
                if r.status_code == 401:
                    seen[i] = (time.monotonic() - t0) * 1000
        print("revoke -> first key_revoked: " + ", ".join(
            f"gateway {i + 1} {ms:.0f} ms" for i, ms in sorted(seen.items())))
        return 0 if len(seen) == 2 else 1
    finally:
        for g in made:
            g.stop()
        st.stop()


if __name__ == "__main__":
    sys.exit(main())
