"""Fixtures for the credit-auth gateway integration tests: a real nginx with
the module, real Redis, real mutual TLS and a static upstream, built with
scripts/stack/.  See README.md."""

import copy
import json
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(os.environ.get("CREDIT_AUTH_ROOT")
            or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(ROOT / "scripts"))

import stack as S  # noqa: E402

# Enterprises: E1 has a record for every category, E2 only tax.
E1 = S.DEMO_USCC
E2 = S.make_uscc("91110108MA01ABCD0")
E_NO_KEY = S.make_uscc("91440300MA5FUND0A")     # valid USCC, no key

PURPOSE = "loan_application"
TAX = f"/api/v1/enterprises/{E1}/tax"
ENV = f"/api/v1/enterprises/{E1}/environment"

RECORDS = {
    (E1, "tax"): S.tax_record(E1),
    (E1, "environment"): S.environment_record(E1),
    (E2, "tax"): S.tax_record(E2, name="北京海淀示例科技有限公司"),
}

DEFAULT = object()
_ENV = None          # the session's Env, for the failure-report hook


def _markers(obj, out, key=None):
    """Distinctive upstream bytes: long member names and leaf values."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if len(k) >= 8:
                out.add(k)
            _markers(v, out, k)
    elif isinstance(obj, list):
        for v in obj:
            _markers(v, out, key)
    elif isinstance(obj, bool) or obj is None:
        return
    else:
        s = str(obj)
        if len(s) >= 6 and not S.uscc_valid(s):
            out.add(s)


UPSTREAM_MARKERS = set()
for _rec in RECORDS.values():
    _markers(_rec, UPSTREAM_MARKERS)


class Env:
    """The running stack plus request, token and audit helpers."""

    def __init__(self, st):
        self.st = st
        self.gw = st.gateway
        self.pki = st.pki
        self.certs = {}          # bank code -> BankCert
        self.keys = {}           # kid -> (priv, jwk)

    # tokens --------------------------------------------------------------
    def key(self, kid):
        return self.st.enterprise_keys[kid]

    def token(self, uscc=E1, bank="BANK001", kid=None, alg=None,
              headers=None, priv=None, **claim_overrides):
        """A valid token for uscc and bank unless told otherwise; the key
        is <e>-<alg> (e1-es256 by default)."""
        if kid is None:
            prefix = "e1" if uscc == E1 else "e2"
            kid = f"{prefix}-{(alg or 'ES256').lower()}"
        if kid in self.st.enterprise_keys:
            kpriv, jwk = self.st.enterprise_keys[kid]
            alg = alg or jwk["alg"]
        else:
            kpriv = None
            alg = alg or "ES256"
        priv = priv or kpriv or S.generate_key(alg)
        c = S.claims(uscc, bank, **claim_overrides)
        return S.mint_token(priv, alg, kid, c, headers)

    # requests ------------------------------------------------------------
    def request(self, method="GET", path=TAX, bank="BANK001", token=DEFAULT,
                purpose=PURPOSE, headers=None, plain=False, cert=DEFAULT,
                client_cert_header=DEFAULT, timeout=10, **kw):
        h = {}
        if token is DEFAULT:
            token = self.token(bank=bank if bank in self.certs else
                               "BANK001")
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if purpose is not None:
            h["X-Credit-Purpose"] = purpose
        if cert is DEFAULT:
            cert = self.certs.get(bank)
        if plain:
            if client_cert_header is DEFAULT:
                client_cert_header = (S.client_cert_header(cert.cert)
                                      if cert else None)
            if client_cert_header is not None:
                h["Client-Cert"] = client_cert_header
            tls_cert = None
        else:
            tls_cert = (cert.cert, cert.key) if cert else None
        h.update(headers or {})
        return requests.request(method, self.gw.url(path, plain=plain),
                                headers=h, cert=tls_cert,
                                verify=self.pki.server_ca_path,
                                timeout=timeout, allow_redirects=False, **kw)

    def get(self, path=TAX, **kw):
        return self.request("GET", path, **kw)

    def post(self, path=TAX, **kw):
        return self.request("POST", path, **kw)

    # audit ---------------------------------------------------------------
    def redis(self):
        return self.st.redis.client()

    def raw_audit_entries(self, stream="credit:audit"):
        """[(id, {bytes: bytes})] exactly as stored."""
        return self.st.redis.client(decode_responses=False).xrange(stream)

    def audit_entries(self, stream="credit:audit"):
        """Entries as dicts of str (invalid UTF-8 shown as U+FFFD; see
        test_audit_entries_are_clean for the strict check)."""
        out = []
        for i, f in self.raw_audit_entries(stream):
            d = {k.decode(errors="replace"): v.decode(errors="replace")
                 for k, v in f.items()}
            d["_id"] = i.decode()
            out.append(d)
        return out

    def audit_for(self, rid, event="decision", timeout=3.0, count=1):
        """Entries for a request id (waits for at least count of them)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.audit_entries()
                     if e.get("rid") == rid
                     and (event is None or e.get("event") == event)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def decision(self, resp, timeout=3.0):
        """The one decision entry for a response's X-Request-Id."""
        rid = resp.headers.get("X-Request-Id")
        assert rid, "response without X-Request-Id"
        found = self.audit_for(rid, "decision", timeout)
        assert len(found) == 1, \
            f"expected one decision entry for rid {rid}, got {found}"
        return found[0]


def xadd_entries(raw, dst, entries):
    """XADDs entries [(id, [(name, value)])] to dst in order, with new ids
    (raw: a client without decode_responses).  Returns dst."""
    for _, fields in entries:
        args = []
        for k, v in fields:
            args += [k, v]
        raw.execute_command("XADD", dst, "*", *args)
    return dst


# ------------------------------------------------------------------------
# Assertions

def problem(resp, status, reason, record_markers=None):
    """Asserts an RFC 9457 refusal of contract §4 and returns its JSON."""
    body = resp.text
    assert resp.status_code == status, \
        f"expected {status} {reason}, got {resp.status_code}: {body[:500]}"
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/problem+json", ctype
    doc = resp.json()
    assert doc.get("type") == f"urn:credit-auth:{reason}", doc
    assert doc.get("status") == status, doc
    assert isinstance(doc.get("title"), str) and doc["title"], doc
    assert isinstance(doc.get("detail"), str), doc
    rid = resp.headers.get("X-Request-Id")
    assert rid, "refusal without X-Request-Id"
    assert doc.get("request_id") == rid, (doc, rid)
    if status == 401:
        # RFC 6750 §3: a realm always; §3.1: no error code when no Bearer
        # credentials were sent, invalid_token otherwise
        www = resp.headers.get("WWW-Authenticate", "")
        sent = resp.request.headers.get("Authorization", "")
        assert www.startswith('Bearer realm="'), \
            f"401 WWW-Authenticate: {www!r}"
        if reason == "token_missing" and \
                not sent.lower().startswith("bearer"):
            assert "error=" not in www, f"401 WWW-Authenticate: {www!r}"
        else:
            assert 'error="invalid_token"' in www, \
                f"401 WWW-Authenticate: {www!r}"
    assert "X-Credit-Disclosure" not in resp.headers, resp.headers
    for m in (record_markers or UPSTREAM_MARKERS):
        assert m not in body, f"upstream byte {m!r} in a refusal: {body}"
    return doc


def no_upstream_bytes(text):
    for m in UPSTREAM_MARKERS:
        assert m not in text, f"upstream byte {m!r} in: {text[:300]}"


# ------------------------------------------------------------------------
# Fixtures

def _build_stack():
    mod = S.module_path()
    if not mod.exists():
        pytest.exit(f"credit-auth module not built: {mod} "
                    "(make build, or set CREDIT_AUTH_MODULE)", returncode=1)
    st = S.Stack(policy=copy.deepcopy(S.TEST_POLICY)).setup()
    for prefix, uscc in (("e1", E1), ("e2", E2)):
        for alg in S.ALGS if prefix == "e1" else ("ES256",):
            st.add_enterprise_key(uscc, alg, kid=f"{prefix}-{alg.lower()}",
                                  write=False)
    st.write_keys()
    certs = {
        "BANK001": st.add_bank("BANK001", "First Test Bank of Fujian",
                               write=False),
        "BANK002": st.add_bank("BANK002", "Second Test Bank (assessment only)",
                               purposes=["credit_assessment"], write=False),
        "BANK009": st.add_bank("BANK009", "Suspended Test Bank",
                               status="suspended", write=False),
    }
    st.write_banks()
    # a certificate of the trusted bank CA that is not in banks.json
    certs["UNREGISTERED"] = st.pki.make_bank_cert("UNREGISTERED")
    certs["UNTRUSTED"] = st.pki.make_untrusted_cert()
    st.platform_root = S.write_platform(S.subdir(st.dir, "platform"), RECORDS)
    return st, certs


@pytest.fixture(scope="session")
def env():
    global _ENV
    st, certs = _build_stack()
    try:
        st.start()
    except Exception:
        st.stop()
        raise
    e = Env(st)
    e.certs = certs
    _ENV = e
    yield e
    _ENV = None
    gw = st.gateway
    st.stop()
    problems = gw.log_problems()
    if not problems and not os.environ.get("CREDIT_AUTH_KEEP"):
        import shutil
        shutil.rmtree(st.dir, ignore_errors=True)
    if problems:
        pytest.fail("gateway error log has problems:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture
def stack(env):
    """The session's scripts/stack.Stack (files, PKI, processes)."""
    return env.st


@pytest.fixture
def make_gateway(env):
    """Factory for extra gateways on the session's files; stopped after the
    test.  make_gateway(policy=..., http_directives={...}, ...).  Their
    directories live under the stack's (world-readable: nginx workers run
    as nobody), not under pytest's 0700 tmp_path."""
    made = []

    def factory(**kw):
        g = env.st.make_gateway(**kw)
        made.append(g)
        return g
    yield factory
    for g in made:
        g.stop()


@pytest.fixture
def conf_dir(env):
    """A fresh scratch directory for (broken) configuration files."""
    return S.workdir(Path(tempfile.mkdtemp(prefix="conf-", dir=env.st.dir)))


# ------------------------------------------------------------------------
# On failure: the tail of the gateway's and upstream's error logs

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _ENV is not None:
        st = _ENV.st
        for name, proc in (("gateway", st.gateway), ("upstream", st.upstream)):
            if proc is not None:
                rep.sections.append((f"{name} error.log (tail)",
                                     S.tail(proc.error_log, 30)))
        for path, text in S.asan_reports(st.gateway.dir):
            rep.sections.append((f"ASan {path}", text))
