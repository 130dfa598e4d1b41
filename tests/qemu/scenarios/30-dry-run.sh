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
# The golden's provisioning for this architecture is part of the plan.
zt_assert_line "install 3 files of /etc/zshield/provision/files.install for x86_64: /etc/sysctl.d/90-ztest.conf (0640 root:adm), /etc/modules (0600 root:root), /usr/local/lib/ztest/tool (4755 daemon:daemon)"
zt_assert_line "run the hooks of /etc/zshield/provision/hooks in the target, in order, 20 s each at most: 10_first.sh, 90_factory_test.sh"
zt_assert_same_sha "$target" "$target_sha" "target disk"
