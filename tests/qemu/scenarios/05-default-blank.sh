# default-blank: a fresh unit on the factory line, a current board: UEFI with
# Secure Boot enforced (OVMF, Microsoft's keys; the card's signed shim, GRUB
# and kernel). The CF and a blank disk, the CF first in the firmware's boot
# order (the product's documented order), and nobody at the keyboard: the
# card's start entry (the first, its default) boots zshield's automatic mode,
# which provisions the disk (the golden copied block by block, its
# provisioning files and hooks, GRUB for BIOS and for UEFI on its ESP), runs
# the factory test, shows its PASS block and powers off. The next power-on, in
# the same order and again without a key, the card's GRUB finds the complete
# system on the disk and hands the boot over to the disk's own menu: the
# restored system comes up with the full layout, a faithful copy and the
# golden's provisioning, Secure Boot still on, and the firmware's entry for
# the disk right after the card's; once (BootNext) the next power-on starts
# that entry, the disk's own menu. The disk it makes is the one the BIOS
# scenarios start from: the disk boots both ways.
target=$ZT_DIR/target.img
zt_new_disk "$target"
# The other scenarios start from this disk: they wait for it.
zt_cache_lock provisioned

zt_vm auto --firmware uefi --vars "$ZT_DIR/nvram.fd" --cf "$ZT_CF" --disk "$target"
zt_assert_menu
zt_assert_line "Start the hard disk system, or install it"
zt_assert_booted_with "zshield_recovery=auto"
zt_assert_line "zshield: automatic provisioning starting"
zt_assert_line "secureboot: Secure boot enabled"
# On virtio-scsi (q35 has no IDE the kernel drives) the disks' names vary.
zt_assert_line_re "copy the golden root /dev/sd[ab]2 onto /dev/mapper/vgroup-lv--root block by block, checking each range"
zt_assert_line_re "copy the golden /boot /dev/sd[ab]1 onto /dev/sd[ab]2 block by block, checking each range"
zt_assert_line_re "make FAT for the EFI system partition on /dev/sd[ab]4"
zt_assert_line_re "install GRUB on /dev/sd[ab] for BIOS and on /dev/sd[ab]4 for UEFI"
zt_assert_line "zshield: plan: the disk boots through BIOS and UEFI with Secure Boot (boot.firmware = auto; this machine started through UEFI)"
zt_assert_line_re "make the firmware's boot entry 'zshield' for .EFI.debian.shimx64.efi on /dev/sd[ab]4, next in its boot order after Boot[0-9A-F]{4}, the entry this machine started from"
zt_assert_line_re "the firmware's boot entry Boot[0-9A-F]{4} 'zshield' is made; read back, the boot order is Boot[0-9A-F]{4}, Boot[0-9A-F]{4}, .*; the entry starts /dev/sd[ab]4"
zt_assert_line "hook 10_first.sh: succeeded"
zt_assert_line "factory test 90_factory_test.sh: passed"
zt_assert_line "zshield: FACTORY TEST: PASS (90_factory_test.sh in"
zt_assert_line "zshield: done: auto recovery finished; powering off"
zt_assert_no_line "zshield: error:"
zt_assert_line "reboot: Power down"
zt_keep_provisioned "$target"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh" "$ZT_CHECKS/provisioned.sh" - <<'SCRIPT'
check booted-without-recovery bash -c '! grep -q zshield_recovery /proc/cmdline'
check disk-menu-has-recovery grep -q "^menuentry 'Recover to latest backup'" /boot/grub/grub.cfg
check disk-menu-has-no-start-entry bash -c '! grep -q zshield-start /boot/grub/grub.cfg'
check disk-factory-default-names-the-golden grep -q "zshield_recovery=default zshield.golden=UUID=$GOLDEN_ROOT_UUID" /boot/grub/grub.cfg
check disk-menu-has-the-password grep -q '^password_pbkdf2 zshield grub.pbkdf2.sha512.' /boot/grub/grub.cfg
check golden-only-options-gone bash -c '! grep -q fsck.mode=skip /boot/grub/grub.cfg && test ! -e /etc/default/grub.d/zshield-golden.cfg'
check report-of-the-automatic-mode bash -c 'ls /var/log/zshield/*-auto.json'
check secure-boot-enforced bash -c 'mokutil --sb-state | grep -qx "SecureBoot enabled"'
# Made on UEFI, the same menu as made on BIOS: no unrestricted way into the
# firmware's setup.
check disk-menu-has-no-firmware-setup-entry bash -c '! grep -q "UEFI Firmware Settings" /boot/grub/grub.cfg'
# The disk's ESP: Debian's signed shim and GRUB in EFI/debian, with its stub
# that finds /boot, and again at the removable-media path; mounted read-only.
esp=$(lsblk -lnpo PATH,LABEL | awk '$2 == "ZSHIELD-ESP" { print $1 }')
mkdir -p /run/ztest-esp
check esp-mounts mount -o ro "$esp" /run/ztest-esp
check esp-has-the-signed-shim cmp /usr/lib/shim/shimx64.efi.signed /run/ztest-esp/EFI/debian/shimx64.efi
check esp-has-the-signed-grub cmp /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed /run/ztest-esp/EFI/debian/grubx64.efi
check esp-removable-path-is-the-shim cmp /usr/lib/shim/shimx64.efi.signed /run/ztest-esp/EFI/BOOT/BOOTX64.EFI
check esp-stub-finds-boot grep -q "$(findmnt -no UUID /boot)" /run/ztest-esp/EFI/debian/grub.cfg
echo "ZTEST esp-files=$(cd /run/ztest-esp && find . -type f | sort | tr '\n' ' ')"
umount /run/ztest-esp
# The firmware's own entry for the disk, to its ESP's shim (boards that boot
# only the entries of their order need it).
echo "ZTEST efi-vars=$(efibootmgr | tr '\n' ' ')"
check firmware-entry-for-the-disk bash -c "efibootmgr -v | grep -E '^Boot[0-9A-F]{4}\* zshield\s+HD\(4,GPT,$(lsblk -no PARTUUID "$esp"),.*File\(.EFI.debian.shimx64.efi\)'"
# ... second in the order, right after the card's (this boot's) entry.
card_then_disk() {
    local vars current order disk
    vars=$(efibootmgr)
    current=$(sed -n 's/^BootCurrent: //p' <<<"$vars")
    order=$(sed -n 's/^BootOrder: //p' <<<"$vars")
    disk=$(sed -nE 's/^Boot([0-9A-F]{4})\* zshield\b.*/\1/p' <<<"$vars")
    [[ "$order" == "$current,$disk,"* ]] || { echo "BootCurrent $current, BootOrder $order, zshield $disk"; return 1; }
}
check boot-order-card-then-disk card_then_disk
# The next power-on, once, starts that entry (BootNext): the card's comes
# first, and without the card OVMF's own entry for the disk comes before it.
check next-boot-through-the-disks-entry bash -c 'efibootmgr -q -n "$(efibootmgr | sed -nE "s/^Boot([0-9A-F]{4})\* zshield\b.*/\1/p")"'
SCRIPT
zt_vm restored --firmware uefi --vars "$ZT_DIR/nvram.fd" --cf "$ZT_CF" --disk "$target" \
    --cmd "$ZT_DIR/restored.cmd"
zt_assert_line "Booting the hard disk system on"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/restored.cmd"
zt_info "the disk's ESP: $(zt_value esp-files)"
zt_info "the firmware's boot variables: $(zt_value efi-vars)"
zt_info "the reset's steps, from the report (s): $(zt_value reset-step-seconds)"
zt_info "golden copy block by block, checked, from the report: root $(zt_value copy-root-blocks-seconds) s (copy and check $(zt_value copy_seconds) s, resize2fs $(zt_value resize_seconds) s, e2fsck -fn $(zt_value check_seconds) s); /boot $(zt_value copy-boot-blocks-seconds) s; its copy in the root for backups (rsync) $(zt_value keep-boot-copy-seconds) s"

# The disk's entry starts the disk's own signed shim and GRUB (their menu).
zt_vm disk-entry --firmware uefi --vars "$ZT_DIR/nvram.fd" --cf "$ZT_CF" --disk "$target" \
    --until "Use the ^ and v keys"
zt_assert_line_re 'BdsDxe: starting Boot[0-9A-F]{4} "zshield" from HD\(4,GPT,'
zt_assert_line "Recover to latest backup"
zt_assert_no_line "Start the hard disk system, or install it"
