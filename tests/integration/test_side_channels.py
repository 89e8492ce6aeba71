"""Nothing leaves around the filter (contract §2.1, issue 8).

The platform here is scripts/stack.RawPlatform: it answers each path with
exactly the bytes a test gives it (206 fragments, 304, redirects,
X-Accel-Redirect, its own X-Request-Id, a connection closed before or
during the answer) and records what the gateway asked.  Requests go over
real mutual TLS through a raw socket, so that repeated request headers can
be sent and repeated response headers counted.
"""

import json
import ssl
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import E1, PURPOSE, S, TAX

RECORD = S.tax_record(E1)
# the filtered record under a masked consent (TEST_POLICY's tax category)
LEGAL_NAME = RECORD["legal_representative"]["name"]          # 张三丰
ID_NUMBER = "11010519491231002X"
CHECKS = {"checks": [{"field": "credit_rating", "op": "eq", "value": "A"}]}

# what the platform adds to its answers; none of it may reach the bank
PLATFORM_HEADERS = [
    "Set-Cookie: session=platform-secret; Path=/",
    f"Location: https://platform.example/records?id={ID_NUMBER}",
    "Last-Modified: Tue, 01 Aug 2023 10:00:00 GMT",
    'ETag: "platform-etag-42"',
    f'Content-Disposition: attachment; filename="{ID_NUMBER}.json"',
    f"X-Debug: db=prod-7 id={ID_NUMBER}",
    "X-Request-Id: platform-request-id",
    "X-Credit-Disclosure: raw",
    "Cache-Control: public, max-age=86400",
    "Expires: Thu, 01 Dec 2033 16:00:00 GMT",
    "Accept-Ranges: bytes",
    "X-Trace-Ok: trace-1",
]
LEAKS = ["platform-secret", ID_NUMBER, "platform-etag-42", "prod-7",
         "platform-request-id", "max-age", "2033", "Accept-Ranges"]

GATEWAY_OWN = {"content-type", "content-length", "transfer-encoding",
               "connection", "date", "server", "x-request-id",
               "x-credit-disclosure", "cache-control", "www-authenticate"}


class Resp:
    def __init__(self, raw):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        parts = self.status_line.split(" ")
        self.status = int(parts[1]) if len(parts) > 1 and \
            parts[1].isdigit() else None
        self.headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            self.headers.append((k.strip().lower(), v.strip()))

    def all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def one(self, name):
        vals = self.all(name)
        assert len(vals) == 1, (name, self.headers)
        return vals[0]

    def names(self):
        return {k for k, _ in self.headers}

    def json(self):
        return json.loads(self.body)


class SideGW:
    def __init__(self, env, gw, platform):
        self.env, self.gw, self.p = env, gw, platform
        c = env.certs["BANK001"]
        self.tls = ssl.create_default_context(cafile=env.pki.server_ca_path)
        self.tls.load_cert_chain(c.cert, c.key)

    def send(self, raw, timeout=15):
        """Raw request bytes over mutual TLS -> every byte answered."""
        return Resp(S.tls_exchange(self.gw.tls_port, self.tls, raw, timeout))

    def request(self, method="GET", path=TAX, headers=(), token=None,
                purpose=PURPOSE, body=b"", timeout=15):
        """headers: [(name, value)], repeated names allowed."""
        if token is None:
            token = self.env.token()
        h = [("Host", "127.0.0.1")]
        if token:
            h.append(("Authorization", f"Bearer {token}"))
        if purpose:
            h.append(("X-Credit-Purpose", purpose))
        h += list(headers)
        if body:
            h += [("Content-Type", "application/json"),
                  ("Content-Length", str(len(body)))]
        h.append(("Connection", "close"))
        raw = f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(
            f"{k}: {v}\r\n".encode() for k, v in h) + b"\r\n" + body
        return self.send(raw, timeout)

    def verify(self, **kw):
        return self.request("POST", body=json.dumps(CHECKS).encode(), **kw)

    def status(self):
        return requests.get(
            f"http://127.0.0.1:{self.gw.http_port}/credit-auth/status",
            timeout=5).json()


@pytest.fixture(scope="module")
def side(env):
    d = S.workdir(Path(tempfile.mkdtemp(prefix="side-", dir=env.st.dir)))
    platform = S.RawPlatform().start()
    gw = env.st.make_gateway(
        d / "gw", upstream_port=platform.port,
        location_directives={"proxy_read_timeout": "2s",
                             "credit_auth_pass_header": "X-Trace-Ok"},
        # where an X-Accel-Redirect would lead: no credit_auth here
        server_extra="        location /leak/ { proxy_pass http://platform; }")
    try:
        gw.start()
    except Exception:
        platform.stop()
        raise
    yield SideGW(env, gw, platform)
    gw.stop()
    platform.stop()


@pytest.fixture
def sg(side):
    """Per test: the platform answers the tax record, and forgets what it
    was asked."""
    side.p.script(TAX, S.http_answer(body=RECORD))
    with side.p.lock:
        side.p.requests.clear()
    side.mark = side.gw.log_size()
    yield side
    bad = side.gw.log_problems(side.gw.read_error_log(side.mark))
    assert not bad, bad


def refused(env, r, status, reason, cause=None, outcome=True):
    """A problem+json refusal with only the gateway's headers and nothing
    of the record; with outcome, the outcome entry says reason and cause."""
    assert r.status == status, r.raw[:800]
    assert r.one("content-type") == "application/problem+json"
    doc = r.json()
    assert doc["type"] == f"urn:credit-auth:{reason}", doc
    assert doc["status"] == status
    rid = r.one("x-request-id")
    assert doc["request_id"] == rid
    assert r.one("cache-control") == "no-store"
    assert not r.all("x-credit-disclosure"), r.headers
    assert int(r.one("content-length")) == len(r.body)
    assert r.names() <= GATEWAY_OWN, r.headers
    for m in LEAKS + [LEGAL_NAME, "FR-2023-SECRET", "UPSTREAM-INTERNAL"]:
        assert m.encode() not in r.raw, (m, r.raw[:800])
    if outcome:
        e = env.audit_for(rid, "outcome")
        assert len(e) == 1, e
        assert e[0]["status"] == str(status), e
        assert e[0]["reason"] == reason, e
        assert e[0].get("cause", "") == (cause or ""), e
        assert not e[0]["disclosed"], e
        return e[0]
    return doc


def platform_asked(sg, path=TAX):
    return sg.p.requests_for(path)


# ------------------------------------------------------------------------
# 1. Requests to the platform

STRIPPED = [("Range", "bytes=248-376"), ("If-Range", '"platform-etag-42"'),
            ("If-Match", '"platform-etag-42"'),
            ("If-None-Match", '"platform-etag-42"'),
            ("If-Modified-Since", "Tue, 01 Aug 2023 10:00:00 GMT"),
            ("If-Unmodified-Since", "Tue, 01 Aug 2033 10:00:00 GMT")]


def test_side_channel_range_and_conditionals_never_reach_the_platform(sg):
    r = sg.request(headers=STRIPPED)
    assert r.status == 200, r.raw[:800]
    doc = r.json()
    assert doc["legal_representative"]["name"] != LEGAL_NAME
    assert not r.all("content-range") and not r.all("accept-ranges")
    (req,) = platform_asked(sg)
    assert req[0] == "GET"
    sent = {k.lower() for k, _ in req[2]}
    for name, _ in STRIPPED:
        assert name.lower() not in sent, (name, req[2])


def test_side_channel_whole_range_tells_nothing(sg):
    """Range: bytes=0- answered by a platform that honours ranges (a 206 of
    the whole record, Content-Range: bytes 0-470/471): no 206, and no
    Content-Range telling the bank how much the filter withheld."""
    body = json.dumps(RECORD, ensure_ascii=False).encode()
    sg.p.script(TAX, S.http_answer(
        "206 Partial Content",
        [f"Content-Range: bytes 0-{len(body) - 1}/{len(body)}"], body))
    r = sg.request(headers=[("Range", "bytes=0-")])
    refused(sg.env, r, 502, "upstream_invalid", "partial")
    assert not r.all("content-range"), r.headers


def test_side_channel_verification_asks_with_get_without_range(sg):
    r = sg.verify(headers=STRIPPED[:3])
    assert r.status == 200, r.raw[:800]
    assert r.json()["results"][0]["match"] is True
    (req,) = platform_asked(sg)
    assert req[0] == "GET" and req[3] == b""
    assert not {k.lower() for k, _ in req[2]} & {"range", "if-range",
                                                 "if-match"}


@pytest.mark.parametrize("name", ["X-Credit-Purpose", "X-Credit-Detail",
                                  "X-Request-Id"])
def test_side_channel_repeated_header_is_request_invalid(sg, name):
    value = {"X-Credit-Purpose": PURPOSE, "X-Credit-Detail": "masked",
             "X-Request-Id": "bank-rid-1"}[name]
    other = {"X-Credit-Purpose": "credit_assessment",
             "X-Credit-Detail": "raw", "X-Request-Id": "bank-rid-2"}[name]
    purpose = None if name == "X-Credit-Purpose" else PURPOSE
    r = sg.request(purpose=purpose, headers=[(name, value), (name, other)])
    refused(sg.env, r, 400, "request_invalid", outcome=False)
    rid = r.one("x-request-id")
    assert rid not in ("bank-rid-1", "bank-rid-2")
    d = sg.env.audit_for(rid)
    assert len(d) == 1 and d[0]["reason"] == "request_invalid", d
    assert d[0]["decision"] == "deny"
    assert not platform_asked(sg)


# ------------------------------------------------------------------------
# 2. Answers from the platform

def test_side_channel_206_fragment_is_502_partial(sg):
    frag = '{"name":"%s"}' % LEGAL_NAME
    sg.p.script(TAX, S.http_answer(
        "206 Partial Content", ["Content-Range: bytes 248-376/471"],
        frag))
    r = sg.request(headers=[("Range", "bytes=248-376")])
    refused(sg.env, r, 502, "upstream_invalid", "partial")
    assert not r.all("content-range")


def test_side_channel_304_is_502_not_modified(sg):
    sg.p.script(TAX, b"HTTP/1.1 304 Not Modified\r\n"
                     b'ETag: "platform-etag-42"\r\n\r\n')
    r = sg.request(headers=[("If-None-Match", '"platform-etag-42"')])
    refused(sg.env, r, 502, "upstream_invalid", "not_modified")


@pytest.mark.parametrize("status", ["301 Moved Permanently", "302 Found",
                                    "307 Temporary Redirect"])
def test_side_channel_redirect_is_502_without_location(sg, status):
    sg.p.script(TAX, S.http_answer(status, PLATFORM_HEADERS, RECORD))
    r = sg.request()
    refused(sg.env, r, 502, "upstream_invalid", "redirect")
    assert not r.all("location")


@pytest.mark.parametrize("status", ["201 Created", "203 Non-Authoritative "
                                    "Information", "500 Internal Server Error",
                                    "403 Forbidden"])
def test_side_channel_other_status_is_502(sg, status):
    sg.p.script(TAX, S.http_answer(status, PLATFORM_HEADERS, RECORD))
    r = sg.request()
    refused(sg.env, r, 502, "upstream_invalid", "status")


def test_side_channel_404_is_record_not_found(sg):
    sg.p.script(TAX, S.http_answer("404 Not Found", PLATFORM_HEADERS,
                                   {"error": "no record " + ID_NUMBER}))
    r = sg.request()
    refused(sg.env, r, 404, "record_not_found")


@pytest.mark.parametrize("target", ["/leak/record", f"/api/v1/enterprises/"
                                    f"{E1}/environment"])
def test_side_channel_x_accel_redirect_is_not_followed(sg, target):
    """To a location without credit_auth the whole record would leave
    unfiltered; into another /api/ route it would decide (and spend the
    consent) twice.  Neither: 502, one decision, the platform asked once."""
    sg.p.script("/leak/record", S.http_answer(body=RECORD))
    sg.p.script(f"/api/v1/enterprises/{E1}/environment",
                S.http_answer(body=RECORD))
    sg.p.script(TAX, S.http_answer(headers=[f"X-Accel-Redirect: {target}"],
                                   body={"uscc": E1}))
    tok = sg.env.token(categories=["tax", "environment"], max_uses=5)
    r = sg.request(token=tok)
    refused(sg.env, r, 502, "upstream_invalid", "internal_redirect")
    rid = r.one("x-request-id")
    assert len(sg.env.audit_for(rid, "decision", timeout=0.5)) == 1
    assert len(sg.p.requests) == 1, sg.p.requests


def test_side_channel_x_accel_controls_are_ignored(sg):
    """X-Accel-Limit-Rate, -Buffering, -Charset, -Expires: ignored on
    credit_auth locations (none acts: the answer is not slowed to 1 byte/s)
    and none reaches the bank.  (The proxy's default hide list already
    keeps them from the bank; this guards the ignore_headers the module
    forces whatever proxy_ignore_headers says.)"""
    sg.p.script(TAX, S.http_answer(headers=[
        "X-Accel-Limit-Rate: 1", "X-Accel-Buffering: no",
        "X-Accel-Charset: koi8-r", "X-Accel-Expires: 86400"], body=RECORD))
    t0 = time.monotonic()
    r = sg.request(timeout=20)
    assert time.monotonic() - t0 < 5, "X-Accel-Limit-Rate acted"
    assert r.status == 200, r.raw[:800]
    assert not any(k.startswith("x-accel") for k in r.names()), r.headers
    assert "koi8" not in r.one("content-type")
    r.json()


def test_side_channel_closed_before_answering_is_502_no_answer(sg):
    sg.p.script(TAX, b"", close=True)
    r = sg.request()
    refused(sg.env, r, 502, "upstream_invalid", "no_answer")


def test_side_channel_garbage_answer_is_502_no_answer(sg):
    sg.p.script(TAX, b"SSH-2.0-OpenSSH_9.2\r\n\r\n", close=True)
    r = sg.request()
    refused(sg.env, r, 502, "upstream_invalid", "no_answer")


@pytest.mark.parametrize("chunked", [False, True])
def test_side_channel_closed_during_the_answer_is_502_cut_short(sg, chunked):
    body = json.dumps(RECORD, ensure_ascii=False).encode()
    if chunked:
        raw = S.http_answer(headers=["Transfer-Encoding: chunked"],
                            length=False) \
            + b"%x\r\n" % len(body) + body[:len(body) // 2]
    else:
        raw = S.http_answer(body=body)[:-len(body) // 2]
    sg.p.script(TAX, raw, close=True)
    r = sg.request()
    refused(sg.env, r, 502, "upstream_invalid", "cut_short")


def test_side_channel_timeout_is_502_no_answer(sg):
    sg.p.script(TAX, S.http_answer(body=RECORD), delay=3)
    r = sg.request()
    refused(sg.env, r, 502, "upstream_invalid", "no_answer")


@pytest.mark.parametrize("case,cause", [
    ("html", "not_json"), ("gzip", "compressed"), ("broken", "unparsable")])
def test_side_channel_unfilterable_200_names_its_cause(sg, case, cause):
    raw = {"html": S.http_answer(ctype="text/html", body="<p>x</p>"),
           "gzip": S.http_answer(headers=["Content-Encoding: gzip"],
                                 body=b"\x1f\x8b\x08\x00"),
           "broken": S.http_answer(body=b'{"uscc":')}[case]
    sg.p.script(TAX, raw)
    r = sg.request()
    refused(sg.env, r, 502, "upstream_invalid", cause)


def test_side_channel_verification_follows_the_same_rules(sg):
    sg.p.script(TAX, S.http_answer("206 Partial Content",
                                   ["Content-Range: bytes 0-9/471"],
                                   '{"credit_rating":"A"}'))
    r = sg.verify()
    refused(sg.env, r, 502, "upstream_invalid", "partial")
    (req,) = platform_asked(sg)
    assert req[0] == "GET"


@pytest.fixture(scope="module")
def operator_gw(side):
    """The same platform behind a gateway whose operator configured
    proxy_ignore_headers, proxy_intercept_errors and an error_page: the
    module's rules hold whatever the rest of the configuration says."""
    d = S.workdir(Path(tempfile.mkdtemp(prefix="side-op-",
                                        dir=side.env.st.dir)))
    gw = side.env.st.make_gateway(
        d / "gw", upstream_port=side.p.port,
        location_directives={"proxy_read_timeout": "2s",
                             "proxy_ignore_headers": "Expires",
                             "proxy_intercept_errors": "on"},
        server_extra=f"""
        error_page 502 504 /oops.json;
        error_page 500 /api/v1/enterprises/{E1}/environment;
        location = /oops.json {{ return 200 '{{"oops":"operator page"}}'; }}
        location /leak/ {{ proxy_pass http://platform; }}""")
    gw.start()
    yield SideGW(side.env, gw, side.p)
    gw.stop()


@pytest.mark.parametrize("answer", ["accel", "closed", "intercepted"])
def test_side_channel_operator_configuration_cannot_reopen(sg, operator_gw,
                                                           answer):
    """X-Accel-Redirect despite proxy_ignore_headers naming something else;
    nginx's 502 sent to an error_page, an intercepted 500 sent to another
    credit_auth route (internal redirects that drop the module's state):
    always the module's 502 with the outcome entry, one decision, never the
    operator's page nor another record."""
    sg.p.script("/leak/record", S.http_answer(body=RECORD))
    sg.p.script(TAX, {
        "accel": S.http_answer(headers=["X-Accel-Redirect: /leak/record"],
                               body={"uscc": E1}),
        "closed": b"",
        "intercepted": S.http_answer("500 Internal Server Error",
                                     body={"error": ID_NUMBER}),
    }[answer], close=(answer == "closed"))
    sg.p.script(f"/api/v1/enterprises/{E1}/environment",
                S.http_answer(body=RECORD))
    r = operator_gw.request(token=sg.env.token(
        categories=["tax", "environment"]))
    refused(sg.env, r, 502, "upstream_invalid", "internal_redirect")
    assert b"operator page" not in r.raw
    assert len(sg.env.audit_for(r.one("x-request-id"), "decision",
                                timeout=0.5)) == 1
    assert not sg.p.requests_for("/leak/record")
    assert not sg.p.requests_for(f"/api/v1/enterprises/{E1}/environment")


def test_side_channel_answer_to_another_method_is_refused(sg, make_gateway):
    """proxy_method (the module cannot override it) makes the platform see
    another method than GET: its answer is refused, not disclosed."""
    gw = make_gateway(upstream_port=sg.p.port,
                      location_directives={"proxy_method": "POST"})
    gw.start()
    r = SideGW(sg.env, gw, sg.p).request()
    refused(sg.env, r, 502, "upstream_invalid", "method")
    assert [q[0] for q in platform_asked(sg)] == ["POST"]


# ------------------------------------------------------------------------
# 3. Response headers: the gateway's own

def test_side_channel_platform_headers_do_not_pass(sg):
    sg.p.script(TAX, S.http_answer(headers=PLATFORM_HEADERS, body=RECORD))
    r = sg.request()
    assert r.status == 200, r.raw[:800]
    assert r.one("x-credit-disclosure") == "masked"
    assert r.one("x-request-id") != "platform-request-id"
    assert r.one("cache-control") == "no-store"
    assert r.one("content-type") == "application/json"
    # credit_auth_pass_header X-Trace-Ok
    assert r.one("x-trace-ok") == "trace-1"
    assert r.names() <= GATEWAY_OWN | {"x-trace-ok"}, r.headers
    for m in LEAKS:
        assert m.encode() not in r.raw, (m, r.raw[:800])
    assert r.json()["legal_representative"]["name"] != LEGAL_NAME


def test_side_channel_refusals_carry_only_gateway_headers(sg):
    r = sg.request(token="not-a-token")
    refused(sg.env, r, 401, "token_malformed", outcome=False)
    assert r.one("www-authenticate").startswith("Bearer")


def test_side_channel_pass_header_may_not_name_a_gateway_header(
        env, make_gateway):
    for name in ("X-Request-Id", "x-credit-disclosure", "Cache-Control",
                 "Content-Type", "X-Accel-Redirect"):
        gw = make_gateway(location_directives={
            "credit_auth_pass_header": name})
        rc, out = gw.test()
        assert rc != 0, out
        assert (f'credit_auth_pass_header: "{name}" is one of the '
                "gateway's own headers") in out, out
    gw = make_gateway(location_directives={
        "credit_auth_pass_header": ["X-Trace", "X-Other"]})
    rc, out = gw.test()
    assert rc == 0, out


# ------------------------------------------------------------------------
# 4. What nginx itself refuses

def core_refused(sg, r, asked=False):
    refused(sg.env, r, 400, "request_invalid", outcome=False)
    assert "<html>" not in r.body.decode("latin-1")
    d = sg.env.audit_for(r.one("x-request-id"))
    assert len(d) == 1, d
    assert d[0]["decision"] == "deny" and d[0]["reason"] == \
        "request_invalid", d
    assert d[0]["consent"] == "" and d[0]["path"] == "", d
    if not asked:
        assert not platform_asked(sg)
    return d[0]


def test_side_channel_repeated_authorization(sg):
    tok = sg.env.token()
    r = sg.request(headers=[("Authorization", f"Bearer {tok}")])
    core_refused(sg, r)


def test_side_channel_nul_in_path(sg):
    r = sg.request(path=f"/api/v1/enterprises/{E1}%00/tax")
    core_refused(sg, r)


def test_side_channel_malformed_request_line(sg):
    r = sg.send(b"GET /api/v1/ HTTP/1.1 junk\r\nHost: x\r\n\r\n")
    core_refused(sg, r)


def test_side_channel_oversized_header(sg):
    r = sg.request(headers=[("X-Pad", "p" * 40000)])
    core_refused(sg, r)


def test_side_channel_counters(sg):
    before = sg.status()["reasons"]
    sg.p.script(TAX, S.http_answer("404 Not Found", body=b""))
    refused(sg.env, sg.request(), 404, "record_not_found")
    sg.p.script(TAX, S.http_answer("206 Partial Content", body=b"{}"))
    refused(sg.env, sg.request(), 502, "upstream_invalid", "partial")
    core_refused(sg, sg.send(b"GET / HTTP/1.1 junk\r\n\r\n"), asked=True)
    after = sg.status()["reasons"]
    assert after["record_not_found"] == before["record_not_found"] + 1
    assert after["upstream_invalid"] == before["upstream_invalid"] + 1
    assert after["request_invalid"] == before["request_invalid"] + 1


def _token_of(env, size):
    """A valid token of size bytes, or one or two less (a padding claim;
    base64url grows by one or two characters at a time)."""
    base = len(env.token(pad=""))
    pad = (size - base) * 3 // 4
    while len(env.token(pad="p" * pad)) > size:
        pad -= 1
    tok = env.token(pad="p" * pad)
    assert size - 2 <= len(tok) <= size, len(tok)
    return tok


@pytest.mark.parametrize("size", [9 * 1024, 16 * 1024])
def test_side_channel_token_up_to_16k_is_accepted(sg, size):
    tok = _token_of(sg.env, size)
    r = sg.request(token=tok)
    assert r.status == 200, r.raw[:800]
    assert r.one("x-credit-disclosure") == "masked"


def test_side_channel_report_mode_keeps_one_request_id(sg, make_gateway):
    """credit_auth report discloses the platform's answer unfiltered, but
    the bank still sees one X-Request-Id (the gateway's) and no
    X-Credit-Disclosure claimed by the platform."""
    gw = make_gateway(upstream_port=sg.p.port, mode="report")
    gw.start()
    sg.p.script(TAX, S.http_answer(headers=PLATFORM_HEADERS, body=RECORD))
    r = SideGW(sg.env, gw, sg.p).request()
    assert r.status == 200, r.raw[:800]
    assert r.one("x-request-id") != "platform-request-id"
    assert not r.all("x-credit-disclosure"), r.headers
