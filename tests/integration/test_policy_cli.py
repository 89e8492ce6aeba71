"""`credit-policy` (SPEC §9, docs/policy.md §8): `check` validates exactly
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
    """SPEC §2.1: the verify fields and ops, the budget per field per
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


# ------------------------------------------------------------------------
# help and usage

@pytest.mark.parametrize("args", [["--help"], ["check", "--help"],
                                  ["explain", "--help"], ["help"]])
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
