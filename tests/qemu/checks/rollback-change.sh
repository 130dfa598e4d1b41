# ---- tests/qemu/checks/rollback-change.sh: before a rollback ----
# On a provisioned disk: take a backup and a named one, then change, create and delete files
# and put another kernel-like file into /boot (rollback-restored.sh checks
# that the rollback undid all of it but the data volume's change).
echo at-backup >/root/ztest-changed
check backup-taken zshield_backup
# The restore point the rollbacks bring back: a named one (the newest).
check named-backup-taken zshield backup --name ztest-before-changes
check status-healthy-after-backup zshield status
done_line=$(grep -a 'backup done in' /var/log/zshield/backup.log | tail -n 1)
total=${done_line#*done in }
own=${done_line%" s of zshield's own"*}
echo "ZTEST backup-time-s=${total%% s*}"
echo "ZTEST backup-own-s=${own##*: }"
echo after-backup >/root/ztest-changed
echo new >/root/ztest-created
rm /etc/issue
echo after-backup >/home/ztest-user-data
kernels=(/boot/vmlinuz-*)
kernel=${kernels[0]}
cp "$kernel" /boot/vmlinuz-9.9.9-ztest
# A GRUB module for BIOS the restore point did not have, as a GRUB upgrade
# brings: the rollback takes it away and installs GRUB for BIOS again.
cp /boot/grub/i386-pc/echo.mod /boot/grub/i386-pc/ztest.mod
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
