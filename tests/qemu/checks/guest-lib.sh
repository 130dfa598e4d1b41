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
# ---- end of guest-lib.sh ----
