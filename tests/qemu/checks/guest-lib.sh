# ---- tests/qemu/checks/guest-lib.sh: runs in the guest, before the checks ----
# check NAME COMMAND...: prints "ZTEST-CHECK ok NAME" or "ZTEST-CHECK FAIL NAME: why".
# The host counts the lines that start with "check " (indented or not) and
# expects as many oks.
# shellcheck disable=SC2034  # used by the check scripts that follow
FIXTURES=/usr/local/share/zshield-fixtures
# shellcheck disable=SC2034

CAP_FIXTURE=/usr/local/bin/zshield-cap-fixture

check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        echo "ZTEST-CHECK ok $name"
    else
        echo "ZTEST-CHECK FAIL $name: $(echo "$out" | tr '\n' ' ' | cut -c1-300)"
    fi
}

# expect_eq WHAT ACTUAL EXPECTED: a check body that says what it saw.
expect_eq() {
    [ "$2" = "$3" ] && return 0
    echo "$1 is '$2', expected '$3'"
    return 1
}
# overwrite FILE: seconds to overwrite the 256 MiB of FILE in place, direct
# (what first writes to the root cost).
overwrite() {
    local t0 ms
    t0=$(date +%s%N)
    dd if=/dev/zero of="$1" bs=1M count=256 oflag=direct conv=notrunc,fsync status=none
    ms=$((($(date +%s%N) - t0) / 1000000))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}
# print_rollback_steps: what each step of the last rollback took, from its
# report on the restored root (ZTEST rollback-steps-s NAME=SECONDS ...).
print_rollback_steps() {
    local report f
    # Named by their start time: the last in order is the newest.
    for f in /var/log/zshield/*latest.json; do report=$f; done
    echo "ZTEST rollback-steps-s $(awk -F': ' '/"number":/ { n = 1 } n && /"name":/ && name == "" { name = $2 }
        n && /"seconds":/ { gsub(/[",]/, "", name); s = $2; sub(/,$/, "", s); printf "%s=%.1f ", name, s; n = 0; name = "" }' "$report")"
}
# ---- end of guest-lib.sh ----
