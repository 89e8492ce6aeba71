#!/bin/bash
# Runs libFuzzer harnesses one after the other (make fuzz, make fuzz-smoke).
#   run.sh BUILD SECONDS corpus|smoke NAME...
# corpus: new inputs accumulate in BUILD/corpus/NAME across runs.
# smoke:  a fixed seed, a scratch directory; the seeds and the committed
#         regression inputs (tests/fuzz/regress/NAME) are all run first.
# FUZZ_ARGS adds libFuzzer options.  Prints executions and coverage per
# harness; exits 1 on the first finding, with the log's tail.
set -u
build=$1 seconds=$2 mode=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/artifacts" "$build/logs"
for h in "$@"; do
    if [ "$mode" = smoke ]; then
        work=$build/smoke/$h
        rm -rf "$work"
        extra=(-seed=1)
    else
        work=$build/corpus/$h
        extra=()
    fi
    mkdir -p "$work"
    dirs=("$work" "$build/seeds/$h")
    [ -d "$here/regress/$h" ] && dirs+=("$here/regress/$h")
    log=$build/logs/$h.$mode.log
    "$build/bin/fuzz_$h" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$h-" "${extra[@]}" \
        ${FUZZ_ARGS:-} "${dirs[@]}" >"$log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        tail -40 "$log"
        echo "fuzz_$h: FAILED (exit $rc; log $log, input in $build/artifacts)"
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    printf 'fuzz_%-16s %9s runs in %ss  cov %s  ft %s  corpus %s\n' \
        "$h" "$runs" "$seconds" "${cov:-?}" "${ft:-?}" "${corp:-?}"
done
