"""Verification (核验比对, contract §2, docs/policy.md §7): POST checks on a
policy route, answered match / no match / null, never a value; the
upstream is asked with GET.

One extra gateway with this file's policy (the test policy's tax category
with more verifiable fields) in front of an upstream nginx that logs every
request's method and refuses anything but GET on /api/.
"""

import copy
import json
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import E1, PURPOSE, S, problem

TAX = f"/api/v1/enterprises/{E1}/tax"
ALL_OPS = ["eq", "ne", "gt", "ge", "lt", "le"]

RECORD = {
    "uscc": E1,
    "name": "福州闽江精密机械有限公司",
    "credit_rating": "A",
    "registered_capital": 5000000,
    "annual": [
        {"year": 2023, "tax_paid": 1234567.89, "filing_ref": "FR-SECRET-1"},
        {"year": 2022, "tax_paid": 987654},
        {"year": "2021", "tax_paid": None},
    ],
    "legal_representative": {"name": "张三丰",
                             "id_number": "110101199003071234"},
    "flags": {"listed": True},
    "branches": [{"city": "Fuzhou", "employees": 120},
                 "not-an-object",
                 {"city": "厦门", "employees": 80}],
    "rates": [{"r": 1.5, "v": 10}],
    "nested": {"obj": {"a": 1}},
}

# values that must never be echoed by a verification answer (selector
# values such as city=厦门 are the bank's own and come back in "field")
VALUES = ["1234567.89", "987654", "5000000", "张三丰", "110101199003071234",
          "FR-SECRET-1"]

POLICY = copy.deepcopy(S.TEST_POLICY)
POLICY["version"] = "test-verify-1"
# members that select elements must be disclosed as they are (contract §2.1)
POLICY["categories"]["tax"]["fields"].update({"branches[].city": "keep",
                                              "rates[].r": "keep"})
# these tests put many checks of one field in one request; the budget
# itself is tested in test_verify_oracle.py
POLICY["categories"]["tax"]["verify_budget"] = 1000
POLICY["categories"]["tax"]["verify"] = {
    "annual[].tax_paid": ALL_OPS,
    "credit_rating": ["eq", "ne"],
    "registered_capital": ALL_OPS,
    "legal_representative.name": ["eq"],
    "flags.listed": ["eq", "ne"],
    "branches[].employees": ALL_OPS,
    "rates[].v": ["eq"],
    "missing_field": ["eq"],
    "nested.obj": ["eq"],
}


class VGW:
    def __init__(self, env, gw, up, access_log):
        self.env, self.gw, self.up, self.access_log = env, gw, up, access_log

    def post(self, body, token=None, headers=None, path=TAX, raw=False):
        c = self.env.certs["BANK001"]
        h = {"Authorization": "Bearer " + (token or self.env.token()),
             "X-Credit-Purpose": PURPOSE, "Content-Type": "application/json"}
        h.update(headers or {})
        if not raw:
            body = json.dumps(body, ensure_ascii=False)
        if isinstance(body, str):
            body = body.encode()
        return requests.post(self.gw.url(path), data=body, headers=h,
                             cert=(c.cert, c.key),
                             verify=self.env.pki.server_ca_path, timeout=10)

    def check(self, *checks, **kw):
        return self.post({"checks": [dict(field=f, op=o, value=v)
                                     for f, o, v in checks]}, **kw)

    def log_lines(self):
        try:
            return Path(self.access_log).read_text().splitlines()
        except OSError:
            return []


@pytest.fixture(scope="module")
def vgw(env):
    d = S.workdir(Path(tempfile.mkdtemp(prefix="verify-", dir=env.st.dir)))
    pol = S.write_json(d / "policy-verify.json", POLICY)
    root = S.write_platform(S.subdir(d, "platform"), {(E1, "tax"): RECORD})
    logs = S.subdir(d, "uplogs", 0o777)
    access = logs / "access.log"
    up = S.Upstream(
        d, root=root,
        extra_http='    log_format methods "$request_method $uri '
                   '$content_length";',
        extra_server=f"""        location /api/ {{
            access_log {access} methods;
            limit_except GET {{ deny all; }}
            try_files $uri =404;
        }}""").start()
    gw = env.st.make_gateway(d / "gw", policy=pol, upstream_port=up.port)
    try:
        gw.start()
    except Exception:
        up.stop()
        raise
    yield VGW(env, gw, up, access)
    gw.stop()
    up.stop()
    problems = gw.log_problems()
    assert not problems, "verify gateway log:\n" + "\n".join(problems)


def _results(r, n):
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Credit-Disclosure") == "verify"
    assert r.headers["Content-Type"].startswith("application/json")
    assert int(r.headers["Content-Length"]) == len(r.content)
    assert "ETag" not in r.headers and "Last-Modified" not in r.headers
    doc = r.json()
    assert set(doc) == {"results"}, doc
    assert len(doc["results"]) == n, doc
    for res in doc["results"]:
        assert set(res) == {"field", "op", "match"}, res
    for v in VALUES:
        assert v not in r.text, f"value {v!r} in a verification answer"
    return doc["results"]


# ------------------------------------------------------------------------
# Every op, true and false, in request order

OPS_CASES = [
    ("registered_capital", "eq", 5000000, True),
    ("registered_capital", "eq", 5000001, False),
    ("registered_capital", "ne", 5000001, True),
    ("registered_capital", "ne", 5000000, False),
    ("registered_capital", "gt", 4999999, True),
    ("registered_capital", "gt", 5000000, False),
    ("registered_capital", "ge", 5000000, True),
    ("registered_capital", "ge", 5000000.5, False),
    ("registered_capital", "lt", 5000000.5, True),
    ("registered_capital", "lt", 5000000, False),
    ("registered_capital", "le", 5000000, True),
    ("registered_capital", "le", 4999999.99, False),
    ("registered_capital", "eq", 5000000.0, True),       # int vs real
]


def test_every_op(vgw):
    r = vgw.check(*[(f, o, v) for f, o, v, _ in OPS_CASES])
    res = _results(r, len(OPS_CASES))
    for (f, o, v, want), got in zip(OPS_CASES, res):
        assert got == {"field": f, "op": o, "match": want}, (f, o, v, got)


@pytest.mark.parametrize("op,value,want", [
    ("eq", 1234567.89, True), ("ge", 1000000, True), ("le", 1000000, False),
    ("gt", 1234567.89, False), ("lt", 1234567.9, True), ("ne", 0, True)])
def test_selection_by_number(vgw, op, value, want):
    r = vgw.check(("annual[year=2023].tax_paid", op, value))
    assert _results(r, 1)[0]["match"] is want


def test_selection_variants(vgw):
    checks = [
        ("annual[year=2022].tax_paid", "eq", 987654.0, True),
        ("annual[year=02023].tax_paid", "eq", 1, None),      # not 2023
        ("annual[year=2020].tax_paid", "eq", 1, None),       # no element
        ("annual[year=2021].tax_paid", "eq", 1, None),       # JSON null
        ("branches[city=厦门].employees", "eq", 80, True),    # string key
        ("branches[city=Fuzhou].employees", "gt", 100, True),
        ("branches[city=fuzhou].employees", "gt", 100, None),  # bytes
        ("rates[r=1.5].v", "eq", 10, True),                   # real key
        ("rates[r=1.50].v", "eq", 10, True),
        ("credit_rating", "eq", "A", True),
        ("credit_rating", "eq", "a", False),
        ("credit_rating", "ne", "A", False),
        ("flags.listed", "eq", True, True),
        ("flags.listed", "ne", True, False),
        ("legal_representative.name", "eq", "张三丰", True),
        ("legal_representative.name", "eq", "张三", False),
        ("missing_field", "eq", "x", None),
    ]
    r = vgw.check(*[c[:3] for c in checks])
    res = _results(r, len(checks))
    for (f, o, v, want), got in zip(checks, res):
        assert got == {"field": f, "op": o, "match": want}, (f, o, v, got)


def test_absent_field_is_null(vgw):
    r = vgw.check(("missing_field", "eq", "x"))
    assert _results(r, 1) == [{"field": "missing_field", "op": "eq",
                               "match": None}]


def test_audit_and_upstream_get(vgw):
    before = len(vgw.log_lines())
    r = vgw.check(("credit_rating", "eq", "A"),
                  headers={"X-Request-Id": "verify-get-check-1"})
    _results(r, 1)
    e = vgw.env.decision(r)
    assert e["mode"] == "verify" and e["decision"] == "allow", e
    assert e["path"] == TAX, e
    # the bank's request was a POST; the audit must say what the bank did
    # (checked last: see the GET check below first)
    method = e["method"]
    assert e["category"] == "tax", e
    for v in VALUES:
        assert v not in json.dumps(e, ensure_ascii=False)
    # the platform saw exactly one GET without a body for this request
    deadline = time.monotonic() + 3
    while len(vgw.log_lines()) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    new = vgw.log_lines()[before:]
    assert new == [f"GET {TAX} -"], new
    assert not any(ln.startswith("POST") for ln in vgw.log_lines())
    assert method == "POST", f"decision entry says method={method!r}"


def test_query_get_still_works(vgw):
    r = requests.get(vgw.gw.url(TAX), headers={
        "Authorization": "Bearer " + vgw.env.token(),
        "X-Credit-Purpose": PURPOSE},
        cert=(vgw.env.certs["BANK001"].cert, vgw.env.certs["BANK001"].key),
        verify=vgw.env.pki.server_ca_path, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["X-Credit-Disclosure"] == "masked"
    assert "registered_capital" not in r.json()


def test_mode_not_consented(vgw):
    tok = vgw.env.token(modes=["query"])
    r = vgw.check(("credit_rating", "eq", "A"), token=tok)
    problem(r, 403, "mode_not_consented", record_markers=VALUES)
    assert vgw.env.decision(r)["mode"] == "verify"


# ------------------------------------------------------------------------
# Refusals: 400 request_invalid, nothing upstream

def _c(field, op, value):
    return {"field": field, "op": op, "value": value}


BAD_BODIES = {
    "field_not_verifiable": {"checks": [_c("name", "eq", "x")]},
    "disclosed_but_not_verifiable": {"checks": [_c("uscc", "eq", E1)]},
    "op_not_allowed": {"checks": [_c("credit_rating", "gt", 1)]},
    "op_not_allowed_for_name": {"checks": [
        _c("legal_representative.name", "ne", "x")]},
    "unknown_op": {"checks": [_c("credit_rating", "like", "A")]},
    "gt_with_string": {"checks": [_c("registered_capital", "gt", "5")]},
    "le_with_bool": {"checks": [_c("registered_capital", "le", True)]},
    "bare_brackets": {"checks": [_c("annual[].tax_paid", "ge", 1)]},
    "value_object": {"checks": [_c("credit_rating", "eq", {"a": 1})]},
    "value_null": {"checks": [_c("credit_rating", "eq", None)]},
    "no_checks": {"checks": []},
    "too_many_checks": {"checks": [_c("credit_rating", "eq", "A")] * 33},
    "extra_member": {"checks": [_c("credit_rating", "eq", "A")], "x": 1},
    "extra_check_member": {"checks": [dict(_c("credit_rating", "eq", "A"),
                                           note=1)]},
    "missing_value": {"checks": [{"field": "credit_rating", "op": "eq"}]},
    "checks_not_array": {"checks": _c("credit_rating", "eq", "A")},
    "top_array": [_c("credit_rating", "eq", "A")],
    "selector_empty_value": {"checks": [_c("annual[year=].tax_paid", "eq",
                                           1)]},
    "selector_on_non_array_path": {"checks": [
        _c("credit_rating[x=1]", "eq", "A")]},
    "type_mismatch_string_vs_number": {"checks": [
        _c("legal_representative.name", "eq", 5)]},
    "type_mismatch_number_vs_string": {"checks": [
        _c("annual[year=2023].tax_paid", "eq", "1234567.89")]},
    "object_field": {"checks": [_c("nested.obj", "eq", "x")]},
}

RAW_BAD = {
    "not_json": b"checks=credit_rating:eq:A",
    "truncated": b'{"checks":[{"field":"credit_rating","op":"eq"',
    "duplicate_keys": b'{"checks":[{"field":"credit_rating","op":"eq",'
                      b'"value":"A","value":"B"}]}',
    "empty": b"",
    "too_large": (b'{"checks":[{"field":"credit_rating","op":"eq",'
                  b'"value":"' + b"A" * 17000 + b'"}]}'),
}


def _refused(vgw, r, after_upstream=False):
    doc = problem(r, 400, "request_invalid", record_markers=VALUES)
    e = vgw.env.decision(r)
    assert e["mode"] == "verify", e
    if after_upstream:
        # a type mismatch is only known once the record is here: the
        # decision (written before going upstream) allowed, the outcome
        # says 400
        assert e["decision"] == "allow", e
        o = vgw.env.audit_for(r.headers["X-Request-Id"], "outcome")
        assert o and o[0]["status"] == "400", o
    else:
        assert e["decision"] == "deny" and e["reason"] == "request_invalid", e
    return doc


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_bad_checks(vgw, name):
    before = len(vgw.log_lines())
    r = vgw.post(BAD_BODIES[name])
    late = name.startswith("type_mismatch") or name == "object_field"
    doc = _refused(vgw, r, after_upstream=late)
    assert "张三丰" not in doc["detail"] and "1234567" not in doc["detail"]
    if not late:
        # decided before anything went upstream
        time.sleep(0.1)
        assert len(vgw.log_lines()) == before, vgw.log_lines()[before:]


@pytest.mark.parametrize("name", sorted(RAW_BAD))
def test_bad_bodies(vgw, name):
    before = len(vgw.log_lines())
    r = vgw.post(RAW_BAD[name], raw=True)
    _refused(vgw, r)
    time.sleep(0.1)
    assert len(vgw.log_lines()) == before, vgw.log_lines()[before:]


def _padded(n):
    """A valid verification body of exactly n bytes (JSON whitespace)."""
    core = json.dumps({"checks": [_c("credit_rating", "eq", "A")]})
    assert len(core) <= n
    return (core[:-1] + " " * (n - len(core)) + "}").encode()


@pytest.mark.parametrize("size", [9000, 12000, 16384])
def test_body_up_to_16k_is_accepted(vgw, size):
    """docs/policy.md §7: the body may hold up to 16 KiB."""
    body = _padded(size)
    assert len(body) == size
    r = vgw.post(body, raw=True)
    assert _results(r, 1)[0]["match"] is True


def test_body_one_byte_over_16k(vgw):
    r = vgw.post(_padded(16385), raw=True)
    _refused(vgw, r)


def test_chunked_verification_body(vgw):
    """Transfer-Encoding: chunked request body (no Content-Length)."""
    core = json.dumps({"checks": [_c("registered_capital", "ge", 1)]}).encode()

    def gen():
        for i in range(0, len(core), 10):
            yield core[i:i + 10]
    c = vgw.env.certs["BANK001"]
    r = requests.post(vgw.gw.url(TAX), data=gen(), headers={
        "Authorization": "Bearer " + vgw.env.token(),
        "X-Credit-Purpose": PURPOSE, "Content-Type": "application/json"},
        cert=(c.cert, c.key), verify=vgw.env.pki.server_ca_path, timeout=10)
    assert _results(r, 1)[0]["match"] is True
