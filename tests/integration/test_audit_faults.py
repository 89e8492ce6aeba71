"""Audit trail and Redis under faults (contract §3 revocation, §4, §7;
ENGINEERING §4): revocation on the next request, max_uses exact under
concurrency, Redis killed / frozen / stopped, clients that vanish while
their request waits for Redis, reload and graceful exit, spool replay
order, and what must never be in an entry.

Every test runs its own Redis (appendfsync always) and gateway (faults.py);
the session stack of conftest.py is not used, so killing Redis here
disturbs no other test."""

import json
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import faults as F
from faults import base, faults, rid, session  # noqa: F401 (fixtures)
from conftest import E1, E2, ENV, PURPOSE, RECORDS, TAX, S, problem

UNAVAILABLE = ("revocation_unavailable", "audit_unavailable")


# ------------------------------------------------------------------------
# Fixtures: faults.py (base, faults), and helpers

def refused(resp, status, reasons):
    """problem+json with one of `reasons`; returns the reason."""
    try:
        reason = resp.json().get("type", "").rsplit(":", 1)[-1]
    except ValueError:
        reason = None
    assert reason in reasons, \
        f"expected {status} {reasons}, got {resp.status_code}: {resp.text[:300]}"
    problem(resp, status, reason)
    return reason


def healthy(fs):
    bad = fs.gateway.log_problems()
    assert not bad, "gateway error log:\n" + "\n".join(bad)


def get(s, env, token, rid_, path=TAX, timeout=15):
    # verify per request: a session's own `verify` loses to
    # REQUESTS_CA_BUNDLE from the environment
    return s.get(env.gw.url(path), timeout=timeout, allow_redirects=False,
                 verify=env.pki.server_ca_path,
                 headers={"Authorization": f"Bearer {token}",
                          "X-Credit-Purpose": PURPOSE,
                          "X-Request-Id": rid_})


wait_for = S.wait_for


def decisions_by_rid(fs):
    uniq, _ = F.dedupe(fs.entries())
    return F.by_rid(uniq, "decision"), F.by_rid(uniq, "outcome"), uniq


def assert_chains(fs, entries=None):
    problems, chains = F.verify_chains(entries or fs.entries(), fs.pub)
    assert not problems, "audit chains broken:\n" + "\n".join(problems[:30])
    tool = F.credit_audit_verify(fs.redis, fs.pub)
    if tool is not None:
        rc, out = tool
        assert rc == 0, f"credit-audit verify: rc={rc}\n{out[-3000:]}"
    return chains


# ------------------------------------------------------------------------
# 1. Revocation takes effect on the next request

def test_revocation_applies_to_the_next_request(faults):
    fs = faults(workers=2)
    env = fs.env
    jti = "rev-" + S.consent_id()[2:]
    tok = env.token(jti=jti)

    r = env.get(TAX, token=tok)
    assert r.status_code == 200, r.text
    assert env.decision(r)["decision"] == "allow"

    out = subprocess.run([str(S.ROOT / "build" / "bin" / "credit-consent"),
                          "revoke", "--jti", jti, "--iss", E1, "--redis",
                          fs.redis.address],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert fs.redis.client().exists(f"credit:revoked:{E1}:{jti}") == 1

    # the very next request, and then a few more on fresh connections so
    # both workers answer at least once (no worker may cache "allowed")
    for i in range(8):
        rid_ = rid("rev")
        r = env.get(TAX, token=tok, headers={"X-Request-Id": rid_})
        problem(r, 403, "consent_revoked")
        assert r.headers["X-Request-Id"] == rid_
        e = env.decision(r)
        assert e["decision"] == "deny", e
        assert e["reason"] == "consent_revoked", e
        assert e["consent"] == jti, e
    outcomes = [e for e in fs.entries() if e.get("event") == "outcome"
                and e.get("status") == "200"]
    assert len(outcomes) == 1, outcomes     # only the one before revoking
    healthy(fs)


# ------------------------------------------------------------------------
# 2. max_uses is exact under concurrency, across workers

def test_max_uses_exact_under_concurrency(faults):
    fs = faults(workers=2)
    env = fs.env
    jti = "uses-" + S.consent_id()[2:]
    tok = env.token(jti=jti, max_uses=10)
    n = 50
    barrier = threading.Barrier(n)
    rids = [rid("use") for _ in range(n)]

    def one(i):
        s = session(env)
        barrier.wait(30)
        try:
            return get(s, env, tok, rids[i], timeout=30)
        finally:
            s.close()

    with ThreadPoolExecutor(n) as ex:
        resps = list(ex.map(one, range(n)))

    ok = [r for r in resps if r.status_code == 200]
    no = [r for r in resps if r.status_code != 200]
    assert len(ok) == 10, [(r.status_code, r.text[:120]) for r in resps]
    assert len(no) == 40
    for r in no:
        problem(r, 403, "consent_exhausted")
    assert fs.redis.client().get(f"credit:uses:{E1}:{jti}") == "10"

    dec, _, _ = decisions_by_rid(fs)
    for r, rid_ in zip(resps, rids):
        got = dec.get(rid_, [])
        assert len(got) == 1, (rid_, got)
        want = ("allow", "") if r.status_code == 200 else \
            ("deny", "consent_exhausted")
        assert (got[0]["decision"], got[0]["reason"]) == want, got[0]
        assert got[0]["consent"] == jti
    assert sum(len(v) for k, v in dec.items() if k in set(rids)) == 50
    healthy(fs)


# ------------------------------------------------------------------------
# 3. Redis SIGKILLed and restarted in the middle of 2000 requests

def test_redis_killed_and_restarted_midway(faults):
    # FsyncRedis runs with `appendfsync always`: every reply Redis sent was
    # fsync'd to the AOF first, so SIGKILL loses nothing acknowledged and
    # anything missing afterwards is the gateway's doing.
    fs = faults(workers=2)
    env = fs.env
    total, threads = 2000, 8
    tok = env.token()
    rids = [rid("k") for _ in range(total)]
    results = [None] * total
    done = [0]
    lock = threading.Lock()
    nxt = [0]

    def worker():
        s = session(env)
        try:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= total:
                    return
                try:
                    results[i] = get(s, env, tok, rids[i])
                except requests.RequestException as ex:
                    results[i] = ex
                    s.close()
                    s = session(env)
                with lock:
                    done[0] += 1
        finally:
            s.close()

    t0 = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    assert wait_for(lambda: done[0] >= total // 3, 60), done
    fs.redis.kill()
    killed_at = done[0]
    assert wait_for(lambda: done[0] >= 2 * total // 3, 60), done
    fs.restart_redis()
    restarted_at = done[0]
    for t in pool:
        t.join(90)
    elapsed = time.monotonic() - t0

    bad, counts = [], {}
    for i, r in enumerate(results):
        if isinstance(r, Exception) or r is None:
            bad.append((rids[i], repr(r)))
            continue
        if r.headers.get("X-Request-Id") != rids[i]:
            bad.append((rids[i], "X-Request-Id", r.headers.get("X-Request-Id")))
            continue
        if r.status_code == 200:
            counts["200"] = counts.get("200", 0) + 1
            continue
        if r.status_code == 503:
            try:
                reason = refused(r, 503, UNAVAILABLE)
                counts[reason] = counts.get(reason, 0) + 1
                continue
            except AssertionError as ex:
                bad.append((rids[i], str(ex)[:200]))
                continue
        bad.append((rids[i], r.status_code, r.text[:200]))
    assert not bad, (f"{len(bad)} bad answers (killed at {killed_at}, "
                     f"restarted at {restarted_at}): {bad[:10]}")
    assert counts.get("200", 0) > total // 3, counts
    # Redis was really gone for a while: some requests could not be decided
    assert sum(counts.get(x, 0) for x in UNAVAILABLE) > 0, counts
    print(f"answers {counts}; killed at {killed_at}, restarted at "
          f"{restarted_at}, {elapsed:.1f} s")

    assert fs.wait_drained(timeout=40), \
        f"spool not drained: {fs.spool_files()}\n{fs.log_tail()}"
    entries = fs.entries()
    dec, out, uniq = decisions_by_rid(fs)
    missing = [i for i, x in enumerate(rids) if len(dec.get(x, [])) == 0]
    extra = [x for x in rids if len(dec.get(x, [])) > 1]

    def kind(i):
        r = results[i]
        return (r.status_code, r.headers.get("Content-Type", "")[:24],
                r.text[:60] if r.status_code != 200 else "")
    kinds = {}
    for i in missing:
        kinds[kind(i)] = kinds.get(kind(i), 0) + 1
    assert not missing and not extra, (
        f"{len(missing)} requests without a decision entry: by answer "
        f"{kinds}, request index {missing[:1]}..{missing[-1:]} (killed "
        f"after {killed_at}, restarted after {restarted_at}), e.g. "
        f"{[rids[i] for i in missing[:3]]}; {len(extra)} with more than "
        f"one (e.g. {[dec[x] for x in extra[:2]]}); answers {counts}; "
        f"stream {len(entries)} entries; log:\n{fs.log_tail(25)}")
    no_outcome = [rids[i] for i, r in enumerate(results)
                  if r.status_code == 200
                  and [o["status"] for o in out.get(rids[i], [])] != ["200"]]
    assert not no_outcome, (f"{len(no_outcome)} 200s without exactly one "
                            f"outcome entry, e.g. {no_outcome[:5]}")
    for i, r in enumerate(results):
        if r.status_code == 200:
            d = dec[rids[i]][0]
            assert d["decision"] == "allow", d
    assert_chains(fs, entries)
    assert elapsed < 90, elapsed
    healthy(fs)


# ------------------------------------------------------------------------
# 4. Redis frozen: a bounded 503, and the event loop keeps serving

STATIC = """
        location = /static-ok {
            credit_auth off;
            default_type text/plain;
            return 200 "static-ok\\n";
        }
"""


def test_redis_frozen_fails_fast_and_loop_stays_free(faults):
    # one worker: the credit_auth-off location is served by the same
    # event loop that waits for Redis
    fs = faults(workers=1, redis_opts="command_timeout=500ms",
                server_extra=STATIC)
    env = fs.env
    static = fs.gateway.url("/static-ok")
    c = env.certs["BANK001"]

    def static_get():
        t = time.monotonic()
        r = requests.get(static, cert=(c.cert, c.key),
                         verify=env.pki.server_ca_path, timeout=10)
        return r, time.monotonic() - t

    assert env.get(TAX).status_code == 200
    r, _ = static_get()
    assert r.status_code == 200 and r.text == "static-ok\n"

    fs.redis.pause()
    try:
        box = {}

        def slow():
            t = time.monotonic()
            box["r"] = env.get(TAX, timeout=20)
            box["t"] = time.monotonic() - t
            box["end"] = time.monotonic()
        th = threading.Thread(target=slow)
        th.start()
        time.sleep(0.1)
        static_times, static_ends = [], []
        for _ in range(5):
            r, dt = static_get()
            assert r.status_code == 200 and r.text == "static-ok\n"
            static_times.append(dt)
            static_ends.append(time.monotonic())
        th.join(20)
        assert "r" in box, "credit_auth request did not return"
        refused(box["r"], 503, UNAVAILABLE)
        assert box["t"] < 5.0, box["t"]
        assert max(static_times) < 1.0, static_times
        # the static answer came while the credit_auth request was waiting
        assert static_ends[0] < box["end"], (static_ends, box)

        for _ in range(3):
            t = time.monotonic()
            r = env.get(TAX, timeout=20)
            dt = time.monotonic() - t
            refused(r, 503, UNAVAILABLE)
            assert dt < 5.0, dt
    finally:
        fs.redis.resume()

    assert wait_for(lambda: env.get(TAX).status_code == 200, 15), \
        fs.log_tail()
    for _ in range(5):
        r = env.get(TAX)
        assert r.status_code == 200, r.text
        assert env.decision(r)["decision"] == "allow"
    healthy(fs)


# ------------------------------------------------------------------------
# 5. Clients that disconnect while their request waits for Redis

def test_client_disconnects_while_waiting_for_redis(faults):
    fs = faults(workers=2, redis_opts="command_timeout=1s")
    env = fs.env
    tok = env.token()
    ctx = F.tls_context(env.pki, env.certs["BANK001"])
    assert env.get(TAX, token=tok).status_code == 200
    workers = set(fs.gateway.workers())
    assert len(workers) == 2

    def abandon(n, tag):
        for i in range(n):
            data = F.raw_request("GET", TAX, {
                "Authorization": f"Bearer {tok}",
                "X-Credit-Purpose": PURPOSE,
                "X-Request-Id": rid(tag)})
            F.send_and_abandon(fs.gateway.tls_port, ctx, data,
                               reset=(i % 2 == 1))

    # (a) Redis answers after the clients are gone (before the timeout)
    fs.redis.pause()
    try:
        abandon(20, "gone-a")
        time.sleep(0.3)
    finally:
        fs.redis.resume()
    time.sleep(1.0)
    # (b) the command times out while the clients are gone
    fs.redis.pause()
    try:
        abandon(20, "gone-b")
        time.sleep(2.5)
    finally:
        fs.redis.resume()

    assert wait_for(lambda: env.get(TAX, token=tok).status_code == 200, 15), \
        fs.log_tail()
    for _ in range(6):
        r = env.get(TAX, token=tok)
        assert r.status_code == 200, r.text
        assert env.decision(r)["decision"] == "allow"
    assert set(fs.gateway.workers()) == workers, "a worker was replaced"
    assert fs.gateway.running
    log = fs.gateway.read_error_log()
    assert "exited on signal" not in log and "[alert]" not in log, \
        fs.log_tail()
    assert fs.wait_drained(timeout=20), fs.spool_files()
    assert_chains(fs)
    healthy(fs)


# ------------------------------------------------------------------------
# 6. nginx -s reload under load

def test_reload_under_load(faults):
    fs = faults(workers=2)
    env = fs.env
    tok = env.token()
    first = set(fs.gateway.workers())
    results = []
    stop = threading.Event()
    lock = threading.Lock()

    def load():
        while not stop.is_set():
            rid_ = rid("rl")
            try:
                r = env.get(TAX, token=tok, headers={"X-Request-Id": rid_})
                res = (rid_, r.status_code, r.text[:200])
            except requests.RequestException as ex:
                res = (rid_, None, repr(ex))
            with lock:
                results.append(res)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    seen = set(first)
    try:
        for _ in range(2):
            time.sleep(1.5)
            rc, out = F.nginx_signal(fs.gateway, "reload")
            assert rc == 0, out
            assert wait_for(lambda: set(fs.gateway.workers()) - seen, 10), \
                "no new workers after reload"
            seen |= set(fs.gateway.workers())
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)

    # the old generations leave within ~10 s
    def settled():
        titles = F.worker_titles(fs.gateway)
        return not any("shutting down" in t for t in titles.values()) \
            and not (set(titles) & first)
    assert wait_for(settled, 10, 0.1), \
        f"old workers still there: {F.worker_titles(fs.gateway)}"
    assert not (set(fs.gateway.workers()) & first)

    bad = [x for x in results if x[1] != 200]
    assert len(results) > 20, len(results)
    assert not bad, f"{len(bad)} of {len(results)} not 200: {bad[:8]}"

    time.sleep(0.5)
    dec, _, _ = decisions_by_rid(fs)
    wrong = [(x[0], len(dec.get(x[0], []))) for x in results
             if len(dec.get(x[0], [])) != 1]
    assert not wrong, f"{len(wrong)} responses without exactly one " \
                      f"decision entry: {wrong[:8]}"
    assert fs.wait_drained(timeout=20)
    assert_chains(fs)
    healthy(fs)


# ------------------------------------------------------------------------
# 7. Graceful exit writes the final checkpoints

def test_graceful_exit_writes_final_checkpoints(faults, base):
    # interval=60s: no periodic checkpoint can fall due during the test,
    # so the checkpoints found must be the exit's
    fs = faults(workers=2, audit_key=f"{base.audit_key} interval=60s")
    env = fs.env
    tok = env.token()

    def one(i):
        if i % 4 == 3:
            return env.get(TAX, token=None).status_code
        return env.get(TAX, token=tok).status_code
    with ThreadPoolExecutor(8) as ex:
        codes = list(ex.map(one, range(48)))
    assert codes.count(200) == 36 and codes.count(401) == 12, codes
    assert not [e for e in fs.entries() if e.get("event") == "checkpoint"]

    rc, out = F.nginx_signal(fs.gateway, "quit")
    assert rc == 0, out
    fs.gateway.proc.wait(20)

    chains = assert_chains(fs)
    assert chains
    for chain, es in chains.items():
        last = es[-1]
        assert last.get("event") == "checkpoint", \
            f"chain {chain} ends with {last.get('event')} seq {last.get('seq')}"
        assert last["covers"] == str(int(last["seq"]) - 1), last
        assert last["head"] == es[-2]["hash"] if len(es) > 1 else True
    # every request's decision is there too
    dec, out_, _ = decisions_by_rid(fs)
    assert sum(len(v) for v in dec.values()) == 48
    assert sum(len(v) for v in out_.values()) == 36
    assert not list(fs.spool.glob("*.spool")) or fs.spool_pending() == 0
    healthy(fs)


# ------------------------------------------------------------------------
# 8. Spooled refusals are replayed in chain order

def test_spool_replay_in_chain_order(faults):
    fs = faults(workers=2)
    env = fs.env
    assert env.get(TAX).status_code == 200          # chains exist already
    fs.redis.stop()
    assert fs.wait_redis_seen(False, 10), "gateway did not see Redis go"

    sent = []
    for i in range(20):
        rid_ = rid(f"spool{chr(ord('a') + i)}")
        t = time.monotonic()
        r = env.get(TAX, token=None, headers={"X-Request-Id": rid_})
        dt = time.monotonic() - t
        problem(r, 401, "token_missing")
        assert dt < 1.0, (i, dt)
        sent.append(rid_)
    assert fs.spool_pending() > 0, "nothing in the spool while Redis is down"

    fs.restart_redis()

    def all_there():
        d = F.by_rid(fs.entries(), "decision")
        return all(x in d for x in sent)
    assert wait_for(all_there, 10, 0.1), \
        (f"replayed: {len(set(F.by_rid(fs.entries())) & set(sent))}/20\n"
         + fs.log_tail())
    assert fs.wait_drained(timeout=15)

    entries = fs.entries()
    chains = assert_chains(fs, entries)
    dec = F.by_rid(F.dedupe(entries)[0], "decision")
    for x in sent:
        assert len(dec[x]) == 1, dec[x]
        assert (dec[x][0]["decision"], dec[x][0]["reason"]) == \
            ("deny", "token_missing"), dec[x][0]
    # within each chain the refusals appear in the order they were sent
    for chain, es in chains.items():
        order = [e["rid"] for e in es if e.get("rid") in set(sent)
                 and e.get("event") == "decision"]
        assert order == sorted(order, key=sent.index), (chain, order)
        seqs = [int(e["seq"]) for e in es]
        assert seqs == sorted(seqs)
    healthy(fs)


# ------------------------------------------------------------------------
# 8b. A reload while Redis refuses writes: the new workers adopt the old
#     spools, and everything drains once Redis takes writes again
#     (issue 9: adopted decision records were replayed forever)

def test_reload_while_redis_read_only_then_drains(faults):
    fs = faults(workers=2, redis_opts="command_timeout=1s")
    env = fs.env
    tok = env.token()
    assert env.get(TAX, token=tok).status_code == 200
    r = fs.redis.client()
    # a replica of nothing: Redis answers, but refuses every write
    r.execute_command("REPLICAOF", "127.0.0.1", "1")
    try:
        before, said = [], {}
        for i in range(20):
            rid_ = rid(f"ro{i}")
            resp = env.get(TAX, token=tok if i % 2 else None,
                           headers={"X-Request-Id": rid_})
            if i % 2:
                # the first -READONLY fails its batch; the connection is
                # then dropped and a replica is not used (contract §7.1)
                said[rid_] = refused(resp, 503, UNAVAILABLE)
            else:
                problem(resp, 401, "token_missing")
            before.append(rid_)
        assert fs.spool_pending() > 0, "nothing spooled while read-only"
        st = fs.status()
        assert st["audit"]["spool_bytes"] > 0, st["audit"]
        assert st["audit"]["spool_oldest_age_s"] >= 0

        first = set(fs.gateway.workers())
        rc, out = F.nginx_signal(fs.gateway, "reload")
        assert rc == 0, out
        assert wait_for(lambda: not (set(fs.gateway.workers()) & first)
                        and len(fs.gateway.workers()) == 2, 15), \
            "the old workers did not leave"
        time.sleep(5.5)                 # the new workers adopt the spools
    finally:
        r.execute_command("REPLICAOF", "NO", "ONE")
    # a replica was left (contract §7.1): the workers find the primary again
    # on their next attempt, within their backoff
    assert fs.wait_redis_seen(True, timeout=15), fs.log_tail()

    allowed, refusals = [], []
    for i in range(150):
        a, b = rid(f"al{i}"), rid(f"rf{i}")
        assert env.get(TAX, token=tok,
                       headers={"X-Request-Id": a}).status_code == 200
        problem(env.get(TAX, token=None, headers={"X-Request-Id": b}),
                401, "token_missing")
        allowed.append(a)
        refusals.append(b)

    t0 = time.monotonic()
    assert wait_for(lambda: fs.spool_pending() == 0, 10, 0.1), \
        f"spool not drained in 10 s: {fs.spool_pending()} bytes\n" \
        + fs.log_tail()
    assert time.monotonic() - t0 < 10
    assert fs.wait_drained(timeout=10)

    dec, outc, _ = decisions_by_rid(fs)
    missing = [x for x in refusals + before if len(dec.get(x, [])) != 1]
    assert not missing, f"{len(missing)} refusals not in the stream once"
    missing = [x for x in allowed if len(dec.get(x, [])) != 1
               or len(outc.get(x, [])) != 1]
    assert not missing, f"{len(missing)} allowed requests without their " \
                        f"decision and outcome: {missing[:5]}"
    for x in before[1::2]:              # what the bank got: 503
        assert (dec[x][0]["decision"], dec[x][0]["reason"]) == \
            ("deny", said[x]), dec[x][0]
    assert_chains(fs)
    st = fs.status()
    assert st["audit"]["spool_bytes"] == 0, st["audit"]
    assert st["audit"]["replays_ok"] > 0, st["audit"]
    healthy(fs)


# ------------------------------------------------------------------------
# 9. No token, field value or personal identifier in any entry

def leaf_values():
    """Every upstream leaf value of 5+ characters (numbers matched as
    whole numbers), plus short personal values named explicitly."""
    strings, numbers = {"张三丰"}, set()

    def walk(o):
        if isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
        elif isinstance(o, bool) or o is None:
            return
        elif isinstance(o, (int, float)):
            if len(str(o)) >= 5:
                numbers.add(str(o))
        elif len(o) >= 5 and not S.uscc_valid(o):
            strings.add(o)
    for rec in RECORDS.values():
        walk(rec)
    return strings, numbers


def scan_entries(entries, tokens, policy_field):
    """Findings of contract §7's 'never in the audit' over every field."""
    strings, numbers = leaf_values()
    findings = []
    for e in entries:
        for k, v in e["_raw"]:
            name = k.decode(errors="replace")
            where = f"entry {e['_id']} ({e.get('event')}) field {name!r}"
            try:
                s = v.decode("utf-8")
            except UnicodeDecodeError:
                findings.append(f"{where}: not UTF-8: {v!r}")
                continue
            for t in tokens:
                if t in s or t.split(".")[2] in s or t.split(".")[1] in s:
                    findings.append(f"{where}: holds a token: {s[:80]}")
            for val in strings:
                if val in s:
                    findings.append(f"{where}: holds value {val!r}")
            for num in numbers:
                if re.search(r"(?<!\d)" + re.escape(num) + r"(?!\d)", s):
                    findings.append(f"{where}: holds value {num!r}")
            if name in F.DIGEST_FIELDS:
                if not (F.HEX64.match(s) or (name == "cert" and s == "")):
                    findings.append(f"{where}: not a digest: {s!r}")
                continue
            if name == "sig":
                if not re.fullmatch(r"[A-Za-z0-9_-]{86}", s):
                    findings.append(f"{where}: not a signature: {s!r}")
                continue
            if name == "policy":
                if s != policy_field:
                    findings.append(f"{where}: unexpected policy {s!r}")
                continue
            if F.JWS.search(s):
                findings.append(f"{where}: JWS-like: {s!r}")
            for m in F.RESIDENT_ID.finditer(s):
                if not (name in ("enterprise", "path")
                        and S.uscc_valid(m.group(0))):
                    findings.append(f"{where}: resident ID {m.group(0)!r}")
            for m in F.MOBILE.finditer(s):
                findings.append(f"{where}: mobile number {m.group(0)!r}")
    return findings


def test_no_token_value_or_personal_identifier_in_audit(faults):
    fs = faults(workers=2)
    env = fs.env
    tokens = []

    def tk(**kw):
        t = env.token(**kw)
        tokens.append(t)
        return t

    def rid_():
        return rid("pii")
    hostile_id, mobile = "110101199003071234", "13812345678"
    tok = tk()
    raw_tok = tk(detail="raw")
    env_tok = tk(categories=["tax", "environment"])
    e2_tok = tk(uscc=E2)
    calls = [
        # allowed: masked, raw, another category, another enterprise
        (dict(token=tok), 200),
        (dict(token=raw_tok, headers={"X-Credit-Detail": "raw"}), 200),
        (dict(path=ENV, token=env_tok), 200),
        (dict(path=f"/api/v1/enterprises/{E2}/tax", token=e2_tok), 200),
        # PII and a token in the query string (never recorded: path only)
        (dict(path=f"{TAX}?id={hostile_id}&mobile={mobile}&access_token="
              f"{tok}", token=tok), 200),
        # refusals
        (dict(token=None), 401),
        (dict(token="garbage.not-a-jws"), 401),
        (dict(token=tok, purpose=None), 400),
        (dict(token=tk(exp=int(time.time()) - 3600,
                       iat=int(time.time()) - 7200)), 401),
        (dict(token=tok, headers={"X-Credit-Detail": "raw"}), 403),
        # hostile headers and paths
        (dict(token=tok, purpose=hostile_id), 403),
        (dict(token=tok, purpose=mobile), 403),
        (dict(token=tok, purpose=f"{hostile_id} {mobile}"), 403),
        (dict(path=f"/api/v1/persons/{hostile_id}", token=tok), 403),
        (dict(path=f"/api/v1/persons/{hostile_id}/mobile/{mobile}",
              token=tok), 403),
        (dict(path=f"/api/v1/enterprises/{hostile_id}/tax", token=tok), 400),
        (dict(path=f"/api/v1/enterprises/{E1}/{hostile_id}", token=tok), 403),
        (dict(token=None, headers={"Cookie": f"token={tok}"}), 401),
        (dict(token=f"{hostile_id}.{mobile}.{hostile_id}"), 401),
        (dict(token=tok, headers={"X-Credit-Detail": hostile_id}), 400),
    ]
    answers = []
    for kw, want in calls:
        h = dict(kw.pop("headers", {}))
        h["X-Request-Id"] = rid_()
        r = env.get(headers=h, **kw)
        answers.append((kw.get("path", TAX), r.status_code, want))
        assert r.status_code == want, (kw, r.status_code, r.text[:300])

    # verification: the check value is a field value (1234567.89 is the
    # record's), the audit must not keep it
    checks = {"checks": [
        {"field": "annual[year=2023].tax_paid", "op": "eq",
         "value": 1234567.89},
        {"field": "annual[year=2023].tax_paid", "op": "ge", "value": 100000},
        {"field": "credit_rating", "op": "eq", "value": "A"}]}
    r = env.post(TAX, token=tok, json=checks,
                 headers={"X-Request-Id": rid_()})
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Credit-Disclosure") == "verify"
    r = env.post(TAX, token=tok, headers={"X-Request-Id": rid_()},
                 json={"checks": [{"field": "legal_representative.id_number",
                                   "op": "eq", "value": hostile_id}]})
    assert r.status_code in (400, 403), r.text

    assert fs.wait_drained(timeout=15)
    entries = fs.entries()
    assert len([e for e in entries if e.get("event") == "decision"]) == \
        len(calls) + 2
    policy_field = f"{env.st.policy['version']} {env.st.policy_sha256}"
    findings = scan_entries(entries, tokens, policy_field)
    assert not findings, "\n".join(findings[:30])
    healthy(fs)


def test_request_id_cannot_carry_a_personal_identifier(faults):
    """X-Request-Id is the bank's, and is echoed into every entry of the
    request: a bank that uses a resident ID or a mobile number as its
    request id must not get it into the audit (contract §7: never a personal
    identifier other than the USCC)."""
    fs = faults(workers=1)
    env = fs.env
    tok = env.token()
    for hostile in ("110101199003071234", "11010119900307123X",
                    "13812345678"):
        r = env.get(TAX, token=tok, headers={"X-Request-Id": hostile})
        assert r.status_code == 200, r.text
        r = env.get(TAX, token=None, headers={"X-Request-Id": hostile})
        assert r.status_code == 401, r.text
    assert fs.wait_drained(timeout=15)
    policy_field = f"{env.st.policy['version']} {env.st.policy_sha256}"
    findings = scan_entries(fs.entries(), [tok], policy_field)
    assert not findings, "\n".join(findings[:30])
    healthy(fs)
