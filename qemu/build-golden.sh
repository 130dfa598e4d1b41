#!/bin/bash
# Builds the golden CompactFlash image of the appliance: a Debian root with
# zshield installed, its dracut initramfs, and cf.img (msdos label: p1 golden
# /boot, p2 golden root, p3 reserved, p4 EFI system partition). It boots on
# both firmwares into one menu (the normal entry and zshield's recovery
# entries, on p1): BIOS through GRUB in the MBR, UEFI (Secure Boot on or off)
# through Debian's signed shim and GRUB at the ESP's removable-media path.
#
# usage: qemu/build-golden.sh [--variant product|test] [OUTDIR]
#   product   the image an OEM writes to the card (make image; build/image)
#   test      the same plus the QEMU tests' overlay and fixtures (the default;
#             build/golden)
#
# Phases, in the manner of diskimage-builder:
#   root          mmdebstrap a root tarball, cached by its package list
#   product       `make install` into a scratch tree, only to know whether it changed
#   install       staging root = root tarball + `make install` + overlays (+ fixtures)
#   initramfs     dracut inside the staging root
#   block-device  ext4 images filled with mkfs.ext4 -d, the ESP with mtools (no
#                 loop mounts), cf.img
#   bootloader    the golden's own grub-install and grub-mkconfig on cf.img (loop device)
#   blockmap      the block map of the card's file systems, on its reserved
#                 partition (zshield golden-map), checked (zshield verify-golden)
#   finalise      kernel, initrd, menu and facts for vm.sh and the tests
#   convert       cf.qcow2, and SHA256SUMS of both images and the block map
# Everything after `root` is skipped when its inputs did not change.
#
# Outputs in OUTDIR: cf.img (raw, for dd), cf.qcow2, cf.blockmap (the map that
# cf.img carries), SHA256SUMS, grub.cfg (the CF menu), vmlinuz, initrd.img,
# golden.env.
# Needs root (chroot, loop devices, file capabilities, ownership), mmdebstrap,
# e2fsprogs, dosfstools, mtools, fdisk, qemu-utils.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
variant_name="test"
if [ "${1:-}" = --variant ]; then
    variant_name=${2:-}
    shift 2
fi
case $variant_name in
    product) default_out=$repo/build/image ;;
    test) default_out=$repo/build/golden ;;
    *) echo "build-golden: error: unknown variant '$variant_name' (product or test)" >&2; exit 2 ;;
esac
outdir=$(realpath -m "${1:-$default_out}")
# The tests' zshield has the test failpoint; the product's never.
make_args=()
[ "$variant_name" = product ] || make_args=(FEATURES=failpoints)
# The vendor's minisign public keys (*.pub), installed into /etc/zshield/keys/:
# `zshield upgrade` trusts bundles signed with them. The product's come from
# ZSHIELD_VENDOR_KEYS (make image VENDOR_KEYS=DIR), the test golden has the
# test vendor's (tests/qemu/keys).
# With keys, the card's block map is signed with the vendor's secret key
# (ZSHIELD_VENDOR_SIGNING_KEY, make image VENDOR_SIGNING_KEY=FILE, a minisign
# key without a password) and the image's zshield.conf gets
# require_signed_map = true: a factory reset takes only a card so signed.
vendor_keys=${ZSHIELD_VENDOR_KEYS:-}
signing_key=${ZSHIELD_VENDOR_SIGNING_KEY:-}
if [ "$variant_name" != product ]; then
    vendor_keys=$repo/tests/qemu/keys
    signing_key=$repo/tests/qemu/keys/ztest-vendor.key
fi
# Upgrade bundles applied at image time (their manifests and packages):
# ZSHIELD_BUNDLES="a.zsb b.zsb" (make image BUNDLES=...), signed with a key of
# vendor_keys; the test golden applies one made from qemu/test-bundle. Each
# is copied into OUTDIR/bundles/ and listed in SHA256SUMS.
read -r -a bundles <<<"${ZSHIELD_BUNDLES:-}"
test_bundle=$repo/qemu/test-bundle
if [ ${#bundles[@]} -gt 0 ] && [ -z "$vendor_keys" ]; then
    echo "build-golden: error: bundles without the vendor's keys (VENDOR_KEYS=DIR) that signed them" >&2
    exit 2
fi
if [ -n "$vendor_keys" ]; then
    if ! compgen -G "$vendor_keys/*.pub" >/dev/null; then
        echo "build-golden: error: no public key (*.pub) in $vendor_keys" >&2
        exit 2
    fi
    if [ ! -f "$signing_key" ]; then
        echo "build-golden: error: vendor keys without the secret key that signs the card's block map: give VENDOR_SIGNING_KEY=FILE" >&2
        exit 2
    fi
fi
# USER:PASSWORD of the recovery entries' GRUB password: the product has none.
grub_login=""
cache=${ZSHIELD_CACHE:-$HOME/.cache/zshield}
work=$outdir/work
staging=$work/root
image_overlay=$repo/qemu/image-overlay
test_overlay=$repo/qemu/test-overlay

suite=bookworm
variant=minbase
# The EFI packages put Debian's signed shim and GRUB beside grub-pc (which
# conflicts with grub-efi-amd64, not with its -bin and -signed parts); the
# cloud kernel is the signed one.
packages=linux-image-cloud-amd64,lvm2,thin-provisioning-tools,grub-pc,grub-efi-amd64-bin,grub-efi-amd64-signed,shim-signed,efibootmgr,dosfstools,dracut,systemd,systemd-sysv,udev,rsync,e2fsprogs,kmod,procps,acl,attr,libcap2-bin,util-linux

# Where the fixtures that prove a faithful copy of the golden live (the tests'
# check scripts use the same paths).
fixtures=/usr/local/share/zshield-fixtures
cap_fixture=/usr/local/bin/zshield-cap-fixture

log() { printf 'build-golden: %s\n' "$*"; }
die() { log "error: $*" >&2; exit 1; }

phase() {
    local name=$1 t0=$SECONDS
    shift
    log "phase $name"
    "$@"
    log "phase $name: done in $((SECONDS - t0)) s"
}

[ "$(id -u)" = 0 ] || die "must run as root (chroot, setcap, chown)"

# ---------------------------------------------------------------- root
# The package list names the tarball: a changed list builds a new one, an
# unchanged one reuses the cache (mmdebstrap takes over a minute).
root_key=$(printf '%s\n' "$suite" "$variant" "$packages" | sha256sum | cut -c1-16)
root_tar=$cache/root-$suite-$root_key.tar

# The machine's own apt sources, never a mirror's name written here.
apt_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && grep -qv '^[[:space:]]*\(#\|$\)' "$f" && printf '%s\n' "$f"
    done
    return 0
}

phase_root() {
    if [ -s "$root_tar" ]; then
        log "reusing $root_tar"
        return
    fi
    local sources
    mapfile -t sources < <(apt_sources)
    [ ${#sources[@]} -gt 0 ] || die "no apt sources found in /etc/apt"
    mkdir -p "$cache"
    log "mmdebstrap $suite ($packages) from ${sources[*]}"
    # Written under a temporary name so that an interrupted run is never reused.
    local partial=${root_tar%.tar}.partial.tar
    mmdebstrap --quiet --format=tar --variant="$variant" --include="$packages" \
        "$suite" "$partial" "${sources[@]}"
    mv "$partial" "$root_tar"
}

# ---------------------------------------------------------------- product
# What `make install` produces is hashed together with the overlay and this
# script: equal hashes mean the previous golden is still the right one.
phase_product() {
    rm -rf "$work/product"
    mkdir -p "$work/product"
    make -s -C "$repo" install DESTDIR="$work/product" "${make_args[@]}"
    inputs_hash=$(
        {
            echo "$root_key"
            echo "$variant_name"
            tar_hash "$work/product"
            tar_hash "$image_overlay"
            [ "$variant_name" = product ] || tar_hash "$test_overlay"
            [ "$variant_name" = product ] || tar_hash "$test_bundle"
            [ ${#bundles[@]} -eq 0 ] || sha256sum "${bundles[@]}"
            [ -z "$vendor_keys" ] || cat "$vendor_keys"/*.pub "$signing_key"
            sha256sum <"${BASH_SOURCE[0]}"
        } | sha256sum | cut -d' ' -f1
    )
}

tar_hash() {
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C "$1" . | sha256sum
}

up_to_date() {
    local f
    for f in cf.img cf.qcow2 cf.blockmap SHA256SUMS grub.cfg vmlinuz initrd.img golden.env stamp; do
        [ -e "$outdir/$f" ] || return 1
    done
    [ "$(cat "$outdir/stamp")" = "$inputs_hash" ]
}

# ---------------------------------------------------------------- install
phase_install() {
    rm -rf "$staging"
    mkdir -p "$staging"
    tar -C "$staging" --xattrs --xattrs-include='*' --numeric-owner -xpf "$root_tar"

    make -s -C "$repo" install DESTDIR="$staging" "${make_args[@]}"
    check_failpoint

    # The product enables the daily backup (it refuses on the golden itself,
    # whose root is not lv-root, and runs on every disk made from it) and the
    # health checks that mark a disk's boot good and the deadline that reboots
    # a boot not marked good in time (nothing to mark on the golden).
    mkdir -p "$staging/etc/systemd/system/timers.target.wants" \
        "$staging/etc/systemd/system/multi-user.target.wants" \
        "$staging/etc/systemd/system/sysinit.target.wants"
    ln -sf /usr/lib/systemd/system/zshield-backup.timer \
        "$staging/etc/systemd/system/timers.target.wants/zshield-backup.timer"
    ln -sf /usr/lib/systemd/system/zshield-boot-ok.service \
        "$staging/etc/systemd/system/multi-user.target.wants/zshield-boot-ok.service"
    ln -sf /usr/lib/systemd/system/zshield-boot-deadline.service \
        "$staging/etc/systemd/system/sysinit.target.wants/zshield-boot-deadline.service"

    rsync -rlpt --chown=0:0 "$image_overlay/" "$staging/"
    if [ -n "$vendor_keys" ]; then
        install -d -m 0755 "$staging/etc/zshield/keys"
        install -m 0644 "$vendor_keys"/*.pub "$staging/etc/zshield/keys/"
        log "vendor keys in /etc/zshield/keys: $(cd "$vendor_keys" && echo ./*.pub | sed 's|\./||g')"
    fi
    # grub-efi-amd64-bin's "UEFI Firmware Settings" entry: unrestricted (as
    # every entry but the recovery ones), it would let anyone at the console
    # into the firmware's setup, Secure Boot's switch included, and a disk
    # reset on a UEFI board would get it and one reset on BIOS not. Off.
    chmod -x "$staging/etc/grub.d/30_uefi-firmware"
    check_grub_settings
    [ "$variant_name" = product ] || install_test_parts
    [ -z "$vendor_keys" ] || require_signed_map "$staging/etc/zshield/zshield.conf"
    [ "$variant_name" = product ] || make_test_bundle
    apply_bundles
    restrict_password_files "$staging/etc/default"
}

# The test golden's image-time bundle, signed with the test vendor's key.
make_test_bundle() {
    local tree=$work/test-bundle
    rm -rf "$tree"
    cp -r "$test_bundle/data" "$tree"
    mkdir -p "$tree/repos"
    dpkg-deb --root-owner-group -b "$test_bundle/deb" "$tree/repos/ztest-image-bundle_1.0_all.deb" >/dev/null
    "$repo/scripts/zshield-bundle" --key "$signing_key" --name ztest-image --version 1.0 \
        "$tree" "$work/ztest-image-1.0.zsb" >/dev/null
    bundles+=("$work/ztest-image-1.0.zsb")
}

# Each bundle's manifest and packages into the staging root, by the image's
# own zshield (the same checks as zshield upgrade: signature, architecture).
apply_bundles() {
    local b out
    [ ${#bundles[@]} -gt 0 ] || return 0
    mount_chroot
    for b in "${bundles[@]}"; do
        out=$("$work/product/usr/sbin/zshield" upgrade --image "$staging" --keys "$vendor_keys" "$b" 2>&1) ||
            die "bundle $b: $(tail -n 1 <<<"$out")"
        log "$(tail -n 1 <<<"$out" | sed 's/^zshield: //')"
    done
    umount_chroot
}

# The vendor ships keys: a factory reset takes only a card whose block map
# the vendor signed. A top-level key, so before the first table.
require_signed_map() { # CONF
    grep -q '^require_signed_map' "$1" && return 0
    {
        echo "# The vendor ships keys (/etc/zshield/keys): a factory reset takes only a"
        echo "# card whose block map one of them signed (build-golden.sh)."
        echo "require_signed_map = true"
        cat "$1"
    } >"$1.new"
    mv "$1.new" "$1"
}

# GRUB's password hash is for root's eyes only, on the card and on every disk
# made from it (their copies keep the mode): the defaults that hold it.
restrict_password_files() { # DIR
    local f
    while IFS= read -r f; do
        chmod 0600 "$f"
        log "GRUB password hash in ${f#"$staging"}: 0600"
    done < <(grep -rlE '^[[:space:]]*(export[[:space:]]+)?GRUB_ZSHIELD_PASSWORD=' "$1" 2>/dev/null || :)
}

# The settings of zshield's GRUB scripts: GRUB_DISABLE_ZSHIELD=true takes the
# recovery entries away; without GRUB_ZSHIELD_PASSWORD there is no password,
# and a malformed one fails grub-mkconfig (the old menu stays).
check_grub_settings() {
    local cfg=$staging/etc/default/grub.d/zz-zshield-build-check.cfg out
    echo "GRUB_DISABLE_ZSHIELD=true" >"$cfg"
    out=$(chroot "$staging" /etc/grub.d/40_zshield 2>&1) || die "40_zshield failed with GRUB_DISABLE_ZSHIELD=true: $out"
    [ -z "$out" ] || die "40_zshield still printed with GRUB_DISABLE_ZSHIELD=true: $out"
    out=$(chroot "$staging" /etc/grub.d/01_zshield_password 2>&1) || die "01_zshield_password failed without a password: $out"
    [ -z "$out" ] || die "01_zshield_password printed without a password: $out"
    echo "GRUB_ZSHIELD_PASSWORD=secret" >"$cfg"
    ! out=$(chroot "$staging" /etc/grub.d/01_zshield_password 2>&1) || die "01_zshield_password took a password that is not a PBKDF2 hash: $out"
    rm -f "$cfg"
}

# The failpoint's line is in the binary exactly when the feature is.
check_failpoint() {
    local has=no
    grep -aq 'cutting the power' "$staging/usr/sbin/zshield" && has=yes
    case $variant_name:$has in
        product:yes) die "the product's zshield carries the test failpoint (built with FEATURES=failpoints?)" ;;
        test:no) die "the test golden's zshield has no test failpoint (FEATURES=failpoints)" ;;
    esac
    log "zshield test failpoint: $has"
}

install_test_parts() {
    # The test overlay comes last: its zshield.conf replaces the default one.
    rsync -rlpt --chown=0:0 "$test_overlay/" "$staging/"
    # Test only: the probe reports each boot; no serial getty, whose vhangup of
    # ttyS0 would cut the probe's output (and there is no password anyway).
    mkdir -p "$staging/etc/systemd/system/multi-user.target.wants"
    ln -sf /etc/systemd/system/zshield-test-probe.service \
        "$staging/etc/systemd/system/multi-user.target.wants/zshield-test-probe.service"
    ln -sf /dev/null "$staging/etc/systemd/system/serial-getty@ttyS0.service"

    # A GRUB password on the recovery entries (grub/01_zshield_password), made
    # by the golden's own grub-mkpasswd-pbkdf2; the tests type the login at
    # GRUB's prompt (GOLDEN_GRUB_LOGIN), the disks zshield provisions inherit it.
    grub_login=zshield:ztest-recovery
    local hash
    hash=$(printf '%s\n%s\n' "${grub_login#*:}" "${grub_login#*:}" | chroot "$staging" grub-mkpasswd-pbkdf2 |
        sed -n 's/^PBKDF2 hash of your password is //p')
    [ -n "$hash" ] || die "grub-mkpasswd-pbkdf2 in the golden made no hash"
    printf '%s\n' "# TEST ONLY: the recovery entries' GRUB password (login $grub_login)" \
        "GRUB_ZSHIELD_PASSWORD=$hash" >"$staging/etc/default/grub.d/zshield-password.cfg"

    # Fixtures: what a careless copy loses (capabilities, ACLs, hard links,
    # holes, owners without a passwd entry).
    local fx=$staging$fixtures
    mkdir -p "$fx"
    cp "$staging/bin/true" "$staging$cap_fixture"
    setcap cap_net_raw+ep "$staging$cap_fixture"
    echo "one file, two names" >"$fx/hardlink-a"
    ln -f "$fx/hardlink-a" "$fx/hardlink-b"
    echo "readable by uid 1234 through an ACL" >"$fx/acl-file"
    setfacl -m u:1234:r "$fx/acl-file"
    rm -f "$fx/sparse-64M"
    truncate -s 64M "$fx/sparse-64M"
    printf 'head' | dd of="$fx/sparse-64M" conv=notrunc status=none
    printf 'tail' | dd of="$fx/sparse-64M" bs=1 seek=$((64 * 1024 * 1024 - 4)) conv=notrunc status=none
    echo "owned by a uid that has no passwd entry" >"$fx/orphan-uid"
    chown 4321:4321 "$fx/orphan-uid"
}

# ---------------------------------------------------------------- initramfs
chroot_mounts=()

umount_chroot() {
    local i
    for ((i = ${#chroot_mounts[@]} - 1; i >= 0; i--)); do
        umount "${chroot_mounts[i]}" 2>/dev/null || umount -l "${chroot_mounts[i]}" || :
    done
    chroot_mounts=()
}
loop_dev=""
cleanup() {
    umount_chroot
    [ -z "$loop_dev" ] || losetup -d "$loop_dev" || :
}
# Never leave the host's /proc, /sys or /dev bound into a tree, nor a loop device.
trap cleanup EXIT

mount_chroot() {
    mount -t proc proc "$staging/proc"
    chroot_mounts+=("$staging/proc")
    mount -t sysfs sysfs "$staging/sys"
    chroot_mounts+=("$staging/sys")
    mount --bind /dev "$staging/dev"
    chroot_mounts+=("$staging/dev")
}

phase_initramfs() {
    local kvers
    mapfile -t kvers < <(ls "$staging/lib/modules")
    [ ${#kvers[@]} -eq 1 ] || die "expected one kernel in the golden, found: ${kvers[*]}"
    kver=${kvers[0]}
    log "kernel $kver"

    mount_chroot
    if ! chroot "$staging" dracut --force --no-hostonly --kver "$kver" "/boot/initrd.img-$kver" \
        >"$work/dracut.log" 2>&1; then
        tail -n 40 "$work/dracut.log" >&2
        die "dracut failed (log: $work/dracut.log)"
    fi
    chroot "$staging" lsinitrd "/boot/initrd.img-$kver" >"$work/initrd.list"
    [ "$variant_name" = product ] || initrd_without_systemd
    umount_chroot

    # lsinitrd lists like ls -l: the path is the last field.
    grep -qE ' usr/sbin/zshield$' "$work/initrd.list" ||
        die "usr/sbin/zshield is not in the initrd (listing: $work/initrd.list)"
    # The thin layout: LVM activates no thin pool without thin_check and
    # the kernel's dm-thin-pool.
    grep -qE ' usr/sbin/thin_check( ->|$)' "$work/initrd.list" ||
        die "thin_check is not in the initrd: install thin-provisioning-tools in the golden (listing: $work/initrd.list)"
    grep -qE '/dm-thin-pool\.ko(\.[gx]z|\.zst)?$' "$work/initrd.list" ||
        die "the kernel module dm-thin-pool is not in the initrd (listing: $work/initrd.list)"
    if grep -qE ' usr/lib/systemd/systemd$' "$work/initrd.list"; then
        initrd_systemd=yes
    else
        initrd_systemd=no
    fi
    log "initrd: $(du -h "$staging/boot/initrd.img-$kver" | cut -f1), zshield included, systemd-based: $initrd_systemd"
    if grep -qE ' etc/systemd/system/initrd.target.wants/zshield-recovery.service( ->|$)' "$work/initrd.list"; then
        log "initrd: zshield-recovery.service is wanted by initrd.target"
    fi
}

# A second initrd without systemd, for the scenario that proves the dracut
# module's pre-mount hook. It stays out of the golden's /boot.
initrd_without_systemd() {
    if ! chroot "$staging" dracut --force --no-hostonly --omit "systemd systemd-initrd dracut-systemd" \
        --kver "$kver" "/tmp/initrd-nosystemd.img" >"$work/dracut-nosystemd.log" 2>&1; then
        tail -n 40 "$work/dracut-nosystemd.log" >&2
        die "dracut without systemd failed (log: $work/dracut-nosystemd.log)"
    fi
    chroot "$staging" lsinitrd /tmp/initrd-nosystemd.img >"$work/initrd-nosystemd.list"
    mv "$staging/tmp/initrd-nosystemd.img" "$work/initrd-nosystemd.img"
    grep -qE '/hooks/pre-mount/50-zshield-recovery.sh$' "$work/initrd-nosystemd.list" ||
        die "the initrd without systemd has no zshield pre-mount hook (listing: $work/initrd-nosystemd.list)"
    ! grep -qE ' usr/lib/systemd/systemd$' "$work/initrd-nosystemd.list" ||
        die "the initrd built without systemd still holds systemd"
}

# The test initrd with zshield_recovery=default and a wipe consent in its
# /etc/cmdline.d, as a golden built with them there would have: the disk it
# provisions must still boot normally (zshield takes zshield_recovery=,
# zshield.wipe and zshield.target= from the boot entry only).
# The kernel unpacks archives one after the other: a small one is appended,
# at a multiple of 4 bytes (the zeros between are skipped), or the kernel
# takes it for a compressed archive with a bad magic.
initrd_with_recovery_arg() { # FROM TO
    local extra
    extra=$(mktemp -d)
    mkdir -p "$extra/etc/cmdline.d"
    echo "zshield_recovery=default zshield.wipe" >"$extra/etc/cmdline.d/90-ztest-recovery.conf"
    cp "$1" "$2"
    truncate -s %4 "$2"
    (cd "$extra" && find . | cpio --quiet -o -H newc -R 0:0) >>"$2"
    rm -rf "$extra"
}

# ---------------------------------------------------------------- block-device
# The card's EFI system partition (FAT: the firmware reads nothing else),
# filled without a mount (mtools): at the removable-media path, the one every
# firmware tries on a disk of its boot order without a variable naming it,
# Debian's signed shim as BOOTX64.EFI, its MOK manager, Debian's signed GRUB
# beside it (shim loads grubx64.efi from its own directory), and in that
# GRUB's built-in prefix /EFI/debian a grub.cfg that goes on to the card's
# /boot by its UUID, as grub-install's stub does (without it that GRUB first
# looks for /.disk/info on every disk, with an error line each). No fallback
# (fbx64.efi), which would write boot variables: a card boots in any unit and
# changes nothing in it.
make_esp() { # IMAGE MIB
    local shim=$staging/usr/lib/shim grub=$staging/usr/lib/grub/x86_64-efi-signed
    local f
    for f in "$shim/shimx64.efi.signed" "$shim/mmx64.efi.signed" "$grub/grubx64.efi.signed"; do
        [ -f "$f" ] || die "the golden has no ${f#"$staging"} (shim-signed, grub-efi-amd64-signed)"
    done
    printf '%s\n' "search --no-floppy --fs-uuid --set=root $boot_uuid" \
        "set prefix=(\$root)/grub" "configfile \$prefix/grub.cfg" >"$work/esp-grub.cfg"
    rm -f "$1"
    mkfs.vfat -n GOLDEN-EFI -C "$1" $(($2 * 1024)) >/dev/null
    mmd -i "$1" ::/EFI ::/EFI/BOOT ::/EFI/debian
    mcopy -i "$1" "$shim/shimx64.efi.signed" ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i "$1" "$shim/mmx64.efi.signed" ::/EFI/BOOT/mmx64.efi
    mcopy -i "$1" "$grub/grubx64.efi.signed" ::/EFI/BOOT/grubx64.efi
    mcopy -i "$1" "$work/esp-grub.cfg" ::/EFI/debian/grub.cfg
    fsck.vfat -n "$1" >/dev/null || die "fsck.vfat finds the card's new ESP damaged"
    log "ESP: $(mdir -i "$1" -b -/ :: | sed 's|^::/||' | paste -sd' ')"
}

# Size of an image for a tree: its disk usage + 40 %, in whole MiB, at least $2.
image_mib() {
    local used
    used=$(du -s --block-size=1M "$1" | cut -f1)
    local mib=$(((used * 14 + 9) / 10))
    [ "$mib" -ge "$2" ] || mib=$2
    echo "$mib"
}

# The golden file systems are copied block by block onto bigger volumes and
# grown there (resize2fs): 4 KiB blocks, as a big file system has; a journal
# fit for one of some GiB (resize2fs keeps the journal as it is); and
# metadata_csum_seed, so that a copy takes a UUID of its own without every
# metadata checksum being rewritten.
mkfs_image() { # mkfs_image IMAGE LABEL UUID TREE MIB JOURNAL_MIB
    local inodes
    # Enough inodes for the tree and some more whatever the size heuristic says.
    inodes=$(($(find "$4" | wc -l) * 3 / 2 + 1024))
    rm -f "$1"
    truncate -s "${5}M" "$1"
    mkfs.ext4 -q -F -b 4096 -O metadata_csum_seed -J "size=$6" \
        -L "$2" -U "$3" -N "$inodes" -d "$4" "$1"
}

# mkfs.ext4 -d copies extended attributes; prove it did for each fixture.
check_fixtures() { # check_fixtures ROOT_IMAGE
    local out
    out=$(debugfs -R "ea_list $cap_fixture" "$1" 2>/dev/null)
    grep -q 'security.capability' <<<"$out" ||
        die "root.img lost the file capability of $cap_fixture (debugfs ea_list: $out)"
    out=$(debugfs -R "ea_list $fixtures/acl-file" "$1" 2>/dev/null)
    grep -q 'system.posix_acl_access' <<<"$out" ||
        die "root.img lost the ACL of $fixtures/acl-file (debugfs ea_list: $out)"
    out=$(debugfs -R "stat $fixtures/hardlink-a" "$1" 2>/dev/null)
    grep -q 'Links: 2' <<<"$out" || die "root.img lost the hard link $fixtures/hardlink-a"
    out=$(debugfs -R "stat $fixtures/orphan-uid" "$1" 2>/dev/null)
    grep -qE 'User: +4321 ' <<<"$out" || die "root.img lost the owner of $fixtures/orphan-uid"
    out=$(debugfs -R "stat $fixtures/sparse-64M" "$1" 2>/dev/null)
    local blocks
    blocks=$(sed -n 's/.*Blockcount: \([0-9]*\).*/\1/p' <<<"$out")
    if [ -z "$blocks" ] || [ "$blocks" -ge 2048 ]; then
        die "root.img filled the holes of $fixtures/sparse-64M (Blockcount: ${blocks:-?})"
    fi
    log "root.img keeps the capability, ACL, hard link, owner and holes of the fixtures"
}

phase_block_device() {
    # /boot is a file system of its own on the CF, as on the target.
    rm -rf "${work:?}/boot"
    mv "$staging/boot" "$work/boot"
    mkdir -m 0755 "$staging/boot"

    local boot_mib root_mib reserved_mib=16 esp_mib=16
    local boot_journal=4 root_journal=64
    boot_mib=$(($(image_mib "$work/boot" 64) + boot_journal))
    root_mib=$(($(image_mib "$staging" 256) + root_journal))
    root_uuid=$(cat /proc/sys/kernel/random/uuid)
    boot_uuid=$(cat /proc/sys/kernel/random/uuid)
    mkfs_image "$work/boot.img" golden-boot "$boot_uuid" "$work/boot" "$boot_mib" "$boot_journal"
    mkfs_image "$work/root.img" golden-root "$root_uuid" "$staging" "$root_mib" "$root_journal"
    log "boot.img ${boot_mib} MiB, root.img ${root_mib} MiB"
    make_esp "$work/esp.img" "$esp_mib"
    [ "$variant_name" = product ] || check_fixtures "$work/root.img"

    # Partitions on MiB boundaries, so that dd can place the images with bs=1M.
    local cf=$work/cf.img
    local boot_start=1 root_start=$((1 + boot_mib)) reserved_start=$((1 + boot_mib + root_mib))
    local esp_start=$((reserved_start + reserved_mib))
    rm -f "$cf"
    truncate -s "$((esp_start + esp_mib))M" "$cf"
    sfdisk --quiet "$cf" <<EOF
label: dos
unit: sectors
start=$((boot_start * 2048)), size=$((boot_mib * 2048)), type=83, bootable
start=$((root_start * 2048)), size=$((root_mib * 2048)), type=83
start=$((reserved_start * 2048)), size=$((reserved_mib * 2048)), type=da
start=$((esp_start * 2048)), size=$((esp_mib * 2048)), type=ef
EOF
    dd if="$work/boot.img" of="$cf" bs=1M seek="$boot_start" conv=notrunc,sparse status=none
    dd if="$work/root.img" of="$cf" bs=1M seek="$root_start" conv=notrunc,sparse status=none
    dd if="$work/esp.img" of="$cf" bs=1M seek="$esp_start" conv=notrunc,sparse status=none

    # Read the labels back through the partition offsets, as the guest will.
    local label
    label=$(blkid -p -o value -s LABEL -O $((root_start * 1024 * 1024)) "$cf")
    [ "$label" = golden-root ] || die "cf.img p2 has label '$label', not golden-root"
    label=$(blkid -p -o value -s LABEL -O $((boot_start * 1024 * 1024)) "$cf")
    [ "$label" = golden-boot ] || die "cf.img p1 has label '$label', not golden-boot"
    log "cf.img: $((esp_start + esp_mib)) MiB, p1 golden-boot, p2 golden-root, p3 reserved, p4 EFI system"
}

# ---------------------------------------------------------------- bootloader
# The golden's own grub-install and grub-mkconfig, run in its root mounted from
# cf.img through a loop device: the CF menu is made by the same scripts
# (10_linux, 40_zshield) as the menus of the disks zshield provisions.
phase_bootloader() {
    loop_dev=$(losetup --find --show --partscan "$work/cf.img")
    # Some kernels (this host's) have no partition table parser: partx tells them.
    partx --add "$loop_dev" 2>/dev/null || partx --update "$loop_dev"
    local p i d
    for p in 1 2 3; do
        for ((i = 0; i < 100; i++)); do
            [ -b "${loop_dev}p$p" ] && break
            sleep 0.1
        done
        [ -b "${loop_dev}p$p" ] || die "${loop_dev}p$p did not appear (losetup --partscan, partx --add)"
    done
    local mnt=$work/mnt
    mkdir -p "$mnt"
    # The root stays read-only (noload: not even a journal replay); GRUB writes
    # only to /boot.
    mount -o ro,noload "${loop_dev}p2" "$mnt"
    chroot_mounts+=("$mnt")
    mount "${loop_dev}p1" "$mnt/boot"
    chroot_mounts+=("$mnt/boot")
    # A /dev of its own: the loop devices, and the by-uuid links that udev
    # would make (10_linux writes root=UUID= only when the link exists).
    mount -t tmpfs -o mode=0755 golden-dev "$mnt/dev"
    chroot_mounts+=("$mnt/dev")
    cp -a /dev/null /dev/zero /dev/full /dev/random /dev/urandom \
        "$loop_dev" "${loop_dev}p1" "${loop_dev}p2" "${loop_dev}p3" "$mnt/dev/"
    mkdir -p "$mnt/dev/disk/by-uuid"
    ln -s "../../$(basename "${loop_dev}p2")" "$mnt/dev/disk/by-uuid/$root_uuid"
    ln -s "../../$(basename "${loop_dev}p1")" "$mnt/dev/disk/by-uuid/$boot_uuid"
    mount -t proc proc "$mnt/proc"
    chroot_mounts+=("$mnt/proc")
    mount -t sysfs sysfs "$mnt/sys"
    chroot_mounts+=("$mnt/sys")
    for d in tmp run; do
        mount -t tmpfs "golden-$d" "$mnt/$d"
        chroot_mounts+=("$mnt/$d")
    done

    chroot "$mnt" grub-install --target=i386-pc "$loop_dev" >"$work/grub-install.log" 2>&1 ||
        { cat "$work/grub-install.log" >&2; die "grub-install on the CF image failed"; }
    chroot "$mnt" grub-mkconfig -o /boot/grub/grub.cfg >"$work/grub-mkconfig.log" 2>&1 ||
        { cat "$work/grub-mkconfig.log" >&2; die "grub-mkconfig on the CF image failed"; }
    chroot "$mnt" grub-script-check /boot/grub/grub.cfg || die "the CF menu fails grub-script-check"
    # grub-mkconfig leaves a menu with a password hash readable by all.
    if grep -q '^password' "$mnt/boot/grub/grub.cfg"; then chmod 0600 "$mnt/boot/grub/grub.cfg"; fi
    cp "$mnt/boot/grub/grub.cfg" "$work/grub.cfg"
    umount_chroot
    # /boot was mounted: checked again, so that it ships clean and checked
    # since (resize2fs grows only a file system checked since its last mount).
    e2fsck -f -p "${loop_dev}p1" >"$work/e2fsck-boot.log" 2>&1 ||
        { cat "$work/e2fsck-boot.log" >&2; die "e2fsck of the CF's /boot after grub-install failed"; }
    losetup -d "$loop_dev"
    loop_dev=""
    check_menu "$work/grub.cfg"
}

# The CF menu: the start entry first (the disk's system, or the automatic
# mode), the normal entry boots the golden read-only by UUID, and the two
# recovery entries follow it with the same root and options.
check_menu() {
    local cfg=$1 title lines
    for title in "Recover to factory default" "Recover to latest backup"; do
        grep -q "^menuentry '$title'" "$cfg" || die "the CF menu has no '$title' entry ($cfg)"
    done
    lines=$(grep -cE "^\s+linux\s.* root=UUID=$root_uuid ro .*fsck.mode=skip" "$cfg" || :)
    # The normal entry, its advanced copy, recovery mode, and our two.
    [ "$lines" -ge 5 ] ||
        die "only $lines kernel lines of the CF menu boot root=UUID=$root_uuid ro with fsck.mode=skip ($cfg)"
    grep -qE "^\s+linux\s.* zshield_recovery=default( |$)" "$cfg" || die "no zshield_recovery=default kernel line in $cfg"
    grep -qE "^\s+linux\s.* zshield_recovery=latest( |$)" "$cfg" || die "no zshield_recovery=latest kernel line in $cfg"
    grep -E "^(menuentry|submenu) '" "$cfg" | head -n 1 | grep -q "^menuentry 'Start the hard disk system, or install it'" ||
        die "the CF menu does not start with the card's start entry ($cfg)"
    grep -qE "^\s+linux\s.* zshield_recovery=auto( |$)" "$cfg" || die "no zshield_recovery=auto kernel line in $cfg"
    grep -qE "^\s+linux\s.* zshield_recovery=latest zshield.fallback=boot-tries( |$)" "$cfg" ||
        die "no entry for a disk's automatic rollback in $cfg"
    ! grep -q "save_env.*zshield" "$cfg" || die "the CF menu counts boots: nothing may write the card ($cfg)"
    # Nobody at the console: every kernel reboots after a panic.
    ! grep -E "^\s+linux\s" "$cfg" | grep -vqE " panic=[1-9][0-9]*( |$)" ||
        die "a kernel line of the CF menu has no panic=N (N > 0): a panic would stop the unit for good ($cfg)"
    log "CF menu: $(grep -E "^(menuentry|submenu) '" "$cfg" | cut -d"'" -f2 | paste -sd'|' | sed 's/|/ | /g')"
}

# ---------------------------------------------------------------- blockmap
# Last of all that writes cf.img: the map covers the file systems as shipped.
phase_blockmap() {
    local zshield=$work/product/usr/sbin/zshield out sign=() keys=()
    if [ -n "$vendor_keys" ]; then
        sign=(--sign-with "$signing_key")
        keys=(--keys "$vendor_keys")
    fi
    "$zshield" golden-map "${sign[@]}" "$work/cf.img" >"$work/cf.blockmap" || die "zshield golden-map failed"
    out=$("$zshield" verify-golden "${keys[@]}" "$work/cf.img" 2>&1) ||
        die "cf.img does not match its own block map: $(tail -n 1 <<<"$out")"
    log "$(tail -n 1 <<<"$out" | sed 's/^zshield: //')"
}

# ---------------------------------------------------------------- finalise
phase_finalise() {
    mkdir -p "$outdir"
    rm -f "$outdir/stamp"
    cp "$work/boot/vmlinuz-$kver" "$outdir/vmlinuz"
    cp "$work/boot/initrd.img-$kver" "$outdir/initrd.img"
    if [ "$variant_name" != product ]; then
        cp "$work/initrd-nosystemd.img" "$outdir/initrd-nosystemd.img"
        initrd_with_recovery_arg "$outdir/initrd.img" "$outdir/initrd-cmdline.img"
    fi
    cp "$work/grub.cfg" "$outdir/grub.cfg"
    cp "$work/cf.blockmap" "$outdir/cf.blockmap"
    cp --sparse=always "$work/cf.img" "$outdir/cf.img"
}

# ---------------------------------------------------------------- convert
phase_convert() {
    rm -f "$outdir/cf.qcow2"
    qemu-img convert -f raw -O qcow2 "$outdir/cf.img" "$outdir/cf.qcow2"
    qemu-img compare -q -f raw -F qcow2 "$outdir/cf.img" "$outdir/cf.qcow2" ||
        die "cf.qcow2 does not hold the same disk as cf.img"
    rm -rf "$outdir/bundles"
    local listed=(cf.img cf.qcow2 cf.blockmap) b
    if [ ${#bundles[@]} -gt 0 ]; then
        mkdir -p "$outdir/bundles"
        for b in "${bundles[@]}"; do
            cp "$b" "$outdir/bundles/"
            listed+=("bundles/$(basename "$b")")
        done
    fi
    (cd "$outdir" && sha256sum "${listed[@]}" >SHA256SUMS)
    cat >"$outdir/golden.env" <<EOF
# Facts of this golden, for qemu/vm.sh, qemu/demo.sh and tests/qemu (sourced by bash).
GOLDEN_VARIANT=$variant_name
GOLDEN_KVER=$kver
GOLDEN_ROOT_UUID=$root_uuid
GOLDEN_BOOT_UUID=$boot_uuid
GOLDEN_INITRD_SYSTEMD=$initrd_systemd
GOLDEN_GRUB_LOGIN=$grub_login
GOLDEN_CF_SHA256=$(awk '$2 == "cf.img" { print $1 }' "$outdir/SHA256SUMS")
EOF
    # The stamp is written last: a build stopped half-way is never taken as done.
    echo "$inputs_hash" >"$outdir/stamp"
    log "$variant_name image in $outdir: cf.img ($(du -h --apparent-size "$outdir/cf.img" | cut -f1)), cf.qcow2 ($(du -h "$outdir/cf.qcow2" | cut -f1)), SHA256SUMS"
}

t_start=$SECONDS
phase root phase_root
phase product phase_product
if up_to_date; then
    log "$variant_name image in $outdir is up to date (inputs $inputs_hash)"
else
    phase install phase_install
    phase initramfs phase_initramfs
    phase block-device phase_block_device
    phase bootloader phase_bootloader
    phase blockmap phase_blockmap
    phase finalise phase_finalise
    phase convert phase_convert
fi
log "total $((SECONDS - t_start)) s"
