"""What the transparency tests share (test_transparency_*.py): an
independent RFC 9162 / C2SP implementation in Python (to hold the C one
against), the log's signing key, and traffic of several enterprises and
banks through a shipkit Gateway."""

import base64
import hashlib
import json
import os
import subprocess
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey, Ed25519PublicKey)

from conftest import E1, E2, PURPOSE, S
from shipkit import Shipper, tool

LOG_NAME = "audit.credit-auth.test/log"
DASH = "\u2014 "


# ---- RFC 9162 §2.1, written from the RFC ----------------------------------

def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    """MTH of a list of leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(leaf, m, n, path, root):
    if m >= n:
        return False
    fn, sn, r = m, n - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(m, n, root1, root2, proof):
    if m == n:
        return not proof and root1 == root2
    if m == 0 or m > n or not proof:
        return False
    proof = list(proof)
    if m & (m - 1) == 0:
        proof.insert(0, root1)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


# ---- C2SP signed-note / tlog-checkpoint -------------------------------------

def key_hash(name, pub):
    return hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]


def vkey(name, pub):
    return "%s+%s+%s" % (name, key_hash(name, pub).hex(),
                         base64.b64encode(b"\x01" + pub).decode())


def open_checkpoint(note, name, pub):
    """(origin, size, root bytes) of a note signed by (name, pub), or an
    AssertionError saying what is wrong."""
    text, sep, sigs = note.rpartition("\n\n")
    assert sep, "no blank line"
    text += "\n"
    ok = False
    for line in sigs.splitlines():
        assert line.startswith(DASH), line
        who, blob = line[len(DASH):].split(" ")
        blob = base64.b64decode(blob, validate=True)
        if who == name and blob[:4] == key_hash(name, pub):
            Ed25519PublicKey.from_public_bytes(pub).verify(blob[4:],
                                                           text.encode())
            ok = True
    assert ok, "not signed by " + name
    origin, size, root = text.splitlines()[:3]
    assert str(int(size)) == size
    return origin, int(size), base64.b64decode(root, validate=True)


class LogKey:
    def __init__(self, directory, name=LOG_NAME):
        self.name = name
        self.priv = Ed25519PrivateKey.generate()
        self.pub = self.priv.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.pem = os.path.join(directory, "log-ed25519.pem")
        with open(self.pem, "wb") as f:
            f.write(self.priv.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
        self.pub_pem = os.path.join(directory, "log-ed25519.pub.pem")
        with open(self.pub_pem, "wb") as f:
            f.write(self.priv.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo))
        self.vkey = vkey(name, self.pub)

    def args(self):
        return ["--log-key", self.pem, "--log-name", self.name]

    def sign(self, text):
        """A note of text signed with this key (as a forger holding it)."""
        sig = self.priv.sign(text.encode())
        blob = base64.b64encode(key_hash(self.name, self.pub) + sig).decode()
        return f"{text}\n{DASH}{self.name} {blob}\n"


@pytest.fixture
def logkey(tmp_path):
    return LogKey(str(tmp_path))


# ---- traffic ------------------------------------------------------------------

def ask(env, gw, uscc=E1, bank="BANK001", purpose=PURPOSE, detail=None,
        category="tax"):
    """One request through the shipkit Gateway gw: a token of uscc's key
    for bank, the bank's certificate."""
    h = {"X-Credit-Purpose": purpose,
         "Authorization": "Bearer " + env.token(uscc=uscc, bank=bank)}
    if detail:
        h["X-Credit-Detail"] = detail
    cert = env.certs[bank]
    r = requests.get(gw.gw.url(f"/api/v1/enterprises/{uscc}/{category}"),
                     headers=h, cert=(cert.cert, cert.key),
                     verify=env.pki.server_ca_path, timeout=10)
    gw.sent += 1
    return r


def mixed_traffic(env, gw):
    """Allowed and refused requests of two enterprises and three banks;
    returns {uscc: [(status, bank)]}."""
    out = {E1: [], E2: []}
    plan = [(E1, "BANK001", None), (E1, "BANK001", "raw"),
            (E2, "BANK001", None), (E1, "BANK002", None),
            (E1, "BANK009", None), (E2, "BANK001", None),
            (E1, "BANK001", None)]
    for uscc, bank, detail in plan:
        r = ask(env, gw, uscc, bank, detail=detail)
        out[uscc].append((r.status_code, bank))
    return out


CONSENT = S.ROOT / "build" / "bin" / "credit-consent"
MONTH = time.strftime("%Y-%m", time.gmtime())


def consent(*args):
    return subprocess.run([str(CONSENT), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def b64(s):
    return base64.b64decode(s, validate=True)


class Shipped:
    """Mixed traffic shipped and signed; helpers over the archive."""

    def __init__(self, env, gw, archive, tmp, key):
        self.env, self.gw, self.archive, self.tmp, self.key = (
            env, gw, archive, tmp, key)
        self.plan = mixed_traffic(env, gw)
        gw.wait_signed()
        self.ship()

    def ship(self):
        r = Shipper(self.archive, self.gw, self.tmp).once(
            "--keep", "0", *self.key.args(), "--publish",
            str(self.tmp / "latest.ckpt"))
        assert r.returncode == 0, r.stderr
        return (self.tmp / "latest.ckpt").read_text()

    def statement(self, *extra, uscc=E1, fmt="json"):
        r = tool("statement", "--archive", self.archive.conninfo("reader"),
                 "--enterprise", uscc, "--month", MONTH, "--tz", "UTC",
                 "--format", fmt, "--log-key", self.key.pem,
                 "--banks", str(self.env.st.banks_path), *extra,
                 pgenv=self.archive.pg)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def write(self, doc, name="statement.json"):
        p = self.tmp / name
        p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
        return p

    def verify(self, path, *extra, key=None):
        return consent("statement", "verify", path, "--log-key",
                       key or self.key.vkey, *extra)


@pytest.fixture
def shipped(env, gw, archive, tmp_path, logkey):  # noqa: F811
    return Shipped(env, gw, archive, tmp_path, logkey)


def proof_of(doc, e):
    """An entry's inclusion proof as hashes: proof --rid gives the hashes,
    a statement indexes into its table of nodes (each distinct once)."""
    return [b64(doc["nodes"][h] if isinstance(h, int) else h)
            for h in e["proof"]]


def fields_of(e):
    """An entry's fields from its canonical bytes (u32be(len) name
    u32be(len) value ...), the first value of each name."""
    raw, at, out = b64(e["raw"]), 0, {}
    while at < len(raw):
        parts = []
        for _ in range(2):
            n = int.from_bytes(raw[at:at + 4], "big")
            parts.append(raw[at + 4:at + 4 + n].decode())
            at += 4 + n
        out.setdefault(parts[0], parts[1])
    return out


def move_entries(src, entries, dst):
    """Entries of statement src put into statement dst as a forger would:
    their proofs still valid (the nodes they need added to dst's table)."""
    out = []
    for e in entries:
        e = dict(e)
        proof = []
        for h in e["proof"]:
            dst["nodes"].append(src["nodes"][h])
            proof.append(len(dst["nodes"]) - 1)
        e["proof"] = proof
        out.append(e)
    dst["entries"] = sorted(dst["entries"] + out, key=lambda e: e["ord"])


class Withdrawals:
    """A second gateway writing to the shipkit Gateway gw's stream (same
    audit key), with the enterprises' withdrawal endpoint: its
    `revocation` entries are archived and logged with gw's."""

    def __init__(self, env, gw):
        self.env, self.port = env, S.free_port()
        self.gw = env.st.make_gateway(
            stream=gw.stream, gateway_id="gw-withdraw",
            http_directives={"credit_auth_audit_key":
                             f"{env.st.audit_key} interval=200ms"},
            http_extra=S.withdrawal_server(env.pki, self.port,
                                           rate="1000r/s", burst=1000))
        self.gw.ports.append(self.port)
        self.gw.start()

    def withdraw(self, jti, uscc=E1):
        """uscc withdraws its consent jti, signed with its key-file key."""
        kid = "e1-es256" if uscc == E1 else "e2-es256"
        body = S.sign_compact({"alg": "ES256", "typ": "revocation+jwt",
                               "kid": kid},
                              {"iss": uscc, "jti": jti,
                               "iat": int(time.time())},
                              self.env.key(kid)[0], "ES256")
        r = requests.post(f"https://127.0.0.1:{self.port}"
                          "/credit-auth/withdraw", data=body,
                          headers={"Content-Type": "application/jwt"},
                          verify=self.env.pki.server_ca_path, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def stop(self):
        self.gw.stop()


def checkpoint_of(doc):
    return doc["log"]["tree_size"], b64(doc["log"]["root"])


