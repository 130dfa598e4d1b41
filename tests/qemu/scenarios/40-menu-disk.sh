# menu-disk: the provisioned disk's own GRUB menu. After a backup, a named
# restore point and some changes, a person opens the submenu "Roll back to a
# restore point", gives the recovery password (the disk's menu has the
# golden's) and picks the newest entry, the named one: the rollback runs from
# the disk's initramfs and brings back its files and its /boot, whose GRUB
# modules for BIOS differ (rollback-change.sh), so GRUB is installed on the
# disk for BIOS again; the restored system boots through it, and the power
# cuts its next backup at a moment drawn from the seed it prints (up to 3 s
# after it starts). Then, with the CF card taken out, on a UEFI board with
# Secure Boot on (the disk alone: its ESP's signed shim and GRUB at the
# removable-media path, no boot variable; its menu, its password), "Recover
# to factory default" refuses with one clear line and the system boots as it
# was: its restore points are there (the cut backup's or not), the GRUB
# submenu lists them, and the next backup is taken.
target=$ZT_DIR/target.img
zt_changed "$target"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/rollback-restored.sh" - <<'SCRIPT'
echo "ZTEST backup-begins"
zshield_backup
echo "ZTEST backup-ended"
sleep 600
SCRIPT
zt_seed
zt_draw
# The submenu comes right after "Recover to latest backup" (the card's menu,
# where zt_menu_index looks, has none); its newest entry first.
points=$(($(zt_menu_index "Recover to latest backup" disk) + 1))
zt_vm latest --cf "$ZT_CF" --disk "$target" --boot-from disk --pick "$points $(zt_grub_login) 0"
zt_assert_menu
zt_assert_line "Roll back to a restore point"
zt_assert_line_with "Roll back to ztest-before-changes" "(named, "
zt_assert_booted_with "zshield_recovery=latest zshield.backup=ztest-before-changes"
zt_assert_line "make vgroup/lv-root_restoring, a thin snapshot of the restore point rp-ztest-before-changes"
zt_assert_line "zshield: done:"
zt_assert_no_line "zshield: error:"
zt_assert_line "restoring /boot changed GRUB's modules for BIOS: installing GRUB on /dev/sdb for BIOS again"
zt_info "rollback: $(grep -a 'zshield: phase execute' "$ZT_LOG" | tr -d '\r')"
# The boot after it, QEMU started again: under TCG the boot after a warm
# reset in the same QEMU unpacked its initramfs in 139 s instead of 4 s.
zt_vm restored --cf "$ZT_CF" --disk "$target" --boot-from disk --cmd "$ZT_DIR/restored.cmd" \
    --cut "ZTEST backup-begins $ZT_DRAW_SECS"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/restored.cmd" "$ZT_LOG" "ZTEST backup-begins"
zt_assert_line "vm: power cut $ZT_DRAW_SECS s after 'ZTEST backup-begins'"
zt_info "the backup cut $ZT_DRAW_SECS s in$(grep -aq 'ZTEST backup-ended' "$ZT_LOG" && echo ", after it ended")"

zt_cmd "$ZT_DIR/no-card.cmd" - <<'SCRIPT'
check factory-default-asked grep -q "zshield_recovery=default zshield.golden=UUID=$GOLDEN_ROOT_UUID" /proc/cmdline
check root-still-as-restored grep -qx at-backup /root/ztest-changed
check user-data-kept grep -qx after-backup /home/ztest-user-data
check backup-still-there zshield status
check backup-again zshield_backup
restore_menu_is_the_points() {
    expect_eq "restore menu" "$(grep -o 'zshield_restore_point .*' /boot/grub/zshield-points.cfg | cut -d' ' -f2 | sort | paste -sd' ')" \
        "$(lvs --noheadings -o lv_name vgroup | tr -d ' ' | grep '^rp-' | sed 's/^rp-//' | sort | paste -sd' ')"
}
check restore-menu-is-the-points restore_menu_is_the_points
check booted-through-uefi test -d /sys/firmware/efi
check secure-boot-enforced bash -c 'mokutil --sb-state | grep -qx "SecureBoot enabled"'
SCRIPT
zt_vm no-card --firmware uefi --disk "$target" --pick "$(zt_menu_index "Recover to factory default" disk) $(zt_grub_login)" --cmd "$ZT_DIR/no-card.cmd"
zt_assert_line "secureboot: Secure boot enabled"
zt_assert_line_with "zshield: error:" "insert the CompactFlash card"
zt_assert_no_line "zshield: done:"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/no-card.cmd"
