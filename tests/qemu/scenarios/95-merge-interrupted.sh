# merge-interrupted: on a disk changed after its backup (zt_changed), the
# power goes while the merge of a rollback runs
# (failpoint zshield.test.cut_after=merge-started, at its first progress
# line), then again right after the next boot has finished the merge. The
# next power-on, in the product's boot order with no key pressed, does the
# rest: the rollback took the card's hand-over marker off the disk, so the
# card boots its automatic mode, which finishes the rollback; the restored
# disk boots and its root is the backup's.
target=$ZT_DIR/target.img
zt_changed "$target"

zt_latest cut "$target" zshield.test.cut_after=merge-started
zt_assert_line "test failpoint zshield.test.cut_after"
zt_assert_no_line "zshield: done:"

# The next one finishes the merge, and the power goes again right after it.
zt_latest resume "$target" zshield.test.cut_after=resume-merge
zt_assert_line "finish the merge of vgroup/snap0 into vgroup/lv-root that was cut off"
zt_assert_line "cutting the power after step 1"
zt_assert_no_line "zshield: done:"

# The automatic mode sees a merged root (snap0 gone, the rollback tag still
# there) and does the rest: /boot, GRUB, a fresh backup, the marker again.
zt_cmd "$ZT_DIR/restored.cmd" - <<'SCRIPT'
check changed-file-as-at-backup grep -qx at-backup /root/ztest-changed
check big-file-gone test ! -e /root/ztest-big
check fresh-backup-exists bash -c 'lvs --noheadings -o lv_attr,origin vgroup/snap0 | grep -q "^ *s...a.*lv-root"'
check card-hands-over-again test -f /boot/zshield/complete
check status-healthy zshield status
SCRIPT
zt_vm finish --cf "$ZT_CF" --disk "$target" --reboot yes --cmd "$ZT_DIR/restored.cmd"
zt_assert_booted_with "zshield_recovery=auto"
zt_assert_line "the disk's last rollback was cut off: the automatic mode finishes it"
zt_assert_line "[1/3] restore /boot from the copy in the merged root"
zt_assert_line "zshield: done: latest recovery finished; rebooting"
zt_assert_no_line "zshield: error:"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/restored.cmd"
