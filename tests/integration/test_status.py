"""credit_auth_status (SPEC §8): the counters move with what was decided,
including what only Redis could decide (revoked, exhausted)."""

import requests


def status(env, fmt=None):
    r = requests.get(env.gw.url("/credit-auth/status"),
                     params={"format": fmt} if fmt else None,
                     cert=(env.certs["BANK001"].cert,
                           env.certs["BANK001"].key),
                     verify=env.pki.server_ca_path, timeout=10)
    assert r.status_code == 200, r.text
    return r


def test_counters_follow_the_final_decision(env):
    before = status(env).json()

    assert env.get(token=env.token()).status_code == 200

    revoked = env.token(jti="status-revoked-1")
    env.redis().set("credit:revoked:status-revoked-1", "1")
    assert env.get(token=revoked).status_code == 403

    used = env.token(jti="status-used-1", max_uses=1)
    assert env.get(token=used).status_code == 200
    assert env.get(token=used).status_code == 403

    assert env.get(token=None).status_code == 401

    after = status(env).json()
    d0, d1 = before["decisions"], after["decisions"]
    assert d1["allow"] - d0["allow"] == 2, (d0, d1)
    assert d1["deny"] - d0["deny"] == 3, (d0, d1)
    for reason in ("consent_revoked", "consent_exhausted", "token_missing"):
        assert (after["reasons"][reason] - before["reasons"][reason]) == 1, \
            reason
    assert after["banks"]["BANK001"] - before["banks"].get("BANK001", 0) == 5
    assert after["token_cache"]["hits"] >= before["token_cache"]["hits"] + 1
    assert after["redis"]["connected"] is True


def test_prometheus_format(env):
    env.get(token=env.token())
    text = status(env, "prometheus").text
    assert 'credit_auth_decisions_total{decision="allow"}' in text
    assert 'credit_auth_refusals_total{reason="consent_revoked"}' in text
    assert "credit_auth_redis_connected 1" in text
    assert "credit_auth_token_cache_entries" in text
