"""The test PKI: a server CA and certificate, a bank CA, bank certificates, RFC 9440 and RFC 8705 helpers."""

import base64
import datetime
import hashlib
import os
import re
from collections import namedtuple
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .proc import b64url, subdir


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
