# rollback-interrupted: on a disk changed after its backup (zt_changed), the
# power goes right after a rollback made the new root and renamed the old one
# aside (failpoint zshield.test.cut_after=rename-lv: no lv-root on the disk),
# then again when the next boot has given the new root its name and restored
# /boot, while it installs GRUB (QEMU killed at a moment drawn from the seed
# it prints, up to 3 s into that step).
# The next power-on, in the product's boot order with no key pressed, does the
# rest: the rollback took the card's hand-over marker off
# the disk, so the card boots its automatic mode, which finishes the
# rollback; the restored disk boots and its root is the backup's.
# The boot that restores /boot has a second disk: an ext4 file system that
# carries the UUID and label of the disk's /boot, by which the restored
# root's fstab mounts /boot. The rollback writes /boot only onto the /boot
# partition of its VG's own disk, which its plan names, after checking that
# the restored fstab names that partition; the card is read-only while it
# runs. The second disk stays byte-identical. (Only that boot has it: a
# normal boot of the disk mounts /boot by that UUID, and could mount the
# second disk's.)
target=$ZT_DIR/target.img
zt_changed "$target"

# The second disk, from the disk's /boot as the factory reset made it.
boot_start=$(partx -g -o START,NAME "$target" | awk '$2 == "zshield-boot" { print $1 }')
[ -n "$boot_start" ] || zt_fail "no partition zshield-boot on $target"
boot_id() { blkid -p -o value -s "$1" -O $((boot_start * 512)) "$target" || :; }
boot_uuid=$(boot_id UUID)
boot_label=$(boot_id LABEL)
[ -n "$boot_uuid" ] || zt_fail "no file system UUID on the /boot partition of $target"
spare=$ZT_DIR/spare.img
rm -rf "$ZT_DIR/spare-tree"
mkdir -p "$ZT_DIR/spare-tree"
echo "not the disk's /boot" >"$ZT_DIR/spare-tree/ztest-spare"
zt_new_disk "$spare" 64M
mkfs.ext4 -q -F -U "$boot_uuid" ${boot_label:+-L "$boot_label"} -d "$ZT_DIR/spare-tree" "$spare"
spare_sha=$(zt_sha "$spare")
zt_info "second disk: ext4 UUID=$boot_uuid${boot_label:+ LABEL=$boot_label}, as the disk's /boot"

zt_latest cut "$target" zshield.test.cut_after=rename-lv
zt_assert_line "make vgroup/lv-root_restoring, a thin snapshot of the restore point rp-ztest-before-changes"
zt_assert_line "rename vgroup/lv-root to rp-replaced-"
zt_assert_line "test failpoint zshield.test.cut_after"
zt_assert_no_line "zshield: done:"

# The next one (with the second disk) sets the old root aside again (the cut
# may have come before it was), gives the new root its name and restores /boot,
# and the power goes again in its step 4.
zt_seed
zt_draw
zt_vm resume --cf "$ZT_CF" --disk "$target" --spare "$spare" \
    --append "zshield_recovery=latest zshield.after=poweroff" --cut-in-plan "$ZT_DRAW $ZT_DRAW_SECS 4"
zt_assert_line_with "a rollback of vgroup/lv-root to vgroup/rp-ztest-before-changes" "that was cut off"
zt_assert_line_with "[1/6] have LVM skip vgroup/rp-replaced-" "at activation"
zt_assert_line "[2/6] rename vgroup/lv-root_restoring to lv-root"
zt_assert_line_with "the golden card /dev/" "is read-only while the rollback runs"
zt_assert_line_with "[3/6] restore /boot from the copy in the restored root" "which its /etc/fstab must name"
zt_assert_line "the restored root mounts /boot from UUID=$boot_uuid"
zt_assert_line "restoring /boot: 100%"
zt_assert_line "vm: power cut $ZT_DRAW_SECS s after 'zshield: [4/6]'"
zt_assert_no_line "zshield: done:"
zt_assert_no_line "zshield: error:"
zt_assert_same_sha "$spare" "$spare_sha" "second disk with the UUID of the disk's /boot"

# The automatic mode sees the set-aside root with the rollback's tag and a
# new lv-root, and does the rest: /boot, GRUB, the restore menu, the marker
# again, the tags off.
zt_cmd "$ZT_DIR/restored.cmd" - <<'SCRIPT'
check changed-file-as-at-backup grep -qx at-backup /root/ztest-changed
check replaced-root-kept bash -c 'lvs --noheadings -o lv_name,lv_tags vgroup | grep " rp-replaced-" | grep -v zshield_rollback'
check card-hands-over-again test -f /boot/zshield/complete
check status-healthy zshield status
print_rollback_steps
SCRIPT
zt_vm finish --cf "$ZT_CF" --disk "$target"
zt_assert_booted_with "zshield_recovery=auto"
zt_assert_line "the disk's last rollback was cut off: the automatic mode finishes it"
zt_assert_line "[1/4] restore /boot from the copy in the restored root"
zt_assert_line "zshield: done: latest recovery finished; rebooting"
zt_assert_no_line "zshield: error:"
# The boot after it, QEMU started again (a warm reset in the same QEMU makes
# TCG's next boot slow): the card hands over to the disk.
zt_vm restored --cf "$ZT_CF" --disk "$target" --cmd "$ZT_DIR/restored.cmd"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/restored.cmd"
