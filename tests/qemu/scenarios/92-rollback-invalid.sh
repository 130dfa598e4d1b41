# rollback-invalid: a backup whose COW space overflowed cannot be merged;
# zshield_recovery=latest refuses with one clear line and changes nothing:
# the disk stays byte-identical to the one that booted with the overflowed
# backup and the marker written after it.
target=$ZT_DIR/target.img
zt_provisioned "$target"

zt_cmd "$ZT_DIR/overflow.cmd" - <<'SCRIPT'
echo written-after-backup >/root/ztest-marker
# More than the snapshot's 512 MiB of COW space changes on lv-root.
dd if=/dev/zero of=/root/ztest-fill bs=1M count=640 conv=fsync status=none
sync
check snapshot-invalid bash -c 'lvs --noheadings -o lv_attr vgroup/snap0 | grep -q "^ *s...I"'
check status-unhealthy bash -c '! zshield status'
check status-says-invalid bash -c 'zshield status | grep -q "is invalid"'
SCRIPT
zt_vm overflow --disk "$target" --cmd "$ZT_DIR/overflow.cmd"
zt_assert_checks "$ZT_DIR/overflow.cmd"
before=$(zt_sha "$target")

zt_latest latest "$target"
zt_assert_line_with "zshield: error:" "the backup vgroup/snap0 is invalid"
zt_assert_line_with "zshield: error:" "no disk was changed"
zt_assert_no_line "zshield: done:"
zt_assert_same_sha "$target" "$before" "target disk"
