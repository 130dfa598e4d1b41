# ---- tests/qemu/checks/rollback-restored.sh: after a rollback ----
# The root and /boot are as at the backup of rollback-change.sh, lv-user as
# it was left, and the root the rollback replaced is a restore point that
# still holds the changes (a rollback can be undone).
check changed-file-as-at-backup grep -qx at-backup /root/ztest-changed
check created-file-gone test ! -e /root/ztest-created
check deleted-file-back test -s /etc/issue
check user-data-kept grep -qx after-backup /home/ztest-user-data
check boot-extra-kernel-gone test ! -e /boot/vmlinuz-9.9.9-ztest
check grub-module-gone test ! -e /boot/grub/i386-pc/ztest.mod
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
replaced_root_holds_the_changes() {
    local kept ok=0
    kept=$(lvs --noheadings -o lv_name vgroup | tr -d ' ' | grep '^rp-replaced-' | tail -n 1)
    [ -n "$kept" ] || { echo "no rp-replaced-* among: $(lvs --noheadings -o lv_name vgroup | paste -sd' ')"; return 1; }
    grep -q "zshield_restore_point ${kept#rp-}$" /boot/grub/zshield-points.cfg || { echo "$kept is not in the restore menu"; return 1; }
    lvchange -ay -K "vgroup/$kept" || return 1
    mkdir -p /run/ztest-kept
    mount -o ro,noload "/dev/vgroup/$kept" /run/ztest-kept || return 1
    grep -qx after-backup /run/ztest-kept/root/ztest-changed && test -e /run/ztest-kept/root/ztest-created || ok=1
    umount /run/ztest-kept
    lvchange -an "vgroup/$kept"
    return $ok
}
check replaced-root-holds-the-changes replaced_root_holds_the_changes
check status-healthy zshield status
check rollback-report bash -c 'ls /var/log/zshield/ | grep -q "latest.json$"'
check rollback-in-event-log bash -c 'zshield status 2>&1 | grep -qE "^event: .* (automatic-)?rollback done"'
print_rollback_steps
