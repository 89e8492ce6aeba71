#!/usr/bin/python3
"""`make run`: the credit-auth gateway demo.

Everything lives under build/run/ (fresh each time): a demo PKI, one bank
client certificate, one enterprise signing key (ES256, in the key registry
in Redis, as a national platform keeps keys) for the first
enterprise of demo/enterprises.json, the shipped policy
policies/platform-policy.json (or --policy FILE: `make run POLICY=FILE`),
Redis (own config, AOF on), the demo platform (demo/platform served by a
separate nginx), the gateway with mutual TLS and its withdrawal endpoint
for enterprises, a PostgreSQL 15 (initdb under build/run/postgres, as the
postgres user when run as root) and `credit-audit ship` moving the audit
stream into it.  Prints ready-to-paste curl commands, the enterprise's
withdrawal, the regulator's credit-audit commands against the demo's audit
trail and a regulator's query of the archive, and stays in the foreground
until Ctrl-C.

  --policy FILE  try this policy on the demo; checked first with
                 `credit-policy check`, whose message stops the demo if the
                 file does not load
  --check        run the printed requests, the withdrawal and the archive
                 query, check the answers, exit 0/1
"""

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack as S  # noqa: E402

BANK_CODE = "minjiang_rcb"
BANK_NAME = "福建闽江农村商业银行股份有限公司（示例）"
PURPOSE = "loan_application"
REFUSED_PURPOSE = "post_loan_monitoring"       # not in the token's purposes
CONSENT = S.ROOT / "build" / "bin" / "credit-consent"
WITHDRAW = "/credit-auth/withdraw"
ISSUER = "示例地方金融管理局 (demo)"             # report --issuer


def first_enterprise():
    f = S.ROOT / "demo" / "enterprises.json"
    try:
        ents = json.loads(f.read_text())
        e = ents[0]
        if S.uscc_valid(e["uscc"]):
            return e["uscc"], e.get("name", "")
    except (OSError, ValueError, LookupError, TypeError):
        pass
    return S.DEMO_USCC, "福州闽江智能装备有限公司"


SHIPPED_POLICY = S.ROOT / "policies" / "platform-policy.json"


def check_policy(policy):
    """The checker's verdict on a policy file: None when it loads, else
    what `credit-policy check` said (file, JSON path, reason)."""
    tool = S.ROOT / "build" / "bin" / "credit-policy"
    r = subprocess.run([str(tool), "check", str(policy)],
                       capture_output=True, text=True, timeout=60)
    return None if r.returncode == 0 else (r.stdout + r.stderr).strip()


def copy_readable(src, dst):
    """src copied to dst, readable by everyone (demo records only)."""
    shutil.copytree(src, dst)
    for d, _, files in os.walk(dst):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return dst


def outside_closed_home(run_dir):
    """Where the demo's files go.  The nginx workers run as nobody when we
    are root: a working directory under a directory they cannot enter (a
    clone in /root, 0700 on Debian) would leave them the platform's records
    and the spool out of reach.  Then the files go to /tmp and run_dir
    becomes a symbolic link to them."""
    if os.geteuid() != 0:
        return run_dir
    parent = run_dir.absolute().parent
    closed = [p for p in [parent, *parent.parents]
              if p.exists() and not p.stat().st_mode & stat.S_IXOTH]
    if not closed:
        return run_dir
    tag = hashlib.sha256(str(run_dir.absolute()).encode()).hexdigest()[:8]
    real = Path(tempfile.gettempdir()) / f"credit-auth-run-{tag}"
    if run_dir.is_symlink() or run_dir.is_file():
        run_dir.unlink()
    elif run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    run_dir.symlink_to(real)
    print(f"demo: {closed[0]} is closed to the workers' user (nobody): the"
          f" working directory is {real} ({run_dir} links to it)",
          flush=True)
    return real


def build(run_dir, module=None, policy=SHIPPED_POLICY):
    platform = S.ROOT / "demo" / "platform"
    uscc, ent_name = first_enterprise()
    st = S.Stack(run_dir, policy=policy if policy.is_file() else None,
                 module=module).setup()
    # keys come from the registry in Redis only (a kid in both sources
    # would be refused), so that "not in the key registry" is true when
    # the gateway says it
    st.withdraw_port = S.free_port()
    st.gateway_kw = {
        "http_directives": {"credit_auth_keys": None,
                            "credit_auth_key_registry": "on"},
        "http_extra": S.withdrawal_server(st.pki, st.withdraw_port,
                                          path=WITHDRAW)}
    if (platform / "api" / "v1" / "enterprises" / uscc / "tax").is_file():
        # served from a copy in the working directory: the platform's nginx
        # workers run as nobody when we are root, and a clone in root's
        # home (/root is 0700 on Debian) is not theirs to read
        platform = copy_readable(platform, st.dir / "platform")
    else:
        platform = S.write_platform(S.subdir(st.dir, "platform"),
                                    {(uscc, "tax"): S.tax_record(uscc)})
    st.platform_root = platform
    bank = st.add_bank(BANK_CODE, BANK_NAME)
    priv, jwk = st.add_enterprise_key(uscc, "ES256", kid=f"{uscc}-es256-1")
    # The enterprise's key as credit-consent keygen writes it: the private
    # PEM and, beside it, the public JWK it sends the platform
    (st.cfg / "enterprise.key.pem").write_bytes(priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    os.chmod(st.cfg / "enterprise.key.pem", 0o600)
    S.write_json(st.cfg / "enterprise.jwk", jwk)
    claims = S.claims(uscc, BANK_CODE, purposes=[PURPOSE],
                      categories=["tax", "environment"])
    token = S.mint_token(priv, "ES256", jwk["kid"], claims)
    (st.dir / "token.jwt").write_text(token + "\n")
    return st, bank, uscc, ent_name, token, claims


def start(st):
    """Redis, platform, gateway (with its withdrawal endpoint); then the
    enterprise's key registered as the platform registers keys."""
    st.start(gateway=False)
    st.gateway = st.make_gateway(st.dir, **st.gateway_kw)
    st.gateway.ports.append(st.withdraw_port)
    st.gateway.start()
    r = subprocess.run([str(CONSENT), "key", "add", "--jwk",
                        str(st.cfg / "enterprise.jwk"), "--redis",
                        st.redis.address], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"key add: {r.stderr.strip()}")


def jwk_kid(st):
    return json.loads((st.cfg / "enterprise.jwk").read_text())["kid"]


def withdraw_argv(st):
    return [str(CONSENT), "withdraw", "--endpoint",
            f"https://127.0.0.1:{st.withdraw_port}{WITHDRAW}",
            "--key", str(st.cfg / "enterprise.key.pem"),
            "--token", str(st.dir / "token.jwt"),
            "--cacert", st.pki.server_ca_path]
def audit_argvs(st, uscc):
    """The regulator's credit-audit commands against this demo's trail,
    by name: each argv as the demo prints it (tests/integration/
    test_demo_audit.py runs every one)."""
    tool = str(S.ROOT / "build" / "bin" / "credit-audit")
    common = ["--redis", st.redis.address, "--tz", "Asia/Shanghai"]
    pub = ["--pubkey", str(st.audit_pub)]
    names = ["--banks", str(st.banks_path), "--policy", str(st.policy_path)]
    return [
        ("verify", [tool, "verify", *common, *pub]),
        ("report", [tool, "report", *common, *pub, *names,
                    "--issuer", ISSUER]),
        ("report-html", [tool, "report", *common, *pub, *names,
                         "--issuer", ISSUER, "--format", "html",
                         "--out", str(st.dir / "report.html")]),
        ("query", [tool, "query", *common, "--enterprise", uscc]),
        ("export", [tool, "export", *common, "--view", "requests",
                    "--format", "csv", "--excel", *names,
                    "--enterprises", str(S.ROOT / "demo" / "enterprises.json"),
                    "--out", str(st.dir / "requests.csv")]),
    ]


def curl_argv(st, bank, path, token, purpose):
    return ["curl", "-sS", "-i",
            "--cacert", st.pki.server_ca_path,
            "--cert", bank.cert, "--key", bank.key,
            "-H", f"Authorization: Bearer {token}",
            "-H", f"X-Credit-Purpose: {purpose}",
            st.gateway.url(path)]


def run_curl(argv):
    out = subprocess.run(argv, capture_output=True, timeout=30)
    raw = out.stdout.decode(errors="replace")
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    # skip interim responses (100 Continue)
    while head.startswith("HTTP/") and " 100 " in head.split("\n")[0]:
        head, _, body = body.partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith(
        "HTTP/") else 0
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return out.returncode, status, headers, body, out.stderr.decode()


AUDIT = S.ROOT / "build" / "bin" / "credit-audit"


class Archive:
    """PostgreSQL beside Redis, the schema, and a shipper running."""

    def __init__(self, st):
        self.st = st
        self.pg = S.Postgres(st.dir).start()
        admin = self.pg.conninfo()
        subprocess.run([str(AUDIT), "ship", "--init", "--archive", admin],
                       check=True, capture_output=True, timeout=60)
        self.pg.grant("credit_audit_shipper", "shipper")
        self.pg.grant("credit_audit_reader", "reader")
        self.pg.grant("credit_audit_acknowledger", "operator")
        self.log = open(st.dir / "ship.log", "ab")
        self.metrics = st.dir / "credit-audit-ship.prom"
        self.proc = subprocess.Popen(
            [str(AUDIT), "ship", "--archive", self.pg.conninfo("shipper"),
             "--redis", st.redis.address, "--pubkey", str(st.audit_pub),
             "--keep", "1d", "--metrics", str(self.metrics)],
            stdout=self.log, stderr=self.log, start_new_session=True,
            env=dict(os.environ, **self.pg.env()))

    def regulator_sql(self, uscc):
        return ("SELECT bank, count(*) AS decisions, max(entry_time) AS last "
               "FROM credit_audit.entries WHERE enterprise = '%s' AND "
               "entry_time >= now() - interval '12 months' AND event = "
               "'decision' AND decision = 'allow' GROUP BY bank "
               "ORDER BY 2 DESC" % uscc)

    def regulator_query(self, uscc):
        return ["psql", self.pg.conninfo("reader"), "-c",
                self.regulator_sql(uscc)]

    def env_prefix(self):
        return f"PGPASSFILE={shlex.quote(str(self.pg.passfile))}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.pg.stop()


def check_archive(arc, uscc, n):
    """The shipper archived what the stream held; the regulator's query
    answers with the bank."""
    deadline = time.monotonic() + 30
    got = 0
    while time.monotonic() < deadline:
        got = arc.pg.psql("SELECT count(*) FROM credit_audit.entries",
                          user="reader")[0][0]
        if got >= n:
            break
        time.sleep(0.2)
    if got < n:
        print(f"CHECK FAILED: archive holds {got} entries, expected {n}")
        return False
    out = subprocess.run(arc.regulator_query(uscc), capture_output=True,
                         text=True, env=dict(os.environ, **arc.pg.env()))
    if out.returncode != 0 or BANK_CODE not in out.stdout:
        print(f"CHECK FAILED: regulator's query: {out.stdout}{out.stderr}")
        return False
    print(f"archive: {got} entries; the regulator's query names "
          f"{BANK_CODE}")
    return True


def check(st, allowed, refused, upstream_file):
    ok = True

    def fail(msg):
        nonlocal ok
        ok = False
        print(f"CHECK FAILED: {msg}")

    rc, status, h, body, err = run_curl(allowed)
    if rc != 0 or status != 200:
        fail(f"allowed request: curl rc={rc} status={status} {err} {body[:300]}")
    else:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
            fail(f"allowed request: not JSON: {body[:300]}")
        upstream = json.loads(Path(upstream_file).read_text())
        if doc is not None:
            withheld = set(upstream) - set(doc)
            if not withheld:
                fail("allowed request: nothing was withheld")
            if "internal_notes" in doc:
                fail("allowed request: internal_notes disclosed")
            rid = (upstream.get("legal_representative") or {}).get("id_number")
            if rid and rid in body:
                fail("allowed request: raw id_number disclosed")
        if h.get("x-credit-disclosure") != "masked":
            fail(f"allowed request: X-Credit-Disclosure "
                 f"{h.get('x-credit-disclosure')!r}")
        if not h.get("x-request-id"):
            fail("allowed request: no X-Request-Id")
        if ok:
            print(f"allowed request: 200, {len(withheld)} top-level "
                  f"fields withheld ({', '.join(sorted(withheld))})")

    rc, status, h, body, err = run_curl(refused)
    want = "urn:credit-auth:purpose_not_allowed"
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    if status != 403 or not h.get("content-type", "").startswith(
            "application/problem+json") or doc.get("type") != want:
        fail(f"refused request: status={status} "
             f"type={h.get('content-type')} body={body[:300]}")
    else:
        print(f"refused request: 403 {doc.get('type')}")

    # the enterprise withdraws the consent; the bank is refused from then
    r = subprocess.run(withdraw_argv(st), capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0 or not r.stdout.startswith("withdrawn:"):
        fail(f"withdrawal: rc={r.returncode} {r.stdout}{r.stderr}")
    else:
        rc, status, h, body, err = run_curl(allowed)
        if status != 403 or "consent_revoked" not in body:
            fail(f"after the withdrawal: status={status} {body[:300]}")
        else:
            print(f"withdrawal: {r.stdout.strip()}; then 403 "
                  "consent_revoked")

    try:
        n = st.redis.client().xlen("credit:audit")
    except Exception as e:
        n = -1
        fail(f"audit stream: {e}")
    if 0 <= n < 2:
        fail(f"audit stream has {n} entries, expected at least 2")
    elif n >= 2:
        print(f"audit stream: {n} entries")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="run the printed requests, check them, exit 0/1")
    ap.add_argument("--dir", default=str(S.ROOT / "build" / "run"),
                    help="working directory (recreated; default build/run)")
    ap.add_argument("--policy", default=None,
                    help="policy file to try (default "
                         "policies/platform-policy.json)")
    ap.add_argument("--module", default=None,
                    help="module .so (default: CREDIT_AUTH_MODULE or "
                         "build/ngx_http_credit_auth_module.so)")
    args = ap.parse_args()

    mod = Path(args.module) if args.module else S.module_path()
    if not mod.is_file():
        print(f"demo: module not built: {mod} (make build)", file=sys.stderr)
        return 1
    policy = Path(args.policy).resolve() if args.policy else SHIPPED_POLICY
    verdict = check_policy(policy) if args.policy or policy.is_file() \
        else None
    if verdict is not None:
        print(f"demo: the policy does not load, so the gateway would not "
              f"start:\n{verdict}", file=sys.stderr)
        return 1
    run_dir = S.workdir(outside_closed_home(Path(args.dir)), fresh=True)

    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    st = arc = None
    try:
        st, bank, uscc, ent_name, token, claims = build(run_dir, str(mod),
                                                        policy)
        start(st)
        arc = Archive(st)
        tax = f"/api/v1/enterprises/{uscc}/tax"
        allowed = curl_argv(st, bank, tax, token, PURPOSE)
        refused = curl_argv(st, bank, tax, token, REFUSED_PURPOSE)
        upstream_file = Path(st.platform_root) / tax.lstrip("/")
        status = ["curl", "-sS",
                  "--cacert", st.pki.server_ca_path,
                  "--cert", bank.cert, "--key", bank.key,
                  st.gateway.url("/credit-auth/status")]
        print(f"""
credit-auth gateway demo                       (working dir {st.dir})
  gateway      https://127.0.0.1:{st.gateway.tls_port}  (mutual TLS; plain-HTTP listener 127.0.0.1:{st.gateway.http_port})
  platform     http://127.0.0.1:{st.upstream.port}  ({st.platform_root})
  redis        127.0.0.1:{st.redis.port}  (AOF on, {st.redis.dir})
  policy       {st.policy_path}  (sha256 {st.policy_sha256[:16]}...)
  bank         {BANK_CODE}  {BANK_NAME}
               cert sha256 {bank.sha256}
  enterprise   {uscc}  {ent_name}
  consent      jti {claims['jti']}: purposes {claims['purposes']}, categories {claims['categories']}, expires in 1 h
               (token in {st.dir / 'token.jwt'})

1. Authorized query (masked, filtered JSON):

{shlex.join(allowed)}

2. Refused: purpose {REFUSED_PURPOSE} is not in the consent (403 problem+json):

{shlex.join(refused)}

3. The enterprise takes its consent back itself (a signed withdrawal to
   the withdrawal endpoint, https://127.0.0.1:{st.withdraw_port}{WITHDRAW}, no client
   certificate); request 1 is then refused 403 consent_revoked:

{shlex.join(withdraw_argv(st))}

   Its key is in the key registry (Redis), as the platform registered it:

{shlex.join([str(CONSENT), "key", "show", jwk_kid(st), "--redis", st.redis.address])}

Status counters (also ?format=prometheus):

{shlex.join(status)}

Audit trail:

redis-cli -p {st.redis.port} XRANGE credit:audit - +

Audit public key (for credit-audit verify --pubkey): {st.audit_pub}

The regulator (credit-audit, man credit-audit): verify the trail, the work
report (text, then HTML), the enterprise's requests, the requests as CSV for
Excel:

{chr(10).join(shlex.join(a) for _, a in audit_argvs(st, uscc))}

The archive (PostgreSQL {arc.pg.port}, {arc.pg.home}): `credit-audit ship`
moves the stream into it (log {arc.log.name}, metrics {arc.metrics}; the
entries stay in Redis a day, so that the commands above see the whole
trail).  The regulator's question, "which banks queried this enterprise in
the last 12 months" (the psql form, until `credit-audit query --archive`
exists):

{arc.env_prefix()} psql {shlex.quote(arc.pg.conninfo("reader"))} \\
    -c "{arc.regulator_sql(uscc)}"

Breaks found while shipping:

{arc.env_prefix()} {AUDIT} findings --archive {shlex.quote(arc.pg.conninfo("operator"))}
""", flush=True)

        explain = [str(S.ROOT / "build" / "bin" / "credit-policy"),
                   "explain", "--policy", str(st.policy_path), "--path", tax,
                   "--response", str(upstream_file), "--token", token,
                   "--purpose", PURPOSE]
        print(f"What the policy discloses of this record, and why:\n\n"
              f"{shlex.join(explain)}\n", flush=True)

        if args.check:
            ok = check(st, allowed, refused, upstream_file)
            n = st.redis.client().xlen("credit:audit")
            return 0 if ok and check_archive(arc, uscc, n) else 1

        print("Ctrl-C stops everything.", flush=True)
        while not stopping:
            for name, p in (("gateway", st.gateway),
                            ("platform", st.upstream)):
                if not p.running:
                    print(f"demo: the {name} stopped:\n{p.diagnostics()}",
                          file=sys.stderr)
                    return 1
            if not st.redis.ping():
                print("demo: redis stopped", file=sys.stderr)
                return 1
            if arc.proc.poll() is not None:
                print(f"demo: the shipper stopped (see {arc.log.name})",
                      file=sys.stderr)
                return 1
            time.sleep(0.5)
        print("\nstopping...", flush=True)
        return 0
    except Exception as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    finally:
        if arc is not None:
            arc.stop()
        if st is not None:
            st.stop()


if __name__ == "__main__":
    sys.exit(main())
