#!/usr/bin/python3
"""`make fresh-test`: the README's two commands on a really fresh machine.

A Debian 12 container (podman, FROM the local debian:12 that
../shared/tools/containers setup makes, with the apt sources of Debian's
official image: bookworm, bookworm-updates, bookworm-security) in which
nothing is installed but make and git.  It runs with --network host (apt
reaches the mirror; the tests bind loopback ports) as root without
CAP_SYS_PTRACE, as a CI container does.  The current HEAD of this checkout
is cloned into it from a git bundle -- uncommitted changes are not part of
it, and a warning says so -- and there

    make test                        # deps install themselves, build,
                                     # unit, fuzz-smoke, integration
    make run, in its --check mode    # the demo's two printed requests

run one after the other.  About ten minutes: not part of `make test`; run
it before an issue is called resolved -- a CI machine that already has the
packages hides exactly what this finds.  The output is shown and kept in
build/fresh-test.log; exit status 0 when both passed.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "localhost/credit-auth-fresh:base"
LOG = ROOT / "build" / "fresh-test.log"

# What Debian's official debian:12 image has (debootstrap writes only
# "deb http://deb.debian.org/debian bookworm main").
SOURCES = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

CONTAINERFILE = """\
FROM debian:12
COPY debian.sources /etc/apt/sources.list.d/debian.sources
RUN rm -f /etc/apt/sources.list \\
 && apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \\
        --no-install-recommends make git \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
"""

# Inside the container: the README's commands from a clean clone.
SCRIPT = """\
set -u
git -c advice.detachedHead=false clone -q /fresh/repo.bundle /root/credit-auth
cd /root/credit-auth
echo "fresh-test: $(git log -1 --format='%h %s')"
echo "fresh-test: capabilities $(grep CapEff /proc/self/status)"
start=$(date +%s)
make test
test_rc=$?
echo "fresh-test: make test exit $test_rc after $(( $(date +%s) - start ))s"
/usr/bin/python3 scripts/demo.py --check
run_rc=$?
echo "fresh-test: make run --check exit $run_rc"
[ $test_rc -eq 0 ] && [ $run_rc -eq 0 ]
"""


def die(msg):
    print(f"fresh-test: {msg}", file=sys.stderr)
    sys.exit(2)


def podman(*args, **kw):
    return subprocess.run(["podman", *args], **kw)


def main():
    try:
        if podman("image", "exists", "debian:12").returncode != 0:
            die("no debian:12 image: run ../shared/tools/containers setup"
                " once")
    except FileNotFoundError:
        die("podman is not installed: run ../shared/tools/containers setup"
            " once")
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                            "--untracked-files=no"],
                           capture_output=True, text=True).stdout
    if dirty:
        print("fresh-test: warning: uncommitted changes are not tested"
              " (the clone is of HEAD)", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="fresh-test-") as tmp:
        tmp = Path(tmp)
        (tmp / "debian.sources").write_text(SOURCES)
        (tmp / "Containerfile").write_text(CONTAINERFILE)
        if podman("build", "-q", "--network", "host", "-t", BASE,
                  "-f", str(tmp / "Containerfile"), str(tmp),
                  stdout=subprocess.DEVNULL).returncode != 0:
            die("building the base image failed")
        bundle = tmp / "repo.bundle"
        subprocess.run(["git", "-C", str(ROOT), "bundle", "create", "-q",
                        str(bundle), "HEAD"], check=True)
        os.chmod(tmp, 0o755)

        LOG.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with open(LOG, "w") as log:
            p = subprocess.Popen(
                ["podman", "run", "--rm", "--network", "host",
                 "--cap-drop", "SYS_PTRACE",
                 "-v", f"{tmp}:/fresh:ro", BASE, "bash", "-c", SCRIPT],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in p.stdout:
                sys.stdout.write(line)
                log.write(line)
            rc = p.wait()
        minutes = (time.monotonic() - t0) / 60
        print(f"fresh-test: {'passed' if rc == 0 else 'FAILED'} in"
              f" {minutes:.1f} min (log {LOG})")
        return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
