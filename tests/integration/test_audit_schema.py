"""The audit schema through the real gateway and tools (contract §7,
docs/audit-format.md): a verification's decision lists what it checked and
its outcome counts the answers; `report` counts checks per category;
entries of schema 1 and 2 verify together; `revocation` entries are read
by query, export and report; every CSV cell is safe to open in a
spreadsheet (issue 19) and the report shows a policy version whole.

Each gateway here is our own, on its own stream, with checkpoints every
200 ms, so that other tests' traffic does not change what is counted."""

import base64
import csv
import hashlib
import io
import json
import os
import re
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import \
    Ed25519PrivateKey

from conftest import E1, PURPOSE, ROOT, TAX, S
# docs/audit-format.md §5's example as a gateway of schema 1 wrote it
from test_audit_heads import DOC_DECISION, DOC_PUB, DOC_V1
from test_audit_cli import wait_signed as wait_chains_signed

TOOL = Path(os.environ.get("CREDIT_AUDIT_BIN")
            or Path(ROOT) / "build" / "bin" / "credit-audit")
FORMULA = "=cmd|' /C calc'!A0"          # issue 19's policy version
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def run(redis_addr, stream, *args, check=None, pubkey=None):
    argv = [str(TOOL), *args, "--redis", redis_addr, "--stream", stream]
    if pubkey is not None:
        argv += ["--pubkey", str(pubkey)]
    p = subprocess.run(argv, capture_output=True, timeout=60)
    if check is not None:
        assert p.returncode == check, (argv, p.returncode, p.stdout[-2000:],
                                       p.stderr[-2000:])
    return p


def entries(raw, stream):
    return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()})
            for i, f in raw.xrange(stream)]


def wait_signed(raw, stream):
    """Until every chain ends in a checkpoint covering all before it."""
    class Stream:
        def entries(self):
            return entries(raw, stream)
    return wait_chains_signed(Stream())


def gateway(env, tmp_path_factory, policy=None, tag="schema"):
    stream = f"credit:audit:{tag}-{uuid.uuid4().hex[:8]}"
    kw = {}
    if policy is not None:
        d = tmp_path_factory.mktemp(tag)
        kw["policy"] = S.write_json(d / "policy.json", policy)
    gw = env.st.make_gateway(
        stream=stream, gateway_id=f"gw-{tag}",
        http_directives={"credit_auth_audit_key":
                         f"{env.st.audit_key} interval=200ms"}, **kw)
    gw.start()
    return gw, stream


def send(env, gw, method="GET", body=None, headers=None, **claims):
    cert = env.certs["BANK001"]
    h = {"Authorization": "Bearer " + env.token(**claims),
         "X-Credit-Purpose": PURPOSE}
    h.update(headers or {})
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body).encode()
    return requests.request(method, gw.url(TAX), data=body, headers=h,
                            cert=(cert.cert, cert.key),
                            verify=env.pki.server_ca_path, timeout=10)


# ------------------------------------------------------------------------
# A verification's trace: one POST with three checks

CHECKS = [
    # matched: 1234567.89 in the record
    {"field": "annual[year=2023].tax_paid", "op": "ge", "value": 1000000},
    # not matched: the record says A
    {"field": "credit_rating", "op": "eq", "value": "AA"},
    # absent: no such year
    {"field": "annual[year=1999].tax_paid", "op": "eq", "value": 424242},
]


@pytest.fixture(scope="module")
def traced(env, tmp_path_factory):
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not built (make tools)", pytrace=False)
    gw, stream = gateway(env, tmp_path_factory)
    try:
        v = send(env, gw, "POST", {"checks": CHECKS})
        assert v.status_code == 200, v.text
        assert [r["match"] for r in v.json()["results"]] == \
            [True, False, None]
        q = send(env, gw)
        assert q.status_code == 200, q.text
        raw = env.st.redis.client(decode_responses=False)
        yield dict(env=env, gw=gw, stream=stream, raw=raw,
                   rid=v.headers["X-Request-Id"],
                   qrid=q.headers["X-Request-Id"],
                   final=wait_signed(raw, stream))
    finally:
        gw.stop()


def by_rid(t, rid, event):
    found = [e for _, e in t["final"]
             if e.get("rid") == rid and e["event"] == event]
    assert len(found) == 1, found
    return found[0]


def test_verification_decision_lists_paths_and_ops(traced):
    d = by_rid(traced, traced["rid"], "decision")
    assert d["v"] == "2"
    assert d["mode"] == "verify" and d["decision"] == "allow"
    # the policy's paths (selectors as []) and the ops, in the order asked
    assert d["checks"] == ("annual[].tax_paid ge,credit_rating eq,"
                           "annual[].tax_paid eq")
    fields = list(d)
    assert fields.index("checks") == fields.index("policy") + 1
    # never an operand, nor a selector value the bank chose
    o = by_rid(traced, traced["rid"], "outcome")
    for e in (d, o):
        for k, v in e.items():
            if k not in ("ts", "chain", "prev", "hash", "cert", "rid"):
                for secret in ("1000000", "424242", "AA", "year=", "2023",
                               "1999"):
                    assert secret not in v, (k, v)


def test_verification_outcome_counts_answers(traced):
    o = by_rid(traced, traced["rid"], "outcome")
    assert (o["matched"], o["unmatched"], o["absent"]) == ("1", "1", "1")
    assert o["disclosed"] == "" and o["masked"] == ""
    assert "reason" not in o
    # a query has neither checks nor counts
    d = by_rid(traced, traced["qrid"], "decision")
    o = by_rid(traced, traced["qrid"], "outcome")
    assert "checks" not in d and d["mode"] == "query"
    assert not {"matched", "unmatched", "absent"} & set(o)


def test_report_counts_checks_per_category(traced):
    t = traced
    rep = json.loads(run(t["env"].st.redis.directive_value(), t["stream"],
                         "report", "--json", check=0).stdout)
    tax = next(c for c in rep["categories"] if c["category"] == "tax")
    assert (tax["verifications"], tax["queries"]) == (1, 1)
    assert (tax["checks"], tax["matched"], tax["unmatched"],
            tax["absent"]) == (3, 1, 1, 1)
    assert rep["checks"] == {"asked": 3, "matched": 1, "unmatched": 1,
                             "absent": 1, "unlisted": 0}
    md = run(t["env"].st.redis.directive_value(), t["stream"], "report",
             "--format", "md", check=0).stdout.decode()
    assert "核验项 Checks" in md and "| tax | 1 | 1 | 0 | 0 | 0 | 3 | 1 | 1 " \
        "| 1 |" in md
    text = run(t["env"].st.redis.directive_value(), t["stream"], "report",
               check=0).stdout.decode()
    assert "checks verified              3 (matched 1, not matched 1, " \
        "absent 1)" in text


# ------------------------------------------------------------------------
# Schema 1 and 2 in one stream

def pem_of(priv):
    return priv.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_verify_intact_over_schema_1_and_2_entries(traced, tmp_path):
    t = traced
    raw = t["raw"]
    mixed = t["stream"] + ":mixed"
    for fields in (DOC_DECISION, DOC_V1):
        raw.execute_command("XADD", mixed, "*",
                            *[x for kv in fields for x in kv])
    for _, f in raw.xrange(t["stream"]):
        raw.execute_command("XADD", mixed, "*",
                            *[x for kv in f.items() for x in kv])
    ring = tmp_path / "ring.pem"
    ring.write_text(DOC_PUB + open(t["env"].st.audit_pub).read())
    try:
        p = run(t["env"].st.redis.directive_value(), mixed, "verify",
                "--json", "--keyring", str(ring), check=0)
        doc = json.loads(p.stdout)
        assert doc["intact"] is True and doc["breaks"] == 0
        versions = {e["v"] for _, e in entries(raw, mixed)}
        assert versions == {"1", "2"}
        old = next(c for c in doc["chains"]
                   if c["chain"] == "gw-1/4242/1795800000000/0")
        assert old["checkpoints_verified"] == 1 and old["key"] == f"{ring}#1"
        assert all(c["checkpoints_verified"] >= 1 for c in doc["chains"])
        # schema 1's verification lists no checks: counted as unlisted
        v1_verify = dict(DOC_DECISION)
        v1_verify.update(mode="verify", decision="allow", reason="",
                         rid="v1-verify")
        del v1_verify["hash"]
        raw.execute_command("XADD", mixed, "*",
                            *[x for kv in v1_verify.items() for x in kv])
        rep = json.loads(run(t["env"].st.redis.directive_value(), mixed,
                             "report", "--json", check=0).stdout)
        assert rep["checks"]["unlisted"] == 1
        assert rep["checks"]["asked"] == 3
    finally:
        raw.delete(mixed)


# ------------------------------------------------------------------------
# revocation entries, as the gateway's writer seals them

def seal(state, fields):
    """Appends chain, seq, prev and hash (docs/audit-format.md §2)."""
    chain, seq, prev = state
    fields = fields + [("chain", chain), ("seq", str(seq + 1)),
                       ("prev", prev)]
    h = hashlib.sha256()
    for n, v in fields:
        h.update(struct.pack(">I", len(n.encode())) + n.encode())
        h.update(struct.pack(">I", len(v.encode())) + v.encode())
    digest = h.hexdigest()
    state[1], state[2] = seq + 1, digest
    return fields + [("hash", digest)]


def revocation_stream(raw, key, stream):
    chain = "gw-r/77/1795800000000/0"
    st = [chain, 0, "0" * 64]
    es = [seal(st, [("v", "2"), ("event", "revocation"),
                    ("ts", "1795800000100"), ("gw", "gw-r"),
                    ("enterprise", E1), ("consent", "c-withdrawn"),
                    ("by", "enterprise")]),
          seal(st, [("v", "2"), ("event", "revocation"),
                    ("ts", "1795800000200"), ("gw", "gw-r"),
                    ("enterprise", E1), ("consent", "c-other"),
                    ("by", "platform")])]
    msg = f"credit-auth checkpoint v2\n{chain}\n{st[1]}\n{st[2]}\n".encode()
    sig = base64.urlsafe_b64encode(key.sign(msg)).rstrip(b"=").decode()
    es.append(seal(st, [("v", "2"), ("event", "checkpoint"),
                        ("ts", "1795800000300"), ("gw", "gw-r"),
                        ("covers", str(st[1])), ("head", st[2]),
                        ("heads", ""), ("sig", sig)]))
    for fields in es:
        raw.execute_command("XADD", stream, "*",
                            *[x for kv in fields for x in kv])


def test_tools_read_revocation_entries(env, tmp_path):
    raw = env.st.redis.client(decode_responses=False)
    stream = f"credit:audit:revoked-{uuid.uuid4().hex[:8]}"
    key = Ed25519PrivateKey.generate()
    pub = tmp_path / "pub.pem"
    pub.write_text(pem_of(key))
    addr = env.st.redis.directive_value()
    revocation_stream(raw, key, stream)
    try:
        run(addr, stream, "verify", pubkey=pub, check=0)
        got = [json.loads(l) for l in run(
            addr, stream, "query", "--json", "--event", "revocation",
            check=0).stdout.decode().splitlines()]
        assert [(g["consent"], g["by"]) for g in got] == \
            [("c-withdrawn", "enterprise"), ("c-other", "platform")]
        got = run(addr, stream, "query", "--consent", "c-other",
                  "--enterprise", E1, check=0).stdout.decode().splitlines()
        assert len(got) == 1 and "by=platform" in got[0]
        # a bank or a decision is never a revocation's
        assert run(addr, stream, "query", "--bank", "BANK001",
                   check=0).stdout == b""
        rows = list(csv.DictReader(io.StringIO(run(
            addr, stream, "export", "--format", "csv",
            check=0).stdout.decode(), newline="")))
        assert [(r["event"], r["enterprise"], r["consent"], r["by"])
                for r in rows[:2]] == [
            ("revocation", E1, "c-withdrawn", "enterprise"),
            ("revocation", E1, "c-other", "platform")]
        assert rows[0]["extra"] == ""       # a column of the schema
        rep = json.loads(run(addr, stream, "report", "--json",
                             check=0).stdout)
        assert rep["revocations"] == {"enterprise": 1, "platform": 1}
        assert rep["revocations_total"] == 2
        rows = list(csv.DictReader(io.StringIO(run(
            addr, stream, "report", "--format", "csv",
            check=0).stdout.decode(), newline="")))
        assert {(r["item"], r["count"]) for r in rows
                if r["section"] == "revocation"} == \
            {("enterprise", "1"), ("platform", "1")}
    finally:
        raw.delete(stream)


# ------------------------------------------------------------------------
# CSV a spreadsheet can open safely (issue 19)

@pytest.fixture(scope="module")
def formula(env, tmp_path_factory):
    pol = json.loads(json.dumps(S.TEST_POLICY))
    pol["version"] = FORMULA
    gw, stream = gateway(env, tmp_path_factory, policy=pol, tag="formula")
    try:
        r = send(env, gw, headers={"X-Request-Id": "-2-3"})
        assert r.status_code == 200, r.text
        assert r.headers["X-Request-Id"] == "-2-3"
        r = send(env, gw, headers={"X-Request-Id": "-A1-B1"})
        assert r.status_code == 200, r.text
        assert r.headers["X-Request-Id"] == "-A1-B1"
        raw = env.st.redis.client(decode_responses=False)
        yield dict(env=env, stream=stream, raw=raw,
                   addr=env.st.redis.directive_value(),
                   final=wait_signed(raw, stream))
    finally:
        gw.stop()


def read_csv(text):
    """Rows of the CSV, and a check that no record spans two lines."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert text.endswith("\r\n")
    assert text.count("\r\n") == len(rows), "a cell holds a line break"
    assert "\n" not in text.replace("\r\n", "")
    for row in rows:
        for cell in row:
            assert not cell.startswith(DANGEROUS) or \
                re.fullmatch(r"[-+]?[0-9]+(\.[0-9]+)?", cell), cell
    return rows


def test_report_csv_neutralises_formulas(formula):
    f = formula
    text = run(f["addr"], f["stream"], "report", "--format", "csv",
               check=0).stdout.decode()
    rows = read_csv(text)
    pol = [r for r in rows if r[0] == "policy"]
    assert len(pol) == 1
    # the version whole (it holds spaces), as text; its digest beside it
    assert pol[0][1] == "'" + FORMULA
    assert re.fullmatch(r"[0-9a-f]{64}", pol[0][2])
    assert pol[0][3] == "2"
    rep = json.loads(run(f["addr"], f["stream"], "report", "--json",
                         check=0).stdout)
    assert [(p["version"], len(p["sha256"])) for p in rep["policies"]] == \
        [(FORMULA, 64)]


def test_export_csv_neutralises_formulas(formula):
    f = formula
    text = run(f["addr"], f["stream"], "export", "--format", "csv",
               check=0).stdout.decode()
    rows = read_csv(text)
    head = rows[0]
    recs = [dict(zip(head, r)) for r in rows[1:]]
    assert len(recs) == len(f["final"])
    ds = [r for r in recs if r["event"] == "decision"]
    assert {r["rid"] for r in ds} == {"'-2-3", "'-A1-B1"}
    assert all(r["policy"].startswith("'" + FORMULA + " ") for r in ds)
    # checkpoints' heads hold line feeds: written as \n, one line each
    cps = [r for r in recs if r["event"] == "checkpoint" and r["heads"]]
    assert cps and all("\\n" in r["heads"] for r in cps)
    stored = {e["hash"]: e for _, e in f["final"]}
    for r in cps:
        assert r["heads"].replace("\\n", "\n") == stored[r["hash"]]["heads"]
