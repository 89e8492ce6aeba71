"""The enterprise withdraws its own consent (contract §3 v3, issue 21):
credit_auth_revocation_endpoint takes a signed revocation+jwt, writes
credit:revoked:<iss>:<jti> on the gateway's durable terms and a
`revocation` entry (by=enterprise), and every gateway refuses the consent
from then on.  Real nginx (two gateways on one Redis), real Redis, real
signatures; the endpoint is a TLS server without client certificates,
behind limit_req.

E1 withdraws with a key of the Redis key registry, E2 with one of the key
file: both sources.  The platform revokes through the same endpoint with a
key of its own (platform_keys=), and is audited as `by` platform."""

import json
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import E1, E2, PURPOSE, S, problem

CONSENT = S.ROOT / "build" / "bin" / "credit-consent"
AUDIT = S.ROOT / "build" / "bin" / "credit-audit"
REGISTRY = "on ttl=30s negative_ttl=1s poll=100ms"
LEEWAY = S.TEST_POLICY["token"]["leeway"]
MAX_LIFETIME = S.TEST_POLICY["token"]["max_lifetime"]
PATH = "/credit-auth/withdraw"
PLATFORM = S.make_uscc("91350000MA00PLATF")      # the platform operator


def tool(binary, *args, timeout=30):
    return subprocess.run([str(binary), *args], capture_output=True,
                          text=True, timeout=timeout)


class Withdrawals:
    """A private Redis, two gateways over it (key file and registry), each
    with its withdrawal endpoint."""

    def __init__(self, env):
        self.env = env
        self.dir = S.workdir(Path(tempfile.mkdtemp(prefix="withdraw-",
                                                   dir=env.st.dir)))
        self.redis = S.Redis(self.dir).start()
        # E1's withdrawal key lives in the registry
        self.reg_kid = f"wd-e1-{secrets.token_hex(4)}"
        self.reg_priv = S.generate_key("ES256")
        self.reg_jwk = self.dir / "e1-reg.jwk"
        self.reg_jwk.write_text(json.dumps(
            S.public_jwk(self.reg_priv, "ES256", self.reg_kid, E1)))
        p = self.consent("key", "add", "--jwk", str(self.reg_jwk))
        assert p.returncode == 0, p.stderr
        # the platform's own key, as credit-consent keygen writes it
        self.platform = self.dir / "platform"
        p = tool(CONSENT, "keygen", "--alg", "EdDSA", "--kid", "platform-1",
                 "--uscc", PLATFORM, "--out", str(self.platform))
        assert p.returncode == 0, p.stderr
        S.write_jwks(self.dir / "platform.jwks",
                     [json.loads(Path(f"{self.platform}.jwk").read_text())])
        self.gws, self.ports = [], []
        for i in range(2):
            port = S.free_port()
            spool = S.subdir(self.dir, f"spool{i}", 0o777)
            os.chmod(spool, 0o777)
            g = env.st.make_gateway(
                self.dir / f"gw{i}", redis_addr=self.redis.directive_value(),
                gateway_id=f"gw-wd{i}",
                http_directives={"credit_auth_key_registry": REGISTRY,
                                 "credit_auth_audit_spool": str(spool)},
                # the rate limit is tested on a gateway of its own
                # (test_limit_req_guards_the_endpoint); here every test of
                # the module sends from one address, fast, and must not
                # meet the documented 10r/s burst 20
                http_extra=S.withdrawal_server(
                    env.pki, port, rate="1000r/s", burst=1000,
                    platform_keys=self.dir / "platform.jwks"))
            g.ports.append(port)
            self.gws.append(g.start())
            self.ports.append(port)

    def consent(self, *args):
        return tool(CONSENT, *args, "--redis", self.redis.address)

    def url(self, i=0):
        return f"https://127.0.0.1:{self.ports[i]}{PATH}"

    def r(self):
        return self.redis.client()

    # signing ---------------------------------------------------------------
    def signer(self, uscc):
        if uscc == E1:
            return self.reg_priv, self.reg_kid
        return self.env.key("e2-es256")[0], "e2-es256"

    def withdrawal(self, uscc, jti, iss=None, iat=None, typ="revocation+jwt",
                   signer=None, alg="ES256"):
        priv, kid = signer or self.signer(uscc)
        claims = {"iss": iss or uscc, "jti": jti,
                  "iat": int(time.time()) if iat is None else iat}
        return S.sign_compact({"alg": alg, "typ": typ, "kid": kid}, claims,
                              priv, alg)

    def post(self, body, i=0, method="POST", **kw):
        return requests.request(method, self.url(i), data=body,
                                headers={"Content-Type": "application/jwt"},
                                verify=self.env.pki.server_ca_path,
                                timeout=10, **kw)

    # the consent's side ------------------------------------------------------
    def token(self, uscc, jti):
        kid = "e1-es256" if uscc == E1 else "e2-es256"
        return S.mint_token(self.env.key(kid)[0], "ES256", kid,
                            S.claims(uscc, "BANK001", jti=jti))

    def query(self, i, uscc, tok):
        c = self.env.certs["BANK001"]
        return requests.get(
            self.gws[i].url(f"/api/v1/enterprises/{uscc}/tax"),
            headers={"Authorization": f"Bearer {tok}",
                     "X-Credit-Purpose": PURPOSE},
            cert=(c.cert, c.key), verify=self.env.pki.server_ca_path,
            timeout=10)

    # the trail ---------------------------------------------------------------
    def entries(self, event="revocation"):
        return [f for _, f in self.r().xrange("credit:audit")
                if f.get("event") == event]

    def revocations(self, uscc, jti):
        return [e for e in self.entries()
                if (e["enterprise"], e["consent"]) == (uscc, jti)]

    def stop(self):
        problems = [p for g in self.gws for p in g.log_problems()]
        for g in self.gws:
            g.stop()
        self.redis.stop()
        return problems


@pytest.fixture(scope="module")
def wd(env):
    w = Withdrawals(env)
    yield w
    problems = w.stop()
    assert not problems, problems


def jti_():
    return "wd-" + secrets.token_hex(6)


def allowed(r):
    assert r.status_code == 200, r.text
    return r


def revoked_answer(r, uscc, jti):
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers.get("Cache-Control") == "no-store"
    assert r.headers.get("X-Request-Id")
    doc = r.json()
    assert doc["revoked"] == jti and doc["enterprise"] == uscc, doc
    assert doc["by"] in ("enterprise", "platform"), doc
    # ISO 8601 with an offset, now
    assert doc["at"][:2] == "20" and doc["at"][10] == "T", doc
    return doc


def nothing_written(wd, uscc, jti):
    rc = wd.r()
    assert not rc.exists(f"credit:revoked:{uscc}:{jti}")
    assert wd.revocations(uscc, jti) == []


# ------------------------------------------------------------------------

@pytest.mark.parametrize("uscc", [E1, E2], ids=["registry-key", "file-key"])
def test_withdrawal_refuses_the_consent_on_both_gateways(wd, uscc):
    jti = jti_()
    tok = wd.token(uscc, jti)
    allowed(wd.query(0, uscc, tok))
    allowed(wd.query(1, uscc, tok))

    r = wd.post(wd.withdrawal(uscc, jti))
    revoked_answer(r, uscc, jti)
    t0 = time.monotonic()

    # the other gateway first: it never saw the withdrawal
    for i in (1, 0):
        problem(wd.query(i, uscc, tok), 403, "consent_revoked")
    assert time.monotonic() - t0 < 1.0

    rc = wd.r()
    key = f"credit:revoked:{uscc}:{jti}"
    assert rc.get(key) == "1"
    # lasts until no consent with this jti issued until now can be valid
    assert MAX_LIFETIME < rc.ttl(key) <= MAX_LIFETIME + LEEWAY + 1

    got = wd.revocations(uscc, jti)
    assert len(got) == 1, got
    assert got[0]["by"] == "enterprise" and got[0]["gw"] == "gw-wd0"


def test_withdrawal_is_audited_and_the_trail_verifies(wd):
    jti = jti_()
    revoked_answer(wd.post(wd.withdrawal(E2, jti), i=1), E2, jti)
    p = tool(AUDIT, "query", "--event", "revocation", "--consent", jti,
             "--redis", wd.redis.address, "--json")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    assert [(x["event"], x["enterprise"], x["consent"], x["by"])
            for x in rows] == [("revocation", E2, jti, "enterprise")], rows
    time.sleep(1.2)         # the checkpoint of the entry's chain
    p = tool(AUDIT, "verify", "--pubkey", wd.env.st.audit_pub,
             "--redis", wd.redis.address)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "intact" in p.stdout


def test_replay_is_harmless(wd):
    """The same withdrawal twice (within its iat window): 200 both times,
    the consent stays withdrawn, each accepted request is audited."""
    jti = jti_()
    jws = wd.withdrawal(E1, jti)
    revoked_answer(wd.post(jws, i=0), E1, jti)
    revoked_answer(wd.post(jws, i=1), E1, jti)
    assert wd.r().exists(f"credit:revoked:{E1}:{jti}")
    assert len(wd.revocations(E1, jti)) == 2
    problem(wd.query(0, E1, wd.token(E1, jti)), 403, "consent_revoked")


def test_unknown_jti_is_withdrawn_harmlessly(wd):
    """The gateway cannot know every consent ever signed: a jti of one's
    own that no bank ever presented is withdrawn all the same (a consent
    signed later with it is refused), and touches nobody else."""
    jti = jti_()
    revoked_answer(wd.post(wd.withdrawal(E2, jti)), E2, jti)
    assert wd.r().exists(f"credit:revoked:{E2}:{jti}")
    problem(wd.query(0, E2, wd.token(E2, jti)), 403, "consent_revoked")
    allowed(wd.query(0, E1, wd.token(E1, jti)))


def test_another_enterprise_cannot_withdraw(wd):
    """B's key signing iss=A is refused; B withdrawing its own jti equal
    to A's leaves A's consent usable."""
    jti = jti_()
    tok_a, tok_b = wd.token(E1, jti), wd.token(E2, jti)
    forged = wd.withdrawal(E2, jti, iss=E1)            # B's key, A's iss
    doc = problem(wd.post(forged), 401, "issuer_invalid")
    assert "registered to" in doc["detail"]
    nothing_written(wd, E1, jti)
    allowed(wd.query(1, E1, tok_a))

    revoked_answer(wd.post(wd.withdrawal(E2, jti)), E2, jti)
    allowed(wd.query(0, E1, tok_a))
    allowed(wd.query(1, E1, tok_a))
    problem(wd.query(1, E2, tok_b), 403, "consent_revoked")
    assert not wd.r().exists(f"credit:revoked:{E1}:{jti}")


@pytest.mark.parametrize("offset,reason", [
    (-(LEEWAY + 30), "token_expired"),
    (LEEWAY + 30, "token_not_yet_valid")])
def test_iat_outside_the_leeway(wd, offset, reason):
    jti = jti_()
    doc = problem(wd.post(wd.withdrawal(E1, jti,
                                        iat=int(time.time()) + offset)),
                  401, reason)
    assert "leeway" in doc["detail"]
    nothing_written(wd, E1, jti)
    # within the leeway, either way, is fine
    revoked_answer(wd.post(wd.withdrawal(E1, jti,
                                         iat=int(time.time()) - LEEWAY + 5)),
                   E1, jti)


def test_revoked_key_is_refused(wd):
    kid = f"wd-e2-revoked-{secrets.token_hex(3)}"
    priv = S.generate_key("ES256")
    path = wd.dir / f"{kid}.jwk"
    path.write_text(json.dumps(S.public_jwk(priv, "ES256", kid, E2)))
    assert wd.consent("key", "add", "--jwk", str(path)).returncode == 0
    jti = jti_()
    revoked_answer(wd.post(wd.withdrawal(E2, jti, signer=(priv, kid))),
                   E2, jti)
    assert wd.consent("key", "revoke", kid).returncode == 0
    # every gateway within a second (the registry's poll)
    deadline = time.monotonic() + 1.0
    for i in (1, 0):
        while True:
            r = wd.post(wd.withdrawal(E2, jti_(), signer=(priv, kid)), i=i)
            if r.status_code != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        problem(r, 401, "key_revoked")


def test_alg_confusion_and_none(wd):
    """HS256 keyed with the public key's PEM (the RS256->HS256 forgery),
    alg none, and an alg other than the key's pin: never a withdrawal."""
    jti = jti_()
    kid = "e1-rs256"
    priv = wd.env.key(kid)[0]
    claims = {"iss": E1, "jti": jti, "iat": int(time.time())}
    forged = S.hs256_forge({"alg": "HS256", "typ": "revocation+jwt",
                            "kid": kid}, claims, S.public_pem(priv))
    problem(wd.post(forged), 401, "alg_not_allowed")
    none = S.compact({"alg": "none", "typ": "revocation+jwt", "kid": kid},
                     claims, b"x")
    problem(wd.post(none), 401, "alg_not_allowed")
    pinned = S.sign_compact({"alg": "PS256", "typ": "revocation+jwt",
                             "kid": kid}, claims, priv, "PS256")
    doc = problem(wd.post(pinned), 401, "alg_not_allowed")
    assert "pinned" in doc["detail"]
    nothing_written(wd, E1, jti)


def test_typ_and_shape(wd):
    """A consent token is no withdrawal, and a withdrawal no consent."""
    jti = jti_()
    problem(wd.post(wd.token(E1, jti)), 401, "typ_invalid")
    problem(wd.query(0, E1, wd.withdrawal(E1, jti)), 401, "typ_invalid")
    for body in (b"", b"not-a-jws", b"a.b", b"x" * 20000):
        problem(wd.post(body), 401, "token_malformed")
    bad = S.sign_compact({"alg": "ES256", "typ": "revocation+jwt",
                          "kid": wd.reg_kid},
                         {"iss": E1, "jti": "two words",
                          "iat": int(time.time())}, wd.reg_priv, "ES256")
    problem(wd.post(bad), 401, "token_malformed")
    nothing_written(wd, E1, jti)


def test_unknown_kid_names_the_sources_consulted(wd):
    jti = jti_()
    doc = problem(wd.post(wd.withdrawal(
        E1, jti, signer=(S.generate_key("ES256"), "wd-nobody"))),
        401, "kid_unknown")
    assert "neither the key file nor the key registry" in doc["detail"]


def test_no_client_certificate_and_other_methods(wd):
    jti = jti_()
    for method in ("GET", "PUT", "DELETE"):
        doc = problem(wd.post(wd.withdrawal(E1, jti), method=method), 400,
                      "request_invalid")
        assert "POST" in doc["detail"]
    nothing_written(wd, E1, jti)


def test_redis_down_writes_nothing(wd):
    jti = jti_()
    tok = wd.token(E2, jti)
    allowed(wd.query(0, E2, tok))
    wd.redis.stop()
    try:
        doc = problem(wd.post(wd.withdrawal(E2, jti)), 503,
                      "revocation_unavailable")
        assert "nothing" in doc["detail"]
    finally:
        wd.redis.start()
    # the gateways reconnect and replay what they spooled meanwhile
    deadline = time.monotonic() + 10
    while wd.query(0, E2, tok).status_code != 200:
        assert time.monotonic() < deadline, "gateway did not reconnect"
        time.sleep(0.2)
    time.sleep(1.0)
    nothing_written(wd, E2, jti)
    # and the enterprise sends it again
    revoked_answer(wd.post(wd.withdrawal(E2, jti), i=1), E2, jti)
    problem(wd.query(0, E2, tok), 403, "consent_revoked")


def test_stalled_redis_is_answered_within_the_command_timeout(wd):
    """Redis stops answering (SIGSTOP): the withdrawal is answered 503
    within the command timeout (1 s), never hangs; once Redis is back,
    the enterprise sends it again and it is in force and audited once
    (the first attempt was never audited, whatever Redis did with it)."""
    jti = jti_()
    jws = wd.withdrawal(E2, jti)
    wd.redis.pause()
    try:
        t0 = time.monotonic()
        doc = problem(wd.post(jws), 503, "revocation_unavailable")
        assert time.monotonic() - t0 < 2.5
        assert "again" in doc["detail"]
    finally:
        wd.redis.resume()
    deadline = time.monotonic() + 10
    while True:
        r = wd.post(jws)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    revoked_answer(r, E2, jti)
    problem(wd.query(1, E2, wd.token(E2, jti)), 403, "consent_revoked")
    # acknowledged, or fsync'd to the spool (behind what the gateway
    # spooled while Redis was away) and replayed from it
    deadline = time.monotonic() + 10
    while not wd.revocations(E2, jti) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(wd.revocations(E2, jti)) == 1


def test_the_platform_revokes_through_the_endpoint_audited(wd):
    """credit-consent revoke --endpoint: the platform's key, sub the
    enterprise; the entry says by=platform, the answer too."""
    jti = jti_()
    tok = wd.token(E2, jti)
    allowed(wd.query(0, E2, tok))
    p = tool(CONSENT, "revoke", "--endpoint", wd.url(1), "--key",
             f"{wd.platform}.key.pem", "--iss", E2, "--jti", jti,
             "--cacert", wd.env.pki.server_ca_path)
    assert p.returncode == 0, p.stderr
    assert f"consent {jti} of {E2}, by the platform" in p.stdout, p.stdout
    problem(wd.query(0, E2, tok), 403, "consent_revoked")
    got = wd.revocations(E2, jti)
    assert [e["by"] for e in got] == ["platform"], got
    # the platform's key must name the enterprise (sub)
    priv_pem = Path(f"{wd.platform}.key.pem").read_bytes()
    from cryptography.hazmat.primitives.serialization import \
        load_pem_private_key
    priv = load_pem_private_key(priv_pem, None)
    jws = S.sign_compact({"alg": "EdDSA", "typ": "revocation+jwt",
                          "kid": "platform-1"},
                         {"iss": PLATFORM, "jti": jti_(),
                          "iat": int(time.time())}, priv, "EdDSA")
    doc = problem(wd.post(jws), 401, "token_malformed")
    assert "sub" in doc["detail"]


def test_an_enterprise_key_cannot_act_for_another(wd):
    """sub is the platform's alone: E1's key with sub=E2 withdraws E1's
    own consent of that jti, never E2's."""
    jti = jti_()
    priv, kid = wd.signer(E1)
    jws = S.sign_compact({"alg": "ES256", "typ": "revocation+jwt",
                          "kid": kid},
                         {"iss": E1, "sub": E2, "jti": jti,
                          "iat": int(time.time())}, priv, "ES256")
    r = wd.post(jws)
    revoked_answer(r, E1, jti)
    assert r.json()["by"] == "enterprise"
    allowed(wd.query(0, E2, wd.token(E2, jti)))
    assert not wd.r().exists(f"credit:revoked:{E2}:{jti}")


def test_limit_req_guards_the_endpoint(env, make_gateway):
    """The documented setting: a burst past the rate is 429 from nginx
    before any signature is checked."""
    port = S.free_port()
    g = make_gateway(http_extra=S.withdrawal_server(env.pki, port,
                                                    rate="1r/m", burst=0))
    g.ports.append(port)
    g.start()
    url = f"https://127.0.0.1:{port}{PATH}"
    codes = [requests.post(url, data=b"x.y.z",
                           verify=env.pki.server_ca_path,
                           timeout=10).status_code for _ in range(3)]
    assert codes[0] == 401 and codes[1:] == [429, 429], codes


def test_bad_configurations(env, make_gateway):
    g = make_gateway(location_extra="credit_auth_revocation_endpoint;")
    rc, out = g.test()
    assert rc != 0 and "cannot share a location" in out, out
    g = make_gateway(http_directives={"credit_auth_redis": None},
                     http_extra=S.withdrawal_server(env.pki, S.free_port()),
                     mode=None)
    g.tls = g.plain = False
    rc, out = g.test()
    assert rc != 0 and "credit_auth_redis" in out, out
    g = make_gateway(http_extra=S.withdrawal_server(
        env.pki, S.free_port(), platform_keys="/nonexistent/platform.jwks"))
    rc, out = g.test()
    assert rc != 0 and "invalid platform keys" in out, out
    g = make_gateway(http_extra=S.withdrawal_server(
        env.pki, S.free_port()).replace(
            "credit_auth_revocation_endpoint;",
            "credit_auth_revocation_endpoint keys=/x;"))
    rc, out = g.test()
    assert rc != 0 and "takes only platform_keys=FILE" in out, out
    g = make_gateway(http_extra=S.withdrawal_server(
        env.pki, S.free_port()).replace(
            "credit_auth_revocation_endpoint;",
            "credit_auth_revocation_endpoint; "
            "credit_auth_revocation_endpoint;"))
    rc, out = g.test()
    assert rc != 0 and "is duplicate" in out, out
