# dry-run: zshield.dry_run prints the plan for the blank target and writes
# nothing. The target is a 600 GB disk (a sparse file, so that "nothing
# written" is "no block allocated"): the blank check reads samples across all
# of it, and the probe's time is printed for the record.
target=$ZT_DIR/target.img
zt_new_disk "$target" 600G

zt_vm boot --cf "$ZT_CF" --disk "$target" \
    --append "zshield_recovery=default zshield.dry_run zshield.after=poweroff"

zt_assert_no_line "zshield: error:"
# A plan is several steps, and it names the disk it would write.
zt_assert_count_min "zshield: " 3
zt_assert_line_with "zshield: " /dev/sdb
zt_assert_line_with "zshield: " "holds a blank disk"
# The golden's provisioning for this architecture is part of the plan.
zt_assert_line "install 3 files of /etc/zshield/provision/files.install for x86_64: /etc/sysctl.d/90-ztest.conf (0640 root:adm), /etc/modules (0600 root:root), /usr/local/lib/ztest/tool (4755 daemon:daemon)"
zt_assert_line "run the hooks of /etc/zshield/provision/hooks in the target, in order, 20 s each at most: 10_first.sh, 90_factory_test.sh"
zt_info "600 GB blank disk: $(grep -ao 'zshield: read /dev/sdb across [^\r]*' "$ZT_LOG" || echo "no blank check line")"
allocated=$(du -B1 "$target" | cut -f1)
[ "$allocated" = 0 ] || zt_fail "the dry run wrote to the target: $allocated bytes of $target allocated"
zt_info "ok: target disk unwritten (no block allocated)"
