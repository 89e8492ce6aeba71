"""A whole stack: PKI, keys, banks, policy, platform, Redis and gateway in one directory."""

import hashlib
import json
import tempfile
from pathlib import Path

from .proc import subdir, workdir, write_json
from .tokens import (bank_entry, make_audit_key, make_enterprise_key,
    make_hash_key, write_banks, write_jwks)
from .pki import PKI
from .records import TEST_POLICY
from .redis_server import Redis
from .nginx import Gateway, Upstream


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
