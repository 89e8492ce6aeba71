"""USCCs, enterprise keys (JWKS), banks registry, audit and hash keys, consent tokens and forgeries."""

import base64
import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .proc import b64url, write_json
from .pki import BankCert, _write_key, cert_sha256


USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def uscc_check_char(s17):
    total, weight = 0, 1
    for c in s17:
        total += USCC_ALPHABET.index(c) * weight
        weight = weight * 3 % 31
    check = 31 - total % 31
    return USCC_ALPHABET[0 if check == 31 else check]


def uscc_valid(s):
    return (isinstance(s, str) and len(s) == 18
            and all(c in USCC_ALPHABET for c in s)
            and uscc_check_char(s[:17]) == s[17])


def make_uscc(body17):
    """18-char USCC from 17 leading characters (check character added)."""
    assert len(body17) == 17, body17
    return body17 + uscc_check_char(body17)


def bad_uscc(uscc):
    """The same USCC with a wrong check character."""
    good = uscc[17]
    wrong = next(c for c in "0123456789" if c != good)
    return uscc[:17] + wrong


DEMO_USCC = "91350100M000100Y43"


ALGS = ("ES256", "RS256", "PS256", "EdDSA")


def _int_b64(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return b64url(n.to_bytes(length, "big"))


def public_jwk(priv, alg, kid, uscc):
    pub = priv.public_key()
    jwk = {"kid": kid}
    if isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        jwk.update(kty="EC", crv="P-256", x=_int_b64(nums.x, 32),
                   y=_int_b64(nums.y, 32))
    elif isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        jwk.update(kty="RSA", n=_int_b64(nums.n), e=_int_b64(nums.e))
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw,
                               serialization.PublicFormat.Raw)
        jwk.update(kty="OKP", crv="Ed25519", x=b64url(raw))
    else:
        raise ValueError("unsupported key type")
    jwk.update(alg=alg, use="sig", uscc=uscc)
    return jwk


def generate_key(alg):
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported alg {alg}")


def make_enterprise_key(uscc, alg="ES256", kid=None):
    """-> (private key, public JWK dict {kid,kty,crv,x,y,alg,use,uscc})."""
    kid = kid or f"{uscc}-{alg.lower()}-{uuid.uuid4().hex[:8]}"
    priv = generate_key(alg)
    return priv, public_jwk(priv, alg, kid, uscc)


def write_jwks(path, jwks):
    return write_json(path, {"keys": list(jwks)})


def write_banks(path, banks):
    """banks: list of {"code","name","cert_sha256":[hex],"status",
    "purposes"?}."""
    return write_json(path, {"banks": list(banks)})


def bank_entry(code, name, certs, status="active", purposes=None):
    e = {"code": code, "name": name,
         "cert_sha256": [c.sha256 if isinstance(c, BankCert) else c
                         for c in certs],
         "status": status}
    if purposes is not None:
        e["purposes"] = list(purposes)
    return e


def make_audit_key(directory):
    """Ed25519 audit key: -> (private PEM path, public PEM path)."""
    directory = Path(directory)
    key = ed25519.Ed25519PrivateKey.generate()
    priv = _write_key(directory / "audit-ed25519.pem", key)
    pub = directory / "audit-ed25519.pub.pem"
    pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
    os.chmod(pub, 0o644)
    return str(priv), str(pub)


def make_hash_key(directory):
    """Key file for the `hash` treatment (credit_auth_hash_key): 64 hex
    characters of random, i.e. 64 bytes of key material."""
    p = Path(directory) / "hash.key"
    p.write_text(os.urandom(32).hex() + "\n")
    os.chmod(p, 0o600)
    return str(p)


def consent_id():
    """A random jti the audit records as it is: random hex can hold a run
    of digits that reads as a mobile or account number (lib/core/pii.h), which
    the gateway records as sha256:<hex> instead."""
    while True:
        h = uuid.uuid4().hex
        if not re.search(r"[0-9]{6}", h):
            return "c-" + h


def claims(uscc, bank, lifetime=3600, purposes=("loan_application",),
           categories=("tax",), **extra):
    """Sane default claims.  Pass name=None in extra to drop a claim."""
    now = int(time.time())
    c = {"iss": uscc, "sub": uscc, "aud": bank,
         "jti": consent_id(),
         "iat": now, "exp": now + lifetime,
         "purposes": list(purposes), "categories": list(categories)}
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def mint_token(priv_key, alg, kid, claims, headers=None):
    """Compact JWS via PyJWT; header typ=consent+jwt and kid by default.
    headers may override (a value None removes the member, e.g. typ)."""
    import jwt
    h = {"typ": "consent+jwt", "kid": kid}
    if headers:
        h.update(headers)
    drop = [k for k, v in h.items() if v is None]
    h = {k: v for k, v in h.items() if v is not None}
    tok = jwt.encode(claims, priv_key, algorithm=alg, headers=h)
    if drop:        # PyJWT always writes typ/alg; strip by hand, re-sign
        head, payload, _ = tok.split(".")
        hdr = json.loads(base64.urlsafe_b64decode(head + "=="))
        for k in drop:
            hdr.pop(k, None)
        tok = sign_compact(hdr, claims, priv_key, alg)
    return tok


def sign_compact(header, payload, priv_key, alg):
    """Signs an arbitrary header/payload (no PyJWT header rules)."""
    import jwt
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(payload, separators=(",", ":")).encode()
                  if not isinstance(payload, (bytes, str))
                  else (payload.encode() if isinstance(payload, str)
                        else payload))
    signing_input = f"{head}.{body}".encode()
    algo = jwt.get_algorithm_by_name(alg)
    key = algo.prepare_key(priv_key)
    return f"{head}.{body}.{b64url(algo.sign(signing_input, key))}"


def compact(header, payload, signature=b""):
    """Unsigned/forged compact JWS from parts (negative tests)."""
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(payload, separators=(",", ":")).encode())
    return f"{head}.{body}.{b64url(signature)}"


def hs256_forge(header, payload, secret):
    """RS256->HS256 confusion: HMAC keyed with (e.g.) the public key PEM."""
    import hmac
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def public_pem(priv_key):
    return priv_key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
