# rollback: GRUB's automatic rollback after failed boots under UEFI with Secure
# Boot, and what any rollback brings back (BIOS boot counting: backup-rotation).
# After a factory reset, boot the disk, take a backup and a named restore
# point, then change, create and
# delete files, put another kernel-like file into /boot, give the disk five
# boot tries (one for each way a boot fails below) and a required health check
# that fails and, as it fails, breaks /etc/fstab (a mount the next boot cannot
# make), add an entry whose kernel is a tampered copy of the system's and one
# of the vendor's own in custom.cfg without remaking the menu, and make
# the next power-on's entry (GRUB's next_entry, once) one whose root is not
# there. The next power-on, through OVMF with Secure Boot in the product's boot
# order (card first) with no key pressed and nobody at the console (each
# reset the unit asks for powers it off and on: a new QEMU, its disks and
# NVRAM kept; vm.sh --reboot cold): the first try hangs in the initramfs waiting for its root until
# dracut gives up and, with the product's rd.shell=0 rd.emergency=reboot,
# reboots (that entry gives up after rd.retry=20, not the product's 180 s: time
# only); the second boots, its check fails and it reboots; the third stops in
# systemd's emergency mode, where a unit of the test replaces the initramfs by
# garbage (the bad upgrade's last part) and makes the tampered entry the next
# one, and zshield-boot-deadline.service reboots it after [boot]
# emergency_timeout (the test golden's 10 s, not the product's 120 s: time
# only); the fourth is refused by GRUB's Secure Boot check (shim) and GRUB
# restarts the unit instead of showing its menu again; the last panics on the
# garbage initramfs and, with the product's panic=10, reboots; the disk's menu
# finds the tries used up and rolls back with the card's kernel and initramfs
# (zshield_recovery=latest): lv-root is made anew from the newest restore
# point (the named one), the root it replaces kept as a restore point; the restored disk
# boots and is marked good. The root and /boot are as at the backup, the
# data volumes as they were left, the replaced root holds what was changed
# (the rollback can be undone) and the event log tells the story.
target=$ZT_DIR/target.img
zt_provisioned "$target"

zt_cmd "$ZT_DIR/change.cmd" "$ZT_CHECKS/rollback-change.sh" - <<'SCRIPT'
check boot-marked-good bash -c 'zshield status | grep -q "^boot: this boot is marked good; 0 of 3 tries used"'
# GRUB's modules as at the restore point: this rollback's execute phase is
# timed without grub-install (menu-disk's restores them and installs it).
rm /boot/grub/i386-pc/ztest.mod
# Five tries: the configuration and the disk's menu made from it.
sed -i 's/^\[boot\]$/[boot]\ntries = 5/' /etc/zshield/zshield.conf
sed -i 's/^GRUB_ZSHIELD_BOOT_TRIES=.*/GRUB_ZSHIELD_BOOT_TRIES=5/' /etc/default/grub
check five-tries-configured bash -c 'grep -qx "tries = 5" /etc/zshield/zshield.conf && grep -qx GRUB_ZSHIELD_BOOT_TRIES=5 /etc/default/grub'
# The kernel-like file rollback-change.sh put into /boot is one for the
# rollback to take away, not one for the menu.
mv /boot/vmlinuz-9.9.9-ztest /run/
check five-tries-menu bash -c 'update-grub 2>&1 | grep -q "rollback after 5 failed boots"'
mv /run/vmlinuz-9.9.9-ztest /boot/
mkdir -p /etc/zshield/health.d/required
cat >/etc/zshield/health.d/required/50-ztest-app <<'CHECK'
#!/bin/sh
echo "ztest: the application does not start"
mkdir -p /srv/ztest
echo "/dev/mapper/vgroup-lv--user /srv/ztest ext4 ztest_no_such_option 0 0" >>/etc/fstab
sync
exit 1
CHECK
chmod 755 /etc/zshield/health.d/required/50-ztest-app
cat >/etc/systemd/system/ztest-bad-upgrade.service <<'UNIT'
[Unit]
Description=ztest: in emergency mode, the bad upgrade's last part: garbage for an initramfs
DefaultDependencies=no
RequiresMountsFor=/boot
Before=emergency.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'for f in /boot/initrd.img-*; do head -c 4M /dev/urandom >"$$f"; done; grub-editenv /boot/grub/grubenv set next_entry=ztest-tampered; sync; echo "ztest: the initramfs is garbage now, the tampered kernel next"'
StandardOutput=journal+console
[Install]
WantedBy=emergency.target
UNIT
check bad-upgrade-unit systemctl enable ztest-bad-upgrade.service
# An entry like the system's own whose root is not there, the next power-on's
# default once (as grub-reboot would make it).
awk '/^menuentry .Debian GNU\/Linux. /,/^}/' /boot/grub/grub.cfg |
    sed -e "s/^menuentry '[^']*'.*{/menuentry 'ztest: a root that is not there' --unrestricted --id ztest-missing-root {/" \
        -e 's|root=/dev/mapper/vgroup-lv--root|root=/dev/mapper/vgroup-lv--missing rd.retry=20|' >>/boot/grub/grub.cfg
check missing-root-entry grep -q 'root=/dev/mapper/vgroup-lv--missing rd.retry=20' /boot/grub/grub.cfg
# The system's kernel with one byte changed in its middle: its signature no
# longer matches (not named vmlinuz-*: no menu of its own).
cp "/boot/vmlinuz-$(uname -r)" /boot/ztest-tampered
size=$(stat -c %s /boot/ztest-tampered)
printf 'Z' | dd of=/boot/ztest-tampered bs=1 seek=$((size / 2)) conv=notrunc status=none
check kernel-tampered bash -c '! cmp -s "/boot/vmlinuz-$(uname -r)" /boot/ztest-tampered'
awk '/^menuentry .Debian GNU\/Linux. /,/^}/' /boot/grub/grub.cfg |
    sed -e "s/^menuentry '[^']*'.*{/menuentry 'ztest: a tampered kernel' --unrestricted --id ztest-tampered {/" \
        -e "s|^\(\s*linux\s*\)/vmlinuz-[^ ]*|\1/ztest-tampered|" >>/boot/grub/grub.cfg
check tampered-entry grep -Eq '^\s*linux\s+/ztest-tampered ' /boot/grub/grub.cfg
# An entry of the vendor's own in custom.cfg, added after the menu was made
# (no update-grub): it must not change the entry GRUB falls back to.
cat >/boot/grub/custom.cfg <<'CFG'
menuentry 'ztest: an entry from custom.cfg' --unrestricted {
	echo 'ztest: the custom.cfg entry ran'
	sleep 2
	reboot
}
CFG
check first-try-next grub-editenv /boot/grub/grubenv set zshield_boot_tries=0 next_entry=ztest-missing-root
sync
SCRIPT
zt_vm change --disk "$target" --cmd "$ZT_DIR/change.cmd"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/change.cmd"
zt_info "backup time in the VM: $(zt_value backup-time-s) s, $(zt_value backup-own-s) s of it zshield's own"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/rollback-restored.sh" - <<'SCRIPT'
check failing-check-gone test ! -e /etc/zshield/health.d/required/50-ztest-app
check tries-reset bash -c 'zshield status | grep -q "^boot: this boot is marked good; 0 of 3 tries used since the last good boot$"'
# The boots and the rollback in the event log (backups may come between).
story=$(grep -oE '"event":"(boot|automatic-rollback|rollback)","status":"[a-z]*"' /var/log/audit/zshield/events.jsonl |
    cut -d'"' -f4,8 | tr '"' ' ' | tail -n 3 | paste -sd,)
check events-tell-the-story expect_eq "the last boot events" "$story" "boot failed,automatic-rollback done,boot good"
check failed-boot-says-which grep -q 'required/50-ztest-app (exit status 1); boot try 2 of 5' /var/log/audit/zshield/events.jsonl
initramfs_restored() {
    local f
    for f in /var/lib/zshield/boot/initrd.img-*; do cmp "$f" "/boot/${f##*/}" || return 1; done
}
check initramfs-restored initramfs_restored
SCRIPT
# Seven boots in one run: a limit of its own.
zt_vm fallback --firmware uefi --cf "$ZT_CF" --disk "$target" --reboot cold --cmd "$ZT_DIR/restored.cmd" \
    --timeout 1800
zt_info "the unit reset itself $(grep -ac '^vm: the guest reset the board' "$ZT_LOG") times"
# The hang, then the next boot, each after a reset the unit asked for.
zt_assert_line "root=/dev/mapper/vgroup-lv--missing rd.retry=20"
zt_assert_line "Warning: Could not boot."
zt_assert_line "ztest: the application does not start"
zt_assert_line_with "zshield: error:" "required/50-ztest-app"
zt_assert_line "this boot stopped in systemd's emergency mode: it reboots for the next boot try in 10 s"
zt_assert_line "ztest: the initramfs is garbage now, the tampered kernel next"
zt_assert_line_with "zshield: error:" "it stopped in systemd's emergency mode and waited 10 s for a person"
zt_assert_line "bad shim signature"
zt_assert_line "zshield: the entry did not start: restarting for the next boot try"
zt_assert_no_line "ztest: the custom.cfg entry ran"
zt_assert_line "Kernel panic"
zt_assert_line "Roll back the hard disk system: its boots failed"
# The card's kernel and options (fsck.mode=skip is the card's own).
zt_assert_line_with "zshield.fallback=boot-tries" "fsck.mode=skip"
zt_assert_line "make vgroup/lv-root_restoring, a thin snapshot of the restore point rp-ztest-before-changes"
zt_assert_line "rename vgroup/lv-root to rp-replaced-"
zt_assert_line "rename vgroup/lv-root_restoring to lv-root"
zt_assert_line "zshield: done:"
zt_assert_line "restoring /boot changed none of GRUB's modules for BIOS"
zt_assert_line "secureboot: Secure boot enabled"
zt_info "rollback phases: $(grep -a 'zshield: phase ' "$ZT_LOG" | sed 's/.*phase //' | tr -d '\r' | paste -sd' ')"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/restored.cmd"
