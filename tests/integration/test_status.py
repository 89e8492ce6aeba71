"""credit_auth_status (contract §8): the counters move with what was decided,
including what only Redis could decide (revoked, exhausted)."""

import re
import subprocess

import pytest
import requests

from conftest import S


def status(env, fmt=None, code=200):
    r = requests.get(env.gw.url("/credit-auth/status"),
                     params={"format": fmt} if fmt else None,
                     cert=(env.certs["BANK001"].cert,
                           env.certs["BANK001"].key),
                     verify=env.pki.server_ca_path, timeout=10)
    assert r.status_code == code, r.text
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
    assert re.search(r'^credit_auth_redis_connected\{pid="\d+"\} 1$', text,
                     re.M), text
    assert "credit_auth_token_cache_entries" in text


SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')


def samples(text):
    """{(name, labels-text): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, line
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def test_promtool_check_metrics_is_clean(env):
    env.get(token=env.token())
    env.get(token=None)
    text = status(env, "prometheus").text
    p = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and not p.stdout.strip() \
        and not p.stderr.strip(), (p.stdout, p.stderr)


def test_every_family_has_help_type_and_one_label_name(env):
    env.get(token=env.token())
    text = status(env, "prometheus").text
    helps = set(re.findall(r"^# HELP (\S+) \S", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert helps == set(types), (helps, types)
    names = {}
    for (name, labels) in samples(text):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or types.get(base) == "histogram", name
        keys = frozenset(re.findall(r'(\w+)="', labels))
        # a histogram's _bucket has le, its _sum and _count none
        names.setdefault(name, set()).add(keys)
    for family, keysets in names.items():
        assert len(keysets) == 1, (family, keysets)
    for family in ("credit_auth_bank_requests_total",
                   "credit_auth_category_requests_total",
                   "credit_auth_purpose_requests_total",
                   "credit_auth_token_cache_lookups_total",
                   "credit_auth_token_cache_evictions_total",
                   "credit_auth_audit_spool_bytes",
                   "credit_auth_audit_spool_oldest_age_seconds",
                   "credit_auth_shipper_lag_seconds",
                   "credit_auth_shipper_report_age_seconds",
                   "credit_auth_shipper_up", "credit_auth_shipper_state"):
        assert family in types, family
    assert "credit_auth_requests_total" not in types
    assert "credit_auth_token_cache_total" not in types


def test_label_families_count_each_request_once(env):
    before = samples(status(env, "prometheus").text)
    for _ in range(3):
        assert env.get(token=env.token()).status_code == 200
    after = samples(status(env, "prometheus").text)

    def delta(name, labels):
        return after.get((name, labels), 0) - before.get((name, labels), 0)
    assert delta("credit_auth_bank_requests_total", 'bank="BANK001"') == 3
    assert delta("credit_auth_category_requests_total",
                 'category="tax"') == 3
    assert delta("credit_auth_purpose_requests_total",
                 'purpose="loan_application"') == 3


def test_info_line(env):
    text = status(env, "prometheus").text
    version = re.search(r'#define CA_VERSION "([^"]+)"',
                        (S.ROOT / "lib" / "core" / "version.h").read_text()).group(1)
    want = (f'credit_auth_info{{version="{version}",'
            f'policy_version="{env.st.policy["version"]}",'
            f'policy_sha256="{env.st.policy_sha256}"}} 1')
    assert want in text.splitlines(), text[:600]


def hist(s, name):
    buckets = sorted(((float(labels.split('"')[1]), v)
                      for (n, labels), v in s.items()
                      if n == f"{name}_bucket" and "+Inf" not in labels))
    inf = s[(f"{name}_bucket", 'le="+Inf"')]
    return buckets, inf, s[(f"{name}_count", "")], s[(f"{name}_sum", "")]


def test_histograms_move(env):
    before = samples(status(env, "prometheus").text)
    ok = 0
    for i in range(4):
        r = env.get(token=env.token())
        ok += r.status_code == 200
    assert env.get(token=None).status_code == 401
    after = samples(status(env, "prometheus").text)

    assert after[("credit_auth_decision_seconds_sum", "")] > \
        before[("credit_auth_decision_seconds_sum", "")]
    for name, moved in (("credit_auth_decision_seconds", 5),
                        ("credit_auth_upstream_seconds", ok)):
        b0, inf0, n0, s0 = hist(before, name)
        b1, inf1, n1, s1 = hist(after, name)
        assert n1 - n0 == moved, (name, n0, n1)
        # a local platform may answer within its millisecond: sum >=
        assert inf1 == n1 and s1 >= s0, (name, inf1, n1, s0, s1)
        # cumulative: never decreasing with le, below +Inf
        values = [v for _, v in b1]
        assert values == sorted(values) and values[-1] <= inf1, b1
        assert [le for le, _ in b1][:3] == [0.00025, 0.0005, 0.001], b1


@pytest.mark.parametrize("fmt", ["xml", "Prometheus", "json,prometheus"])
def test_unknown_format_is_400(env, fmt):
    status(env, fmt, code=400)


def test_json_format_explicitly(env):
    doc = status(env, "json").json()
    assert "decisions" in doc and "token_cache" in doc


def test_two_workers_sum_in_the_zone(env, make_gateway):
    """Counters and histograms are the zone's: whichever worker answers a
    scrape, it counts what both decided; the per-worker gauges say whose
    they are."""
    gw = make_gateway(workers=2)
    gw.start()

    def scrape():
        r = requests.get(gw.url("/credit-auth/status", plain=True),
                         params={"format": "prometheus"}, timeout=5)
        assert r.status_code == 200, r.text
        return r.text
    before = samples(scrape())
    saved = env.gw
    env.gw = gw
    try:
        # a new connection each: both workers get some
        for _ in range(8):
            assert env.get(token=env.token()).status_code == 200
    finally:
        env.gw = saved
    texts = [scrape() for _ in range(6)]
    pids = set()
    for text in texts:
        after = samples(text)
        for name, labels in (("credit_auth_decisions_total",
                              'decision="allow"'),
                             ("credit_auth_decision_seconds_count", ""),
                             ("credit_auth_bank_requests_total",
                              'bank="BANK001"')):
            assert after[(name, labels)] - before.get((name, labels), 0) \
                == 8, (name, before.get((name, labels)), after[(name, labels)])
        pids |= set(re.findall(r'^credit_auth_redis_connected\{pid="(\d+)"\}'
                               r' 1$', text, re.M))
    workers = {str(p) for p in gw.workers()}
    assert len(workers) == 2 and pids and pids <= workers, (pids, workers)
