# backup-rotation: two backups in a row replace snap0 while a valid snapshot of
# lv-root exists at every moment (sampled all along); with a nearly full VG
# the backup falls back to remove-then-create and says so; a VG too full is
# refused with the old backup kept, and so is a backup with /boot unmounted,
# while dpkg works or of a boot not marked good; the health checks (a wanted
# one only warns, a required one that hangs fails the boot); runs never
# overlap; the timer is enabled.
# Then GRUB's count says that a rolled-back system has used its tries up too:
# at the next power-on (card first, no key) the disk's menu stops without a
# countdown and says why (the rollback itself: test rollback).
# Last, a backup whose COW space overflowed cannot be merged:
# zshield_recovery=latest refuses with one clear line and changes nothing (the
# disk stays byte-identical to the one with the overflowed backup).
target=$ZT_DIR/target.img
zt_provisioned "$target"

zt_cmd "$ZT_DIR/rotate.cmd" - <<'SCRIPT'
snap_time() { lvs --noheadings --config 'report/time_format="%s"' -o lv_time vgroup/snap0 | tr -d ' '; }
# Every 50 ms: the valid snapshots of lv-root that exist (s, 5th attr char a).
sample() {
    while :; do
        lvs --noheadings -o lv_name,lv_attr,origin vgroup 2>/dev/null |
            awk '$3 == "lv-root" && $2 ~ /^s...a/ { n++ } END { print n + 0 }'
        sleep 0.05
    done >/run/ztest-samples
}
t0=$(snap_time)
sleep 1.1
sample &
sampler=$!
check backup-1 zshield_backup
sleep 1.1
check backup-2 zshield_backup
kill "$sampler"
echo "ZTEST samples=$(wc -l </run/ztest-samples)"
check a-backup-at-every-sample bash -c '! grep -qx 0 /run/ztest-samples && [ "$(wc -l </run/ztest-samples)" -gt 5 ]'
check snap0-is-newer bash -c "[ \"\$(lvs --noheadings --config 'report/time_format=\"%s\"' -o lv_time vgroup/snap0 | tr -d ' ')\" -gt $t0 ]"
check no-temporary-left bash -c '! lvs vgroup/snap0_next 2>/dev/null'
check new-first-in-log bash -c 'grep -a "taking the snapshot vgroup/snap0_next" /var/log/zshield/backup.log | tail -n 1 | grep -q .'

# Nearly full: room for one snapshot only once the old one is gone.
check fill-vg lvcreate -y -n ztest-filler -l 100%FREE vgroup
check backup-fallback zshield_backup
check fallback-said bash -c 'tail -n 20 /var/log/zshield/backup.log | grep -q "room for one snapshot only"'
check snapshot-after-fallback bash -c 'lvs --noheadings -o lv_attr vgroup/snap0 | grep -q "^ *s...a"'

# Too full: a bigger snapshot than the VG can hold is refused, the old one kept.
sed 's/^size = "512M"$/size = "1G"/' /etc/zshield/zshield.conf >/run/ztest-big.conf
check big-config-differs bash -c '! cmp -s /etc/zshield/zshield.conf /run/ztest-big.conf'
before=$(snap_time)
check vg-full-refused bash -c '! zshield backup --config /run/ztest-big.conf 2>/run/ztest-full.err'
check vg-full-says-why grep -q "is full.*the old backup is kept" /run/ztest-full.err
check old-backup-kept bash -c "[ \"\$(lvs --noheadings --config 'report/time_format=\"%s\"' -o lv_time vgroup/snap0 | tr -d ' ')\" = $before ]"
check filler-removed lvremove -y vgroup/ztest-filler

# Only of a system at rest: not with /boot unmounted (the rollback would get an
# empty /boot), not while dpkg holds its lock (exit 75: the service tries again
# later); nothing is changed, the old backup is kept.
before=$(snap_time)
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
check backup-kept-when-refused bash -c "[ \"\$(lvs --noheadings --config 'report/time_format=\"%s\"' -o lv_time vgroup/snap0 | tr -d ' ')\" = $before ]"

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

# More than the backup's 512 MiB of COW space changes on lv-root.
echo written-after-backup >/root/ztest-marker
dd if=/dev/zero of=/root/ztest-fill bs=1M count=640 conv=fsync status=none
sync
check snapshot-invalid bash -c 'lvs --noheadings -o lv_attr vgroup/snap0 | grep -q "^ *s...I"'
check status-unhealthy bash -c '! zshield status'
check status-says-invalid bash -c 'zshield status | grep -q "is invalid"'
SCRIPT
zt_vm rotate --disk "$target" --cmd "$ZT_DIR/rotate.cmd"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/rotate.cmd"

stopped="Boot tries used up again after the rollback: choose an entry"
zt_vm stopped --cf "$ZT_CF" --disk "$target" --until "$stopped"
zt_assert_line "$stopped"
zt_assert_menu
zt_assert_no_line "Linux version"
countdowns=$(sed -n "/$stopped/,\$p" "$ZT_LOG" | grep -ac "executed automatically" || :)
[ "$countdowns" = 0 ] || zt_fail "the stopped menu counts down ($countdowns lines)"
zt_info "ok: the disk's menu waits for a person"

before=$(zt_sha "$target")
zt_vm latest --cf "$ZT_CF" --disk "$target" --append "zshield_recovery=latest zshield.after=poweroff" \
    --until "no disk was changed"
zt_assert_line_with "zshield: error:" "the backup vgroup/snap0 is invalid"
zt_assert_line_with "zshield: error:" "no disk was changed"
zt_assert_no_line "zshield: done:"
zt_assert_same_sha "$target" "$before" "target disk"
