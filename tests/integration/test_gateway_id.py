"""credit_auth_gateway_id is written as `gw` into every audit entry and
names the gateway's chains (<gw>/<pid>/<start>/<lane>): a newline or a tab
would reach the tools' text and CSV, a '/' would make chain ids ambiguous
between writers.  nginx -t refuses anything outside [A-Za-z0-9._-]{1,64}
(issue 19)."""

import pytest

MESSAGE = ("a gateway id is 1 to 64 characters of [A-Za-z0-9._-] (it is "
           "written into every audit entry and names the gateway's chains, "
           "<id>/<pid>/<start>/<lane>)")


@pytest.mark.parametrize("conf,shown", [
    ('"gw\\n1"', "gw\\x0a1"),             # a newline
    ('"gw\\t1"', "gw\\x091"),             # a tab
    ("gw/1", "gw/1"),
    ("gw/1/2", "gw/1/2"),
    ('"gw 1"', "gw\\x201"),
    ('""', ""),
    ("gw:1", "gw:1"),
    ("gw,1", "gw,1"),
    ("网关-1", "\\xe7\\xbd\\x91\\xe5\\x85\\xb3-1"),
    ("g" * 65, "g" * 64 + "..."),
])
def test_gateway_id_outside_the_safe_set_must_not_start(make_gateway, conf,
                                                        shown):
    gw = make_gateway(gateway_id=conf)
    rc, out = gw.test()
    assert rc != 0, out
    assert f'credit_auth_gateway_id "{shown}": {MESSAGE}' in out, out


@pytest.mark.parametrize("gid", ["gw-1", "gw_2.prod", "G" * 64, "0"])
def test_gateway_id_in_the_safe_set_is_written(env, make_gateway, gid):
    gw = make_gateway(gateway_id=gid)
    rc, out = gw.test()
    assert rc == 0, out
    gw.start()
    saved = env.gw
    env.gw = gw
    try:
        r = env.get()
    finally:
        env.gw = saved
    assert r.status_code == 200, r.text
    e = env.decision(r)
    assert e["gw"] == gid
    assert e["chain"].startswith(gid + "/")


def test_gateway_id_is_not_repeated(make_gateway):
    gw = make_gateway(http_directives={"credit_auth_gateway_id": None},
                      http_extra="    credit_auth_gateway_id gw-a;\n"
                                 "    credit_auth_gateway_id gw-b;")
    rc, out = gw.test()
    assert rc != 0, out
    assert '"credit_auth_gateway_id" directive is duplicate' in out, out
