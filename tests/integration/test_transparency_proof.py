"""`credit-audit proof --rid` returns a request's entries in archive order
(contract §7.3, docs/transparency.md "Proofs"): a bank may choose its
request id (X-Request-Id), so one rid can name entries far apart in the
archive, and their order is the archive's, not their ords' text."""

import json

import requests

from conftest import E1, PURPOSE
from shipkit import archive, gw, pg, stop_shippers, tool  # noqa: F401
from tlogkit import logkey, shipped  # noqa: F401


def test_proof_orders_a_reused_rid_by_archive_order(shipped):
    a = shipped.archive
    # an early request's id (a one-digit ord), reused by the bank after
    # the archive passed ten entries
    ord0, rid = a.sql("SELECT ord, rid FROM credit_audit.entries WHERE "
                      "event = 'decision' AND enterprise = %s AND ord "
                      "BETWEEN 2 AND 9 ORDER BY ord LIMIT 1", (E1,))[0]
    env, g = shipped.env, shipped.gw
    cert = env.certs["BANK001"]
    r = requests.get(
        g.gw.url(f"/api/v1/enterprises/{E1}/tax"),
        headers={"X-Credit-Purpose": PURPOSE, "X-Request-Id": rid,
                 "Authorization": "Bearer " + env.token(uscc=E1,
                                                        bank="BANK001")},
        cert=(cert.cert, cert.key), verify=env.pki.server_ca_path,
        timeout=10)
    assert r.status_code == 200 and r.headers["X-Request-Id"] == rid
    g.wait_signed()
    shipped.ship()
    ords = [o for (o,) in a.sql("SELECT ord FROM credit_audit.entries "
                                "WHERE rid = %s ORDER BY ord", (rid,))]
    assert ords[0] == ord0 and ords[-1] >= 10, ords
    p = tool("proof", "--archive", a.conninfo("reader"), "--rid", rid,
             pgenv=a.pg)
    assert p.returncode == 0, p.stderr
    assert [e["ord"] for e in json.loads(p.stdout)["entries"]] == ords


def test_proof_of_many_rids_answers_each_line_against_one_checkpoint(shipped):
    """`--rid -`: ids on standard input, one JSON line each, in the order
    asked, all against the same checkpoint, the same proofs as one by one;
    an id not archived gets its line and exit 1; an over-long line is a
    usage error (2), not a truncated id proven."""
    a = shipped.archive
    rids = [rid for (rid,) in a.sql(
        "SELECT rid FROM credit_audit.entries WHERE event = 'decision' "
        "AND rid IS NOT NULL ORDER BY ord LIMIT 3")]
    assert len(rids) == 3
    ci = a.conninfo("reader")
    one = {rid: json.loads(tool("proof", "--archive", ci, "--rid", rid,
                                pgenv=a.pg).stdout) for rid in rids}
    r = tool("proof", "--archive", ci, "--rid", "-", pgenv=a.pg,
             input="\n".join(rids) + "\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3
    docs = [json.loads(x) for x in lines]
    assert [d["rid"] for d in docs] == rids
    assert len({json.dumps(d["log"], sort_keys=True) for d in docs}) == 1
    for d in docs:
        assert d == one[d["rid"]] and d["unproven"] == 0

    r = tool("proof", "--archive", ci, "--rid", "-", pgenv=a.pg,
             input=f"{rids[0]}\r\n\nno-such-request\n{rids[1]}")
    assert r.returncode == 1
    docs = [json.loads(x) for x in r.stdout.splitlines()]
    assert [d["rid"] for d in docs] == [rids[0], "no-such-request", rids[1]]
    assert docs[1]["entries"] == [] and docs[1]["error"]
    assert "no archived entry of request no-such-request" in r.stderr

    r = tool("proof", "--archive", ci, "--rid", "-", pgenv=a.pg,
             input=rids[0] + "\n" + "x" * 65 + "\n")
    assert r.returncode == 2 and "longer than 64 bytes" in r.stderr
    assert len(r.stdout.splitlines()) == 1
