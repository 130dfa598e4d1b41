#!/bin/bash
# dracut module "zshield": ships the zshield binary, its configuration and the
# tools it drives into the initramfs. Every decision is taken by the binary.
# dracut sets moddir, initdir, systemdsystemunitdir and SYSTEMCTL.
# shellcheck disable=SC2154

check() {
    require_binaries zshield lvm mkfs.ext4 e2fsck resize2fs tune2fs rsync udevadm || return 1
    return 0
}

depends() {
    echo lvm dm rootfs-block
    return 0
}

installkernel() {
    # FAT and its code pages: the EFI system partition of a disk made for UEFI.
    # dm-thin-pool: the thin layout's root (dracut's lvm module brings
    # thin_check when thin-provisioning-tools is installed).
    hostonly='' instmods dm-mod dm-snapshot dm-thin-pool ext4 vfat nls_cp437 nls_ascii nls_iso8859-1 nls_utf8
}

install() {
    inst_simple /usr/sbin/zshield
    if [ -e /etc/zshield/zshield.conf ]; then
        inst_simple /etc/zshield/zshield.conf
    else
        dwarn "zshield: /etc/zshield/zshield.conf is missing: every recovery from this initramfs will be refused"
    fi
    # The vendor's public keys: a factory reset with require_signed_map
    # takes only a card whose block map one of them signed.
    local key
    for key in /etc/zshield/keys/*.pub; do
        [ -e "$key" ] && inst_simple "$key"
    done
    inst_multiple lvm mkfs.ext4 mke2fs e2fsck resize2fs tune2fs rsync udevadm
    # Without it (a golden without dosfstools) zshield makes BIOS-only disks.
    inst_multiple -o mkfs.fat
    # dracut's lvm module brings it when thin-provisioning-tools is installed;
    # without it zshield refuses factory resets to the thin layout.
    command -v thin_check >/dev/null ||
        dwarn "zshield: thin_check is missing (thin-provisioning-tools): factory resets to the thin layout will be refused"
    [ -e /etc/mke2fs.conf ] && inst_simple /etc/mke2fs.conf

    if dracut_module_included "systemd"; then
        inst_simple "$moddir/zshield-recovery.service" "$systemdsystemunitdir/zshield-recovery.service"
        $SYSTEMCTL -q --root "$initdir" add-wants initrd.target zshield-recovery.service
    else
        inst_hook pre-mount 50 "$moddir/zshield-recovery.sh"
    fi
}
