"""Personal data where it must never be (contract §2.1, §7; issue 19).

One list of personal-identifier forms (lib/core/pii.h; its unit tests are
tests/unit/test_pii.c) guards every path around the filter:
- the bank's X-Request-Id, echoed to it, written into every audit entry and
  $credit_auth_request_id: one that looks personal is replaced;
- the consent's jti, in the audit's `consent` and $credit_auth_consent:
  one that looks personal is written as sha256:<hex>;
- the values of platform headers credit_auth_pass_header names: one that
  looks personal is not passed (counted on the status page, logged by
  name and form without the value);
and `nginx -t` refuses to pass the platform's validators, ranges and
digests (an oracle on the unfiltered record).

The platform is scripts/stack.RawPlatform: it records what the gateway
asked, so the variables can be read as the platform receives them."""

import hashlib
import json
import re
import secrets
import tempfile
from pathlib import Path

import pytest
import requests

from conftest import E1, PURPOSE, S, TAX

RECORD = S.tax_record(E1)

# what the platform is told, from the module's variables (the operator's
# proxy_set_header lines of docs/configuration.md)
VARIABLES = {
    "X-Credit-Bank": "$credit_auth_bank",
    "X-Credit-Consent": "$credit_auth_consent",
    "X-Credit-Purpose": "$credit_auth_purpose",
    "X-Credit-Cert": "$credit_auth_cert",
    "X-Credit-Request-Id": "$credit_auth_request_id",
}


class Boundary:
    """A gateway in front of a RawPlatform, with the documented
    proxy_set_header lines and credit_auth_pass_header X-Platform-Note and
    X-Trace-Ok."""

    def __init__(self, env, prefix):
        self.env = env
        d = S.workdir(Path(tempfile.mkdtemp(prefix=prefix, dir=env.st.dir)))
        self.p = S.RawPlatform().start()
        sets = ['Connection ""'] + [f"{k} {v}" for k, v in VARIABLES.items()]
        passes = ["X-Platform-Note", "X-Trace-Ok"]
        self.gw = env.st.make_gateway(
            d / "gw", upstream_port=self.p.port,
            location_directives={"proxy_set_header": sets,
                                 "credit_auth_pass_header": passes},
            plain_location_directives={"proxy_set_header": sets})
        try:
            self.gw.start()
        except Exception:
            self.p.stop()
            raise
        self.answer()

    def answer(self, headers=()):
        self.p.script(TAX, S.http_answer(headers=list(headers), body=RECORD))
        with self.p.lock:
            self.p.requests.clear()

    def get(self, plain=False, **kw):
        saved = self.env.gw
        self.env.gw = self.gw
        try:
            return self.env.get(TAX, plain=plain, **kw)
        finally:
            self.env.gw = saved

    def asked(self):
        """The headers of the one request the platform received."""
        (req,) = self.p.requests_for(TAX)
        return req[2]

    def status(self, fmt=""):
        return requests.get(f"http://127.0.0.1:{self.gw.http_port}"
                            f"/credit-auth/status{fmt}", timeout=5)

    def stop(self):
        problems = self.gw.log_problems()
        self.gw.stop()
        self.p.stop()
        return problems


def header(headers, name):
    vals = [v for k, v in headers if k.lower() == name.lower()]
    assert len(vals) <= 1, (name, headers)
    return vals[0] if vals else None


@pytest.fixture(scope="module")
def bd(env):
    b = Boundary(env, "pii-")
    yield b
    problems = b.stop()
    assert not problems, problems


@pytest.fixture
def clean(bd):
    bd.answer()
    yield bd


def audit_mark(env):
    last = env.redis().xrevrange("credit:audit", count=1)
    return last[0][0] if last else "0-0"


def never_in_audit(env, mark, value, rid):
    """Nothing written since mark holds value; the request's decision and
    outcome are among what was written."""
    since = env.redis().xrange("credit:audit", min=f"({mark}")
    assert {f.get("event") for _, f in since if f.get("rid") == rid} >= \
        {"decision", "outcome"}, since
    for _, e in since:
        assert value not in json.dumps(e, ensure_ascii=False), e


# ------------------------------------------------------------------------
# X-Request-Id

PERSONAL_RIDS = [
    "86-13912345678",           # issue 19: a mobile with country code
    "0086-139-1234-5678",
    "8613912345678",
    "13912345678",
    "0591-87654321",            # a landline with its area code
    "110105-19491231-002X",     # a resident ID, separated
    "6222021234567890128",      # a bank card
    "E12345678",                # a passport
    "C12345678",                # a permit to Hong Kong and Macao
]


@pytest.mark.parametrize("rid", PERSONAL_RIDS)
def test_personal_request_id_is_replaced(clean, rid):
    mark = audit_mark(clean.env)
    r = clean.get(headers={"X-Request-Id": rid})
    assert r.status_code == 200, r.text
    used = r.headers["X-Request-Id"]
    assert used != rid and re.fullmatch(r"[0-9a-f]{32}", used), used
    assert header(clean.asked(), "X-Credit-Request-Id") == used
    assert len(clean.env.audit_for(used, "outcome")) == 1
    never_in_audit(clean.env, mark, rid, used)


@pytest.mark.parametrize("rid", ["91350100M000100Y43-req-7",
                                 "5f1c0a9e-7b3d-4c2e-9a8f-0d1e2f3a4b5c",
                                 "req-2026-11-27-000123"])
def test_request_id_that_is_not_personal_is_kept(clean, rid):
    # letters only: a suffix that joins no group of digits, unique per run
    rid += "-" + "".join(secrets.choice("abcdefghjk") for _ in range(8))
    r = clean.get(headers={"X-Request-Id": rid})
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-Id"] == rid
    assert header(clean.asked(), "X-Credit-Request-Id") == rid
    assert clean.env.decision(r)["rid"] == rid


# ------------------------------------------------------------------------
# jti

@pytest.mark.parametrize("jti", ["86-13912345678", "0086-139-1234-5678",
                                 "c-0591-87654321", "E12345678",
                                 "H12345678"])
def test_personal_jti_is_its_digest_in_audit_and_variable(clean, jti):
    env = clean.env
    mark = audit_mark(env)
    r = clean.get(token=env.token(jti=jti))
    assert r.status_code == 200, r.text
    want = "sha256:" + hashlib.sha256(jti.encode()).hexdigest()
    assert env.decision(r)["consent"] == want
    assert header(clean.asked(), "X-Credit-Consent") == want
    assert len(env.audit_for(r.headers["X-Request-Id"], "outcome")) == 1
    never_in_audit(env, mark, jti, r.headers["X-Request-Id"])


def test_jti_that_is_not_personal_is_kept(clean):
    jti = "91350100M000100Y43-2026.11"
    r = clean.get(token=clean.env.token(jti=jti))
    assert r.status_code == 200, r.text
    assert clean.env.decision(r)["consent"] == jti
    assert header(clean.asked(), "X-Credit-Consent") == jti


# ------------------------------------------------------------------------
# credit_auth_pass_header: the same check on what the platform sends

PERSONAL_NOTES = [
    ("owner=11010519491231002X", "resident ID number"),
    ("call 86-13912345678", "mobile number"),
    ("+86 139 1234 5678", "mobile number"),
    ("office (0591) 8765-4321", "landline number"),
    ("card 6222 0212 3456 7890 128", "bank card number"),
    ("passport E12345678", "passport number"),
    ("HKID A123456(3)", "Hong Kong identity card number"),
    ("mail zhang.san@example.com", "email address"),
]


def dropped(bd):
    return bd.status().json()["pass_headers"]["dropped_personal"]


def prom_dropped(bd):
    text = bd.status("?format=prometheus").text
    m = re.search(r"^credit_auth_pass_header_dropped_total (\d+)$", text,
                  re.M)
    assert m, text
    return int(m.group(1))


@pytest.mark.parametrize("note,form", PERSONAL_NOTES)
def test_personal_pass_header_is_dropped_counted_and_logged(clean, note,
                                                           form):
    before, prom_before = dropped(clean), prom_dropped(clean)
    mark = clean.gw.log_size()
    clean.answer([f"X-Platform-Note: {note}", "X-Trace-Ok: trace-1"])
    r = clean.get()
    assert r.status_code == 200, r.text
    assert "X-Platform-Note" not in r.headers, r.headers
    assert r.headers["X-Trace-Ok"] == "trace-1"
    assert r.headers["X-Credit-Disclosure"] == "masked"
    assert dropped(clean) == before + 1
    assert prom_dropped(clean) == prom_before + 1
    log = clean.gw.read_error_log(mark)
    line = [ln for ln in log.splitlines() if "X-Platform-Note" in ln]
    assert len(line) == 1, log
    assert "[warn]" in line[0] and f"looks personal ({form})" in line[0]
    assert r.headers["X-Request-Id"] in line[0]
    assert note not in log
    for part in re.findall(r"[0-9]{6,}", note):
        assert part not in log, (part, line)


def test_pass_header_that_is_not_personal_passes(clean):
    note = "rated 2026-11-27 for 91350100M000100Y43, amount 1234567.89"
    before = dropped(clean)
    clean.answer([f"X-Platform-Note: {note}"])
    r = clean.get()
    assert r.status_code == 200, r.text
    assert r.headers["X-Platform-Note"] == note
    assert dropped(clean) == before


@pytest.mark.parametrize("name", ["ETag", "Last-Modified", "Content-Range",
                                  "Accept-Ranges", "etag", "Content-Digest",
                                  "Repr-Digest", "Digest", "Content-MD5"])
def test_pass_header_refuses_validators_ranges_and_digests(make_gateway,
                                                           name):
    gw = make_gateway(location_directives={"credit_auth_pass_header": name})
    rc, out = gw.test()
    assert rc != 0, out
    assert (f'credit_auth_pass_header: "{name}" describes the platform\'s '
            "unfiltered record (a validator, range or digest of it): "
            "passed to the bank it would be an oracle on what the filter "
            "withholds") in out, out


@pytest.mark.parametrize("name", ["X-Request-Id", "X-Credit-Disclosure",
                                  "Content-Type", "X-Accel-Redirect",
                                  "x-accel-buffering"])
def test_pass_header_still_refuses_the_gateways_own(make_gateway, name):
    gw = make_gateway(location_directives={"credit_auth_pass_header": name})
    rc, out = gw.test()
    assert rc != 0, out
    assert (f'credit_auth_pass_header: "{name}" is one of the '
            "gateway's own headers") in out, out
