"""Registry records that cannot be used say why (issue 19, "Operators'
signals" and fuzz finding 8): the gateway's log and credit-consent name
jansson's reason and the member at fault, where both used to say "record
is not a JSON object"; times are bounded where the record is parsed, and
the tool writes no record a gateway would refuse."""

import json
import os
import subprocess

import pytest

from conftest import E1, S, problem
from test_key_registry import CONSENT, Registry


@pytest.fixture(scope="module")
def reg(env):
    r = Registry(env, n=1)
    yield r
    problems = [p for g in r.gws for p in g.log_problems()]
    r.stop()
    assert not problems, problems


def record_text(kid, jwk, **members):
    rec = {"kid": kid, "uscc": E1, "state": "active", "not_before": 0,
           "not_after": 0, "version": 1, "jwk": jwk}
    rec.update(members)
    return json.dumps(rec, separators=(",", ":"))


# (what replaces '"version":1' in a good record, what the refusal says)
UNREADABLE = [
    ('"version":100000000000000000000000000000',
     'too big integer (at byte {at}: "version":100000000000000000000000000000'
     ')'),
    ('"version":1e400', "real number overflow near '1e400'"),
    ('"version":1,"state":"revoked"', "duplicate object key near '\"state\"'"),
    ('"version":1,"x":"a\\u0000b"',
     "\\u0000 is not allowed without JSON_ALLOW_NUL near '\"a\\u0000b\"'"),
]

# records jansson reads, whose member is out of bounds
OUT_OF_BOUNDS = [
    ({"not_after": 9223372036854775807},
     "$.not_after: must be Unix seconds from 0 to 253402300799, not"
     " 9223372036854775807"),
    ({"not_before": 253402300800},
     "$.not_before: must be Unix seconds from 0 to 253402300799"),
    ({"not_after": 1e30},
     "$.not_after: must be Unix seconds from 0 to 253402300799, not a real"),
    ({"version": 9223372036854775807},
     "$.version: must be an integer from 1 to 9007199254740991"),
]


def refused_saying(reg, kid, priv, says):
    """The gateway refuses kid's token (401 kid_unknown) and logs says; the
    tool's `key show` says it too."""
    gw = reg.gws[0]
    mark = gw.log_size()
    tok = S.mint_token(priv, "ES256", kid, S.claims(E1, "BANK001"))
    doc = problem(reg.request(gw, tok), 401, "kid_unknown")
    assert "malformed" in doc["detail"]
    log = gw.read_error_log(mark)
    assert f"refused: {kid}: " in log and says in log, log
    p = reg.consent("key", "show", kid, check=False)
    assert p.returncode == 1, p
    assert f"malformed record: {kid}: " in p.stderr, p.stderr
    assert says in p.stderr, p.stderr


@pytest.mark.parametrize("i", range(len(UNREADABLE)))
def test_unreadable_record_says_what_and_where(reg, i):
    kid = f"unread-{i}"
    priv = S.generate_key("ES256")
    good = record_text(kid, S.public_jwk(priv, "ES256", kid, E1))
    bad_member, says = UNREADABLE[i]
    text = good.replace('"version":1', bad_member)
    says = says.format(at=text.index(bad_member) + len(bad_member))
    reg.r().set(f"credit:key:{{{kid}}}", text)
    refused_saying(reg, kid, priv, says)


@pytest.mark.parametrize("i", range(len(OUT_OF_BOUNDS)))
def test_times_and_version_bounded(reg, i):
    kid = f"bound-{i}"
    priv = S.generate_key("ES256")
    members, says = OUT_OF_BOUNDS[i]
    text = record_text(kid, S.public_jwk(priv, "ES256", kid, E1), **members)
    reg.r().set(f"credit:key:{{{kid}}}", text)
    refused_saying(reg, kid, priv, says)
    # `key list` names it and goes on (it used to multiply INT64_MAX by
    # 1000 to show it)
    p = reg.consent("key", "list", check=False)
    assert p.returncode == 0, p.stderr
    assert f"malformed record: {kid}: {says}" in p.stderr, p.stderr
    assert kid not in p.stdout


def test_tool_writes_no_record_a_gateway_refuses(reg):
    """In a zone west of UTC, 9999-12-31T23:59 is a time the parser of
    times reads (year 9999 there) but past CA_KEYREG_TIME_MAX; and a
    --grace that would overflow."""
    kid = "west-end"
    priv, path = reg.new_key(kid, add=False)
    p = subprocess.run([str(CONSENT), "key", "add", "--jwk", str(path),
                        "--not-after", "9999-12-31T23:59",
                        "--redis", reg.redis.address],
                       capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, TZ="America/New_York"))
    assert p.returncode == 2, p
    assert "not written, gateways would refuse the record" in p.stderr
    assert "$.not_after: must be Unix seconds from 0 to 253402300799" \
        in p.stderr, p.stderr
    assert reg.r().get(f"credit:key:{{{kid}}}") is None
    reg.consent("key", "add", "--jwk", str(path), "--not-after",
                "9999-12-31T23:59:59Z")
    p = reg.consent("key", "rotate", "--old", kid, "--jwk", str(path),
                    "--grace", "9223372036854775807", check=False)
    assert p.returncode == 2 and "bad --grace" in p.stderr, p.stderr
    assert reg.get(reg.gws[0], priv, kid).status_code == 200
