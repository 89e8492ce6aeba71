"""The bank's credentials stay at the gateway (contract §2.1 v3, issue 19).

The platform never receives the consent token (`Authorization: Bearer`,
as Envoy's jwt_authn drops a verified JWT: anyone on the platform side
could replay it) nor any client-certificate header the bank sent (a
platform that trusts `Client-Cert` from its load balancer would take
another bank's certificate from it), whether or not
credit_auth_client_cert is set.  What the platform needs comes from the
$credit_auth_* variables, as docs/configuration.md shows the operator.

The platform is scripts/stack.RawPlatform: it records every header the
gateway sent it."""

import pytest

from conftest import S
# the gateway before a RawPlatform, and its fixtures (one per module)
from test_personal_data import bd, clean, header  # noqa: F401

# client-certificate headers a bank could send, of every family the
# gateway strips (docs/configuration.md "What the platform receives")
CERT_HEADERS = ["Client-Cert", "Client-Cert-Chain", "X-Client-Cert",
                "X-Client-Cert-Chain", "X-SSL-Client-Cert",
                "X-SSL-Client-Verify", "X-SSL-Client-S-DN", "X-SSL-Cert",
                "SSL-Client-Cert", "X-Forwarded-Client-Cert",
                "X-ARR-ClientCert", "X-Amzn-Mtls-Clientcert",
                "X-Amzn-Mtls-Clientcert-Leaf", "X-Client-Verify"]


def forged_cert_headers(env):
    """Another bank's certificate, as RFC 9440 would carry it."""
    other = S.client_cert_header(env.certs["BANK002"].cert)
    return {name: other for name in CERT_HEADERS}


def assert_nothing_of_the_banks(env, asked, token):
    names = {k.lower() for k, _ in asked}
    assert "authorization" not in names, asked
    for name in CERT_HEADERS:
        assert name.lower() not in names, (name, asked)
    for bank in ("BANK001", "BANK002"):
        pem = S.client_cert_header(env.certs[bank].cert)
        for _, v in asked:
            assert token not in v and pem not in v, asked


@pytest.mark.parametrize("plain", [False, True], ids=["tls", "lb"])
def test_platform_gets_no_token_and_no_client_cert(clean, plain):
    """TLS: credit_auth_client_cert unset, the certificate from the TLS
    session; lb: behind a load balancer (the plain listener,
    credit_auth_client_cert $http_client_cert), the bank identified by its
    Client-Cert header.  Either way the platform sees neither the token nor
    any certificate header, and gets what the gateway decided."""
    env = clean.env
    tok = env.token()
    hdrs = forged_cert_headers(env)
    if plain:
        # the load balancer's header: the bank's own certificate
        hdrs["Client-Cert"] = S.client_cert_header(env.certs["BANK001"].cert)
    r = clean.get(plain=plain, token=tok, headers=hdrs)
    assert r.status_code == 200, r.text
    asked = clean.asked()
    assert_nothing_of_the_banks(env, asked, tok)
    assert header(asked, "X-Credit-Bank") == "BANK001"
    assert header(asked, "X-Credit-Cert") == env.certs["BANK001"].sha256
    assert header(asked, "X-Credit-Purpose") == "loan_application"
    d = env.decision(r)
    assert header(asked, "X-Credit-Consent") == d["consent"]
    assert header(asked, "X-Credit-Request-Id") == d["rid"]
    assert d["cert"] == env.certs["BANK001"].sha256


def test_platform_gets_no_token_on_a_verification(clean):
    env = clean.env
    tok = env.token()
    saved = env.gw
    env.gw = clean.gw
    try:
        r = env.post(token=tok, headers=forged_cert_headers(env),
                     json={"checks": [{"field": "credit_rating", "op": "eq",
                                       "value": "A"}]})
    finally:
        env.gw = saved
    assert r.status_code == 200, r.text
    assert r.headers["X-Credit-Disclosure"] == "verify"
    assert_nothing_of_the_banks(env, clean.asked(), tok)


def test_operator_cannot_forward_the_token_by_variable(env, make_gateway):
    """$http_authorization is empty once the decision is taken: a
    proxy_set_header Authorization $http_authorization does not bring the
    token back."""
    p = S.RawPlatform().start()
    try:
        p.script(f"/api/v1/enterprises/{S.DEMO_USCC}/tax",
                 S.http_answer(body=S.tax_record(S.DEMO_USCC)))
        gw = make_gateway(upstream_port=p.port, location_directives={
            "proxy_set_header": ['Connection ""',
                                 "Authorization $http_authorization",
                                 "X-Copied $http_client_cert"]})
        gw.start()
        tok = env.token()
        saved = env.gw
        env.gw = gw
        try:
            r = env.get(token=tok, headers={
                "Client-Cert": S.client_cert_header(
                    env.certs["BANK002"].cert)})
        finally:
            env.gw = saved
        assert r.status_code == 200, r.text
        (req,) = p.requests
        assert_nothing_of_the_banks(env, req[2], tok)
        assert not header(req[2], "X-Copied"), req[2]
    finally:
        p.stop()
