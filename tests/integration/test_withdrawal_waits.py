"""A withdrawal (credit_auth_revocation_endpoint) waits on Redis as a bank's
request does (issue 19, "Availability"): held once, each wait bounded by
command_timeout or connect_timeout, woken from a posted event, and always
answered, by an exiting worker too: 200, or 503 revocation_unavailable
with nothing audited (and nothing written unless Redis may still apply a
command it did not answer in time).

Three kinds of withdrawal wait differently: E2 signs with a key of the
key file (only the revocation and its entry wait), E1 with a registry key
already cached, or with one never seen (the registry lookup waits first).
Each test runs its own Redis (appendfsync always) and gateway with the
endpoint (faults.py); the session stack of conftest.py is not used."""

import itertools
import secrets
import time

import pytest
import requests

import faults as F
from conftest import E1, E2, S
from faults import (base, faults, judge, reason_of,  # noqa: F401
                    register, rid)

PATH = "/credit-auth/withdraw"
REGISTRY = "on ttl=30s negative_ttl=1s poll=100ms"
TIMEOUTS = "command_timeout=1s connect_timeout=1s"
# a key lookup and a revocation, each perhaps parked for a connection
# attempt first, then the revocation's entry: well within this
BOUND = 3 * (1.0 + 1.0)
ONLY = ("revocation_unavailable",)
KINDS = ("file", "cached", "fresh")


class Endpoint:
    """A FaultStack whose gateway also serves the withdrawal endpoint
    (limit_req out of the way), and withdrawals of the three kinds."""

    def __init__(self, faults, base, workers=1, timeouts=TIMEOUTS, **kw):
        self.port = S.free_port()
        self.fs = faults(workers=workers, redis_opts=timeouts,
                         http_directives={"credit_auth_key_registry":
                                          REGISTRY},
                         http_extra=S.withdrawal_server(
                             base.pki, self.port, rate="1000r/s",
                             burst=1000), **kw)
        self.env, self.gw = self.fs.env, self.fs.gateway
        self.e2 = (self.env.key("e2-es256")[0], "e2-es256")
        self.priv = S.generate_key("ES256")
        self.kids = iter(f"wdk-{i}-{secrets.token_hex(3)}"
                         for i in range(100000))
        self.cached = f"wdk-cached-{secrets.token_hex(3)}"
        self.issuer = {}                        # jti -> uscc
        register(self.fs.redis, self.priv, [self.cached], uscc=E1)

    def fresh_kids(self, n):
        """n registry kids of E1, none looked up yet."""
        kids = [next(self.kids) for _ in range(n)]
        register(self.fs.redis, self.priv, kids, uscc=E1)
        return kids

    def withdrawal(self, kind, kid=None):
        """(jti, uscc, jws): kid is the fresh registry kid to sign with."""
        # letters only: a long run of digits could be a personal
        # identifier, and the trail would keep only its digest
        jti = rid("wdw")
        if kind == "file":
            uscc, (priv, kid) = E2, self.e2
        else:
            uscc, priv = E1, self.priv
            kid = self.cached if kind == "cached" else kid
        jws = S.sign_compact({"alg": "ES256", "typ": "revocation+jwt",
                              "kid": kid},
                             {"iss": uscc, "jti": jti,
                              "iat": int(time.time())}, priv, "ES256")
        self.issuer[jti] = uscc
        return jti, uscc, jws

    def session(self):
        return requests.Session()

    def post(self, s, jws, timeout=30):
        # verify per request: a session's own `verify` loses to
        # REQUESTS_CA_BUNDLE from the environment
        return s.post(f"https://127.0.0.1:{self.port}{PATH}", data=jws,
                      headers={"Content-Type": "application/jwt"},
                      verify=self.env.pki.server_ca_path, timeout=timeout)

    def warm(self):
        """The cached kid looked up once, and Redis known to answer."""
        jti, uscc, jws = self.withdrawal("cached")
        r = self.post(self.session(), jws, 10)
        assert r.status_code == 200, r.text

    def wave(self, waves, tag, sessions, fresh):
        """One withdrawal per session (F.Waves), the kinds in turn, the
        fresh ones signed with the kids of `fresh`."""
        kids = iter(fresh)

        def prepare(i):
            kind = KINDS[i % len(KINDS)]
            jti, _, jws = self.withdrawal(
                kind, next(kids) if kind == "fresh" else None)
            return jti, lambda s: self.post(s, jws)
        return waves.send(tag, sessions, prepare)

    def trail_agrees(self, results):
        """Once Redis is back and the spool drained: a 200 is in force
        and audited exactly once; a 503 is audited never, and in force
        only when Redis may have run a command it did not answer.
        results: (jti, tag, start, seconds, resp|exception)."""
        assert self.fs.wait_drained(timeout=40), \
            f"spool not drained: {self.fs.spool_files()}"
        uniq, conflicts = F.dedupe(self.fs.entries())
        assert not conflicts, conflicts
        revs = {}
        for e in uniq:
            if e.get("event") == "revocation":
                key = (e["enterprise"], e["consent"])
                revs.setdefault(key, []).append(e)
        r = self.fs.redis.client()
        wrong = []
        for jti, _, _, _, res in results:
            if isinstance(res, Exception):
                continue
            uscc = self.issuer[jti]
            audited = len(revs.get((uscc, jti), []))
            in_force = r.exists(f"credit:revoked:{uscc}:{jti}")
            if res.status_code == 200:
                ok = audited == 1 and in_force
            else:
                detail = res.json()["detail"]
                ok = audited == 0 and (
                    not in_force if "nothing was withdrawn" in detail
                    else "may still apply" in detail)
            if not ok:
                wrong.append((jti, res.status_code, res.text[:120],
                              audited, in_force))
        assert not wrong, f"{len(wrong)} unlike the trail: {wrong[:8]}"
        problems, _ = F.verify_chains(self.fs.entries(), self.fs.pub)
        assert not problems, "\n".join(problems[:20])


def withdrawal_load(ep):
    """F.Load of withdrawals, the kinds in turn, a fresh kid each time for
    the third, until those run out."""
    kids = iter(ep.fresh_kids(6000))

    def items():
        for i in itertools.count():
            kind = KINDS[i % 3]
            kid = next(kids, None) if kind == "fresh" else None
            if kind == "fresh" and kid is None:
                return
            yield ep.withdrawal(kind, kid)

    def one(s, item, timeout):
        return ep.post(s, item[2], timeout)
    return F.Load(items(), one, ep.session, threads=4)


# ------------------------------------------------------------------------

def test_withdrawals_end_while_redis_restarts(faults, base):
    """Redis stopped (SIGTERM), down 1 s, started again, three times,
    under a load of withdrawals of the three kinds: each is answered
    within BOUND, 200 or 503 revocation_unavailable, and the trail says
    the same."""
    ep = Endpoint(faults, base, workers=2)
    ep.warm()
    results = F.restarts_under(ep.fs, withdrawal_load(ep), BOUND, ONLY)
    ep.trail_agrees(results)


def test_reload_while_withdrawals_wait_on_a_frozen_redis(faults, base):
    """Redis frozen (SIGSTOP).  Withdrawals on keep-alive connections wait
    for their revocation or their registry key (in flight) when a reload
    comes; then withdrawals park on the new worker while it tries to
    connect, and a second reload comes.  Each exiting worker answers
    every withdrawal it took (503 revocation_unavailable, Connection:
    close) before it exits: no "open socket left" alert, nothing
    audited."""
    ep = Endpoint(faults, base)
    ep.warm()
    fresh = ep.fresh_kids(4)
    sessions = [ep.session() for _ in range(6)]
    for s in sessions:                          # keep-alive connections
        r = ep.post(s, ep.withdrawal("cached")[2], 10)
        assert r.status_code == 200, r.text

    waves = F.Waves()
    F.reload_twice_while_frozen(
        ep.fs, waves,
        lambda tag: ep.wave(waves, tag, sessions, fresh[:2]),
        lambda tag: ep.wave(waves, tag, [ep.session() for _ in range(6)],
                            fresh[2:]))

    assert len(waves.results) == 12, waves.results
    slow, bad, counts = judge(waves.judged(), BOUND, ONLY)
    assert not slow and not bad, (slow, bad, counts)
    assert counts == {"503 revocation_unavailable": 12}, counts
    ep.trail_agrees(waves.judged())


def waiting(ep, how, waves):
    """Withdrawals of the three kinds, tagged `how`, left waiting on a
    frozen Redis (paused here): `in_flight`, their key lookup or
    revocation sent and unanswered; `parked`, after the command timeout
    dropped the connection (tag `drop`), waiting for the attempt to
    connect again.  Returns their threads."""
    ep.warm()
    fresh = ep.fresh_kids(4)
    ep.fs.redis.pause()
    if how == "parked":
        for t in ep.wave(waves, "drop", [ep.session() for _ in range(3)],
                         fresh[:1]):
            t.join(10)
        assert [x for x in waves.results if x[1] == "drop"
                and reason_of(x[4]) == "revocation_unavailable"], \
            waves.results
        time.sleep(0.1)     # the next attempt is under way, and hangs
    ts = ep.wave(waves, how, [ep.session() for _ in range(6)], fresh[1:])
    time.sleep(0.4)
    return ts


@pytest.mark.parametrize("how", ["in_flight", "parked"])
def test_stop_at_once_answers_the_withdrawals_waiting(faults, base, how):
    """nginx -s stop (workers told to exit at once, their Redis
    connection freed at once) while withdrawals wait on a frozen Redis:
    each still gets its 503 revocation_unavailable, and none is audited
    (the spool the next start adopts holds no revocation)."""
    ep = Endpoint(faults, base)
    waves = F.Waves()
    try:
        ts = waiting(ep, how, waves)
        rc, out = F.nginx_signal(ep.gw, "stop")
        assert rc == 0, out
        for t in ts:
            t.join(30)
    finally:
        ep.fs.redis.resume()
    assert len([x for x in waves.results if x[1] == how]) == 6, \
        waves.results
    slow, bad, counts = judge(waves.judged(), BOUND, ONLY)
    assert not slow and not bad, (slow, bad, counts)
    assert set(counts) == {"503 revocation_unavailable"}, counts
    assert S.wait_for(lambda: not ep.gw.running, 10)

    ep.gw.start()                   # adopts the stopped worker's spool
    ep.trail_agrees(waves.judged())


@pytest.mark.parametrize("how", ["in_flight", "parked"])
def test_shutdown_timeout_closes_waiting_withdrawals_cleanly(faults, base,
                                                            how):
    """worker_shutdown_timeout shorter than the waits: after a reload the
    exiting worker closes the connections of the withdrawals still
    waiting (its administrator asked for that).  What they waited on lets
    go of them (a fetch's waiters, the connection's waiters, the
    revocation job): the replies and the connection attempt that end
    later find nothing freed (an ASan build says so), the worker exits
    without an alert, and the new worker answers."""
    ep = Endpoint(faults, base, timeouts="command_timeout=3s "
                  "connect_timeout=3s",
                  main_extra="worker_shutdown_timeout 300ms;")
    gw = ep.gw
    waves = F.Waves()
    mark = gw.log_size()
    first = set(gw.workers())
    try:
        ts = waiting(ep, how, waves)
        rc, out = F.nginx_signal(gw, "reload")
        assert rc == 0, out
        for t in ts:
            t.join(30)
        # the old worker exits once what it still waited for has ended
        # (replies come back empty), or at once (nobody waits for the
        # attempt any more)
        assert S.wait_for(lambda: set(gw.workers()) - first
                          and not set(gw.workers()) & first, 10), \
            F.worker_titles(gw)
        time.sleep(0.5)
    finally:
        ep.fs.redis.resume()
    closed = [x for x in waves.results if x[1] == how]
    assert len(closed) == 6, waves.results
    # closed by the shutdown timeout while they waited, not answered
    assert all(isinstance(x[4], requests.ConnectionError) for x in closed), \
        closed
    log = gw.read_error_log(mark)
    assert not gw.log_problems(log), log[-3000:]
    ep.warm()
    ep.trail_agrees([x for x in waves.judged()
                     if not isinstance(x[4], Exception)])
