"""Test stack for the credit-auth gateway: PKI, keys, tokens, Redis, a demo
platform (upstream), a plain proxy and the gateway itself, each a real
process on a free loopback port under its own working directory.

Used by scripts/demo.py, tests/integration/ and bench/bench.py.  Standard
library plus Debian's python3-cryptography, python3-jwt, python3-redis.

Environment:
  CREDIT_AUTH_ROOT    repository root (default: this file's parent's parent)
  CREDIT_AUTH_MODULE  the module .so (default: <root>/build/ngx_http_credit_auth_module.so)
  CREDIT_AUTH_NGINX   the nginx binary (default: /usr/sbin/nginx)
  CREDIT_AUTH_ASAN=1  preload libasan into nginx (the module is ASan-built)
"""

import base64
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import namedtuple
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(os.environ.get("CREDIT_AUTH_ROOT")
            or Path(__file__).resolve().parent.parent)
NGINX = os.environ.get("CREDIT_AUTH_NGINX", "/usr/sbin/nginx")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def module_path():
    return Path(os.environ.get("CREDIT_AUTH_MODULE")
                or ROOT / "build" / "ngx_http_credit_auth_module.so")


def asan_enabled():
    return os.environ.get("CREDIT_AUTH_ASAN", "") not in ("", "0")


# --------------------------------------------------------------------------
# Ports and directories

_given_ports = set()


def free_port():
    """A loopback TCP port that is free now and not handed out before by
    this process (so two services started in a row never collide)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise RuntimeError("no free port")


def port_open(port, host="127.0.0.1", timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def workdir(path=None, fresh=False, prefix="credit-auth-"):
    """A working directory for a stack.  nginx workers run as `nobody` when
    we are root, so directories are world-readable (test material only)."""
    if path is None:
        path = Path(tempfile.mkdtemp(prefix=prefix))
    path = Path(path)
    if fresh and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)
    return path


def subdir(parent, name, mode=0o755):
    p = Path(parent) / name
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, mode)
    return p


def write_json(path, obj, mode=0o644):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
    os.chmod(path, mode)
    return path


def tail(path, lines=40):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------
# Unified Social Credit Code (GB 32100-2015)

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


# --------------------------------------------------------------------------
# PKI

BankCert = namedtuple("BankCert", "cert key sha256")


def _name(cn, org="credit-auth test"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path, key):
    path = Path(path)
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    os.chmod(path, 0o600)
    return path


def _write_cert(path, cert):
    path = Path(path)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o644)
    return path


def cert_der(cert_path):
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def cert_sha256(cert_path):
    return hashlib.sha256(cert_der(cert_path)).hexdigest()


def x5t_s256(cert_path):
    """RFC 8705 cnf value: base64url SHA-256 of the certificate DER."""
    return b64url(hashlib.sha256(cert_der(cert_path)).digest())


def client_cert_header(cert_path):
    """RFC 9440 Client-Cert header value: ':<base64 DER>:'."""
    return ":" + base64.b64encode(cert_der(cert_path)).decode() + ":"


class CA:
    def __init__(self, directory, name, cn):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.dir = Path(directory)
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                           critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))
        self.cert_path = _write_cert(self.dir / f"{name}.pem", self.cert)
        self.key_path = _write_key(self.dir / f"{name}.key", self.key)

    def issue(self, stem, cn, server=False, days=825, key=None, org=None):
        now = datetime.datetime.now(datetime.timezone.utc)
        key = key or ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder()
             .subject_name(_name(cn, org or "credit-auth test"))
             .issuer_name(self.cert.subject)
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1))
             .not_valid_after(now + datetime.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                            critical=True)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), critical=False))
        if server:
            b = (b.add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"),
                    x509.IPAddress(__import__("ipaddress")
                                   .ip_address("127.0.0.1"))]),
                    critical=False)
                 .add_extension(x509.ExtendedKeyUsage(
                     [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        else:
            b = b.add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        cert_path = _write_cert(self.dir / f"{stem}.crt", cert)
        key_path = _write_key(self.dir / f"{stem}.key", key)
        sha = hashlib.sha256(
            cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        return BankCert(str(cert_path), str(key_path), sha)


class PKI:
    """Server CA + server cert (127.0.0.1/localhost), bank CA + bank client
    certs, and an untrusted CA for negative tests."""

    def __init__(self, directory):
        self.dir = subdir(directory, "pki")
        self.server_ca = CA(self.dir, "server-ca", "credit-auth test server CA")
        self.bank_ca = CA(self.dir, "bank-ca", "credit-auth test bank CA")
        self.untrusted_ca = CA(self.dir, "untrusted-ca",
                               "credit-auth UNTRUSTED CA")
        s = self.server_ca.issue("server", "localhost", server=True)
        self.server_cert, self.server_key = s.cert, s.key
        self.banks = {}

    @property
    def server_ca_path(self):
        return str(self.server_ca.cert_path)

    @property
    def bank_ca_path(self):
        return str(self.bank_ca.cert_path)

    def make_bank_cert(self, name, org=None):
        """-> BankCert(cert_pem_path, key_path, sha256_hex of DER)."""
        stem = "bank-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        bc = self.bank_ca.issue(stem, name, org=org)
        self.banks[name] = bc
        return bc

    def make_untrusted_cert(self, name="rogue"):
        return self.untrusted_ca.issue("untrusted-" + name, name)


# --------------------------------------------------------------------------
# Enterprise keys (JWKS), banks registry, audit key

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


# --------------------------------------------------------------------------
# Consent tokens

def consent_id():
    """A random jti the audit records as it is: random hex can hold a run
    of digits that reads as a mobile or account number (lib/pii.h), which
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


# --------------------------------------------------------------------------
# Policy and fixtures shared by tests, demo fallback and bench

TEST_POLICY = {
    "version": "test-2026-11-27.1",
    "purposes": ["loan_application", "credit_assessment",
                 "post_loan_monitoring"],
    "token": {"algs": ["ES256", "RS256", "PS256", "EdDSA", "SM2"],
              "max_lifetime": 7776000, "leeway": 60, "require_cnf": False},
    "categories": {
        "tax": {
            "routes": ["/api/v1/enterprises/{uscc}/tax"],
            "purposes": ["loan_application", "credit_assessment",
                         "post_loan_monitoring"],
            "raw_allowed": True,
            "fields": {
                "uscc": "keep",
                "name": "keep",
                "credit_rating": "keep",
                "annual[].year": "keep",
                "annual[].tax_paid": {"masked": "bucket:100000",
                                      "raw": "keep",
                                      "class": "trade_secret"},
                "legal_representative.name": {"masked": "mask:1,0",
                                              "raw": "keep",
                                              "class": "personal"},
                "legal_representative.id_number": {"masked": "mask:6,4",
                                                   "raw": "mask:6,4",
                                                   "class": "personal"},
            },
            "verify": {"annual[].tax_paid": ["ge", "le", "eq"],
                       "credit_rating": ["eq"]},
        },
        "environment": {
            "routes": ["/api/v1/enterprises/{uscc}/environment"],
            "purposes": ["loan_application", "credit_assessment"],
            "raw_allowed": False,
            "fields": {
                "uscc": "keep",
                "env_rating": "keep",
                "penalties[].date": "year",
                "penalties[].amount": "bucket:10000",
            },
            "verify": {"env_rating": ["eq", "ne"]},
        },
    },
}


def tax_record(uscc, name="福州闽江精密机械有限公司", pad=0):
    """An upstream tax record with fields the policy withholds."""
    rec = {
        "uscc": uscc,
        "name": name,
        "credit_rating": "A",
        "annual": [
            {"year": 2023, "tax_paid": 1234567.89,
             "filing_ref": "FR-2023-SECRET-88812"},
            {"year": 2022, "tax_paid": 987654,
             "filing_ref": "FR-2022-SECRET-77311"},
        ],
        "legal_representative": {"name": "张三丰",
                                 "id_number": "110101199003071234",
                                 "mobile": "13812345678"},
        "internal_notes": "UPSTREAM-INTERNAL-NOTE do not disclose",
    }
    if pad:
        years = [{"year": 2021 - i, "tax_paid": 500000 + 1000 * i,
                  "filing_ref": f"FR-{2021 - i}-{i:05d}"} for i in range(pad)]
        rec["annual"].extend(years)
    return rec


def environment_record(uscc):
    return {"uscc": uscc, "env_rating": "B",
            "penalties": [{"date": "2022-05-17", "amount": 35000,
                           "case_no": "ENV-SECRET-2022-017"}],
            "internal_notes": "UPSTREAM-INTERNAL-NOTE env"}


def record_of_size(uscc, kb):
    """A tax record whose JSON is about kb KiB."""
    pad = 0
    while True:
        rec = tax_record(uscc, pad=pad)
        if len(json.dumps(rec, ensure_ascii=False).encode()) >= kb * 1024:
            return rec
        pad += 1


def write_platform(root, records):
    """records: {(uscc, category): obj or bytes or str} -> files under
    root/api/v1/enterprises/<uscc>/<category>."""
    root = Path(root)
    for (uscc, cat), body in records.items():
        p = root / "api" / "v1" / "enterprises" / uscc / cat
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False, indent=1)
        p.write_bytes(body.encode() if isinstance(body, str) else body)
    for d, dirs, files in os.walk(root):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return root


# --------------------------------------------------------------------------
# Processes

def wait_for(pred, timeout=5.0, interval=0.05):
    """pred's first truthy value within timeout, else its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()



class Redis:
    def __init__(self, directory, port=None, password=None, users=(),
                 appendfsync="always", extra=(), appendonly="yes"):
        """users: (name, password) pairs of ACL users with every right
        (the tools' --user).  appendonly "yes" with appendfsync "always" is
        what the gateway's default durability=aof requires (SPEC §7.1);
        extra: more redis.conf lines."""
        self.dir = subdir(directory, "redis")
        self.port = port or free_port()
        self.password = password
        self.users = list(users)
        self.appendfsync = appendfsync
        self.appendonly = appendonly
        self.extra = list(extra)
        self.proc = None
        self.conf = self.dir / "redis.conf"
        self.log = self.dir / "redis.log"

    def render(self):
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.dir}",
            f"appendonly {self.appendonly}",
            f"appendfsync {self.appendfsync}",
            'save ""',
            "daemonize no",
            "protected-mode yes",
            f"logfile {self.log}",
            f"pidfile {self.dir}/redis.pid",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        for name, pw in self.users:
            lines.append(f"user {name} on >{pw} ~* &* +@all")
        lines += self.extra
        return "\n".join(lines) + "\n"

    def start(self, timeout=10):
        self.conf.write_text(self.render())
        self.proc = subprocess.Popen([REDIS_SERVER, str(self.conf)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        if not wait_for(self.ping, timeout):
            self.stop()
            raise RuntimeError("redis did not start:\n" + tail(self.log))
        return self

    def client(self, **kw):
        import redis
        args = dict(host="127.0.0.1", port=self.port, password=self.password,
                    decode_responses=True, socket_timeout=5)
        args.update(kw)
        return redis.Redis(**args)

    def ping(self):
        if self.proc is not None and self.proc.poll() is not None:
            return False
        try:
            return self.client(socket_connect_timeout=0.5).ping()
        except Exception:
            return False

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def directive_value(self):
        v = self.address
        if self.password:
            v += f" password={self.password}"
        return v

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # fault injection
    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self):
        self.stop()
        return self.start()


class Sentinel(Redis):
    """`redis-server --sentinel` watching `master` (a Redis) as `name`, with
    short timeouts for tests: down after 500 ms."""

    def __init__(self, directory, master, name="credit", quorum=2,
                 down_after_ms=500, failover_timeout_ms=2000):
        super().__init__(directory)
        self.master, self.name, self.quorum = master, name, quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    def render(self):
        m = self.name
        return "\n".join([
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.dir}",
            "daemonize no",
            f"logfile {self.log}",
            f"sentinel monitor {m} 127.0.0.1 {self.master.port} "
            f"{self.quorum}",
            f"sentinel down-after-milliseconds {m} {self.down_after_ms}",
            f"sentinel failover-timeout {m} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {m} 1",
        ]) + "\n"

    def start(self, timeout=10):
        self.conf.write_text(self.render())
        self.proc = subprocess.Popen([REDIS_SERVER, str(self.conf),
                                      "--sentinel"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        if not wait_for(self.ping, timeout):
            self.stop()
            raise RuntimeError("sentinel did not start:\n" + tail(self.log))
        return self

    def primary(self):
        """(host, port) the Sentinel names now, or None."""
        try:
            r = self.client(socket_connect_timeout=0.5).execute_command(
                "SENTINEL", "get-master-addr-by-name", self.name)
            return (r[0], int(r[1])) if r else None
        except Exception:
            return None


def asan_env(directory):
    env = {}
    if asan_enabled():
        lib = subprocess.run(["gcc", "-print-file-name=libasan.so"],
                             capture_output=True, text=True).stdout.strip()
        env["LD_PRELOAD"] = lib
        asan_dir = subdir(directory, "asan", 0o777)
        env["ASAN_OPTIONS"] = ("detect_leaks=0:abort_on_error=1:"
                               f"log_path={asan_dir}/asan")
    return env


def asan_reports(directory):
    """[(path, text)] of ASan logs written under directory/asan."""
    d = Path(directory) / "asan"
    if not d.is_dir():
        return []
    return [(str(p), p.read_text(errors="replace"))
            for p in sorted(d.glob("asan*"))]


def _children(pid):
    kids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(p.name))
    return kids


def _tls_directives():
    return []


class Nginx:
    """One nginx master process (foreground, own prefix dir) for a rendered
    configuration.  Subclasses render the configuration."""

    name = "nginx"

    def __init__(self, directory, ports=()):
        self.dir = subdir(directory, self.name)
        subdir(self.dir, "logs")
        subdir(self.dir, "tmp")
        self.conf = self.dir / "nginx.conf"
        self.error_log = self.dir / "error.log"
        self.startup_log = self.dir / "startup.log"
        self.pid_file = self.dir / "nginx.pid"
        self.proc = None
        self.ports = list(ports)

    def temp_paths(self):
        t = self.dir / "tmp"
        return "\n".join(
            f"    {d}_temp_path {t}/{d};"
            for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))

    def render(self):
        raise NotImplementedError

    def write(self, text=None):
        self.conf.write_text(text if text is not None else self.render())
        return self.conf

    def env(self):
        e = dict(os.environ)
        e.update(asan_env(self.dir))
        return e

    def _argv(self, *extra):
        return [NGINX, "-p", str(self.dir) + "/", "-c", str(self.conf),
                "-e", str(self.startup_log), *extra]

    def test(self, text=None):
        """nginx -t on the configuration -> (returncode, output)."""
        self.write(text)
        r = subprocess.run(self._argv("-t"), capture_output=True, text=True,
                           env=self.env(), timeout=60)
        return r.returncode, r.stdout + r.stderr

    def start(self, text=None, timeout=15):
        self.write(text)
        self.proc = subprocess.Popen(self._argv("-g", "daemon off;"),
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "stderr.log", "ab"),
                                     env=self.env(), start_new_session=True)
        ok = wait_for(lambda: self.proc.poll() is None
                   and all(port_open(p) for p in self.ports), timeout)
        if not ok:
            out = self.diagnostics()
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n{out}")
        return self

    def diagnostics(self, lines=40):
        parts = []
        for f in (self.dir / "stderr.log", self.startup_log, self.error_log):
            t = tail(f, lines)
            if t:
                parts.append(f"--- {f}\n{t}")
        for path, text in asan_reports(self.dir):
            parts.append(f"--- {path}\n{text}")
        return "\n".join(parts)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def workers(self):
        return _children(self.proc.pid) if self.running else []

    def reload(self, text=None, timeout=15):
        """Rewrites the configuration (if given), sends SIGHUP (what
        `nginx -s reload` does) and waits for new workers.  Returns True if
        nginx took the new configuration, False if it kept the old one."""
        old = set(self.workers())
        mark = self.error_log.stat().st_size if self.error_log.exists() else 0
        self.write(text) if text is not None else None
        os.kill(self.proc.pid, signal.SIGHUP)

        def settled():
            log = self.read_error_log(mark)
            if re.search(r"\[emerg\]", log):
                return True
            new = set(self.workers()) - old
            return bool(new) and not (set(self.workers()) & old)
        wait_for(settled, timeout)
        log = self.read_error_log(mark)
        return "[emerg]" not in log and bool(set(self.workers()) - old)

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGQUIT)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
            except ProcessLookupError:
                pass
        else:
            # master gone; make sure no orphan worker of ours survives
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc = None

    def read_error_log(self, offset=0):
        try:
            with open(self.error_log, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_size(self):
        try:
            return self.error_log.stat().st_size
        except OSError:
            return 0


class Upstream(Nginx):
    """The platform: static JSON files from a root directory."""

    name = "upstream"

    def __init__(self, directory, root=None, port=None, extra_http="",
                 extra_server="", workers=1):
        self.port = port or free_port()
        super().__init__(directory, [self.port])
        self.root = Path(root) if root else ROOT / "demo" / "platform"
        self.extra_http = extra_http
        self.extra_server = extra_server
        self.workers_n = workers

    def render(self):
        return f"""worker_processes {self.workers_n};
error_log {self.error_log} info;
pid {self.pid_file};
events {{ worker_connections 1024; }}
http {{
    access_log off;
{self.temp_paths()}
    default_type application/json;
    types {{ }}
    keepalive_requests 1000000;
{self.extra_http}
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
        location / {{ try_files $uri =404; }}
{self.extra_server}
    }}
}}
"""


def tls_exchange(port, context, data, timeout=15):
    """Sends raw bytes over TLS to a loopback port and returns every byte
    answered until the server closes."""
    import ssl
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    with context.wrap_socket(s, server_hostname="127.0.0.1") as t:
        t.sendall(data)
        while True:
            try:
                chunk = t.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
    return out


def close_listener(sock):
    """Stops a listening socket for good: close() alone leaves it listening
    while a thread sits in accept() on it, and the next server that gets
    the port shares it (connections then go to either)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def http_answer(status="200 OK", headers=(), body=b"",
                ctype="application/json", length=True):
    """The bytes of an HTTP/1.1 answer: status line, headers (a list of
    "Name: value" strings, sent as given), Content-Length unless
    length=False, and the body."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body, ensure_ascii=False).encode()
    elif isinstance(body, str):
        body = body.encode()
    h = [f"HTTP/1.1 {status}"]
    if ctype:
        h.append(f"Content-Type: {ctype}")
    h += list(headers)
    if length:
        h.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


class ThreadedServer:
    """A TCP server on a loopback port, one thread per connection (in the
    calling process); subclasses implement _serve(conn)."""

    def __init__(self, port=None):
        # no SO_REUSEADDR: a port another listener still holds (one closed
        # while its thread sat in accept()) must not be shared
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", port or 0))
        self.port = self.sock.getsockname()[1]
        _given_ports.add(self.port)
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = None

    def start(self):
        self.sock.listen(64)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        close_listener(self.sock)

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        raise NotImplementedError


class RawPlatform(ThreadedServer):
    """A scriptable platform for hostile-upstream tests: a TCP server on a
    free loopback port (a thread of the calling process) that answers each
    path with exactly the bytes a test gave it.

      p = RawPlatform().start()
      p.script(path, http_answer("206 Partial Content", [...], body))
      p.script(path, b"", close=True)             # closes without a word
      p.script(path, head + half, close=True)     # closes mid-answer
      p.requests    # [(method, target, [(name, value)], body)] as received

    Paths are matched without the query string; an unscripted path is a
    404.  A connection stays open (keep-alive) unless close=True.
    """

    def __init__(self, port=None):
        super().__init__(port)
        self.answers = {}
        self.requests = []

    def script(self, path, raw, close=False, delay=0.0):
        """From now on, answer path with the bytes raw (then close the
        connection if close; wait delay seconds before answering)."""
        with self.lock:
            self.answers[path] = (raw, close, delay)

    def requests_for(self, path):
        with self.lock:
            return [q for q in self.requests if q[1].split("?")[0] == path]

    @staticmethod
    def _read_request(conn, buf):
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None, buf
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ")[:2]
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers.append((k.strip(), v.strip()))
        n = 0
        for k, v in headers:
            if k.lower() == "content-length":
                n = int(v)
        while len(buf) < n:
            data = conn.recv(65536)
            if not data:
                break
            buf += data
        return (method, target, headers, buf[:n]), buf[n:]

    def _serve(self, conn):
        buf = b""
        try:
            conn.settimeout(30)
            while True:
                req, buf = self._read_request(conn, buf)
                if req is None:
                    return
                with self.lock:
                    self.requests.append(req)
                    raw, close, delay = self.answers.get(
                        req[1].split("?")[0],
                        (http_answer("404 Not Found", body=b""), False, 0))
                if delay:
                    time.sleep(delay)
                if raw:
                    conn.sendall(raw)
                if close:
                    time.sleep(0.05)
                    conn.shutdown(socket.SHUT_RDWR)
                    return
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass


class PlainProxy(Nginx):
    """A plain nginx reverse proxy (no module) in front of an upstream:
    the bench's reference."""

    name = "plainproxy"

    def __init__(self, directory, upstream_port, port=None, workers=1):
        self.port = port or free_port()
        super().__init__(directory, [self.port])
        self.upstream_port = upstream_port
        self.workers_n = workers

    def render(self):
        return f"""worker_processes {self.workers_n};
error_log {self.error_log} info;
pid {self.pid_file};
events {{ worker_connections 1024; }}
http {{
    access_log off;
{self.temp_paths()}
    upstream platform {{ server 127.0.0.1:{self.upstream_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{self.port};
        location /api/ {{ proxy_pass http://platform; proxy_http_version 1.1;
                         proxy_set_header Connection ""; }}
    }}
}}
"""


def _directives(pairs, overrides, indent):
    """pairs: [(name, value)]; overrides: {name: value|None|[values]}.
    None omits the directive, a list repeats it, a new name is appended."""
    out = []
    seen = set()
    overrides = dict(overrides or {})
    for name, value in pairs:
        if name in overrides:
            seen.add(name)
            value = overrides[name]
        if value is None:
            continue
        for v in (value if isinstance(value, list) else [value]):
            out.append(f"{indent}{name} {v};" if v != "" else
                       f"{indent}{name};")
    for name, value in overrides.items():
        if name in seen or value is None or name in dict(pairs):
            continue
        for v in (value if isinstance(value, list) else [value]):
            out.append(f"{indent}{name} {v};" if v != "" else
                       f"{indent}{name};")
    return "\n".join(out)


class Gateway(Nginx):
    """Debian's nginx with the credit-auth module.

    Everything in the rendered configuration can be changed:
      mode                  credit_auth on|off|report (None: omit)
      http_directives       {name: value|None|[values]} for the http block
      location_directives   ... for the TLS server's location /api/
      plain_location_directives ... for the plain listener's location /api/
      main_extra, http_extra, server_extra, plain_server_extra,
      location_extra        raw snippets
      module                path of the .so (None: no load_module)
      tls / plain           include that server block
    """

    name = "gateway"

    def __init__(self, directory, *, pki, policy, keys, banks, redis_addr,
                 upstream_port, audit_key=None, hash_key=None, module=None,
                 workers=1,
                 mode="on", gateway_id="gw-test", zone="credit_auth:16m",
                 stream="credit:audit", max_body="1m", tls=True, plain=True,
                 tls_port=None, http_port=None, http_directives=None,
                 location_directives=None, plain_location_directives=None,
                 main_extra="", http_extra="", server_extra="",
                 plain_server_extra="", location_extra="",
                 error_log_level="info"):
        self.tls_port = tls_port or free_port()
        self.http_port = http_port or free_port()
        ports = ([self.tls_port] if tls else []) + \
                ([self.http_port] if plain else [])
        super().__init__(directory, ports)
        self.pki = pki
        self.module = module_path() if module is None else module
        self.workers_n = workers
        self.policy, self.keys, self.banks = policy, keys, banks
        self.redis_addr = redis_addr
        self.upstream_port = upstream_port
        self.audit_key = audit_key
        self.hash_key = hash_key
        self.mode = mode
        self.gateway_id = gateway_id
        self.zone = zone
        self.stream = stream
        self.max_body = max_body
        self.tls, self.plain = tls, plain
        self.http_directives = http_directives or {}
        self.location_directives = location_directives or {}
        self.plain_location_directives = plain_location_directives or {}
        self.main_extra = main_extra
        self.http_extra = http_extra
        self.server_extra = server_extra
        self.plain_server_extra = plain_server_extra
        self.location_extra = location_extra
        self.error_log_level = error_log_level

    def render(self, **changes):
        """Renders with attribute changes applied to a copy."""
        if changes:
            saved = {k: getattr(self, k) for k in changes}
            for k, v in changes.items():
                setattr(self, k, v)
            try:
                return self.render()
            finally:
                for k, v in saved.items():
                    setattr(self, k, v)
        http = [
            ("access_log", "off"),
            ("credit_auth_policy", self.policy),
            ("credit_auth_keys", self.keys),
            ("credit_auth_banks", self.banks),
            ("credit_auth_redis", self.redis_addr),
            ("credit_auth_audit_stream", self.stream),
            ("credit_auth_audit_key", self.audit_key),
            ("credit_auth_hash_key", self.hash_key),
            ("credit_auth_zone", self.zone),
            ("credit_auth_gateway_id", self.gateway_id),
        ]
        loc = [
            ("credit_auth", self.mode),
            ("credit_auth_max_body", self.max_body),
            ("proxy_pass", "http://platform"),
            ("proxy_http_version", "1.1"),
            ("proxy_set_header", 'Connection ""'),
        ]
        ploc = [
            ("credit_auth", self.mode),
            ("credit_auth_client_cert", "$http_client_cert"),
            ("proxy_pass", "http://platform"),
            ("proxy_http_version", "1.1"),
            ("proxy_set_header", 'Connection ""'),
        ]
        main = []
        if self.module:
            main.append(f"load_module {self.module};")
        main += [f"worker_processes {self.workers_n};",
                 f"error_log {self.error_log} {self.error_log_level};",
                 f"pid {self.pid_file};"]
        if self.main_extra:
            main.append(self.main_extra)
        servers = []
        if self.tls:
            servers.append(f"""    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        ssl_certificate {self.pki.server_cert};
        ssl_certificate_key {self.pki.server_key};
        ssl_verify_client on;
        ssl_client_certificate {self.pki.bank_ca_path};
        location /api/ {{
{_directives(loc, self.location_directives, " " * 12)}
{self.location_extra}
        }}
        location = /credit-auth/status {{
            credit_auth_status; allow 127.0.0.1; deny all;
        }}
{self.server_extra}
    }}""")
        if self.plain:
            servers.append(f"""    server {{
        listen 127.0.0.1:{self.http_port};
        location /api/ {{
{_directives(ploc, self.plain_location_directives, " " * 12)}
        }}
        location = /credit-auth/status {{
            credit_auth_status; allow 127.0.0.1; deny all;
        }}
{self.plain_server_extra}
    }}""")
        return "\n".join(main) + f"""
events {{ worker_connections 1024; }}
http {{
{self.temp_paths()}
{_directives(http, self.http_directives, "    ")}
{self.http_extra}
    upstream platform {{ server 127.0.0.1:{self.upstream_port}; keepalive 32; }}
{chr(10).join(servers)}
}}
"""

    # convenience
    def url(self, path, plain=False):
        if plain:
            return f"http://127.0.0.1:{self.http_port}{path}"
        return f"https://127.0.0.1:{self.tls_port}{path}"

    def log_problems(self, text=None):
        """Lines that must never appear in a healthy gateway's error log."""
        text = self.read_error_log() if text is None else text
        bad = [l for l in text.splitlines()
               if "[alert]" in l or "[emerg]" in l
               or "exited on signal" in l or "AddressSanitizer" in l]
        for path, rep in asan_reports(self.dir):
            bad.append(f"{path}: {rep.splitlines()[0] if rep else ''}")
        return bad


def nginx_t(conf, directory=None):
    """`nginx -t` on a configuration text (or path) -> (returncode, output)."""
    d = workdir(directory) if directory else workdir(prefix="credit-auth-t-")
    n = Nginx(d)
    if isinstance(conf, Path) or (isinstance(conf, str) and
                                  "\n" not in conf and os.path.exists(conf)):
        conf = Path(conf).read_text()
    return n.test(conf)


# --------------------------------------------------------------------------
# A whole stack

class Stack:
    """PKI, keys, banks, policy, platform, Redis, gateway, in one directory.

    stack = Stack(dir).setup(); stack.start(); ...; stack.stop()
    """

    def __init__(self, directory=None, policy=None, platform_root=None,
                 module=None, workers=1, audit_key=True, gateway_kw=None,
                 redis_kw=None):
        self.dir = workdir(directory)
        self.cfg = subdir(self.dir, "conf")
        self.policy_src = policy            # dict, path or None (TEST_POLICY)
        self.platform_root = platform_root
        self.module = module
        self.workers = workers
        self.want_audit_key = audit_key
        self.gateway_kw = gateway_kw or {}
        self.redis_kw = redis_kw or {}
        self.jwks = []
        self.bank_entries = []
        self.enterprise_keys = {}           # kid -> (priv, jwk)
        self.redis = self.upstream = self.gateway = None

    # configuration files -------------------------------------------------
    def setup(self):
        self.pki = PKI(self.dir)
        if isinstance(self.policy_src, (str, Path)):
            self.policy_path = Path(self.policy_src)
        else:
            self.policy_path = write_json(self.cfg / "policy.json",
                                          self.policy_src or TEST_POLICY)
        self.policy = json.loads(self.policy_path.read_text())
        self.policy_sha256 = hashlib.sha256(
            self.policy_path.read_bytes()).hexdigest()
        self.keys_path = self.cfg / "keys.jwks"
        self.banks_path = self.cfg / "banks.json"
        if self.want_audit_key:
            self.audit_key, self.audit_pub = make_audit_key(self.cfg)
        else:
            self.audit_key = self.audit_pub = None
        self.hash_key = make_hash_key(self.cfg)
        self.write_keys()
        self.write_banks()
        return self

    def add_enterprise_key(self, uscc, alg="ES256", kid=None, write=True):
        priv, jwk = make_enterprise_key(uscc, alg, kid)
        self.jwks.append(jwk)
        self.enterprise_keys[jwk["kid"]] = (priv, jwk)
        if write:
            self.write_keys()
        return priv, jwk

    def add_bank(self, code, name, status="active", purposes=None,
                 certs=None, write=True):
        bc = self.pki.make_bank_cert(code)
        self.bank_entries.append(bank_entry(code, name, certs or [bc],
                                            status, purposes))
        if write:
            self.write_banks()
        return bc

    def write_keys(self):
        write_jwks(self.keys_path, self.jwks)

    def write_banks(self):
        write_banks(self.banks_path, self.bank_entries)

    # processes -----------------------------------------------------------
    def start(self, gateway=True):
        self.redis = Redis(self.dir, **self.redis_kw).start()
        if self.platform_root is None:
            self.platform_root = subdir(self.dir, "platform")
        self.upstream = Upstream(self.dir, root=self.platform_root).start()
        if gateway:
            self.gateway = self.make_gateway(self.dir, **self.gateway_kw)
            self.gateway.start()
        return self

    def make_gateway(self, directory=None, **kw):
        """A gateway over this stack's files (not started).  kw overrides
        Gateway arguments (policy=, keys=, banks=, http_directives=, ...)."""
        args = dict(pki=self.pki, policy=self.policy_path, keys=self.keys_path,
                    banks=self.banks_path,
                    redis_addr=self.redis.directive_value() if self.redis
                    else "127.0.0.1:6379",
                    upstream_port=self.upstream.port if self.upstream else 9,
                    audit_key=self.audit_key, hash_key=self.hash_key,
                    module=self.module,
                    workers=self.workers)
        args.update(kw)
        d = workdir(directory) if directory else \
            workdir(Path(tempfile.mkdtemp(prefix="gw-", dir=self.dir)))
        return Gateway(d, **args)

    def stop(self):
        for p in (self.gateway, self.upstream, self.redis):
            if p is not None:
                try:
                    p.stop()
                except Exception:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()
