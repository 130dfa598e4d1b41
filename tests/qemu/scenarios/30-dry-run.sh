# dry-run: zshield.dry_run prints the plan for the blank target and writes nothing.
target=$ZT_DIR/target.img
zt_new_disk "$target"
target_sha=$(zt_sha "$target")

zt_vm boot --cf "$ZT_CF" --disk "$target" \
    --append "zshield_recovery=default zshield.dry_run zshield.after=poweroff"

zt_assert_no_line "zshield: error:"
# A plan is several steps, and it names the disk it would write.
zt_assert_count_min "zshield: " 3
zt_assert_line_with "zshield: " /dev/sdb
zt_assert_same_sha "$target" "$target_sha" "target disk"
