#!/bin/bash
# Installs everything zshield's build, demo and tests need on a Debian 12 machine.
# Safe to run again: it only installs what is missing.
set -euo pipefail

packages=(
    qemu-system-x86 qemu-utils seabios mmdebstrap rsync e2fsprogs fdisk util-linux
    acl attr libcap2-bin file cpio zstd xz-utils kmod shellcheck
    # The card's EFI system partition, made without a mount; UEFI in QEMU.
    mtools ovmf
    # The host tests make each kind of filesystem and volume zshield must
    # not take for a blank disk.
    xfsprogs btrfs-progs dosfstools ntfs-3g cryptsetup-bin xorriso
    # Signing upgrade bundles (scripts/zshield-bundle) and golden cards.
    minisign
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# qemu-system-x86 must come with a qemu-utils of the same version (a newer
# qemu-utils from backports breaks qemu-system-common).
qemu_version=""
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    apt-get update -qq
    qemu_version=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
    pinned=()
    for p in "${missing[@]}"; do
        case "$p" in
            qemu-system-x86|qemu-utils) ;;
            *) pinned+=("$p") ;;
        esac
    done
    if ! dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q "ok installed"; then
        pinned+=("qemu-system-x86=$qemu_version" "qemu-utils=$qemu_version")
        if dpkg-query -W -f='${Status}' qemu-block-extra 2>/dev/null | grep -q "ok installed"; then
            pinned+=("qemu-block-extra=$qemu_version")
        fi
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        --allow-downgrades "${pinned[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    echo "install-deps: adding the rustup target x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
