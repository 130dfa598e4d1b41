# power-cut: a factory reset cut off by a power loss (zshield.test.cut_after
# powers off at once, without sync) is finished by the next one.
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

# Only the partition table is there: the next run finishes from it.
cut_boot cut-after-partition partition
# The LVs are made and the root copied block by block (under its own UUID,
# never the golden's): the next run again.
cut_boot cut-after-copy copy-root-blocks
zt_assert_line "holds a zshield layout cut off before its end, to be finished"

zt_recover finish "$target"
zt_assert_line "holds a zshield layout cut off before its end, to be finished (kept with their data: lv-user, lv-audit)"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh"
zt_boot_restored restored "$target" "$ZT_DIR/restored.cmd"
