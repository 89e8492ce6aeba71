"""First end-to-end tests: an allowed query, every basic refusal with its
audit entry, the plain-HTTP (RFC 9440) listener, and "must not start"
configurations."""

import copy
import json
import re
import sys
import time
import uuid

import pytest
import requests

from conftest import (E1, E2, ENV, PURPOSE, RECORDS, TAX, S, no_upstream_bytes,
                      problem)


# ------------------------------------------------------------------------
# An allowed query

def test_allowed_get_is_filtered_and_audited(env):
    c = S.claims(E1, "BANK001")
    priv, jwk = env.key("e1-es256")
    tok = S.mint_token(priv, "ES256", "e1-es256", c)
    r = env.get(TAX, token=tok)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers.get("X-Request-Id")
    assert r.headers.get("X-Credit-Disclosure") == "masked"
    assert "ETag" not in r.headers
    assert "Last-Modified" not in r.headers

    doc = r.json()
    up = RECORDS[(E1, "tax")]
    assert set(doc) <= {"uscc", "name", "credit_rating", "annual",
                        "legal_representative"}, doc
    assert "internal_notes" not in doc
    assert doc["uscc"] == E1 and doc["name"] == up["name"]
    assert doc["credit_rating"] == "A"
    assert [a["year"] for a in doc["annual"]] == [2023, 2022]
    for a in doc["annual"]:
        assert set(a) <= {"year", "tax_paid"}, a
        # bucket:100000 -> a range, never the figure itself
        assert isinstance(a["tax_paid"], str) and re.fullmatch(
            r"\d+(\.\d+)?-\d+(\.\d+)?", a["tax_paid"]), a
    lr = doc["legal_representative"]
    assert set(lr) <= {"name", "id_number"}, lr
    assert lr["id_number"] == "110101********1234"
    assert lr["name"] == "张**"
    body = r.text
    for secret in ("internal_notes", "UPSTREAM-INTERNAL-NOTE", "filing_ref",
                   "13812345678", "110101199003071234", "1234567.89"):
        assert secret not in body, secret

    e = env.decision(r)
    assert e["event"] == "decision"
    assert e["decision"] == "allow"
    assert e["rid"] == r.headers["X-Request-Id"]
    assert e["bank"] == "BANK001"
    assert e["enterprise"] == E1
    assert e["purpose"] == PURPOSE
    assert e["category"] == "tax"
    assert e["consent"] == c["jti"]
    assert env.st.policy_sha256 in e["policy"]
    assert e["method"] == "GET"
    assert e["path"] == TAX
    for f in ("v", "ts", "gw", "chain", "seq", "prev", "hash"):
        assert f in e, (f, e)
    # never in the audit: the token or a field value
    flat = json.dumps(e, ensure_ascii=False)
    assert tok not in flat and tok.split(".")[2] not in flat
    assert "110101199003071234" not in flat


def test_request_id_is_echoed(env):
    rid = "test-rid-" + uuid.uuid4().hex[:12]
    r = env.get(TAX, headers={"X-Request-Id": rid})
    assert r.status_code == 200, r.text
    assert r.headers["X-Request-Id"] == rid
    assert env.decision(r)["rid"] == rid


def test_status_endpoint(env):
    r = requests.get(env.gw.url("/credit-auth/status"),
                     cert=(env.certs["BANK001"].cert,
                           env.certs["BANK001"].key),
                     verify=env.pki.server_ca_path, timeout=10)
    assert r.status_code == 200, r.text
    assert isinstance(r.json(), dict)


# ------------------------------------------------------------------------
# Refusals: each is problem+json and leaves one deny decision entry

def _expired(env):
    now = int(time.time())
    return dict(token=env.token(iat=now - 7200, exp=now - 3600))


def _wrong_signature(env):
    # right kid and claims, signed by another P-256 key
    return dict(token=env.token(kid="e1-es256",
                                priv=S.generate_key("ES256")))


REFUSALS = {
    "bank_unknown": (403, lambda env: dict(bank="UNREGISTERED")),
    "bank_suspended": (403, lambda env: dict(
        bank="BANK009", token=env.token(bank="BANK009"))),
    "token_missing": (401, lambda env: dict(token=None)),
    "token_malformed": (401, lambda env: dict(token="garbage.not-a-jws")),
    "signature_invalid": (401, _wrong_signature),
    "kid_unknown": (401, lambda env: dict(token=env.token(
        kid="no-such-kid", alg="ES256"))),
    "token_expired": (401, _expired),
    "audience_mismatch": (403, lambda env: dict(
        token=env.token(bank="BANK002"))),
    "subject_mismatch": (403, lambda env: dict(
        path=f"/api/v1/enterprises/{E2}/tax")),
    "purpose_missing": (400, lambda env: dict(purpose=None)),
    "purpose_not_allowed": (403, lambda env: dict(
        purpose="credit_assessment")),
    "category_not_consented": (403, lambda env: dict(path=ENV)),
    "route_not_in_policy": (403, lambda env: dict(
        path=f"/api/v1/enterprises/{E1}/secret_files")),
    "request_invalid": (400, lambda env: dict(
        path=f"/api/v1/enterprises/{S.bad_uscc(E1)}/tax")),
}


@pytest.mark.parametrize("reason", sorted(REFUSALS))
def test_refusal(env, reason):
    status, make = REFUSALS[reason]
    r = env.get(**{"path": TAX, **make(env)})
    problem(r, status, reason)
    e = env.decision(r)
    assert e["decision"] == "deny", e
    assert e["reason"] == reason, e
    assert e["rid"] == r.headers["X-Request-Id"]


def test_garbage_bearer_values(env):
    for tok in ("a.b.c", "e30.e30.", "x" * 5000, "eyJhbGciOiJub25lIn0.e30."):
        r = env.get(TAX, token=tok)
        assert r.status_code == 401, (tok[:40], r.text)
        no_upstream_bytes(r.text)


@pytest.mark.parametrize("who", ["none", "untrusted"])
def test_tls_without_a_trusted_client_cert_is_refused(env, who):
    """ssl_verify_client on: nginx itself refuses (handshake failure, or its
    400 'No required SSL certificate' / 'SSL certificate error' page);
    the module never runs and nothing from upstream is sent."""
    cert = None if who == "none" else env.certs["UNTRUSTED"]
    try:
        r = env.get(TAX, cert=cert)
    except (requests.exceptions.SSLError,
            requests.exceptions.ConnectionError):
        return
    assert r.status_code in (400, 495, 496), r.text
    no_upstream_bytes(r.text)


def test_bank_purpose_narrowing(env):
    tok = env.token(bank="BANK002",
                    purposes=["loan_application", "credit_assessment"])
    r = env.get(TAX, bank="BANK002", token=tok, purpose="loan_application")
    problem(r, 403, "purpose_not_allowed")
    r = env.get(TAX, bank="BANK002", token=tok, purpose="credit_assessment")
    assert r.status_code == 200, r.text
    assert env.decision(r)["bank"] == "BANK002"


# ------------------------------------------------------------------------
# Plain-HTTP listener: certificate from the RFC 9440 Client-Cert header

def test_plain_listener_with_client_cert_header(env):
    r = env.get(TAX, plain=True)
    assert r.status_code == 200, r.text
    assert r.json()["legal_representative"]["id_number"] == \
        "110101********1234"
    e = env.decision(r)
    assert e["decision"] == "allow" and e["bank"] == "BANK001"


def test_plain_listener_without_client_cert_header(env):
    r = env.get(TAX, plain=True, client_cert_header=None)
    problem(r, 403, "bank_unknown")
    assert env.decision(r)["reason"] == "bank_unknown"


# ------------------------------------------------------------------------
# Must not start

def test_good_configuration_passes_nginx_t(make_gateway):
    rc, out = make_gateway().test()
    assert rc == 0, out


def _bad_policy(conf_dir, name, text):
    p = conf_dir / name
    p.write_text(text)
    return p


def _mentions(out, *words):
    for w in words:
        assert re.search(w, out, re.I), f"{w!r} not in nginx -t output:\n{out}"


def test_missing_policy_file(make_gateway, conf_dir):
    missing = conf_dir / "no-such-policy.json"
    rc, out = make_gateway(policy=missing).test()
    assert rc != 0, out
    _mentions(out, re.escape(str(missing)))


def test_policy_invalid_json(make_gateway, conf_dir):
    p = _bad_policy(conf_dir, "broken.json", '{"version": "x", "purposes": [')
    rc, out = make_gateway(policy=p).test()
    assert rc != 0, out
    _mentions(out, re.escape(str(p)))


def test_policy_unknown_category_member(make_gateway, conf_dir):
    pol = copy.deepcopy(S.TEST_POLICY)
    pol["categories"]["tax"]["colour"] = "blue"
    p = S.write_json(conf_dir / "unknown-member.json", pol)
    rc, out = make_gateway(policy=p).test()
    assert rc != 0, out
    _mentions(out, re.escape(str(p)), r"categories\W+tax\W+colour", "unknown")


def test_banks_bad_status(make_gateway, conf_dir, stack):
    banks = json.loads(stack.banks_path.read_text())
    banks["banks"][0]["status"] = "frozen"
    p = S.write_json(conf_dir / "banks-bad-status.json", banks)
    rc, out = make_gateway(banks=p).test()
    assert rc != 0, out
    _mentions(out, re.escape(str(p)), r"banks\W+0\W+status|status")


def test_jwks_duplicate_kid(make_gateway, conf_dir, stack):
    jwks = json.loads(stack.keys_path.read_text())
    dup = copy.deepcopy(jwks["keys"][0])
    _, other = S.make_enterprise_key(E1, "ES256", kid=dup["kid"])
    jwks["keys"].append(other)
    p = S.write_json(conf_dir / "dup-kid.jwks", jwks)
    rc, out = make_gateway(keys=p).test()
    assert rc != 0, out
    _mentions(out, re.escape(str(p)), "duplicate", r"keys\W+\d+")


# ------------------------------------------------------------------------
# Audit trail basics: the outcome entry, clean entries, the hash chain

DISCLOSED = {"uscc", "name", "credit_rating", "annual[].year",
             "annual[].tax_paid", "legal_representative.name",
             "legal_representative.id_number"}
MASKED = {"annual[].tax_paid", "legal_representative.name",
          "legal_representative.id_number"}
# personal and secret values of the upstream records (never audited)
VALUES = {"张三丰", "110101199003071234", "13812345678", "1234567.89",
          "UPSTREAM-INTERNAL-NOTE", "FR-2023-SECRET-88812"}


def test_outcome_entry(env):
    r = env.get(TAX)
    assert r.status_code == 200, r.text
    rid = r.headers["X-Request-Id"]
    found = env.audit_for(rid, "outcome")
    assert len(found) == 1, found
    o = found[0]
    assert o["status"] == "200"
    assert int(o["bytes"]) == len(r.content), (o["bytes"], len(r.content))
    assert set(o["disclosed"].split(",")) == DISCLOSED, o["disclosed"]
    assert set(o["masked"].split(",")) == MASKED, o["masked"]
    assert int(o["withheld"]) >= 1, o
    assert int(o["upstream_ms"]) >= 0


def test_audit_entries_are_clean(env):
    """Valid UTF-8 and no field value in any entry (contract §7)."""
    env.get(TAX)
    env.get(TAX, purpose="credit_assessment")
    time.sleep(0.3)
    for i, fields in env.raw_audit_entries():
        for k, v in fields.items():
            try:
                k.decode("utf-8")
                s = v.decode("utf-8")
            except UnicodeDecodeError:
                pytest.fail(f"entry {i}: field {k!r} is not UTF-8: {v!r}")
            for val in VALUES:
                assert val not in s, f"entry {i}: {k!r} holds a value: {s!r}"


def _canonical(fields):
    out = b""
    for k, v in fields:
        out += len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v
    return out


def test_audit_hash_chain(env):
    """hash = SHA-256 over u32be(len) name u32be(len) value of every other
    field in order; prev = the previous entry's hash in the same chain;
    seq counts up by one."""
    import hashlib
    env.get(TAX)
    time.sleep(0.3)
    heads = {}
    for i, fields in env.raw_audit_entries():
        items = list(fields.items())
        assert items[-1][0] == b"hash", (i, items[-1])
        digest = hashlib.sha256(_canonical(items[:-1])).hexdigest()
        assert items[-1][1].decode() == digest, f"entry {i}: bad hash"
        chain = fields[b"chain"].decode()
        seq = int(fields[b"seq"])
        prev = fields[b"prev"].decode()
        if chain in heads:
            last_seq, last_hash = heads[chain]
            assert seq == last_seq + 1, (i, chain, seq, last_seq)
            assert prev == last_hash, (i, chain)
        else:
            assert seq == 1 and prev == "0" * 64, (i, chain, seq, prev)
        heads[chain] = (seq, digest)


# ------------------------------------------------------------------------
# `make run` works: the demo's own --check runs its printed curl commands

def test_demo_check(env):
    import subprocess
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp(prefix="demo-", dir=env.st.dir))
    r = subprocess.run([sys.executable, str(S.ROOT / "scripts" / "demo.py"),
                        "--check", "--dir", str(d)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "allowed request: 200" in r.stdout
    assert "refused request: 403" in r.stdout
    # the enterprise's key is read from the key registry alone (issue 21),
    # and the printed withdrawal takes the consent back
    conf = (d / "gateway" / "nginx.conf").read_text()
    assert "credit_auth_key_registry on;" in conf
    assert "credit_auth_keys " not in conf
    assert "credit_auth_revocation_endpoint" in conf
    assert "withdrawal: withdrawn: consent" in r.stdout, r.stdout
    assert "then 403 consent_revoked" in r.stdout
