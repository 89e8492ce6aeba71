"""nginx conventions (issue 14 item 6): the $credit_auth_* variables in an
access_log format and in proxy_set_header, one info line per refusal, and
RFC 6750's WWW-Authenticate with a realm."""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import E1, PURPOSE, TAX, S, problem

VARS = ("request_id", "decision", "reason", "bank", "consent", "category",
        "disclosure", "enterprise", "purpose", "mode")
FORMAT = "|".join(f"$credit_auth_{v}" for v in VARS) + "|$status|$uri"
RECORD = S.tax_record(E1)


class ConvGW:
    def __init__(self, env, gw, platform, access_log):
        self.env, self.gw, self.p, self.access_log = \
            env, gw, platform, access_log

    def request(self, method="GET", **kw):
        saved = self.env.gw
        self.env.gw = self.gw
        try:
            return self.env.request(method, **kw)
        finally:
            self.env.gw = saved

    def line(self, rid=None, uri=None, timeout=3.0):
        """The access log line of a request id (or of a uri)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.access_log.read_text().splitlines() \
                if self.access_log.exists() else []
            found = [l for l in lines if l.startswith(f"{rid}|")
                     or l.endswith(f"|{uri}")]
            if found or time.monotonic() > deadline:
                assert found, (rid, lines[-5:])
                return dict(zip(VARS + ("status",),
                                found[-1].split("|")[:-1]))
            time.sleep(0.05)

    def upstream_headers(self, path=TAX):
        reqs = self.p.requests_for(path)
        assert reqs, "the platform was not asked"
        return {k.lower(): v for k, v in reqs[-1][2]}


@pytest.fixture(scope="module")
def conv(env):
    d = S.workdir(Path(tempfile.mkdtemp(prefix="conv-", dir=env.st.dir)))
    access_log = d / "access.log"
    platform = S.RawPlatform().start()
    gw = env.st.make_gateway(
        d / "gw", upstream_port=platform.port,
        http_extra=f"    log_format credit '{FORMAT}';",
        location_directives={
            "access_log": f"{access_log} credit",
            "credit_auth_realm": '"bank data"',
            "proxy_set_header": ['Connection ""',
                                 "X-Credit-Bank $credit_auth_bank",
                                 "X-Credit-Consent $credit_auth_consent",
                                 "X-Credit-Decision $credit_auth_decision"]},
        plain_server_extra=f"        location /other/ {{ access_log {access_log} "
                     f"credit; return 204; }}")
    try:
        gw.start()
    except Exception:
        platform.stop()
        raise
    yield ConvGW(env, gw, platform, access_log)
    gw.stop()
    platform.stop()


@pytest.fixture
def cg(conv):
    conv.p.script(TAX, S.http_answer(body=RECORD))
    with conv.p.lock:
        conv.p.requests.clear()
    conv.mark = conv.gw.log_size()
    return conv


# ------------------------------------------------------------------------
# Variables

def test_variables_of_an_allowed_request(cg):
    r = cg.request()
    assert r.status_code == 200, r.text
    rid = r.headers["X-Request-Id"]
    d = cg.env.decision(r)
    line = cg.line(rid)
    assert line == {
        "request_id": rid, "decision": "allow", "reason": "-",
        "bank": "BANK001", "consent": d["consent"], "category": "tax",
        "disclosure": r.headers["X-Credit-Disclosure"], "enterprise": E1,
        "purpose": PURPOSE, "mode": "query", "status": "200"}, line
    assert line["disclosure"] == "masked"

    # the bank code (and the audit's consent id) reach the platform
    up = cg.upstream_headers()
    assert up["x-credit-bank"] == "BANK001", up
    assert up["x-credit-consent"] == d["consent"], up
    assert up["x-credit-decision"] == "allow", up


def test_variables_of_a_refusal(cg):
    r = cg.request(token=None)
    problem(r, 401, "token_missing")
    line = cg.line(r.headers["X-Request-Id"])
    assert line["decision"] == "deny" and line["reason"] == "token_missing"
    assert line["bank"] == "BANK001" and line["status"] == "401", line
    # no token: no consent, nothing disclosed
    assert line["consent"] == "-" and line["disclosure"] == "-", line
    assert not cg.p.requests_for(TAX)


def test_consent_variable_is_the_audits_digest_of_a_personal_jti(cg):
    jti = "13800138000"                  # a mobile number as a jti
    r = cg.request(token=cg.env.token(jti=jti))
    assert r.status_code == 200, r.text
    d = cg.env.decision(r)
    line = cg.line(r.headers["X-Request-Id"])
    assert d["consent"] != jti and line["consent"] == d["consent"], \
        (d["consent"], line)
    assert jti not in cg.access_log.read_text()
    assert cg.upstream_headers()["x-credit-consent"] == d["consent"]


def test_raw_disclosure(cg):
    r = cg.request(token=cg.env.token(detail="raw"),
                   headers={"X-Credit-Detail": "raw"})
    assert r.status_code == 200, r.text
    line = cg.line(r.headers["X-Request-Id"])
    assert line["disclosure"] == "raw" == r.headers["X-Credit-Disclosure"]


def test_variables_are_empty_where_the_module_did_not_decide(cg):
    r = requests.get(cg.gw.url("/other/x", plain=True), timeout=5)
    assert r.status_code == 204
    line = cg.line(uri="/other/x")
    assert line == dict({v: "-" for v in VARS}, status="204"), line


# ------------------------------------------------------------------------
# One info line per refusal

def test_one_info_line_per_refusal_without_token_bytes(cg):
    bad = cg.env.token(jti="conv-log-1")
    head, payload, sig = bad.split(".")
    bad = f"{head}.{payload}.{sig[:-4]}AAAA"
    r = cg.request(token=bad)
    problem(r, 401, "signature_invalid")
    rid = r.headers["X-Request-Id"]
    log = cg.gw.read_error_log(cg.mark)
    lines = [l for l in log.splitlines() if rid in l]
    assert len(lines) == 1, lines
    assert "[info]" in lines[0], lines[0]
    assert "credit_auth: refused signature_invalid" in lines[0], lines[0]
    assert 'bank "BANK001"' in lines[0], lines[0]
    for part in (payload, sig[:20], "conv-log-1"):
        assert part not in log, part


def test_refusal_line_names_no_bank_when_none_was_identified(cg):
    r = cg.request(plain=True, cert=None)
    doc = problem(r, 403, "bank_unknown")
    rid = r.headers["X-Request-Id"]
    lines = [l for l in cg.gw.read_error_log(cg.mark).splitlines()
             if rid in l]
    assert len(lines) == 1 and "[info]" in lines[0], lines
    assert f'refused bank_unknown, request {rid}, bank "": ' \
        f'{doc["detail"]}' in lines[0], lines[0]


# ------------------------------------------------------------------------
# WWW-Authenticate (RFC 6750 §3)

def test_no_credentials_no_error_code(env):
    r = env.get(token=None)
    problem(r, 401, "token_missing")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="credit-auth"'


def test_another_scheme_is_no_bearer_credentials(env):
    r = env.get(token=None, headers={"Authorization": "Basic dXNlcjpwdw=="})
    problem(r, 401, "token_missing")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="credit-auth"'


def test_a_bad_token_is_invalid_token_with_a_description(env):
    tok = env.token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
    r = env.get(token=tok)
    problem(r, 401, "token_expired")
    www = r.headers["WWW-Authenticate"]
    assert www.startswith('Bearer realm="credit-auth", '
                          'error="invalid_token", error_description="'), www
    for part in tok.split("."):
        assert part[:16] not in www


def test_configured_realm(cg):
    r = cg.request(token=None)
    problem(r, 401, "token_missing")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="bank data"'
    r = cg.request(token="not.a.token")
    problem(r, 401, "token_malformed")
    assert r.headers["WWW-Authenticate"].startswith(
        'Bearer realm="bank data", error="invalid_token"')


@pytest.mark.parametrize("realm, why", [
    ("'a\"b'", "only printable ASCII"),
    ('""', "must be 1 to 128 characters"),
    ("x" * 129, "must be 1 to 128 characters"),
])
def test_bad_realm_is_refused_by_nginx_t(make_gateway, realm, why):
    rc, out = make_gateway(
        location_directives={"credit_auth_realm": realm}).test()
    assert rc != 0 and why in out, out


# ------------------------------------------------------------------------
# The upstream histogram with a platform that takes its time

def test_upstream_histogram_sees_a_slow_platform(cg):
    def buckets():
        text = requests.get(cg.gw.url("/credit-auth/status", plain=True),
                            params={"format": "prometheus"}, timeout=5).text
        return {m[0]: int(m[1]) for m in re.findall(
            r'^credit_auth_upstream_seconds_bucket\{le="([^"]+)"\} (\d+)$',
            text, re.M)}
    before = buckets()
    cg.p.script(TAX, S.http_answer(body=RECORD), delay=0.3)
    assert cg.request().status_code == 200
    after = buckets()
    assert after["0.25"] == before["0.25"], (before, after)
    assert after["0.5"] == before["0.5"] + 1, (before, after)
    assert after["+Inf"] == before["+Inf"] + 1, (before, after)


# ------------------------------------------------------------------------
# nginx's cache helper processes (cache manager, cache loader) run every
# module's init_process too; they serve no request, so they must not start
# an audit writer of their own (Redis connections, chains, spool files).

def _comm(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] \
            .decode(errors="replace")
    except OSError:
        return ""


# Prints {pid: [descriptor links]} for the pids on stdin (a JSON list).
_FD_SCAN = """
import json, os, sys
out = {}
for pid in json.load(sys.stdin):
    links = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    except OSError as e:
        links = None
    out[pid] = links
json.dump(out, sys.stdout)
"""


def _ids(pid):
    """The (uid, gid) a process runs as."""
    ids = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("Uid:", "Gid:")):
            ids[line[0]] = int(line.split()[1])
    return ids["U"], ids["G"]


def _fd_links(pids):
    """{pid: [link, ...]} of the pids' descriptors.

    Another user's /proc/PID/fd takes CAP_SYS_PTRACE to read, which root
    lacks in a container (podman drops it; `make fresh-test`): the links
    are read by a child running as the pids' own user and group -- the
    workers and helpers run as nobody:nogroup -- whom the kernel lets read
    them (nginx makes its processes dumpable again after setuid).  Fails
    when they cannot be read: the test would hold no premise."""
    by_ids = {}
    for pid in pids:
        by_ids.setdefault(_ids(pid), []).append(pid)
    links = {}
    for (uid, gid), group in by_ids.items():
        as_them = {} if (uid, gid) == (os.geteuid(), os.getegid()) \
            else {"user": uid, "group": gid, "extra_groups": []}
        p = subprocess.run(
            [sys.executable, "-c", _FD_SCAN], input=json.dumps(group),
            capture_output=True, text=True, timeout=30, check=True,
            **as_them)
        for pid, got in json.loads(p.stdout).items():
            assert got, f"cannot read /proc/{pid}/fd as {uid}:{gid}"
            links[int(pid)] = got
    return links


def _pids_connected_to(port, pids):
    """Those of pids with an established TCP connection to 127.0.0.1:port
    (/proc/net/tcp's socket inodes against each process's descriptors)."""
    want = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[2] == want and f[3] == "01":
            inodes.add(f[9])
    return {pid for pid, links in _fd_links(pids).items()
            if any(l.startswith("socket:[") and l[8:-1] in inodes
                   for l in links)}


def test_cache_helpers_start_no_audit_writer(env, make_gateway, conf_dir):
    cache = conf_dir / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    spool = conf_dir / "spool"
    spool.mkdir()
    spool.chmod(0o777)
    gw = make_gateway(
        http_extra=f"proxy_cache_path {cache} keys_zone=helpers:1m;",
        http_directives={"credit_auth_audit_spool": str(spool)})
    gw.start()
    saved = env.gw
    env.gw = gw
    try:
        r = env.request(path=TAX)
    finally:
        env.gw = saved
    assert r.status_code == 200, r.text
    children = S._children(gw.proc.pid)
    helpers = [p for p in children if "cache" in _comm(p)]
    assert helpers, [(_comm(p), p) for p in children]   # the test's premise
    time.sleep(1.0)                     # a helper would have connected by now
    connected = _pids_connected_to(env.st.redis.port, children)
    assert not connected & set(helpers), \
        [(p, _comm(p)) for p in connected & set(helpers)]
    assert connected - set(helpers)     # the worker is, so the scan works
    # no spool file of a helper's pid either
    assert not [f for f in spool.iterdir()
                if f.name.startswith("worker-")
                and int(f.name.split("-")[1].split(".")[0]) in helpers]
