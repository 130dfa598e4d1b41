# rollback: after a factory reset, boot the disk, take a backup, then change,
# create and delete files and put another kernel-like file into /boot; a boot
# with zshield_recovery=latest brings back the root and /boot of the backup,
# keeps the data volumes as they are, and takes a fresh backup.
target=$ZT_DIR/target.img
zt_provisioned "$target"

zt_cmd "$ZT_DIR/change.cmd" - <<'SCRIPT'
echo at-backup >/root/ztest-changed
check backup-taken zshield_backup
check status-healthy-after-backup zshield status
echo "ZTEST backup-time-s=$(grep -a 'backup done in' /var/log/zshield/backup.log | tail -n 1 | sed 's/.*done in \([0-9.]*\) s.*/\1/')"
echo after-backup >/root/ztest-changed
echo new >/root/ztest-created
rm /etc/issue
echo after-backup >/home/ztest-user-data
kernel=$(ls /boot/vmlinuz-* | head -n 1)
cp "$kernel" /boot/vmlinuz-9.9.9-ztest
# An existing /boot file changed in place, same size and time: only a
# comparison by content brings it back.
config=$(ls /boot/config-* | head -n 1)
touch -r "$config" /run/ztest-ref
printf 'Z' | dd of="$config" bs=1 seek=100 conv=notrunc status=none
touch -r /run/ztest-ref "$config"
sync
check changes-made test -e /boot/vmlinuz-9.9.9-ztest -a ! -e /etc/issue
sed 's/^/ZTEST backup-log /' /var/log/zshield/backup.log
SCRIPT
zt_vm change --disk "$target" --cmd "$ZT_DIR/change.cmd"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/change.cmd"
zt_info "backup time in the VM: $(zt_value backup-time-s) s"

zt_latest latest "$target"
zt_assert_line "zshield: done:"
zt_assert_no_line "zshield: error:"
zt_assert_line "merge the backup vgroup/snap0 into vgroup/lv-root"
zt_assert_line "vgroup/lv-root is as it was at the backup"
zt_assert_no_line ZTEST-BEGIN
zt_info "merge: $(grep -a 'zshield: \[1/' "$ZT_LOG" | head -n 1 | tr -d '\r'); phases: $(grep -a 'zshield: phase ' "$ZT_LOG" | sed 's/.*phase //' | tr -d '\r' | paste -sd' ')"

zt_cmd "$ZT_DIR/restored.cmd" - <<'SCRIPT'
check changed-file-as-at-backup grep -qx at-backup /root/ztest-changed
check created-file-gone test ! -e /root/ztest-created
check deleted-file-back test -s /etc/issue
check user-data-kept grep -qx after-backup /home/ztest-user-data
check boot-extra-kernel-gone test ! -e /boot/vmlinuz-9.9.9-ztest
boot_matches_root() {
    local f
    for f in /var/lib/zshield/boot/vmlinuz-* /var/lib/zshield/boot/initrd.img-* /var/lib/zshield/boot/config-*; do
        cmp "$f" "/boot/${f##*/}" || return 1
    done
    test -d "/lib/modules/$(uname -r)"
}
check boot-matches-root boot_matches_root
check grub-menu-without-extra-kernel bash -c '! grep -q 9.9.9-ztest /boot/grub/grub.cfg'
check fresh-backup-exists bash -c 'lvs --noheadings -o lv_attr,origin vgroup/snap0 | grep -q "^ *s.*lv-root"'
check status-healthy zshield status
check rollback-report bash -c 'ls /var/log/zshield/ | grep -q "latest.json$"'
SCRIPT
zt_boot_restored restored "$target" "$ZT_DIR/restored.cmd"
