"""Compatibility is the point (contract §7.3): a checkpoint, inclusion proofs
and a consistency proof made here verify with an independent
implementation — Go's own golang.org/x/mod/sumdb/note and sumdb/tlog as
Debian ships them (golang-golang-x-mod-dev), built offline into a small
checker (tests/interop/tlogcheck) with our verifier key in note's vkey
format; and a tampered proof fails there too."""

import base64
import json
import os
import shutil
import subprocess

import pytest

from conftest import E1, ROOT
from shipkit import archive, gw, pg, stop_shippers, tool  # noqa: F401
from tlogkit import logkey, mixed_traffic, shipped  # noqa: F401

GOSRC = "/usr/share/gocode/src/golang.org/x/mod/sumdb"


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory):
    go = shutil.which("go")
    assert go and os.path.isdir(GOSRC), \
        "needs golang-go and golang-golang-x-mod-dev (make deps)"
    d = tmp_path_factory.mktemp("go")
    env = {"PATH": os.environ["PATH"], "HOME": str(d),
           "GO111MODULE": "off", "GOPATH": "/usr/share/gocode",
           "GOPROXY": "off", "GOFLAGS": "", "GOCACHE": str(d / "cache"),
           "CGO_ENABLED": "0"}
    out = d / "tlogcheck"
    r = subprocess.run([go, "build", "-o", str(out), str(
        ROOT / "tests" / "interop" / "tlogcheck" / "main.go")],
        capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def check(tlogcheck, what, vkey, doc, path):
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return subprocess.run([str(tlogcheck), what, vkey, str(path)],
                          capture_output=True, text=True, timeout=60)


def flip(h):
    b = bytearray(base64.b64decode(h))
    b[0] ^= 1
    return base64.b64encode(bytes(b)).decode()


def test_go_verifies_our_checkpoints_and_proofs(shipped, tlogcheck):
    key, tmp, a = shipped.key, shipped.tmp, shipped.archive
    rid = a.sql("SELECT rid FROM credit_audit.entries WHERE event = "
                "'decision' AND enterprise = %s ORDER BY ord DESC LIMIT 1",
                (E1,))[0][0]
    r = tool("proof", "--archive", a.conninfo("reader"), "--rid", rid,
             pgenv=a.pg)
    assert r.returncode == 0, r.stderr
    proof = json.loads(r.stdout)
    r = check(tlogcheck, "entries", key.vkey, proof, tmp / "rid.json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK: checkpoint ")
    # a whole statement: every entry, and its signed summary
    stmt = shipped.statement()
    r = check(tlogcheck, "entries", key.vkey, stmt, tmp / "stmt.json")
    assert r.returncode == 0, r.stderr
    # the same proofs tampered with: Go refuses them too
    bad = json.loads(json.dumps(proof))
    bad["entries"][0]["proof"][0] = flip(bad["entries"][0]["proof"][0])
    r = check(tlogcheck, "entries", key.vkey, bad, tmp / "bad.json")
    assert r.returncode == 1 and "entry" in r.stderr
    bad = json.loads(json.dumps(proof))
    bad["log"]["checkpoint"] = bad["log"]["checkpoint"].replace(
        "\n", "\n1", 1)
    r = check(tlogcheck, "entries", key.vkey, bad, tmp / "bad2.json")
    assert r.returncode == 1 and "checkpoint" in r.stderr

    # consistency: two checkpoints of the growing log
    first = proof["log"]["tree_size"]
    mixed_traffic(shipped.env, shipped.gw)
    shipped.gw.wait_signed()
    shipped.ship()
    n = a.sql("SELECT max(size) FROM credit_audit.checkpoints")[0][0]
    assert n > first
    sizes = [s for (s,) in a.sql("SELECT size FROM credit_audit.checkpoints "
                                 "ORDER BY size")]
    for old in sizes[:-1]:
        r = tool("proof", "--archive", a.conninfo("reader"),
                 "--consistency", str(old), str(n), pgenv=a.pg)
        assert r.returncode == 0, r.stderr
        cons = json.loads(r.stdout)
        r = check(tlogcheck, "consistency", key.vkey, cons,
                  tmp / f"cons{old}.json")
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"OK: tree {n} extends tree {old}\n"
        if cons["proof"]:
            cons["proof"][-1] = flip(cons["proof"][-1])
            r = check(tlogcheck, "consistency", key.vkey, cons,
                      tmp / "badcons.json")
            assert r.returncode == 1 and "consistency" in r.stderr
