#!/usr/bin/python3
"""Uncached consent-token verification rate per algorithm, against OpenSSL.

Builds bench/verify_speed.c against the engine library (<build>/
libcreditauth.a), runs it (for each of ES256, RS256, PS256, EdDSA, SM2:
ca_token_verify() on one realistic consent token in a loop, every call the
whole uncached work: base64url, JSON, registry lookup, signature, claims),
then runs `openssl speed -seconds S` for the matching primitive and prints

    alg     engine verify/s   openssl verify/s   ratio

Both rates are per second of user CPU time (what `openssl speed` divides
by unless -elapsed), so other load on the machine matters less.

ratio = engine / openssl: the share of the bare signature verification rate
that survives the token's parsing and checks.  Both are measured in the
same run, on the same machine, back to back per alg (ENGINEERING §8:
ratios, not lone figures); --repeat N keeps the best of N of each.

    bench/verify_speed.py [--build DIR] [--out DIR] [--seconds S]
                          [--repeat N] [--json] [ALG ...]

Exit status: 0, 1 if the engine refuses its own token or a figure is
missing, 2 on a build error.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALGS = ["ES256", "RS256", "PS256", "EdDSA", "SM2"]

# alg -> (openssl speed argument, regexp of its result line)
OPENSSL = {
    "ES256": ("ecdsap256", r"ecdsa \(nistp256\)"),
    "RS256": ("rsa2048", r"^rsa\s+2048 bits"),
    "PS256": ("rsa2048", r"^rsa\s+2048 bits"),
    "EdDSA": ("ed25519", r"EdDSA \(Ed25519\)"),
    "SM2": ("sm2", r"SM2 \(CurveSM2\)"),
}


def build(build_dir, out_dir=None):
    lib = build_dir / "libcreditauth.a"
    if not lib.exists():
        sys.exit(f"verify_speed: {lib} missing (make build first)")
    out = Path(out_dir or build_dir / "bench") / "verify_speed"
    out.parent.mkdir(parents=True, exist_ok=True)
    src = ROOT / "bench" / "verify_speed.c"
    if (out.exists() and out.stat().st_mtime > src.stat().st_mtime
            and out.stat().st_mtime > lib.stat().st_mtime):
        return out
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-Wall", "-Wextra", f"-I{ROOT / 'lib'}", str(src),
           str(lib), "-ljwt", "-lhiredis", "-ljansson", "-lssl", "-lcrypto",
           "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(" ".join(cmd) + "\n" + r.stdout + r.stderr)
        sys.exit(2)
    return out


def engine_rates(binary, algs, seconds):
    r = subprocess.run([str(binary), "--seconds", str(seconds), *algs],
                       capture_output=True, text=True)
    sys.stderr.write(r.stderr)
    rates = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            rates[parts[0]] = (float(parts[1]), int(parts[3]))
    return rates, r.returncode


def openssl_rates(algs, seconds):
    prims = []
    for a in algs:
        p = OPENSSL[a][0]
        if p not in prims:
            prims.append(p)
    r = subprocess.run(["openssl", "speed", "-seconds", str(int(seconds)),
                        *prims], capture_output=True, text=True)
    rates = {}
    for a in algs:
        pat = re.compile(OPENSSL[a][1])
        for line in r.stdout.splitlines():
            if pat.search(line.strip()):
                # ... sign verify sign/s verify/s: the last column
                nums = re.findall(r"\d+(?:\.\d+)?", line)
                if nums:
                    rates[a] = float(nums[-1])
                break
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.environ.get("BUILD",
                                                      str(ROOT / "build")),
                    help="build directory holding libcreditauth.a "
                         "(default: build/)")
    ap.add_argument("--out", default=None,
                    help="directory for the verify_speed binary "
                         "(default: <build>/bench)")
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="seconds per measurement (default 1)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per alg, best kept (default 1)")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object instead of the table")
    ap.add_argument("algs", nargs="*", default=ALGS, metavar="ALG",
                    help="algorithms (default: all five)")
    args = ap.parse_args()
    for a in args.algs:
        if a not in ALGS:
            ap.error(f"unknown alg {a}; one of {' '.join(ALGS)}")

    binary = build(Path(args.build).resolve(), args.out)

    # Engine and OpenSSL back to back for each alg, best of --repeat: on a
    # shared machine the best run is the least disturbed one.
    eng, ossl, rc = {}, {}, 0
    for a in args.algs:
        for _ in range(max(1, args.repeat)):
            e, erc = engine_rates(binary, [a], args.seconds)
            rc = rc or erc
            if a in e and e[a][0] > eng.get(a, (0, 0))[0]:
                eng[a] = e[a]
            o = openssl_rates([a], max(1, args.seconds))
            if a in o and o[a] > ossl.get(a, 0):
                ossl[a] = o[a]

    rows = []
    for a in args.algs:
        e = eng.get(a, (None, None))[0]
        o = ossl.get(a)
        rows.append(dict(alg=a, engine=e, openssl=o,
                         openssl_primitive=OPENSSL[a][0],
                         token_bytes=eng.get(a, (None, None))[1],
                         ratio=(e / o) if e and o else None))

    if args.json:
        print(json.dumps({"seconds": args.seconds, "repeat": args.repeat,
                          "results": rows},
                         indent=1))
    else:
        print(f"{'alg':<7} {'engine verify/s':>16} {'openssl verify/s':>17}"
              f" {'ratio':>6}   openssl primitive")
        for r in rows:
            e = f"{r['engine']:.0f}" if r["engine"] else "-"
            o = f"{r['openssl']:.0f}" if r["openssl"] else "-"
            ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
            print(f"{r['alg']:<7} {e:>16} {o:>17} {ratio:>6}   "
                  f"{r['openssl_primitive']}")
    missing = [r["alg"] for r in rows if r["ratio"] is None]
    if missing:
        print(f"verify_speed: no figure for {' '.join(missing)}",
              file=sys.stderr)
    return 1 if rc != 0 or missing else 0


if __name__ == "__main__":
    sys.exit(main())
