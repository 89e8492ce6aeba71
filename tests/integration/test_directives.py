"""Every directive of docs/configuration.md: the configurations that must
not start (`nginx -t` fails and names the problem with the module's own
message) and what each directive does on a running gateway (Redis
password, db, unix socket, connect_timeout, max_inflight, audit stream,
gateway id, spool bound, `credit_auth off`, a zone shared by workers).

Gateways that change Redis settings get a Redis of their own; the session
stack's Redis and gateway are not disturbed."""

import copy
import json
import os
import re
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import E1, TAX, Env, S, problem

UNAVAILABLE = ("revocation_unavailable", "audit_unavailable")


# ------------------------------------------------------------------------
# Helpers

def must_not_start(gw, *messages):
    """nginx -t fails, and its output holds every message (literal text)."""
    rc, out = gw.test()
    assert rc != 0, f"nginx -t accepted the configuration:\n{out}"
    assert "[emerg]" in out, out
    for m in messages:
        assert m in out, f"{m!r} not in nginx -t output:\n{out}"
    return out


def reason_of(resp):
    try:
        return resp.json().get("type", "").rsplit(":", 1)[-1]
    except ValueError:
        return None


def refused(resp, status, reasons):
    """problem+json with status and one of reasons; returns the reason."""
    reason = reason_of(resp)
    assert resp.status_code == status and reason in reasons, \
        f"expected {status} {reasons}, got {resp.status_code}: " \
        f"{resp.text[:300]}"
    problem(resp, status, reason)
    return reason


wait_for = S.wait_for


def entries(client, stream="credit:audit"):
    """Stream entries as dicts of str (client: decode_responses=True)."""
    out = []
    for i, f in client.xrange(stream):
        d = dict(f)
        d["_id"] = i
        out.append(d)
    return out


def wait_entries(client, pred, stream="credit:audit", count=1, timeout=5.0):
    def found():
        got = [e for e in entries(client, stream) if pred(e)]
        return got if len(got) >= count else None
    return wait_for(found, timeout) or \
        [e for e in entries(client, stream) if pred(e)]


def by_rid(rid, event="decision"):
    return lambda e: e.get("rid") == rid and e.get("event") == event


def new_rid(tag):
    """A request id the gateway keeps (letters only: no digit runs)."""
    return f"{tag}-" + "".join(chr(ord("a") + b % 26)
                               for b in uuid.uuid4().bytes[:12])


class UnixRedis(S.Redis):
    """Redis on a unix socket only (port 0: no TCP listener at all)."""

    def __init__(self, directory):
        super().__init__(directory)
        self.port = 0
        self.sock = self.dir / "redis.sock"

    def render(self):
        text = super().render().replace("bind 127.0.0.1\n", "")
        return text + f"unixsocket {self.sock}\nunixsocketperm 777\n"

    def client(self, **kw):
        import redis
        args = dict(unix_socket_path=str(self.sock), decode_responses=True,
                    socket_timeout=5)
        args.update(kw)
        return redis.Redis(**args)


@pytest.fixture
def scratch(env):
    """A world-readable scratch directory under the stack's (workers run
    as nobody)."""
    import tempfile
    return S.workdir(Path(tempfile.mkdtemp(prefix="directives-",
                                           dir=env.st.dir)))


@pytest.fixture
def own_redis(scratch):
    """own_redis(cls=S.Redis, **kw) -> a started Redis of this test's."""
    made = []

    def factory(cls=S.Redis, **kw):
        d = S.workdir(scratch / f"r{len(made)}")
        r = cls(d, **kw)
        made.append(r)
        return r.start()
    yield factory
    for r in made:
        try:
            r.stop()
        except Exception:
            pass


def env_for(env, gw, redis=None):
    """An Env (request helpers) bound to another gateway."""
    st = copy.copy(env.st)
    st.gateway = gw
    if redis is not None:
        st.redis = redis
    e = Env(st)
    e.certs = env.certs
    return e


def status_of(gw, plain=True):
    r = requests.get(gw.url("/credit-auth/status", plain=plain), timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def alive(gw):
    assert gw.running, "gateway master is gone:\n" + gw.diagnostics()
    log = gw.read_error_log()
    assert "exited on signal" not in log, log[-3000:]
    assert "AddressSanitizer" not in log


# ========================================================================
# Must not start
# ========================================================================

def test_reference_configuration_starts(make_gateway):
    """The base every must-not-start case changes one thing of."""
    rc, out = make_gateway().test()
    assert rc == 0, out


@pytest.mark.parametrize("missing", ["credit_auth_policy", "credit_auth_keys",
                                     "credit_auth_banks"])
def test_on_without_engine_files(make_gateway, missing):
    gw = make_gateway(http_directives={missing: None})
    must_not_start(gw, '"credit_auth" needs credit_auth_policy, '
                       'credit_auth_keys (or credit_auth_key_registry) and '
                       'credit_auth_banks')


@pytest.mark.parametrize("mode", ["on", "report"])
def test_on_without_redis(make_gateway, mode):
    gw = make_gateway(mode=mode, http_directives={"credit_auth_redis": None})
    must_not_start(gw, '"credit_auth" needs credit_auth_redis: '
                       'no audit, no data')


def test_off_everywhere_needs_no_redis(make_gateway):
    """Only where credit_auth is on (or report) are the files and Redis
    required."""
    gw = make_gateway(mode="off", http_directives={
        "credit_auth_redis": None, "credit_auth_policy": None,
        "credit_auth_keys": None, "credit_auth_banks": None,
        "credit_auth_hash_key": None})
    rc, out = gw.test()
    assert rc == 0, out


def test_status_without_zone(make_gateway):
    gw = make_gateway(zone=None)
    must_not_start(gw, '"credit_auth_status" needs credit_auth_zone')


@pytest.mark.parametrize("value,message", [
    ("credit_auth", 'invalid zone "credit_auth", expected NAME:SIZE'),
    ("credit_auth:32k", 'invalid zone "credit_auth:32k" (size at least 64k)'),
    ("credit_auth:63k", 'invalid zone "credit_auth:63k" (size at least 64k)'),
    ("credit_auth:lots", 'invalid zone "credit_auth:lots" '
                         '(size at least 64k)'),
    ("credit_auth:", 'invalid zone "credit_auth:" (size at least 64k)'),
    (":16m", 'invalid zone ":16m" (size at least 64k)'),
])
def test_zone_bad_forms(make_gateway, value, message):
    must_not_start(make_gateway(zone=value), message)


def test_zone_duplicate(make_gateway):
    gw = make_gateway(zone=["ca1:1m", "ca2:1m"])
    must_not_start(gw, '"credit_auth_zone" directive is duplicate')


def test_zone_64k_is_enough(make_gateway):
    rc, out = make_gateway(zone="credit_auth:64k").test()
    assert rc == 0, out


@pytest.mark.parametrize("value,message", [
    ("no-such-host.invalid:6379",
     'credit_auth_redis: host not found in "no-such-host.invalid:6379"'),
    ("127.0.0.1:99999", 'credit_auth_redis: invalid port in "127.0.0.1:99999"'),
    ("127.0.0.1:6379 colour=blue",
     'credit_auth_redis: invalid parameter "colour=blue"'),
    ("127.0.0.1:6379 db=x", 'credit_auth_redis: invalid parameter "db=x"'),
    ("127.0.0.1:6379 db=", 'credit_auth_redis: invalid parameter "db="'),
    ("127.0.0.1:6379 connect_timeout=0",
     'credit_auth_redis: invalid parameter "connect_timeout=0"'),
    ("127.0.0.1:6379 connect_timeout=soon",
     'credit_auth_redis: invalid parameter "connect_timeout=soon"'),
    ("127.0.0.1:6379 command_timeout=0",
     'credit_auth_redis: invalid parameter "command_timeout=0"'),
    ("127.0.0.1:6379 max_inflight=0",
     'credit_auth_redis: invalid parameter "max_inflight=0"'),
    ("127.0.0.1:6379 max_inflight=-1",
     'credit_auth_redis: invalid parameter "max_inflight=-1"'),
    ("unix:", "credit_auth_redis: empty unix socket path"),
])
def test_redis_bad_forms(make_gateway, value, message):
    must_not_start(make_gateway(redis_addr=value), message)


def test_redis_duplicate(make_gateway):
    gw = make_gateway(redis_addr=["127.0.0.1:6379", "127.0.0.1:6380"])
    must_not_start(gw, '"credit_auth_redis" directive is duplicate')


def test_redis_duplicate_unix_then_tcp(make_gateway):
    gw = make_gateway(redis_addr=["unix:/tmp/no.sock", "127.0.0.1:6380"])
    must_not_start(gw, '"credit_auth_redis" directive is duplicate')


def test_policy_duplicate(make_gateway, stack):
    gw = make_gateway(http_directives={
        "credit_auth_policy": [str(stack.policy_path),
                               str(stack.policy_path)]})
    must_not_start(gw, '"credit_auth_policy" directive is duplicate')


def test_spool_missing_directory(make_gateway, scratch):
    missing = scratch / "no-such-spool"
    gw = make_gateway(http_directives={"credit_auth_audit_spool":
                                       str(missing)})
    must_not_start(gw, f'credit_auth_audit_spool: "{missing}" is not a '
                       'writable directory')


@pytest.mark.parametrize("param,message", [
    ("max_size=lots", 'invalid max_size "max_size=lots"'),
    ("max_size=0", 'invalid max_size "max_size=0"'),
    ("max_size=", 'invalid max_size "max_size="'),
    ("maxsize=1m", 'invalid parameter "maxsize=1m"'),
])
def test_spool_bad_parameter(make_gateway, scratch, param, message):
    spool = S.subdir(scratch, "spool", 0o777)
    gw = make_gateway(http_directives={"credit_auth_audit_spool":
                                       f"{spool} {param}"})
    must_not_start(gw, message)


def test_spool_duplicate(make_gateway, scratch):
    spool = S.subdir(scratch, "spool", 0o777)
    gw = make_gateway(http_directives={"credit_auth_audit_spool":
                                       [str(spool), str(spool)]})
    must_not_start(gw, '"credit_auth_audit_spool" directive is duplicate')


def _pem_private(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_audit_key_missing_file(make_gateway, scratch):
    missing = scratch / "no-such-audit.pem"
    must_not_start(make_gateway(audit_key=str(missing)),
                   f"invalid audit key: {missing}: cannot open")


def test_audit_key_not_ed25519(make_gateway, scratch):
    p = scratch / "audit-p256.pem"
    p.write_bytes(_pem_private(ec.generate_private_key(ec.SECP256R1())))
    must_not_start(make_gateway(audit_key=str(p)),
                   f"invalid audit key: {p}: the audit key must be Ed25519")


def test_audit_key_public_instead_of_private(make_gateway, stack):
    must_not_start(make_gateway(audit_key=str(stack.audit_pub)),
                   f"invalid audit key: {stack.audit_pub}: "
                   "not a PEM private key")


def test_audit_key_garbage(make_gateway, scratch):
    p = scratch / "garbage.pem"
    p.write_text("not a key at all\n")
    must_not_start(make_gateway(audit_key=str(p)),
                   f"invalid audit key: {p}: not a PEM private key")


@pytest.mark.parametrize("param,message", [
    ("interval=0", 'invalid interval "interval=0"'),
    ("interval=soon", 'invalid interval "interval=soon"'),
    ("interval=", 'invalid interval "interval="'),
    ("every=1s", 'invalid parameter "every=1s"'),
])
def test_audit_key_bad_interval(make_gateway, stack, param, message):
    gw = make_gateway(audit_key=f"{stack.audit_key} {param}")
    must_not_start(gw, message)


def test_audit_key_good_interval(make_gateway, stack):
    rc, out = make_gateway(audit_key=f"{stack.audit_key} interval=250ms") \
        .test()
    assert rc == 0, out


def test_hash_key_missing_file(make_gateway, scratch):
    missing = scratch / "no-such-hash.key"
    out = must_not_start(make_gateway(hash_key=str(missing)),
                         "invalid hash key: ", str(missing))
    assert "No such file or directory" in out, out


@pytest.mark.parametrize("size", [0, 1, 31])
def test_hash_key_too_short(make_gateway, scratch, size):
    p = scratch / f"short-{size}.key"
    p.write_bytes(os.urandom(size))
    must_not_start(make_gateway(hash_key=str(p)),
                   f"invalid hash key: {p}: must hold at least 32 bytes")


def test_hash_key_32_bytes_is_enough(make_gateway, scratch):
    p = scratch / "exact-32.key"
    p.write_bytes(os.urandom(32))
    rc, out = make_gateway(hash_key=str(p)).test()
    assert rc == 0, out


def test_hash_treatment_without_hash_key(make_gateway, scratch):
    pol = copy.deepcopy(S.TEST_POLICY)
    pol["categories"]["tax"]["fields"]["name"] = {"masked": "hash",
                                                  "raw": "keep"}
    p = S.write_json(scratch / "hash-policy.json", pol)
    # with the key it loads ...
    rc, out = make_gateway(policy=p).test()
    assert rc == 0, out
    # ... without it, it does not
    must_not_start(make_gateway(policy=p, hash_key=None),
                   f'{p}: field "name" of category "tax" uses "hash" but '
                   'no credit_auth_hash_key is set')


def test_hash_in_raw_level_without_hash_key(make_gateway, scratch):
    pol = copy.deepcopy(S.TEST_POLICY)
    pol["categories"]["tax"]["fields"]["legal_representative.name"] = {
        "masked": "mask:1,0", "raw": "hash", "class": "personal"}
    p = S.write_json(scratch / "hash-raw-policy.json", pol)
    must_not_start(make_gateway(policy=p, hash_key=None),
                   'field "legal_representative.name" of category "tax" '
                   'uses "hash" but no credit_auth_hash_key is set')


def test_bank_narrowing_to_unknown_purpose(make_gateway, scratch, stack):
    banks = json.loads(stack.banks_path.read_text())
    banks["banks"][1]["purposes"] = ["credit_assessment", "marketing"]
    p = S.write_json(scratch / "banks-unknown-purpose.json", banks)
    must_not_start(make_gateway(banks=p),
                   f'{p}: $.banks[1].purposes[1]: purpose "marketing" is '
                   f'not in the policy {stack.policy_path}')


@pytest.mark.parametrize("value", ["maybe", "yes", "1", "enforce"])
def test_credit_auth_invalid_value(make_gateway, value):
    out = must_not_start(make_gateway(mode=value),
                         f'invalid value "{value}"')
    assert "credit_auth" in out or "nginx.conf" in out, out


def test_credit_auth_status_takes_no_argument(make_gateway):
    gw = make_gateway(server_extra="        location = /s2 { "
                                   "credit_auth_status on; }")
    must_not_start(gw, 'invalid number of arguments in "credit_auth_status"')


# ========================================================================
# Directive behaviour on running gateways
# ========================================================================

def test_redis_password(env, make_gateway, own_redis):
    redis = own_redis(password="Dir3ctive-S3cret")
    gw = make_gateway(redis_addr=f"{redis.address} "
                                 f"password=Dir3ctive-S3cret").start()
    e = env_for(env, gw, redis)
    rid = new_rid("pw")
    r = e.get(TAX, headers={"X-Request-Id": rid})
    assert r.status_code == 200, r.text
    got = wait_entries(redis.client(), by_rid(rid))
    assert len(got) == 1 and got[0]["decision"] == "allow", got
    assert got[0]["gw"] == "gw-test"


def test_redis_wrong_password(env, make_gateway, own_redis):
    redis = own_redis(password="the-right-one")
    gw = make_gateway(redis_addr=f"{redis.address} password=a-wrong-one",
                      workers=1).start()
    e = env_for(env, gw, redis)
    assert wait_for(lambda: "redis AUTH refused" in gw.read_error_log(), 5), \
        gw.read_error_log()[-2000:]
    for _ in range(5):
        t = time.monotonic()
        r = e.get(TAX)
        assert time.monotonic() - t < 3.0
        refused(r, 503, UNAVAILABLE)
    log = gw.read_error_log()
    assert re.search(r"credit_auth: redis AUTH refused: .*(WRONGPASS|invalid)",
                     log), log[-2000:]
    # nothing reached Redis unauthenticated
    assert redis.client().xlen("credit:audit") == 0
    alive(gw)


def test_redis_wrong_password_reconnects_with_backoff(env, make_gateway,
                                                     own_redis):
    """docs/configuration.md: a dropped connection is "reconnected with
    backoff (50 ms doubling to 5 s, with jitter)".  A refused AUTH is not
    a reason to hammer Redis 20+ times a second: over 2 s the doubling
    backoff allows some 6 attempts (counted on the status page, said once
    in the error log)."""
    redis = own_redis(password="the-right-one")
    gw = make_gateway(redis_addr=f"{redis.address} password=a-wrong-one",
                      workers=1).start()
    assert wait_for(lambda: "redis AUTH refused" in gw.read_error_log(), 5)
    n0 = status_of(gw)["events"]["redis_unavailable"]
    time.sleep(2.0)
    attempts = status_of(gw)["events"]["redis_unavailable"] - n0
    assert 1 <= attempts <= 10, \
        f"{attempts} AUTH attempts in 2 s: no backoff after a refused AUTH"
    assert gw.read_error_log().count("redis AUTH refused") == 1
    alive(gw)


def test_redis_db_out_of_range(env, make_gateway, own_redis):
    """db=99 on a Redis with 16 databases: SELECT is refused, nothing is
    written anywhere, requests are refused 503."""
    redis = own_redis()
    gw = make_gateway(redis_addr=f"{redis.address} db=99",
                      workers=1).start()
    e = env_for(env, gw, redis)
    assert wait_for(lambda: "redis SELECT refused" in gw.read_error_log(),
                    5), gw.read_error_log()[-2000:]
    for _ in range(3):
        refused(e.get(TAX), 503, UNAVAILABLE)
    assert redis.client().keys("*") == []
    alive(gw)


def test_redis_db(env, make_gateway, own_redis):
    redis = own_redis()
    gw = make_gateway(redis_addr=f"{redis.address} db=3").start()
    e = env_for(env, gw, redis)
    db0, db3 = redis.client(db=0), redis.client(db=3)

    rid = new_rid("db")
    r = e.get(TAX, headers={"X-Request-Id": rid})
    assert r.status_code == 200, r.text
    got = wait_entries(db3, by_rid(rid))
    assert len(got) == 1 and got[0]["decision"] == "allow", got
    assert wait_entries(db3, by_rid(rid, "outcome")), "no outcome in db 3"
    assert db0.xlen("credit:audit") == 0
    assert db0.keys("credit:*") == [], db0.keys("*")

    # revocation is read from db 3 too
    tok0 = e.token(jti="db-revoked-in-db0")
    db0.set("credit:revoked:db-revoked-in-db0", "1")
    assert e.get(TAX, token=tok0).status_code == 200
    tok3 = e.token(jti="db-revoked-in-db3")
    db3.set("credit:revoked:db-revoked-in-db3", "1")
    refused(e.get(TAX, token=tok3), 403, ("consent_revoked",))
    assert db0.xlen("credit:audit") == 0


def test_redis_unix_socket(env, make_gateway, own_redis):
    redis = own_redis(UnixRedis)
    assert redis.port == 0
    gw = make_gateway(redis_addr=f"unix:{redis.sock}").start()
    e = env_for(env, gw, redis)
    rid = new_rid("unix")
    r = e.get(TAX, headers={"X-Request-Id": rid})
    assert r.status_code == 200, r.text
    got = wait_entries(redis.client(), by_rid(rid))
    assert len(got) == 1 and got[0]["decision"] == "allow", got
    rid2 = new_rid("unixdeny")
    refused(e.get(TAX, token=None, headers={"X-Request-Id": rid2}), 401,
            ("token_missing",))
    got = wait_entries(redis.client(), by_rid(rid2))
    assert len(got) == 1 and got[0]["reason"] == "token_missing", got


def _listener_that_accepts_nothing():
    """A loopback port whose SYNs go unanswered: a listening socket with
    a backlog of 0 whose accept queue is already full (one connection
    never accepted), so the kernel drops further SYNs and a connect()
    stays in progress."""
    lsn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(0)
    port = lsn.getsockname()[1]
    fillers = []
    for _ in range(2):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.1)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        hangs = False
    except (socket.timeout, OSError):
        hangs = True
    finally:
        probe.close()
    return lsn, fillers, port, hangs


def test_redis_connect_timeout(env, make_gateway):
    lsn, fillers, port, hangs = _listener_that_accepts_nothing()
    try:
        if not hangs:
            pytest.skip("this kernel completes connections to a full "
                        "accept queue")
        t0 = time.monotonic()
        gw = make_gateway(redis_addr=f"127.0.0.1:{port} "
                                     "connect_timeout=200ms",
                          workers=1).start()
        e = env_for(env, gw)
        assert wait_for(lambda: "credit_auth: redis: connect timed out"
                        in gw.read_error_log(), 5), gw.read_error_log()
        # 200 ms, not the default 1 s (plus the 100 ms watchdog tick)
        assert time.monotonic() - t0 < 0.95, time.monotonic() - t0
        for _ in range(4):
            t = time.monotonic()
            r = e.get(TAX)
            assert time.monotonic() - t < 0.5, time.monotonic() - t
            # no spool: revocation unknown, and the refusal cannot be
            # audited either (contract §7: then audit_unavailable)
            refused(r, 503, UNAVAILABLE)
        # still trying, still timing out (counted, said once), serving
        n = status_of(gw)["events"]["redis_unavailable"]
        assert wait_for(lambda: status_of(gw)["events"]["redis_unavailable"]
                        > n, 5)
        assert gw.read_error_log().count("connect timed out") == 1
        st = status_of(gw)
        assert st["redis"]["connected"] is False, st["redis"]
        alive(gw)
    finally:
        for s in fillers + [lsn]:
            s.close()


def test_redis_nothing_listening(env, make_gateway):
    port = S.free_port()
    gw = make_gateway(redis_addr=f"127.0.0.1:{port} connect_timeout=200ms",
                      workers=1).start()
    e = env_for(env, gw)
    for _ in range(3):
        t = time.monotonic()
        r = e.get(TAX)
        assert time.monotonic() - t < 0.5
        refused(r, 503, UNAVAILABLE)
    assert "credit_auth: redis connect failed" in gw.read_error_log()
    alive(gw)


def test_no_redis_no_spool_refusal_is_audit_unavailable(env, make_gateway):
    """No Redis and no spool: a request that would be refused cannot have
    its decision audited either.  contract §7: "if neither is possible the
    answer is 503 audit_unavailable"; docs/configuration.md: "A full
    spool, or no spool, makes every request 503 audit_unavailable"."""
    port = S.free_port()
    gw = make_gateway(redis_addr=f"127.0.0.1:{port}", workers=1).start()
    e = env_for(env, gw)
    r = e.get(TAX, token=None)
    assert r.status_code != 200
    refused(r, 503, ("audit_unavailable",))
    alive(gw)


def test_redis_max_inflight(env, make_gateway, own_redis):
    """max_inflight=1 and Redis frozen: the first allow candidate's
    command takes the only slot and waits; every request arriving while it
    waits is refused at once (the command is declined, the decision cannot
    be audited: 503 audit_unavailable), not after command_timeout."""
    redis = own_redis()
    gw = make_gateway(redis_addr=f"{redis.address} max_inflight=1 "
                                 "command_timeout=4s",
                      audit_key=None, workers=1).start()
    e = env_for(env, gw, redis)
    r = e.get(TAX, plain=True)
    assert r.status_code == 200, r.text
    time.sleep(0.3)           # the outcome entry is acknowledged
    assert status_of(gw)["audit"]["inflight"] == 0

    redis.pause()
    try:
        box = {}

        def first():
            t = time.monotonic()
            box["r"] = e.get(TAX, plain=True, timeout=20)
            box["t"] = time.monotonic() - t
        th = threading.Thread(target=first)
        th.start()
        assert wait_for(lambda: status_of(gw)["audit"]["inflight"] == 1, 2)

        def later(_):
            t = time.monotonic()
            resp = e.get(TAX, plain=True, timeout=20)
            return resp, time.monotonic() - t
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as ex:
            results = list(ex.map(later, range(4)))
        waited = time.monotonic() - t0
        for resp, dt in results:
            refused(resp, 503, ("audit_unavailable",))
            assert dt < 0.8, dt
        assert waited < 0.9, waited
        assert "r" not in box, "the first request did not wait for Redis"
        time.sleep(max(0.0, 1.0 - waited))
    finally:
        redis.resume()
    th.join(10)
    assert "r" in box
    assert box["r"].status_code == 200, box["r"].text
    assert 0.9 < box["t"] < 4.0, box["t"]
    got = wait_entries(redis.client(),
                       by_rid(box["r"].headers["X-Request-Id"]))
    assert len(got) == 1 and got[0]["decision"] == "allow"
    # the slot is free again
    assert e.get(TAX, plain=True).status_code == 200
    alive(gw)


def test_audit_stream(env, make_gateway, own_redis):
    redis = own_redis()
    gw = make_gateway(stream="audit:test:custom",
                      redis_addr=redis.address).start()
    e = env_for(env, gw, redis)
    c = redis.client()
    ok = e.get(TAX, headers={"X-Request-Id": new_rid("stream")})
    assert ok.status_code == 200, ok.text
    no = e.get(TAX, token=None, headers={"X-Request-Id": new_rid("streamno")})
    refused(no, 401, ("token_missing",))
    for resp, n in ((ok, 1), (no, 1)):
        rid = resp.headers["X-Request-Id"]
        assert len(wait_entries(c, by_rid(rid), "audit:test:custom")) == n
    assert wait_entries(c, by_rid(ok.headers["X-Request-Id"], "outcome"),
                        "audit:test:custom")
    assert c.exists("credit:audit") == 0
    assert c.xlen("credit:audit") == 0
    assert c.type("audit:test:custom") == "stream"


def test_gateway_id(env, make_gateway, own_redis):
    redis = own_redis()
    gw = make_gateway(gateway_id="gw-directive-test",
                      redis_addr=redis.address,
                      audit_key=f"{env.st.audit_key} interval=200ms").start()
    e = env_for(env, gw, redis)
    c = redis.client()
    ok = e.get(TAX)
    assert ok.status_code == 200, ok.text
    refused(e.get(TAX, token=None), 401, ("token_missing",))
    assert wait_entries(c, lambda x: x.get("event") == "checkpoint")
    got = entries(c)
    assert {x["event"] for x in got} >= {"decision", "outcome", "checkpoint"}
    pids = set(gw.workers())
    for x in got:
        assert x["gw"] == "gw-directive-test", x
        m = re.fullmatch(r"gw-directive-test/(\d+)/(\d+)/(\d+)", x["chain"])
        assert m, x["chain"]
        assert int(m.group(1)) in pids, (x["chain"], pids)


def test_gateway_id_defaults_to_host_name(env, make_gateway, own_redis):
    redis = own_redis()
    gw = make_gateway(gateway_id=None, redis_addr=redis.address).start()
    e = env_for(env, gw, redis)
    r = e.get(TAX)
    assert r.status_code == 200, r.text
    got = wait_entries(redis.client(), by_rid(r.headers["X-Request-Id"]))
    host = socket.gethostname()
    assert got[0]["gw"] == host, (got[0]["gw"], host)
    assert got[0]["chain"].startswith(host + "/")


def _spool_gateway(make_gateway, scratch, port, max_size):
    spool = S.subdir(scratch, "spool", 0o777)
    os.chmod(spool, 0o777)
    gw = make_gateway(redis_addr=f"127.0.0.1:{port}", workers=1,
                      audit_key=None,
                      http_directives={"credit_auth_audit_spool":
                                       f"{spool} max_size={max_size}"})
    return gw.start(), spool


def test_spool_fills_then_refuses(env, make_gateway, scratch):
    """Redis away, a 1k spool: refusals are spooled (and answered) until
    the spool is full; from then on nothing can be audited, which contract §7
    says means 503 ("the spool is bounded, and full means 503") and
    docs/configuration.md says is 503 audit_unavailable for every
    request."""
    port = S.free_port()                     # nothing listens there
    gw, spool = _spool_gateway(make_gateway, scratch, port, "1k")
    e = env_for(env, gw)
    workers = set(gw.workers())
    sizes, answers = [], []
    for i in range(12):
        r = e.get(TAX, token=None)
        answers.append((r.status_code, reason_of(r)))
        files = list(Path(spool).glob("worker-*.spool"))
        sizes.append(sum(f.stat().st_size for f in files))
        if "is full or unwritable" in gw.read_error_log():
            break
    assert answers[0] == (401, "token_missing"), answers
    assert sizes[0] > 0, "the first refusal was not spooled"
    assert max(sizes) <= 1024, sizes
    log = gw.read_error_log()
    assert re.search(r"credit_auth: audit spool \S+worker-\d+\.spool is "
                     r"full or unwritable", log), log[-2000:]
    # the worker survived and still answers
    assert set(gw.workers()) == workers
    alive(gw)
    # an allow candidate: 503 (Redis is away and nothing can be audited)
    refused(e.get(TAX), 503, UNAVAILABLE)
    # full spool: nothing more can be audited -> 503 audit_unavailable,
    # a would-be refusal included (docs/configuration.md, "When Redis is
    # away": "A full spool, or no spool, makes every request 503
    # audit_unavailable")
    for _ in range(3):
        r = e.get(TAX, token=None)
        refused(r, 503, ("audit_unavailable",))
    assert set(gw.workers()) == workers
    alive(gw)


def test_spool_is_replayed_when_redis_comes(env, make_gateway, scratch,
                                            own_redis):
    """What the (bounded) spool took reaches the stream, in order, once
    Redis is there; the allow candidates were refused 503
    revocation_unavailable meanwhile."""
    port = S.free_port()
    gw, spool = _spool_gateway(make_gateway, scratch, port, "64k")
    e = env_for(env, gw)
    rids = []
    for i in range(3):
        rid = new_rid(f"sp{i}")
        refused(e.get(TAX, token=None, headers={"X-Request-Id": rid}), 401,
                ("token_missing",))
        rids.append(rid)
    rid = new_rid("spallow")
    refused(e.get(TAX, headers={"X-Request-Id": rid}), 503,
            ("revocation_unavailable",))
    rids.append(rid)
    assert sum(f.stat().st_size for f in Path(spool).glob("*.spool")) > 0
    redis = own_redis(port=port)
    c = redis.client()
    got = wait_entries(c, lambda x: x.get("rid") in rids, count=4,
                       timeout=10)
    assert [x["rid"] for x in got] == rids, got
    assert got[-1]["reason"] == "revocation_unavailable"
    assert all(x["decision"] == "deny" for x in got)
    # and the gateway serves again
    assert wait_for(lambda: e.get(TAX).status_code == 200, 10)
    alive(gw)


def test_credit_auth_off_location(env, make_gateway, own_redis):
    """`credit_auth off` on the plain listener: no bank, no token, the
    upstream's answer as it is, nothing audited; the TLS listener (on)
    in the same gateway audits as usual."""
    redis = own_redis()
    gw = make_gateway(redis_addr=redis.address, audit_key=None,
                      plain_location_directives={
                          "credit_auth": "off",
                          "credit_auth_client_cert": None}).start()
    c = redis.client()
    off_rid = new_rid("off")
    r = requests.get(gw.url(TAX, plain=True), timeout=5,
                     headers={"X-Request-Id": off_rid})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["internal_notes"] == "UPSTREAM-INTERNAL-NOTE do not disclose"
    assert doc["legal_representative"]["id_number"] == "110101199003071234"
    assert doc["annual"][0]["filing_ref"] == "FR-2023-SECRET-88812"
    assert "X-Credit-Disclosure" not in r.headers
    assert "ETag" in r.headers           # not touched by the filter
    # a refusal-shaped request is passed through as well
    r2 = requests.get(gw.url(TAX, plain=True), timeout=5,
                      headers={"Authorization": "Bearer garbage"})
    assert r2.status_code == 200 and "internal_notes" in r2.text
    time.sleep(0.5)
    assert c.xlen("credit:audit") == 0, entries(c)

    e = env_for(env, gw, redis)
    on = e.get(TAX)
    assert on.status_code == 200 and "internal_notes" not in on.text
    assert wait_entries(c, by_rid(on.headers["X-Request-Id"]))
    assert wait_entries(c, by_rid(on.headers["X-Request-Id"], "outcome"))
    # no audit key: no checkpoints, the two entries are all there is
    assert c.xlen("credit:audit") == 2, entries(c)
    r3 = requests.get(gw.url(TAX, plain=True), timeout=5,
                      headers={"X-Request-Id": off_rid})
    assert r3.status_code == 200 and "internal_notes" in r3.text
    time.sleep(0.3)
    assert c.xlen("credit:audit") == 2, entries(c)
    assert not [x for x in entries(c) if x.get("rid") == off_rid]


def test_zone_shared_by_workers(env, make_gateway, own_redis):
    """One token, many connections spread over two workers (reuseport):
    the first request verifies it, every later one is a cache hit,
    whichever worker answers; the status sums both."""
    redis = own_redis()
    port = S.free_port()
    gw = make_gateway(redis_addr=redis.address, workers=2,
                      plain_server_extra=f"        listen 127.0.0.1:{port} "
                                         "reuseport;").start()
    e = env_for(env, gw, redis)
    c = redis.client()
    assert wait_for(lambda: len(gw.workers()) == 2, 5)
    tok = e.token(jti="zone-shared-" + uuid.uuid4().hex[:8])
    hdr = {"Authorization": f"Bearer {tok}",
           "X-Credit-Purpose": "loan_application",
           "Client-Cert": S.client_cert_header(env.certs["BANK001"].cert)}
    url = f"http://127.0.0.1:{port}{TAX}"

    before = status_of(gw)["token_cache"]
    r = requests.get(url, headers=hdr, timeout=5)
    assert r.status_code == 200, r.text
    after_first = status_of(gw)["token_cache"]
    assert after_first["misses"] == before["misses"] + 1, \
        (before, after_first)

    rids = []
    n = 24
    for i in range(n):
        with requests.Session() as s:          # a new connection each
            rr = s.get(url, headers=hdr, timeout=5)
        assert rr.status_code == 200, rr.text
        rids.append(rr.headers["X-Request-Id"])
    pids = set()
    for rid in rids:
        got = wait_entries(c, by_rid(rid))
        assert len(got) == 1, (rid, got)
        pids.add(got[0]["chain"].split("/")[1])
    assert len(pids) == 2, f"all requests on one worker: {pids}"
    # the status (from whichever worker) counts hits of both
    for _ in range(4):
        st = status_of(gw)["token_cache"]
        assert st["misses"] == after_first["misses"], (after_first, st)
        assert st["hits"] == after_first["hits"] + n, (after_first, st)
        assert st["entries"] >= 1
