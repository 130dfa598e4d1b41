# menu-disk: the provisioned disk's own GRUB menu. After a backup and some
# changes, a person picks "Recover to latest backup" and gives the recovery
# password (the disk's menu has the golden's): the rollback runs from
# the disk's initramfs, the VM reboots into the restored system. Then, with
# the CF card taken out, "Recover to factory default" refuses with one clear
# line and the system boots as it was.
target=$ZT_DIR/target.img
zt_changed "$target"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/rollback-restored.sh" - <<'SCRIPT'
check big-file-gone test ! -e /root/ztest-big
SCRIPT
zt_vm latest --cf "$ZT_CF" --disk "$target" --boot-from disk --reboot yes \
    --pick "$(zt_menu_index "Recover to latest backup" disk) $(zt_grub_login)" --cmd "$ZT_DIR/restored.cmd"
zt_assert_menu
zt_assert_booted_with "zshield_recovery=latest"
zt_assert_line "vgroup/lv-root is as it was at the backup"
zt_assert_line "zshield: done:"
zt_assert_no_line "zshield: error:"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/restored.cmd"

zt_cmd "$ZT_DIR/no-card.cmd" - <<'SCRIPT'
check factory-default-asked grep -q "zshield_recovery=default zshield.golden=UUID=$GOLDEN_ROOT_UUID" /proc/cmdline
check root-still-as-restored grep -qx at-backup /root/ztest-changed
check user-data-kept grep -qx after-backup /home/ztest-user-data
check backup-still-there zshield status
SCRIPT
zt_vm no-card --disk "$target" --pick "$(zt_menu_index "Recover to factory default" disk) $(zt_grub_login)" --cmd "$ZT_DIR/no-card.cmd"
zt_assert_line_with "zshield: error:" "insert the CompactFlash card"
zt_assert_no_line "zshield: done:"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/no-card.cmd"
