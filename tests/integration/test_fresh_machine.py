"""What a really fresh machine does differently (`make fresh-test`, issue
19): root clones the repository into its home, /root, which Debian makes
0700, and the nginx workers run as nobody.  `make run` (scripts/demo.py)
then served the demo platform's records from the clone and kept its
working directory, build/run, in it: out of the workers' reach, every
allowed query was 404 record_not_found."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import S

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root's nginx workers change user (to"
    " nobody); run as another user, they can read what the tests can")


@pytest.fixture
def closed_clone(env):
    """The parts of the tree the demo reads and the tools, under a 0700
    directory."""
    home = Path(tempfile.mkdtemp(prefix="closed-home-", dir=env.st.dir))
    os.chmod(home, 0o700)
    repo = home / "credit-auth"
    for part in ("scripts", "policies", "demo"):
        shutil.copytree(S.ROOT / part, repo / part,
                        ignore=shutil.ignore_patterns("__pycache__"))
    # the tools, as `make run` builds them (the demo checks its policy
    # with credit-policy)
    shutil.copytree(S.ROOT / "build" / "bin", repo / "build" / "bin")
    yield repo
    run = repo / "build" / "run"
    if run.is_symlink():
        shutil.rmtree(run.resolve(), ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


def demo_check(repo, *args):
    # the clone is the root (not CREDIT_AUTH_ROOT, the checkout's)
    env = {k: v for k, v in os.environ.items() if k != "CREDIT_AUTH_ROOT"}
    return subprocess.run(
        [sys.executable, str(repo / "scripts" / "demo.py"), "--check",
         "--module", str(S.module_path()), *args],
        capture_output=True, text=True, timeout=120, env=env)


def test_demo_from_a_clone_in_a_closed_home(closed_clone):
    # its default working directory, build/run in the clone: moved to /tmp
    r = demo_check(closed_clone)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "allowed request: 200" in r.stdout, r.stdout[-3000:]
    assert "is closed to the workers' user" in r.stdout
    run = closed_clone / "build" / "run"
    assert run.is_symlink() and str(run.resolve()).startswith(
        tempfile.gettempdir())
    # a run again replaces it
    r = demo_check(closed_clone)
    assert r.returncode == 0 and "allowed request: 200" in r.stdout, \
        r.stdout[-3000:]


def test_demo_records_come_from_a_copy(closed_clone, env):
    # an open working directory: the records still come from the clone
    d = Path(tempfile.mkdtemp(prefix="demo-open-", dir=env.st.dir))
    r = demo_check(closed_clone, "--dir", str(d))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "allowed request: 200" in r.stdout, r.stdout[-3000:]
    assert "is closed" not in r.stdout
    assert (d / "platform" / "api").is_dir()
