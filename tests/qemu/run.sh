#!/bin/bash
# QEMU boot scenarios of zshield: builds the golden (qemu/build-golden.sh),
# then runs tests/qemu/scenarios/NN-NAME.sh one after the other (they share
# the 2 cores), each in its own subshell and directory build/qemu/NAME/.
#
# usage: tests/qemu/run.sh [--no-build] [SCENARIO...]     (default: all)
#   --no-build   use the golden as it is (quicker when iterating on a test)
# env: ZSHIELD_GOLDEN (golden dir), ZT_TIMEOUT (seconds per boot, default 900)
#
# Ends with "N passed, M failed"; exits non-zero when a scenario failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
golden=${ZSHIELD_GOLDEN:-$repo/build/golden}
work=$repo/build/qemu

build=yes
if [ "${1:-}" = --no-build ]; then
    build=no
    shift
fi

# Scenario files are NN-NAME.sh: NN orders them, NAME selects them.
declare -A files=()
all=()
for f in "$here"/scenarios/[0-9]*-*.sh; do
    name=$(basename "$f" .sh)
    name=${name#*-}
    files[$name]=$f
    all+=("$name")
done
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${all[@]}")
for name in "${selected[@]}"; do
    [ -n "${files[$name]:-}" ] || { echo "run.sh: no scenario '$name' (have: ${all[*]})" >&2; exit 2; }
done

if [ "$build" = yes ]; then
    t0=$SECONDS
    "$repo/qemu/build-golden.sh" "$golden"
    echo "golden build: $((SECONDS - t0)) s"
fi
[ -f "$golden/golden.env" ] || { echo "run.sh: no golden in $golden" >&2; exit 2; }
golden_sha=$(grep '^GOLDEN_CF_SHA256=' "$golden/golden.env" | cut -d= -f2)

run_scenario() { # in a subshell: any failure ends this scenario only
    set -eEuo pipefail
    ZT_NAME=$1 ZT_DIR=$work/$1 ZT_GOLDEN=$golden ZT_CHECKS=$here/checks ZT_REPO=$repo
    # shellcheck source=tests/qemu/lib.sh
    source "$here/lib.sh"
    trap 'zt_fail "command failed (status $?): $BASH_COMMAND"' ERR
    rm -rf "$ZT_DIR"
    mkdir -p "$ZT_DIR"
    ZT_CF=$ZT_DIR/cf.img
    cp --sparse=always "$golden/cf.img" "$ZT_CF"
    # shellcheck source=/dev/null
    source "${files[$1]}"
    # Whatever a scenario did, the golden CF must be as it was built.
    zt_assert_same_sha "$ZT_CF" "$golden_sha" "CF (golden)"
}

passed=0 failed=0 summary=()
for name in "${selected[@]}"; do
    echo "==== $name"
    t0=$SECONDS
    # Not in an `if`: bash would ignore set -e inside the subshell.
    set +e
    (run_scenario "$name")
    rc=$?
    set -e
    if [ "$rc" = 0 ]; then
        result=PASS
        passed=$((passed + 1))
    else
        result=FAIL
        failed=$((failed + 1))
    fi
    summary+=("$(printf '%s %-14s %4d s' "$result" "$name" $((SECONDS - t0)))")
    echo "==== $name: $result in $((SECONDS - t0)) s"
done

echo
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
