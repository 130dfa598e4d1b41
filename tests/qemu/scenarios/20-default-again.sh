# default-again: a disk of the classic layout (lv-root and one copy-on-write
# snapshot, as zshield made disks before thin pools; foreign's, backed up:
# zt_classic) rolls back as before; then a second factory reset makes it thin, restores the system root and keeps the
# data volumes (/home, /var/log/audit), even when the disk's primary GPT was
# lost in between: the table is repaired from its backup copy first (the
# kernel shows no partitions without it), and from an initramfs without
# systemd (the dracut module's pre-mount hook). A recovery argument in the
# initramfs's cmdline.d never resets the disk. The system it restored runs on
# a board with a hardware watchdog, which systemd drives: when systemd hangs
# for good, the board resets, and the next boot records it.
target=$ZT_DIR/target.img
zt_classic "$target"

zt_cmd "$ZT_DIR/markers.cmd" - <<'SCRIPT'
write_marker() { echo kept >"$1/ztest-marker" && sync; }
check classic-layout bash -c 'lvs --noheadings -o origin vgroup/snap0 | grep -q lv-root && ! lvs vgroup/lv-pool 2>/dev/null'
check home-marker-written write_marker /home
check audit-marker-written write_marker /var/log/audit
check root-marker-written write_marker /root
SCRIPT
# Booted with an initrd that carries zshield_recovery=default and a wipe
# consent in its cmdline.d (as a golden built with them would pass them to
# every disk it provisions): zshield ignores both with a warning and the
# disk boots.
zt_vm markers --disk "$target" --initrd initrd-cmdline.img \
    --append "root=/dev/mapper/vgroup-lv--root" --cmd "$ZT_DIR/markers.cmd"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/markers.cmd"
zt_assert_line "zshield: warning: ignoring zshield_recovery=default from /etc/cmdline.d/90-ztest-recovery.conf, zshield.wipe from /etc/cmdline.d/90-ztest-recovery.conf"
zt_assert_no_line "factory reset starting"

# The classic rollback: its backup merged back into the root.
zt_latest classic-rollback "$target"
zt_assert_line "merge the backup vgroup/snap0 into vgroup/lv-root"
zt_assert_line "vgroup/lv-root is as it was at the backup"
zt_assert_line "take a fresh backup vgroup/snap0 of vgroup/lv-root"
zt_assert_line "zshield: done:"
zt_assert_no_line "zshield: error:"

dd if=/dev/zero of="$target" bs=512 seek=1 count=1 conv=notrunc status=none
damaged=$(zt_sha "$target")

# A dry run on the damaged disk shows the repair and writes nothing.
zt_vm dry-run --cf "$ZT_CF" --disk "$target" \
    --append "zshield_recovery=default zshield.dry_run zshield.after=poweroff"
zt_assert_line "repair the GPT of /dev/sdb from its backup copy"
zt_assert_line "dry run: nothing was written"
zt_assert_same_sha "$target" "$damaged" "damaged target disk (dry run)"

# The second time the target is named as an operator should: by its id. This
# reset checks the card first, then copies without checking again (a test
# golden's zshield.test.digests=skip), so that make test shows what checking
# costs beside default-blank's checked copy. It runs from an initramfs without
# systemd, where the dracut module runs zshield from a pre-mount hook.
zt_vm recover2 --cf "$ZT_CF" --disk "$target" --initrd initrd-nosystemd.img --append \
    "zshield_recovery=default zshield.after=poweroff zshield.target=/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_ZTARGET zshield.test.digests=skip"
zt_assert_line "zshield: done:"
zt_assert_no_line "zshield: error:"
zt_assert_no_line ZTEST-BEGIN
# A systemd initramfs would print the unit's name when it starts it.
zt_assert_no_line "zshield-recovery"
zt_assert_line "check golden-root /dev/sda2 against the card's block map"
zt_assert_line "check golden-boot /dev/sda1 against the card's block map"
zt_assert_line_with "copying golden-root block by block: 100%" "NOT checked"
zt_assert_line "holds a zshield layout with a damaged GPT (primary copy damaged: no GPT signature)"
zt_assert_line_with "repair the GPT of " "from its backup copy (primary copy damaged: no GPT signature)"
zt_assert_line "is whole again: reading the disk again"
zt_assert_line "holds a complete zshield layout (kept with their data: lv-user, lv-audit)"
# Made thin: the classic root and its snapshot go, the pool comes.
zt_assert_line "remove vgroup/snap0"
zt_assert_line "create the thin pool vgroup/lv-pool"
zt_assert_line "create vgroup/lv-root in the thin pool lv-pool"
zt_assert_line "zshield: plan: the disk boots through BIOS and UEFI with Secure Boot (boot.firmware = auto; this machine started through BIOS)"

zt_cmd "$ZT_DIR/again.cmd" "$ZT_CHECKS/after-watchdog-reset.sh" "$ZT_CHECKS/restored.sh" \
    - "$ZT_CHECKS/watchdog-freeze.sh" <<'SCRIPT'
check home-marker-kept grep -qx kept /home/ztest-marker
check audit-marker-kept grep -qx kept /var/log/audit/ztest-marker
check root-marker-gone test ! -e /root/ztest-marker
check event-log-kept-through-the-reset bash -c '[ "$(grep -c "\"event\":\"factory-reset\",\"status\":\"done\"" /var/log/audit/zshield/events.jsonl)" -ge 2 ]'
SCRIPT
# The watchdog's board is a BIOS one: under OVMF with SMM, TCG runs the boot
# after a watchdog reset slowly (its kernel unpacked the initramfs in 105 s
# instead of 7 s) and once showed nothing for 840 s.
zt_vm again --disk "$target" --watchdog yes --reboot yes --cmd "$ZT_DIR/again.cmd"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_line "ZTEST freezing systemd (PID 1)"
# Only the board ended the frozen boot: after the freeze a second boot of
# the disk system, and no reboot by the kernel before it.
sed -n '/ZTEST freezing systemd/,$p' "$ZT_LOG" >"$ZT_DIR/again.after-freeze.log"
zt_info "the board's watchdog ran out $(grep -c tco_timer_expired "$ZT_LOG.watchdog") times (QEMU's trace; the second resets)"
zt_assert_line "Linux version" "$ZT_DIR/again.after-freeze.log"
zt_assert_no_line "reboot: Restarting system" "$ZT_DIR/again.after-freeze.log"
zt_assert_checks "$ZT_DIR/again.cmd"
zt_info "after the board's watchdog reset: watchdog0's bootstatus $(zt_value watchdog-bootstatus)"
zt_info "re-provisioning, from the report: the card checked in $(zt_value verify-golden-seconds) s (root); golden root copied by blocks unchecked $(zt_value copy-root-blocks-seconds) s (copy $(zt_value copy_seconds) s)"
