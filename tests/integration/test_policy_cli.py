"""`credit-policy` (contract §9, docs/policy.md §8): `check` validates exactly
like `nginx -t` and prints the same error line (file, JSON path, reason);
`explain` shows what a bank would receive and why."""

import copy
import json
import re
import subprocess

import pytest

from conftest import E1, PURPOSE, RECORDS, S

CLI = S.ROOT / "build" / "bin" / "credit-policy"
SHIPPED = S.ROOT / "policies" / "platform-policy.json"
TAX = f"/api/v1/enterprises/{E1}/tax"


def run(*args, timeout=30):
    r = subprocess.run([str(CLI), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module", autouse=True)
def _cli_built():
    if not CLI.exists():
        pytest.fail(f"{CLI} not built")


# ------------------------------------------------------------------------
# check

def test_check_shipped_policy():
    rc, out, err = run("check", SHIPPED)
    assert rc == 0, out + err
    line = out.strip()
    import hashlib
    sha = hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    ver = json.loads(SHIPPED.read_text())["version"]
    ncat = len(json.loads(SHIPPED.read_text())["categories"])
    assert line == f"{SHIPPED}: ok (version {ver}, sha256 {sha}, " \
                   f"{ncat} categories)", line


def test_check_test_policy(conf_dir):
    p = S.write_json(conf_dir / "test-policy.json", S.TEST_POLICY)
    rc, out, err = run("check", p)
    assert rc == 0, out + err
    assert out.startswith(f"{p}: ok (version {S.TEST_POLICY['version']}")


def _tax(pol):
    return pol["categories"]["tax"]


def _mut(fn):
    def make():
        pol = copy.deepcopy(S.TEST_POLICY)
        fn(pol)
        return pol
    return make


# name -> (policy dict or raw text maker, JSON path regex, reason regex)
BROKEN = {
    "trade_secret_kept": (
        _mut(lambda p: _tax(p)["fields"]["annual[].tax_paid"].update(
            masked="keep")),
        r'\$\.categories\.tax\.fields\["annual\[\]\.tax_paid"\]\.masked',
        r"trade_secret field kept raw at the masked level"),
    "personal_kept": (
        _mut(lambda p: _tax(p)["fields"].update(
            {"legal_representative.name": {"masked": "keep",
                                           "class": "personal"}})),
        r'\$\.categories\.tax\.fields\["legal_representative\.name"\]'
        r'\.masked',
        r"personal field kept raw at the masked level"),
    "unknown_category_member": (
        _mut(lambda p: _tax(p).update(colour="blue")),
        r"\$\.categories\.tax\.colour", r"unknown"),
    "unknown_root_member": (
        _mut(lambda p: p.update(comment="x")), r"\$\.comment", r"unknown"),
    "hs256": (
        _mut(lambda p: p["token"]["algs"].append("HS256")),
        r"\$\.token\.algs\[5\]", r"never allowed \(RFC 8725\)"),
    "alg_none": (
        _mut(lambda p: p["token"].update(algs=["none"])),
        r"\$\.token\.algs\[0\]", r"never allowed \(RFC 8725\)"),
    "leeway_61": (
        _mut(lambda p: p["token"].update(leeway=61)),
        r"\$\.token\.leeway", r"."),
    "route_without_uscc": (
        _mut(lambda p: _tax(p).update(routes=["/api/v1/enterprises/tax"])),
        r"\$\.categories\.tax\.routes\[0\]", r"uscc"),
    "route_trailing_slash": (
        _mut(lambda p: _tax(p).update(
            routes=["/api/v1/enterprises/{uscc}/tax/"])),
        r"\$\.categories\.tax\.routes\[0\]", r"."),
    "route_twice": (
        _mut(lambda p: p["categories"]["environment"].update(
            routes=["/api/v1/enterprises/{uscc}/tax"])),
        r"\$\.categories\.(environment|tax)\.routes\[0\]", r"."),
    "path_conflict": (
        _mut(lambda p: _tax(p)["fields"].update(legal_representative="keep")),
        r"\$\.categories\.tax\.fields", r"."),
    "selector_in_policy": (
        _mut(lambda p: _tax(p)["fields"].update(
            {"annual[year=2023].tax_paid": "keep"})),
        r'\$\.categories\.tax\.fields\["annual\[year=2023\]\.tax_paid"\]',
        r"."),
    "purpose_not_in_policy": (
        _mut(lambda p: _tax(p).update(purposes=["marketing"])),
        r"\$\.categories\.tax\.purposes\[0\]", r"."),
    "verify_unknown_op": (
        _mut(lambda p: _tax(p)["verify"].update(credit_rating=["like"])),
        r'\$\.categories\.tax\.verify\.credit_rating\[0\]', r"."),
    "bad_treatment": (
        _mut(lambda p: _tax(p)["fields"].update(name="mask:1001,0")),
        r"\$\.categories\.tax\.fields\.name", r"."),
    "bucket_zero": (
        _mut(lambda p: _tax(p)["fields"].update(credit_rating="bucket:0")),
        r"\$\.categories\.tax\.fields\.credit_rating", r"."),
    "duplicate_key": (
        lambda: json.dumps(S.TEST_POLICY, indent=1).replace(
            '"uscc": "keep",', '"uscc": "keep", "uscc": "drop",', 1),
        # a parse error names the place by line and column instead
        r"(\$\.categories\.tax\.fields(\.uscc)?|invalid JSON at line "
        r"\d+ column \d+)", r"duplicate"),
    "syntax_error": (
        lambda: '{"version": "x", "purposes": [',
        r"", r"."),
    "root_array": (lambda: "[]", r"\$", r"."),
}


def _write(conf_dir, name, maker):
    obj = maker()
    p = conf_dir / f"broken-{name}.json"
    if isinstance(obj, str):
        p.write_text(obj)
        p.chmod(0o644)
    else:
        S.write_json(p, obj)
    return p


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_check_broken_policy_same_as_nginx_t(name, conf_dir, make_gateway):
    maker, path_re, reason_re = BROKEN[name]
    p = _write(conf_dir, name, maker)
    rc, out, err = run("check", p)
    assert rc == 1, (rc, out, err)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    line = lines[0]
    # FILE: JSONPATH: reason
    assert line.startswith(f"{p}: "), line
    rest = line[len(str(p)) + 2:]
    if path_re:
        assert re.match(path_re, rest), f"JSON path {path_re!r} in {line!r}"
    assert re.search(reason_re, rest), f"reason {reason_re!r} in {line!r}"
    # the gateway refuses to start with the very same line
    grc, gout = make_gateway(policy=p).test()
    assert grc != 0, gout
    assert line in gout, f"credit-policy said:\n{line}\nnginx -t said:\n{gout}"


def test_check_several_files_in_order(conf_dir):
    bad = _write(conf_dir, "several", BROKEN["hs256"][0])
    rc, out, _ = run("check", SHIPPED, bad, SHIPPED)
    assert rc == 1, out
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert lines[0].startswith(f"{SHIPPED}: ok")
    assert lines[1].startswith(f"{bad}: $.token.algs")
    assert lines[2].startswith(f"{SHIPPED}: ok")


# ------------------------------------------------------------------------
# explain

@pytest.fixture
def explain_files(conf_dir):
    pol = S.write_json(conf_dir / "policy.json", S.TEST_POLICY)
    resp = S.write_json(conf_dir / "response.json", RECORDS[(E1, "tax")])
    claims = S.write_json(conf_dir / "claims.json",
                          S.claims(E1, "BANK001"))
    return pol, resp, claims


def test_explain_shows_document_and_rules(explain_files, env):
    pol, resp, claims = explain_files
    rc, out, err = run("explain", "--policy", pol, "--path", TAX,
                       "--response", resp, "--claims", claims,
                       "--purpose", PURPOSE)
    assert rc == 0, out + err
    assert "张**" in out and "110101********1234" in out
    assert re.search(r"annual\[0\]\.tax_paid\s+bucket:100000 \(trade_secret, "
                     r"masked level; field annual\[\]\.tax_paid\)", out), out
    assert re.search(r"internal_notes\s+withheld: not in allowlist", out), out
    assert re.search(r"annual\[0\]\.filing_ref\s+withheld", out), out
    assert re.search(r"withheld", out)


def test_explain_json_matches_the_gateway(explain_files, env):
    """explain --json's document is what the real gateway sends for the
    same record, policy and consent."""
    pol, resp, claims = explain_files
    rc, out, err = run("explain", "--policy", pol, "--path", TAX,
                       "--response", resp, "--claims", claims,
                       "--purpose", PURPOSE, "--json")
    assert rc == 0, out + err
    doc = json.loads(out)
    assert doc["decision"] == "allow", doc
    assert doc["category"] == "tax" and doc["enterprise"] == E1
    assert doc["purpose"] == PURPOSE and doc["level"] == "masked"
    r = env.get(TAX)
    assert r.status_code == 200, r.text
    assert doc["document"] == r.json()
    masked = doc["masked"]
    if isinstance(masked, str):
        masked = masked.split(",")
    assert set(masked) == {"annual[].tax_paid",
                                  "legal_representative.name",
                                  "legal_representative.id_number"}, doc
    o = env.audit_for(r.headers["X-Request-Id"], "outcome")[0]
    assert int(o["withheld"]) == doc["withheld"], (o, doc["withheld"])


def test_explain_shows_what_verification_may_do(explain_files, conf_dir):
    """contract §2.1: the verify fields and ops, the budget per field per
    consent, and the members a selector may use."""
    pol, resp, claims = explain_files
    rc, out, err = run("explain", "--policy", pol, "--path", TAX,
                       "--response", resp, "--claims", claims,
                       "--purpose", PURPOSE)
    assert rc == 0, out + err
    assert "verification (POST): 3 checks per field per consent" in out, out
    assert re.search(r"annual\[\]\.tax_paid: eq ge le", out), out
    assert "selectors [k=v] may use: annual[].year\n" in out, out

    p = json.loads(json.dumps(S.TEST_POLICY))
    p["categories"]["tax"]["verify_budget"] = 7
    pol7 = S.write_json(conf_dir / "policy7.json", p)
    rc, out, err = run("explain", "--policy", pol7, "--path", TAX,
                       "--response", resp, "--json")
    assert rc == 0, out + err
    v = json.loads(out)["verify"]
    assert v == {"budget": 7,
                 "fields": {"annual[].tax_paid": ["eq", "ge", "le"],
                            "credit_rating": ["eq"]},
                 "selectors": ["annual[].year"]}, v


@pytest.mark.parametrize("args,reason", [
    (["--purpose", "credit_assessment"], "purpose_not_allowed"),
    (["--purpose", "marketing"], "purpose_not_allowed"),
    (["--purpose", PURPOSE, "--raw"], "raw_not_allowed"),
])
def test_explain_refusals(explain_files, args, reason):
    pol, resp, claims = explain_files
    rc, out, err = run("explain", "--policy", pol, "--path", TAX,
                       "--response", resp, "--claims", claims, *args)
    assert rc == 1, (rc, out, err)
    assert reason in out + err, out + err
    assert "张**" not in out


def test_explain_route_and_subject(explain_files):
    pol, resp, claims = explain_files
    rc, out, err = run("explain", "--policy", pol, "--path",
                       f"/api/v1/enterprises/{E1}/secret", "--response", resp)
    assert rc == 1 and "route_not_in_policy" in out + err, out + err
    rc, out, err = run("explain", "--policy", pol, "--path",
                       f"/api/v1/enterprises/{S.bad_uscc(E1)}/tax",
                       "--response", resp)
    assert rc == 1 and "request_invalid" in out + err, out + err
    e2 = S.make_uscc("91110108MA01ABCD0")
    rc, out, err = run("explain", "--policy", pol, "--path",
                       f"/api/v1/enterprises/{e2}/tax", "--response", resp,
                       "--claims", claims, "--purpose", PURPOSE)
    assert rc == 1 and "subject_mismatch" in out + err, out + err


def test_explain_token_is_decoded_not_verified(explain_files, env):
    pol, resp, _ = explain_files
    tok = env.token()
    rc, out, err = run("explain", "--policy", pol, "--path", TAX,
                       "--response", resp, "--token", tok, "--purpose",
                       PURPOSE)
    assert rc == 0, out + err
    assert re.search(r"not verif|without verif|unverified", out + err, re.I)


@pytest.mark.parametrize("change,reason", [
    # what the gateway refuses as token_malformed must not read "allowed"
    ({"purposes": PURPOSE}, "token_malformed"),
    ({"aud": []}, "token_malformed"),
    ({"jti": "has space"}, "token_malformed"),
    ({"modes": ["query", "browse"]}, "token_malformed"),
    ({"iss": "not-a-uscc"}, "issuer_invalid"),
    ({"exp": 1, "iat": 0}, "token_expired"),
    ({"iat": 1000, "exp": 1000 + 7776001}, "lifetime_too_long"),
])
def test_explain_applies_the_gateways_claim_checks(explain_files, conf_dir,
                                                  env, change, reason):
    pol, resp, _ = explain_files
    c = S.claims(E1, "BANK001")
    c.update(change)
    claims = S.write_json(conf_dir / "bad-claims.json", c)
    rc, out, err = run("explain", "--policy", pol, "--path", TAX,
                       "--response", resp, "--claims", claims,
                       "--purpose", PURPOSE)
    assert rc == 1, (rc, out, err)
    assert f"refused: {reason}" in out, out + err
    assert "张**" not in out
    # the gateway agrees
    if reason == "token_malformed":
        priv, _ = env.key("e1-es256")
        r = env.get(TAX, token=S.mint_token(priv, "ES256", "e1-es256", c))
        assert r.status_code == 401, r.text
        assert env.decision(r)["reason"] == reason


# ------------------------------------------------------------------------
# diff

def test_diff_lists_what_a_change_discloses(conf_dir):
    old = S.write_json(conf_dir / "old.json", S.TEST_POLICY)
    p = copy.deepcopy(S.TEST_POLICY)
    tax = p["categories"]["tax"]["fields"]
    tax["legal_representative.id_number"] = {"masked": "mask:6,4",
                                             "raw": "keep",
                                             "class": "personal"}
    tax["name"] = "mask:2,0"
    del tax["credit_rating"]
    tax["legal_representative.mobile"] = {"masked": "mask:3,4",
                                          "raw": "keep", "class": "personal"}
    tax["annual[].tax_paid"]["masked"] = "bucket:10000"
    p["categories"]["environment"]["raw_allowed"] = True
    p["categories"]["environment"]["purposes"].append("post_loan_monitoring")
    p["version"] = "test-2026-12-01.1"
    new = S.write_json(conf_dir / "new.json", p)

    rc, out, err = run("diff", old, new, "--json")
    assert rc == 1, (rc, out, err)
    d = json.loads(out)
    assert d["old_version"] == "test-2026-11-27.1"
    assert d["new_version"] == "test-2026-12-01.1"
    t = d["categories"]["tax"]

    def fields(kind):
        return {(e["field"], e["level"], e["old"], e["new"])
                for e in t.get(kind, [])}
    assert fields("newly_disclosed") == {
        ("legal_representative.id_number", "raw", "mask:6,4", "keep"),
        ("legal_representative.mobile", "raw", "-", "keep")}
    # withheld -> masked has its own heading
    assert fields("newly_sent_masked") == {
        ("legal_representative.mobile", "masked", "-", "mask:3,4")}
    assert fields("newly_masked") == {("name", "masked", "keep", "mask:2,0"),
                                      ("name", "raw", "keep", "mask:2,0")}
    assert fields("newly_withheld") == {
        ("credit_rating", "masked", "keep", "-"),
        ("credit_rating", "raw", "keep", "-")}
    assert fields("treatment_changed") == {
        ("annual[].tax_paid", "masked", "bucket:100000", "bucket:10000")}
    env = d["categories"]["environment"]
    assert env["raw_allowed"] is True
    assert env["purposes"] == {"added": ["post_loan_monitoring"],
                               "removed": []}
    # raw now allowed: every field of the category is newly sent raw, as
    # it is (keep) or masked
    assert {e["field"] for e in env["newly_disclosed"]} == {"uscc",
                                                            "env_rating"}
    assert {e["field"] for e in env["newly_disclosed"]
            + env["newly_sent_masked"] if e["level"] == "raw"} == set(
                S.TEST_POLICY["categories"]["environment"]["fields"])
    # the text form names the sections
    rc, out, err = run("diff", old, new)
    assert rc == 1
    for words in ("category tax", "newly disclosed", "newly masked",
                  "newly withheld", "legal_representative.mobile",
                  "newly sent masked", "raw detail         now allowed"):
        assert words in out, (words, out)
    # no change: exit 0
    rc, out, err = run("diff", old, old)
    assert rc == 0 and "no change" in out
    rc, out, err = run("diff", old)
    assert rc == 2 and "two files" in err
    rc, out, err = run("diff", old, conf_dir / "missing.json")
    assert rc == 2 and "missing.json" in err


# ------------------------------------------------------------------------
# credit-consent: keygen, sign, inspect as an enterprise uses them

CONSENT = S.ROOT / "build" / "bin" / "credit-consent"


def consent(*args, input=None):
    r = subprocess.run([str(CONSENT), *map(str, args)], capture_output=True,
                       text=True, timeout=60, input=input)
    return r.returncode, r.stdout, r.stderr


def test_keygen_never_overwrites_a_key(conf_dir):
    prefix = conf_dir / "ent-key"
    args = ["keygen", "--alg", "EdDSA", "--kid", "ent-1", "--uscc", E1,
            "--out", prefix]
    rc, out, err = consent(*args)
    assert rc == 0, err
    key = prefix.with_name("ent-key.key.pem")
    before = key.read_bytes()
    rc, out, err = consent(*args)
    assert rc == 2 and "exists" in err and "--force" in err
    assert key.read_bytes() == before
    # the JWK alone existing is enough to refuse
    key.unlink()
    rc, out, err = consent(*args)
    assert rc == 2 and "ent-key.jwk exists" in err
    assert not key.exists()
    rc, out, err = consent(*args, "--force")
    assert rc == 0, err
    assert key.read_bytes() != before and (key.stat().st_mode & 0o777) == \
        0o600


def test_missing_options_are_named(conf_dir):
    rc, out, err = consent("sign", "--alg", "ES256", "--kid", "k")
    assert rc == 2
    assert "missing --key, --iss, --aud, --purposes, --categories" in err
    rc, out, err = consent("keygen", "--alg", "ES256")
    assert rc == 2 and "missing --kid, --uscc, --out" in err


def test_sign_with_policy_warns_what_the_gateway_refuses(conf_dir):
    prefix = conf_dir / "warn-key"
    consent("keygen", "--alg", "ES256", "--kid", "warn-1", "--uscc", E1,
            "--out", prefix, "--force")
    key = prefix.with_name("warn-key.key.pem")
    pol = S.write_json(conf_dir / "policy.json", S.TEST_POLICY)
    base = ["sign", "--key", key, "--alg", "ES256", "--kid", "warn-1",
            "--iss", E1, "--aud", "BANK001", "--policy", pol]
    rc, out, err = consent(*base, "--purposes", PURPOSE, "--categories",
                           "tax")
    assert rc == 0 and out.count(".") == 2 and "warning" not in err, err
    rc, out, err = consent(*base, "--purposes", PURPOSE, "--categories",
                           "environment", "--detail", "raw", "--ttl",
                           "99999999")
    assert rc == 0 and out.count(".") == 2        # still signed
    assert "lifetime_too_long" in err, err
    rc, out, err = consent(*base, "--purposes", PURPOSE, "--categories",
                           "environment", "--detail", "raw")
    assert "category environment does not allow raw" in err, err
    # a code the policy does not know is an error (issue 21), not a
    # warning: nothing is signed, and the known codes are listed
    rc, out, err = consent(*base, "--purposes", "marketing,loan_application",
                           "--categories", "environment")
    assert rc == 2 and out == "", (rc, out)
    assert "purpose marketing is not in" in err and "credit_assessment" in \
        err, err
    rc, out, err = consent(*base, "--purposes", PURPOSE, "--categories",
                           "environment,payroll")
    assert rc == 2 and "category payroll is not in" in err, err
    p = copy.deepcopy(S.TEST_POLICY)
    p["token"]["algs"] = ["EdDSA"]
    p["token"]["require_cnf"] = True
    pol2 = S.write_json(conf_dir / "policy2.json", p)
    base[base.index(pol)] = pol2
    rc, out, err = consent(*base, "--purposes", PURPOSE, "--categories",
                           "tax")
    assert "alg_not_allowed" in err and "--cnf-cert" in err, err


def test_inspect_shows_iso_times(conf_dir):
    prefix = conf_dir / "insp-key"
    consent("keygen", "--alg", "ES256", "--kid", "insp-1", "--uscc", E1,
            "--out", prefix, "--force")
    rc, tok, err = consent("sign", "--key", prefix.with_name(
        "insp-key.key.pem"), "--alg", "ES256", "--kid", "insp-1", "--iss",
        E1, "--aud", "BANK001", "--purposes", PURPOSE, "--categories", "tax",
        "--iat", "2026-11-01T00:00:00+08:00", "--exp", "2026-12-01T00:00+08:00",
        "--nbf", "1793462400")
    assert rc == 0, err
    rc, out, err = consent("inspect", "--tz", "Asia/Shanghai", tok.strip())
    assert rc == 0, err
    assert "iat: 2026-11-01T00:00:00+08:00" in out
    assert "nbf: 2026-11-01T00:00:00+08:00" in out
    assert "exp: 2026-12-01T00:00:00+08:00" in out
    rc, out, err = consent("inspect", "--json", "--tz", "UTC", tok.strip())
    assert json.loads(out)["times"]["iat"] == "2026-10-31T16:00:00Z"


# ------------------------------------------------------------------------
# help and usage

@pytest.mark.parametrize("args", [["--help"], ["check", "--help"],
                                  ["explain", "--help"], ["diff", "--help"],
                                  ["help"]])
def test_help(args):
    rc, out, err = run(*args)
    if args == ["help"] and rc == 2:
        pytest.skip("no help command")
    assert rc == 0, (rc, out, err)
    assert "usage" in (out + err).lower()


@pytest.mark.parametrize("args", [
    [], ["bogus"], ["check"], ["explain"],
    ["explain", "--policy", str(SHIPPED)],
    ["explain", "--policy", str(SHIPPED), "--path", TAX],
    ["explain", "--policy", str(SHIPPED), "--path", TAX, "--response",
     "/nonexistent/response.json"],
    ["explain", "--bogus-option"],
])
def test_bad_usage_exits_2(args):
    rc, out, err = run(*args)
    assert rc == 2, (args, rc, out, err)
    assert err.strip(), "a usage error explains itself on stderr"
