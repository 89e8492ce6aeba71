#!/bin/sh
# Where does the gateway's time go on a large response?
#
# Runs the gateway (one process: nginx -g 'daemon off; master_process off;')
# under valgrind --tool=callgrind, sends N requests (default 200) for a
# record of KB KiB (default 256) through its plain-HTTP listener (bank
# certificate in an RFC 9440 Client-Cert header, so TLS stays out of the
# profile; the verified-token cache is warm after the first request), then
# prints the top functions by inclusive and by exclusive cost.
#
#   bench/callgrind.sh [N] [KB]
#   CALLGRIND_KEEP=1 bench/callgrind.sh      keep the working directory
#
# Needs valgrind (Debian: valgrind) and a built module (make build).
# Uses scripts/stack/ for PKI, keys, Redis and the upstream.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-200}
KB=${2:-256}
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not installed" >&2; exit 2; }
command -v callgrind_annotate >/dev/null || { echo "callgrind.sh: callgrind_annotate not installed" >&2; exit 2; }
export CREDIT_AUTH_ROOT="$ROOT"
exec /usr/bin/python3 - "$N" "$KB" <<'EOF'
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.environ["CREDIT_AUTH_ROOT"], "scripts"))
import stack as S  # noqa: E402

n, kb = int(sys.argv[1]), int(sys.argv[2])
if not S.module_path().is_file():
    sys.exit(f"callgrind.sh: module not built: {S.module_path()}")

uscc = S.make_uscc("91110108MA01CALLG")
st = S.Stack().setup()
proc = None
rc = 1
try:
    bank = st.add_bank("CG01", "Callgrind Bank")
    priv, jwk = st.add_enterprise_key(uscc, "ES256", kid="cg-es256")
    st.platform_root = S.write_platform(
        S.subdir(st.dir, "platform"),
        {(uscc, "tax"): S.record_of_size(uscc, kb)})
    st.start(gateway=False)
    # Under callgrind one 256 KiB filter takes seconds of wall time: give
    # Redis commands room, or the decision acks time out (503).
    gw = st.make_gateway(st.dir / "cg", tls=False, plain=True,
                         http_directives={"credit_auth_redis":
                                          st.redis.directive_value()
                                          + " connect_timeout=30s"
                                          " command_timeout=120s"})
    gw.write()
    out = gw.dir / "callgrind.out"
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            "--dump-instr=no", "--collect-jumps=no",
            S.NGINX, "-p", str(gw.dir) + "/", "-c", str(gw.conf),
            "-e", str(gw.startup_log),
            "-g", "daemon off; master_process off;"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=open(gw.dir / "valgrind.log", "wb"),
                            env=gw.env(), start_new_session=True)
    deadline = time.monotonic() + 120
    while not S.port_open(gw.http_port):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("gateway did not start under valgrind:\n"
                     + S.tail(gw.dir / "valgrind.log") + "\n"
                     + S.tail(gw.error_log))
        time.sleep(0.2)

    path = f"/api/v1/enterprises/{uscc}/tax"
    tok = S.mint_token(priv, "ES256", jwk["kid"],
                       S.claims(uscc, "CG01", lifetime=86400))
    headers = {"Client-Cert": S.client_cert_header(bank.cert),
               "Authorization": f"Bearer {tok}",
               "X-Credit-Purpose": "loan_application"}
    conn = http.client.HTTPConnection("127.0.0.1", gw.http_port, timeout=120)
    t0 = time.monotonic()
    sizes = set()
    reconnects = 0
    for i in range(n + 1):          # +1: the first one fills the token cache
        for attempt in (0, 1):
            try:
                conn.request("GET", path, headers=headers)
                r = conn.getresponse()
                body = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                # the server may close a kept-alive connection; once more
                conn.close()
                reconnects += 1
                conn = http.client.HTTPConnection("127.0.0.1", gw.http_port,
                                                  timeout=120)
        else:
            sys.exit(f"request {i}: connection closed twice")
        if r.status != 200:
            sys.exit(f"request {i}: {r.status} {body[:300]!r}")
        sizes.add(len(body))
    took = time.monotonic() - t0
    conn.close()
    print(f"{n + 1} requests of a {kb} KiB record "
          f"(answers {sorted(sizes)} bytes) in {took:.1f} s under callgrind"
          f"; {reconnects} reconnects",
          file=sys.stderr)

    os.kill(proc.pid, signal.SIGQUIT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)
    proc = None
    if not out.exists():
        sys.exit("no callgrind output:\n" + S.tail(gw.dir / "valgrind.log"))

    for title, extra in (("inclusive", ["--inclusive=yes"]),
                         ("exclusive (self)", ["--inclusive=no"])):
        a = subprocess.run(["callgrind_annotate", *extra, "--threshold=99",
                            str(out)], capture_output=True, text=True)
        lines = a.stdout.splitlines()
        # header, then "Ir  file:function" rows
        start = next((i for i, l in enumerate(lines)
                      if "file:function" in l), 0)
        print(f"\n=== top functions by {title} cost "
              f"(Ir = instructions) ===")
        print("\n".join(lines[max(0, start - 4):start + 1 + 30]))
    rc = 0
finally:
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    st.stop()
    if os.environ.get("CALLGRIND_KEEP"):
        print(f"working directory kept: {st.dir}", file=sys.stderr)
    else:
        shutil.rmtree(st.dir, ignore_errors=True)
sys.exit(rc)
EOF
