#!/bin/bash
# QEMU boot scenarios of zshield: builds the golden (qemu/build-golden.sh),
# then runs tests/qemu/scenarios/NN-NAME.sh, ZT_JOBS at a time in NN order,
# each in its own subshell and directory build/qemu/NAME/; a scenario's output
# is printed when it has ended. By default one scenario per core, each guest
# with one vCPU. A TCG guest with two vCPUs kept 1.2 of the 2 cores busy on
# average (top, in default-blank), two such guests side by side took 2-3
# times as long each (their vCPUs wait for each other's), and one vCPU
# each keeps each core busy on its own.
#
# usage: tests/qemu/run.sh [--no-build] [SCENARIO...]     (default: all)
#   --no-build   use the golden as it is (quicker when iterating on a test)
# env: ZSHIELD_GOLDEN (golden dir), ZT_TIMEOUT (seconds per boot, default 900),
#      ZT_JOBS (scenarios at a time, default: the cores, nproc),
#      ZT_CPUS (each guest's vCPUs, default: the cores over ZT_JOBS, at least 1),
#      ZT_STALL (seconds without console output that make a stall before the
#      initramfs, qemu/vm.sh --stall; default vm.sh's), ZT_SEED (the moments of
#      the power cuts, lib.sh's zt_seed; default: drawn, and printed)
#
# Ends with "N passed, M failed", after a line with the number of emulator
# stalls retried (lib.sh's zt_vm); exits non-zero when a scenario failed.
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

cores=$(nproc)
jobs=${ZT_JOBS:-$cores}
export ZT_CPUS=${ZT_CPUS:-$((cores / jobs > 1 ? cores / jobs : 1))}
mkdir -p "$work"
# One line "SCENARIO RUN" per boot that lib.sh's zt_vm booted again after an
# emulator stall before the initramfs.
retries=$work/stall-retries
: >"$retries"
# stalls [NAME]: how many boots of scenario NAME (of all) were booted again.
stalls() { awk -v name="${1:-}" 'name == "" || $1 == name { n++ } END { print n + 0 }' "$retries"; }
t_all=$SECONDS
declare -A pid_of=() started=() result=()
# finish NAME RC: prints what NAME printed, and its result.
finish() {
    local name=$1 rc=$2 seconds=$((SECONDS - started[$1]))
    result[$name]=$([ "$rc" = 0 ] && echo PASS || echo FAIL)
    result[$name]=$(printf '%s %-17s %4d s' "${result[$name]}" "$name" "$seconds")
    [ "$(stalls "$name")" = 0 ] || result[$name]+=", $(stalls "$name") emulator stall(s) retried"
    echo "==== $name"
    cat "$work/$name.out"
    echo "==== $name: ${result[$name]%% *} in $seconds s"
}
for name in "${selected[@]}"; do
    while [ "${#pid_of[@]}" -ge "$jobs" ]; do
        wait -n || :
        for running in "${!pid_of[@]}"; do
            if ! kill -0 "${pid_of[$running]}" 2>/dev/null; then
                rc=0
                wait "${pid_of[$running]}" || rc=$?
                unset "pid_of[$running]"
                finish "$running" "$rc"
            fi
        done
    done
    echo "---- $name starts"
    started[$name]=$SECONDS
    (run_scenario "$name") >"$work/$name.out" 2>&1 &
    pid_of[$name]=$!
done
for running in "${!pid_of[@]}"; do
    rc=0
    wait "${pid_of[$running]}" || rc=$?
    finish "$running" "$rc"
done

echo
passed=0 failed=0
for name in "${selected[@]}"; do
    echo "${result[$name]}"
    case "${result[$name]}" in
        PASS*) passed=$((passed + 1)) ;;
        *) failed=$((failed + 1)) ;;
    esac
done
echo "$(stalls) emulator stalls before the initramfs retried"
echo "$passed passed, $failed failed, $((SECONDS - t_all)) s for the scenarios ($jobs at a time, $ZT_CPUS vCPU(s) each)"
[ "$failed" -eq 0 ]
