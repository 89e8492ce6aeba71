"""The enterprise's own tool, as its finance person uses it (issue 21):
credit-consent keygen (with a passphrase), sign --jwk, codes, inspect,
withdraw against a real gateway, and errors that say what is wrong in one
line.  Also: a refused kid says which key sources the gateway consulted."""

import json
import re
import subprocess
import time

import pytest

from conftest import E1, E2, PURPOSE, S, problem
# the module's own two gateways with withdrawal endpoints (fixture `wd`)
from test_withdrawal import wd  # noqa: F401

CONSENT = S.ROOT / "build" / "bin" / "credit-consent"
SHIPPED = S.ROOT / "policies" / "platform-policy.json"
BANKS = S.ROOT / "policies" / "banks.example.json"


def consent(*args, input=None):
    r = subprocess.run([str(CONSENT), *map(str, args)], capture_output=True,
                       text=True, timeout=60, input=input)
    return r.returncode, r.stdout, r.stderr


def claims_of(token):
    rc, out, err = consent("inspect", "--json", token.strip())
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture
def ent(conf_dir):
    """keygen's files for E1, the key encrypted with a passphrase."""
    pw = conf_dir / "pass"
    pw.write_text("correct horse battery staple\n")
    prefix = conf_dir / "ent"
    kid = f"ent-e1-{int(time.time() * 1000)}"
    rc, out, err = consent("keygen", "--alg", "ES256", "--kid", kid,
                           "--uscc", E1, "--out", prefix,
                           "--passphrase-file", pw)
    assert rc == 0, err
    return {"key": conf_dir / "ent.key.pem", "jwk": conf_dir / "ent.jwk",
            "pass": pw, "kid": kid, "dir": conf_dir}


# ------------------------------------------------------------------------
# keygen --passphrase-file, sign --jwk

def test_encrypted_key_needs_its_passphrase(ent):
    text = ent["key"].read_text()
    assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    base = ["sign", "--key", ent["key"], "--jwk", ent["jwk"], "--aud",
            "BANK001", "--purposes", PURPOSE, "--categories", "tax"]
    rc, out, err = consent(*base)
    assert rc == 2 and "is encrypted" in err and "--passphrase-file" in err
    wrong = ent["dir"] / "wrong"
    wrong.write_text("not it\n")
    rc, out, err = consent(*base, "--passphrase-file", wrong)
    assert rc == 2 and "cannot decrypt" in err, err
    rc, out, err = consent(*base, "--passphrase-file", ent["pass"])
    assert rc == 0, err
    rc, out2, err = consent("inspect", "--jwks", ent["jwk"], out.strip())
    assert rc == 0 and "valid (signature and claims)" in out2, out2 + err


def test_sign_takes_alg_kid_and_iss_from_the_jwk(ent):
    rc, tok, err = consent("sign", "--key", ent["key"], "--jwk", ent["jwk"],
                           "--passphrase-file", ent["pass"], "--aud",
                           "BANK001", "--purposes", PURPOSE, "--categories",
                           "tax", "--ttl", "30d")
    assert rc == 0, err
    doc = claims_of(tok)
    assert doc["header"] == {"alg": "ES256", "typ": "consent+jwt",
                             "kid": ent["kid"]}
    assert doc["claims"]["iss"] == doc["claims"]["sub"] == E1
    assert doc["claims"]["exp"] - doc["claims"]["iat"] == 30 * 86400

    # an option that contradicts the JWK is a mistake, said as such
    rc, out, err = consent("sign", "--key", ent["key"], "--jwk", ent["jwk"],
                           "--passphrase-file", ent["pass"], "--kid", "other",
                           "--aud", "BANK001", "--purposes", PURPOSE,
                           "--categories", "tax")
    assert rc == 2 and "--kid other, but" in err, err
    # the JWK of another key
    consent("keygen", "--alg", "ES256", "--kid", "x", "--uscc", E1, "--out",
            ent["dir"] / "other")
    rc, out, err = consent("sign", "--key", ent["key"], "--jwk",
                           ent["dir"] / "other.jwk", "--passphrase-file",
                           ent["pass"], "--aud", "BANK001", "--purposes",
                           PURPOSE, "--categories", "tax")
    assert rc == 2 and "is not the public key of" in err, err


@pytest.mark.parametrize("ttl,seconds", [("90", 90), ("45s", 45),
                                         ("90m", 5400), ("12h", 43200),
                                         ("30d", 2592000)])
def test_ttl_units(ent, ttl, seconds):
    rc, tok, err = consent("sign", "--key", ent["key"], "--jwk", ent["jwk"],
                           "--passphrase-file", ent["pass"], "--aud",
                           "BANK001", "--purposes", PURPOSE, "--categories",
                           "tax", "--ttl", ttl)
    assert rc == 0, err
    c = claims_of(tok)["claims"]
    assert c["exp"] - c["iat"] == seconds


@pytest.mark.parametrize("ttl", ["30x", "d", "-1d", "0", "1.5d", "30 d"])
def test_bad_ttl(ent, ttl):
    rc, out, err = consent("sign", "--key", ent["key"], "--jwk", ent["jwk"],
                           "--passphrase-file", ent["pass"], "--aud",
                           "BANK001", "--purposes", PURPOSE, "--categories",
                           "tax", "--ttl", ttl)
    assert rc == 2 and "bad --ttl" in err and out == ""


# ------------------------------------------------------------------------
# codes, and unknown codes as errors

def test_codes_names_banks_purposes_and_categories():
    rc, out, err = consent("codes", "--policy", SHIPPED, "--banks", BANKS)
    assert rc == 0, err
    assert re.search(r"^  minjiang_rcb\s+福建闽江农村商业银行", out, re.M), out
    assert re.search(r"^  haixia_bank\s+.*\(suspended\)$", out, re.M), out
    assert re.search(r"^  loan_application\s+贷款申请审查  Loan application$",
                     out, re.M), out
    assert re.search(r"^  tax\s+纳税信息  Tax$", out, re.M), out
    rc, out, err = consent("codes", "--policy", SHIPPED, "--json")
    doc = json.loads(out)
    assert "banks" not in doc
    assert {"code": "rnd", "name_zh": "科技研发信息",
            "name": "Research and development"} in doc["categories"]
    # a policy without names: the codes alone
    pol = S.write_json(S.workdir() / "p.json", S.TEST_POLICY)
    rc, out, err = consent("codes", "--policy", pol)
    assert rc == 0 and re.search(r"^  tax\s*$", out, re.M), out
    rc, out, err = consent("codes")
    assert rc == 2 and len(err.splitlines()) == 1 and "--policy" in err


@pytest.mark.parametrize("what,value,listed", [
    ("--purposes", "marketing", "loan_application"),
    ("--categories", "payroll", "纳税信息"),
    ("--aud", "no_such_bank", "minjiang_rcb")])
def test_unknown_codes_are_errors_listing_the_known(ent, what, value,
                                                    listed):
    args = {"--aud": "minjiang_rcb", "--purposes": PURPOSE,
            "--categories": "tax"}
    args[what] = value
    rc, out, err = consent("sign", "--key", ent["key"], "--jwk", ent["jwk"],
                           "--passphrase-file", ent["pass"], "--policy",
                           SHIPPED, "--banks", BANKS,
                           *[x for kv in args.items() for x in kv])
    assert rc == 2 and out == "", (rc, out)
    assert f" {value} is not in " in err and listed in err, err


# ------------------------------------------------------------------------
# inspect

def test_inspect_names_the_bank_takes_one_jwk_and_says_what_it_skips(ent):
    rc, tok, err = consent("sign", "--key", ent["key"], "--jwk", ent["jwk"],
                           "--passphrase-file", ent["pass"], "--aud",
                           "minjiang_rcb,haixia_bank,unknown_bank",
                           "--purposes", PURPOSE, "--categories", "tax")
    assert rc == 0, err
    rc, out, err = consent("inspect", "--jwks", ent["jwk"], "--banks", BANKS,
                           tok.strip())
    assert rc == 0, err
    assert "bank minjiang_rcb: 福建闽江农村商业银行股份有限公司（示例）" in out
    assert "bank unknown_bank: (not in the banks registry)" in out
    assert "not checked: revocation" in out
    rc, out, err = consent("inspect", "--jwks", ent["jwk"], "--banks", BANKS,
                           "--json", tok.strip())
    doc = json.loads(out)
    assert doc["valid"] is True and "revocation" in doc["not_checked"]
    assert doc["banks"]["haixia_bank"].startswith("海峡")


# ------------------------------------------------------------------------
# errors: one line, the reason, where the help is

@pytest.mark.parametrize("args,says", [
    (["sign", "--bogus"], "unknown option --bogus"),
    (["sign", "--key"], "--key needs a value"),
    (["sign", "--alg", "ES256"], "missing --key"),
    (["keygen", "--alg", "ES999", "--kid", "k", "--uscc", E1, "--out", "x"],
     "unknown alg ES999"),
    (["revoke", "--jti", "j"], "--jti needs --iss"),
    (["withdraw", "--endpoint", "https://x"], "missing --key"),
    (["inspect", "a", "b"], "one token only"),
    (["codes", "--policy"], "--policy needs a value"),
])
def test_usage_errors_are_one_line(args, says):
    rc, out, err = consent(*args)
    cmd = args[0]
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1, err
    assert says in err and f"credit-consent {cmd} --help" in err, err


@pytest.mark.parametrize("argv", [
    ["keygen", "--alg", "ES256", "--kid", "k", "--out", "/nonexistent/x",
     "--uscc"],
    ["revoke", "--jti", "j", "--iss"],
    ["withdraw", "--endpoint", "https://127.0.0.1:9/", "--key", "k.key.pem",
     "--jti", "j", "--alg", "ES256", "--kid", "k", "--iss"]])
def test_lower_case_uscc_is_told_upper_case(argv):
    rc, out, err = consent(*argv, E1.lower())
    assert rc == 2, err
    assert "upper case" in err and E1 in err, err


# ------------------------------------------------------------------------
# withdraw, against real gateways

def test_withdraw_takes_the_consent_back(wd, ent):  # noqa: F811
    """keygen, register, sign, a bank reads; withdraw; the bank is
    refused on both gateways."""
    p = wd.consent("key", "add", "--jwk", str(ent["jwk"]))
    assert p.returncode == 0, p.stderr
    rc, tok, err = consent("sign", "--key", ent["key"], "--jwk", ent["jwk"],
                           "--passphrase-file", ent["pass"], "--aud",
                           "BANK001", "--purposes", PURPOSE, "--categories",
                           "tax", "--ttl", "1d")
    assert rc == 0, err
    tok = tok.strip()
    jti = claims_of(tok)["claims"]["jti"]
    deadline = time.monotonic() + 2
    while wd.query(0, E1, tok).status_code != 200:
        assert time.monotonic() < deadline, "the registered key is not used"
        time.sleep(0.1)

    # the JWK beside the key gives alg, kid and iss
    rc, out, err = consent("withdraw", "--endpoint", wd.url(1), "--key",
                           ent["key"], "--passphrase-file", ent["pass"],
                           "--jti", jti, "--cacert",
                           wd.env.pki.server_ca_path)
    assert rc == 0, err
    assert out.startswith(f"withdrawn: consent {jti} of {E1}, by the "
                          "enterprise, at 20"), out
    for i in (0, 1):
        problem(wd.query(i, E1, tok), 403, "consent_revoked")
    assert len(wd.revocations(E1, jti)) == 1

    # again, from the token file, as JSON: harmless, 0
    f = ent["dir"] / "consent.jwt"
    f.write_text(tok + "\n")
    rc, out, err = consent("withdraw", "--endpoint", wd.url(0), "--key",
                           ent["key"], "--passphrase-file", ent["pass"],
                           "--token", f, "--json", "--cacert",
                           wd.env.pki.server_ca_path)
    assert rc == 0, err
    assert json.loads(out)["revoked"] == jti


def test_withdraw_refusals_exit_1_with_the_reason(wd, ent):  # noqa: F811
    # a key nobody registered
    rc, out, err = consent("withdraw", "--endpoint", wd.url(0), "--key",
                           ent["key"], "--passphrase-file", ent["pass"],
                           "--jti", "c-1", "--cacert",
                           wd.env.pki.server_ca_path)
    assert rc == 1, (rc, out, err)
    assert "refused: kid_unknown (401)" in err, err
    assert "neither the key file nor the key registry" in err, err
    # another enterprise's consent token
    tok = S.mint_token(wd.env.key("e2-es256")[0], "ES256", "e2-es256",
                       S.claims(E2, "BANK001"))
    f = ent["dir"] / "e2.jwt"
    f.write_text(tok)
    rc, out, err = consent("withdraw", "--endpoint", wd.url(0), "--key",
                           ent["key"], "--passphrase-file", ent["pass"],
                           "--token", f)
    assert rc == 2 and "withdraws only its own" in err, err


def test_withdraw_without_a_jwk_takes_alg_kid_and_iss(wd, conf_dir):  # noqa: F811
    """A key file not named PREFIX.key.pem, no JWK beside it: the options
    say what the JWK would."""
    kid = f"bare-{int(time.time() * 1000)}"
    rc, out, err = consent("keygen", "--alg", "EdDSA", "--kid", kid,
                           "--uscc", E2, "--out", conf_dir / "bare")
    assert rc == 0, err
    assert wd.consent("key", "add", "--jwk",
                      str(conf_dir / "bare.jwk")).returncode == 0
    key = conf_dir / "bare-private.pem"
    (conf_dir / "bare.key.pem").rename(key)
    base = ["withdraw", "--endpoint", wd.url(0), "--key", key, "--jti",
            "bare-1", "--cacert", wd.env.pki.server_ca_path]
    rc, out, err = consent(*base)
    assert rc == 2 and "missing --alg, --kid, --iss" in err, err
    rc, out, err = consent(*base, "--alg", "EdDSA", "--kid", kid, "--iss",
                           E2)
    assert rc == 0 and f"consent bare-1 of {E2}" in out, (out, err)


def test_withdraw_connection_errors_exit_2(wd, ent):  # noqa: F811
    base = ["--key", ent["key"], "--passphrase-file", ent["pass"], "--jti",
            "c-1"]
    rc, out, err = consent("withdraw", "--endpoint",
                           f"https://127.0.0.1:{S.free_port()}/w", *base,
                           "--timeout", "5")
    assert rc == 2 and "127.0.0.1" in err, err
    # the server certificate is checked: without --cacert, not trusted
    rc, out, err = consent("withdraw", "--endpoint", wd.url(0), *base)
    assert rc == 2 and "certificate" in err.lower(), err
    rc, out, err = consent("withdraw", "--endpoint",
                           wd.url(0).replace("https", "http"), *base)
    assert rc == 2 and "https://" in err, err


# ------------------------------------------------------------------------
# which key source a refusal consulted

def test_a_file_only_gateway_says_it_does_not_read_the_registry(env):
    tok = S.mint_token(S.generate_key("ES256"), "ES256", "nobody-kid",
                       S.claims(E1, "BANK001"))
    doc = problem(env.get(token=tok), 401, "kid_unknown")
    assert "not in the key file" in doc["detail"]
    assert "does not read the key registry" in doc["detail"]
