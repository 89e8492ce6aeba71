"""A hostile or broken platform (contract §4, ENGINEERING §5): every answer the
gateway cannot filter becomes a 502 problem+json with not one upstream
byte, the worker survives, and the next good request works.

The upstream is a small raw-socket HTTP/1.1 server run by this module
(exact bytes, Content-Length or chunked, trickles, premature closes); the
gateway talks to it directly.  Requests go over real mutual TLS with a
raw ssl socket, so that every byte the bank receives is checked.
"""

import gzip
import json
import os
import re
import socket
import ssl
import tempfile
import time
from pathlib import Path

import pytest

from conftest import E1, PURPOSE, S

MAX_BODY = 65536
MARK = "HOSTILE-UPSTREAM-MARKER"

GOOD = {"ok": "fine", "name": "Good Co", "secret": MARK + "-GOOD-SECRET"}


def _json_of_size(n, marker):
    """A JSON object of exactly n bytes holding marker."""
    head = '{"ok":"' + marker + '","pad":"'
    tail = '"}'
    pad = n - len(head) - len(tail)
    assert pad >= 0
    s = head + "x" * pad + tail
    assert len(s.encode()) == n
    return s.encode()


def _deep_array(n):
    return ('{"ok":"' + MARK + '-DEEPARR","x":' + "[" * n + "]" * n
            + "}").encode()


def _deep_top_array(n):
    return ("[" * n + '"' + MARK + '-TOPDEEP"' + "]" * n).encode()


def _deep_object(n):
    return ('{"a":' * n + '"' + MARK + '-DEEPOBJ"' + "}" * n).encode()


def _nested_kept(n):
    """`meta` is kept whole: n levels below the root."""
    return ('{"ok":"' + MARK + '-KEPTDEEP","meta":' + '{"m":' * (n - 1)
            + '"v"' + "}" * (n - 1) + "}").encode()


def _nested_unlisted(n):
    return ('{"ok":"fine","hidden":' + '{"h":' * (n - 1) + '"'
            + MARK + '-UNLISTEDDEEP"' + "}" * (n - 1) + "}").encode()


# case name -> dict(status, ctype, body, mode, headers)
#   mode: "cl" (Content-Length), "chunked", "trickle", "premature",
#         "stall", "chunked-premature"
CASES = {
    "good": dict(body=json.dumps(GOOD).encode()),
    "deeparr": dict(body=_deep_array(10000)),
    "topdeep": dict(body=_deep_top_array(10000)),
    "deepobj": dict(body=_deep_object(10000)),
    "keptdeep": dict(body=_nested_kept(70)),
    "keptok": dict(body=_nested_kept(40)),
    "unlisteddeep": dict(body=_nested_unlisted(100)),
    "dup": dict(body=('{"ok":"' + MARK + '-DUP1","ok":"' + MARK
                      + '-DUP2"}').encode()),
    "dupdeep": dict(body=('{"ok":"fine","hidden":{"k":"' + MARK
                          + '-DUPA","k":"' + MARK + '-DUPB"}}').encode()),
    "exact": dict(body=_json_of_size(MAX_BODY, MARK + "-EXACT")),
    "over": dict(body=_json_of_size(MAX_BODY + 1, MARK + "-OVER")),
    "exactchunked": dict(body=_json_of_size(MAX_BODY, MARK + "-EXACTCH"),
                         mode="chunked"),
    "overchunked": dict(body=_json_of_size(MAX_BODY + 1, MARK + "-OVERCH"),
                        mode="chunked"),
    "gzip": dict(body=gzip.compress(json.dumps(
        {"ok": MARK + "-GZIP"}).encode()),
        headers=["Content-Encoding: gzip"]),
    "gzipplain": dict(body=json.dumps({"ok": MARK + "-GZIPPLAIN"}).encode(),
                      headers=["Content-Encoding: gzip"]),
    "html": dict(ctype="text/html",
                 body=json.dumps({"ok": MARK + "-HTML"}).encode()),
    "noctype": dict(ctype=None,
                    body=json.dumps({"ok": MARK + "-NOCTYPE"}).encode()),
    "trunc": dict(body=('{"ok":"' + MARK + '-TRUNC","a":[1,2').encode()),
    "toparray": dict(body=json.dumps([{"ok": MARK + "-ARRAY"}]).encode()),
    "topstring": dict(body=json.dumps(MARK + "-STRING").encode()),
    "empty": dict(body=b""),
    "notjson": dict(body=("<html>" + MARK + "-NOTJSON</html>").encode()),
    "bigint": dict(body=('{"ok":"fine","hidden":'
                         '123456789012345678901234567890}').encode()),
    "slow": dict(body=json.dumps({"ok": "slow", "secret": MARK + "-SLOW",
                                  "pad": "y" * 40}).encode(),
                 mode="trickle"),
    "premature": dict(body=json.dumps({"ok": MARK + "-PREMATURE",
                                       "pad": "z" * 200}).encode(),
                      mode="premature"),
    "chunkedpremature": dict(body=json.dumps(
        {"ok": MARK + "-CHPREMATURE", "pad": "z" * 200}).encode(),
        mode="chunked-premature"),
    "stall": dict(body=json.dumps({"ok": MARK + "-STALL",
                                   "pad": "z" * 200}).encode(),
                  mode="stall"),
    "e404": dict(status="404 Not Found",
                 body=json.dumps({"error": MARK + "-404"}).encode()),
    "e500": dict(status="500 Internal Server Error",
                 body=json.dumps({"error": MARK + "-500"}).encode()),
    "e403html": dict(status="403 Forbidden", ctype="text/html",
                     body=("<h1>" + MARK + "-403</h1>").encode()),
}


class HostileUpstream(S.ThreadedServer):
    """Raw HTTP/1.1 server: one thread per connection, keep-alive."""

    def __init__(self):
        super().__init__()
        self.requests = []          # (method, path)
        self.open = 0
        self.start()

    def _serve(self, conn):
        with self.lock:
            self.open += 1
        buf = b""
        try:
            conn.settimeout(30)
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n", 1)[0].decode()
                method, target, _ = line.split(" ", 2)
                with self.lock:
                    self.requests.append((method, target))
                case = target.rstrip("/").rsplit("/", 1)[-1]
                if not self._respond(conn, CASES.get(case)):
                    return
        except OSError:
            return
        finally:
            with self.lock:
                self.open -= 1
            try:
                conn.close()
            except OSError:
                pass

    def _respond(self, conn, c):
        if c is None:
            c = dict(status="404 Not Found", body=b"")
        status = c.get("status", "200 OK")
        ctype = c.get("ctype", "application/json")
        body = c["body"]
        mode = c.get("mode", "cl")
        h = [f"HTTP/1.1 {status}", "Server: hostile"]
        if ctype:
            h.append(f"Content-Type: {ctype}")
        h += c.get("headers", [])
        h.append('ETag: "hostile-etag"')
        if mode in ("chunked", "chunked-premature"):
            h.append("Transfer-Encoding: chunked")
        else:
            h.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(h) + "\r\n\r\n").encode()

        if mode == "cl":
            conn.sendall(head + body)
            return True
        if mode == "chunked":
            conn.sendall(head)
            for i in range(0, len(body), 7001):
                part = body[i:i + 7001]
                conn.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
            return True
        if mode == "trickle":
            conn.sendall(head)
            step = max(1, len(body) // 10)
            for i in range(0, len(body), step):
                time.sleep(0.2)
                conn.sendall(body[i:i + step])
            return True
        if mode == "premature":
            conn.sendall(head + body[:len(body) // 2])
            time.sleep(0.1)
            conn.shutdown(socket.SHUT_RDWR)
            return False
        if mode == "chunked-premature":
            half = body[:len(body) // 2]
            conn.sendall(head + b"%x\r\n" % len(body) + half)
            time.sleep(0.1)
            conn.shutdown(socket.SHUT_RDWR)
            return False
        if mode == "stall":
            conn.sendall(head + body[:len(body) // 2])
            time.sleep(3)
            return False
        raise AssertionError(mode)


FIELDS = {"ok": "keep", "name": "keep", "meta": "keep"}

POLICY = {
    "version": "test-hostile-1",
    "purposes": ["loan_application", "credit_assessment",
                 "post_loan_monitoring"],
    "token": {"algs": ["ES256"], "max_lifetime": 7776000, "leeway": 60},
    "categories": {
        name: {"routes": [f"/api/v1/enterprises/{{uscc}}/{name}"],
               "purposes": ["loan_application"], "fields": FIELDS}
        for name in CASES
    },
}


class Resp:
    def __init__(self, raw):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0] if lines else ""
        m = re.match(r"HTTP/1\.\d (\d{3})", self.status_line)
        self.status = int(m.group(1)) if m else None
        self.headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def json(self):
        return json.loads(self.body)


class HGW:
    def __init__(self, env, gw, up):
        self.env, self.gw, self.up = env, gw, up
        self.toks = {}      # a token holds at most 16 categories
        c = env.certs["BANK001"]
        self.ctx = ssl.create_default_context(
            cafile=env.pki.server_ca_path)
        self.ctx.load_cert_chain(c.cert, c.key)

    def raw_get(self, case, timeout=15):
        """GET over mutual TLS, Connection: close; every byte received."""
        path = f"/api/v1/enterprises/{E1}/{case}"
        if case not in self.toks:
            self.toks[case] = self.env.token(categories=[case])
        req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Bearer {self.toks[case]}\r\n"
               f"X-Credit-Purpose: {PURPOSE}\r\n"
               "Connection: close\r\n\r\n").encode()
        return Resp(S.tls_exchange(self.gw.tls_port, self.ctx, req,
                                   timeout))


@pytest.fixture(scope="module")
def hgw(env):
    d = S.workdir(Path(tempfile.mkdtemp(prefix="hostile-", dir=env.st.dir)))
    pol = S.write_json(d / "policy-hostile.json", POLICY)
    up = HostileUpstream()
    gw = env.st.make_gateway(
        d / "gw", policy=pol, upstream_port=up.port, max_body="64k",
        location_directives={"proxy_read_timeout": "1s"})
    try:
        gw.start()
    except Exception:
        up.stop()
        raise
    h = HGW(env, gw, up)
    h.workers = set(gw.workers())
    yield h
    gw.stop()
    up.stop()


def _no_marker(resp):
    assert MARK.encode() not in resp.raw, \
        f"upstream byte in the answer: {resp.raw[:600]!r}"
    assert b"hostile-etag" not in resp.raw, resp.raw[:600]
    assert b"x" * 64 not in resp.raw, "padding of the upstream body leaked"


def _problem(resp, status, reason):
    assert resp.status == status, (resp.status_line, resp.raw[:600])
    assert resp.headers.get("content-type", "").startswith(
        "application/problem+json"), resp.headers
    doc = resp.json()
    assert doc["type"] == f"urn:credit-auth:{reason}", doc
    assert doc["status"] == status
    assert doc["request_id"] == resp.headers.get("x-request-id"), doc
    assert int(resp.headers["content-length"]) == len(resp.body)
    assert "x-credit-disclosure" not in resp.headers
    assert "content-encoding" not in resp.headers
    assert "etag" not in resp.headers
    return doc


def _healthy(hgw, mark):
    """The worker that served the hostile answer is the same one, it still
    answers a good request, and its error log has nothing alarming."""
    r = hgw.raw_get("good")
    assert r.status == 200, r.raw[:600]
    assert r.json() == {"ok": "fine", "name": "Good Co"}
    _no_marker(r)
    assert set(hgw.gw.workers()) == hgw.workers, "worker restarted"
    log = hgw.gw.read_error_log(mark)
    bad = [ln for ln in log.splitlines()
           if "[alert]" in ln or "[emerg]" in ln or "exited on signal" in ln
           or "[crit]" in ln]
    assert not bad, bad


@pytest.mark.parametrize("case,reason", [
    ("deeparr", "upstream_invalid"),
    ("topdeep", "upstream_invalid"),
    ("deepobj", "upstream_invalid"),
    ("keptdeep", "upstream_invalid"),
    ("dup", "upstream_invalid"),
    ("dupdeep", "upstream_invalid"),
    ("over", "upstream_too_large"),
    ("overchunked", "upstream_too_large"),
    ("gzip", "upstream_invalid"),
    ("gzipplain", "upstream_invalid"),
    ("html", "upstream_invalid"),
    ("noctype", "upstream_invalid"),
    ("trunc", "upstream_invalid"),
    ("toparray", "upstream_invalid"),
    ("topstring", "upstream_invalid"),
    ("empty", "upstream_invalid"),
    ("notjson", "upstream_invalid"),
])
def test_unfilterable_answer_is_a_clean_502(hgw, case, reason):
    mark = hgw.gw.log_size()
    r = hgw.raw_get(case)
    _no_marker(r)
    _problem(r, 502, reason)
    e = hgw.env.audit_for(r.headers["x-request-id"], "outcome")
    assert e and e[0]["status"] == "502", e
    assert not e[0].get("disclosed"), e
    _healthy(hgw, mark)


@pytest.mark.parametrize("case", ["exact", "exactchunked"])
def test_body_of_exactly_max_body_is_accepted(hgw, case):
    mark = hgw.gw.log_size()
    r = hgw.raw_get(case)
    assert r.status == 200, r.raw[:600]
    assert r.json() == {"ok": CASES[case]["body"][7:].split(b'"')[0]
                        .decode()}
    assert r.headers.get("x-credit-disclosure") == "masked"
    assert "etag" not in r.headers
    _healthy(hgw, mark)


def test_nesting_within_limits(hgw):
    """40 levels in a kept subtree are disclosed; 100 levels in an unlisted
    member do not matter (docs/policy.md §6: only a disclosed part)."""
    mark = hgw.gw.log_size()
    r = hgw.raw_get("keptok")
    assert r.status == 200, r.raw[:600]
    d, depth = r.json()["meta"], 1
    while isinstance(d, dict):
        d, depth = d["m"], depth + 1
    assert d == "v" and depth == 40
    r = hgw.raw_get("unlisteddeep")
    assert r.status == 200, r.raw[:600]
    assert r.json() == {"ok": "fine"}
    _no_marker(r)
    _healthy(hgw, mark)


def test_big_integer_in_an_unlisted_member(hgw):
    """A 30-digit integer in a member the policy withholds: the filter
    reads the body as text (docs/configuration.md), so the number is only
    validated and skipped -> 200, the listed member sent, the big one not."""
    mark = hgw.gw.log_size()
    r = hgw.raw_get("bigint")
    assert r.status == 200, r.raw[:600]
    assert r.json() == {"ok": "fine"}
    assert b"123456789012345678901234567890" not in r.raw
    _healthy(hgw, mark)


def test_slow_trickle(hgw):
    """Body a few bytes every 200 ms (~2 s, each read well inside
    proxy_read_timeout 1s): filtered and answered correctly."""
    mark = hgw.gw.log_size()
    t0 = time.monotonic()
    r = hgw.raw_get("slow")
    took = time.monotonic() - t0
    assert r.status == 200, r.raw[:600]
    assert r.json() == {"ok": "slow"}
    _no_marker(r)
    assert took >= 1.5, took
    _healthy(hgw, mark)


@pytest.mark.parametrize("case", ["premature", "chunkedpremature", "stall"])
def test_upstream_dies_mid_body(hgw, case):
    """Half the body, then the platform closes (or stalls past
    proxy_read_timeout).  Nothing of it may reach the bank; the answer
    must be a refusal (contract §4: every refusal is problem+json), not a
    silently closed connection."""
    mark = hgw.gw.log_size()
    r = hgw.raw_get(case)
    _no_marker(r)
    _healthy(hgw, mark)
    assert r.raw, "connection closed without any answer (expected a 502 " \
                  "problem+json)"
    assert r.status in (502, 504), r.raw[:600]
    assert r.headers.get("content-type", "").startswith(
        "application/problem+json"), r.raw[:600]


@pytest.mark.parametrize("case,status,reason", [
    ("e404", 404, "record_not_found"),
    ("e500", 502, "upstream_invalid"),
    ("e403html", 502, "upstream_invalid")])
def test_upstream_error_status_becomes_a_refusal(hgw, case, status, reason):
    """contract §2.1: a 404 is 404 record_not_found, any other status 502
    upstream_invalid; the platform's error body never reaches the bank."""
    mark = hgw.gw.log_size()
    r = hgw.raw_get(case)
    _no_marker(r)
    _problem(r, status, reason)
    e = hgw.env.audit_for(r.headers["x-request-id"], "outcome")
    assert e and e[0]["status"] == str(status) and e[0]["reason"] == reason
    assert e[0].get("cause", "") == ("" if status == 404 else "status"), e
    _healthy(hgw, mark)


def test_no_connection_leak(hgw):
    """After all of the above, the gateway holds no more upstream
    connections than its keepalive pool allows, and the hostile server
    sees only GETs."""
    time.sleep(0.5)
    assert hgw.up.open <= 32, hgw.up.open
    methods = {m for m, _ in hgw.up.requests}
    assert methods <= {"GET"}, methods
    fds = len(os.listdir(f"/proc/{next(iter(hgw.workers))}/fd")) \
        if hgw.workers else 0
    assert fds < 200, fds
