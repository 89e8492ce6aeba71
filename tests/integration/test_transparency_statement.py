"""What the enterprise can check (contract §7.3), end to end with a real
gateway, Redis and PostgreSQL 15: `credit-audit proof` (inclusion and
consistency, checked here by an independent implementation),
`credit-audit statement` and `credit-consent statement verify`, which
passes an honest statement and names each tampering: an entry removed,
one altered, one added from another enterprise, a row changed, a
checkpoint of a forked log, another key."""

import base64
import copy
import json

import pytest

from conftest import E1, E2, RECORDS, S
from shipkit import (Shipper, archive, gw, pg, stop_shippers,  # noqa: F401
                     tool)
from tlogkit import (LOG_NAME, MONTH, LogKey, b64, checkpoint_of, consent,  # noqa
                     fields_of, leaf_hash, logkey, mixed_traffic,
                     move_entries, open_checkpoint, proof_of, shipped,
                     verify_consistency, verify_inclusion)

# ---- proof ----------------------------------------------------------------

def test_proof_of_a_request(shipped):
    rid = shipped.archive.sql(
        "SELECT rid FROM credit_audit.entries WHERE event = 'decision' "
        "AND enterprise = %s ORDER BY ord LIMIT 1", (E1,))[0][0]
    r = tool("proof", "--archive", shipped.archive.conninfo("reader"),
             "--rid", rid, pgenv=shipped.archive.pg)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    origin, size, root = open_checkpoint(doc["log"]["checkpoint"], LOG_NAME,
                                         shipped.key.pub)
    assert (size, root) == checkpoint_of(doc)
    events = []
    for e in doc["entries"]:
        raw = b64(e["raw"])
        assert b64(e["leaf"]) == leaf_hash(raw)
        assert verify_inclusion(leaf_hash(raw), e["ord"], size,
                                [b64(h) for h in e["proof"]], root)
        assert e["fields"]["rid"] == rid
        events.append(e["fields"]["event"])
    assert events == ["decision", "outcome"]
    # the archive's own bytes
    assert [bytes(x) for (x,) in shipped.archive.sql(
        "SELECT raw FROM credit_audit.entries WHERE rid = %s ORDER BY ord",
        (rid,))] == [b64(e["raw"]) for e in doc["entries"]]
    r = tool("proof", "--archive", shipped.archive.conninfo("reader"),
             "--rid", "no-such-request", pgenv=shipped.archive.pg)
    assert r.returncode == 1 and "no archived entry" in r.stderr
    r = tool("proof", "--archive", shipped.archive.conninfo("reader"),
             pgenv=shipped.archive.pg)
    assert r.returncode == 2 and "--rid RID or --consistency" in r.stderr


def test_proof_refuses_a_log_changed_under_its_checkpoint(shipped):
    """A node rewritten in the archive (the owner disabled the trigger):
    the proof no longer holds against the signed root, and proof says so
    instead of handing it out."""
    rid = shipped.archive.sql(
        "SELECT rid FROM credit_audit.entries WHERE event = 'decision' "
        "ORDER BY ord LIMIT 1")[0][0]
    shipped.archive.sql(
        "ALTER TABLE credit_audit.merkle DISABLE TRIGGER append_only; "
        "UPDATE credit_audit.merkle SET hashes = overlay(hashes PLACING "
        "'\\xff'::bytea FROM 1) WHERE level = 0; "
        "ALTER TABLE credit_audit.merkle ENABLE TRIGGER append_only")
    r = tool("proof", "--archive", shipped.archive.conninfo("reader"),
             "--rid", rid, pgenv=shipped.archive.pg)
    assert r.returncode == 1 and "changed after it was signed" in r.stderr
    assert r.stdout == ""


def test_consistency_proof_between_checkpoints(shipped):
    first = (shipped.tmp / "latest.ckpt").read_text()
    _, m, r1 = open_checkpoint(first, LOG_NAME, shipped.key.pub)
    (shipped.tmp / "first.ckpt").write_text(first)
    mixed_traffic(shipped.env, shipped.gw)
    shipped.gw.wait_signed()
    second = shipped.ship()
    _, n, r2 = open_checkpoint(second, LOG_NAME, shipped.key.pub)
    assert n > m
    for old, new in ((str(m), str(n)), (str(shipped.tmp / "first.ckpt"),
                                        str(n))):
        r = tool("proof", "--archive", shipped.archive.conninfo("reader"),
                 "--consistency", old, new, pgenv=shipped.archive.pg)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert (doc["old"]["tree_size"], doc["new"]["tree_size"]) == (m, n)
        assert verify_consistency(m, n, r1, r2,
                                  [b64(h) for h in doc["proof"]])
    # a checkpoint of a forked log: same size, another root, signed
    fork = shipped.key.sign(f"{LOG_NAME}\n{m}\n"
                            f"{base64.b64encode(bytes(32)).decode()}\n")
    (shipped.tmp / "fork.ckpt").write_text(fork)
    r = tool("proof", "--archive", shipped.archive.conninfo("reader"),
             "--consistency", str(shipped.tmp / "fork.ckpt"), str(n),
             pgenv=shipped.archive.pg)
    assert r.returncode == 1 and "fork" in r.stderr
    r = tool("proof", "--archive", shipped.archive.conninfo("reader"),
             "--consistency", str(n), str(m), pgenv=shipped.archive.pg)
    assert r.returncode == 2 and "no larger than NEW" in r.stderr
    r = tool("proof", "--archive", shipped.archive.conninfo("reader"),
             "--consistency", "999999", str(n), pgenv=shipped.archive.pg)
    assert r.returncode == 2 and "no checkpoint of tree size" in r.stderr


# ---- statement and its verification ----------------------------------------

def test_statement_holds_the_enterprise_decisions_and_verifies(shipped):
    text = shipped.statement()
    for v in record_values(RECORDS[(E1, "tax")]):   # no field value
        assert v not in text, v
    doc = json.loads(text)
    assert doc["enterprise"] == E1 and doc["month"] == MONTH
    rows = doc["requests"]
    # an allowed request has its outcome; a refusal is its decision.  A
    # suspended bank is refused before the gateway reads whose record it
    # asked for: that decision names no enterprise, and is in no statement
    plan = [(s, b) for s, b in shipped.plan[E1] if b != "BANK009"]
    assert shipped.archive.sql(
        "SELECT enterprise, reason FROM credit_audit.entries WHERE bank = "
        "'BANK009'") == [("", "bank_suspended")]
    assert sorted((q["decision"], q["status"]) for q in rows) == sorted(
        ("allow", "200") if s == 200 else ("deny", None) for s, _ in plan)
    assert all(q["reason"] for q in rows if q["decision"] == "deny")
    assert {q["bank"] for q in rows} == {"BANK001", "BANK002"}
    assert all(q["purpose"] == "loan_application" for q in rows)
    assert doc["totals"]["requests"] == len(plan)
    assert doc["totals"]["by_decision"] == {
        "allow": sum(1 for s, _ in plan if s == 200),
        "deny": sum(1 for s, _ in plan if s != 200)}
    assert doc["totals"]["by_bank"] == {"BANK001": 3, "BANK002": 1}
    names = {q["bank"]: q["bank_name"] for q in rows}
    assert names["BANK001"] == "First Test Bank of Fujian"
    # only E1's decisions, each with its outcome; every entry proven
    size, root = checkpoint_of(doc)
    for e in doc["entries"]:
        raw = b64(e["raw"])
        assert verify_inclusion(leaf_hash(raw), e["ord"], size,
                                proof_of(doc, e), root)
        if fields_of(e)["event"] == "decision":
            assert fields_of(e)["enterprise"] == E1
    assert len(doc["entries"]) == len(rows) + sum(
        1 for q in rows if q["outcome_ord"] is not None)
    p = shipped.write(text)
    r = shipped.verify(p)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"OK: {len(rows)} requests of {E1}")
    # the key as a file with the verifier key, or as PEM
    kf = shipped.tmp / "log.vkey"
    kf.write_text(shipped.key.vkey + "\n")
    assert shipped.verify(p, key=str(kf)).returncode == 0
    assert shipped.verify(p, key=shipped.key.pub_pem).returncode == 0
    # E2's statement holds E2's, verified the same way
    doc2 = json.loads(shipped.statement(uscc=E2))
    assert len(doc2["requests"]) == len(shipped.plan[E2])
    assert shipped.verify(shipped.write(doc2, "e2.json")).returncode == 0


def record_values(obj):
    """The upstream record's values (its member names are field paths,
    which a statement shows)."""
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in record_values(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in record_values(x)]
    s = str(obj)
    return [s] if len(s) >= 5 and not S.uscc_valid(s) else []


def failures(r):
    assert r.returncode == 1, r.stdout + r.stderr
    return [l for l in r.stdout.splitlines() if l.startswith("FAIL: ")]


def test_verify_names_each_tampering(shipped):
    doc = json.loads(shipped.statement())

    # one request removed, with its entries, and the totals made to fit:
    # only the signature over the entries can tell
    d = copy.deepcopy(doc)
    q = d["requests"].pop(0)
    d["entries"] = [e for e in d["entries"]
                    if e["ord"] not in (q["decision_ord"], q["outcome_ord"])]
    d["totals"]["requests"] -= 1
    for k, col in (("by_bank", "bank"), ("by_purpose", "purpose"),
                   ("by_decision", "decision")):
        d["totals"][k][q[col]] -= 1
        if d["totals"][k][q[col]] == 0:
            del d["totals"][k][q[col]]
    f = failures(shipped.verify(shipped.write(d, "removed.json")))
    assert f == ["FAIL: the statement's signature does not cover what it "
                 "shows (an entry removed, added or changed, or another "
                 "period or enterprise, after it was signed)"], f

    # one entry removed alone: its request names what is not there
    d = copy.deepcopy(doc)
    i, gone = next((i, q["outcome_ord"]) for i, q in enumerate(
        d["requests"]) if q["outcome_ord"] is not None)
    d["entries"] = [e for e in d["entries"] if e["ord"] != gone]
    f = failures(shipped.verify(shipped.write(d, "removed1.json")))
    assert any(f"request {i + 1}: names entries the statement does not "
               "hold" in x for x in f), f
    assert any("signature does not cover" in x for x in f), f

    # one entry altered: a byte of its bank changed
    d = copy.deepcopy(doc)
    e = next(e for e in d["entries"] if fields_of(e)["event"] == "decision")
    raw = b64(e["raw"]).replace(b"BANK00", b"BANK07", 1)
    e["raw"] = base64.b64encode(raw).decode()
    f = failures(shipped.verify(shipped.write(d, "altered.json")))
    assert f"FAIL: entry {e['ord']}: its bytes do not hash to its leaf " \
        "(the entry was changed)" in f, f
    assert any(x.startswith(f"FAIL: entry {e['ord']}: its inclusion proof "
                            "does not hold") for x in f), f

    # a row that says other than its entry (refused shown as allowed)
    d = copy.deepcopy(doc)
    q = next(q for q in d["requests"] if q["decision"] == "deny")
    q["decision"] = "allow"
    f = failures(shipped.verify(shipped.write(d, "row.json")))
    assert any("its decision is not what its entry says (deny)" in x
               for x in f), f

    # one added from another enterprise: a real, proven E2 decision
    e2 = json.loads(shipped.statement(uscc=E2))
    d = copy.deepcopy(doc)
    q2 = e2["requests"][0]
    extra = [e for e in e2["entries"]
             if e["ord"] in (q2["decision_ord"], q2["outcome_ord"])]
    move_entries(e2, extra, d)
    d["requests"].append(q2)
    d["totals"]["requests"] += 1
    for k, col in (("by_bank", "bank"), ("by_purpose", "purpose"),
                   ("by_decision", "decision")):
        d["totals"][k][q2[col]] = d["totals"][k].get(q2[col], 0) + 1
    f = failures(shipped.verify(shipped.write(d, "added.json")))
    assert f"FAIL: entry {q2['decision_ord']}: a decision of another " \
        f"enterprise ({E2}), not {E1}'s" in f, f
    assert any("signature does not cover" in x for x in f), f

    # another key: nothing verifies
    other = LogKey(str(shipped.tmp / "other"), LOG_NAME) if (
        shipped.tmp / "other").mkdir() is None else None
    f = failures(shipped.verify(shipped.write(doc, "honest.json"),
                                key=other.vkey))
    assert f == ["FAIL: the checkpoint: not signed by the log key"], f


def test_verify_catches_a_forked_log(shipped):
    """The platform shows this enterprise another tree: a checkpoint of the
    same size with another root, signed with the log key."""
    doc = json.loads(shipped.statement())
    size, root = checkpoint_of(doc)
    p = shipped.write(doc)
    fork = shipped.key.sign(f"{LOG_NAME}\n{size}\n"
                            f"{base64.b64encode(bytes(32)).decode()}\n")
    fp = shipped.tmp / "fork.ckpt"
    fp.write_text(fork)
    honest = shipped.tmp / "latest.ckpt"
    assert shipped.verify(p, "--previous", str(honest)).returncode == 0
    f = failures(shipped.verify(p, "--previous", str(fp)))
    assert f == [f"FAIL: the statement's checkpoint and the previous one "
                 f"have the same tree size ({size}) and different roots: "
                 "the log forked"], f
    # and a statement whose checkpoint is the fork: nothing proves
    d = copy.deepcopy(doc)
    d["log"]["checkpoint"] = fork
    d["log"]["root"] = base64.b64encode(bytes(32)).decode()
    f = failures(shipped.verify(shipped.write(d, "forked.json"),
                                "--previous", str(honest)))
    assert any("inclusion proof does not hold" in x for x in f), f
    assert any("the log forked" in x for x in f), f
    # a checkpoint of another log signed with the same key
    d = copy.deepcopy(doc)
    d["log"]["checkpoint"] = shipped.key.sign(
        f"other.example.cn/log\n{size}\n{d['log']['root']}\n")
    f = failures(shipped.verify(shipped.write(d, "other-origin.json")))
    assert f[0] == (f"FAIL: the checkpoint is of log other.example.cn/log, "
                    f"not {LOG_NAME}"), f


def test_statement_extends_last_months_checkpoint(shipped):
    first = shipped.tmp / "first.ckpt"
    first.write_text((shipped.tmp / "latest.ckpt").read_text())
    mixed_traffic(shipped.env, shipped.gw)
    shipped.gw.wait_signed()
    shipped.ship()
    text = shipped.statement("--previous", str(first))
    p = shipped.write(text)
    r = shipped.verify(p, "--previous", str(first))
    assert r.returncode == 0, r.stdout
    assert "consistent with the previous checkpoint" in r.stdout
    doc = json.loads(text)
    m = open_checkpoint(first.read_text(), LOG_NAME, shipped.key.pub)[1]
    assert [c["tree_size"] for c in doc["consistency"]] == [m]
    # a previous checkpoint of a forked log, smaller: the proof fails
    fork = shipped.key.sign(f"{LOG_NAME}\n{m}\n"
                            f"{base64.b64encode(bytes(32)).decode()}\n")
    fp = shipped.tmp / "fork-old.ckpt"
    fp.write_text(fork)
    f = failures(shipped.verify(p, "--previous", str(fp)))
    assert f == [f"FAIL: the statement's checkpoint does not extend the "
                 f"previous one (tree size {m}): the log forked or was "
                 "rewritten"], f
    # a statement without the proof asked for
    f = failures(shipped.verify(shipped.write(shipped.statement(), "s2"),
                                "--previous", str(first)))
    assert any("no consistency proof from the previous checkpoint" in x
               for x in f), f
    # the maker refuses a previous checkpoint of another log
    r = tool("statement", "--archive", shipped.archive.conninfo("reader"),
             "--enterprise", E1, "--month", MONTH, "--tz", "UTC",
             "--log-key", shipped.key.pem, "--previous", str(fp),
             pgenv=shipped.archive.pg)
    assert r.returncode == 1 and "fork" in r.stderr


def test_statement_and_verify_usage(shipped):
    r = tool("statement", "--archive", shipped.archive.conninfo("reader"),
             "--enterprise", E1, "--month", MONTH, pgenv=shipped.archive.pg)
    assert r.returncode == 2 and "--log-key" in r.stderr
    r = tool("statement", "--archive", shipped.archive.conninfo("reader"),
             "--enterprise", "91350100M000100Y44", "--month", MONTH,
             "--log-key", shipped.key.pem, pgenv=shipped.archive.pg)
    assert r.returncode == 2 and "bad --enterprise" in r.stderr
    r = tool("statement", "--archive", shipped.archive.conninfo("reader"),
             "--enterprise", E1, "--month", MONTH, "--format", "pdf",
             "--log-key", shipped.key.pem, pgenv=shipped.archive.pg)
    assert r.returncode == 2 and "bad --format" in r.stderr
    r = tool("statement", "--archive", shipped.archive.conninfo("reader"),
             "--enterprise", E1, "--month", "2026-11-01", "--log-key",
             shipped.key.pem, pgenv=shipped.archive.pg)
    assert r.returncode == 2 and "bad --month" in r.stderr
    r = consent("statement", "verify", "x.json")
    assert r.returncode == 2 and "--log-key" in r.stderr
    r = consent("statement", "verify", "x.json", "--log-key", "nonsense")
    assert r.returncode == 2 and "not a verifier key" in r.stderr
    p = shipped.write("{not json", "bad.json")
    f = failures(shipped.verify(p))
    assert f[0].startswith(f"FAIL: {p}: not JSON"), f
