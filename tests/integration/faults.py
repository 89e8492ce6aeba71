"""Helpers for the audit fault-injection tests (test_audit_faults.py): a
dedicated Redis + gateway per test over a shared set of files, Redis with
`appendfsync always`, audit stream readers, an independent hash-chain and
checkpoint verifier, spool and worker-process probes, raw TLS clients.

Nothing here touches the session stack of conftest.py."""

import base64
import copy
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import Env, S, _build_stack

STREAM = "credit:audit"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


# ------------------------------------------------------------------------
# Fixtures of the modules that run their own Redis and gateway (imported
# there: `from faults import base, faults`)

@pytest.fixture(scope="module")
def base():
    """Files shared by a module's stacks (PKI, keys, banks, policy,
    platform) and one upstream; each test starts its own Redis and
    gateway."""
    st, certs = _build_stack()
    st.upstream = S.Upstream(st.dir, root=st.platform_root).start()
    st.certs = certs
    yield st
    st.upstream.stop()
    shutil.rmtree(st.dir, ignore_errors=True)


@pytest.fixture
def faults(base):
    """faults(workers=2, redis_opts="", **gateway_kw) -> FaultStack."""
    made = []

    def factory(**kw):
        fs = FaultStack(base, base.certs, **kw)
        made.append(fs)
        return fs
    yield factory
    problems = []
    for fs in made:
        fs.stop()
        problems += fs.cleanup()
    assert not problems, "gateway error log:\n" + "\n".join(problems)


def rid(tag="r"):
    """A request id the gateway keeps: letters only (it replaces an id
    with a long run of digits, which could be a personal identifier)."""
    return f"{tag}-" + "".join(chr(ord("a") + b % 26)
                               for b in uuid.uuid4().bytes)


def reason_of(resp):
    """The reason code of a problem+json answer, or None."""
    try:
        return resp.json().get("type", "").rsplit(":", 1)[-1]
    except ValueError:
        return None


def session(env, bank="BANK001"):
    """A keep-alive session with the bank's client certificate."""
    s = requests.Session()
    c = env.certs[bank]
    s.cert = (c.cert, c.key)
    s.verify = env.pki.server_ca_path
    return s


# ------------------------------------------------------------------------
# Processes

class FsyncRedis(S.Redis):
    """Redis whose AOF is fsync'd before every reply (`appendfsync
    always`): a SIGKILL then loses nothing Redis acknowledged, so anything
    missing from the stream after a restart is the gateway's fault, not the
    test's."""

    def __init__(self, *a, **kw):
        super().__init__(*a, appendfsync="always", **kw)


class FaultStack:
    """One test's own Redis (fsync always) and gateway, over the module's
    shared files (PKI, keys, banks, policy) and upstream.

    gateway: 2 workers by default, credit_auth_audit_spool into its own
    world-writable directory (workers run as nobody), the stack's audit key.
    redis_opts: extra `credit_auth_redis` options (command_timeout=500ms);
    redis_extra: more redis.conf lines (maxmemory ...)."""

    def __init__(self, base, certs, workers=2, redis_opts="",
                 spool_opts="", redis_extra=(), **gateway_kw):
        self.base = base
        self.dir = S.workdir(prefix="credit-auth-faults-")
        self.redis = FsyncRedis(self.dir, extra=redis_extra).start()
        self.spool = S.subdir(self.dir, "spool", 0o777)
        os.chmod(self.spool, 0o777)
        addr = self.redis.directive_value()
        if redis_opts:
            addr += " " + redis_opts
        http = dict(gateway_kw.pop("http_directives", {}) or {})
        spool = str(self.spool) + (" " + spool_opts if spool_opts else "")
        http.setdefault("credit_auth_audit_spool", spool)
        self.gateway = base.make_gateway(
            S.workdir(S.subdir(self.dir, "gw")), redis_addr=addr,
            workers=workers, http_directives=http, **gateway_kw)
        self.gateway.start()
        st = copy.copy(base)
        st.redis, st.gateway = self.redis, self.gateway
        self.env = Env(st)
        self.env.certs = certs
        self.pub = base.audit_pub

    # --------------------------------------------------------------------
    def stop(self):
        import signal
        master = self.gateway.proc.pid if self.gateway.proc else None
        for p in (self.gateway, self.redis):
            try:
                p.stop()
            except Exception:
                pass
        # never leave a crash-looping master behind
        if master:
            try:
                os.kill(master, 0)
                os.killpg(master, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def cleanup(self):
        problems = self.gateway.log_problems()
        if not problems and not os.environ.get("CREDIT_AUTH_KEEP"):
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    def log_tail(self, n=40):
        return S.tail(self.gateway.error_log, n)

    def restart_redis(self):
        """Same port, same directory (AOF), same configuration."""
        self.redis.start()

    def wait_redis_seen(self, up, timeout=10):
        """Waits until /credit-auth/status (each answer from some worker)
        says Redis is up/down several times in a row."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            st = self.status()
            if _redis_state(st) == up:
                seen += 1
                if seen >= 6:           # several connections, all workers
                    return True
            else:
                seen = 0
            time.sleep(0.05)
        return False

    def status(self):
        import requests
        try:
            return requests.get(self.gateway.url("/credit-auth/status",
                                                 plain=True),
                                timeout=2).json()
        except Exception:
            return None

    # --------------------------------------------------------------------
    # the spool
    def spool_files(self):
        # redis-epoch: worker 0's state file (the Redis epoch last seen)
        return sorted(p for p in Path(self.spool).iterdir() if p.is_file()
                      and not p.name.startswith("redis-epoch"))

    def spool_pending(self):
        """Bytes still waiting in any worker's spool (0: drained)."""
        total = 0
        for p in self.spool_files():
            try:
                total += p.stat().st_size
            except OSError:
                pass
        return total

    def wait_drained(self, timeout=30, settle=0.6):
        """Waits for empty spools and a stream whose length has stopped
        moving for `settle` seconds.  True when drained."""
        r = self.redis.client()
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            try:
                n = r.xlen(STREAM)
            except Exception:
                n = None
            if n != last:
                last, since = n, time.monotonic()
            if self.spool_pending() == 0 and n is not None \
                    and time.monotonic() - since >= settle:
                return True
            time.sleep(0.1)
        return False

    # --------------------------------------------------------------------
    # the audit stream
    def raw_entries(self):
        c = self.redis.client(decode_responses=False)
        return [(i.decode(), list(f.items())) for i, f in c.xrange(STREAM)]

    def entries(self):
        return decode_entries(self.raw_entries())


def _redis_state(st):
    """True/False: the answering worker's Redis connection state."""
    try:
        return bool(st["redis"]["connected"])
    except (TypeError, KeyError):
        return None


# ------------------------------------------------------------------------
# Audit entries

def decode_entries(raw):
    """[(id, [(bytes, bytes)])] -> [dict of str, '_id' and '_raw' added]."""
    out = []
    for i, fields in raw:
        d = {k.decode(errors="replace"): v.decode(errors="replace")
             for k, v in fields}
        d["_id"] = i
        d["_raw"] = fields
        out.append(d)
    return out


def dedupe(entries):
    """One entry per (chain, seq), the first in stream order; a duplicate
    must be byte-identical (same hash) or it is a finding."""
    seen, out, conflicts = {}, [], []
    for e in entries:
        key = (e.get("chain"), e.get("seq"))
        if key in seen:
            if seen[key].get("hash") != e.get("hash"):
                conflicts.append((seen[key]["_id"], e["_id"], key))
            continue
        seen[key] = e
        out.append(e)
    return out, conflicts


def canonical(fields):
    out = b""
    for k, v in fields:
        if k == b"hash":
            continue
        out += len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v
    return out


def checkpoint_message(chain, covers, head, heads=None):
    """docs/audit-format.md §3: v1, or v2 with the stored `heads`."""
    v = "1" if heads is None else "2"
    return (f"credit-auth checkpoint v{v}\n{chain}\n{covers}\n{head}\n"
            + (heads or "")).encode()


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_chains(entries, pubkey_path=None):
    """Independent verifier (docs/audit-format.md, SPEC §7).  entries:
    decoded, in stream order.  Returns (problems, chains) where chains maps
    a chain id to its de-duplicated entries in stream order.

    Per chain: `hash` is the last field and equals SHA-256 over
    u32be(len) name u32be(len) value of every other field in order; seq
    starts at 1 and grows by one; prev is the previous entry's hash (64
    zeros first); a checkpoint's covers is its seq - 1, its head that
    entry's hash, its sig an Ed25519 signature over the checkpoint
    message."""
    from cryptography.hazmat.primitives.serialization import \
        load_pem_public_key
    key = None
    if pubkey_path:
        key = load_pem_public_key(Path(pubkey_path).read_bytes())
    problems = []
    uniq, conflicts = dedupe(entries)
    for a, b, k in conflicts:
        problems.append(f"entries {a} and {b} share (chain, seq) {k} "
                        "but differ")
    chains = {}
    for e in uniq:
        chains.setdefault(e.get("chain"), []).append(e)
    for chain, es in chains.items():
        prev_hash, prev_seq = "0" * 64, 0
        for e in es:
            raw = e["_raw"]
            where = f"entry {e['_id']} (chain {chain} seq {e.get('seq')})"
            if not raw or raw[-1][0] != b"hash":
                problems.append(f"{where}: hash is not the last field")
                continue
            digest = hashlib.sha256(canonical(raw)).hexdigest()
            if raw[-1][1].decode() != digest:
                problems.append(f"{where}: hash does not match its fields")
            try:
                seq = int(e.get("seq", ""))
            except ValueError:
                problems.append(f"{where}: bad seq")
                continue
            if seq != prev_seq + 1:
                problems.append(f"{where}: seq {seq} after {prev_seq}")
            if e.get("prev") != prev_hash:
                problems.append(f"{where}: prev does not link")
            if e.get("event") == "checkpoint":
                if e.get("covers") != str(seq - 1):
                    problems.append(f"{where}: covers {e.get('covers')}")
                if e.get("head") != prev_hash:
                    problems.append(f"{where}: head is not the covered hash")
                if key is not None:
                    try:
                        key.verify(_b64url_decode(e.get("sig", "")),
                                   checkpoint_message(chain, e.get("covers"),
                                                      e.get("head"),
                                                      e.get("heads")))
                    except Exception:
                        problems.append(f"{where}: bad checkpoint signature")
            prev_hash, prev_seq = digest, seq
    return problems, chains


def credit_audit_verify(redis, pubkey):
    """Runs build/bin/credit-audit verify when it exists: (rc, output), or
    None when the tool is not built."""
    tool = S.ROOT / "build" / "bin" / "credit-audit"
    if not tool.exists():
        return None
    r = subprocess.run([str(tool), "verify", "--pubkey", str(pubkey),
                        "--redis", redis.address, "--stream", STREAM],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def by_rid(entries, event="decision"):
    out = {}
    for e in entries:
        if e.get("event") == event and e.get("rid"):
            out.setdefault(e["rid"], []).append(e)
    return out


# ------------------------------------------------------------------------
# nginx processes

def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() \
            .replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def worker_titles(gw):
    """{pid: process title} of the gateway master's children."""
    return {p: cmdline(p) for p in gw.workers()}


def nginx_signal(gw, sig):
    """`nginx -s <sig>` against the gateway's configuration."""
    r = subprocess.run(gw._argv("-s", sig), capture_output=True, text=True,
                       env=gw.env(), timeout=30)
    return r.returncode, r.stdout + r.stderr


# ------------------------------------------------------------------------
# Raw TLS clients

def tls_context(pki, cert):
    ctx = ssl.create_default_context(cafile=pki.server_ca_path)
    ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


def raw_request(method, path, headers, body=b""):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for k, v in headers.items():
        lines.append(f"{k}: {v}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def send_and_abandon(port, ctx, data, reset=False):
    """Opens a TLS connection, sends `data` and closes at once (RST when
    reset), without reading anything."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(data)
    if reset:
        import struct
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()
    else:
        try:
            s.unwrap()
        except (OSError, ssl.SSLError):
            pass
        s.close()


# ------------------------------------------------------------------------
# What must never be in the audit (SPEC §7)

JWS = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")
MOBILE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86)?1[3-9]\d{9}(?![0-9A-Za-z])")
# fields whose whole value must be a digest (then no pattern can hide there)
DIGEST_FIELDS = {"hash", "prev", "head", "cert"}
