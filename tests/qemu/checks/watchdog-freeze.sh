# ---- tests/qemu/checks/watchdog-freeze.sh: last, for a board with a watchdog ----
# The product's systemd drives the board's hardware watchdog (systemd's
# RuntimeWatchdogSec from zshield-watchdog.conf; the test golden's is 10 s).
# Then systemd (PID 1) hangs for good: a SIGSEGV makes its crash handler
# freeze it, so nothing pings the watchdog any more and the board must reset.
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
kill -SEGV 1
sleep infinity
# ---- end of watchdog-freeze.sh ----
