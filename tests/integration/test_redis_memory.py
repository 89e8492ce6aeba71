"""Redis memory, never evicted, never silent (contract §7.2, issue 19): a
maxmemory-policy that can evict is refused on connect and when set while
connected; a full noeviction Redis (-OOM) is a definite refusal (503,
the deny spooled, its lane not ended as "fate unknown", one log line),
replayed intact once memory is raised; used_memory, maxmemory and the
policy are on the status page, with a warning from 80 %.

Each test runs its own Redis and gateway (faults.py)."""

import json
import re
import threading
import time

import requests

import faults as F
from conftest import PURPOSE, TAX, S, problem
from faults import base, faults, reason_of, rid  # noqa: F401 (fixtures)


def status(fs):
    return fs.status()


def prometheus(fs):
    return requests.get(fs.gateway.url("/credit-auth/status?format="
                                       "prometheus", plain=True),
                        timeout=5).text


def get(env, tok=None):
    rid_ = rid("m")
    r = env.get(TAX, token=tok or env.token(),
                headers={"X-Request-Id": rid_})
    return r, rid_


def lines(log, pattern):
    return [l for l in log.splitlines() if re.search(pattern, l)]


def test_an_evicting_policy_is_refused_on_connect_and_when_set(faults):
    """allkeys-lru: the gateway takes no decision there (503), says why
    once, shows the policy; noeviction: it works; CONFIG SET back to an
    evicting policy while connected: found within seconds, refused."""
    fs = faults(workers=1, redis_extra=["maxmemory 64mb",
                                        "maxmemory-policy allkeys-lru"])
    env, gw = fs.env, fs.gateway
    for _ in range(3):
        r, _ = get(env)
        assert r.status_code == 503, r.text
        problem(r, 503, reason_of(r))
    assert S.wait_for(lambda: status(fs)["redis"]["memory"]["state"]
                      == "evicting", 5), status(fs)
    st = status(fs)["redis"]
    assert st["connected"] is False
    assert "maxmemory-policy is allkeys-lru" in st["state"], st
    assert st["memory"]["policy"] == "allkeys-lru"
    assert st["memory"]["max"] == 64 * 1024 * 1024
    assert st["memory"]["used"] > 0
    prom = prometheus(fs)
    assert 'credit_auth_redis_maxmemory_policy{policy="allkeys-lru",' \
           'state="evicting"} 1' in prom, prom
    time.sleep(2.0)                 # several attempts, each refused
    log = gw.read_error_log()
    said = lines(log, "maxmemory-policy is allkeys-lru")
    assert 1 <= len(said) <= 2, said    # the check's, the watch's
    assert status(fs)["events"]["redis_unavailable"] >= 2

    fs.redis.client().config_set("maxmemory-policy", "noeviction")
    assert S.wait_for(lambda: get(env)[0].status_code == 200, 10)
    assert status(fs)["redis"]["memory"]["state"] == "ok"

    # set while connected: the memory watch finds it within its second
    fs.redis.client().config_set("maxmemory-policy", "volatile-ttl")
    assert S.wait_for(lambda: status(fs)["redis"]["connected"] is False
                      and status(fs)["redis"]["memory"]["state"]
                      == "evicting", 5), status(fs)
    r, _ = get(env)
    assert r.status_code == 503, r.text
    assert "volatile-ttl" in status(fs)["redis"]["state"], status(fs)


def test_full_noeviction_redis_refuses_definitely_then_replays(faults):
    """A noeviction Redis at 85 % of maxmemory: one warning.  Full: every
    decision is refused by Redis (-OOM): 503 audit_unavailable, the deny
    spooled, no lane ended as "fate unknown", one error line for the
    whole run of refusals.  maxmemory raised: replayed, verify intact."""
    fs = faults(workers=1, redis_opts="command_timeout=2s")
    env, gw, red = fs.env, fs.gateway, fs.redis.client()
    for _ in range(3):
        assert get(env)[0].status_code == 200
    used = int(red.info("memory")["used_memory"])

    red.config_set("maxmemory", int(used / 0.85))
    assert S.wait_for(lambda: status(fs)["redis"]["memory"]["state"]
                      == "high", 5), status(fs)["redis"]
    assert "credit_auth_redis_memory_high 1" in prometheus(fs)
    mark = gw.log_size()

    red.config_set("maxmemory", 1)          # below what it holds: full
    assert S.wait_for(lambda: status(fs)["redis"]["memory"]["state"]
                      == "full", 5), status(fs)["redis"]
    before = status(fs)["audit"]
    refused_rids = []
    for _ in range(30):
        r, rid_ = get(env)
        assert r.status_code == 503, r.text
        assert reason_of(r) == "audit_unavailable", r.text
        problem(r, 503, "audit_unavailable")
        refused_rids.append(rid_)
    # the writer publishes its counters every 100 ms
    assert S.wait_for(lambda: status(fs)["audit"]["refused"]
                      - before["refused"] >= 30, 3), status(fs)["audit"]
    assert status(fs)["audit"]["spool_bytes"] > 0
    log = gw.read_error_log(mark)
    assert "fate is unknown" not in log, log[-3000:]
    oom = lines(log, "refused audit entries: OOM")
    assert len(oom) == 1 and "[error]" in oom[0], oom
    assert len(lines(log, r"\[error\]")) <= 3, lines(log, r"\[error\]")
    assert len(lines(log, "redis memory full")) == 1

    red.config_set("maxmemory", 0)
    assert fs.wait_drained(timeout=40), fs.spool_files()
    assert S.wait_for(lambda: get(env)[0].status_code == 200, 10)
    log = gw.read_error_log(mark)
    assert len(lines(log, "takes audit entries again")) == 1, log[-2000:]
    assert len(lines(log, "memory back under 80%")) == 1, log[-2000:]
    dec = F.by_rid(F.dedupe(fs.entries())[0], "decision")
    for rid_ in refused_rids:
        got = dec.get(rid_, [])
        assert [(d["decision"], d["reason"]) for d in got] == \
            [("deny", "audit_unavailable")], (rid_, got)
    problems, chains = F.verify_chains(fs.entries(), fs.pub)
    assert not problems, problems[:10]
    tool = F.credit_audit_verify(fs.redis, fs.pub)
    assert tool is not None and tool[0] == 0, tool
    # one lane chain per lane used: no one-entry chains left behind
    lanes = [c for c in chains if not c.endswith("/0")]
    assert len(lanes) <= 2, lanes
