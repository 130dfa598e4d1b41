#!/bin/sh
# TEST ONLY: the first provisioning hook; it runs in the target's chroot.
set -e
echo "root is $(findmnt -no SOURCE / 2>/dev/null || echo '?')"
test -e /etc/modules # the manifest's files are installed before the hooks
echo "10 first" >/var/lib/ztest-hooks
