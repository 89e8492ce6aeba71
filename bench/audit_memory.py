#!/usr/bin/python3
"""Redis memory the audit trail takes, per entry and per request.

A real gateway (1 worker, checkpoints every second, the default) in front
of a 1 KiB tax record, a real Redis, one consent token reused (as a bank
reuses a consent), N allowed GETs sent by C concurrent clients, optionally
paced to R requests a second.  After the last checkpoint:

  entries        XLEN of the stream, and per event (the warm-up request's
                 entries, written before, are left out of every figure)
  stream_bytes   MEMORY USAGE <stream> SAMPLES 0 (every listpack node)
  per_entry      stream_bytes / entries
  field_bytes_per_entry   names and values, per event (what is hashed)
  bytes_per_entry_alone   MEMORY USAGE per entry of a stream holding only
                 that event's entries (Redis stores the field names once
                 per 100-entry node when consecutive entries share them:
                 the mixed stream stores more)
  per_request    stream_bytes / requests (decision + outcome + the
                 checkpoints written meanwhile)
  used_delta     INFO memory used_memory after - before, per request (the
                 stream and everything else the audit keeps: chain heads,
                 use counters)

docs/audit-format.md §7 quotes the figures.  Not a test: nothing is
asserted.

  bench/audit_memory.py [-n N] [-c C] [--rate R] [--gateway-id ID]
                        [--verify]
"""

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import stack as S  # noqa: E402

USCC = S.DEMO_USCC
PATH = f"/api/v1/enterprises/{USCC}/tax"


def used_memory(c):
    return int(c.info("memory")["used_memory"])


def run(n, conc, rate, verify, gw_id):
    st = S.Stack().setup()
    st.add_enterprise_key(USCC, "ES256", kid="k1")
    bank = st.add_bank("BANK001", "Bench Bank")
    body = S.record_of_size(USCC, 1)
    st.platform_root = S.write_platform(S.subdir(st.dir, "platform"),
                                        {(USCC, "tax"): body})
    st.gateway_kw = dict(stream="credit:audit", gateway_id=gw_id)
    st.start()
    try:
        c = st.redis.client()
        priv, _ = st.enterprise_keys["k1"]
        token = S.mint_token(priv, "ES256", "k1",
                             S.claims(USCC, "BANK001", lifetime=86400))
        url = st.gateway.url(PATH)
        h = {"Authorization": "Bearer " + token,
             "X-Credit-Purpose": "loan_application"}
        # warm up (worker connected, token cached), then start clean
        tls = dict(cert=(bank.cert, bank.key),
                   verify=str(st.pki.server_ca_path), timeout=10)
        assert requests.get(url, headers=h, **tls).status_code == 200
        time.sleep(2.5)
        xlen0 = c.xlen("credit:audit")
        stream0 = c.memory_usage("credit:audit", samples=0)
        before = used_memory(c)
        keys_before = set(c.keys("*"))

        sent = [0]
        lock = threading.Lock()
        start = time.monotonic()
        bad = []

        def client():
            ss = requests.Session()
            while True:
                with lock:
                    if sent[0] >= n:
                        return
                    k = sent[0]
                    sent[0] += 1
                if rate:
                    delay = start + k / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                r = ss.get(url, headers=h, **tls)
                if r.status_code != 200:
                    bad.append(r.status_code)

        ts = [threading.Thread(target=client) for _ in range(conc)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        took = time.monotonic() - start
        time.sleep(2.5)                 # the last checkpoints
        events, raw_bytes, alone = {}, {}, {}
        for i, f in c.xrange("credit:audit")[xlen0:]:
            ev = f["event"]
            events[ev] = events.get(ev, 0) + 1
            raw_bytes[ev] = raw_bytes.get(ev, 0) + sum(
                len(k.encode()) + len(v.encode()) for k, v in f.items())
            c.xadd("scratch:" + ev, f, id=i)
        for ev in events:
            alone[ev] = round(c.memory_usage("scratch:" + ev, samples=0)
                              / events[ev])
            raw_bytes[ev] = round(raw_bytes[ev] / events[ev])
            c.delete("scratch:" + ev)
        xlen = c.xlen("credit:audit") - xlen0
        stream_bytes = c.memory_usage("credit:audit", samples=0) - stream0
        after = used_memory(c)
        new_keys = sorted(set(c.keys("*")) - keys_before - {"credit:audit"})
        other = sum(c.memory_usage(k, samples=0) or 0 for k in new_keys)
        out = dict(requests=n, concurrency=conc,
                   rate=round(n / took, 1), refused=len(bad),
                   entries=xlen, events=events,
                   field_bytes_per_entry=raw_bytes,
                   bytes_per_entry_alone=alone, stream_bytes=stream_bytes,
                   per_entry=round(stream_bytes / xlen),
                   per_request=round(stream_bytes / n),
                   used_delta_per_request=round((after - before) / n),
                   other_keys=new_keys, other_bytes=other,
                   stream_config=c.config_get("stream-node-max-*"))
        if verify:
            import subprocess
            p = subprocess.run(
                [str(Path(__file__).resolve().parent.parent / "build" / "bin"
                     / "credit-audit"), "verify", "--json", "--redis",
                 st.redis.directive_value(), "--pubkey", str(st.audit_pub)],
                capture_output=True)
            out["verify_intact"] = json.loads(p.stdout)["intact"]
        return out
    finally:
        st.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=3000, help="requests")
    ap.add_argument("-c", type=int, default=8, help="concurrent clients")
    ap.add_argument("--rate", type=float, default=0,
                    help="requests a second (0: as fast as they go)")
    ap.add_argument("--gateway-id", default="gw-mem",
                    help="credit_auth_gateway_id (in every entry, twice)")
    ap.add_argument("--verify", action="store_true",
                    help="credit-audit verify the stream afterwards")
    a = ap.parse_args()
    print(json.dumps(run(a.n, a.c, a.rate, a.verify, a.gateway_id),
                     indent=1))


if __name__ == "__main__":
    main()
