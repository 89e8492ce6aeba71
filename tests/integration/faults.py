"""Helpers for the audit fault-injection tests (test_audit_faults.py): a
dedicated Redis + gateway per test over a shared set of files, Redis with
`appendfsync always`, audit stream readers, an independent hash-chain and
checkpoint verifier, spool and worker-process probes, raw TLS clients.

Nothing here touches the session stack of conftest.py."""

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import E1, Env, S, _build_stack, problem

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


def register(redis, priv, kids, uscc=E1):
    """Registry records for kids, all of one key (contract §5 format)."""
    r = redis.client()
    p = r.pipeline(transaction=False)
    for kid in kids:
        jwk = S.public_jwk(priv, "ES256", kid, uscc)
        rec = {"kid": kid, "uscc": uscc, "state": "active", "not_before": 0,
               "not_after": 0, "version": 1, "jwk": jwk}
        p.set(f"credit:key:{{{kid}}}", json.dumps(rec))
    p.incr("credit:keyreg:version")
    p.execute()


def reason_of(resp):
    """The reason code of a problem+json answer, or None."""
    try:
        return resp.json().get("type", "").rsplit(":", 1)[-1]
    except ValueError:
        return None


class Load:
    """Threads sending requests until stopped or out of work: each takes
    the next (name, tag, ...) of `items` and answers it with
    send(session, item, timeout), on a keep-alive session of its own
    (new_session(), a fresh one after a failure); every answer, or the
    failure to get one within `timeout`, is kept as (name, tag, start,
    seconds, resp|exception)."""

    def __init__(self, items, send, new_session, threads=6, timeout=30):
        self.items, self.send, self.new_session = iter(items), send, \
            new_session
        self.timeout = timeout
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.results = []
        self.pool = [threading.Thread(target=self.run)
                     for _ in range(threads)]

    def next_item(self):
        with self.lock:
            return next(self.items, None)

    def run(self):
        s = self.new_session()
        while not self.stop.is_set():
            item = self.next_item()
            if item is None:
                break
            t0 = time.monotonic()
            try:
                res = self.send(s, item, self.timeout)
            except requests.RequestException as ex:
                res = ex
                s.close()
                s = self.new_session()
            with self.lock:
                self.results.append((item[0], item[1], t0,
                                     time.monotonic() - t0, res))
        s.close()

    def __enter__(self):
        for t in self.pool:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.pool:
            t.join(self.timeout + 10)


def judge(results, bound,
          allowed=("revocation_unavailable", "audit_unavailable")):
    """(slow, bad, counts) of Load's results: requests over `bound`
    seconds or without an answer; answers other than 200 and 503 with an
    `allowed` reason."""
    slow, bad, counts = [], [], {}
    for name, tag, t0, dt, res in results:
        if isinstance(res, Exception):
            slow.append((name, tag, round(dt, 2), repr(res)[:120]))
            continue
        if dt > bound:
            slow.append((name, tag, round(dt, 2), res.status_code))
        key = str(res.status_code) if res.status_code == 200 else \
            f"{res.status_code} {reason_of(res)}"
        counts[key] = counts.get(key, 0) + 1
        if res.status_code == 200:
            continue
        if res.status_code == 503 and reason_of(res) in allowed:
            problem(res, 503, reason_of(res))
            continue
        bad.append((name, res.status_code, res.text[:160]))
    return slow, bad, counts


def restarts_under(fs, load, bound,
                   allowed=("revocation_unavailable", "audit_unavailable")):
    """Redis stopped (SIGTERM), down 1 s, started again, three times while
    `load` (a Load) runs: every request was answered within `bound`
    seconds, 200 or 503 with an `allowed` reason, both seen, and the load
    lasted past the last restart.  Returns its results."""
    with load:
        time.sleep(1.0)
        for _ in range(3):
            fs.redis.stop()
            time.sleep(1.0)
            fs.restart_redis()
            time.sleep(1.5)
        last = time.monotonic()
    results = load.results

    slow, bad, counts = judge(results, bound, allowed)
    assert not slow, (f"{len(slow)} of {len(results)} requests over "
                      f"{bound}s or unanswered: {slow[:10]}; answers "
                      f"{counts}\n{fs.log_tail()}")
    assert max(t0 for _, _, t0, _, _ in results) > last - 0.5
    assert not bad, f"{bad[:10]}; answers {counts}"
    assert counts.get("200", 0) > 0, counts
    assert sum(v for k, v in counts.items() if k.startswith("503")), counts
    print(f"answers {counts}, longest "
          f"{max(dt for _, _, _, dt, _ in results):.2f}s")
    return results


class Waves:
    """Requests sent together, each from a thread of its own; every
    answer, or the failure to get one, is kept in `results` as (name, tag,
    start, seconds, resp|exception, end)."""

    def __init__(self):
        self.results, self.lock = [], threading.Lock()

    def send(self, tag, sessions, prepare):
        """One request per session: prepare(i) -> (name, call), call(s)
        sends it on session s.  Returns the threads, started."""
        def one(s, name, call):
            t0 = time.monotonic()
            try:
                res = call(s)
            except requests.RequestException as ex:
                res = ex
            with self.lock:
                self.results.append((name, tag, t0, time.monotonic() - t0,
                                     res, time.monotonic()))
        ts = [threading.Thread(target=one, args=(s, *prepare(i)))
              for i, s in enumerate(sessions)]
        for t in ts:
            t.start()
        return ts

    def judged(self):
        """The results as Load's, for judge()."""
        return [x[:5] for x in self.results]


def reload_twice_while_frozen(fs, waves, in_flight, parked):
    """Redis frozen (SIGSTOP): in_flight("a") sends requests that wait for
    a reply, then a reload; once the new worker is up, parked("b") sends
    requests that wait for its connection attempt, then a second reload.
    Each returns its threads (waves.send).  Once all have ended, and both
    exiting workers are gone, Redis resumes; every answer that came after
    its wave's reload (the signal reaches a worker a little after nginx -s
    returns) ended its connection (Connection: close), and the error log
    has no "open socket left" or other alert."""
    gw = fs.gateway
    first = set(gw.workers())
    mark = gw.log_size()
    reloads = {}
    fs.redis.pause()
    try:
        a = in_flight("a")
        time.sleep(0.3)
        rc, out = nginx_signal(gw, "reload")
        assert rc == 0, out
        reloads["a"] = time.monotonic()
        assert S.wait_for(lambda: set(gw.workers()) - first, 10)
        second = set(gw.workers()) - first
        b = parked("b")
        time.sleep(0.3)
        rc, out = nginx_signal(gw, "reload")
        assert rc == 0, out
        reloads["b"] = time.monotonic()
        for t in a + b:
            t.join(40)
        # the exiting workers leave once they have answered
        assert S.wait_for(lambda: not (set(gw.workers()) & (first | second)),
                          15), worker_titles(gw)
    finally:
        fs.redis.resume()
    for name, tag, t0, dt, res, end in waves.results:
        if not isinstance(res, Exception) and end > reloads[tag] + 0.3:
            assert res.headers.get("Connection") == "close", \
                (tag, res.headers)
    log = gw.read_error_log(mark)
    assert "open socket" not in log and "[alert]" not in log, log[-3000:]


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
    """Independent verifier (docs/audit-format.md, contract §7).  entries:
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
# What must never be in the audit (contract §7)

JWS = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[0-9Xx](?![0-9A-Za-z])")
MOBILE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86)?1[3-9]\d{9}(?![0-9A-Za-z])")
# fields whose whole value must be a digest (then no pattern can hide there)
DIGEST_FIELDS = {"hash", "prev", "head", "cert"}
