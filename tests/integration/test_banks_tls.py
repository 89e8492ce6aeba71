"""Banks and TLS (contract §2, §5): the bank is the verified client
certificate; an RFC 9440 Client-Cert header counts only where
credit_auth_client_cert is configured (the plain listener here), and a
malformed one identifies nobody; suspended banks, purpose narrowing, and a
bank registered with two certificates."""

import base64
import json

import pytest

from conftest import E1, PURPOSE, TAX, S, problem

VERIFY_BODY = {"checks": [{"field": "credit_rating", "op": "eq",
                           "value": "A"}]}


def via(env, gw, method="GET", **kw):
    saved = env.gw
    env.gw = gw
    try:
        return env.request(method, **kw)
    finally:
        env.gw = saved


def refused(env, r, status, reason):
    doc = problem(r, status, reason)
    e = env.decision(r)
    assert e["decision"] == "deny" and e["reason"] == reason, e
    return doc, e


def forged(env, bank):
    return {"Client-Cert": S.client_cert_header(env.certs[bank].cert)}


# ------------------------------------------------------------------------
# RFC 9440 Client-Cert is off by default: identity from TLS only

def test_tls_listener_ignores_forged_client_cert_header(env):
    """BANK001 presents its own certificate over TLS and a Client-Cert
    header with BANK002's: the gateway must still see BANK001."""
    r = env.get(TAX, bank="BANK001", headers=forged(env, "BANK002"))
    assert r.status_code == 200, r.text
    assert env.decision(r)["bank"] == "BANK001"


def test_tls_forged_header_cannot_borrow_another_banks_consent(env):
    """A token for BANK002, presented by BANK001 over TLS with BANK002's
    certificate in Client-Cert: audience_mismatch (identity is BANK001)."""
    tok = env.token(bank="BANK002", purposes=["credit_assessment"])
    r = env.get(TAX, bank="BANK001", token=tok, purpose="credit_assessment",
                headers=forged(env, "BANK002"))
    _, e = refused(env, r, 403, "audience_mismatch")
    assert e["bank"] == "BANK001", e


def test_tls_forged_header_does_not_identify_unregistered_cert(env):
    r = env.get(TAX, bank="UNREGISTERED", token=env.token(),
                headers=forged(env, "BANK001"))
    refused(env, r, 403, "bank_unknown")


def test_tls_forged_header_does_not_lift_suspension(env):
    r = env.get(TAX, bank="BANK009", token=env.token(bank="BANK009"),
                headers=forged(env, "BANK001"))
    refused(env, r, 403, "bank_suspended")


def test_tls_cnf_is_checked_against_tls_cert_not_header(env):
    """cnf bound to BANK001's certificate; BANK001 over TLS with a
    Client-Cert of BANK002 still matches (the header is not consulted)."""
    mine = S.x5t_s256(env.certs["BANK001"].cert)
    r = env.get(TAX, token=env.token(cnf={"x5t#S256": mine}),
                headers=forged(env, "BANK002"))
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------------
# Plain listener (credit_auth_client_cert $http_client_cert): malformed
# values identify nobody

def _der(env, bank="BANK001"):
    return S.cert_der(env.certs[bank].cert)


def _malformed_values(env):
    der = _der(env)
    b = base64.b64encode(der).decode()
    return {
        "no colons": b,
        "leading colon only": ":" + b,
        "trailing colon only": b + ":",
        "empty": "::",
        "one colon": ":",
        "bad base64 chars": ":" + b[:40] + "!!!" + b[43:] + ":",
        "url-safe alphabet": ":" + b.replace("+", "-").replace("/", "_")
                             + ":" if ("+" in b or "/" in b) else
                             ":" + b[:-4] + "-_-_" + ":",
        "base64 length 4n+1": ":" + b.rstrip("=") + "AAAAA" + ":",
        "not DER": ":" + base64.b64encode(b"hello, I am a bank").decode()
                   + ":",
        "DER truncated": ":" + base64.b64encode(der[:-10]).decode() + ":",
        "DER with trailing bytes": ":" + base64.b64encode(der + b"\x00\x00")
                                   .decode() + ":",
        "PEM body": ":" + base64.b64encode(
            open(env.certs["BANK001"].cert, "rb").read()).decode() + ":",
        "data after padding": ":" + b + ("" if b.endswith("=") else "=")
                              + "AAAA:",
        "two certificates": ":" + b + ":, :" + b + ":",
        "whitespace inside": ":" + b[:40] + " " + b[40:] + ":",
    }


def test_plain_listener_malformed_client_cert(env):
    # control: the well-formed value works
    r = env.get(TAX, plain=True)
    assert r.status_code == 200, r.text
    failures = []
    for name, value in _malformed_values(env).items():
        r = env.get(TAX, plain=True, client_cert_header=value)
        try:
            refused(env, r, 403, "bank_unknown")
        except AssertionError as e:
            failures.append(f"{name}: {str(e).splitlines()[0][:300]}")
    assert not failures, "\n".join(failures)


def test_plain_listener_unregistered_and_untrusted_certs(env):
    """The header carries no trust of its own: a certificate that is not in
    the registry identifies nobody, whoever issued it."""
    for who in ("UNREGISTERED", "UNTRUSTED"):
        r = env.get(TAX, plain=True, cert=env.certs[who])
        refused(env, r, 403, "bank_unknown")


def test_plain_listener_suspended_bank(env):
    r = env.get(TAX, plain=True, bank="BANK009",
                token=env.token(bank="BANK009"))
    _, e = refused(env, r, 403, "bank_suspended")
    assert e["bank"] == "BANK009", e


def test_suspension_is_decided_before_the_token(env):
    """A suspended bank learns nothing about its token: no token, or a
    garbage one, is still bank_suspended."""
    for tok in (None, "garbage.not-a.jws"):
        r = env.get(TAX, bank="BANK009", token=tok)
        refused(env, r, 403, "bank_suspended")


def test_suspended_bank_cannot_verify(env):
    r = env.post(TAX, bank="BANK009", token=env.token(bank="BANK009"),
                 json=VERIFY_BODY)
    refused(env, r, 403, "bank_suspended")
    assert "match" not in r.text


# ------------------------------------------------------------------------
# Purpose narrowing: BANK002 may only use credit_assessment

@pytest.mark.parametrize("purpose", ["post_loan_monitoring",
                                     "loan_application"])
@pytest.mark.parametrize("listener", ["tls", "plain"])
def test_bank_purpose_narrowing_every_other_purpose(env, purpose, listener):
    tok = env.token(bank="BANK002", purposes=["loan_application",
                                              "credit_assessment",
                                              "post_loan_monitoring"])
    r = env.get(TAX, bank="BANK002", token=tok, purpose=purpose,
                plain=(listener == "plain"))
    _, e = refused(env, r, 403, "purpose_not_allowed")
    assert e["bank"] == "BANK002" and e["purpose"] == purpose, e
    r = env.get(TAX, bank="BANK002", token=tok, purpose="credit_assessment",
                plain=(listener == "plain"))
    assert r.status_code == 200, r.text


def test_bank_purpose_narrowing_applies_to_verification(env):
    tok = env.token(bank="BANK002", purposes=["loan_application",
                                              "credit_assessment"])
    r = env.post(TAX, bank="BANK002", token=tok, purpose="loan_application",
                 json=VERIFY_BODY)
    refused(env, r, 403, "purpose_not_allowed")
    r = env.post(TAX, bank="BANK002", token=tok, purpose="credit_assessment",
                 json=VERIFY_BODY)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["match"] is True


def test_unnarrowed_bank_may_use_every_policy_purpose(env):
    purposes = ["loan_application", "credit_assessment",
                "post_loan_monitoring"]
    tok = env.token(purposes=purposes)
    for p in purposes:
        r = env.get(TAX, token=tok, purpose=p)
        assert r.status_code == 200, (p, r.text)


# ------------------------------------------------------------------------
# A bank with two certificate fingerprints (rotation)

@pytest.fixture
def two_cert_bank(env, make_gateway, conf_dir):
    a = env.st.pki.make_bank_cert("BANK003-A")
    b = env.st.pki.make_bank_cert("BANK003-B")
    banks = json.loads(env.st.banks_path.read_text())
    banks["banks"].append(S.bank_entry("BANK003", "Rotating Test Bank",
                                       [a, b]))
    g = make_gateway(banks=S.write_json(conf_dir / "banks-two.json", banks))
    g.start()
    return g, a, b


def test_bank_with_two_certificates(env, two_cert_bank):
    g, a, b = two_cert_bank
    tok = env.token(bank="BANK003")
    for cert in (a, b):
        r = via(env, g, token=tok, cert=cert)
        assert r.status_code == 200, r.text
        e = env.decision(r)
        assert e["bank"] == "BANK003" and e["decision"] == "allow", e
        assert e["cert"], e
        # the same via the plain listener's Client-Cert header
        r = via(env, g, token=tok, cert=cert, plain=True)
        assert r.status_code == 200, r.text
        assert env.decision(r)["bank"] == "BANK003"
    # each certificate is audited as itself
    ea = env.decision(via(env, g, token=tok, cert=a))
    eb = env.decision(via(env, g, token=tok, cert=b))
    assert ea["cert"] != eb["cert"], (ea, eb)


def test_two_cert_bank_cnf_binds_one_certificate(env, two_cert_bank):
    g, a, b = two_cert_bank
    tok = env.token(bank="BANK003", cnf={"x5t#S256": S.x5t_s256(a.cert)})
    r = via(env, g, token=tok, cert=a)
    assert r.status_code == 200, r.text
    refused(env, via(env, g, token=tok, cert=b), 401, "cnf_mismatch")


def test_other_banks_unchanged_by_two_cert_bank(env, two_cert_bank):
    g, a, b = two_cert_bank
    # BANK001's consent is not BANK003's, whatever certificate is shown
    r = via(env, g, token=env.token(bank="BANK001"), cert=a)
    refused(env, r, 403, "audience_mismatch")
    r = via(env, g, token=env.token(bank="BANK001"))
    assert r.status_code == 200, r.text
