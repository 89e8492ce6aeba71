"""Operators' signals (issue 19): a condition that lasts is one log line
when it begins (at the level it deserves), one when it ends, and a
counter between (status page `events`, `audit.refused`): Redis loading
after a restart, a primary refusing writes for want of replicas
(NOREPLICAS), a kid both in the key file and the registry.  The tests
count the lines of the error log.

Each test runs its own Redis and gateway (faults.py)."""

import json
import re
import time

import faults as F
from conftest import E1, TAX, S, problem
from faults import base, faults, reason_of, rid  # noqa: F401 (fixtures)


def lines(log, pattern):
    return [l for l in log.splitlines() if re.search(pattern, l)]


def test_redis_loading_after_a_restart_is_a_notice_said_once(faults):
    """A Redis that persists loads its data after every restart and
    answers -LOADING meanwhile: each attempt was an [error] line; now one
    [notice] while it lasts, the attempts counted."""
    fs = faults(workers=1)
    env, gw = fs.env, fs.gateway
    r = fs.redis.client()
    p = r.pipeline(transaction=False)
    for i in range(3000):
        p.set(f"filler:{i}", "x" * 16)
    p.execute()
    r.bgrewriteaof()                # an RDB base: loaded key by key
    assert S.wait_for(lambda: r.info("persistence")
                      ["aof_rewrite_in_progress"] == 0, 10)
    assert env.get(TAX).status_code == 200
    before = fs.status().get("events", {}).get("redis_loading", 0)
    mark = gw.log_size()

    fs.redis.stop()
    # 1 ms a key (~3 s), answering -LOADING all along
    fs.redis.extra = ["key-load-delay 1000",
                      "loading-process-events-interval-bytes 1024"]
    fs.redis.start(timeout=30)      # returns once loaded
    assert S.wait_for(lambda: env.get(TAX).status_code == 200, 10)

    log = gw.read_error_log(mark)
    loading = lines(log, "LOADING")
    assert not lines(log, r"\[error\].*LOADING"), log[-3000:]
    said = [l for l in loading if "answers again" not in l]
    assert len(said) == 1 and "[notice]" in said[0], loading
    assert fs.status()["events"]["redis_loading"] - before >= 2
    assert len(lines(log, "redis answers again")) == 1, log[-2000:]


def test_noreplicas_is_said_once_per_partition(faults):
    """A primary with min-replicas-to-write 1 whose replica stops: every
    write is refused (-NOREPLICAS), for every batch.  One line that Redis
    refuses audit entries, one that the connection is dropped for it,
    then counters; the refused decisions are 503 and spooled, replayed
    once the replica is back."""
    fs = faults(workers=1)
    env, gw = fs.env, fs.gateway
    replica = S.Redis(S.subdir(fs.dir, "replica"), extra=[
        "repl-diskless-sync-delay 0",
        f"replicaof 127.0.0.1 {fs.redis.port}"]).start()
    try:
        primary = fs.redis.client()
        assert S.wait_for(lambda: primary.info("replication")
                          .get("connected_slaves") == 1, 10)
        primary.config_set("min-replicas-max-lag", 2)
        primary.config_set("min-replicas-to-write", 1)
        assert S.wait_for(lambda: primary.info("replication")
                          .get("min_slaves_good_slaves") == 1, 10)
        assert env.get(TAX).status_code == 200
        before = fs.status()
        mark = gw.log_size()

        replica.pause()
        assert S.wait_for(lambda: primary.info("replication")
                          .get("min_slaves_good_slaves") == 0, 10)
        refused = []
        for _ in range(12):
            r = env.get(TAX, headers={"X-Request-Id": rid("nr")})
            assert r.status_code == 503, r.text
            problem(r, 503, reason_of(r))
            refused.append(r.headers["X-Request-Id"])
        log = gw.read_error_log(mark)
        assert len(lines(log, "NOREPLICAS")) <= 2, lines(log, "NOREPLICAS")
        assert len(lines(log, "refused audit entries: NOREPLICAS")) == 1
        assert "fate is unknown" not in log
        after = fs.status()
        assert after["events"]["redis_not_writable"] \
            > before["events"]["redis_not_writable"]
    finally:
        replica.resume()
    assert S.wait_for(lambda: env.get(TAX).status_code == 200, 15)
    assert fs.wait_drained(timeout=30), fs.spool_files()
    assert S.wait_for(lambda: fs.status()["audit"]["refused"]
                      > before["audit"]["refused"], 3)
    log = gw.read_error_log(mark)
    assert len(lines(log, "takes audit entries again")) == 1, log[-2000:]
    dec = F.by_rid(F.dedupe(fs.entries())[0], "decision")
    for rid_ in refused:
        assert len(dec.get(rid_, [])) == 1, (rid_, dec.get(rid_))
    problems, _ = F.verify_chains(fs.entries(), fs.pub)
    assert not problems, problems[:10]
    replica.stop()


def test_kid_in_file_and_registry_is_said_once(faults, base):
    """Every token of a kid both in credit_auth_keys and in the registry
    is refused: one error line names the kid, the refusals are counted."""
    fs = faults(workers=1, http_directives={
        "credit_auth_key_registry": "on ttl=30s negative_ttl=2s poll=100ms"})
    env, gw = fs.env, fs.gateway
    kid = "e1-es256"                    # in the stack's key file
    priv = S.generate_key("ES256")
    jwk = S.public_jwk(priv, "ES256", kid, E1)
    rec = {"kid": kid, "uscc": E1, "state": "active", "not_before": 0,
           "not_after": 0, "version": 1, "jwk": jwk}
    fs.redis.client().set(f"credit:key:{{{kid}}}", json.dumps(rec))
    fs.redis.client().incr("credit:keyreg:version")
    time.sleep(0.3)
    mark = gw.log_size()
    for _ in range(20):
        doc = problem(env.get(TAX), 401, "kid_unknown")
        assert "registered twice" in doc["detail"]
    log = gw.read_error_log(mark)
    said = lines(log, f'kid "{kid}" is both in')
    assert len(said) == 1 and "[error]" in said[0], said
    assert fs.status()["events"]["kid_in_file_and_registry"] == 20
