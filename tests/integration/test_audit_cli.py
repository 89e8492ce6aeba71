"""credit-audit (SPEC §9) against a real gateway's audit stream: tail,
query, export, report, and verify on the intact stream and on tampered
copies of it.

The gateway here is our own (on the session's files, Redis and upstream)
writing to its own stream, with checkpoints every 200 ms, so that other
tests' traffic cannot change what these tests count."""

import csv
import datetime
import hashlib
import io
import json
import os
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import E1, E2, ENV, PURPOSE, ROOT, TAX, S

STREAM = "credit:audit:cli-" + uuid.uuid4().hex[:8]
TAX_E2 = f"/api/v1/enterprises/{E2}/tax"
TOOL = Path(os.environ.get("CREDIT_AUDIT_BIN")
            or Path(ROOT) / "build" / "bin" / "credit-audit")


# ------------------------------------------------------------------------
# Helpers

def digest(fields):
    """The entry hash of docs/audit-format.md: SHA-256 over u32be(len)
    name u32be(len) value for every field but `hash`, in stored order."""
    h = hashlib.sha256()
    for name, value in fields:
        if name == b"hash":
            continue
        h.update(struct.pack(">I", len(name)) + name)
        h.update(struct.pack(">I", len(value)) + value)
    return h.hexdigest().encode()


def run(audit, *args, stream=STREAM, redis_addr=None, pubkey=None,
        check=None):
    argv = [str(TOOL), *args, "--redis", redis_addr or audit.redis_addr]
    if stream is not None:
        argv += ["--stream", stream]
    if pubkey is not None:
        argv += ["--pubkey", str(pubkey)]
    p = subprocess.run(argv, capture_output=True, timeout=60)
    if check is not None:
        assert p.returncode == check, (argv, p.returncode,
                                       p.stdout.decode(errors="replace"),
                                       p.stderr.decode(errors="replace"))
    return p


def jsonl(p):
    return [json.loads(l) for l in p.stdout.decode().splitlines() if l]


class Audit:
    """Our gateway and what we sent through it."""

    def __init__(self, env, gw):
        self.env = env
        self.gw = gw
        self.redis_addr = env.st.redis.directive_value()
        self.raw = env.st.redis.client(decode_responses=False)
        self.sent = []          # (label, response, claims or None)

    def request(self, label, path=TAX, bank="BANK001", uscc=E1,
                purpose=PURPOSE, token=True, **claims):
        c = None
        h = {"X-Credit-Purpose": purpose}
        if token:
            kid = "e1-es256" if uscc == E1 else "e2-es256"
            priv, jwk = self.env.key(kid)
            c = S.claims(uscc, bank, **claims)
            h["Authorization"] = "Bearer " + S.mint_token(priv, "ES256",
                                                          kid, c)
        cert = self.env.certs[bank]
        r = requests.get(self.gw.url(path), headers=h,
                         cert=(cert.cert, cert.key),
                         verify=self.env.pki.server_ca_path, timeout=10)
        self.sent.append((label, r, c))
        return r

    def rid(self, label):
        return next(r.headers["X-Request-Id"] for l, r, _ in self.sent
                    if l == label)

    def jti(self, label):
        return next(c["jti"] for l, _, c in self.sent if l == label)

    def entries(self, stream=STREAM):
        """[(id, {name: value})] as str, and the raw list."""
        out = []
        for i, f in self.raw.xrange(stream):
            out.append((i.decode(), {k.decode(): v.decode()
                                     for k, v in f.items()}))
        return out

    def raw_entries(self, stream=STREAM):
        """[(id, [(name, value)])]: bytes, in stored field order."""
        out = []
        for i, f in self.raw.xrange(stream):
            out.append((i, list(f.items())))
        return out


def wait_signed(audit, timeout=10.0):
    """Until every chain (a worker writes chain 0 and one per concurrent
    allow, see the module) ends with a checkpoint covering everything
    before it, and nothing new arrives for a while."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        es = audit.entries()
        last = {}
        for _, e in es:
            last[e["chain"]] = e
        if last and all(e.get("event") == "checkpoint"
                        and int(e["covers"]) + 1 == int(e["seq"])
                        for e in last.values()):
            time.sleep(0.5)
            if len(audit.entries()) == len(es):
                return es
        time.sleep(0.1)
    pytest.fail(f"chains of {STREAM} not all signed: {audit.entries()}")


@pytest.fixture(scope="module")
def audit(env):
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not built (make tools)", pytrace=False)
    assert env.st.audit_key, "the stack has no audit key"
    gw = env.st.make_gateway(
        stream=STREAM, gateway_id="gw-cli",
        http_directives={"credit_auth_audit_key":
                         f"{env.st.audit_key} interval=200ms"})
    gw.start()
    a = Audit(env, gw)
    try:
        # period A
        assert a.request("e1-tax").status_code == 200
        assert a.request("e2-tax", path=TAX_E2, uscc=E2).status_code == 200
        assert a.request("bank2", bank="BANK002", purpose="credit_assessment",
                         purposes=["credit_assessment"]).status_code == 200
        assert a.request("suspended", bank="BANK009").status_code == 403
        # one second apart, so a time filter can split the two periods
        time.sleep(1.3)
        # period B
        assert a.request("no-token", token=False).status_code == 401
        assert a.request("env", path=ENV,
                         categories=["environment"]).status_code == 200
        assert a.request("e1-tax-2").status_code == 200
        assert a.request("wrong-aud", bank="BANK002",
                         purpose="credit_assessment",
                         purposes=["credit_assessment"],
                         aud="BANK001").status_code == 403
        a.final = wait_signed(a)
        yield a
    finally:
        gw.stop()


def by_rid(entries, rid):
    return [(i, e) for i, e in entries if e.get("rid") == rid]


# ------------------------------------------------------------------------
# Usage and connection errors

def test_help_and_usage(audit):
    p = subprocess.run([str(TOOL), "--help"], capture_output=True)
    assert p.returncode == 0 and b"verify" in p.stdout
    for cmd in ("tail", "query", "verify", "export", "report"):
        p = subprocess.run([str(TOOL), cmd, "--help"], capture_output=True)
        assert p.returncode == 0, cmd
        assert p.stdout.startswith(b"usage: credit-audit " + cmd.encode())
    assert subprocess.run([str(TOOL)], capture_output=True).returncode == 2
    assert subprocess.run([str(TOOL), "frobnicate"],
                          capture_output=True).returncode == 2
    run(audit, "query", "--decision", "maybe", check=2)
    run(audit, "query", "--since", "yesterday", check=2)
    run(audit, "export", "--format", "xml", check=2)
    # verify without the key proves nothing: refused
    run(audit, "verify", check=2)
    run(audit, "verify", pubkey="/nonexistent.pem", check=2)


def test_connection_error_is_2(audit):
    port = S.free_port()
    p = run(audit, "tail", redis_addr=f"127.0.0.1:{port}", check=2)
    assert b"redis" in p.stderr
    run(audit, "verify", redis_addr=f"127.0.0.1:{port}",
        pubkey=audit.env.st.audit_pub, check=2)
    run(audit, "report", redis_addr="no-port", check=2)


def test_wrong_type_key_is_2(audit):
    k = "credit:audit:cli-not-a-stream"
    audit.raw.set(k, "x")
    try:
        run(audit, "export", stream=k, check=2)
    finally:
        audit.raw.delete(k)


# ------------------------------------------------------------------------
# tail

def test_tail(audit):
    es = audit.final
    got = jsonl(run(audit, "tail", "-n", "3", "--json", check=0))
    assert [g["id"] for g in got] == [i for i, _ in es[-3:]]
    for g, (_, e) in zip(got, es[-3:]):
        assert {k: v for k, v in g.items() if k not in ("id", "time")} == e
        # the readable time next to ts (not a stored field)
        assert list(g).index("time") == list(g).index("ts") + 1
        assert datetime.datetime.fromisoformat(g["time"]).timestamp() \
            == int(e["ts"]) / 1000
    text = run(audit, "tail", check=0).stdout.decode().splitlines()
    assert len(text) == min(10, len(es))
    assert text[-1].startswith(es[-1][0] + " ")
    assert "event=checkpoint" in text[-1]


def test_tail_follow(audit):
    k = f"{STREAM}:follow"
    audit.raw.xadd(k, {"event": "probe", "n": "0"})
    p = subprocess.Popen([str(TOOL), "tail", "-n", "1", "--follow", "--json",
                          "--redis", audit.redis_addr, "--stream", k],
                         stdout=subprocess.PIPE)
    try:
        assert json.loads(p.stdout.readline())["n"] == "0"
        time.sleep(0.3)
        eid = audit.raw.xadd(k, {"event": "probe", "n": "1"})
        got = json.loads(p.stdout.readline())
        assert got["id"] == eid.decode() and got["n"] == "1"
    finally:
        p.kill()
        p.wait()
        audit.raw.delete(k)


# ------------------------------------------------------------------------
# query

def query(audit, *args):
    return jsonl(run(audit, "query", "--json", *args, check=0))


def test_query_by_enterprise_joins_outcomes(audit):
    got = query(audit, "--enterprise", E2)
    rid = audit.rid("e2-tax")
    assert [(g["event"], g["rid"]) for g in got] == \
        [("decision", rid), ("outcome", rid)]
    assert got[0]["enterprise"] == E2 and got[0]["decision"] == "allow"
    assert got[1]["status"] == "200"


def test_query_by_bank(audit):
    got = query(audit, "--bank", "BANK009")
    assert len(got) == 1
    assert got[0]["decision"] == "deny"
    assert got[0]["reason"] == "bank_suspended"
    assert got[0]["rid"] == audit.rid("suspended")
    got = query(audit, "--bank", "BANK002", "--decision", "allow")
    assert [g["rid"] for g in got] == [audit.rid("bank2")] * 2


def test_query_by_consent(audit):
    got = query(audit, "--consent", audit.jti("e1-tax"))
    assert {g["event"] for g in got} == {"decision", "outcome"}
    assert {g["rid"] for g in got} == {audit.rid("e1-tax")}


def test_query_by_decision_and_reason(audit):
    denies = query(audit, "--decision", "deny")
    assert {g["rid"] for g in denies} == {audit.rid(l) for l in
                                          ("suspended", "no-token",
                                           "wrong-aud")}
    assert all(g["event"] == "decision" for g in denies)
    got = query(audit, "--reason", "token_missing")
    assert [g["rid"] for g in got] == [audit.rid("no-token")]
    got = query(audit, "--reason", "audience_mismatch")
    assert [g["rid"] for g in got] == [audit.rid("wrong-aud")]
    allows = query(audit, "--decision", "allow", "--event", "decision")
    assert len(allows) == 5


def test_query_by_event(audit):
    got = query(audit, "--event", "checkpoint")
    assert got and all(g["event"] == "checkpoint" for g in got)
    assert {"covers", "head", "sig"} <= set(got[0])
    # a decision attribute never matches a checkpoint
    assert query(audit, "--event", "checkpoint", "--bank", "BANK001") == []


def test_query_by_time(audit):
    es = audit.final
    a_rids = {audit.rid(l) for l in ("e1-tax", "e2-tax", "bank2",
                                     "suspended")}
    b_rids = {audit.rid(l) for l in ("no-token", "env", "e1-tax-2",
                                     "wrong-aud")}
    b_ts = min(int(e["ts"]) for _, e in es
               if e.get("rid") in b_rids and e["event"] == "decision")
    split = b_ts // 1000            # whole seconds: period A ends before
    iso = datetime.datetime.fromtimestamp(
        split, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    got = query(audit, "--event", "decision", "--since", str(split))
    assert {g["rid"] for g in got} == b_rids
    got = query(audit, "--event", "decision", "--until", iso)
    assert {g["rid"] for g in got} == a_rids
    got = query(audit, "--since", iso, "--until", str(split))
    assert got == []
    # a date: the whole of today (UTC) holds everything
    today = datetime.datetime.fromtimestamp(
        split, datetime.timezone.utc).strftime("%Y-%m-%d")
    got = query(audit, "--since", today)
    assert len(got) == len(es)
    assert query(audit, "--until", today) == []


def test_query_filters_outcomes_by_time_but_joins_early_decisions(audit):
    """An outcome in the period still joins its decision's attributes."""
    es = audit.final
    rid = audit.rid("e1-tax-2")
    out_ts = next(int(e["ts"]) for _, e in es
                  if e.get("rid") == rid and e["event"] == "outcome")
    got = query(audit, "--consent", audit.jti("e1-tax-2"),
                "--event", "outcome", "--since", str(out_ts // 1000))
    assert [g["rid"] for g in got] == [rid]


# ------------------------------------------------------------------------
# export

def test_export_jsonl(audit, tmp_path):
    es = audit.final
    out = tmp_path / "audit.jsonl"
    p = run(audit, "export", "--format", "jsonl", "--out", str(out),
            check=0)
    assert p.stdout == b""
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(lines) == len(es)
    for g, (i, e) in zip(lines, es):
        assert g.pop("id") == i
        assert g == e
        assert list(g) == list(e)       # stored field order
    # the default format is jsonl, to stdout
    assert jsonl(run(audit, "export", check=0)) == \
        [dict(id=i, **e) for i, e in es]


def test_export_csv(audit):
    es = audit.final
    p = run(audit, "export", "--format", "csv", check=0)
    rows = list(csv.DictReader(io.StringIO(p.stdout.decode(),
                                           newline="")))
    assert len(rows) == len(es)
    for row, (i, e) in zip(rows, es):
        assert row["id"] == i
        for k, v in e.items():
            assert row[k] == v, (k, row)
        assert row["extra"] == ""
        if e["event"] == "decision":
            assert row["covers"] == "" and row["status"] == ""


def test_export_period(audit):
    es = audit.final
    b_ts = min(int(e["ts"]) for _, e in es
               if e.get("rid") == audit.rid("no-token"))
    got = jsonl(run(audit, "export", "--since", str(b_ts // 1000),
                    check=0))
    assert got and all(int(g["ts"]) >= b_ts // 1000 * 1000 for g in got)
    assert len(got) < len(es)


# ------------------------------------------------------------------------
# report

def test_report(audit):
    es = audit.final
    decisions = [e for _, e in es if e["event"] == "decision"]
    rep = json.loads(run(audit, "report", "--json", check=0).stdout)
    assert rep["decisions"] == len(decisions) == 8
    assert rep["outcomes"] == 5
    for dim in ("bank", "category", "purpose", "decision", "reason"):
        want = {}
        for d in decisions:
            want[d[dim]] = want.get(d[dim], 0) + 1
        assert rep[dim] == want, dim
    assert rep["bank"]["BANK001"] == 5
    assert rep["bank"]["BANK009"] == 1
    assert rep["category"]["environment"] == 1
    assert rep["purpose"]["credit_assessment"] == 2
    assert rep["decision"] == {"allow": 5, "deny": 3}
    assert rep["reason"]["bank_suspended"] == 1
    # distinct enterprises among allow decisions: E1 and E2
    assert rep["enterprises_served"] == 2

    text = run(audit, "report", check=0).stdout.decode()
    assert "distinct enterprises served  2" in text
    assert "BANK001" in text and "bank_suspended" in text


def test_report_period(audit):
    es = audit.final
    b_ts = min(int(e["ts"]) for _, e in es
               if e.get("rid") == audit.rid("no-token"))
    rep = json.loads(run(audit, "report", "--json", "--until",
                         str(b_ts // 1000), check=0).stdout)
    # period A: three allows (E1, E2, E1 via BANK002) and one refusal
    assert rep["decisions"] == 4
    assert rep["decision"] == {"allow": 3, "deny": 1}
    assert rep["enterprises_served"] == 2
    assert rep["since"] is None and rep["until"].endswith("Z")
    rep = json.loads(run(audit, "report", "--json", "--since",
                         str(b_ts // 1000), check=0).stdout)
    assert rep["decisions"] == 4
    assert rep["enterprises_served"] == 1     # only E1 allowed in B


# ------------------------------------------------------------------------
# verify: the intact stream, then tampered copies

def verify(audit, stream=STREAM, pubkey=None, check=None):
    p = run(audit, "verify", "--json", stream=stream,
            pubkey=pubkey or audit.env.st.audit_pub, check=check)
    return p.returncode, json.loads(p.stdout)


def test_verify_intact(audit):
    rc, doc = verify(audit, check=0)
    assert doc["intact"] is True and doc["breaks"] == 0
    assert doc["entries"] == len(audit.final)
    assert doc["chains"]
    for ch in doc["chains"]:
        assert ch["chain"].startswith("gw-cli/")
        assert ch["checkpoints_verified"] >= 1
        assert ch["checkpoints"] == ch["checkpoints_verified"]
        assert ch["last_signed_seq"] == ch["last_seq"] - 1
        assert ch["unsigned_tail"] == 0
        assert ch["duplicates"] == 0
        assert ch["breaks"] == []
    text = run(audit, "verify", pubkey=audit.env.st.audit_pub,
               check=0).stdout.decode()
    assert "intact" in text and "unsigned tail 0" in text


def test_verify_the_python_reimplementation_agrees(audit):
    """docs/audit-format.md's hash, re-done here, matches every entry."""
    for i, fields in audit.raw_entries():
        stored = dict(fields)[b"hash"]
        assert digest(fields) == stored, i


def copy_stream(audit, entries, name=None):
    """XADDs entries [(id, [(name, value)])] into a fresh key, in order."""
    dst = name or f"{STREAM}:copy-{uuid.uuid4().hex[:6]}"
    for _, fields in entries:
        args = []
        for k, v in fields:
            args += [k, v]
        audit.raw.execute_command("XADD", dst, "*", *args)
    return dst


def seq_of(fields):
    return int(dict(fields)[b"seq"])


def chain_of(fields):
    return dict(fields)[b"chain"]


def set_field(fields, name, value):
    return [(k, value if k == name else v) for k, v in fields]


def breaks(doc):
    return [(b["kind"], b["seq"]) for c in doc["chains"]
            for b in c["breaks"]]


@pytest.fixture
def copy(audit):
    made = []

    def make(entries):
        k = copy_stream(audit, entries)
        made.append(k)
        return k
    yield make
    for k in made:
        audit.raw.delete(k)


def main_chain(raw):
    """The chain with the most entries, and the seqs of its entries that
    are neither its first nor among its last two, nor checkpoints."""
    count = {}
    for _, f in raw:
        count[chain_of(f)] = count.get(chain_of(f), 0) + 1
    c = max(count, key=count.get)
    mine = [f for _, f in raw if chain_of(f) == c]
    mids = [seq_of(f) for f in mine[1:-2]
            if dict(f)[b"event"] != b"checkpoint"]
    assert len(mids) >= 2, mine
    return c, mids


def at(raw, chain, seq):
    """Stream index of (chain, seq)."""
    return next(n for n, (_, f) in enumerate(raw)
                if chain_of(f) == chain and seq_of(f) == seq)


def test_verify_copy_intact(audit, copy):
    rc, doc = verify(audit, copy(audit.raw_entries()), check=0)
    assert doc["intact"]


def test_verify_modified(audit, copy):
    raw = audit.raw_entries()
    c, mids = main_chain(raw)
    k = at(raw, c, mids[0])
    t = list(raw)
    t[k] = (t[k][0], set_field(t[k][1], b"ts", b"1000000000000"))
    rc, doc = verify(audit, copy(t), check=1)
    assert breaks(doc) == [("modified", mids[0])]


def test_verify_deleted(audit, copy):
    raw = audit.raw_entries()
    c, mids = main_chain(raw)
    t = list(raw)
    del t[at(raw, c, mids[1])]
    rc, doc = verify(audit, copy(t), check=1)
    assert breaks(doc) == [("deleted", mids[1] + 1)]


def test_verify_inserted(audit, copy):
    """A forged entry with its hash recomputed, claiming the seq of a real
    one and linking to the same predecessor: no key, no checkpoint that
    names it, no successor that links to it."""
    raw = audit.raw_entries()
    c, mids = main_chain(raw)
    k = at(raw, c, mids[1])
    forged = set_field(raw[k][1], b"rid", b"forged-rid")
    forged = set_field(forged, b"hash", digest(forged))
    t = raw[:k] + [(raw[k][0], forged)] + raw[k:]
    rc, doc = verify(audit, copy(t), check=1)
    assert breaks(doc) == [("inserted", mids[1])]


def test_verify_swapped(audit, copy):
    raw = audit.raw_entries()
    c, mids = main_chain(raw)
    a = mids[1]
    t = list(raw)
    k1, k2 = at(raw, c, a), at(raw, c, a + 1)
    t[k1], t[k2] = t[k2], t[k1]
    rc, doc = verify(audit, copy(t), check=1)
    assert breaks(doc) == [("reordered", a + 1)]


def test_verify_tail_dropped(audit, copy):
    """The two entries a chain's last checkpoint signs are gone; the
    checkpoint stayed."""
    raw = audit.raw_entries()
    c, _ = main_chain(raw)
    cp = dict([f for _, f in raw if chain_of(f) == c][-1])
    assert cp[b"event"] == b"checkpoint"
    covers = int(cp[b"covers"])
    t = [(i, f) for i, f in raw
         if chain_of(f) != c or seq_of(f) not in (covers, covers - 1)]
    rc, doc = verify(audit, copy(t), check=1)
    assert breaks(doc) == [("truncated", covers + 1)]


def test_verify_wrong_key(audit, copy, tmp_path):
    _, other = S.make_audit_key(tmp_path)
    rc, doc = verify(audit, pubkey=other, check=1)
    kinds = {k for k, _ in breaks(doc)}
    assert kinds == {"bad_signature"}
    assert all(ch["checkpoints_verified"] == 0 for ch in doc["chains"])


def test_verify_duplicate_delivery_is_not_a_break(audit, copy):
    raw = audit.raw_entries()
    c, mids = main_chain(raw)
    k = at(raw, c, mids[0])
    # the retried XADD after a reconnect
    t = raw[:k + 1] + [raw[k]] + raw[k + 1:]
    rc, doc = verify(audit, copy(t), check=0)
    assert sum(ch["duplicates"] for ch in doc["chains"]) == 1
    assert doc["entries"] == len(raw)


def test_verify_text_names_the_break(audit, copy):
    raw = audit.raw_entries()
    c, mids = main_chain(raw)
    k = at(raw, c, mids[0])
    t = list(raw)
    t[k] = (t[k][0], set_field(t[k][1], b"gw", b"elsewhere"))
    p = run(audit, "verify", stream=copy(t), pubkey=audit.env.st.audit_pub,
            check=1)
    out = p.stdout.decode()
    assert "BROKEN" in out and "NOT INTACT" in out
    assert "modified" in out and f"seq {mids[0]}:" in out
