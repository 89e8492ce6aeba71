#!/usr/bin/python3
"""`make memcheck`: per-request memory of the module under valgrind.

Runs the gateway as one process (master_process off) under valgrind
memcheck, sends a mix that walks every path that allocates — allowed
queries with a cached and with fresh tokens, refusals of several kinds, a
verification, a raw-level query, an upstream that is not JSON, a client
that hangs up while its request waits — then quits nginx gracefully and
fails if valgrind reports an invalid access, or a block definitely or
indirectly lost, whose stack passes through the module or the engine (ngx_http_credit_auth_*, ca_*).  nginx's own allocations that live
until exit are not the module's business and are not counted.

Several minutes under valgrind: not part of `make test`.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import stack as S  # noqa: E402

OURS = re.compile(r"ngx_http_credit_auth_|\bca_[a-z_]+\b")


def request(port, method, path, headers, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def lost_blocks(log):
    """Leak and error records from a valgrind log, with their stacks."""
    records, cur = [], None
    for line in log.splitlines():
        m = re.match(r"==\d+== (.*)", line)
        if not m:
            continue
        text = m.group(1)
        if (re.search(r"(definitely|indirectly) lost in loss record", text)
                or re.search(r"lost in loss record", text)
                or text.startswith(("Invalid read", "Invalid write",
                                    "Invalid free", "Conditional jump",
                                    "Use of uninitialised",
                                    "Mismatched free", "Syscall param",
                                    "Source and destination overlap",
                                    "Argument 'size'"))):
            cur = [text]
            records.append(cur)
        elif cur is not None and text.strip().startswith(("at ", "by ")):
            cur.append(text.strip())
        elif cur is not None and not text.strip():
            cur = None
    return records


def main():
    if not S.module_path().is_file():
        sys.exit(f"memcheck: module not built: {S.module_path()}")

    uscc = S.DEMO_USCC
    st = S.Stack().setup()
    proc = None
    try:
        bank = st.add_bank("MC01", "Memcheck Bank")
        priv, jwk = st.add_enterprise_key(uscc, "ES256", kid="mc-es256")
        st.platform_root = S.write_platform(
            S.subdir(st.dir, "platform"),
            {(uscc, "tax"): S.tax_record(uscc)})
        (st.platform_root / "api" / "v1" / "enterprises" / uscc
         / "environment").write_text("<html>not json</html>")
        st.start(gateway=False)
        gw = st.make_gateway(st.dir / "mc", tls=False, plain=True,
                             http_directives={"credit_auth_redis":
                                              st.redis.directive_value()
                                              + " connect_timeout=30s"
                                              " command_timeout=60s"})
        gw.write()
        vlog = gw.dir / "valgrind.log"
        # keep-debuginfo: the module is dlclose()d before the leak report
        argv = ["valgrind", "--tool=memcheck", "--leak-check=full",
                "--keep-debuginfo=yes",
                "--show-leak-kinds=definite,indirect", "--num-callers=30",
                f"--log-file={vlog}",
                S.NGINX, "-p", str(gw.dir) + "/", "-c", str(gw.conf),
                "-e", str(gw.startup_log),
                "-g", "daemon off; master_process off;"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=gw.env(),
                                start_new_session=True)
        deadline = time.monotonic() + 120
        while not S.port_open(gw.http_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("gateway did not start under valgrind:\n"
                         + S.tail(vlog) + S.tail(gw.error_log))
            time.sleep(0.2)
        # the worker connects to Redis after it starts listening
        time.sleep(3)

        port = gw.http_port
        tax = f"/api/v1/enterprises/{uscc}/tax"
        cc = S.client_cert_header(bank.cert)

        def tok(**kw):
            c = S.claims(uscc, "MC01", lifetime=3600, **kw)
            return S.mint_token(priv, "ES256", jwk["kid"], c)

        def hdr(token, purpose="loan_application", **extra):
            h = {"Client-Cert": cc, "X-Credit-Purpose": purpose}
            if token:
                h["Authorization"] = f"Bearer {token}"
            h.update(extra)
            return h

        cached = tok()
        raw = tok(detail="raw")
        expect = []
        for i in range(20):
            expect.append((request(port, "GET", tax, hdr(cached)), 200))
            expect.append((request(port, "GET", tax, hdr(tok())), 200))
        for _ in range(5):
            expect += [
                (request(port, "GET", tax, hdr(None)), 401),
                (request(port, "GET", tax, hdr("a.b.c")), 401),
                (request(port, "GET", tax, hdr(cached, "marketing")), 403),
                (request(port, "GET", tax, {"X-Credit-Purpose": "x"}), 403),
                (request(port, "GET", "/api/v1/elsewhere", hdr(cached)),
                 403),
                (request(port, "GET", tax, hdr(raw, **{"X-Credit-Detail":
                                                      "raw"})), 200),
                # a consent of its own each time: the policy's
                # verify_budget (3) would refuse the fourth
                (request(port, "POST", tax, hdr(tok()), json.dumps(
                    {"checks": [{"field": "credit_rating", "op": "eq",
                                 "value": "A"}]})), 200),
                (request(port, "POST", tax, hdr(cached), "not json"), 400),
                (request(port, "GET",
                         f"/api/v1/enterprises/{uscc}/environment",
                         hdr(tok(categories=["environment"]))), 502),
            ]
        # clients that hang up right after sending their request
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", port))
            lines = [f"GET {tax} HTTP/1.1", "Host: x"]
            lines += [f"{k}: {v}" for k, v in hdr(tok()).items()]
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            s.close()
        time.sleep(2)

        bad = [(got[0], want) for got, want in expect if got[0] != want]
        if bad:
            print(f"memcheck: unexpected statuses: {bad[:10]}",
                  file=sys.stderr)

        os.kill(proc.pid, signal.SIGQUIT)
        proc.wait(120)
        proc = None

        log = vlog.read_text(errors="replace")
        records = lost_blocks(log)
        ours = [r for r in records if any(OURS.search(f) for f in r[1:])]
        if os.environ.get("MEMCHECK_VERBOSE"):
            for r in records:
                print("\n  " + "\n    ".join(r[:12]))
        summary = [l for l in log.splitlines()
                   if re.search(r"(definitely|indirectly) lost:|ERROR SUMMARY",
                                l)]
        print("\n".join(summary))
        print(f"{len(expect)} requests; {len(records)} leak/error records, "
              f"{len(ours)} in the module or engine")
        for r in ours[:10]:
            print("\n  " + "\n    ".join(r[:16]))
        return 1 if ours or bad else 0
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        st.stop()


if __name__ == "__main__":
    sys.exit(main())
