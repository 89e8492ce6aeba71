"""Consent tokens end to end (contract §3, docs/keys.md §3): every 401/403 token
reason not covered by test_foundation.py, malformed tokens, clock-skew and
lifetime edges, interoperability with PyJWT and credit-consent (SM2
included), and the verified-token cache across a reload."""

import base64
import copy
import hashlib
import http.server
import json
import subprocess
import threading
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from conftest import E1, E2, ENV, PURPOSE, TAX, S, no_upstream_bytes, problem

POLICY = S.TEST_POLICY
LEEWAY = POLICY["token"]["leeway"]                 # 60
MAX_LIFETIME = POLICY["token"]["max_lifetime"]     # 7776000
CONSENT = S.ROOT / "build" / "bin" / "credit-consent"

VERIFY_BODY = {"checks": [{"field": "credit_rating", "op": "eq",
                           "value": "A"}]}


# ------------------------------------------------------------------------
# Helpers

def via(env, gw, method="GET", **kw):
    """env.request() against another gateway."""
    saved = env.gw
    env.gw = gw
    try:
        return env.request(method, **kw)
    finally:
        env.gw = saved


def refused(env, r, status, reason):
    """problem+json of contract §4 and exactly one deny decision with reason."""
    doc = problem(r, status, reason)
    e = env.decision(r)
    assert e["decision"] == "deny" and e["reason"] == reason, e
    return doc


def header(alg="ES256", kid="e1-es256", **extra):
    h = {"alg": alg, "typ": "consent+jwt", "kid": kid}
    for k, v in extra.items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    return h


def signed(env, hdr, payload, kid="e1-es256", alg=None, priv=None):
    """Signs any header and payload (dict, str or bytes) with a registered
    key (or priv), as the key's alg (or alg)."""
    kpriv, jwk = env.key(kid) if kid in env.st.enterprise_keys else (None,
                                                                      None)
    alg = alg or (jwk["alg"] if jwk else hdr.get("alg", "ES256"))
    return S.sign_compact(hdr, payload, priv or kpriv, alg)


def b64(data):
    return S.b64url(data if isinstance(data, bytes) else data.encode())


def status_doc(env, gw=None):
    r = requests.get((gw or env.gw).url("/credit-auth/status", plain=True),
                     timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


class Health:
    """The gateway's workers survive and its error log stays clean."""

    def __init__(self, gw):
        self.gw = gw
        self.offset = gw.log_size()
        self.pids = set(gw.workers())

    def check(self):
        assert set(self.gw.workers()) == self.pids, \
            "a worker died (pids changed)"
        text = self.gw.read_error_log(self.offset)
        bad = self.gw.log_problems(text)
        assert not bad, bad
        assert "[crit]" not in text, text[-2000:]


@pytest.fixture
def restricted_gateway(env, make_gateway, conf_dir):
    """A gateway whose policy allows ES256 and EdDSA only."""
    pol = copy.deepcopy(POLICY)
    pol["token"]["algs"] = ["ES256", "EdDSA"]
    g = make_gateway(policy=S.write_json(conf_dir / "es-only.json", pol))
    g.start()
    return g


@pytest.fixture
def cnf_gateway(env, make_gateway, conf_dir):
    """A gateway whose policy requires cnf."""
    pol = copy.deepcopy(POLICY)
    pol["token"]["require_cnf"] = True
    g = make_gateway(policy=S.write_json(conf_dir / "cnf.json", pol))
    g.start()
    return g


# ------------------------------------------------------------------------
# alg_not_allowed

def test_alg_outside_policy_algs(env, restricted_gateway):
    g = restricted_gateway
    r = via(env, g, token=env.token(kid="e1-es256"))
    assert r.status_code == 200, r.text              # control
    for kid in ("e1-rs256", "e1-ps256"):
        r = via(env, g, token=env.token(kid=kid))
        doc = refused(env, r, 401, "alg_not_allowed")
        assert "policy" in doc["detail"], doc


def test_alg_none_is_refused(env):
    c = S.claims(E1, "BANK001")
    # a non-empty "signature" so that only alg can be the reason
    tok = S.compact(header("none"), c, b"\x00" * 64)
    refused(env, env.get(TAX, token=tok), 401, "alg_not_allowed")
    for name in ("None", "NONE"):
        tok = S.compact(header(name), c, b"\x01" * 64)
        refused(env, env.get(TAX, token=tok), 401, "alg_not_allowed")


def test_alg_none_with_empty_signature_is_malformed(env):
    """Three segments with an empty signature fail at step 2 (docs/keys.md
    order of checks) before alg is read."""
    tok = S.compact(header("none"), S.claims(E1, "BANK001"))
    assert tok.endswith(".")
    refused(env, env.get(TAX, token=tok), 401, "token_malformed")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "hs256"])
def test_hmac_algs_are_refused(env, alg):
    c = S.claims(E1, "BANK001")
    tok = S.hs256_forge(header(alg), c, b"secret-shared-by-nobody")
    refused(env, env.get(TAX, token=tok), 401, "alg_not_allowed")


def test_rs256_to_hs256_confusion(env):
    """The classic forgery: HS256 keyed with the RSA key's public PEM text,
    which libjwt accepts (docs/keys.md); the gateway must not."""
    priv, jwk = env.key("e1-rs256")
    c = S.claims(E1, "BANK001")
    for pem in (S.public_pem(priv), S.public_pem(priv).rstrip(b"\n")):
        tok = S.hs256_forge(header("HS256", kid="e1-rs256"), c, pem)
        refused(env, env.get(TAX, token=tok), 401, "alg_not_allowed")
    # the same claims, honestly signed, pass
    r = env.get(TAX, token=S.mint_token(priv, "RS256", "e1-rs256", c))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("name", ["es256", "ES256 ", " ES256", "Es256",
                                  "ES256\n", "Ed25519", "ED25519",
                                  "eddsa", "sm2", "RS512", "ES384"])
def test_alg_name_variants(env, name):
    """Exact, case-sensitive names only; the signature itself is a valid
    ES256 signature by the registered key."""
    kid = "e1-eddsa" if name.lower().startswith("ed") else "e1-es256"
    tok = signed(env, header(name, kid=kid), S.claims(E1, "BANK001"), kid=kid)
    refused(env, env.get(TAX, token=tok), 401, "alg_not_allowed")


@pytest.mark.parametrize("alg,kid", [("PS256", "e1-rs256"),
                                     ("RS256", "e1-ps256"),
                                     ("EdDSA", "e1-es256"),
                                     ("ES256", "e1-eddsa")])
def test_alg_differs_from_key_pin(env, alg, kid):
    """A genuine signature in another alg: refused by the key's pin.  For
    PS256 over an RS256-pinned key the signature is even made by that very
    RSA key."""
    c = S.claims(E1, "BANK001")
    if alg in ("PS256", "RS256"):
        priv = env.key(kid)[0]                 # the same RSA private key
    else:
        priv = env.key(f"e1-{alg.lower()}")[0]
    tok = S.sign_compact(header(alg, kid=kid), c, priv, alg)
    refused(env, env.get(TAX, token=tok), 401, "alg_not_allowed")


# ------------------------------------------------------------------------
# typ_invalid, crit, jwk/jku/x5u

@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "consent+JWT",
                                 "consent+jwt ", "", 1, ["consent+jwt"]])
def test_typ_invalid(env, typ):
    hdr = header(typ=typ) if typ is not None else header(typ=None)
    tok = signed(env, hdr, S.claims(E1, "BANK001"))
    refused(env, env.get(TAX, token=tok), 401, "typ_invalid")


@pytest.mark.parametrize("crit", [["exp"], ["b64"], [], "exp"])
def test_unknown_crit_is_malformed(env, crit):
    hdr = header(crit=crit)
    if crit == ["b64"]:
        hdr["b64"] = False
    tok = signed(env, hdr, S.claims(E1, "BANK001"))
    refused(env, env.get(TAX, token=tok), 401, "token_malformed")


def test_jwk_header_is_ignored(env):
    """An embedded attacker key is never used: the registry's key for the
    kid is, so the attacker's signature fails; an attacker kid is unknown."""
    atk = S.generate_key("ES256")
    atk_jwk = S.public_jwk(atk, "ES256", "e1-es256", E1)
    for k in ("uscc", "use"):
        atk_jwk.pop(k)
    c = S.claims(E1, "BANK001")
    tok = S.sign_compact(header(jwk=atk_jwk), c, atk, "ES256")
    refused(env, env.get(TAX, token=tok), 401, "signature_invalid")

    atk_jwk["kid"] = "attacker-key"
    tok = S.sign_compact(header(kid="attacker-key", jwk=atk_jwk), c, atk,
                         "ES256")
    refused(env, env.get(TAX, token=tok), 401, "kid_unknown")


class _Fetches(http.server.BaseHTTPRequestHandler):
    hits = []
    body = b"{}"

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


def test_jku_and_x5u_are_never_fetched(env):
    atk = S.generate_key("ES256")
    atk_jwk = S.public_jwk(atk, "ES256", "attacker-key", E1)
    _Fetches.hits = []
    _Fetches.body = json.dumps({"keys": [atk_jwk]}).encode()
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Fetches)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/keys.json"
        c = S.claims(E1, "BANK001")
        for member in ("jku", "x5u"):
            tok = S.sign_compact(header(kid="attacker-key", **{member: url}),
                                 c, atk, "ES256")
            refused(env, env.get(TAX, token=tok), 401, "kid_unknown")
            # a registered kid with the attacker's signature
            tok = S.sign_compact(header(**{member: url}), c, atk, "ES256")
            refused(env, env.get(TAX, token=tok), 401, "signature_invalid")
        time.sleep(0.3)
        assert _Fetches.hits == [], f"the gateway fetched {_Fetches.hits}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_jku_on_a_genuine_token_changes_nothing(env):
    """Ignored, not refused: a registered key's genuine token with a jku
    member still passes (the key comes from the registry)."""
    tok = signed(env, header(jku="http://127.0.0.1:9/none.json"),
                 S.claims(E1, "BANK001"))
    r = env.get(TAX, token=tok)
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------------
# issuer_invalid, lifetime, nbf, cnf

def test_issuer_not_the_keys_enterprise(env):
    # E1's key signs a token claiming to be E2 (sub E2 too, path E2)
    tok = env.token(kid="e1-es256", iss=E2, sub=E2)
    r = env.get(f"/api/v1/enterprises/{E2}/tax", token=tok)
    refused(env, r, 401, "issuer_invalid")
    # iss wrong, sub right: iss is checked first
    tok = env.token(kid="e1-es256", iss=E2)
    refused(env, env.get(TAX, token=tok), 401, "issuer_invalid")
    # E2's own key cannot speak for E1 either
    tok = env.token(uscc=E2, kid="e2-es256", iss=E1, sub=E1)
    refused(env, env.get(TAX, token=tok), 401, "issuer_invalid")


@pytest.mark.parametrize("iss", [S.bad_uscc(E1), E1[:17], E1 + "0",
                                 E1.replace("M", "m"), ""])
def test_issuer_not_a_valid_uscc(env, iss):
    """sub stays E1 (the path's): only iss is wrong."""
    tok = env.token(iss=iss)
    refused(env, env.get(TAX, token=tok), 401, "issuer_invalid")


def test_lifetime_too_long(env):
    now = int(time.time())
    tok = env.token(iat=now, exp=now + 365 * 86400)
    refused(env, env.get(TAX, token=tok), 401, "lifetime_too_long")


def test_token_not_yet_valid(env):
    now = int(time.time())
    tok = env.token(nbf=now + 3600)
    refused(env, env.get(TAX, token=tok), 401, "token_not_yet_valid")
    # iat in the future beyond the leeway is refused the same way
    tok = env.token(iat=now + 3600, exp=now + 7200)
    refused(env, env.get(TAX, token=tok), 401, "token_not_yet_valid")


def test_cnf_for_another_certificate(env):
    other = S.x5t_s256(env.certs["BANK002"].cert)
    tok = env.token(cnf={"x5t#S256": other})
    refused(env, env.get(TAX, token=tok), 401, "cnf_mismatch")
    # control: bound to the presented certificate
    mine = S.x5t_s256(env.certs["BANK001"].cert)
    r = env.get(TAX, token=env.token(cnf={"x5t#S256": mine}))
    assert r.status_code == 200, r.text


def test_cnf_required_by_policy(env, cnf_gateway):
    g = cnf_gateway
    refused(env, via(env, g, token=env.token()), 401, "cnf_mismatch")
    mine = S.x5t_s256(env.certs["BANK001"].cert)
    r = via(env, g, token=env.token(cnf={"x5t#S256": mine}))
    assert r.status_code == 200, r.text
    # and on the plain listener, against the Client-Cert certificate
    r = via(env, g, plain=True, token=env.token(cnf={"x5t#S256": mine}))
    assert r.status_code == 200, r.text
    r = via(env, g, plain=True, token=env.token())
    refused(env, r, 401, "cnf_mismatch")


# ------------------------------------------------------------------------
# mode_not_consented, raw_not_allowed

def test_mode_not_consented_for_verification(env):
    tok = env.token(modes=["query"])
    r = env.post(TAX, token=tok, json=VERIFY_BODY)
    refused(env, r, 403, "mode_not_consented")
    assert "match" not in r.text
    # the same token may query
    assert env.get(TAX, token=tok).status_code == 200
    # control: a verify consent gets its answer
    r = env.post(TAX, token=env.token(modes=["verify"]), json=VERIFY_BODY)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["match"] is True, r.text


def test_mode_not_consented_for_query(env):
    tok = env.token(modes=["verify"])
    refused(env, env.get(TAX, token=tok), 403, "mode_not_consented")


def test_raw_not_allowed_under_masked_consent(env):
    for detail in (None, "masked"):
        tok = env.token(detail=detail)
        r = env.get(TAX, token=tok, headers={"X-Credit-Detail": "raw"})
        refused(env, r, 403, "raw_not_allowed")
    # control: a raw consent on a raw_allowed category
    r = env.get(TAX, token=env.token(detail="raw"),
                headers={"X-Credit-Detail": "raw"})
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Credit-Disclosure") == "raw"


def test_raw_not_allowed_on_category_without_raw(env):
    tok = env.token(detail="raw", categories=["tax", "environment"])
    r = env.get(ENV, token=tok, headers={"X-Credit-Detail": "raw"})
    refused(env, r, 403, "raw_not_allowed")
    r = env.get(ENV, token=tok)
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Credit-Disclosure") == "masked"


# ------------------------------------------------------------------------
# Malformed tokens: always a clean 401 token_malformed

def _claims_text(**over):
    c = S.claims(E1, "BANK001", **over)
    return json.dumps(c, separators=(",", ":"))


DUP_ALG_HEADER = ('{"alg":"ES256","alg":"none","typ":"consent+jwt",'
                  '"kid":"e1-es256"}')


def _malformed_cases(env):
    good = env.token()
    h, p, s = good.split(".")
    hdr = header()
    c = S.claims(E1, "BANK001")
    now = int(time.time())
    cases = {
        "two segments": f"{h}.{p}",
        "four segments": f"{h}.{p}.{s}.{s}",
        "empty payload": f"{h}..{s}",
        "padding in header": f"{h}=.{p}.{s}" if len(h) % 4 else
                             f"{h}==.{p}.{s}",
        "padding in signature": f"{h}.{p}.{s}=" if len(s) % 4 else
                                f"{h}.{p}.{s}==",
        "plus in payload": f"{h}.{p[:-3]}+{p[-2:]}.{s}",
        "slash in signature": f"{h}.{p}.{s[:10]}/{s[11:]}",
        "standard base64 alphabet":
            ".".join(base64.b64encode(base64.urlsafe_b64decode(x + "==="))
                     .decode().rstrip("=")
                     for x in (h, p, s)).replace("-", "+").replace("_", "/")
            if any(ch in good for ch in "-_") else f"{h}.{p}.+{s[1:]}",
        "space inside": f"{h}.{p[:20]} {p[20:]}.{s}",
        "tab inside": f"{h}.{p[:20]}\t{p[20:]}.{s}",
        "control char": f"{h}.{p[:20]}\x01{p[20:]}.{s}",
        "DEL char": f"{h}\x7f.{p}.{s}",
        "non-ascii byte": f"{h}.{p}.{s}\xff",
        "header not JSON": f"{b64('not json at all')}.{p}.{s}",
        "header JSON array": f"{b64(json.dumps([hdr]))}.{p}.{s}",
        "header JSON string": f"{b64(json.dumps('ES256'))}.{p}.{s}",
        "header truncated JSON":
            f"{b64(json.dumps(hdr)[:-1])}.{p}.{s}",
        "header duplicate alg": b64(DUP_ALG_HEADER) + f".{p}.{s}",
        "header with NUL": b64(json.dumps(hdr)[:-1] + ',"x":"a\u0000"}')
                           + f".{p}.{s}",
        "header raw NUL": b64(json.dumps(hdr)[:-1].encode() + b',"x":"a\x00"}')
                          + f".{p}.{s}",
        "header non-UTF-8": b64(json.dumps(hdr)[:-1].encode()
                                + b',"x":"\xc3\x28"}') + f".{p}.{s}",
        "alg not a string": signed(env, header(alg=256), c),
        "kid missing": signed(env, header(kid=None), c),
        "kid not a string": signed(env, header(kid=["e1-es256"]), c),
        # signed payloads: only the claims can be the reason
        "payload not JSON": signed(env, hdr, "not json"),
        "payload JSON array": signed(env, hdr, json.dumps([c])),
        "aud number": signed(env, hdr, {**c, "aud": 1}),
        "aud empty array": signed(env, hdr, {**c, "aud": []}),
        "purposes string": signed(env, hdr, {**c, "purposes": PURPOSE}),
        "purposes empty": signed(env, hdr, {**c, "purposes": []}),
        "categories object": signed(env, hdr, {**c, "categories": {}}),
        "jti too long": signed(env, hdr, {**c, "jti": "j" * 65}),
        "jti bad chars": signed(env, hdr, {**c, "jti": "a b"}),
        "exp string": signed(env, hdr, {**c, "exp": str(c["exp"])}),
        "exp float": signed(env, hdr, {**c, "exp": float(c["exp"])}),
        "exp exponent": signed(env, hdr, _claims_text().replace(
            f'"exp":{c["exp"]}', f'"exp":{c["exp"] / 1e9}e9')),
        "exp negative": signed(env, hdr, {**c, "exp": -1}),
        "exp missing": signed(env, hdr, {k: v for k, v in c.items()
                                         if k != "exp"}),
        "exp before iat": signed(env, hdr, {**c, "iat": now,
                                            "exp": now - 10}),
        "iat bool": signed(env, hdr, {**c, "iat": True}),
        "nbf string": signed(env, hdr, {**c, "nbf": "0"}),
        "modes unknown": signed(env, hdr, {**c, "modes": ["download"]}),
        "detail unknown": signed(env, hdr, {**c, "detail": "full"}),
        "max_uses zero": signed(env, hdr, {**c, "max_uses": 0}),
        "cnf not object": signed(env, hdr, {**c, "cnf": "abc"}),
        "cnf short x5t": signed(env, hdr, {**c, "cnf": {"x5t#S256": "abc"}}),
        "claims control char": signed(
            env, hdr, _claims_text()[:-1].encode() + b',"n":"a\x01b"}'),
        "claims non-UTF-8": signed(
            env, hdr, _claims_text()[:-1].encode() + b',"n":"\xff\xfe"}'),
        "claims overlong UTF-8": signed(
            env, hdr, _claims_text()[:-1].encode() + b',"n":"\xc0\xaf"}'),
        "claims escaped NUL": signed(
            env, hdr, _claims_text()[:-1] + ',"n":"a\\u0000b"}'),
        "claims duplicate aud": signed(
            env, hdr, _claims_text()[:-1] + ',"aud":"BANK002"}'),
        "claims duplicate exp": signed(
            env, hdr, _claims_text()[:-1] + f',"exp":{now + 60}}}'),
        "claims trailing garbage": signed(env, hdr, _claims_text() + "x"),
        "claims two objects": signed(env, hdr, _claims_text() * 2),
    }
    return cases


def test_malformed_tokens(env):
    health = Health(env.gw)
    failures = []
    for name, tok in _malformed_cases(env).items():
        r = env.get(TAX, token=tok)
        try:
            problem(r, 401, "token_malformed")
        except AssertionError as e:
            failures.append(f"{name}: {str(e).splitlines()[0][:300]}")
    health.check()
    assert not failures, "\n".join(failures)


def test_extreme_integers(env):
    """Integers at and beyond int64: always a clean 401 (never 5xx, never
    allowed); beyond int64 the JSON itself is refused."""
    health = Health(env.gw)
    hdr = header()
    c = S.claims(E1, "BANK001")
    big = 2 ** 63 - 1
    cases = {
        "iat,exp near int64 max": ({**c, "iat": big - 100, "exp": big},
                                   ("token_not_yet_valid", "token_expired",
                                    "token_malformed")),
        "exp int64 max": ({**c, "exp": big}, ("lifetime_too_long",
                                              "token_malformed")),
        "nbf int64 max": ({**c, "nbf": big}, ("token_not_yet_valid",
                                              "token_malformed")),
        "exp 2^64": ({**c, "exp": 2 ** 64}, ("token_malformed",)),
        "exp -2^63": ({**c, "exp": -2 ** 63}, ("token_malformed",)),
        "max_uses 2^64": ({**c, "max_uses": 2 ** 64}, ("token_malformed",)),
    }
    failures = []
    for name, (claims, reasons) in cases.items():
        r = env.get(TAX, token=signed(env, hdr, claims))
        try:
            assert r.status_code == 401, (r.status_code, r.text[:300])
            reason = r.json().get("type", "").split(":")[-1]
            assert reason in reasons, reason
            problem(r, 401, reason)
        except (AssertionError, ValueError) as e:
            failures.append(f"{name}: {e}")
    health.check()
    assert not failures, "\n".join(failures)


def test_malformed_tokens_are_audited(env):
    tok = signed(env, header(), {**S.claims(E1, "BANK001"), "aud": 7})
    refused(env, env.get(TAX, token=tok), 401, "token_malformed")


def test_64k_token_is_refused_by_nginx_or_module(env):
    health = Health(env.gw)
    tok = env.token(pad="x" * 65536)
    assert len(tok) > 64 * 1024
    r = env.get(TAX, token=tok)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    no_upstream_bytes(r.text)
    assert "X-Credit-Disclosure" not in r.headers
    health.check()
    # the gateway still works
    assert env.get(TAX).status_code == 200


def test_token_length_limit(env, make_gateway):
    """With header buffers large enough for the module to see them: 15 KB
    of garbage is malformed, a genuine 17 KB token is over the 16384-byte
    limit, a genuine 15 KB token is fine."""
    # the test upstream keeps nginx's 8k header buffers: do not forward the
    # (large) Authorization header to it
    g = make_gateway(http_directives={"large_client_header_buffers":
                                      "4 64k"},
                     location_directives={"proxy_set_header": [
                         'Connection ""', 'Authorization ""']})
    g.start()
    health = Health(g)
    garbage = "A" * 7000 + "." + "B" * 7000 + "." + "C" * 1500
    assert 15000 <= len(garbage) <= 16384
    refused(env, via(env, g, token=garbage), 401, "token_malformed")

    def sized(n):
        base = env.token(pad="")
        tok = env.token(pad="p" * (3 * (n - len(base)) // 4))
        return tok
    big = sized(17 * 1024)
    assert 16384 < len(big) < 18 * 1024, len(big)
    refused(env, via(env, g, token=big), 401, "token_malformed")
    ok = sized(15 * 1024)
    assert 14 * 1024 < len(ok) <= 16384, len(ok)
    r = via(env, g, token=ok)
    assert r.status_code == 200, r.text
    health.check()


# ------------------------------------------------------------------------
# Clock skew and lifetime edges (policy leeway 60 s, max_lifetime 90 days)

def test_exp_within_leeway_is_allowed(env):
    now = int(time.time())
    exp = now - LEEWAY + 5
    r = env.get(TAX, token=env.token(iat=exp - 3600, exp=exp))
    assert r.status_code == 200, r.text


def test_exp_beyond_leeway_is_expired(env):
    now = int(time.time())
    exp = now - LEEWAY - 5
    tok = env.token(iat=exp - 3600, exp=exp)
    refused(env, env.get(TAX, token=tok), 401, "token_expired")


def test_nbf_within_leeway_is_allowed(env):
    now = int(time.time())
    r = env.get(TAX, token=env.token(nbf=now + LEEWAY - 5))
    assert r.status_code == 200, r.text


def test_nbf_beyond_leeway_is_not_yet_valid(env):
    now = int(time.time())
    tok = env.token(nbf=now + LEEWAY + 5)
    refused(env, env.get(TAX, token=tok), 401, "token_not_yet_valid")


def test_lifetime_exactly_max_is_allowed(env):
    now = int(time.time())
    r = env.get(TAX, token=env.token(iat=now, exp=now + MAX_LIFETIME))
    assert r.status_code == 200, r.text


def test_lifetime_max_plus_one_is_too_long(env):
    now = int(time.time())
    tok = env.token(iat=now, exp=now + MAX_LIFETIME + 1)
    refused(env, env.get(TAX, token=tok), 401, "lifetime_too_long")


# ------------------------------------------------------------------------
# Interoperability

@pytest.mark.parametrize("alg", S.ALGS)
def test_pyjwt_tokens_verify_in_gateway(env, alg):
    import jwt
    priv, jwk = env.key(f"e1-{alg.lower()}")
    c = S.claims(E1, "BANK001")
    tok = jwt.encode(c, priv, algorithm=alg,
                     headers={"typ": "consent+jwt", "kid": jwk["kid"]})
    r = env.get(TAX, token=tok)
    assert r.status_code == 200, r.text
    e = env.decision(r)
    assert e["decision"] == "allow" and e["consent"] == c["jti"], e


def _keygen(directory, alg, kid, uscc=E1):
    prefix = directory / kid
    r = subprocess.run([str(CONSENT), "keygen", "--alg", alg, "--kid", kid,
                        "--uscc", uscc, "--out", str(prefix)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return (prefix.with_name(kid + ".key.pem"),
            json.loads(prefix.with_name(kid + ".jwk").read_text()))


def _sign(key, alg, kid, *extra, bank="BANK001"):
    r = subprocess.run([str(CONSENT), "sign", "--key", str(key), "--alg",
                        alg, "--kid", kid, "--iss", E1, "--aud", bank,
                        "--purposes", PURPOSE, "--categories", "tax",
                        *extra], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("alg", S.ALGS)
def test_credit_consent_tokens_verify_in_pyjwt(env, conf_dir, alg):
    import jwt
    kid = f"cc-{alg.lower()}"
    key, jwk = _keygen(conf_dir, alg, kid)
    assert jwk["alg"] == alg and jwk["kid"] == kid and jwk["uscc"] == E1
    tok = _sign(key, alg, kid, "--ttl", "600")
    priv = serialization.load_pem_private_key(key.read_bytes(), None)
    claims = jwt.decode(tok, priv.public_key(), algorithms=[alg],
                        audience="BANK001")
    assert claims["iss"] == E1 and claims["sub"] == E1
    assert claims["purposes"] == [PURPOSE] and claims["categories"] == ["tax"]
    assert claims["exp"] - claims["iat"] == 600
    hdr = jwt.get_unverified_header(tok)
    assert hdr == {"alg": alg, "typ": "consent+jwt", "kid": kid} or (
        hdr["alg"] == alg and hdr["typ"] == "consent+jwt"
        and hdr["kid"] == kid), hdr
    # PyJWT's JWK parser agrees with keygen's JWK
    pub = jwt.PyJWK.from_dict({k: v for k, v in jwk.items()
                               if k not in ("uscc",)}).key
    jwt.decode(tok, pub, algorithms=[alg], audience="BANK001")
    # and a tampered token does not verify
    h, p, s = tok.split(".")
    bad = json.loads(base64.urlsafe_b64decode(p + "==="))
    bad["aud"] = "BANK002"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{h}.{S.b64url(json.dumps(bad).encode())}.{s}",
                   priv.public_key(), algorithms=[alg], audience="BANK002")


def test_credit_consent_sm2_token_verifies_in_gateway(env, conf_dir,
                                                       make_gateway):
    key, jwk = _keygen(conf_dir, "SM2", "e1-sm2")
    assert jwk["kty"] == "EC" and jwk["crv"] == "SM2", jwk
    jwks = json.loads(env.st.keys_path.read_text())
    jwks["keys"].append(jwk)
    g = make_gateway(keys=S.write_json(conf_dir / "with-sm2.jwks", jwks))
    g.start()
    tok = _sign(key, "SM2", "e1-sm2")
    r = via(env, g, token=tok)
    assert r.status_code == 200, r.text
    assert r.json()["uscc"] == E1
    # tampered: a flipped signature bit is refused
    h, p, s = tok.split(".")
    sig = bytearray(base64.urlsafe_b64decode(s + "=="))
    sig[10] ^= 1
    r = via(env, g, token=f"{h}.{p}.{S.b64url(bytes(sig))}")
    refused(env, r, 401, "signature_invalid")
    # an SM2 signature under an ES256 header and the SM2 key: pinned
    hdr = json.loads(base64.urlsafe_b64decode(h + "=="))
    hdr["alg"] = "ES256"
    r = via(env, g, token=f"{S.b64url(json.dumps(hdr).encode())}.{p}.{s}")
    refused(env, r, 401, "alg_not_allowed")
    # the session gateway does not know the key
    refused(env, env.get(TAX, token=tok), 401, "kid_unknown")


# ------------------------------------------------------------------------
# Key files with coordinates longer than their curve (fuzz finding 1: the
# coordinate was decoded into a fixed stack buffer before its length was
# checked; a 240-character y smashed the stack of nginx -t)

def _oversized(member, kty_jwk):
    jwk = dict(kty_jwk)
    jwk[member] = "QUFB" * 80
    return jwk


@pytest.mark.parametrize("kid,member", [("e1-es256", "y"),
                                        ("e1-es256", "x"),
                                        ("e1-eddsa", "x")])
def test_oversized_key_coordinate_is_refused(env, make_gateway, conf_dir,
                                             kid, member):
    jwks = json.loads(env.st.keys_path.read_text())
    i = next(i for i, k in enumerate(jwks["keys"]) if k["kid"] == kid)
    jwks["keys"][i] = _oversized(member, jwks["keys"][i])
    keys = S.write_json(conf_dir / f"long-{kid}-{member}.jwks", jwks)
    want = f"$.keys[{i}].{member}: must decode to 32 bytes, not 240"

    r = subprocess.run([str(CONSENT), "inspect", "--jwks", str(keys),
                        env.token()], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert str(keys) in r.stderr and want in r.stderr, r.stderr

    rc, out = make_gateway(keys=keys).test()
    assert rc == 1, (rc, out[-2000:])
    assert str(keys) in out and want in out, out[-2000:]


# ------------------------------------------------------------------------
# Verified-token cache

def test_cache_hit_on_repeated_token(env):
    tok = env.token()
    r = env.get(TAX, token=tok)
    assert r.status_code == 200, r.text
    before = status_doc(env)["token_cache"]
    r = env.get(TAX, token=tok)
    assert r.status_code == 200, r.text
    after = status_doc(env)["token_cache"]
    assert after["hits"] >= before["hits"] + 1, (before, after)
    assert after["misses"] == before["misses"], (before, after)


def test_refused_tokens_are_not_cached(env):
    """Only successes are cached: the same bad token is refused twice by the
    full check, and a cache entry never lets it through."""
    tok = env.token(kid="e1-es256", priv=S.generate_key("ES256"))
    before = status_doc(env)["token_cache"]
    for _ in range(2):
        refused(env, env.get(TAX, token=tok), 401, "signature_invalid")
    after = status_doc(env)["token_cache"]
    assert after["hits"] == before["hits"], (before, after)


def test_cache_does_not_bypass_request_checks(env):
    """A cached token is still checked against each request."""
    tok = env.token()
    assert env.get(TAX, token=tok).status_code == 200
    refused(env, env.get(TAX, token=tok, bank="BANK002",
                         purpose="credit_assessment"), 403,
            "audience_mismatch")
    refused(env, env.get(TAX, token=tok, purpose="credit_assessment"), 403,
            "purpose_not_allowed")
    refused(env, env.get(ENV, token=tok), 403, "category_not_consented")
    refused(env, env.get(TAX, token=tok, headers={"X-Credit-Detail": "raw"}),
            403, "raw_not_allowed")


def test_cache_invalidated_by_reload(env, make_gateway, conf_dir):
    jwks = json.loads(env.st.keys_path.read_text())
    keys = S.write_json(conf_dir / "reload.jwks", jwks)
    g = make_gateway(keys=keys)
    g.start()
    tok = env.token(kid="e1-es256")
    other = env.token(kid="e1-eddsa")
    assert via(env, g, token=tok).status_code == 200
    before = status_doc(env, g)["token_cache"]
    assert via(env, g, token=tok).status_code == 200
    mid = status_doc(env, g)["token_cache"]
    assert mid["hits"] >= before["hits"] + 1, (before, mid)

    jwks["keys"] = [k for k in jwks["keys"] if k["kid"] != "e1-es256"]
    S.write_json(keys, jwks)
    assert g.reload(), g.read_error_log()[-2000:]
    r = via(env, g, token=tok)
    refused(env, r, 401, "kid_unknown")
    refused(env, via(env, g, token=tok), 401, "kid_unknown")
    r = via(env, g, token=other)
    assert r.status_code == 200, r.text
