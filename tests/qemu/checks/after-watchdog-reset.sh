# ---- tests/qemu/checks/after-watchdog-reset.sh: first, for a board with a watchdog ----
# The boot after the one that froze systemd under the board's watchdog
# (watchdog-freeze.sh, last in the same script) runs only these checks.
# shellcheck shell=bash
if [ -e /var/lib/ztest/froze-systemd ]; then
    echo "ZTEST watchdog-bootstatus=$(cat /sys/class/watchdog/watchdog0/bootstatus 2>&1)"
    # 32: WDIOF_CARDRESET, the board's watchdog reset it (its SECOND_TO_STS)
    check kernel-names-the-watchdog-reset expect_eq "watchdog0's bootstatus" "$(cat /sys/class/watchdog/watchdog0/bootstatus 2>&1)" 32
    check watchdog-reset-in-event-log bash -c 'zshield status | grep "^event: .* boot after-watchdog-reset: .*wdat_wdt (watchdog0)"'
    check watchdog-armed-again expect_eq "watchdog0's state" "$(cat /sys/class/watchdog/watchdog0/state 2>&1)" active
    check boot-after-the-reset-marked-good zshield status
    exit 0
fi
# ---- end of after-watchdog-reset.sh ----
