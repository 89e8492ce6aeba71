#!/usr/bin/python3
"""`make container-test`: the compose stack, for real.

Builds the images (docker/Dockerfile, docker/redis.Dockerfile,
docker/postgres.Dockerfile, FROM the local debian:12 that
../shared/tools/containers setup makes), brings up Redis + platform +
gateway + PostgreSQL + shipper with podman-compose under a project name of
its own, sends one allowed and one refused query with curl over mutual
TLS, checks both audit entries with credit-audit inside the gateway
container, checks the shipper archived them in PostgreSQL and a
regulator's login can ask the archive, reads the status listener from
inside the compose network, and tears it all down (containers and
volumes).  Prints the runtime image size and the time taken.  Exit status 0 when every check passed.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yaml"
IMAGE = "localhost/credit-auth-gateway"
BUILDER = "localhost/credit-auth-ct-builder"
MAX_IMAGE_MB = 150
USCC = "91350100M000100Y43"
BANK = "minjiang_rcb"
DEMO = "/etc/credit-auth/demo"

failures = []


def run(argv, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}\n"
                           f"{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return p


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Compose:
    def __init__(self):
        self.project = f"credit-auth-ct-{os.getpid()}"
        self.env = dict(os.environ, GATEWAY_PORT=str(free_port()))
        self.port = int(self.env["GATEWAY_PORT"])

    def __call__(self, *args, check=True, timeout=900):
        return run(["podman-compose", "-p", self.project, "-f", str(COMPOSE),
                    *args], check=check, env=self.env, cwd=ROOT,
                   timeout=timeout)

    def container(self, service):
        return f"{self.project}_{service}_1"

    def exec(self, service, *argv, check=True):
        return run(["podman", "exec", self.container(service), *argv],
                   check=check, timeout=60)


def wait_healthy(c, timeout=90):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        p = run(["podman", "healthcheck", "run", c.container("gateway")],
                check=False, timeout=30)
        if p.returncode == 0:
            return True
        time.sleep(1)
    return False


def curl(c, tmp, token, purpose, path=f"/api/v1/enterprises/{USCC}/tax"):
    argv = ["curl", "-sS", "-D", "-", "--max-time", "10",
            "--cacert", f"{tmp}/server-ca.pem",
            "--cert", f"{tmp}/{BANK}.crt", "--key", f"{tmp}/{BANK}.key",
            "-H", f"Authorization: Bearer {token}",
            "-H", f"X-Credit-Purpose: {purpose}",
            f"https://localhost:{c.port}{path}"]
    p = run(argv, check=False, timeout=30)
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


def checks(c, tmp):
    size = int(run(["podman", "image", "inspect", "--format", "{{.Size}}",
                    IMAGE]).stdout.strip())
    print(f"runtime image {IMAGE}: {size / 1e6:.1f} MB")
    expect(size < MAX_IMAGE_MB * 1e6, f"runtime image < {MAX_IMAGE_MB} MB")

    # No key material in the image: run it without volumes and look.
    found = run(["podman", "run", "--rm", "--entrypoint", "bash", IMAGE,
                 "-c", "find / -xdev \\( -name '*.key' -o -name '*.jwk*' "
                 "-o -name '*.crt' -o -name '*ed25519*' -o -name '*.pem' \\) "
                 "-not -path '/usr/lib/ssl/*' -not -path '/etc/ssl/*' "
                 "-not -path '/usr/share/ca-certificates/*' -print; "
                 "ls -A /etc/credit-auth"]).stdout.split()
    expect(found == [], f"no key material in the image ({found})")

    # ... nor in the builder's layers: .dockerignore keeps build/ (test and
    # demo PKIs: a decoy key is planted there) and every key file out of
    # the context.
    found = run(["podman", "run", "--rm", BUILDER, "sh", "-c",
                 "find /src \\( -name '*.key' -o -name '*.pem' -o -name "
                 "'*.jwk*' -o -name '*.crt' -o -path /src/build/run \\) "
                 "-print"]).stdout.split()
    expect(found == [], f"no key material in the builder stage ({found})")

    expect(wait_healthy(c), "gateway health check passes")

    run(["podman", "cp", f"{c.container('gateway')}:{DEMO}/.", tmp])
    token = c.exec("gateway", "credit-consent", "sign",
                   "--key", f"{DEMO}/enterprise.key.pem", "--alg", "ES256",
                   "--kid", f"{USCC}-es256-1", "--iss", USCC, "--aud", BANK,
                   "--purposes", "loan_application",
                   "--categories", "tax,environment").stdout.strip()

    # Redis may still be connecting: 503 until it is.
    for _ in range(20):
        status, hdrs, body = curl(c, tmp, token, "loan_application")
        if status != 503:
            break
        time.sleep(0.5)
    expect(status == 200, f"allowed query: 200 (got {status} {body[:200]})")
    expect(hdrs.get("x-credit-disclosure") == "masked",
           "allowed query: X-Credit-Disclosure masked")
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    upstream = json.loads((ROOT / "demo" / "platform" / "api" / "v1" /
                           "enterprises" / USCC / "tax").read_text())
    expect(doc and set(doc) < set(upstream),
           "allowed query: filtered (fields withheld)")
    rid = hdrs.get("x-request-id")

    status, hdrs, body = curl(c, tmp, token, "post_loan_monitoring")
    try:
        problem = json.loads(body)
    except ValueError:
        problem = {}
    expect(status == 403 and problem.get("type")
           == "urn:credit-auth:purpose_not_allowed",
           f"refused query: 403 purpose_not_allowed (got {status} {body[:200]})")

    entries = [json.loads(line) for line in c.exec(
        "gateway", "credit-audit", "query", "--redis", "redis:6379",
        "--event", "decision", "--enterprise", USCC, "--json"
    ).stdout.splitlines() if line.strip()]
    by_decision = {e.get("decision"): e for e in entries}
    allow, deny = by_decision.get("allow"), by_decision.get("deny")
    expect(allow is not None and allow.get("rid") == rid
           and allow.get("bank") == BANK and allow.get("gw") == "gateway-1",
           f"audit: the allow decision, its rid, bank, fixed gw ({allow})")
    expect(deny is not None and deny.get("reason") == "purpose_not_allowed",
           f"audit: the deny decision with its reason ({deny})")
    time.sleep(1.5)   # one checkpoint interval
    v = c.exec("gateway", "credit-audit", "verify", "--redis", "redis:6379",
               "--pubkey", "/etc/credit-auth/audit-ed25519.pub.pem",
               check=False)
    expect(v.returncode == 0, f"audit: credit-audit verify intact "
                              f"({v.stdout.strip()[-300:]})")

    # The archive: the shipper moved the stream into PostgreSQL, verified
    # (no finding), and a regulator's login can ask it.
    archived = ""
    for _ in range(60):
        archived = c.exec("postgres", "psql", "-At", "-d", "credit_audit",
                          "-c", "SELECT count(*) FROM credit_audit.entries "
                          f"WHERE rid = '{rid}'", check=False).stdout.strip()
        if archived not in ("", "0"):
            break
        time.sleep(1)
    expect(archived == "2", f"archive: the allowed query's decision and "
                            f"outcome shipped ({archived!r})")
    q = c.exec("postgres", "bash", "-c",
               "PGPASSWORD=demo-regulator psql -At -h 127.0.0.1 -U regulator "
               "-d credit_audit -c \"SELECT bank FROM credit_audit.entries "
               f"WHERE enterprise = '{USCC}' AND event = 'decision' AND "
               "decision = 'allow' AND entry_time > now() - interval "
               "'12 months'\"", check=False)
    expect(q.returncode == 0 and BANK in q.stdout,
           f"archive: the regulator's query names the bank ({q.stdout!r}"
           f"{q.stderr[-200:]!r})")
    n = c.exec("postgres", "psql", "-At", "-d", "credit_audit", "-c",
               "SELECT count(*) FROM credit_audit.findings",
               check=False).stdout.strip()
    expect(n == "0", f"archive: no finding ({n!r})")

    # The status listener, from another container on the compose network,
    # plain HTTP (bash's /dev/tcp: the images carry no HTTP client).
    p = c.exec("platform", "bash", "-c",
               "exec 3<>/dev/tcp/gateway/8080; printf 'GET "
               "/credit-auth/status HTTP/1.0\\r\\nHost: gateway\\r\\n\\r\\n' "
               ">&3; cat <&3", check=False)
    _, _, sbody = p.stdout.replace("\r\n", "\n").partition("\n\n")
    try:
        st = json.loads(sbody)
    except ValueError:
        st = None
    expect(p.stdout.startswith("HTTP/1.1 200") and st is not None,
           f"status listener inside the network: 200 JSON ({p.stdout[:120]})")


def main():
    for tool in ("podman", "podman-compose", "curl"):
        if run(["sh", "-c", f"command -v {tool}"], check=False).returncode:
            sys.exit(f"container-test: {tool} missing; run "
                     "../shared/tools/containers setup")
    if run(["podman", "image", "exists", "debian:12"], check=False).returncode:
        sys.exit("container-test: no debian:12 image; run "
                 "../shared/tools/containers setup")
    t0 = time.monotonic()
    c = Compose()
    try:
        decoy = ROOT / "build" / "run" / "pki" / "ct-decoy-ca.key"
        decoy.parent.mkdir(parents=True, exist_ok=True)
        decoy.write_text("not a key: must never reach an image\n")
        try:
            c("build")
            run(["podman", "build", "-q", "--target", "builder", "-t",
                 BUILDER, "-f", "docker/Dockerfile", "."], cwd=ROOT,
                timeout=900)
        finally:
            decoy.unlink()
        t_build = time.monotonic() - t0
        print(f"images built in {t_build:.0f} s")
        c("up", "-d")
        with tempfile.TemporaryDirectory(prefix="credit-auth-ct-") as tmp:
            checks(c, tmp)
    except Exception as e:        # noqa: BLE001 -- report, then tear down
        failures.append(str(e))
        print(f"FAIL {e}")
        logs = run(["podman", "logs", "--tail", "30", c.container("gateway")],
                   check=False)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
    finally:
        c("down", "-v", check=False, timeout=120)
        left = run(["podman", "ps", "-a", "--filter",
                    f"name={c.project}", "-q"], check=False).stdout.split()
        left_vol = [v for v in run(["podman", "volume", "ls", "-q"],
                                   check=False).stdout.split()
                    if v.startswith(c.project)]
        for v in left_vol:
            run(["podman", "volume", "rm", "-f", v], check=False)
        expect(not left, "torn down: no container left")
        run(["podman", "rmi", "-f", BUILDER], check=False)
    print(f"container-test: {time.monotonic() - t0:.0f} s, "
          f"{'passed' if not failures else f'{len(failures)} failure(s)'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
