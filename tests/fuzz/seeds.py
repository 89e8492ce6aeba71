#!/usr/bin/env python3
"""Seed corpora for the libFuzzer harnesses (tests/fuzz/, docs/fuzzing.md),
built from the project's own inputs: the shipped policies and bank
registry, the unit-test policy fixture, the demo platform's records, keys
made the way credit-consent makes them, and the shapes of the unit tests.

    seeds.py OUTDIR        writes OUTDIR/<harness>/<name>

The filter and checks harnesses take a first byte choosing the category:
the index in the list of every category of platform-policy.json then of
spec-example.json, each sorted by name (tests/fuzz/fuzz.h builds the same
list); the high bit of the filter's byte asks for the raw level."""

import base64
import hashlib
import json
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICIES = [ROOT / "policies" / "platform-policy.json",
            ROOT / "tests" / "unit" / "fixtures" / "policy" / "spec-example.json"]
RECORDS = ROOT / "demo" / "platform" / "api" / "v1" / "enterprises"
USCC = "91350100M000100Y43"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def write(out, harness, name, data):
    d = out / harness
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def categories():
    cats = []
    for p in POLICIES:
        cats += [(p, c) for c in sorted(json.loads(p.read_text())["categories"])]
    return cats


def jwks_seeds(out):
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives import serialization as ser

    def ec_jwk(kid, key):
        n = key.public_key().public_numbers()
        return {"kid": kid, "kty": "EC", "crv": "P-256", "alg": "ES256",
                "use": "sig", "uscc": USCC,
                "x": b64url(n.x.to_bytes(32, "big")),
                "y": b64url(n.y.to_bytes(32, "big"))}

    def ed_jwk(kid, key):
        raw = key.public_key().public_bytes(ser.Encoding.Raw,
                                            ser.PublicFormat.Raw)
        return {"kid": kid, "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
                "uscc": USCC, "x": b64url(raw)}

    def rsa_jwk(kid, key, alg):
        n = key.public_key().public_numbers()
        return {"kid": kid, "kty": "RSA", "alg": alg, "uscc": USCC,
                "n": b64url(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
                "e": b64url(n.e.to_bytes(3, "big"))}

    es = ec_jwk("e1-es256", ec.generate_private_key(ec.SECP256R1()))
    ed = ed_jwk("e1-eddsa", ed25519.Ed25519PrivateKey.generate())
    rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rs, ps = rsa_jwk("e1-rs256", rk, "RS256"), rsa_jwk("e1-ps256", rk, "PS256")
    write(out, "keys", "all.json", json.dumps({"keys": [es, ed, rs, ps]}))
    write(out, "keys", "es256.json", json.dumps({"keys": [es]}))
    write(out, "keys", "eddsa.json", json.dumps({"keys": [ed]}))
    write(out, "keys", "rs256.json", json.dumps({"keys": [rs]}))
    rec = {"kid": "e1-es256", "uscc": USCC, "state": "active",
           "not_before": 0, "not_after": 0, "version": 1, "jwk": es}
    write(out, "keyreg", "active.json", json.dumps(rec))
    write(out, "keyreg", "revoked.json", json.dumps(
        dict(rec, state="revoked", not_before=1700000000,
             not_after=1800000000, version=7)))
    write(out, "keyreg", "bounds.json", json.dumps(
        dict(rec, not_before=253402300798, not_after=253402300799,
             version=9007199254740991)))
    write(out, "keyreg", "rsa.json", json.dumps(
        dict(rec, jwk=dict(ps, kid="e1-es256"))))


def filter_seeds(out):
    cats = categories()
    for i, (policy, cat) in enumerate(cats):
        files = sorted(RECORDS.glob(f"*/{cat}"))
        if policy != POLICIES[0]:
            files = files[:1]
        for f in files:
            body = f.read_bytes()
            for raw in (0, 0x80):
                for h in ("filter", "filter_property"):
                    write(out, h, f"{cat}-{f.parent.name}-{raw >> 7}-{i}",
                          bytes([i | raw]) + body)
    small = ['{}', '{"annual":[{"year":2023,"tax_paid":123456.78}]}',
             '{"legal_representative":{"name":"陈建华","mobile":"13800138000"}}',
             '{"properties":[{"location":"福州市鼓楼区","assessed_value":1e6,'
             '"certificate_no":"闽(2020)123","registration_date":"2020-01-02"}]}',
             '{"violations":[{"date":"2021/05/06","penalty_amount":-5}]}',
             # a withheld run of amounts read 64 bytes at a time
             # (lib/json/numrun.c), the block seeing the array close
             '{"monthly":[\n    10017.05,\n    -0.5,\n    0, -7, 99.99,'
             ' 123456789012.25, -0.001]' + ' ' * 64 + '}']
    for j, doc in enumerate(small):
        for i in range(len(cats)):
            for h in ("filter", "filter_property"):
                write(out, h, f"small-{j}-{i}", bytes([i]) + doc.encode())


def checks_seeds(out):
    for i, (policy, cat) in enumerate(categories()):
        rules = json.loads(policy.read_text())["categories"][cat].get(
            "verify", {})
        checks = []
        for path, ops in rules.items():
            field = path.replace("[]", "[year=2023]")
            for op in ops:
                value = "A" if op in ("eq", "ne") and "[" not in path else 100
                checks.append({"field": field, "op": op, "value": value})
        if checks:
            write(out, "checks", f"{cat}-{i}",
                  bytes([i]) + json.dumps({"checks": checks[:32]}).encode())
        write(out, "checks", f"one-{i}", bytes([i]) + json.dumps(
            {"checks": [{"field": "credit_rating", "op": "eq",
                         "value": True}]}).encode())


def token_seeds(out):
    claims = {"iss": USCC, "sub": USCC, "aud": ["BANK001"], "jti": "j-1",
              "iat": 1700000000, "exp": 1700003600,
              "purposes": ["loan_application"], "categories": ["tax"],
              "modes": ["query", "verify"], "detail": "raw", "max_uses": 3,
              "cnf": {"x5t#S256": b64url(b"\1" * 32)}}
    # byte 0: 0 compact token as given, 1 claims signed with EdDSA,
    # 2 with ES256; byte 1: rules and request variations
    write(out, "token", "claims-eddsa", b"\x01\x00" + json.dumps(claims).encode())
    write(out, "token", "claims-es256", b"\x02\x03" + json.dumps(claims).encode())
    c = dict(claims, aud="BANK001", nbf=1700000000)
    del c["cnf"], c["modes"], c["detail"], c["max_uses"]
    write(out, "token", "claims-min", b"\x01\x01" + json.dumps(c).encode())
    hdr = b64url(json.dumps({"alg": "EdDSA", "typ": "consent+jwt",
                             "kid": "fuzz-eddsa"}).encode())
    write(out, "token", "compact", b"\x00\x00" + (
        hdr + "." + b64url(json.dumps(claims).encode()) + "." +
        b64url(b"\0" * 64)).encode())
    # mode 3: header, newline, claims: a withdrawal (revocation+jwt)
    write(out, "token", "withdrawal", b"\x03\x00" + json.dumps(
        {"alg": "EdDSA", "typ": "revocation+jwt",
         "kid": "fuzz-eddsa"}).encode() + b"\n" + json.dumps(
        {"iss": USCC, "jti": "j-1", "iat": 1700000000}).encode())


def audit_seeds(out):
    # one line per stream entry, fields "name=value" separated by tabs;
    # "+" seals the line into the chain, "=" re-delivers the last sealed
    # entry, "!" appends a signed checkpoint, "-" skips a seq
    lines = ["+event=decision\trid=r1\tbank=BANK001\tdecision=allow\treason=ok",
             "+event=decision\trid=r2\tdecision=deny\treason=token_expired",
             "=", "!", "+event=outcome\trid=r2\tstatus=200", "-",
             "+event=decision\trid=r4", "!", "+event=decision\trid=r5"]
    write(out, "audit", "chain", "\n".join(lines))
    write(out, "audit", "raw", "v=1\tevent=decision\tchain=gw/1/2\tseq=1\t"
          "prev=" + "0" * 64 + "\thash=" + "a" * 64)


def spool_seeds(out):
    def record(kind, meta, args):
        body = struct.pack(">BI", kind, len(meta)) + meta
        body += struct.pack(">I", len(args))
        for a in args:
            body += struct.pack(">I", len(a)) + a
        return (struct.pack(">I", len(body)) + body +
                hashlib.sha256(body).digest()[:4])

    xadd = [b"XADD", b"credit:audit", b"*", b"event", b"decision",
            b"hash", b"a" * 64]
    one = record(1, b"chain=gw/1/2 seq=1", xadd)
    write(out, "spool", "one", one)
    write(out, "spool", "three", one + record(2, b"", [b"PING"]) + one)
    write(out, "spool", "torn", one + one[:-3])


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    jwks_seeds(out)
    filter_seeds(out)
    checks_seeds(out)
    token_seeds(out)
    audit_seeds(out)
    spool_seeds(out)
    for p in POLICIES:
        write(out, "policy", p.name, p.read_bytes())
    banks = ROOT / "policies" / "banks.example.json"
    write(out, "banks", banks.name, banks.read_bytes())
    write(out, "banks", "narrowing.json", json.dumps({"banks": [
        {"code": "BANK001", "name": "b", "status": "suspended",
         "cert_sha256": ["ab" * 32], "purposes": ["loan_application"]}]}))
    for s in ("", "AQAB", "_-8", "Zm9vYmFy", "Zm9vYg", "QUFB" * 80):
        write(out, "base64url", f"b64-{len(s)}", s)
    for s in (USCC, "91110108MA01R7K28P", "913301007042186575",
              "/api/v1/enterprises/" + USCC + "/tax",
              "/api/v1/enterprises/91350100M000100Y4Z/environment",
              # the personal-identifier forms of lib/core/pii.h
              "owner=11010519491231002X", "+86 139 1234 5678",
              "0086-139-1234-5678", "(0591) 8765-4321",
              "6222 0212 3456 7890 128", "E12345678", "A123456(3)",
              "F131069277", "li_si+bank@mail.example.com.cn."):
        write(out, "uscc", hashlib.sha256(s.encode()).hexdigest()[:12], s)
    for s in ("1793462400", "2026-11", "2026-11-01", "2026-11-01T08:30Z",
              "2026-11-01 08:30:15.250+08:00", "2026-02-28T23:59:59-0530",
              "2026-11-01T00:00:00+08", "1969-12-31T19:00:00-05:00",
              "0001-01-01", "1900-01-01T00:00", "1971-06-01T12:00:00.5",
              "2026-11-01T08:30+08:30"):
        write(out, "isotime", hashlib.sha256(s.encode()).hexdigest()[:12], s)
    # fuzz_note: a first byte choosing what the rest is (0 a signed note or
    # checkpoint, 1 a verifier key, 2 an entry's canonical bytes, 3 a proof)
    go = ("If you think cryptography is the answer to your problem,\n"
          "then you don't know what your problem is.\n\n\u2014 PeterNeumann "
          "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
          "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
    ckpt = ("audit.example.cn/log\n1234\n"
            "AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk=\n\n\u2014 "
            "audit.example.cn/log AAAAAA==\n")
    write(out, "note", "go-note", b"\x00" + go.encode())
    write(out, "note", "checkpoint", b"\x00" + ckpt.encode())
    write(out, "note", "vkey", b"\x01PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwx"
          b"bzhKqiBfsVkmqq/LDE4izWy10TW")

    def field(k, v):
        return (struct.pack(">I", len(k)) + k + struct.pack(">I", len(v))
                + v)
    entry = b"".join(field(k, v) for k, v in (
        (b"v", b"3"), (b"event", b"decision"), (b"ts", b"1796083200000"),
        (b"rid", b"r1"), (b"gw", b"gw-1"), (b"bank", b"BANK001")))
    write(out, "note", "raw", b"\x02" + entry)
    write(out, "note", "proof", b"\x03" + struct.pack("<QQ", 5, 8)
          + bytes(range(64)) + bytes(96))


if __name__ == "__main__":
    main()
