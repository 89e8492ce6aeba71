"""credit-audit (contract §9) against a real gateway's audit stream: tail,
query, export, report, and verify on the intact stream and on tampered
copies of it.

The gateway here is our own (on the session's files, Redis and upstream)
writing to its own stream, with checkpoints every 200 ms, so that other
tests' traffic cannot change what these tests count."""

import csv
import datetime
import io
import json
import os
import re
import shutil
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import E1, E2, ENV, PURPOSE, ROOT, TAX, S, xadd_entries

STREAM = "credit:audit:cli-" + uuid.uuid4().hex[:8]
TAX_E2 = f"/api/v1/enterprises/{E2}/tax"
TOOL = Path(os.environ.get("CREDIT_AUDIT_BIN")
            or Path(ROOT) / "build" / "bin" / "credit-audit")


# ------------------------------------------------------------------------
# Helpers

def digest(fields):
    """The entry hash of docs/audit-format.md: SHA-256 over u32be(len)
    name u32be(len) value for every field but `hash`, in stored order."""
    return S.entry_hash(fields).encode()


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
    pytest.fail(f"chains not all signed: {audit.entries()}")


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


def csv_form(v):
    """A value as the tools' CSV writer shows it (docs/audit-format.md §7):
    a line break as the two characters \\n, no formula."""
    out = "".join({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, c)
                  if c in "\n\r\t" or ord(c) >= 0x20 and ord(c) != 0x7f
                  else "\\x%02x" % ord(c) for c in v)
    if v[:1] in ("=", "+", "-", "@", "\t", "\r") \
            and not re.fullmatch(r"[-+]?[0-9]+(\.[0-9]+)?", v):
        out = "'" + out
    return out


def test_export_csv(audit):
    es = audit.final
    p = run(audit, "export", "--format", "csv", check=0)
    rows = list(csv.DictReader(io.StringIO(p.stdout.decode(),
                                           newline="")))
    assert len(rows) == len(es)
    # one record, one line: a checkpoint's heads hold line feeds
    assert len(p.stdout.decode().split("\r\n")) == len(es) + 2
    assert any("\n" in e.get("heads", "") for _, e in es)
    for row, (i, e) in zip(rows, es):
        assert row["id"] == i
        for k, v in e.items():
            assert row[k] == csv_form(v), (k, row)
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
    """XADDs entries [(id, [(name, value)])] into a fresh key (or appends
    them to name), in order, with new ids."""
    return xadd_entries(audit.raw,
                        name or f"{STREAM}:copy-{uuid.uuid4().hex[:6]}",
                        entries)


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


# ------------------------------------------------------------------------
# Errors that used to read as an empty, clean answer

def test_tail_of_a_missing_stream_is_an_error(audit):
    p = run(audit, "tail", stream=f"{STREAM}:nonexistent", check=2)
    assert b"does not exist" in p.stderr and p.stdout == b""


def test_unknown_reason_names_the_valid_ones(audit):
    p = run(audit, "query", "--reason", "token_expird", check=2)
    err = p.stderr.decode()
    assert "token_expird" in err
    assert "token_expired" in err and "bank_suspended" in err
    # a known reason still works
    assert jsonl(run(audit, "query", "--reason", "bank_suspended", "--json",
                     check=0))


def test_bad_time_says_what_would_be_right(audit):
    p = run(audit, "query", "--since", "2026-11-01T00:00:00+8", check=2)
    err = p.stderr.decode()
    assert "offset" in err and "2026-11-01T08:00:00.250+08:00" in err
    p = run(audit, "report", "--month", "2026-11-01", check=2)
    assert b"YYYY-MM" in p.stderr
    p = run(audit, "report", "--tz", "Mars/Olympus", check=2)
    assert b"Asia/Shanghai" in p.stderr


def test_version_everywhere():
    want = re.search(r'CA_VERSION "([^"]+)"',
                     (Path(ROOT) / "lib" / "core" / "version.h").read_text()).group(1)
    for tool, cmds in (("credit-audit", ["tail", "query", "verify", "export",
                                         "report", "archive", "ship",
                                         "findings"]),
                       ("credit-consent", ["keygen", "sign", "inspect",
                                           "revoke"]),
                       ("credit-policy", ["check", "explain", "diff"])):
        exe = str(Path(ROOT) / "build" / "bin" / tool)
        for argv in [[exe, "--version"]] + [[exe, c, "--version"]
                                            for c in cmds]:
            p = subprocess.run(argv, capture_output=True, text=True)
            assert p.returncode == 0, argv
            assert p.stdout == f"{tool} {want}\n", argv


# ------------------------------------------------------------------------
# Times: ISO 8601 with offsets, --tz, --month cut at the boundary

def ms(iso):
    return int(datetime.datetime.fromisoformat(iso).timestamp() * 1000)


@pytest.fixture
def boundary(audit):
    """Decisions one millisecond either side of November 2026 in Beijing
    (UTC+8): its first instant is 2026-10-31T16:00:00Z."""
    k = f"{STREAM}:month-{uuid.uuid4().hex[:6]}"
    times = {"oct-last": "2026-10-31T23:59:59.999+08:00",
             "nov-first": "2026-11-01T00:00:00+08:00",
             "nov-last": "2026-11-30T23:59:59.999+08:00",
             "dec-first": "2026-12-01T00:00:00+08:00"}
    for rid, t in times.items():
        audit.raw.xadd(k, {"v": "1", "event": "decision", "ts": str(ms(t)),
                           "rid": rid, "bank": "BANK001", "category": "tax",
                           "enterprise": E1, "mode": "query",
                           "detail": "masked", "decision": "allow",
                           "reason": "", "policy": "p1 00"})
    yield k
    audit.raw.delete(k)


def rids(p):
    return [e["rid"] for e in jsonl(p)]


def test_month_cut_in_plus_8(audit, boundary):
    for tz in ("Asia/Shanghai", "+08:00"):
        rep = json.loads(run(audit, "report", "--json", "--month", "2026-11",
                             "--tz", tz, stream=boundary, check=0).stdout)
        assert rep["decisions"] == 2, tz
        assert rep["since"] == "2026-11-01T00:00:00+08:00"
        assert rep["until"] == "2026-12-01T00:00:00+08:00"
        assert rids(run(audit, "query", "--json", "--month", "2026-11",
                        "--tz", tz, stream=boundary, check=0)) == \
            ["nov-first", "nov-last"]
    # the same month in UTC holds different entries (Beijing's first
    # instant of November is still October in UTC)
    assert rids(run(audit, "query", "--json", "--month", "2026-11", "--tz",
                    "UTC", stream=boundary, check=0)) == \
        ["nov-last", "dec-first"]
    # --month with --since is ambiguous
    run(audit, "query", "--month", "2026-11", "--since", "2026-11-02",
        stream=boundary, check=2)
    # explicit offsets and fractions, whatever --tz says
    assert rids(run(audit, "export", "--since", "2026-10-31T16:00:00Z",
                    "--until", "2026-11-30T23:59:59.999+08:00", "--tz",
                    "America/New_York", stream=boundary, check=0)) == \
        ["nov-first"]
    assert rids(run(audit, "export", "--since",
                    "2026-10-31T23:59:59.999+08:00", "--until",
                    "2026-11-01T00:00:00.001+08:00", stream=boundary,
                    check=0)) == ["oct-last", "nov-first"]
    # a date is that day's first instant in --tz
    assert rids(run(audit, "export", "--since", "2026-12-01", "--tz",
                    "Asia/Shanghai", stream=boundary, check=0)) == \
        ["dec-first"]


def test_times_shown_in_tz(audit, boundary):
    got = jsonl(run(audit, "query", "--json", "--tz", "Asia/Shanghai",
                    stream=boundary, check=0))
    assert [g["time"] for g in got] == [
        "2026-10-31T23:59:59.999+08:00", "2026-11-01T00:00:00+08:00",
        "2026-11-30T23:59:59.999+08:00", "2026-12-01T00:00:00+08:00"]
    text = run(audit, "tail", "-n", "1", "--tz", "UTC", stream=boundary,
               check=0).stdout.decode()
    assert "(2026-11-30T16:00:00Z)" in text
    rows = list(csv.DictReader(io.StringIO(run(
        audit, "export", "--format", "csv", "--tz", "+08:00",
        stream=boundary, check=0).stdout.decode(), newline="")))
    assert rows[1]["time"] == "2026-11-01T00:00:00+08:00"
    assert list(rows[1]).index("time") == list(rows[1]).index("ts") + 1


# ------------------------------------------------------------------------
# The work report (工作通报)

def expected_figures(audit):
    ds = [e for _, e in audit.final if e["event"] == "decision"]
    allows = [d for d in ds if d["decision"] == "allow"]
    denies = [d for d in ds if d["decision"] == "deny"]
    refusals = {}
    for d in denies:
        refusals[(d["bank"], d["reason"])] = \
            refusals.get((d["bank"], d["reason"]), 0) + 1
    cats = {}
    for d in allows:
        c = cats.setdefault(d["category"], [0, 0])
        c[d["mode"] == "verify"] += 1
    return dict(decisions=len(ds), allows=allows, denies=denies,
                enterprises={d["enterprise"] for d in allows},
                banks={d["bank"] for d in allows}, refusals=refusals,
                cats=cats, policies={d["policy"] for d in ds})


def test_report_json_has_every_figure(audit):
    want = expected_figures(audit)
    rep = json.loads(run(audit, "report", "--format", "json", "--banks",
                         audit.env.st.banks_path, pubkey=audit.env.st.audit_pub,
                         check=0).stdout)
    assert rep["enterprises_served"] == len(want["enterprises"]) == 2
    assert {b["bank"] for b in rep["banks_served"]} == want["banks"] \
        == {"BANK001", "BANK002"}
    b1 = next(b for b in rep["banks_served"] if b["bank"] == "BANK001")
    assert b1["allowed"] == 4 and b1["refused"] == 1 \
        and b1["enterprises"] == 2
    admitted = {b["bank"]: b["suspended"] for b in rep["banks_admitted"]}
    assert admitted["BANK001"] is False and admitted["BANK009"] is True
    assert {(r["bank"], r["reason"]): r["count"]
            for r in rep["refusals"]} == want["refusals"]
    assert rep["refusals_total"] == len(want["denies"]) == 3
    for c in rep["categories"]:
        q, v = want["cats"].get(c["category"], [0, 0])
        assert (c["queries"], c["verifications"]) == (q, v), c
    assert {p["policy"] for p in rep["policies"]} == want["policies"]
    assert sum(p["decisions"] for p in rep["policies"]) == want["decisions"]
    assert rep["raw_disclosures_total"] == 0
    assert rep["integrity"]["checked"] is True
    assert rep["integrity"]["intact"] is True
    assert rep["integrity"]["entries"] == len(audit.final)
    # without a key the report says the trail was not checked
    rep = json.loads(run(audit, "report", "--format", "json",
                         check=0).stdout)
    assert rep["integrity"]["checked"] is False


def test_report_integrity_of_a_tampered_copy(audit, copy):
    raw = audit.raw_entries()
    c, mids = main_chain(raw)
    k = at(raw, c, mids[0])
    t = list(raw)
    t[k] = (t[k][0], set_field(t[k][1], b"gw", b"elsewhere"))
    rep = json.loads(run(audit, "report", "--format", "json",
                         stream=copy(t), pubkey=audit.env.st.audit_pub,
                         check=0).stdout)
    assert rep["integrity"]["intact"] is False
    assert rep["integrity"]["breaks"] >= 1


def test_report_md_and_csv(audit):
    want = expected_figures(audit)
    md = run(audit, "report", "--format", "md", "--banks",
             audit.env.st.banks_path, pubkey=audit.env.st.audit_pub,
             check=0).stdout.decode()
    for heading in ("征信平台工作通报", "一、准入银行 Banks admitted",
                    "二、服务银行 Banks served",
                    "四、各类信息查询与核验 Queries and verifications",
                    "五、各用途查询情况 Requests per purpose",
                    "七、拒绝情况", "八、在用策略版本",
                    "九、审计链完整性"):
        assert heading in md, heading
    assert "| 服务企业 Enterprises served | 2 |" in md
    assert "| BANK009 | token_missing" not in md
    # with --banks, a bank's name beside its code
    assert "| First Test Bank of Fujian (BANK001) | 4 | 1 | 2 |" in md
    assert "结论 Result: **完整 intact**" in md
    rows = list(csv.DictReader(io.StringIO(run(
        audit, "report", "--format", "csv", check=0).stdout.decode(),
        newline="")))
    got = {(r["item"], r["detail"]): int(r["count"]) for r in rows
           if r["section"] == "refusal"}
    assert got == want["refusals"]
    assert next(int(r["count"]) for r in rows
                if r["section"] == "enterprises_served") == 2


CHROMIUM = shutil.which("chromium")


def chromium(*args, tmp):
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'profile'}", "--window-size=1000,2400",
         *args], capture_output=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None,
                    reason="chromium not installed (make deps installs it)")
def test_report_html_renders_in_chromium(audit, tmp_path):
    want = expected_figures(audit)
    page = tmp_path / "report.html"
    run(audit, "report", "--format", "html", "--out", str(page), "--banks",
        audit.env.st.banks_path, pubkey=audit.env.st.audit_pub, check=0)
    html = page.read_text()
    # one self-contained file: nothing to fetch
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:|//)', html)
    assert "<svg" in html
    p = chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout.decode()
    # the browser parsed the figures into the document
    assert re.search(r'data-figure="enterprises_served"[^>]*>2<', dom)
    assert re.search(r'data-figure="refusals_total"[^>]*>3<', dom)
    assert re.search(r'data-figure="decisions"[^>]*>%d<'
                     % want["decisions"], dom)
    assert dom.count('class="chart"') == 3
    assert "完整 intact" in dom and "征信平台工作通报" in dom
    shot = tmp_path / "report.png"
    p = chromium(f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    # width and height from the IHDR chunk
    assert struct.unpack(">II", data[16:24]) == (1000, 2400)


# ------------------------------------------------------------------------
# verify with several keys

def test_verify_with_a_keyring(audit, tmp_path):
    _, other = S.make_audit_key(tmp_path)
    ring = tmp_path / "ring.pem"
    ring.write_text(Path(other).read_text()
                    + Path(audit.env.st.audit_pub).read_text())
    p = run(audit, "verify", "--json", "--keyring", str(ring), check=0)
    doc = json.loads(p.stdout)
    assert doc["intact"] is True
    assert all(ch["key"] == f"{ring}#2" for ch in doc["chains"])
    # the same as two --pubkey
    p = run(audit, "verify", "--json", "--pubkey", str(other),
            pubkey=audit.env.st.audit_pub, check=0)
    assert all(ch["key"] == str(audit.env.st.audit_pub)
               for ch in json.loads(p.stdout)["chains"])
    # a keyring without the gateway's key proves nothing
    run(audit, "verify", "--keyring", str(other), check=1)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    p = run(audit, "verify", "--keyring", str(bad), check=2)
    assert b"BEGIN PUBLIC KEY" in p.stderr


# ------------------------------------------------------------------------
# A production Redis: password, ACL user, database

PASSWORD = "s3cret-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def locked(audit, tmp_path_factory):
    """A Redis with requirepass and an ACL user; the audit stream copied
    into database 3 with its ids."""
    r = S.Redis(tmp_path_factory.mktemp("locked"), password=PASSWORD,
                users=[("auditor", "auditor-pw")]).start()
    try:
        c = r.client(decode_responses=False, db=3)
        for i, fields in audit.raw_entries():
            args = []
            for k, v in fields:
                args += [k, v]
            c.execute_command("XADD", STREAM, i, *args)
        yield r
    finally:
        r.stop()


def locked_run(audit, locked, *args, env=None, check=None):
    argv = [str(TOOL), *args, "--redis", locked.address, "--stream", STREAM]
    p = subprocess.run(argv, capture_output=True, timeout=60,
                       env={**os.environ, **(env or {})})
    if check is not None:
        assert p.returncode == check, (argv, p.stdout, p.stderr)
    return p


def test_password_protected_redis_every_command(audit, locked, tmp_path):
    pub = str(audit.env.st.audit_pub)
    pwfile = tmp_path / "pw"
    pwfile.write_text(PASSWORD + "\n")
    cmds = [["tail", "-n", "2"], ["query", "--bank", "BANK001"],
            ["verify", "--pubkey", pub], ["export"], ["report"],
            ["report", "--format", "md", "--pubkey", pub]]
    for cmd in cmds:
        # no password: the server's refusal, rc 2
        p = locked_run(audit, locked, *cmd, "--db", "3", check=2)
        assert b"NOAUTH" in p.stderr or b"AUTH" in p.stderr, cmd
        # the environment
        p = locked_run(audit, locked, *cmd, "--db", "3",
                       env={"CREDIT_REDIS_PASSWORD": PASSWORD}, check=0)
        assert p.stdout, cmd
        # a file
        locked_run(audit, locked, *cmd, "--db", "3", "--password-file",
                   str(pwfile), check=0)
        # an ACL user
        upw = tmp_path / "upw"
        upw.write_text("auditor-pw")
        locked_run(audit, locked, *cmd, "--db", "3", "--user", "auditor",
                   "--password-file", str(upw), check=0)
        # database 0 has no such stream
        p = locked_run(audit, locked, *cmd, env={
            "CREDIT_REDIS_PASSWORD": PASSWORD}, check=2)
        assert b"does not exist" in p.stderr, cmd
    # the figures are the same as on the gateway's own Redis
    got = json.loads(locked_run(audit, locked, "report", "--json", "--db",
                                "3", env={"CREDIT_REDIS_PASSWORD": PASSWORD},
                                check=0).stdout)
    assert got["decisions"] == 8
    # wrong password, user without password, password on the command line
    p = locked_run(audit, locked, "tail", env={
        "CREDIT_REDIS_PASSWORD": "wrong"}, check=2)
    assert b"AUTH" in p.stderr
    p = locked_run(audit, locked, "tail", "--user", "auditor", check=2)
    assert b"needs a password" in p.stderr
    p = locked_run(audit, locked, "tail", "--password", PASSWORD, check=2)
    assert b"--password-file" in p.stderr
    assert PASSWORD.encode() not in p.stderr
    p = locked_run(audit, locked, "tail", "--db", "x", check=2)
    assert b"bad --db" in p.stderr
    p = locked_run(audit, locked, "tail", "--password-file",
                   str(tmp_path / "missing"), check=2)
    assert b"missing" in p.stderr


def test_revoke_on_a_password_protected_redis(audit, locked, tmp_path):
    consent = Path(ROOT) / "build" / "bin" / "credit-consent"
    priv, _ = audit.env.key("e1-es256")
    c = S.claims(E1, "BANK001")
    tok = tmp_path / "token"
    tok.write_text(S.mint_token(priv, "ES256", "e1-es256", c) + "\n")
    argv = [str(consent), "revoke", "--token", str(tok), "--redis",
            locked.address, "--db", "2"]
    p = subprocess.run(argv, capture_output=True)
    assert p.returncode == 2 and b"AUTH" in p.stderr
    p = subprocess.run(argv, capture_output=True, env={
        **os.environ, "CREDIT_REDIS_PASSWORD": PASSWORD})
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().startswith(f"revoked {c['jti']} of {E1} "
                                        "until ")
    r = locked.client(db=2)
    key = f"credit:revoked:{E1}:{c['jti']}"
    assert r.get(key) == "1"
    # the revocation lasts as long as the token could be used
    assert abs(int(r.execute_command("EXPIRETIME", key)) - c["exp"]) <= 1
    # an explicit --until wins over the token's exp
    until = c["exp"] + 86400
    p = subprocess.run(argv + ["--until", str(until)], capture_output=True,
                       env={**os.environ, "CREDIT_REDIS_PASSWORD": PASSWORD})
    assert p.returncode == 0, p.stderr
    assert int(r.execute_command("EXPIRETIME", key)) == until
    # --jti and --token together, or neither: which one is said
    p = subprocess.run([str(consent), "revoke", "--redis", locked.address],
                       capture_output=True)
    assert p.returncode == 2 and b"--jti ID or --token FILE" in p.stderr


# ------------------------------------------------------------------------
# verify --resume: only what is new is read

def resume(audit, stream, state, check=None):
    p = run(audit, "verify", "--json", "--resume", str(state), stream=stream,
            pubkey=audit.env.st.audit_pub, check=check)
    return json.loads(p.stdout)


def test_verify_resumes_from_its_anchors(audit, copy, tmp_path):
    raw = audit.raw_entries()
    c, mids = main_chain(raw)
    # the first part: up to the main chain's first checkpoint, and a bit
    first_cp = next(k for k, (_, f) in enumerate(raw)
                    if chain_of(f) == c and dict(f)[b"event"] == b"checkpoint")
    cut = first_cp + 2
    k = copy(raw[:cut])
    state = tmp_path / "state.json"
    doc = resume(audit, k, state, check=0)
    assert doc["intact"] and doc["entries"] == cut
    st = json.loads(state.read_text())
    assert st["stream"] == k and c.decode() in st["chains"]
    # nothing new: nothing read, still intact
    doc = resume(audit, k, state, check=0)
    assert doc["intact"]
    assert doc["entries"] < cut
    # the rest arrives; only the rest (and unsigned tails) is read
    copy_stream(audit, raw[cut:], name=k)
    doc = resume(audit, k, state, check=0)
    assert doc["intact"] is True and doc["breaks"] == 0, doc
    assert doc["entries"] < len(raw)
    assert doc["skipped"] + doc["entries"] >= len(raw) - cut
    # a full verify agrees
    verify(audit, stream=k, check=0)
    # now every chain ends signed: the next run reads nothing old
    doc = resume(audit, k, state, check=0)
    assert doc["entries"] == 0 and doc["intact"]


def test_resumed_verify_still_finds_breaks(audit, copy, tmp_path):
    raw = audit.raw_entries()
    c, mids = main_chain(raw)
    first_cp = next(k for k, (_, f) in enumerate(raw)
                    if chain_of(f) == c and dict(f)[b"event"] == b"checkpoint")
    cp_seq = seq_of(raw[first_cp][1])
    head = raw[:first_cp + 1]
    rest = raw[first_cp + 1:]
    ok_state = tmp_path / "ok.json"
    k = copy(head)
    resume(audit, k, ok_state, check=0)
    saved = ok_state.read_text()

    def appended(entries):
        dst = copy(head)
        copy_stream(audit, entries, name=dst)
        st = tmp_path / f"st-{uuid.uuid4().hex[:6]}.json"
        st.write_text(saved.replace(json.dumps(k), json.dumps(dst)))
        return dst, st

    # the entry right after the anchor deleted
    gone = [(i, f) for i, f in rest
            if not (chain_of(f) == c and seq_of(f) == cp_seq + 1)]
    dst, st = appended(gone)
    doc = resume(audit, dst, st, check=1)
    assert ("deleted", cp_seq + 2) in breaks(doc)
    assert st.read_text() == saved.replace(json.dumps(k), json.dumps(dst))
    # a later entry modified
    j = next(n for n, (_, f) in enumerate(rest)
             if chain_of(f) == c and seq_of(f) == cp_seq + 2)
    bad = list(rest)
    bad[j] = (bad[j][0], set_field(bad[j][1], b"gw", b"elsewhere"))
    dst, st = appended(bad)
    doc = resume(audit, dst, st, check=1)
    assert ("modified", cp_seq + 2) in breaks(doc)
    # the anchor itself replaced by another entry with its seq
    j = next(n for n, (_, f) in enumerate(rest)
             if chain_of(f) == c and seq_of(f) == cp_seq + 1)
    forged = list(rest)
    forged[j] = (forged[j][0], set_field(forged[j][1], b"prev", b"0" * 64))
    dst, st = appended(forged)
    doc = resume(audit, dst, st, check=1)
    assert ("modified", cp_seq + 1) in breaks(doc) or any(
        "anchor" in b["detail"] for b in doc["anchor_breaks"])
    # the stream's anchor is not what was verified before (here: the
    # state says another hash)
    dst, st = appended(rest)
    doc = json.loads(st.read_text())
    doc["chains"][c.decode()]["hash"] = "ab" * 32
    st.write_text(json.dumps(doc))
    doc = resume(audit, dst, st, check=1)
    assert [b["chain"] for b in doc["anchor_breaks"]] == [c.decode()]
    assert "verified before" in doc["anchor_breaks"][0]["detail"]
    # a state file for another stream is refused
    p = run(audit, "verify", "--resume", str(ok_state), stream=dst,
            pubkey=audit.env.st.audit_pub, check=2)
    assert b"written for stream" in p.stderr


def test_verify_shows_progress_on_a_terminal(audit):
    """Progress goes to stderr only when it is a terminal."""
    import pty
    master, slave = pty.openpty()
    try:
        p = subprocess.run([str(TOOL), "verify", "--redis", audit.redis_addr,
                            "--stream", STREAM, "--pubkey",
                            str(audit.env.st.audit_pub)],
                           stdout=subprocess.PIPE, stderr=slave, timeout=60)
        os.close(slave)
        slave = None
        got = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert p.returncode == 0
    n = len(audit.final)
    assert f"{n} of {n} entries read".encode() in got
    # not on a pipe
    p = run(audit, "verify", pubkey=audit.env.st.audit_pub, check=0)
    assert b"entries read" not in p.stderr
