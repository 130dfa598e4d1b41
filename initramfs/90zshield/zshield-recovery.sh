#!/bin/sh
# dracut pre-mount hook (initramfs without systemd). zshield reads the kernel
# command line itself and returns at once when no recovery was asked for; a
# failed recovery is reported by zshield, which stops the boot when the disk
# under the root is partly written. Whatever ended zshield after it began to
# write a disk, the mark it leaves stops the boot at the same screen.
/usr/sbin/zshield recover || :
[ ! -e /run/zshield/unfinished ] || /usr/sbin/zshield interrupted
