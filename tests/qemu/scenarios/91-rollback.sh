# rollback: after a factory reset, boot the disk, take a backup, then change,
# create and delete files and put another kernel-like file into /boot; a boot
# with zshield_recovery=latest brings back the root and /boot of the backup,
# keeps the data volumes as they are, and takes a fresh backup.
target=$ZT_DIR/target.img
zt_provisioned "$target"

zt_cmd "$ZT_DIR/change.cmd" "$ZT_CHECKS/rollback-change.sh"
zt_vm change --disk "$target" --cmd "$ZT_DIR/change.cmd"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/change.cmd"
zt_info "backup time in the VM: $(zt_value backup-time-s) s"

zt_latest latest "$target"
zt_assert_line "zshield: done:"
zt_assert_no_line "zshield: error:"
zt_assert_line "merge the backup vgroup/snap0 into vgroup/lv-root"
zt_assert_line "vgroup/lv-root is as it was at the backup"
zt_assert_no_line ZTEST-BEGIN
zt_info "merge: $(grep -a 'zshield: \[1/' "$ZT_LOG" | head -n 1 | tr -d '\r'); phases: $(grep -a 'zshield: phase ' "$ZT_LOG" | sed 's/.*phase //' | tr -d '\r' | paste -sd' ')"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/rollback-restored.sh"
zt_boot_restored restored "$target" "$ZT_DIR/restored.cmd"
