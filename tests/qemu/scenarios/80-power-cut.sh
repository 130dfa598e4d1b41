# power-cut: a factory reset cut off by a power loss (zshield.test.cut_after
# powers off at once, without sync) is finished at the next power-on without
# a person: the card first in the boot order, no key pressed, its start entry
# finds no complete system on the disk and boots the automatic mode. Cut
# twice during a first provisioning (the first time zshield's process dies
# instead, and the boot stops), then once during a re-provisioning of the
# finished disk, whose lv-user holds a file that must survive.
target=$ZT_DIR/target.img
zt_new_disk "$target"

cut_boot() { # cut_boot NAME STEP
    zt_vm "$1" --cf "$ZT_CF" --disk "$target" \
        --append "zshield_recovery=default zshield.after=poweroff zshield.test.cut_after=$2"
    zt_assert_line "test failpoint zshield.test.cut_after: cutting the power after step"
    zt_assert_no_line "zshield: done:"
    zt_assert_no_line "zshield: error:"
    zt_assert_no_line ZTEST-BEGIN
}

# zshield's process dies (killed, out of memory, a crash: the failpoint
# aborts it) right after its first write, in the automatic mode: the glue
# finds the mark it left and stops the boot at the failure screen; the golden
# is not booted. Only the partition table is there: the next run finishes
# from it.
zt_vm crash-after-partition --cf "$ZT_CF" --disk "$target" \
    --append "zshield_recovery=auto zshield.test.crash_after=partition" \
    --until "the machine is halted here"
zt_assert_line "test failpoint zshield.test.crash_after: zshield dies after step"
zt_assert_line "zshield: error: the auto recovery ended without finishing after it began to write"
zt_assert_line "the machine is halted here: turn it off"
zt_assert_no_line ZTEST-BEGIN
# The LVs are made and the root copied block by block (under its own UUID,
# never the golden's): the next run again.
cut_boot cut-after-copy copy-root-blocks
zt_assert_line "holds a zshield layout cut off before its end, to be finished"

zt_vm finish --cf "$ZT_CF" --disk "$target"
zt_assert_booted_with "zshield_recovery=auto"
zt_assert_line "holds a zshield layout cut off before its end, to be finished (kept with their data: lv-user, lv-audit)"
zt_assert_line "zshield: FACTORY TEST: PASS"
zt_assert_line "zshield: done: auto recovery finished; powering off"
zt_assert_no_line "zshield: error:"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh" - <<'SCRIPT'
echo keep >/home/ztest-keep
sync
SCRIPT
zt_boot_restored restored "$target" "$ZT_DIR/restored.cmd"

# The old root is removed, the new one not made yet.
cut_boot cut-reprovision remove-lv
zt_assert_line "holds a complete zshield layout (kept with their data: lv-user, lv-audit)"
zt_vm finish-again --cf "$ZT_CF" --disk "$target"
zt_assert_booted_with "zshield_recovery=auto"
zt_assert_line "holds a zshield layout cut off before its end, to be finished (kept with their data: lv-user, lv-audit)"
zt_assert_line "zshield: done: auto recovery finished; powering off"
zt_assert_no_line "zshield: error:"

zt_cmd "$ZT_DIR/kept.cmd" "$ZT_CHECKS/restored.sh" - <<'SCRIPT'
check user-file-kept grep -qx keep /home/ztest-keep
SCRIPT
zt_boot_restored kept "$target" "$ZT_DIR/kept.cmd"
