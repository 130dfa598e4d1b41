# ---- tests/qemu/checks/rollback-change.sh: before a rollback ----
# On a provisioned disk: take a backup, then change, create and delete files
# and put another kernel-like file into /boot (rollback-restored.sh checks
# that the rollback undid all of it but the data volume's change).
echo at-backup >/root/ztest-changed
check backup-taken zshield_backup
check status-healthy-after-backup zshield status
echo "ZTEST backup-time-s=$(grep -a 'backup done in' /var/log/zshield/backup.log | tail -n 1 | sed 's/.*done in \([0-9.]*\) s.*/\1/')"
echo after-backup >/root/ztest-changed
echo new >/root/ztest-created
rm /etc/issue
echo after-backup >/home/ztest-user-data
kernels=(/boot/vmlinuz-*)
kernel=${kernels[0]}
cp "$kernel" /boot/vmlinuz-9.9.9-ztest
# An existing /boot file changed in place, same size and time: only a
# comparison by content brings it back.
configs=(/boot/config-*)
config=${configs[0]}
touch -r "$config" /run/ztest-ref
printf 'Z' | dd of="$config" bs=1 seek=100 conv=notrunc status=none
touch -r /run/ztest-ref "$config"
sync
check changes-made test -e /boot/vmlinuz-9.9.9-ztest -a ! -e /etc/issue
sed 's/^/ZTEST backup-log /' /var/log/zshield/backup.log
