"""Nothing silently dropped (contract §7.1, issue 10, docs/audit-format.md §3,
§4): a gateway's v2 checkpoints list the heads of its other chains, so
`credit-audit verify` on its own (no anchor) finds a lane chain XDEL'ed
whole, a lane's end cut with its last checkpoint, and chain 0's end cut
with its last checkpoint while lanes checkpointed after it; an untouched
stream stays intact, and a v1 stream (the docs' worked example) still
verifies as before.

One gateway, one worker, its own stream, checkpoints every 200 ms;
concurrent allows so that the worker uses several lanes.  The tampering
is done on copies of the stream."""

import json
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT, xadd_entries

STREAM = "credit:audit:heads-" + uuid.uuid4().hex[:8]
TOOL = Path(os.environ.get("CREDIT_AUDIT_BIN")
            or Path(ROOT) / "build" / "bin" / "credit-audit")

# docs/audit-format.md §5 as a gateway of schema 1 (v 1) wrote it: RFC 8032
# test key 1 (the document now shows the same entries in schema 2)
DOC_PUB = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=
-----END PUBLIC KEY-----
"""
H1 = "87832cb4ab297cf094342167f1f7b9900ae00054d8a140e6649b3cb6edad4585"
DOC_DECISION = [
    ("v", "1"), ("event", "decision"), ("ts", "1795800000123"),
    ("gw", "gw-1"), ("rid", "5f1c2a"), ("bank", "BANK001"), ("cert", ""),
    ("ip", "10.0.0.7"), ("method", "GET"),
    ("path", "/api/v1/enterprises/91350100M000100Y43/tax"),
    ("category", "tax"), ("enterprise", "91350100M000100Y43"),
    ("purpose", "loan_application"), ("consent", ""), ("mode", "query"),
    ("detail", "masked"), ("decision", "deny"), ("reason", "token_missing"),
    ("policy", "2026-11-27.1 ba4459ca47bff03dc292cf6b637c9674578f89b0a627a4"
               "c6b270db18516afa82"),
    ("chain", "gw-1/4242/1795800000000/0"), ("seq", "1"), ("prev", "0" * 64),
    ("hash", H1)]
DOC_CP_HEAD = [("v", "1"), ("event", "checkpoint"), ("ts", "1795800001000"),
               ("gw", "gw-1"), ("covers", "1"), ("head", H1)]
DOC_CP_TAIL = [("chain", "gw-1/4242/1795800000000/0"), ("seq", "2"),
               ("prev", H1)]
DOC_V1 = DOC_CP_HEAD + [
    ("sig", "KZiCrYxGTvghf6rVch6SpdLaqwMoNxc7z3sFLvMnyrjDlkh9xuOD1XeeTSt1Hy"
            "xTK42XfetR3ltbEyIkAK8vAQ")] + DOC_CP_TAIL + [
    ("hash", "70a7d7a85660024937111036cbc4a1517aad9cb09e040a90579c692ae7e2b"
             "483")]
DOC_V2 = DOC_CP_HEAD + [
    ("heads", "1 7 49066a6284ed439b1bba58094e6c6b3e3cc91dc0c4b480e730dfb7c28"
              "d6c8d23\n"),
    ("sig", "6F9qrxqq9psoPJlrNFbofSC82jT1LnkhsYmtf2nPRxoQ0t1V1OqV3IaHQCIXvU"
            "jYr03OcTxg4_fcjvPzoGh1AQ")] + DOC_CP_TAIL + [
    ("hash", "8a842d18ee40d9dbbcd2fc8adbd4b403446b9bbf565d5e19a8e113df43a34"
             "d79")]


def fields(e):
    return {k.decode(): v.decode() for k, v in e[1]}


class Written:
    """The stream our gateway wrote, and copies of it to tamper with."""

    def __init__(self, env):
        self.env = env
        self.raw = env.st.redis.client(decode_responses=False)
        self.addr = env.st.redis.directive_value()
        self.made = []

    def entries(self, key=STREAM):
        return [(i, list(f.items())) for i, f in self.raw.xrange(key)]

    def copy(self, entries, key=None):
        dst = xadd_entries(self.raw,
                           key or f"{STREAM}:copy-{uuid.uuid4().hex[:6]}",
                           entries)
        if dst not in self.made:
            self.made.append(dst)
        return dst

    def verify(self, key, *extra, pub=None, text=False):
        argv = [str(TOOL), "verify", "--redis", self.addr, "--stream", key,
                "--pubkey", str(pub or self.env.st.audit_pub), *extra]
        if not text:
            argv.append("--json")
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert p.returncode in (0, 1), (p.returncode, p.stdout, p.stderr)
        return p.returncode, (p.stdout if text else json.loads(p.stdout))


def traffic(env, n):
    """n allowed requests at once (each its own lane while in flight),
    and a refusal (chain 0)."""
    with ThreadPoolExecutor(max_workers=n) as ex:
        codes = list(ex.map(lambda _: env.get().status_code, range(n)))
    assert codes == [200] * n, codes
    assert env.get(token=None).status_code == 401


@pytest.fixture(scope="module")
def written(env):
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not built (make tools)", pytrace=False)
    gw = env.st.make_gateway(
        stream=STREAM, gateway_id="gw-heads", workers=1,
        audit_key=f"{env.st.audit_key} interval=200ms")
    gw.start()
    w = Written(env)
    saved = env.gw
    env.gw = gw
    try:
        for _ in range(4):
            traffic(env, 6)
            time.sleep(0.5)     # checkpoints between the rounds
    finally:
        env.gw = saved
        gw.stop()               # every chain's final checkpoint, listed
    w.final = w.entries()
    yield w
    for k in w.made + [STREAM]:
        w.raw.delete(k)


def chains(entries):
    out = {}
    for i, f in entries:
        d = dict(f)
        out.setdefault(d[b"chain"].decode(), []).append((i, fields((i, f))))
    return out


def lanes(entries):
    """Lane chains, the one with the most entries first."""
    cs = chains(entries)
    ls = [c for c in cs if not c.endswith("/0")]
    assert ls, "no lane chain: no allow decision was written"
    return sorted(ls, key=lambda c: -len(cs[c]))


def zero(entries):
    return next(c for c in chains(entries) if c.endswith("/0"))


def listed(entries, chain, by):
    """Seqs of `chain` that checkpoints of chain `by` list."""
    lane = chain.rsplit("/", 1)[1]
    out = []
    for _, f in chains(entries)[by]:
        for line in f.get("heads", "").splitlines():
            l, seq, _ = line.split(" ")
            if l == lane:
                out.append(int(seq))
    return out


def without(entries, pred):
    return [(i, f) for i, f in entries if not pred(fields((i, f)))]


def breaks(doc):
    return [(c["chain"], b["kind"], b["seq"], b["detail"])
            for c in doc["chains"] for b in c["breaks"]]


def test_untouched_stream_is_intact_and_lists_every_head(written):
    es = written.final
    cs = chains(es)
    z = zero(es)
    assert len(lanes(es)) >= 2, list(cs)
    for c, items in cs.items():
        assert items[-1][1]["event"] == "checkpoint", c
        # every v2: chain 0 lists lanes, lanes list chain 0's checkpoints
        for _, f in items:
            if f["event"] == "checkpoint":
                assert "heads" in f, f
        if c != z:
            # the lane's final checkpoint is listed by chain 0
            assert int(items[-1][1]["seq"]) in listed(es, c, z), c
            for seq in listed(es, z, c):
                assert cs[z][seq - 1][1]["event"] == "checkpoint"
    rc, doc = written.verify(STREAM)
    assert rc == 0 and doc["intact"] is True, breaks(doc)
    assert doc["heads_missing"] == 0
    assert doc["heads_checked"] >= len(cs)
    rc, out = written.verify(STREAM, text=True)
    assert rc == 0 and "0 missing" in out, out


def test_whole_lane_chain_xdeled_is_a_break(written):
    es = written.final
    lane = lanes(es)[0]
    k = written.copy(es)
    ids = [i for i, f in written.entries(k)
           if dict(f)[b"chain"].decode() == lane]
    assert written.raw.xdel(k, *ids) == len(ids)
    rc, doc = written.verify(k)
    assert rc == 1 and doc["intact"] is False
    got = breaks(doc)
    assert [(c, kind) for c, kind, _, _ in got] == [(lane, "deleted")], got
    assert "the stream holds none" in got[0][3]
    assert doc["heads_missing"] >= 1
    rc, out = written.verify(k, text=True)
    assert rc == 1 and lane in out and "NOT INTACT" in out, out


def test_lane_tail_cut_with_its_last_checkpoint_is_a_break(written):
    es = written.final
    lane = lanes(es)[0]
    last = int(chains(es)[lane][-1][1]["seq"])
    # its final checkpoint and the decision it signed
    k = written.copy(without(es, lambda f: f["chain"] == lane
                             and int(f["seq"]) >= last - 1))
    rc, doc = written.verify(k)
    assert rc == 1
    got = breaks(doc)
    assert [(c, kind) for c, kind, _, _ in got] == [(lane, "deleted")], got
    assert got[0][2] == last
    assert f"the stream ends it at {last - 2}" in got[0][3], got


def test_chain0_tail_cut_while_lanes_checkpoint_after_is_a_break(written):
    es = written.final
    z = zero(es)
    # the latest chain-0 checkpoint a lane's checkpoint lists
    top = max(s for c in lanes(es) for s in listed(es, z, c))
    k = written.copy(without(es, lambda f: f["chain"] == z
                             and int(f["seq"]) >= top))
    rc, doc = written.verify(k)
    assert rc == 1
    got = breaks(doc)
    assert [(c, kind) for c, kind, _, _ in got] == [(z, "deleted")], got
    assert got[0][2] == top
    assert f"lists chain {z} at seq {top}; the stream ends it at " \
           f"{top - 1}" in got[0][3], got


def sid(x):
    """A stream id as a tuple; "(id" (exclusive) sorts just after id."""
    x = x.decode() if isinstance(x, bytes) else x
    ms, n = x.lstrip("(").split("-")
    return int(ms), int(n), x.startswith("(")


def test_resume_counts_heads_below_its_anchors_as_present(written, tmp_path):
    """A resumed run reads a chain-0 checkpoint listing a lane checkpoint
    that the earlier run verified and does not read again: present (the
    anchor), not deleted."""
    es = written.final
    z = zero(es)
    for n, (_, f) in enumerate(es):
        f = fields((None, f))
        if f["chain"] == z or f["event"] != "checkpoint" \
                or int(f["seq"]) not in listed(es, f["chain"], z):
            continue
        # the stream up to this lane checkpoint, verified and anchored
        state = tmp_path / f"resume-{n}.json"
        k = written.copy(es[:n + 1])
        rc, doc = written.verify(k, "--resume", str(state))
        assert rc == 0, breaks(doc)
        cp_id = written.entries(k)[n][0]
        if sid(json.loads(state.read_text())["resume_from"]) <= sid(cp_id):
            continue            # it would be read again: not the case
        written.copy(es[n + 1:], key=k)
        rc, doc = written.verify(k, "--resume", str(state))
        assert rc == 0, (breaks(doc), doc.get("anchor_breaks"))
        assert doc["heads_checked"] > 0 and doc["heads_missing"] == 0
        return
    pytest.fail("no lane checkpoint that a resumed run does not read again")


def test_v1_stream_still_verifies(written, tmp_path):
    """The docs' worked example as schema 1 stored it: the v1 checkpoint
    verifies as before; its v2 form lists a lane head the stream does not
    hold."""
    pub = tmp_path / "doc.pub.pem"
    pub.write_text(DOC_PUB)
    enc = [(None, [(k.encode(), v.encode()) for k, v in DOC_DECISION]),
           (None, [(k.encode(), v.encode()) for k, v in DOC_V1])]
    k = written.copy(enc)
    rc, doc = written.verify(k, pub=pub)
    assert rc == 0 and doc["intact"] is True, breaks(doc)
    assert doc["heads_checked"] == 0
    (c,) = doc["chains"]
    assert c["checkpoints_verified"] == 1 and c["last_signed_seq"] == 1

    enc[1] = (None, [(k_.encode(), v.encode()) for k_, v in DOC_V2])
    k = written.copy(enc)
    rc, doc = written.verify(k, pub=pub)
    assert rc == 1
    assert breaks(doc) == [(
        "gw-1/4242/1795800000000/1", "deleted", 7,
        "checkpoint gw-1/4242/1795800000000/0#2 lists chain "
        "gw-1/4242/1795800000000/1 at seq 7; the stream holds none")]
    assert [c["checkpoints_verified"] for c in doc["chains"]] == [1, 0]
