"""Every policy validation error of the engine's unit tests is also a
configuration nginx refuses to start with: `nginx -t` fails and names the
file, the JSON path and the reason (contract §6, issue 4).

The invalid policies are the table in tests/unit/test_policy.c, written
out by that test binary's --dump mode, so the two lists cannot drift."""

import subprocess

import stack as S


def test_every_invalid_policy_fails_nginx_t(env, make_gateway):
    tool = S.ROOT / "build" / "tests" / "test_policy"
    assert tool.is_file(), "make unit builds build/tests/test_policy"
    d = S.subdir(env.st.dir, "bad-policies")
    subprocess.run([str(tool), "--dump", str(d)], check=True)

    cases = sorted(d.glob("bad-*.json"))
    assert len(cases) >= 80, len(cases)

    failures = []
    for policy in cases:
        expect = policy.with_suffix(".expect").read_text()
        policy.chmod(0o644)
        rc, out = make_gateway(policy=policy).test()
        if rc == 0:
            failures.append(f"{policy.name}: nginx -t accepted it")
        elif str(policy) not in out or expect not in out:
            failures.append(f"{policy.name}: wanted {str(policy)!r} and "
                            f"{expect!r} in: {out.strip()[-300:]}")
    assert not failures, "\n".join(failures[:20])
