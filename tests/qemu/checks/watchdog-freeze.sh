# ---- tests/qemu/checks/watchdog-freeze.sh: last, for a board with a watchdog ----
# The product's systemd drives the board's hardware watchdog (systemd's
# RuntimeWatchdogSec from zshield-watchdog.conf; the test golden's is 20 s).
# Then systemd (PID 1) hangs for good: the cgroup freezer stops its scope, so
# it holds the watchdog open and pings it no more, and the board must reset.
# (A crash, SIGSEGV, is another case: systemd's crash handler closes every
# file and the kernel pings the watchdog once on that close.)
# shellcheck shell=bash
wd=/sys/class/watchdog/watchdog0
check watchdog-is-the-boards expect_eq "watchdog0's driver" "$(cat $wd/identity 2>&1)" wdat_wdt
check watchdog-armed-by-systemd expect_eq "watchdog0's state" "$(cat $wd/state 2>&1)" active
check watchdog-timeout-is-systemds expect_eq "watchdog0's timeout" "$(cat $wd/timeout 2>&1)s" \
    "$(systemctl show -P RuntimeWatchdogUSec)"
mkdir -p /var/lib/ztest
date >/var/lib/ztest/froze-systemd
sync
echo "ZTEST freezing systemd (PID 1) at uptime $(cut -d' ' -f1 /proc/uptime) s"
echo 1 >/sys/fs/cgroup/init.scope/cgroup.freeze
systemd_frozen() { # the freezer stops the scope's tasks in the background
    local i
    for ((i = 0; i < 20; i++)); do
        grep -qx "frozen 1" /sys/fs/cgroup/init.scope/cgroup.events && return 0
        sleep 0.5
    done
    cat /sys/fs/cgroup/init.scope/cgroup.events
    return 1
}
check systemd-frozen systemd_frozen
sleep infinity
# ---- end of watchdog-freeze.sh ----
