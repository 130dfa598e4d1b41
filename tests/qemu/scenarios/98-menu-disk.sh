# menu-disk: the provisioned disk's own GRUB menu. After a backup and some
# changes, a person picks "Recover to latest backup" and gives the recovery
# password (the disk's menu has the golden's): the rollback runs from
# the disk's initramfs, the VM reboots into the restored system, whose next
# backup the power cuts at a moment drawn from the seed it prints (up to 3 s
# after it starts). Then, with the CF card taken out, on a UEFI board with
# Secure Boot on (the disk alone: its ESP's signed shim and GRUB at the
# removable-media path, no boot variable; its menu, its password), "Recover
# to factory default" refuses with one clear line and the system boots as it
# was: its backup is there (the cut one's or the one before), and the next
# backup tidies up after the cut one.
target=$ZT_DIR/target.img
zt_changed "$target"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/rollback-restored.sh" - <<'SCRIPT'
check big-file-gone test ! -e /root/ztest-big
echo "ZTEST backup-begins"
zshield_backup
echo "ZTEST backup-ended"
sleep 600
SCRIPT
zt_seed
zt_draw
zt_vm latest --cf "$ZT_CF" --disk "$target" --boot-from disk --reboot yes \
    --pick "$(zt_menu_index "Recover to latest backup" disk) $(zt_grub_login)" --cmd "$ZT_DIR/restored.cmd" \
    --cut "ZTEST backup-begins $ZT_DRAW_SECS"
zt_assert_menu
zt_assert_booted_with "zshield_recovery=latest"
zt_assert_line "vgroup/lv-root is as it was at the backup"
zt_assert_line "zshield: done:"
zt_assert_no_line "zshield: error:"
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
check nothing-left-of-the-cut bash -c '! lvs vgroup/snap0_next 2>/dev/null'
check booted-through-uefi test -d /sys/firmware/efi
check secure-boot-enforced bash -c 'mokutil --sb-state | grep -qx "SecureBoot enabled"'
SCRIPT
zt_vm no-card --firmware uefi --disk "$target" --pick "$(zt_menu_index "Recover to factory default" disk) $(zt_grub_login)" --cmd "$ZT_DIR/no-card.cmd"
zt_assert_line "secureboot: Secure boot enabled"
zt_assert_line_with "zshield: error:" "insert the CompactFlash card"
zt_assert_no_line "zshield: done:"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/no-card.cmd"
