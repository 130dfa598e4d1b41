#!/bin/bash
# The appliance's factory reset, end to end, in QEMU:
#   1. build the golden (qemu/build-golden.sh) and a fresh virtual appliance:
#      a CompactFlash card holding the golden, and a blank 4 GiB hard disk;
#   2. boot the CF through the firmware, pick "Recover to factory default" in
#      its GRUB menu on the serial console and type the recovery password,
#      show zshield's console lines as they come; zshield reboots when done,
#      which ends this VM;
#   3. boot the restored hard disk alone, through the firmware and its own GRUB;
#   4. summarise: boot durations, root device, logical volumes, report.
# usage: qemu/demo.sh [--firmware bios|uefi]
#   bios (default): SeaBIOS; uefi: OVMF with Secure Boot enforced and
#   Microsoft's keys (the card's signed shim and GRUB; the disk alone through
#   its ESP's signed shim and GRUB).
# Work files: <repo>/build/demo/. Exits non-zero if any step fails.
set -euo pipefail

usage() { echo "usage: qemu/demo.sh [--firmware bios|uefi]" >&2; exit 2; }
firmware=bios
if [ $# -gt 0 ]; then
    [[ $# = 2 && "$1" = --firmware ]] || usage
    firmware=$2
fi
case $firmware in bios | uefi) ;; *) usage ;; esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
golden=${ZSHIELD_GOLDEN:-$repo/build/golden}
work=$repo/build/demo
timeout=${ZSHIELD_VM_TIMEOUT:-900}

say() { printf '\n== %s\n' "$*"; }
die() { echo "demo: FAILED: $*" >&2; exit 1; }

say "building the golden image"
"$repo/qemu/build-golden.sh" "$golden"

say "a fresh appliance: CF with the golden + blank 4 GiB disk in $work"
rm -rf "$work"
mkdir -p "$work"
cp --sparse=always "$golden/cf.img" "$work/cf.img"
truncate -s 4G "$work/disk.img"
# The board: its firmware and, for UEFI, its variable store kept between boots.
board=(--firmware "$firmware")
[ "$firmware" = bios ] || board+=(--vars "$work/nvram.fd")

entry="Recover to factory default"
index=$(grep -E "^(menuentry|submenu) '" "$golden/grub.cfg" | cut -d"'" -f2 | grep -nxF "$entry" | cut -d: -f1)
[ -n "$index" ] || die "the CF menu has no '$entry' entry ($golden/grub.cfg)"
# The test golden's recovery entries have a GRUB password: type its login.
login=$(grep '^GOLDEN_GRUB_LOGIN=' "$golden/golden.env" | cut -d= -f2-)
say "factory reset: the CF's GRUB menu, entry '$entry'${login:+, login ${login%%:*}}"
t0=$SECONDS
"$repo/qemu/vm.sh" --log "$work/reset.log" --timeout "$timeout" --golden "$golden" \
    "${board[@]}" --cf "$work/cf.img" --disk "$work/disk.img" --pick "$((index - 1)) $login" &
vm=$!
# zshield's lines, live; tail stops by itself once vm.sh has returned.
tail -n +1 -F -s 0.2 --pid="$vm" "$work/reset.log" 2>/dev/null |
    grep --line-buffered -ao 'zshield: .*' | sed -u -e 's/\r$//' -e 's/^/  | /' || :
wait "$vm" || :
reset_s=$((SECONDS - t0))
grep -aq 'zshield: error:' "$work/reset.log" && die "zshield reported an error (log: $work/reset.log)"
grep -aq 'zshield: done:' "$work/reset.log" || die "no 'zshield: done:' (log: $work/reset.log)"

case $firmware in
bios) say "booting the restored disk alone (SeaBIOS -> GRUB on the disk)" ;;
uefi) say "booting the restored disk alone (OVMF -> the signed shim and GRUB on the disk's ESP)" ;;
esac
cat >"$work/summary.cmd" <<'EOF'
for f in /var/log/zshield/*.json; do [ -e "$f" ] && echo "ZTEST report=$f"; done
echo "ZTEST secure-boot=$(mokutil --sb-state 2>&1 | head -n 1)"
df -h / /boot /home /var/log/audit | sed 's/^/ZTEST df /'
EOF
t0=$SECONDS
"$repo/qemu/vm.sh" --log "$work/boot.log" --timeout "$timeout" --golden "$golden" \
    "${board[@]}" --disk "$work/disk.img" --cmd "$work/summary.cmd" || :
boot_s=$((SECONDS - t0))

value() { grep -a "^ZTEST $1=" "$work/boot.log" | tail -n 1 | cut -d= -f2- | tr -d '\r'; }
lines() { grep -a "^ZTEST $1 " "$work/boot.log" | cut -d' ' -f3- | tr -d '\r' | sed 's/^/    /'; }
grep -aq '^ZTEST-END' "$work/boot.log" || die "the restored disk did not boot to the end (log: $work/boot.log)"
root=$(value root-source)

say "summary"
echo "  factory reset boot:  ${reset_s} s   ($(grep -ao 'zshield: done:.*' "$work/reset.log" | tr -d '\r' | tail -n 1))"
echo "  restored disk boot:  ${boot_s} s   (probe ran $(value uptime) s after the kernel started)"
echo "  root file system:    $root"
echo "  /boot:               $(value boot-source)"
echo "  firmware:            $firmware ($(value secure-boot))"
echo "  report:              $(value report)"
echo "  logical volumes:"
lines lvs
echo "  file systems:"
lines df
echo "  console logs:        $work/reset.log, $work/boot.log"
[ "$root" = /dev/mapper/vgroup-lv--root ] || die "the restored system's root is $root, not lv-root"
echo
echo "demo: OK"
