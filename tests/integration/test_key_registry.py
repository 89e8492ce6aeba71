"""The enterprise key registry in Redis (contract §5, issue 12, docs/keys.md):
keys looked up lazily, live add / rotate / revoke within 1 s on every
gateway without a reload, key_revoked through the verified-token cache,
bounded Redis traffic for unknown kids, Redis down, malformed records,
and credit-consent key."""

import contextlib
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import E1, E2, TAX, S, problem

CONSENT = S.ROOT / "build" / "bin" / "credit-consent"
REGISTRY = "on ttl=30s negative_ttl=2s poll=100ms"


class Registry:
    """A private Redis and gateways over it with the registry on."""

    def __init__(self, env, n=2, registry=REGISTRY, **kw):
        self.env = env
        self.dir = S.workdir(Path(tempfile.mkdtemp(prefix="keyreg-",
                                                   dir=env.st.dir)))
        self.redis = S.Redis(self.dir).start()
        self.gws = []
        for i in range(n):
            # a spool: with Redis down a refusal is still decided, spooled
            spool = S.subdir(self.dir, f"spool{i}", 0o777)
            os.chmod(spool, 0o777)
            g = env.st.make_gateway(
                redis_addr=self.redis.directive_value(),
                http_directives={"credit_auth_key_registry": registry,
                                 "credit_auth_audit_spool": str(spool)},
                **kw)
            self.gws.append(g.start())

    def stop(self):
        for g in self.gws:
            g.stop()
        self.redis.stop()

    def r(self):
        return self.redis.client()

    def consent(self, *args, check=True):
        p = subprocess.run([str(CONSENT), *args, "--redis",
                            self.redis.address],
                           capture_output=True, text=True, timeout=30)
        if check:
            assert p.returncode == 0, p.stderr
        return p

    def new_key(self, kid, uscc=E1, alg="ES256", add=True, *extra):
        priv = S.generate_key(alg)
        jwk = S.public_jwk(priv, alg, kid, uscc)
        path = self.dir / f"{kid}.jwk"
        path.write_text(json.dumps(jwk))
        if add:
            self.consent("key", "add", "--jwk", str(path), *extra)
        return priv, path

    def get(self, gw, priv, kid, alg="ES256", uscc=E1, **kw):
        tok = S.mint_token(priv, alg, kid, S.claims(uscc, "BANK001"))
        return self.request(gw, tok, **kw)

    def request(self, gw, tok, **kw):
        saved = self.env.gw
        self.env.gw = gw
        try:
            return self.env.get(TAX, token=tok, **kw)
        finally:
            self.env.gw = saved


@pytest.fixture(scope="module")
def reg(env):
    r = Registry(env)
    yield r
    problems = [p for g in r.gws for p in g.log_problems()]
    r.stop()
    assert not problems, problems


def until(pred, timeout, interval=0.02):
    """Seconds until pred() holds; fails after timeout."""
    t0 = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"not within {timeout}s")
        time.sleep(interval)


@contextlib.contextmanager
def record_gets(reg):
    """The registry GETs Redis receives meanwhile (MONITOR)."""
    seen, mark = [], "gets-done-" + secrets.token_hex(4)

    def watch(m):
        for cmd in m.listen():
            c = cmd.get("command", "")
            if c.startswith("GET credit:key:"):
                seen.append(c)
            if c == f"PING {mark}":
                return
    with reg.r().monitor() as m:
        t = threading.Thread(target=watch, args=(m,), daemon=True)
        t.start()
        time.sleep(0.2)
        yield seen
        reg.r().execute_command("PING", mark)
        t.join(5)


def status_of(r):
    if r.status_code == 200:
        return (200, None)
    return (r.status_code, r.json()["type"].rsplit(":", 1)[1])


# ------------------------------------------------------------------------

def test_added_key_is_used_within_a_second_without_reload(reg):
    gw = reg.gws[0]
    pids = set(gw.workers())
    kid = "reg-add-" + secrets.token_hex(4)
    priv, path = reg.new_key(kid, add=False)
    # unknown first: now negatively cached on this gateway
    problem(reg.get(gw, priv, kid), 401, "kid_unknown")
    reg.consent("key", "add", "--jwk", str(path))
    t = until(lambda: reg.get(gw, priv, kid).status_code == 200, 1.0)
    assert reg.get(reg.gws[1], priv, kid).status_code == 200
    assert set(gw.workers()) == pids        # no reload, no restart
    print(f"added key usable after {t * 1000:.0f} ms")


def test_rotate_old_refused_after_its_window_new_accepted(reg):
    gw = reg.gws[0]
    old, new = "reg-old-" + secrets.token_hex(3), \
               "reg-new-" + secrets.token_hex(3)
    p_old, _ = reg.new_key(old)
    assert reg.get(gw, p_old, old).status_code == 200
    p_new, path = reg.new_key(new, add=False)
    out = reg.consent("key", "rotate", "--old", old, "--jwk", str(path),
                      "--grace", "2").stdout
    assert f"rotated {old} -> {new}" in out
    assert reg.get(gw, p_new, new).status_code == 200
    assert reg.get(gw, p_old, old).status_code == 200    # within grace
    time.sleep(2.2)
    doc = problem(reg.get(gw, p_old, old), 401, "key_revoked")
    assert "validity ended" in doc["detail"]
    assert reg.get(gw, p_new, new).status_code == 200
    # a rotation stays within one enterprise
    _, other = reg.new_key("reg-e2-" + secrets.token_hex(3), uscc=E2,
                           add=False)
    p = reg.consent("key", "rotate", "--old", new, "--jwk", str(other),
                    check=False)
    assert p.returncode == 2 and "within one enterprise" in p.stderr


def test_revoke_reaches_two_gateways_within_a_second_cached_tokens_too(reg):
    kid = "reg-rev-" + secrets.token_hex(4)
    priv, _ = reg.new_key(kid)
    tok = S.mint_token(priv, "ES256", kid, S.claims(E1, "BANK001"))
    for g in reg.gws:
        # verified and cached on both gateways
        assert reg.request(g, tok).status_code == 200
        assert reg.request(g, tok).status_code == 200
    reg.consent("key", "revoke", kid)
    t0 = time.monotonic()
    refused = {}
    while len(refused) < 2 and time.monotonic() - t0 < 2:
        for i, g in enumerate(reg.gws):
            if i not in refused:
                r = reg.request(g, tok)
                if r.status_code == 401:
                    refused[i] = time.monotonic() - t0
                    problem(r, 401, "key_revoked")
                    assert 'error="invalid_token"' in \
                        r.headers["WWW-Authenticate"]
        time.sleep(0.01)
    assert len(refused) == 2, refused
    assert max(refused.values()) < 1.0, refused
    print("revoke -> first refusal: " + ", ".join(
        f"gw{i} {t * 1000:.0f} ms" for i, t in sorted(refused.items())))
    # a fresh token of the revoked key too, and never again a 200
    assert status_of(reg.get(reg.gws[0], priv, kid)) == (401, "key_revoked")
    out = reg.consent("key", "show", kid).stdout
    assert json.loads(out)["state"] == "revoked"


def test_unknown_kid_flood_costs_bounded_redis_traffic(reg):
    gw = reg.gws[0]
    priv = S.generate_key("ES256")
    kids = [f"flood-{i}-{secrets.token_hex(3)}" for i in range(5)]
    t0 = time.monotonic()
    with record_gets(reg) as seen:
        for _ in range(10):
            for kid in kids:
                problem(reg.get(gw, priv, kid), 401, "kid_unknown")
    # 50 requests, 5 distinct kids: one GET each per negative TTL (2 s)
    rounds = 1 + int((time.monotonic() - t0) // 2)
    assert len(kids) <= len(seen) <= len(kids) * rounds, seen
    # a kid no record can have costs nothing
    with record_gets(reg) as none:
        problem(reg.get(gw, priv, "bad{kid}"), 401, "kid_unknown")
    assert none == []


def test_unknown_kid_flood_cannot_evict_keys_in_use(env):
    """cache=8: twenty made-up kids take at most two entries; the key in
    use stays cached (no GET of its record afterwards)."""
    reg = Registry(env, n=1, registry="on cache=8 ttl=30s negative_ttl=30s")
    try:
        gw = reg.gws[0]
        priv, _ = reg.new_key("kept")
        time.sleep(0.3)
        assert reg.get(gw, priv, "kept").status_code == 200
        with record_gets(reg) as flood:
            for i in range(20):
                problem(reg.get(gw, priv, f"made-up-{i}"), 401,
                        "kid_unknown")
        assert len(flood) == 20, flood
        with record_gets(reg) as seen:
            for _ in range(3):
                assert reg.get(gw, priv, "kept").status_code == 200
        assert seen == [], seen
    finally:
        reg.stop()


def test_malformed_records_are_refused_named_and_never_cached(reg):
    gw = reg.gws[0]
    r = reg.r()
    priv = S.generate_key("ES256")
    good = S.public_jwk(priv, "ES256", "mal-1", E1)
    rec = {"kid": "mal-1", "uscc": E1, "state": "active", "not_before": 0,
           "not_after": 0, "version": 1, "jwk": good}
    bad = [
        "not json",
        json.dumps(dict(rec, kid="other")),
        json.dumps(dict(rec, state="maybe")),
        json.dumps(dict(rec, jwk=dict(good, d="AAAA"))),
        json.dumps(dict(rec, jwk=dict(good, x=good["y"]))),   # off curve
        json.dumps(dict(rec, uscc=E2)),
        json.dumps(dict(rec, version="1")),
    ]
    for i, text in enumerate(bad):
        kid = f"mal-{i}"
        body = text.replace('"mal-1"', f'"{kid}"')
        r.set(f"credit:key:{{{kid}}}", body)
        mark = gw.log_size()
        p = S.mint_token(priv, "ES256", kid, S.claims(E1, "BANK001"))
        doc = problem(reg.request(gw, p), 401, "kid_unknown")
        assert "malformed" in doc["detail"]
        log = gw.read_error_log(mark)
        assert f'key registry record of kid "{kid}" refused' in log, log
    # a hash where a string belongs
    r.hset("credit:key:{mal-hash}", "jwk", "x")
    mark = gw.log_size()
    tok = S.mint_token(priv, "ES256", "mal-hash", S.claims(E1, "BANK001"))
    problem(reg.request(gw, tok), 401, "kid_unknown")
    assert 'kid "mal-hash" refused' in gw.read_error_log(mark)
    # repaired: used after the change, nothing poisoned
    r.set("credit:key:{mal-1}", json.dumps(rec))
    r.incr("credit:keyreg:version")
    until(lambda: reg.get(gw, priv, "mal-1").status_code == 200, 1.0)


def test_kid_in_both_file_and_registry_is_refused(reg):
    gw = reg.gws[0]
    kid = "e1-es256"                     # in the session's JWKS file
    assert reg.request(gw, reg.env.token()).status_code == 200
    priv = S.generate_key("ES256")
    jwk = S.public_jwk(priv, "ES256", kid, E1)
    path = reg.dir / "dup.jwk"
    path.write_text(json.dumps(jwk))
    reg.consent("key", "add", "--jwk", str(path))
    mark = gw.log_size()
    until(lambda: reg.request(gw, reg.env.token()).status_code == 401, 1.0)
    doc = problem(reg.request(gw, reg.env.token()), 401, "kid_unknown")
    assert "registered twice" in doc["detail"]
    assert f'kid "{kid}" is both in' in gw.read_error_log(mark)
    # neither key is used: the registry's cannot sign for the file's kid
    problem(reg.get(gw, priv, kid), 401, "kid_unknown")


def test_redis_down_cached_key_serves_uncached_fails_closed(env):
    reg = Registry(env, n=1)
    try:
        gw = reg.gws[0]
        priv, _ = reg.new_key("down-cached")
        p2, _ = reg.new_key("down-uncached")
        time.sleep(0.3)         # the gateway has seen the version of both
        assert reg.get(gw, priv, "down-cached").status_code == 200
        reg.redis.stop()
        # the cached key still verifies: the request gets past the token
        # to a refusal only a verified token can reach
        r = reg.get(gw, priv, "down-cached", purpose="no_such_purpose")
        problem(r, 403, "purpose_not_allowed")
        r = reg.get(gw, p2, "down-uncached", purpose="no_such_purpose")
        doc = problem(r, 503, "revocation_unavailable")
        assert "key registry" in doc["detail"]
        # back: the uncached key is fetched and used
        reg.redis.start()
        until(lambda: reg.get(gw, p2, "down-uncached").status_code == 200,
              5.0)
    finally:
        reg.stop()


def test_cli_add_validates_like_the_loader_and_lists(reg):
    priv = S.generate_key("ES256")
    jwk = S.public_jwk(priv, "ES256", "cli-bad", E1)
    path = reg.dir / "cli-bad.jwk"
    for broken, msg in [(dict(jwk, d="AAAA"), "private key material"),
                        (dict(jwk, alg="HS256"), "must be one of"),
                        (dict(jwk, uscc="123"), "not a valid USCC")]:
        path.write_text(json.dumps(broken))
        p = reg.consent("key", "add", "--jwk", str(path), check=False)
        assert p.returncode == 2 and msg in p.stderr, p.stderr
    assert reg.r().get("credit:key:{cli-bad}") is None
    kid = "cli-" + secrets.token_hex(3)
    reg.new_key(kid, uscc=E2)
    p = reg.consent("key", "add", "--jwk", str(reg.dir / f"{kid}.jwk"),
                    check=False)
    assert p.returncode == 2 and "already registered" in p.stderr
    out = reg.consent("key", "list", "--uscc", E2).stdout
    assert any(l.split("\t")[:3] == [kid, "active", E2]
               for l in out.splitlines()), out
    p = reg.consent("key", "show", "no-such-kid", check=False)
    assert p.returncode == 1 and "not registered" in p.stderr


@pytest.mark.parametrize("value,message", [
    ("off", 'must start with "on"'),
    ("on cache=0", 'invalid parameter "cache=0"'),
    ("on poll=2s", 'invalid parameter "poll=2s"'),
    ("on ttl=abc", 'invalid parameter "ttl=abc"'),
    ("on colour=blue", 'invalid parameter "colour=blue"'),
])
def test_directive_bad_forms(make_gateway, value, message):
    rc, out = make_gateway(
        http_directives={"credit_auth_key_registry": value}).test()
    assert rc != 0 and message in out, out


def test_registry_needs_the_zone_and_may_replace_the_file(make_gateway):
    rc, out = make_gateway(
        zone=None,
        http_directives={"credit_auth_key_registry": "on"}).test()
    assert rc != 0 and "needs credit_auth_zone" in out, out
    rc, out = make_gateway(
        keys=None, http_directives={"credit_auth_key_registry": "on"}).test()
    assert rc == 0, out
    rc, out = make_gateway(keys=None).test()
    assert rc != 0 and "credit_auth_key_registry" in out, out


def test_kid_registered_again_by_hand_is_another_key(reg):
    """Records are written by credit-consent, which never reuses a kid; a
    kid deleted and written again by hand with other material (same
    version) must not verify with the key parsed before."""
    gw = reg.gws[0]
    kid = "again-" + secrets.token_hex(3)
    old, _ = reg.new_key(kid)
    for _ in range(4):                      # both workers parse it
        assert reg.get(gw, old, kid).status_code == 200
    r = reg.r()
    rec = json.loads(r.get(f"credit:key:{{{kid}}}"))
    new = S.generate_key("ES256")
    rec["jwk"] = S.public_jwk(new, "ES256", kid, E1)
    r.set(f"credit:key:{{{kid}}}", json.dumps(rec))
    r.incr("credit:keyreg:version")
    until(lambda: reg.get(gw, new, kid).status_code == 200, 1.0)
    for _ in range(4):
        assert reg.get(gw, new, kid).status_code == 200
        problem(reg.get(gw, old, kid), 401, "signature_invalid")
