# rollback-missing: without a backup snapshot zshield_recovery=latest refuses
# with one clear line and the disk is left byte-identical.
target=$ZT_DIR/target.img
zt_provisioned "$target"

zt_cmd "$ZT_DIR/remove.cmd" - <<'SCRIPT'
check snapshot-removed lvremove -y vgroup/snap0
check status-says-no-backup bash -c 'zshield status | grep -q "there is no backup"'
SCRIPT
zt_vm remove --disk "$target" --cmd "$ZT_DIR/remove.cmd"
zt_assert_checks "$ZT_DIR/remove.cmd"
before=$(zt_sha "$target")

zt_latest latest "$target"
zt_assert_line_with "zshield: error:" "there is no backup to roll back to"
zt_assert_line_with "zshield: error:" "no disk was changed"
zt_assert_no_line "zshield: done:"
zt_assert_same_sha "$target" "$before" "target disk"
