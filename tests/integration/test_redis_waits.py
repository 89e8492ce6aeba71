"""Every request that waits on Redis ends (issue 19, "Availability"): a
key-registry lookup while the worker reconnects, a decision entry while
Redis restarts, requests taken by a worker that exits after a reload
while Redis is frozen; and a registry record is never read whole.

Each test runs its own Redis (appendfsync always) and gateway
(faults.py); the session stack of conftest.py is not used."""

import json
import secrets
import threading
import time

import requests

import faults as F
from conftest import E1, PURPOSE, TAX, S, problem
from faults import (base, faults, judge, reason_of,  # noqa: F401
                    register, rid, session)

REGISTRY = "on ttl=30s negative_ttl=2s poll=100ms"


def send(s, env, token, rid_, timeout):
    return s.get(env.gw.url(TAX), timeout=timeout, allow_redirects=False,
                 verify=env.pki.server_ca_path,
                 headers={"Authorization": f"Bearer {token}",
                          "X-Credit-Purpose": PURPOSE,
                          "X-Request-Id": rid_})


def registry_load(env, priv, kids):
    """F.Load of bank requests, each with a token of a kid not used
    before (so not cached)."""
    def one(s, item, timeout):
        rid_, kid = item
        tok = S.mint_token(priv, "ES256", kid, S.claims(E1, "BANK001"))
        return send(s, env, tok, rid_, timeout)
    return F.Load(((rid("w"), kid) for kid in kids), one,
                  lambda: session(env))


def every_request_audited(fs, results):
    """Once Redis is back and the spools drained, each answered request
    has exactly one decision entry, matching its answer."""
    assert fs.wait_drained(timeout=40), \
        f"spool not drained: {fs.spool_files()}\n{fs.log_tail()}"
    uniq, _ = F.dedupe(fs.entries())
    dec = F.by_rid(uniq, "decision")
    missing, wrong = [], []
    for rid_, kid, t0, dt, res in results:
        if isinstance(res, Exception):
            continue
        got = dec.get(rid_, [])
        if len(got) != 1:
            missing.append((rid_, res.status_code, len(got)))
            continue
        d = (got[0]["decision"], got[0]["reason"])
        if res.status_code == 200:
            ok = d[0] == "allow"
        else:
            # docs/audit-format.md §1: a decision whose reply was lost
            # with the connection is answered 503 audit_unavailable; if
            # Redis had run it, the original stays
            ok = d == ("deny", reason_of(res)) or \
                (reason_of(res) == "audit_unavailable" and d[0] == "allow")
        if not ok:
            wrong.append((rid_, res.status_code, got[0]["decision"],
                          got[0]["reason"]))
    assert not missing, f"{len(missing)} without one decision: {missing[:8]}"
    assert not wrong, f"{len(wrong)} decisions unlike the answer: {wrong[:8]}"
    problems, _ = F.verify_chains(fs.entries(), fs.pub)
    assert not problems, "\n".join(problems[:20])


# ------------------------------------------------------------------------
# 1. A registry lookup while the worker reconnects to Redis

def test_registry_lookups_end_while_redis_restarts(faults):
    """Redis stopped (SIGTERM), down ~1 s, started again, three times,
    under load with kids never seen before: every request ends within
    3 x (command_timeout + connect_timeout) with 200, 503 or 401, and has
    its decision entry (spooled while Redis was away)."""
    fs = faults(workers=2,
                redis_opts="command_timeout=1s connect_timeout=1s",
                http_directives={"credit_auth_key_registry": REGISTRY})
    env = fs.env
    priv = S.generate_key("ES256")
    kids = [f"hang-{i}-{secrets.token_hex(3)}" for i in range(20000)]
    register(fs.redis, priv, kids)
    time.sleep(0.3)
    bound = 3 * (1.0 + 1.0)

    results = F.restarts_under(fs, registry_load(env, priv, kids), bound)
    every_request_audited(fs, results)


# ------------------------------------------------------------------------
# 2. A reload while requests wait on Redis

def test_reload_while_requests_wait_on_a_frozen_redis(faults):
    """Redis frozen (SIGSTOP).  Keep-alive requests wait for their
    decision (in flight) and for registry keys when a reload comes; then
    requests park on the new worker while it tries to connect, and a
    second reload comes.  Each exiting worker answers every request it
    took (503, Connection: close) before it exits: no "open socket left"
    alert; once Redis resumes each request has its decision entry."""
    fs = faults(workers=1,
                redis_opts="command_timeout=1s connect_timeout=1s",
                http_directives={"credit_auth_key_registry": REGISTRY})
    env = fs.env
    priv = S.generate_key("ES256")
    kids = iter([f"rl-{i}-{secrets.token_hex(3)}" for i in range(40)])
    register(fs.redis, priv, [f"warm-{i}" for i in range(6)])
    register(fs.redis, priv, list(kids))
    kids = iter([k for k in fs.redis.client().keys("credit:key:{rl-*")])
    time.sleep(0.3)

    def token(i):
        # odd: a kid cached since the warm-up, so only the decision waits;
        # even: a kid never seen, looked up in the registry first
        kid = f"warm-{i}" if i % 2 else next(kids)[len("credit:key:{"):-1]
        return S.mint_token(priv, "ES256", kid, S.claims(E1, "BANK001"))

    sessions = [session(env) for _ in range(6)]
    for i, s in enumerate(sessions):           # keep-alive connections
        r = send(s, env, S.mint_token(priv, "ES256", f"warm-{i}",
                                      S.claims(E1, "BANK001")), rid(), 10)
        assert r.status_code == 200, r.text

    def requests_of(tag):
        def prepare(i):
            rid_, tok = rid(tag), token(i)
            return rid_, lambda s: send(s, env, tok, rid_, 30)
        return prepare

    waves = F.Waves()
    F.reload_twice_while_frozen(
        fs, waves,
        lambda tag: waves.send(tag, sessions, requests_of(tag)),
        lambda tag: waves.send(tag, [session(env) for _ in range(6)],
                               requests_of(tag)))

    bound = 3 * (1.0 + 1.0)
    slow, bad, counts = judge(waves.judged(), bound)
    assert len(waves.results) == 12, waves.results
    assert not slow and not bad, (slow, bad, counts)
    assert counts.get("200", 0) == 0, counts
    print(f"answers {counts}")
    every_request_audited(fs, waves.judged())


def test_token_cache_survives_a_reload_that_changes_no_key(faults, base):
    """The zone is kept across a reload when its size is the same, and so
    are the verified tokens in it, unless the keys or the policy changed
    (then each is verified again once)."""
    fs = faults(workers=1)
    env, gw = fs.env, fs.gateway
    tokens = [env.token() for _ in range(5)]

    def cache():
        return fs.status()["token_cache"]

    def reload():
        first = set(gw.workers())
        rc, out = F.nginx_signal(gw, "reload")
        assert rc == 0, out
        assert S.wait_for(lambda: set(gw.workers()) - first
                          and not set(gw.workers()) & first, 15)

    for t in tokens:
        assert env.get(TAX, token=t).status_code == 200
    before = cache()
    assert before["entries"] >= 5, before

    reload()                                    # nothing changed
    for t in tokens:
        assert env.get(TAX, token=t).status_code == 200
    after = cache()
    assert after["hits"] - before["hits"] == 5, (before, after)
    assert after["misses"] == before["misses"], (before, after)

    # another key in the file: every token is verified again, once
    jwks = json.loads(base.keys_path.read_text())
    extra = S.public_jwk(S.generate_key("ES256"), "ES256", "extra-key", E1)
    jwks["keys"].append(extra)
    gw.keys = S.write_json(fs.dir / "keys-more.jwks", jwks)
    gw.write()
    reload()
    for t in tokens:
        assert env.get(TAX, token=t).status_code == 200
    changed = cache()
    assert changed["misses"] - after["misses"] == 5, (after, changed)
    for t in tokens:
        assert env.get(TAX, token=t).status_code == 200
    assert cache()["hits"] - changed["hits"] == 5


# ------------------------------------------------------------------------
# 3. A registry record is bounded before it is read

def vmrss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_huge_registry_record_is_refused_by_its_size(faults):
    """A 100 MB value at credit:key:{kid} (and at the version key) is
    refused by its size in Redis, never sent: the right 401 with a log
    line that says why, and the worker's memory stays where it was."""
    fs = faults(workers=1, redis_opts="command_timeout=5s",
                http_directives={"credit_auth_key_registry": REGISTRY})
    env, gw = fs.env, fs.gateway
    priv = S.generate_key("ES256")
    register(fs.redis, priv, ["fine"])
    time.sleep(0.3)

    def get(kid):
        return env.get(TAX, token=S.mint_token(priv, "ES256", kid,
                                               S.claims(E1, "BANK001")))
    assert get("fine").status_code == 200
    pid = gw.workers()[0]
    before = vmrss_kb(pid)

    r = fs.redis.client(socket_timeout=120)
    huge = 100 * 1024 * 1024
    r.set("credit:key:{huge}", b"x" * huge)
    mark = gw.log_size()
    doc = problem(get("huge"), 401, "kid_unknown")
    assert "malformed" in doc["detail"], doc
    log = gw.read_error_log(mark)
    assert (f'key registry record of kid "huge" refused: huge: record of '
            f'{huge} bytes, more than 8192: not read') in log, log[-2000:]

    # the change poller reads the version key the same way
    r.set("credit:keyreg:version", b"7" * huge)
    assert S.wait_for(lambda: "credit:keyreg:version is not a number"
                      in gw.read_error_log(mark), 5)
    r.set("credit:keyreg:version", 8)

    after = vmrss_kb(pid)
    assert after - before < 16 * 1024, (before, after)
    assert get("fine").status_code == 200
    print(f"worker RSS {before} kB -> {after} kB")


def test_stop_at_once_answers_the_requests_waiting_on_redis(faults):
    """nginx -s stop (workers told to exit at once) while requests wait
    on a frozen Redis, some for their decision, some for the connection:
    each still gets its 503, and once Redis is back its refusal is in the
    audit (the spool the next start adopts)."""
    fs = faults(workers=1,
                redis_opts="command_timeout=1s connect_timeout=1s")
    env, gw = fs.env, fs.gateway
    assert env.get(TAX).status_code == 200
    results, lock = [], threading.Lock()

    def one(tag):
        rid_ = rid(tag)
        try:
            res = send(session(env), env, env.token(), rid_, 20)
        except requests.RequestException as ex:
            res = ex
        with lock:
            results.append((rid_, tag, 0, 0, res))

    fs.redis.pause()
    try:
        ts = [threading.Thread(target=one, args=("a",)) for _ in range(3)]
        for t in ts:
            t.start()
        time.sleep(1.3)     # timed out, dropped: the next attempt hangs
        tb = [threading.Thread(target=one, args=("b",)) for _ in range(3)]
        for t in tb:
            t.start()
        time.sleep(0.3)
        rc, out = F.nginx_signal(gw, "stop")
        assert rc == 0, out
        for t in ts + tb:
            t.join(30)
    finally:
        fs.redis.resume()
    assert len(results) == 6
    slow, bad, counts = judge(results, 60)
    assert not slow and not bad, (slow, bad, counts)
    assert counts.get("200", 0) == 0, counts
    assert S.wait_for(lambda: not gw.running, 10)

    gw.start()              # adopts the stopped worker's spool
    every_request_audited(fs, results)


def test_a_refusal_without_spool_waits_for_the_connect(faults):
    """A worker whose connection to Redis is still being made, and no
    spool: a refusal waits for that attempt (at most connect_timeout) and
    is audited, rather than 503 at once because it could go nowhere."""
    fs = faults(workers=1, redis_opts="connect_timeout=2s",
                http_directives={"credit_auth_audit_spool": None})
    env, gw = fs.env, fs.gateway
    gw.stop()
    fs.redis.pause()            # the new worker's attempt hangs in INFO
    try:
        gw.start()
        box = {}

        def refusal():
            box["r"] = env.get(TAX, token=None,
                               headers={"X-Request-Id": rid("nospool")})
        t = threading.Thread(target=refusal)
        t.start()
        time.sleep(0.4)
    finally:
        fs.redis.resume()
    t.join(10)
    problem(box["r"], 401, "token_missing")
    dec = S.wait_for(lambda: F.by_rid(F.dedupe(fs.entries())[0],
                                      "decision").get(
        box["r"].headers["X-Request-Id"]), 5)
    assert dec and dec[0]["reason"] == "token_missing", dec
