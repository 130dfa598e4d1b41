# foreign: a target that already holds a GPT with one Linux partition is not
# zshield's: refused (naming what it found) and left byte-identical, unless
# zshield.wipe=<its serial> allows it; then the provisioned disk boots on its own.
# This reset copies the golden root file by file (zshield.copy=files), so that
# make test shows both copies side by side (default-blank copies by blocks),
# and makes the classic layout (zshield.layout=classic: lv-root and one
# copy-on-write snapshot, as zshield made disks before thin pools), whose
# first boot takes a classic backup and prints what first writes cost with
# it; default-again starts from that disk (zt_classic).
zt_cache_lock classic
target=$ZT_DIR/target.img
zt_new_disk "$target"
printf 'label: gpt\n,,L\n' | sfdisk --quiet "$target"
target_sha=$(zt_sha "$target")

zt_vm refused --cf "$ZT_CF" --disk "$target" \
    --append "zshield_recovery=default zshield.after=poweroff" --until "boot with zshield.wipe=ZTARGET"
zt_assert_line "zshield: error:"
zt_assert_line_re 'zshield: error: .*(gpt|partition)'
# The refusal names the disk and the argument that erases that disk only.
zt_assert_line_with "zshield: error: target /dev/sdb (QEMU HARDDISK, serial ZTARGET, 4 GiB)" "boot with zshield.wipe=ZTARGET"
zt_assert_no_line "zshield: done:"
zt_assert_same_sha "$target" "$target_sha" "foreign target disk"

zt_recover wiped "$target" zshield.wipe=ZTARGET zshield.copy=files zshield.layout=classic
zt_assert_line "(wiped: zshield.wipe=ZTARGET)"
zt_assert_line "file by file (asked for: copy = \"files\")"
zt_assert_line "take snapshot vgroup/snap0 of lv-root"
zt_assert_no_line "thin pool"

zt_fill "$target"
zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh" - <<'SCRIPT'
check consented-wipe-in-event-log grep -q "wiped: zshield.wipe=ZTARGET" /var/log/audit/zshield/events.jsonl
check classic-layout bash -c 'lvs --noheadings -o origin vgroup/snap0 | grep -q lv-root && ! lvs vgroup/lv-pool 2>/dev/null'
dd if=/dev/zero of=/root/ztest-bench bs=1M count=256 oflag=direct conv=fsync status=none
check classic-backup zshield_backup
first=$(overwrite /root/ztest-bench)
again=$(overwrite /root/ztest-bench)
echo "ZTEST classic-first-writes-256MiB-s=after-backup=$first again=$again"
rm /root/ztest-bench
check classic-backup-steps grep -q "rename vgroup/snap0_next to snap0" /var/log/zshield/backup.log
check classic-status-healthy zshield status
check classic-refuses-names bash -c 'zshield backup --name x 2>/run/ztest-name.err; [ $? != 0 ] && grep -q "need the thin layout" /run/ztest-name.err'
SCRIPT
zt_boot_restored restored "$target" "$ZT_DIR/restored.cmd" --disk-cache none
zt_info "golden root copy file by file (rsync), from the report: $(zt_value copy-root-seconds) s"
zt_info "classic layout, first writes of 256 MiB to the root, in seconds: $(zt_value classic-first-writes-256MiB-s)"
zt_keep_classic "$target"
