"""Audit and consent state across Redis failures (contract §7.1, issue 10):
a decision is acknowledged only when Redis keeps it (durability=aof: a
primary verified to run appendonly yes + appendfsync always; replicas:N:
WAIT N after every batch; none: an explicit, visible choice), a replica or
a cluster node is never written to, and a demoted primary is left at once.

Every test runs its own Redis processes and gateway on loopback; the
session stack of conftest.py is not used."""

import copy
import os
import shutil
import signal
import time
import uuid

import pytest
import requests

from conftest import E1, Env, PURPOSE, TAX, S, problem
from faults import base, reason_of, rid  # noqa: F401 (fixtures)

UNAVAILABLE = ("revocation_unavailable", "audit_unavailable")
# a replica in sync at once, not after the default 5 s diskless delay
FAST_SYNC = ["repl-diskless-sync-delay 0"]


class Rig:
    """Redis servers and one gateway over the module's shared files."""

    def __init__(self, base):
        self.base = base
        self.dir = S.workdir(prefix="credit-auth-failover-")
        self.redises = []
        self.gateway = None

    def redis(self, name="redis", **kw):
        r = S.Redis(S.subdir(self.dir, name), **kw)
        self.redises.append(r)
        return r.start()

    def replica(self, primary, name="replica", **kw):
        """A replica of `primary`, returned once the primary counts it in
        sync (in_sync): a link up on the replica's side is not yet what
        WAIT, and so durability=replicas:N, needs."""
        r = self.redis(name, extra=FAST_SYNC + [
            f"replicaof 127.0.0.1 {primary.port}"], **kw)
        assert wait_for(lambda: in_sync(primary, r), 15), \
            (primary.client().info("replication"), S.tail(r.log))
        return r

    def sentinels(self, primary, n=3):
        """n Sentinels watching `primary` as "credit", once all see it, and
        their addresses for sentinel=."""
        ss = [S.Sentinel(S.subdir(self.dir, f"s{i}"), primary).start()
              for i in range(n)]
        self.redises += ss
        assert wait_for(lambda: all(s.primary() == ("127.0.0.1",
                                                    primary.port)
                                    for s in ss), 10)
        return ss, ",".join(f"127.0.0.1:{s.port}" for s in ss)

    def start_gateway(self, redis, opts="", workers=1, addr=None, **kw):
        addr = addr or redis.directive_value() + (" " + opts if opts
                                                  else "")
        self.gateway = self.base.make_gateway(
            S.workdir(S.subdir(self.dir, "gw")), redis_addr=addr,
            workers=workers, **kw)
        self.gateway.start()
        st = copy.copy(self.base)
        st.redis, st.gateway = redis, self.gateway
        self.env = Env(st)
        self.env.certs = self.base.certs
        return self.env

    def status(self):
        return requests.get(self.gateway.url("/credit-auth/status",
                                             plain=True), timeout=5).json()

    def prometheus(self):
        return requests.get(self.gateway.url(
            "/credit-auth/status?format=prometheus", plain=True),
            timeout=5).text

    def log(self):
        return self.gateway.read_error_log()

    def stop(self):
        if self.gateway:
            master = self.gateway.proc.pid if self.gateway.proc else None
            try:
                self.gateway.stop()
            except Exception:
                pass
            if master:
                try:
                    os.killpg(master, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for r in self.redises:
            try:
                r.stop()
            except Exception:
                pass
        # alerts are expected here (cluster, lost data); crashes never
        self.problems = [] if self.gateway is None else \
            [l for l in self.gateway.log_problems()
             if "[alert]" not in l]
        if not os.environ.get("CREDIT_AUTH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


def in_sync(primary, replica):
    """The primary lists `replica` online with every byte of its
    replication stream acknowledged (offset caught up): WAIT counts it."""
    info = primary.client().info("replication")
    for k, v in info.items():
        if k.startswith("slave") and isinstance(v, dict) \
                and int(v.get("port", 0)) == replica.port:
            return v.get("state") == "online" \
                and int(v.get("offset", -1)) >= info["master_repl_offset"]
    return False


@pytest.fixture
def rig(base):
    made = []

    def factory():
        r = Rig(base)
        made.append(r)
        return r
    yield factory
    problems = []
    for r in made:
        r.stop()
        problems += r.problems
    assert not problems, "gateway error log:\n" + "\n".join(problems)


def refused_unavailable(resp):
    assert resp.status_code == 503, (resp.status_code, resp.text[:300])
    reason = reason_of(resp)
    assert reason in UNAVAILABLE, resp.text[:300]
    problem(resp, 503, reason)


wait_for = S.wait_for


def entries(redis, stream="credit:audit"):
    out = []
    for i, f in redis.client().xrange(stream):
        f["_id"] = i
        out.append(f)
    return out


def decision_on(redis, rid_):
    return [e for e in entries(redis) if e.get("rid") == rid_
            and e.get("event") == "decision"]


def get(env, tok=None, tag="r"):
    rid_ = rid(tag)
    r = env.get(TAX, token=tok, headers={"X-Request-Id": rid_}) \
        if tok else env.get(TAX, headers={"X-Request-Id": rid_})
    return r, rid_


def ok_soon(env, timeout=8):
    """The first 200 within timeout (the gateway retries with backoff)."""
    def attempt():
        r, rid_ = get(env)
        return (r, rid_) if r.status_code == 200 else None
    return wait_for(attempt, timeout, interval=0.1)


# ------------------------------------------------------------------------
# durability=aof (the default)

def test_default_refuses_a_redis_without_fsync_always(rig):
    """Debian's Redis (AOF off) or appendfsync everysec can lose a second
    of acknowledged writes: the default takes no decision there, says why
    on the status page, and starts as soon as Redis is made durable."""
    rg = rig()
    red = rg.redis(appendfsync="everysec")
    env = rg.start_gateway(red)

    for _ in range(3):
        r, _ = get(env)
        refused_unavailable(r)
    st = rg.status()
    assert st["redis"]["connected"] is False
    assert st["redis"]["durability"] == "aof"
    assert "appendfsync is everysec" in st["redis"]["state"], st["redis"]
    assert "appendfsync is everysec" in rg.log()
    assert "credit_auth_redis_not_durable 0" in rg.prometheus()

    red.client().config_set("appendfsync", "always")
    got = ok_soon(env)
    assert got, "no 200 after appendfsync always"
    r, rid_ = got
    assert len(wait_for(lambda: decision_on(red, rid_), 3)) == 1
    st = rg.status()
    assert st["redis"]["connected"] is True and st["redis"]["state"] == ""


def test_default_refuses_aof_off(rig):
    rg = rig()
    red = rg.redis(appendfsync="always")
    red.client().config_set("appendonly", "no")
    env = rg.start_gateway(red)
    r, _ = get(env)
    refused_unavailable(r)
    assert "appendonly is off" in rg.status()["redis"]["state"]


def test_aof_unverifiable_when_config_get_is_refused(rig):
    """An ACL that forbids CONFIG leaves appendfsync unknown: not assumed."""
    rg = rig()
    pw = "pw-" + uuid.uuid4().hex[:8]
    red = rg.redis(password=pw,
                   extra=[f"user default on >{pw} ~* &* +@all -config"])
    env = rg.start_gateway(red)
    r, _ = get(env)
    refused_unavailable(r)
    assert "CONFIG GET refused" in rg.status()["redis"]["state"]


def test_durability_none_is_explicit_and_visible(rig):
    rg = rig()
    red = rg.redis(appendfsync="everysec")
    env = rg.start_gateway(red, "durability=none")
    r, rid_ = get(env)
    assert r.status_code == 200, r.text
    assert len(wait_for(lambda: decision_on(red, rid_), 3)) == 1
    assert rg.status()["redis"]["durability"] == "none"
    assert "credit_auth_redis_not_durable 1" in rg.prometheus()
    rc, out = S.nginx_t(rg.gateway.render())
    assert rc == 0 and "[warn]" in out and "durability=none" in out, out


@pytest.mark.parametrize("word", [
    "durability=", "durability=fast", "durability=replicas:", "durability="
    "replicas:0", "durability=replicas:x", "durability=replicas:1,timeout=0",
    "durability=replicas:1,soon", "durability=aofx"])
def test_bad_durability_words(rig, word):
    rg = rig()
    red = rg.redis()
    gw = rg.base.make_gateway(S.workdir(S.subdir(rg.dir, "gw")),
                              redis_addr=red.directive_value() + " " + word)
    rc, out = S.nginx_t(gw.render())
    assert rc != 0 and f'invalid parameter "{word}"' in out, out


# ------------------------------------------------------------------------
# role: replicas, demotion, cluster nodes

def test_a_replica_is_never_written_to(rig):
    rg = rig()
    primary = rg.redis("primary", extra=FAST_SYNC)
    replica = rg.replica(primary)
    env = rg.start_gateway(replica, "durability=none")
    r, _ = get(env)
    refused_unavailable(r)
    assert "not a primary" in rg.status()["redis"]["state"]


def test_demoted_primary_is_left_and_found_again(rig):
    """The old primary turned replica answers -READONLY: the gateway drops
    the connection, sees role:slave on the next one and refuses (503, no
    request upstream) until it is a primary again, with no reload."""
    rg = rig()
    a = rg.redis("a")
    b = rg.redis("b")
    env = rg.start_gateway(a)
    r, _ = get(env)
    assert r.status_code == 200, r.text

    a.client().replicaof("127.0.0.1", b.port)
    saw = [get(env)[0] for _ in range(4)]
    for r in saw:
        refused_unavailable(r)
    assert wait_for(lambda: "not a primary" in rg.status()["redis"]["state"],
                    5)

    a.client().replicaof("no", "one")
    t0 = time.monotonic()
    got = ok_soon(env, timeout=8)
    assert got, "gateway did not come back to the promoted server"
    r, rid_ = got
    assert len(wait_for(lambda: decision_on(a, rid_), 3)) == 1
    print(f"back {time.monotonic() - t0:.2f}s after REPLICAOF NO ONE")


def test_cluster_node_is_refused_loudly(rig):
    rg = rig()
    # the cluster bus listens on port + 10000: a port that leaves room
    port = next(p for p in iter(S.free_port, None) if p <= 55535)
    red = rg.redis(port=port, extra=["cluster-enabled yes",
                                     "cluster-config-file nodes.conf"])
    env = rg.start_gateway(red, "durability=none")
    r, _ = get(env)
    refused_unavailable(r)
    assert "Redis Cluster is not supported" in rg.status()["redis"]["state"]
    log = rg.log()
    assert "[alert]" in log and "Redis Cluster is not supported" in log
    assert "redis connected" not in log


# ------------------------------------------------------------------------
# durability=replicas:N: WAIT after every batch

def test_wait_replicas(rig):
    """With the replica up, every 200 is on the replica; with it gone, WAIT
    counts 0 and no request goes upstream; back, and 200 again."""
    rg = rig()
    primary = rg.redis("primary", appendfsync="no", extra=FAST_SYNC)
    replica = rg.replica(primary, appendfsync="no")
    env = rg.start_gateway(primary, "durability=replicas:1,timeout=1s")
    assert rg.status()["redis"]["durability"] == "replicas:1"

    rids = []
    for _ in range(5):
        r, rid_ = get(env)
        assert r.status_code == 200, r.text
        rids.append(rid_)
    # acknowledged = already on the replica, not merely on its way
    on_replica = {e.get("rid") for e in entries(replica)
                  if e.get("event") == "decision"}
    assert set(rids) <= on_replica

    replica.pause()     # a replica that stops acknowledging
    try:
        for _ in range(3):
            r, _ = get(env)
            refused_unavailable(r)
            assert reason_of(r) == "audit_unavailable"
        assert "not durable" in rg.log()
    finally:
        replica.resume()
    got = ok_soon(env)
    assert got
    assert wait_for(lambda: decision_on(replica, got[1]), 3)


# ------------------------------------------------------------------------
# credit-consent revoke: acknowledged on the same terms

def revoke(redis, jti, *extra):
    import subprocess
    return subprocess.run([str(S.ROOT / "build" / "bin" / "credit-consent"),
                           "revoke", "--jti", jti, "--iss", E1, "--redis",
                           redis.address,
                           *extra], capture_output=True, text=True,
                          timeout=30)


def test_revoke_durability(rig):
    rg = rig()
    lax = rg.redis("lax", appendfsync="everysec")
    jti = "rev-" + S.consent_id()[2:]
    out = revoke(lax, jti)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "NOT acknowledged as durable" in out.stderr
    assert "appendfsync is everysec" in out.stderr
    # written all the same: a revocation that may be lost beats none
    assert lax.client().exists(f"credit:revoked:{E1}:{jti}") == 1

    out = revoke(lax, jti, "--durability", "none")
    assert out.returncode == 0, out.stderr

    primary = rg.redis("primary", appendfsync="no", extra=FAST_SYNC)
    out = revoke(primary, jti, "--durability", "replicas:1,timeout=200")
    assert out.returncode == 1 and "WAIT 1: 0 replicas" in out.stderr, \
        out.stderr
    replica = rg.replica(primary, appendfsync="no")
    jti2 = "rev-" + S.consent_id()[2:]
    out = revoke(primary, jti2, "--durability", "replicas:1,timeout=2000")
    assert out.returncode == 0, out.stderr
    # acknowledged means already on the replica
    assert replica.client().exists(f"credit:revoked:{E1}:{jti2}") == 1

    strict = rg.redis("strict")         # appendfsync always
    out = revoke(strict, jti)
    assert out.returncode == 0, out.stderr

    for bad in ("fast", "replicas:0", "replicas:1,timeout=x", "replicas:"):
        out = revoke(strict, jti, "--durability", bad)
        assert out.returncode == 2 and "bad --durability" in out.stderr, \
            (bad, out.stderr)


# ------------------------------------------------------------------------
# Loss detection: Redis back without what it acknowledged

def verify_tool(redis, pub):
    import subprocess
    r = subprocess.run([str(S.ROOT / "build" / "bin" / "credit-audit"),
                        "verify", "--pubkey", str(pub), "--redis",
                        redis.address], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_restart_without_persistence_is_a_discontinuity(rig):
    """Redis restarted empty (its AOF gone): the gateway sees the epoch key
    missing on reconnect, logs at alert, counts it, writes a signed
    `discontinuity` entry, and `credit-audit verify` reports a break."""
    rg = rig()
    red = rg.redis()
    env = rg.start_gateway(red, workers=1,
                           audit_key=f"{rg.base.audit_key} interval=200ms")
    for _ in range(3):
        r, _ = get(env)
        assert r.status_code == 200, r.text
    rc, out = verify_tool(red, rg.base.audit_pub)
    assert rc == 0, out                 # intact before the loss

    red.kill()
    shutil.rmtree(red.dir / "appendonlydir", ignore_errors=True)
    red.start()

    got = ok_soon(env)
    assert got, "no 200 after Redis came back"
    assert wait_for(lambda: "redis lost acknowledged data" in rg.log(), 5)
    assert "[alert]" in rg.log()
    disc = wait_for(lambda: [e for e in entries(red)
                             if e.get("event") == "discontinuity"], 5)
    assert len(disc) == 1, disc
    # the epoch key, and this worker's chain heads with it
    assert disc[0]["missing"] == "epoch chains", disc[0]
    assert disc[0]["expected"].startswith("epoch=") and \
        " chains=0:" in disc[0]["expected"], disc[0]
    assert disc[0]["found"].startswith("epoch=") and \
        " chains=0:-" in disc[0]["found"], disc[0]
    assert disc[0]["found"].split()[0] != disc[0]["expected"].split()[0]
    st = wait_for(lambda: (lambda s: s if s["audit"]["discontinuities"]
                           else None)(rg.status()), 3)
    assert st and st["audit"]["discontinuities"] == 1, st
    # signed: a checkpoint of its chain covers it
    assert wait_for(lambda: [e for e in entries(red)
                             if e.get("event") == "checkpoint"
                             and e.get("chain") == disc[0]["chain"]], 5)
    rc, out = verify_tool(red, rg.base.audit_pub)
    assert rc == 1 and "discontinuity" in out, out
    assert "NOT INTACT" in out, out
    # the chain that found the loss is broken; a lane chain begun after the
    # loss (a request of ok_soon's retries may open one) holds all its
    # entries and is rightly intact, so only this chain's verdict counts
    assert f"chain {disc[0]['chain']}: BROKEN" in out, out


# ------------------------------------------------------------------------
# Nothing silently dropped: anchors outside Redis

def audit_tool(redis, pub, *args):
    import subprocess
    r = subprocess.run([str(S.ROOT / "build" / "bin" / "credit-audit"),
                        *args, "--pubkey", str(pub), "--redis",
                        redis.address], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_anchor_catches_a_deleted_chain_and_a_cut_tail(rig):
    rg = rig()
    red = rg.redis()
    pub = rg.base.audit_pub
    env = rg.start_gateway(red, workers=1,
                           audit_key=f"{rg.base.audit_key} interval=200ms")
    for _ in range(6):
        r, _ = get(env)
        assert r.status_code == 200, r.text
        get(env, tok="not-a-token")         # a refusal: chain 0
    rg.gateway.stop()                       # every chain's final checkpoint
    anchor = rg.dir / "anchor.json"
    rc, out = audit_tool(red, pub, "anchor", "--out", str(anchor))
    assert rc == 0 and anchor.exists(), out
    rc, out = audit_tool(red, pub, "verify", "--anchor", str(anchor))
    assert rc == 0 and "intact" in out, out

    by_chain = {}
    for e in entries(red):
        by_chain.setdefault(e["chain"], []).append(e)
    lane = next(c for c in sorted(by_chain) if not c.endswith("/0"))
    zero = next(c for c in by_chain if c.endswith("/0"))
    c = red.client()
    # a whole lane chain XDEL'ed: chain 0's checkpoints listed its heads
    # (v2, docs/audit-format.md §3) ...
    c.xdel("credit:audit", *[e["_id"] for e in by_chain[lane]])
    rc, out = audit_tool(red, pub, "verify")
    assert rc == 1 and lane in out and "holds none" in out, out
    # ... and the anchor has it
    rc, out = audit_tool(red, pub, "verify", "--anchor", str(anchor))
    assert rc == 1 and lane in out and "missing" in out, out
    assert "NOT INTACT" in out

    # chain 0's tail cut, its last checkpoint included
    tail = [e["_id"] for e in by_chain[zero]][-3:]
    c.xdel("credit:audit", *tail)
    rc, out = audit_tool(red, pub, "verify", "--anchor", str(anchor),
                         "--json")
    assert rc == 1, out
    import json as _json
    doc = _json.loads(out)
    missing = {m["chain"] for m in doc["anchors_missing"]}
    assert missing == {lane, zero}, doc["anchors_missing"]
    assert doc["intact"] is False

    # not with --resume; a file that is not an anchor
    rc, out = audit_tool(red, pub, "verify", "--anchor", str(anchor),
                         "--resume", str(rg.dir / "r.json"))
    assert rc == 2, out
    bad = rg.dir / "bad.json"
    bad.write_text("{}")
    rc, out = audit_tool(red, pub, "verify", "--anchor", str(bad))
    assert rc == 2 and "not an anchor file" in out, out


# ------------------------------------------------------------------------
# Failover to the replica (promoted by hand: REPLICAOF NO ONE), the issue's
# "link cut, then failover" row: with durability=replicas:1 nothing
# acknowledged is lost, a revocation stays, max_uses is never exceeded.

def test_failover_after_a_link_cut_loses_nothing(rig):
    rg = rig()
    primary = rg.redis("primary", appendfsync="no", extra=FAST_SYNC)
    replica = rg.replica(primary, appendfsync="no")
    opts = "durability=replicas:1,timeout=300ms"
    env = rg.start_gateway(primary, opts)

    uses = "uses-" + S.consent_id()[2:]
    tok_uses = env.token(jti=uses, max_uses=5)
    revoked = "rev-" + S.consent_id()[2:]
    tok_rev = env.token(jti=revoked)
    out = revoke(primary, revoked, "--durability", "replicas:1,timeout=2000")
    assert out.returncode == 0, out.stderr

    ok, refused = [], 0
    for i in range(8):
        r, rid_ = get(env, tok_uses)
        if r.status_code == 200:
            ok.append(rid_)
        if i == 2:
            replica.pause()             # the replication link is cut
        if i == 5:
            replica.resume()
    for _ in range(3):
        r, rid_ = get(env)
        if r.status_code == 200:
            ok.append(rid_)
        else:
            refused += 1
            refused_unavailable(r)
    # while cut, nothing was answered 200 (WAIT counted no replica)
    assert len(ok) <= 5 + 3

    # the primary dies; the replica is promoted with what it has
    primary.kill()
    replica.client().replicaof("no", "one")
    on_new = {e.get("rid") for e in entries(replica)
              if e.get("event") == "decision"}
    lost = [x for x in ok if x not in on_new]
    assert not lost, f"{len(lost)} acknowledged decisions lost: {lost[:5]}"
    assert replica.client().exists(f"credit:revoked:{E1}:{revoked}") == 1
    used = int(replica.client().get(f"credit:uses:{E1}:{uses}") or 0)
    assert used <= 5

    # a gateway on the new primary: revoked stays revoked, uses stay used
    rg.gateway.stop()
    env = rg.start_gateway(replica, "durability=none")
    r, _ = get(env, tok_rev)
    problem(r, 403, "consent_revoked")
    answered = sum(get(env, tok_uses)[0].status_code == 200
                   for _ in range(7))
    assert used + answered == 5, (used, answered)


# ------------------------------------------------------------------------
# Sentinel: the gateway follows the primary

def test_sentinel_failover_after_kill(rig):
    """Primary kill -9; three Sentinels promote a replica; the gateway asks
    them again once the connection is lost and follows, with no reload.
    durability=replicas:1 with two replicas: nothing answered 200 is
    missing on the survivor, which still has a replica for WAIT.  Prints
    the figures of the issue's table."""
    rg = rig()
    primary = rg.redis("primary", extra=FAST_SYNC)
    replica = rg.replica(primary)
    replica2 = rg.replica(primary, name="replica2")
    sentinels, addrs = rg.sentinels(primary)
    env = rg.start_gateway(primary, addr=f"sentinel={addrs} master=credit "
                           "durability=replicas:1,timeout=1s "
                           "connect_timeout=300ms command_timeout=1s")
    assert "Sentinel says the primary" in rg.log() or \
        wait_for(lambda: "Sentinel says the primary" in rg.log(), 5)

    ok = []
    for _ in range(5):
        r, rid_ = get(env)
        assert r.status_code == 200, r.text
        ok.append(rid_)

    t_kill = time.monotonic()
    primary.kill()
    t_switch = t_first = None
    refused = 0
    while time.monotonic() - t_kill < 30:
        if t_switch is None and any(s.primary() not in
                                    (None, ("127.0.0.1", primary.port))
                                    for s in sentinels):
            t_switch = time.monotonic()
        r, rid_ = get(env)
        if r.status_code == 200:
            ok.append(rid_)
            if t_first is None:
                t_first = time.monotonic()
            if len(ok) >= 10:
                break
        else:
            refused += 1
            refused_unavailable(r)
        time.sleep(0.05)
    assert t_switch, "Sentinel did not promote the replica"
    assert t_first, "the gateway never answered 200 again:\n" + \
        rg.log()[-3000:]
    # under load Sentinel may fail over again (back to the old primary,
    # restarted with its AOF): whichever survives must hold every 200
    final = wait_for(lambda: sentinels[0].primary(), 5)
    survivor = {replica.port: replica, replica2.port: replica2}[final[1]]
    assert survivor.client().info("replication")["role"] == "master"
    assert f"Sentinel says the primary of \"credit\" is 127.0.0.1:" \
        f"{survivor.port}" in rg.log()

    on_new = {e.get("rid") for e in entries(survivor)
              if e.get("event") == "decision"}
    lost = [x for x in ok if x not in on_new]
    print(f"\nsentinel failover: switch {t_switch - t_kill:.2f}s after "
          f"kill, first 200 {t_first - t_kill:.2f}s after kill "
          f"({t_first - t_switch:.2f}s after the switch), {refused} "
          f"requests refused meanwhile, {len(lost)} of {len(ok)} "
          "acknowledged decisions lost")
    assert not lost, lost

    # the tools follow Sentinel too
    jti = "rev-" + S.consent_id()[2:]
    out = revoke(survivor, jti, "--sentinel", addrs, "--master", "credit",
                 "--durability", "replicas:1,timeout=2000")
    assert out.returncode == 0, out.stderr
    assert survivor.client().exists(f"credit:revoked:{E1}:{jti}") == 1
    r, _ = get(env, env.token(jti=jti))
    problem(r, 403, "consent_revoked")
    out = revoke(survivor, jti, "--sentinel", f"127.0.0.1:{S.free_port()}",
                 "--master", "credit")
    assert out.returncode == 2 and "no Sentinel knows" in out.stderr, \
        out.stderr
    rc, out = audit_tool(survivor, rg.base.audit_pub, "verify",
                         "--sentinel", addrs, "--master", "credit")
    assert rc in (0, 1) and "chain" in out, out


def test_sentinel_directive_errors(rig):
    rg = rig()
    red = rg.redis()
    for addr, msg in [
            ("sentinel=127.0.0.1:1", "sentinel= needs master=NAME"),
            ("sentinel=localhost:26379 master=m",
             'sentinel "localhost:26379" is not IPv4-address:port'),
            ("sentinel=127.0.0.1 master=m",
             'sentinel "127.0.0.1" is not IPv4-address:port'),
            ("sentinel=127.0.0.1:0 master=m",
             'sentinel "127.0.0.1:0" is not IPv4-address:port'),
            ("sentinel= master=m", "empty sentinel list")]:
        gw = rg.base.make_gateway(S.workdir(S.subdir(rg.dir, "gw")),
                                  redis_addr=addr)
        rc, out = S.nginx_t(gw.render())
        assert rc != 0 and msg in out, (addr, out)


def test_sentinel_that_knows_nothing(rig):
    """Sentinels that do not know the master, or are not there: no
    primary, every allow refused, the status page says why."""
    rg = rig()
    red = rg.redis()
    s = S.Sentinel(S.subdir(rg.dir, "s0"), red).start()
    rg.redises.append(s)
    env = rg.start_gateway(red, addr=f"sentinel=127.0.0.1:{s.port},"
                           f"127.0.0.1:{S.free_port()} master=other")
    r, _ = get(env)
    refused_unavailable(r)
    assert wait_for(lambda: "no Sentinel knows the primary of \"other\"" in
                    rg.status()["redis"]["state"], 5), rg.status()
    assert "master unknown" in rg.log()


# ------------------------------------------------------------------------
# Loss detection by chain heads, and across a restart of the gateway

def discontinuities(redis):
    return [e for e in entries(redis) if e.get("event") == "discontinuity"]


def cut_link(replica):
    """The replica loses its primary and cannot get it back (it offers a
    password the primary does not have): writes acknowledged from here on
    are on the primary only."""
    c = replica.client()
    c.config_set("masterauth", "wrong-" + uuid.uuid4().hex[:8])
    c.client_kill_filter(_type="master")
    assert wait_for(lambda: c.info("replication")["master_link_status"]
                    == "down", 5)


@pytest.mark.parametrize("durability", ["none", "replicas:1"])
def test_failover_to_a_lagging_replica(rig, durability):
    """Replication cut, traffic, the primary dies, Sentinel promotes the
    replica that missed it.  durability=none: the decisions answered 200
    meanwhile are gone, and the gateway says so: on reconnect its chain
    heads are behind, one signed `discontinuity` entry (missing `chains`),
    an alert, the counter, and `verify` exits 1.  replicas:1: nothing
    answered 200 is missing, and no discontinuity (no false alarm)."""
    rg = rig()
    primary = rg.redis("primary", extra=FAST_SYNC)
    replica = rg.replica(primary)
    sentinels, addrs = rg.sentinels(primary)
    opts = "durability=" + (durability if durability == "none"
                            else durability + ",timeout=300ms")
    env = rg.start_gateway(
        primary, addr=f"sentinel={addrs} master=credit {opts} "
        "connect_timeout=300ms command_timeout=1s",
        audit_key=f"{rg.base.audit_key} interval=200ms")

    ok = []
    for _ in range(4):
        got = ok_soon(env)      # under load WAIT may miss 300 ms once
        assert got, rg.log()[-2000:]
        ok.append(got[1])
    assert wait_for(lambda: all(decision_on(replica, x) for x in ok), 5)

    cut_link(replica)
    during = []
    for _ in range(6):
        r, rid_ = get(env)
        if r.status_code == 200:
            during.append(rid_)
        else:
            refused_unavailable(r)
    ok += during
    if durability == "none":
        assert len(during) == 6         # acknowledged by the primary alone
    else:
        assert not during               # WAIT counted no replica

    primary.kill()
    assert wait_for(lambda: any(s.primary() == ("127.0.0.1", replica.port)
                                for s in sentinels), 20), \
        "Sentinel did not promote the replica"
    if durability != "none":
        rg.replica(replica, name="replica2")    # for WAIT from here on
    got = ok_soon(env, timeout=15)
    assert got, "no 200 from the promoted replica:\n" + rg.log()[-3000:]
    ok.append(got[1])

    on_new = {e.get("rid") for e in entries(replica)
              if e.get("event") == "decision"}
    lost = [x for x in ok if x not in on_new]
    if durability == "none":
        assert set(lost) == set(during), (lost, during)
        disc = wait_for(lambda: discontinuities(replica), 5)
        assert len(disc) == 1, disc
        d = disc[0]
        assert d["missing"] == "chains", d
        exp = dict(x.split(":") for x in
                   d["expected"].removeprefix("chains=").split(","))
        fnd = dict(x.split(":") for x in
                   d["found"].removeprefix("chains=").split(","))
        assert exp.keys() == fnd.keys() and all(
            fnd[c] == "-" or int(fnd[c]) < int(exp[c]) for c in exp), d
        assert "[alert]" in rg.log() and "missing: chains" in rg.log()
        assert wait_for(lambda: rg.status()["audit"]["discontinuities"]
                        == 1, 3)
        rc, out = verify_tool(replica, rg.base.audit_pub)
        assert rc == 1 and "discontinuity" in out, out
    else:
        assert not lost, lost
        time.sleep(0.5)
        assert not discontinuities(replica)
        assert rg.status()["audit"]["discontinuities"] == 0
        assert "redis lost acknowledged data" not in rg.log()
    print(f"\nfailover to a lagging replica, durability={durability}: "
          f"{len(lost)} of {len(ok)} decisions answered 200 lost, "
          f"{6 - len(during)} refused while the link was cut, "
          f"{len(discontinuities(replica))} discontinuity entries")


def test_restart_of_redis_and_gateway_is_a_discontinuity(rig):
    """The epoch survives the gateway in <spool>/redis-epoch: a gateway
    restarted or reloaded over an intact Redis finds it again (no
    discontinuity); a gateway started again over a Redis that came back
    empty while both were down writes one naming the lost epoch, and
    `verify` exits 1 (before: "intact")."""
    rg = rig()
    red = rg.redis()
    spool = S.subdir(rg.dir, "spool", 0o777)
    os.chmod(spool, 0o777)
    env = rg.start_gateway(red, workers=2,
                           http_directives={"credit_auth_audit_spool":
                                            str(spool)})
    for _ in range(4):
        r, _ = get(env)
        assert r.status_code == 200, r.text
    epoch = red.client().get("credit:audit:epoch")
    state = spool / "redis-epoch"
    assert wait_for(state.exists, 3)
    assert state.read_text() == f"{epoch}\ncredit:audit\n"

    # Redis intact: a restart and a reload of the gateway are no loss
    rg.gateway.stop()
    rg.gateway.start()
    assert ok_soon(env)
    assert rg.gateway.reload()
    assert ok_soon(env)
    time.sleep(0.3)
    assert not discontinuities(red)
    assert "redis lost acknowledged data" not in rg.log()
    rg.gateway.stop()
    rc, out = verify_tool(red, rg.base.audit_pub)
    assert rc == 0, out

    # both down, Redis back without its data, both up
    red.kill()
    shutil.rmtree(red.dir / "appendonlydir", ignore_errors=True)
    red.start()
    rg.gateway.start()
    assert ok_soon(env), rg.log()[-2000:]
    disc = wait_for(lambda: discontinuities(red), 5)
    assert len(disc) == 1, disc
    assert disc[0]["missing"] == "epoch", disc[0]
    assert disc[0]["expected"] == f"epoch={epoch}", disc[0]
    now = red.client().get("credit:audit:epoch")
    assert disc[0]["found"] == f"epoch={now}" and now != epoch
    assert wait_for(lambda: state.read_text() ==
                    f"{now}\ncredit:audit\n", 3)
    time.sleep(0.3)
    assert len(discontinuities(red)) == 1       # one, not one per worker
    rc, out = verify_tool(red, rg.base.audit_pub)
    assert rc == 1 and "discontinuity" in out, out


def test_redis_epoch_write_failed_is_retried(rig):
    """<spool>/redis-epoch could not be written (here a directory stands
    in its place, which no rename replaces, root or not): the gateway says
    so, and writes it at the next connection once it can (before: asked
    once per epoch, never again while the worker lived)."""
    rg = rig()
    red = rg.redis()
    spool = S.subdir(rg.dir, "spool", 0o777)
    os.chmod(spool, 0o777)
    state = spool / "redis-epoch"
    state.mkdir()
    env = rg.start_gateway(red, http_directives={"credit_auth_audit_spool":
                                                 str(spool)})
    assert ok_soon(env)
    assert wait_for(lambda: "redis-epoch\" (tried again on the next "
                    "connection)" in rg.log(), 5), rg.log()[-2000:]
    time.sleep(0.5)
    assert state.is_dir()
    state.rmdir()
    # the next connection: Redis closes the gateway's
    c = red.client()
    assert c.client_kill_filter(_type="normal", skipme=True) >= 1
    epoch = c.get("credit:audit:epoch")
    assert wait_for(lambda: state.is_file() and state.read_text() ==
                    f"{epoch}\ncredit:audit\n", 5), rg.log()[-2000:]
    assert ok_soon(env)


# ------------------------------------------------------------------------
# Sentinel's +switch-master: followed at once, not on the next error

def test_switch_master_is_followed_at_once(rig):
    """A failover asked of Sentinel (SENTINEL FAILOVER): the gateway hears
    +switch-master on its subscription and moves to the new primary, idle
    (no request needed to find out) and under traffic.  Prints the time
    from the switch to the first decision written on the new primary."""
    import threading
    rg = rig()
    primary = rg.redis("primary", extra=FAST_SYNC)
    replicas = [rg.replica(primary, name=f"replica{i}") for i in range(2)]
    sentinels, addrs = rg.sentinels(primary)
    assert wait_for(lambda: all(len(s.client().sentinel_slaves("credit"))
                                == 2 for s in sentinels), 15)
    env = rg.start_gateway(primary, addr=f"sentinel={addrs} master=credit "
                           "durability=replicas:1,timeout=500ms "
                           "connect_timeout=300ms command_timeout=1s")
    assert ok_soon(env)
    assert wait_for(lambda: "watching +switch-master" in rg.log(), 5), \
        rg.log()[-2000:]

    switched = {}

    def listen(prev):
        """The first word from any Sentinel that a replica of `prev` is
        the primary: +promoted-slave (the leader) or +switch-master (a
        late one of the failover before is not it)."""
        subs = []
        for s in sentinels:
            ps = s.client().pubsub()
            ps.subscribe("+switch-master", "+promoted-slave")
            subs.append(ps)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "t" not in switched:
            for ps in subs:
                m = ps.get_message(timeout=0.01)
                if m and m["type"] == "message" and "t" not in switched:
                    w = m["data"].split()
                    to = int(w[-1] if m["channel"] == "+switch-master"
                             else w[3])
                    if to != prev:
                        switched["t"] = time.monotonic()
                        switched["to"] = to
        for ps in subs:
            ps.close()

    def ask_failover():
        try:
            return sentinels[0].client().execute_command(
                "SENTINEL", "FAILOVER", "credit")
        except Exception:       # INPROG: the last one is still finishing
            return False

    def failover(prev):
        th = threading.Thread(target=listen, args=(prev,))
        th.start()
        time.sleep(0.3)
        assert wait_for(ask_failover, 15, interval=0.2)
        th.join()
        assert "t" in switched, "no +switch-master"
        return switched.pop("t"), switched.pop("to")

    # idle: no request, yet the gateway is on the new primary
    t_switch, to = failover(primary.port)
    line = f'Sentinel says the primary of "credit" is 127.0.0.1:{to}'
    assert wait_for(lambda: line in rg.log(), 3), rg.log()[-3000:]
    assert "+switch-master" in rg.log()
    idle_s = time.monotonic() - t_switch

    # under traffic: the first decision written on the newer primary
    new = next(r for r in [primary] + replicas if r.port == to)
    assert wait_for(lambda: all(s.primary() == ("127.0.0.1", to)
                                and len(s.client().sentinel_slaves("credit"))
                                == 2 for s in sentinels), 15)
    done = []
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            r, rid_ = get(env)
            done.append((time.monotonic(), r.status_code, rid_))
            time.sleep(0.02)
    th = threading.Thread(target=traffic)
    th.start()
    time.sleep(0.5)
    try:
        t_switch, to2 = failover(to)
        time.sleep(2)
    finally:
        stop.set()
        th.join()
    newer = next(r for r in [primary] + replicas if r.port == to2)
    on_newer = {e.get("rid") for e in entries(newer)
                if e.get("event") == "decision"}
    after = [(t, code, x) for t, code, x in done if t > t_switch]
    first = next((t for t, code, x in after
                  if code == 200 and x in on_newer), None)
    assert first, after
    refused = sum(code != 200 for _, code, _ in done)
    lost = [x for _, code, x in done if code == 200 and x not in
            {e.get("rid") for e in entries(newer)
             if e.get("event") == "decision"}]
    print(f"\n+switch-master: idle gateway on the new primary within "
          f"{idle_s:.3f}s; under traffic the first decision on the new "
          f"primary {first - t_switch:.3f}s after the switch; {refused} of "
          f"{len(done)} requests refused, {len(lost)} answered 200 lost")
    assert not lost, lost
    assert first - t_switch < 2.0


def test_switch_watch_moves_to_the_next_sentinel(rig):
    """The Sentinel watched is lost: the watch goes to the next one of the
    set, and an idle gateway still follows a failover at once."""
    rg = rig()
    primary = rg.redis("primary", extra=FAST_SYNC)
    replica = rg.replica(primary)
    sentinels, addrs = rg.sentinels(primary)
    env = rg.start_gateway(primary, addr=f"sentinel={addrs} master=credit "
                           "durability=none connect_timeout=300ms")
    assert ok_soon(env)
    first = f"watching +switch-master on Sentinel 127.0.0.1:" \
        f"{sentinels[0].port}"
    assert wait_for(lambda: first in rg.log(), 5), rg.log()[-2000:]

    sentinels[0].kill()
    second = f"watching +switch-master on Sentinel 127.0.0.1:" \
        f"{sentinels[1].port}"
    assert wait_for(lambda: second in rg.log(), 5), rg.log()[-2000:]
    assert "+switch-master watch on Sentinel 127.0.0.1:" \
        f"{sentinels[0].port}: connection lost" in rg.log()

    assert wait_for(lambda: sentinels[1].client().execute_command(
        "SENTINEL", "FAILOVER", "credit"), 10, interval=0.2)
    line = f'Sentinel says the primary of "credit" is 127.0.0.1:' \
        f"{replica.port}"
    assert wait_for(lambda: line in rg.log(), 10), rg.log()[-3000:]
    got = ok_soon(env)
    assert got and decision_on(replica, got[1])


def test_a_frozen_sentinel_bounds_the_wait(rig):
    """Requests that arrive while the worker asks a Sentinel that does not
    answer (SIGSTOP) wait for that lookup, at most connect_timeout per
    Sentinel, and are then refused (issue 19: every place a request
    waits on Redis is bounded)."""
    rg = rig()
    red = rg.redis()
    s = S.Sentinel(S.subdir(rg.dir, "s0"), red).start()
    rg.redises.append(s)
    assert wait_for(lambda: s.primary() == ("127.0.0.1", red.port), 10)
    env = rg.start_gateway(red, addr=f"sentinel=127.0.0.1:{s.port} "
                           "master=credit connect_timeout=500ms "
                           "command_timeout=500ms")
    assert ok_soon(env), rg.log()[-2000:]
    s.pause()
    try:
        red.stop()      # the connection goes: the next asks the Sentinel
        for _ in range(4):
            t = time.monotonic()
            r, _ = get(env)
            refused_unavailable(r)
            assert time.monotonic() - t < 3 * (0.5 + 0.5), \
                time.monotonic() - t
    finally:
        s.resume()
        red.start()
    assert ok_soon(env, timeout=15), rg.log()[-2000:]
