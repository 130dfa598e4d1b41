# ---- tests/qemu/checks/rollback-restored.sh: after a rollback ----
# The root and /boot are as at the backup of rollback-change.sh, lv-user as
# it was left, and a fresh backup exists.
check changed-file-as-at-backup grep -qx at-backup /root/ztest-changed
check created-file-gone test ! -e /root/ztest-created
check deleted-file-back test -s /etc/issue
check user-data-kept grep -qx after-backup /home/ztest-user-data
check boot-extra-kernel-gone test ! -e /boot/vmlinuz-9.9.9-ztest
check card-still-hands-over test -f /boot/zshield/complete
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
check rollback-in-event-log bash -c 'zshield status 2>&1 | grep -qE "^event: .* (automatic-)?rollback done"'
