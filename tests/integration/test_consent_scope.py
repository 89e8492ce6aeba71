"""A consent is its issuing enterprise's (contract §3 v3, issue 19): revocation,
use counting and verification budgets are kept per (iss, jti), so an
enterprise that picks the same jti as another (freely, or from a weak
generator) can neither spend nor revoke the other's consent.  Revocations
written under the jti alone, before v3, still refuse until they expire.

Each test runs with the enterprises' keys in the JWKS file and in the key
registry, over two gateways that share the session's Redis."""

import json
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import E1, E2, PURPOSE, S, problem

CONSENT = S.ROOT / "build" / "bin" / "credit-consent"
REGISTRY = "on ttl=30s negative_ttl=2s poll=100ms"
A, B = E1, E2           # enterprise A, enterprise B (both have tax records)


def consent_tool(*args):
    return subprocess.run([str(CONSENT), *args], capture_output=True,
                          text=True, timeout=30)


class Scope:
    """Two gateways on one Redis, and a signer per enterprise."""

    def __init__(self, env, keys):
        self.env, self.keys = env, keys
        self.dir = S.workdir(Path(tempfile.mkdtemp(prefix="scope-",
                                                   dir=env.st.dir)))
        self.redis = env.st.redis
        http = {}
        self.signers = {}
        if keys == "registry":
            http["credit_auth_key_registry"] = REGISTRY
            for uscc in (A, B):
                kid = f"scope-{uscc[-4:]}-{secrets.token_hex(4)}"
                priv = S.generate_key("ES256")
                path = self.dir / f"{kid}.jwk"
                path.write_text(json.dumps(S.public_jwk(priv, "ES256", kid,
                                                        uscc)))
                p = consent_tool("key", "add", "--jwk", str(path),
                                 "--redis", self.redis.address)
                assert p.returncode == 0, p.stderr
                self.signers[uscc] = (priv, kid)
        else:
            for uscc, kid in ((A, "e1-es256"), (B, "e2-es256")):
                self.signers[uscc] = (env.key(kid)[0], kid)
        self.gws = []
        for i in range(2):
            self.gws.append(env.st.make_gateway(
                self.dir / f"gw{i}", http_directives=http).start())

    def token(self, uscc, jti, **claims):
        priv, kid = self.signers[uscc]
        return S.mint_token(priv, "ES256", kid,
                            S.claims(uscc, "BANK001", jti=jti, **claims))

    def request(self, gw, uscc, tok, method="GET", **kw):
        c = self.env.certs["BANK001"]
        return requests.request(
            method, gw.url(f"/api/v1/enterprises/{uscc}/tax"),
            headers={"Authorization": f"Bearer {tok}",
                     "X-Credit-Purpose": PURPOSE},
            cert=(c.cert, c.key), verify=self.env.pki.server_ca_path,
            timeout=10, **kw)

    def verify(self, gw, uscc, tok, n):
        checks = [{"field": "credit_rating", "op": "eq", "value": "A"}] * n
        return self.request(gw, uscc, tok, "POST", json={"checks": checks})

    def stop(self):
        problems = [p for g in self.gws for p in g.log_problems()]
        for g in self.gws:
            g.stop()
        return problems


@pytest.fixture(scope="module", params=["file", "registry"])
def sc(request, env):
    s = Scope(env, request.param)
    yield s
    problems = s.stop()
    assert not problems, problems


def jti_():
    return "shared-" + S.consent_id()[2:]


def ok(r):
    assert r.status_code == 200, r.text
    assert r.headers["X-Credit-Disclosure"] in ("masked", "verify")
    return r


def refused(env, r, reason, enterprise, jti):
    problem(r, 403, reason)
    e = env.decision(r)
    assert (e["decision"], e["reason"]) == ("deny", reason), e
    assert (e["enterprise"], e["consent"]) == (enterprise, jti), e


# ------------------------------------------------------------------------

def test_another_enterprise_cannot_spend_a_consent(sc):
    """B's token carries A's jti and is used up on both gateways; A's
    consent (max_uses 2) is untouched and is itself counted across the
    gateways: two uses, then consent_exhausted."""
    g1, g2 = sc.gws
    jti = jti_()
    tok_a = sc.token(A, jti, max_uses=2)
    tok_b = sc.token(B, jti, max_uses=2)

    ok(sc.request(g1, B, tok_b))
    ok(sc.request(g2, B, tok_b))
    refused(sc.env, sc.request(g1, B, tok_b), "consent_exhausted", B, jti)

    ok(sc.request(g2, A, tok_a))
    ok(sc.request(g1, A, tok_a))
    refused(sc.env, sc.request(g2, A, tok_a), "consent_exhausted", A, jti)

    rc = sc.redis.client()
    assert rc.get(f"credit:uses:{A}:{jti}") == "2"
    assert rc.get(f"credit:uses:{B}:{jti}") == "2"
    assert not rc.exists(f"credit:uses:{jti}")
    assert rc.ttl(f"credit:uses:{A}:{jti}") > 0


def test_another_enterprise_cannot_spend_a_verification_budget(sc):
    """The budget of checks per verify field (default 3) is per (iss,
    jti) too."""
    g1, g2 = sc.gws
    jti = jti_()
    tok_a = sc.token(A, jti)
    tok_b = sc.token(B, jti)
    ok(sc.verify(g1, B, tok_b, 3))
    refused(sc.env, sc.verify(g2, B, tok_b, 1),
            "verification_budget_exhausted", B, jti)
    r = ok(sc.verify(g2, A, tok_a, 3))
    assert [x["match"] for x in r.json()["results"]] == [True] * 3
    refused(sc.env, sc.verify(g1, A, tok_a, 1),
            "verification_budget_exhausted", A, jti)
    rc = sc.redis.client()
    assert rc.hget(f"credit:vbudget:{A}:{jti}", "credit_rating") == "3"
    assert rc.hget(f"credit:vbudget:{B}:{jti}", "credit_rating") == "3"


def test_revoking_one_enterprises_consent_spares_the_other(sc):
    """credit-consent revoke --token of B's consent revokes B's on every
    gateway and not A's; --jti needs --iss, and revokes only that
    enterprise's."""
    g1, g2 = sc.gws
    jti = jti_()
    tok_a = sc.token(A, jti)
    tok_b = sc.token(B, jti)
    ok(sc.request(g1, A, tok_a))
    ok(sc.request(g2, B, tok_b))

    path = sc.dir / f"b-{jti}.jwt"
    path.write_text(tok_b + "\n")
    p = consent_tool("revoke", "--token", str(path), "--redis",
                     sc.redis.address)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"revoked {jti} of {B} until "), p.stdout
    rc = sc.redis.client()
    assert rc.exists(f"credit:revoked:{B}:{jti}")
    assert not rc.exists(f"credit:revoked:{jti}")
    assert not rc.exists(f"credit:revoked:{A}:{jti}")

    for gw in (g1, g2):
        refused(sc.env, sc.request(gw, B, tok_b), "consent_revoked", B, jti)
        ok(sc.request(gw, A, tok_a))

    p = consent_tool("revoke", "--jti", jti, "--iss", A, "--ttl", "600",
                     "--redis", sc.redis.address)
    assert p.returncode == 0, p.stderr
    assert rc.ttl(f"credit:revoked:{A}:{jti}") > 500
    for gw in (g1, g2):
        refused(sc.env, sc.request(gw, A, tok_a), "consent_revoked", A, jti)


def test_a_revocation_under_the_jti_alone_still_refuses(sc):
    """A revocation written before v3 (credit:revoked:<jti>) refuses every
    consent with that jti until it expires, then no more."""
    g1, g2 = sc.gws
    jti = jti_()
    tok_a = sc.token(A, jti)
    tok_b = sc.token(B, jti)
    rc = sc.redis.client()
    rc.set(f"credit:revoked:{jti}", "1", px=2000)
    for gw in (g1, g2):
        refused(sc.env, sc.request(gw, A, tok_a), "consent_revoked", A, jti)
        refused(sc.env, sc.request(gw, B, tok_b), "consent_revoked", B, jti)
    deadline = time.monotonic() + 5
    while rc.exists(f"credit:revoked:{jti}") and time.monotonic() < deadline:
        time.sleep(0.1)
    ok(sc.request(g1, A, tok_a))
    ok(sc.request(g2, B, tok_b))


def test_revoke_tool_names_the_issuer(env, tmp_path):
    """--jti alone is refused (it would not say whose consent); --iss must
    be a valid USCC; --token says its issuer itself."""
    addr = env.st.redis.address
    p = consent_tool("revoke", "--jti", "c-1", "--redis", addr)
    assert p.returncode == 2, p
    assert "--jti needs --iss USCC" in p.stderr, p.stderr
    p = consent_tool("revoke", "--jti", "c-1", "--iss", "91350100M000100Y44",
                     "--redis", addr)
    assert p.returncode == 2, p.stderr
    assert "--iss: not a valid USCC: 91350100M000100Y44" in p.stderr, \
        p.stderr
    tok = tmp_path / "t.jwt"
    tok.write_text(env.token())
    p = consent_tool("revoke", "--token", str(tok), "--iss", A, "--redis",
                     addr)
    assert p.returncode == 2 and "--token gives the issuer" in p.stderr, \
        p.stderr
    priv, _ = env.key("e1-es256")
    tok.write_text(S.mint_token(priv, "ES256", "e1-es256",
                                S.claims("not-a-uscc", "BANK001")))
    p = consent_tool("revoke", "--token", str(tok), "--redis", addr)
    assert p.returncode == 2 and "no valid iss" in p.stderr, p.stderr
    assert not env.redis().keys("credit:revoked:c-1*")
