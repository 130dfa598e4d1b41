# default-blank: a fresh unit on the factory line. The CF and a blank disk,
# the CF first in the firmware's boot order (the product's documented order),
# and nobody at the keyboard: the card's start entry (the first, its default)
# boots zshield's automatic mode, which provisions the disk (the golden copied
# block by block, its provisioning files and hooks), runs the factory test,
# shows its PASS block and powers off. The next power-on, in the same order and
# again without a key, the card's GRUB finds the complete system on the disk
# and hands the boot over to the disk's own menu: the restored system comes up
# with the full layout, a faithful copy and the golden's provisioning.
target=$ZT_DIR/target.img
zt_new_disk "$target"
# The other scenarios start from this disk: they wait for it.
zt_provisioning_lock

zt_vm auto --cf "$ZT_CF" --disk "$target"
zt_assert_menu
zt_assert_line "Start the hard disk system, or install it"
zt_assert_booted_with "zshield_recovery=auto"
zt_assert_line "zshield: automatic provisioning starting"
zt_assert_line "copy the golden root /dev/sda2 onto /dev/mapper/vgroup-lv--root block by block, checking each range"
zt_assert_line "copy the golden /boot /dev/sda1 onto /dev/sdb2 block by block, checking each range"
zt_assert_line "hook 10_first.sh: succeeded"
zt_assert_line "factory test 90_factory_test.sh: passed"
zt_assert_line "zshield: FACTORY TEST: PASS (90_factory_test.sh in"
zt_assert_line "zshield: done: auto recovery finished; powering off"
zt_assert_no_line "zshield: error:"
zt_assert_line "reboot: Power down"
zt_keep_provisioned "$target"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/after-watchdog-reset.sh" "$ZT_CHECKS/restored.sh" \
    "$ZT_CHECKS/provisioned.sh" - "$ZT_CHECKS/watchdog-freeze.sh" <<'SCRIPT'
check booted-without-recovery bash -c '! grep -q zshield_recovery /proc/cmdline'
check disk-menu-has-recovery grep -q "^menuentry 'Recover to latest backup'" /boot/grub/grub.cfg
check disk-menu-has-no-start-entry bash -c '! grep -q zshield-start /boot/grub/grub.cfg'
check disk-factory-default-names-the-golden grep -q "zshield_recovery=default zshield.golden=UUID=$GOLDEN_ROOT_UUID" /boot/grub/grub.cfg
check disk-menu-has-the-password grep -q '^password_pbkdf2 zshield grub.pbkdf2.sha512.' /boot/grub/grub.cfg
check golden-only-options-gone bash -c '! grep -q fsck.mode=skip /boot/grub/grub.cfg && test ! -e /etc/default/grub.d/zshield-golden.cfg'
check report-of-the-automatic-mode bash -c 'ls /var/log/zshield/*-auto.json'
SCRIPT
zt_vm restored --cf "$ZT_CF" --cf-bus scsi --disk "$target" --watchdog yes --reboot yes \
    --cmd "$ZT_DIR/restored.cmd"
zt_assert_line "Booting the hard disk system on"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_line "ZTEST freezing systemd (PID 1)"
# Only the board ended the frozen boot: after the freeze a second boot of
# the disk system, and no reboot by the kernel before it.
sed -n '/ZTEST freezing systemd/,$p' "$ZT_LOG" >"$ZT_DIR/restored.after-freeze.log"
zt_assert_line "Linux version" "$ZT_DIR/restored.after-freeze.log"
zt_assert_no_line "reboot: Restarting system" "$ZT_DIR/restored.after-freeze.log"
zt_assert_checks "$ZT_DIR/restored.cmd"
zt_info "after the board's watchdog reset: watchdog0's bootstatus $(zt_value watchdog-bootstatus)"
zt_info "golden copy block by block, checked, from the report: root $(zt_value copy-root-blocks-seconds) s (copy and check $(zt_value copy_seconds) s, resize2fs $(zt_value resize_seconds) s, e2fsck -fn $(zt_value check_seconds) s); /boot $(zt_value copy-boot-blocks-seconds) s; its copy in the root for backups (rsync) $(zt_value keep-boot-copy-seconds) s"
