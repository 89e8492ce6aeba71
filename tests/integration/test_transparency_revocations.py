"""The withdrawals of an enterprise's consents in its access statement
(contract §7.3, docs/transparency.md "The statement"): the `revocation`
entries the gateways wrote that month are shown and proven like its
decisions, and `credit-consent statement verify` checks them the same
way (one removed, one added from another enterprise, a row changed, an
entry left out of the rows: each caught).  And a statement of another
format version is refused, saying so.  Real gateways (one taking the
withdrawals at its endpoint, signed with the enterprises' keys), Redis,
PostgreSQL 15."""

import copy
import json
import re

import pytest

from conftest import E1, E2
from shipkit import archive, gw, pg, stop_shippers  # noqa: F401
from tlogkit import (Shipped, Withdrawals, b64, checkpoint_of, fields_of,
                     leaf_hash, logkey, move_entries, proof_of,  # noqa: F401
                     verify_inclusion)


@pytest.fixture
def withdrawn(env, gw, archive, tmp_path, logkey):  # noqa: F811
    """E1 withdraws two consents, E2 one, beside mixed traffic; shipped."""
    wd = Withdrawals(env, gw)
    try:
        answers = [wd.withdraw("stmt-wd-1"), wd.withdraw("stmt-wd-2"),
                   wd.withdraw("stmt-wd-3", uscc=E2)]
        shipped = Shipped(env, gw, archive, tmp_path, logkey)
    finally:
        wd.stop()
    assert [a["enterprise"] for a in answers] == [E1, E1, E2]
    return shipped


def failures(r):
    assert r.returncode == 1, r.stdout + r.stderr
    return [x for x in r.stdout.splitlines() if x.startswith("FAIL: ")]


def test_statement_shows_and_proves_the_withdrawals(withdrawn):
    doc = json.loads(withdrawn.statement())
    trail = withdrawn.archive.sql(
        "SELECT ord, consent, revoked_by FROM credit_audit.entries WHERE "
        "event = 'revocation' AND enterprise = %s ORDER BY ord", (E1,))
    assert len(trail) == 2
    assert [(v["ord"], v["consent"], v["by"]) for v in
            doc["revocations"]] == [tuple(x) for x in trail]
    assert all(v["gw"] == "gw-withdraw" and v["time"]
               for v in doc["revocations"])
    assert doc["totals"]["revocations"] == 2
    # each one's entry is there, proven, E1's
    size, root = checkpoint_of(doc)
    byord = {e["ord"]: e for e in doc["entries"]}
    for v in doc["revocations"]:
        e = byord[v["ord"]]
        assert verify_inclusion(leaf_hash(b64(e["raw"])), e["ord"], size,
                                proof_of(doc, e), root)
        f = fields_of(e)
        assert (f["event"], f["enterprise"], f["consent"]) == (
            "revocation", E1, v["consent"])
    r = withdrawn.verify(withdrawn.write(doc))
    assert r.returncode == 0, r.stdout + r.stderr
    # E2's is in E2's statement only
    doc2 = json.loads(withdrawn.statement(uscc=E2))
    assert [v["by"] for v in doc2["revocations"]] == ["enterprise"]
    assert withdrawn.verify(withdrawn.write(doc2, "e2.json")).returncode == 0
    # and on the page
    html = withdrawn.statement(fmt="html")
    assert re.search(r'id="total-revocations"[^>]*>2<', html)
    assert html.count('<tr class="revocation"') == 2
    assert "撤回授权" in html and "Consents withdrawn" in html


def test_verify_names_each_tampering_with_the_withdrawals(withdrawn):
    doc = json.loads(withdrawn.statement())
    e2 = json.loads(withdrawn.statement(uscc=E2))
    first = doc["revocations"][0]["ord"]

    # one removed, its entry with it and the total made to fit: only the
    # signature over the entries can tell
    d = copy.deepcopy(doc)
    d["revocations"].pop(0)
    d["entries"] = [e for e in d["entries"] if e["ord"] != first]
    d["totals"]["revocations"] -= 1
    f = failures(withdrawn.verify(withdrawn.write(d, "removed.json")))
    assert f == ["FAIL: the statement's signature does not cover what it "
                 "shows (an entry removed, added or changed, or another "
                 "period or enterprise, after it was signed)"], f

    # its row removed, the entry kept
    d = copy.deepcopy(doc)
    d["revocations"].pop(0)
    d["totals"]["revocations"] -= 1
    f = failures(withdrawn.verify(withdrawn.write(d, "norow.json")))
    assert f == [f"FAIL: entry {first}: a revocation in no row of the "
                 "statement"], f

    # its entry removed, the row kept
    d = copy.deepcopy(doc)
    d["entries"] = [e for e in d["entries"] if e["ord"] != first]
    f = failures(withdrawn.verify(withdrawn.write(d, "noentry.json")))
    assert "FAIL: revocation 1: names an entry the statement does not " \
        "hold, or holds for another row" in f, f

    # one added from another enterprise: E2's genuine, proven withdrawal
    d = copy.deepcopy(doc)
    v2 = e2["revocations"][0]
    move_entries(e2, [e for e in e2["entries"] if e["ord"] == v2["ord"]], d)
    d["revocations"].append(v2)
    d["totals"]["revocations"] += 1
    f = failures(withdrawn.verify(withdrawn.write(d, "added.json")))
    assert f"FAIL: entry {v2['ord']}: a revocation of another enterprise " \
        f"({E2}), not {E1}'s" in f, f
    assert not any("inclusion proof" in x for x in f), f
    assert any("signature does not cover" in x for x in f), f

    # a row that says other than its entry
    d = copy.deepcopy(doc)
    d["revocations"][1]["by"] = "platform"
    f = failures(withdrawn.verify(withdrawn.write(d, "row.json")))
    assert f == ["FAIL: revocation 2 (entry %d): its by is not what its "
                 "entry says (enterprise)" % d["revocations"][1]["ord"]], f

    # the total
    d = copy.deepcopy(doc)
    d["totals"]["revocations"] = 0
    f = failures(withdrawn.verify(withdrawn.write(d, "total.json")))
    assert f == ["FAIL: totals: the revocations are not the 2 listed"], f


def test_verify_refuses_another_format_version(withdrawn):
    doc = json.loads(withdrawn.statement())
    assert doc["version"] == 2
    assert doc["statement"] == "credit-auth access statement v2"
    for version, said in ((1, "1"), (3, "3"), (None, "1 (none given)"),
                          ("2", "not a number")):
        d = copy.deepcopy(doc)
        if version is None:
            del d["version"]
        else:
            d["version"] = version
        p = withdrawn.write(d, "v.json")
        f = failures(withdrawn.verify(p))
        assert f == [f"FAIL: {p}: statement format version {said}: this "
                     "credit-consent reads version 2 (use the "
                     "credit-consent of the release that made it)"], f
    # a node table that is not one
    d = copy.deepcopy(doc)
    d["nodes"][0] = "AAAA"
    f = failures(withdrawn.verify(withdrawn.write(d, "nodes.json")))
    assert f == ["FAIL: proof node 0: not a base64 SHA-256 hash"], f
    # a proof pointing past the table
    d = copy.deepcopy(doc)
    d["entries"][0]["proof"][0] = len(d["nodes"])
    f = failures(withdrawn.verify(withdrawn.write(d, "past.json")))
    assert f == [f"FAIL: entry {d['entries'][0]['ord']}: no inclusion "
                 "proof"], f
