# menu-golden: the CF booted through UEFI with Secure Boot enforced (OVMF
# with Microsoft's keys: the card's signed shim, signed GRUB and the signed
# kernel) into the same GRUB menu as on BIOS. A person without the recovery
# password picks "Recover to factory default", then tries to edit an entry and
# to open GRUB's command line: each asks for the login and refuses a wrong
# one. Then the normal entry (the second: the card's start entry comes first)
# boots the golden read-only without a password, with Secure Boot on and the
# kernel locked down, zshield does nothing and prints nothing, and `zshield
# verify-golden` finds the card in its slot as its block map says. The other
# scenarios boot the card through SeaBIOS.
target=$ZT_DIR/target.img
zt_new_disk "$target"
target_sha=$(zt_sha "$target")
wrong=$(zt_grub_login | cut -d: -f1):not-the-password

zt_cmd "$ZT_DIR/golden.cmd" - <<'SCRIPT'
check root-mounted-ro bash -c 'findmnt -no OPTIONS / | tr , "\n" | grep -qx ro'
check write-to-root-fails bash -c '! touch /ztest-write 2>/dev/null'
check root-by-uuid grep -q "root=UUID=$GOLDEN_ROOT_UUID ro " /proc/cmdline
check no-recovery-arg bash -c '! grep -q zshield_recovery /proc/cmdline'
check no-fsck-of-the-golden grep -qw fsck.mode=skip /proc/cmdline
check booted-through-uefi test -d /sys/firmware/efi
check secure-boot-enforced bash -c 'mokutil --sb-state | grep -qx "SecureBoot enabled"'
# On virtio-scsi (a UEFI board's q35 has no IDE the kernel drives) the names
# of the two disks are not stable: the card is the disk with its serial.
card=/dev/$(lsblk -ndo NAME,SERIAL | awk '$2 == "ZGOLDEN" { print $1 }')
check root-on-the-card expect_eq "root" "$(findmnt -no SOURCE /)" "$(lsblk -lnpo PATH,LABEL "$card" | awk '$2 == "golden-root" { print $1 }')"
# `zshield recover` without the argument, as the initramfs runs it: silent,
# and what it costs a normal boot (a figure for the notes, beside /bin/true:
# under TCG an exec costs tens of ms, so 20 runs of each).
out=$(for _ in $(seq 20); do /usr/sbin/zshield recover || echo "rc=$?"; done 2>&1)
check zshield-silent-without-the-argument expect_eq "output of 20 runs" "${out:-none}" none
start=$(date +%s%N)
for _ in $(seq 20); do /usr/sbin/zshield recover; done
echo "ZTEST noop-cost-us=$((($(date +%s%N) - start) / 20000))"
start=$(date +%s%N)
for _ in $(seq 20); do /bin/true; done
echo "ZTEST true-cost-us=$((($(date +%s%N) - start) / 20000))"
# The card in its slot matches the block map it carries (what an OEM runs
# after writing a card), and checking it writes nothing.
verify=$(zshield verify-golden "$card" 2>&1)
verified=$?
echo "ZTEST verify-golden=$(tail -n 1 <<<"$verify" | sed "s/^zshield: //")"
check golden-card-matches-its-block-map test "$verified" = 0
SCRIPT
zt_vm golden --firmware uefi --cf "$ZT_CF" --disk "$target" --cmd "$ZT_DIR/golden.cmd" \
    --pick "$(zt_menu_index "Recover to factory default") $wrong e $wrong c $wrong $(zt_menu_index "Debian GNU/Linux")"
zt_assert_menu
zt_assert_count_min "Enter password:" 3
zt_assert_count_min "access denied" 3
zt_assert_line "secureboot: Secure boot enabled"
zt_assert_line "Kernel is locked down from EFI Secure Boot"
zt_assert_checks "$ZT_DIR/golden.cmd"
zt_info "$(zt_value verify-golden)"
zt_info "normal-boot cost of zshield in the guest: $(zt_value noop-cost-us) µs a run (/bin/true: $(zt_value true-cost-us) µs)"
zt_assert_no_line "zshield: "
zt_assert_same_sha "$target" "$target_sha" "target disk"
