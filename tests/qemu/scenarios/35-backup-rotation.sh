# backup-rotation: restore points of the thin layout. Eight backups, seven
# daily and one named: rotation keeps the newest seven daily ones, the named
# one and the factory's; `zshield status --json` and the disk's GRUB submenu
# list them; --dry-run prints the plan and changes nothing; --remove removes
# one. First writes to the root cost the same with restore points as without
# (figures printed, side by side: no restore point, after 1, after 7; this
# boot's disk is a written image without this machine's page cache, see
# zt_fill). A
# pool above its threshold loses its automatic restore points, oldest first,
# before the backup adds one, and a backup that could not bring it under is
# refused with nothing changed; LVM monitors the pool. A backup is refused with /boot unmounted, while dpkg works or of a
# boot not marked good; the health checks (a wanted one only warns, a
# required one that hangs fails the boot); runs never overlap; the timer is
# enabled.
# Then GRUB's count says that a rolled-back system has used its tries up too:
# at the next power-on (card first, no key) the disk's menu stops without a
# countdown and says why (the rollback itself: test rollback).
# Last, zshield_recovery=latest with zshield.backup= naming no restore point
# refuses with one clear line and changes nothing (the disk stays
# byte-identical).
target=$ZT_DIR/target.img
zt_provisioned "$target"
zt_fill "$target"

zt_cmd "$ZT_DIR/rotate.cmd" - <<'SCRIPT'
points() { lvs --noheadings -o lv_name vgroup | tr -d ' ' | grep '^rp-' | sort | paste -sd' '; }
daily_count() { lvs --noheadings -o lv_name vgroup | grep -c ' rp-daily-'; }
dd if=/dev/zero of=/root/ztest-bench bs=1M count=256 oflag=direct conv=fsync status=none
# Blocks written after the last restore point: lv-root's alone.
none=$(overwrite /root/ztest-bench)
check dry-run-plans bash -c 'zshield backup --dry-run 2>&1 | tee /run/ztest-dry.out | grep -q "plan: .* take the daily restore point vgroup/rp-daily-"'
check dry-run-changes-nothing expect_eq "daily restore points" "$(daily_count)" 0
check backup-1 zshield_backup
first=$(lvs --noheadings -o lv_name vgroup | tr -d ' ' | grep '^rp-daily-')
after1=$(overwrite /root/ztest-bench)
again1=$(overwrite /root/ztest-bench)
check backups-2-to-8 bash -c 'for n in 2 3 4 5 6 7 8; do zshield_backup || exit 1; done'
after7=$(overwrite /root/ztest-bench)
again=$(overwrite /root/ztest-bench)
echo "ZTEST first-writes-256MiB-s=none=$none after-1=$after1 again=$again1 after-7=$after7 again=$again"
# Against the mean of the rewrites right after each (the first one timed,
# soon after the boot, varied most: 0.86 to 1.97 s).
echo "ZTEST first-writes-times=$(awk -v r1="$again1" -v r7="$again" -v a1="$after1" -v a7="$after7" \
    'BEGIN { b = (r1 + r7) / 2; printf "after-1=%.2f after-7=%.2f", a1 / b, a7 / b }')"
check oldest-daily-removed bash -c "! lvs vgroup/$first 2>/dev/null"
check named-backup zshield backup --name before-upgrade
check seven-daily-kept expect_eq "daily restore points" "$(daily_count)" 7
check named-and-factory-kept bash -c 'lvs vgroup/rp-before-upgrade vgroup/rp-factory >/dev/null'
check rotation-logged grep -q "remove the restore point vgroup/rp-daily-.*(rotation keeps the newest 7 automatic ones)" /var/log/zshield/backup.log
check points-skipped-at-activation bash -c '! lvs --noheadings -o lv_name,lv_attr vgroup | awk "\$1 ~ /^rp-/ && \$2 !~ /k\$/" | grep -q .'
check status-lists-nine bash -c '[ "$(zshield status --json | grep -c "\"lv\": \"rp-")" = 9 ]'
check status-json-kinds bash -c 'zshield status --json | grep -q "\"kind\": \"named\""'
check grub-submenu-lists-them bash -c '[ "$(grep -c "^menuentry .Roll back to " /boot/grub/zshield-points.cfg)" = 9 ]'
check grub-menu-sound grub-script-check /boot/grub/zshield-points.cfg
check remove-named zshield backup --remove before-upgrade
check named-removed bash -c '! lvs vgroup/rp-before-upgrade 2>/dev/null && ! grep -q before-upgrade /boot/grub/zshield-points.cfg'
echo "ZTEST points $(points)"

# A pool above its threshold: the automatic restore points go, oldest first,
# before the new one is taken, until it is under (the blocks the old bench
# data kept are freed once no restore point shares them); a threshold under
# what lv-root maps alone is refused, nothing changed.
pool_percent() { lvs --noheadings -o data_percent vgroup/lv-pool | tr -d ' ' | cut -d. -f1; }
# What lv-root maps, in percent of the pool (rounded up).
root_percent() {
    local root pool
    root=$(lvs --noheadings --units b --nosuffix -o lv_size,data_percent vgroup/lv-root)
    pool=$(lvs --noheadings --units b --nosuffix -o lv_size vgroup/lv-pool)
    awk -v pool="$pool" '{ printf "%d", $1 * $2 / pool + 1 }' <<<"$root"
}
pool=$(pool_percent)
root=$(root_percent)
threshold=$(((pool + root) / 2))
echo "ZTEST pool-before-pruning data=$pool% root-alone=$root% threshold=$threshold%"
check threshold-between bash -c "[ $root -lt $threshold ] && [ $threshold -lt $pool ]"
sed "s/^\[pool\]$/[pool]\nthreshold = $threshold/" /etc/zshield/zshield.conf >/run/ztest-full.conf
check full-config grep -qx "threshold = $threshold" /run/ztest-full.conf
check pool-pruned zshield backup --config /run/ztest-full.conf
check pruned-in-log grep -q "the thin pool vgroup/lv-pool is .*% full: removing the restore point vgroup/rp-daily-" /var/log/zshield/backup.log
check pool-under-threshold test "$(pool_percent)" -lt "$threshold"
check new-point-taken expect_eq "daily restore points" "$(daily_count)" 1
check factory-kept lvs vgroup/rp-factory
check pool-event-logged grep -q '"event":"pool","status":"pruned"' /var/log/audit/zshield/events.jsonl
before=$(points)
sed 's/^\[pool\]$/[pool]\nthreshold = 5/' /etc/zshield/zshield.conf >/run/ztest-low.conf
check root-alone-refused bash -c '! zshield backup --config /run/ztest-low.conf 2>/run/ztest-refused.err'
check refused-says-why grep -q "vgroup/lv-root alone takes .*% of it: no restore point taken" /run/ztest-refused.err
check refused-changes-nothing expect_eq "restore points" "$(points)" "$before"
check pool-over-threshold-unhealthy bash -c '! zshield status --config /run/ztest-low.conf'
check backup-after-full zshield_backup
# LVM's own watch: dmeventd monitors the pool and grows it at 90 % (the
# golden's lvmlocal.conf).
check pool-monitored bash -c 'lvs --noheadings -o seg_monitor vgroup/lv-pool | grep -qw monitored'
check pool-autoextends bash -c '[ "$(lvmconfig --type current activation/thin_pool_autoextend_threshold)" = thin_pool_autoextend_threshold=90 ]'
check backup-after-full zshield_backup

# Only of a system at rest: not with /boot unmounted (the rollback would get an
# empty /boot), not while dpkg holds its lock (exit 75: the service tries again
# later); nothing is changed.
before=$(points)
umount /boot
check refused-without-boot bash -c '! zshield_backup 2>/run/ztest-noboot.err && grep -q "/boot is not mounted" /run/ztest-noboot.err'
mount /boot
perl -MFcntl -e 'open(my $f, ">>", $ARGV[0]) or die "$!"; my $lock = pack("s s x4 q q l x4", F_WRLCK, 0, 0, 0, 0);
    fcntl($f, F_SETLKW, $lock) or die "lock: $!"; $| = 1; print "locked\n"; sleep 120;' /var/lib/dpkg/lock-frontend >/run/ztest-dpkg.out &
dpkg_holder=$!
for _ in $(seq 50); do grep -q locked /run/ztest-dpkg.out && break; sleep 0.2; done
check refused-during-dpkg bash -c 'zshield_backup 2>/run/ztest-dpkg.err; [ $? = 75 ] && grep -q "dpkg is changing packages" /run/ztest-dpkg.err'
systemctl start zshield-backup.service 2>/dev/null
check service-tries-again-later bash -c '[ "$(systemctl show -p SubState --value zshield-backup.service)" = auto-restart ]'
systemctl stop zshield-backup.service
kill "$dpkg_holder"
check refusals-in-event-log bash -c '[ "$(grep -c "\"event\":\"backup\",\"status\":\"refused\"" /var/log/audit/zshield/events.jsonl)" -ge 3 ]'
check backups-in-event-log bash -c '[ "$(grep -c "\"event\":\"backup\",\"status\":\"done\"" /var/log/audit/zshield/events.jsonl)" -ge 3 ]'
check nothing-changed-when-refused expect_eq "restore points" "$(points)" "$before"

# Only of a boot marked good (zshield-boot-ok.service): refused with exit 75,
# the service tries again later.
mv /run/zshield/boot-good /run/ztest-boot-good
check refused-not-marked-good bash -c 'zshield_backup 2>/run/ztest-good.err; [ $? = 75 ] && grep -q "this boot is not marked good" /run/ztest-good.err'
# The health checks: a wanted one that fails only warns; a required one that
# hangs is killed at check_timeout and the boot is not marked good (no reboot
# here), GRUB's count is left as it is.
mkdir -p /etc/zshield/health.d/required /etc/zshield/health.d/wanted
printf '#!/bin/sh\nexit 2\n' >/etc/zshield/health.d/wanted/10-ztest-optional
printf '#!/bin/sh\nsleep 60\n' >/etc/zshield/health.d/required/10-ztest-hangs
chmod 755 /etc/zshield/health.d/wanted/10-ztest-optional /etc/zshield/health.d/required/10-ztest-hangs
sed 's/^\[boot\]$/[boot]\ncheck_timeout = 2/' /etc/zshield/zshield.conf >/run/ztest-fast.conf
check fast-config grep -qx "check_timeout = 2" /run/ztest-fast.conf
grub-editenv /boot/grub/grubenv set zshield_boot_tries=1
check required-hang-fails bash -c '! zshield boot-ok --config /run/ztest-fast.conf --no-reboot 2>/run/ztest-hang.err'
check hang-says-why grep -q "required/10-ztest-hangs (still running after 2 s)" /run/ztest-hang.err
check failed-boot-not-marked test ! -e /run/zshield/boot-good
check failed-boot-keeps-count bash -c 'grub-editenv /boot/grub/grubenv list | grep -qx zshield_boot_tries=1'
check boot-failed-in-event-log grep -q '"event":"boot","status":"failed"' /var/log/audit/zshield/events.jsonl
rm /etc/zshield/health.d/required/10-ztest-hangs
check wanted-only-warns bash -c 'zshield boot-ok --config /run/ztest-fast.conf 2>/run/ztest-wanted.err && grep -q "wanted, not required: wanted/10-ztest-optional (exit status 2)" /run/ztest-wanted.err'
check marked-good-again bash -c 'test -e /run/zshield/boot-good && grub-editenv /boot/grub/grubenv list | grep -qx zshield_boot_tries=0'
rm -r /etc/zshield/health.d/wanted

# One backup at a time.
flock /run/zshield/backup.lock sleep 5 &
sleep 1
check overlap-refused bash -c '! zshield_backup 2>/run/ztest-lock.err && grep -q "another backup is running" /run/ztest-lock.err'
wait

check timer-enabled bash -c '[ "$(systemctl is-enabled zshield-backup.timer)" = enabled ]'
check timer-scheduled bash -c 'systemctl list-timers --all | grep -q zshield-backup.timer'
check service-runs systemctl start zshield-backup.service
check status-json bash -c 'zshield status --json | grep -q "\"healthy\": true"'
zshield status | sed 's/^/ZTEST status /'
sed 's/^/ZTEST backup-log /' /var/log/zshield/backup.log

# The tries used up after an automatic rollback.
check tries-used-up-again grub-editenv /boot/grub/grubenv set zshield_boot_tries=3 zshield_fallback=started

SCRIPT
zt_vm rotate --disk "$target" --cmd "$ZT_DIR/rotate.cmd" --disk-cache none
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/rotate.cmd"
zt_info "first writes of 256 MiB to the root, in seconds: $(zt_value first-writes-256MiB-s); times the rewrite: $(zt_value first-writes-times)"

stopped="Boot tries used up again after the rollback: choose an entry"
zt_vm stopped --cf "$ZT_CF" --disk "$target" --until "$stopped"
zt_assert_line "$stopped"
zt_assert_menu
zt_assert_no_line "Linux version"
countdowns=$(sed -n "/$stopped/,\$p" "$ZT_LOG" | grep -ac "executed automatically" || :)
[ "$countdowns" = 0 ] || zt_fail "the stopped menu counts down ($countdowns lines)"
zt_info "ok: the disk's menu waits for a person"

before=$(zt_sha "$target")
zt_vm latest --cf "$ZT_CF" --disk "$target" --append "zshield_recovery=latest zshield.backup=nope zshield.after=poweroff" \
    --until "no disk was changed"
zt_assert_line_with "zshield: error:" "there is no restore point \"nope\""
zt_assert_line_with "zshield: error:" "no disk was changed"
zt_assert_no_line "zshield: done:"
zt_assert_same_sha "$target" "$before" "target disk"
