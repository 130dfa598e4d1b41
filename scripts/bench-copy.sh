#!/bin/bash
# Benchmark of the golden copy on loop devices (make bench): the test golden's
# root grown with generated files to over 1 GiB used, on a card image with its
# block map; copied onto a 4 GiB loop device by each method, caches dropped
# before each run, sync included, best of 5 (single runs on these machines
# vary by 2-3x: page cache and loop device work lands on the same 2 cores). One line per method: name,
# seconds, ratio to the raw write of the used bytes:
#   raw               dd of the used bytes (the floor of any copy)
#   rsync             mkfs.ext4 + rsync -aHAXS --numeric-ids, mounted (the file copy)
#   block             zshield's block copy, each range checked against its SHA-256,
#                     new UUID, resize2fs, e2fsck -fn (a usable file system)
#   block-unverified  the same without checking the ranges
# Needs root (loop devices, mounts). Work files: build/bench/.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$repo/build/bench
golden=${ZSHIELD_GOLDEN:-$repo/build/golden}
runs=${BENCH_RUNS:-5}
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (loop devices, mounts)"

loops=() mounts=()
cleanup() {
    local m l
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || :; done
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || :; done
}
trap cleanup EXIT

# Any test golden's root tree will do (the generated files make the bulk).
tree=$golden/work/root
[ -d "$tree/etc" ] || "$repo/qemu/build-golden.sh" "$golden" >&2
[ -d "$tree/etc" ] || die "no golden root tree in $tree"
cargo build --quiet --release --locked --example bench_copy --bin zshield
bench_copy=$repo/target/release/examples/bench_copy
zshield=$repo/target/release/zshield

# The golden root, grown with generated files (a mix of sizes) to over 1 GiB used.
mkdir -p "$work"
card=$work/card.img
if [ ! -s "$card" ]; then
    log "making the bench golden in $work"
    rm -rf "$work/tree"
    cp -a "$tree" "$work/tree"
    mkdir -p "$work/tree/bench-data"
    for i in $(seq 1 160); do
        head -c $((4 * 1024 * 1024)) /dev/urandom >"$work/tree/bench-data/big-$i"
    done
    for i in $(seq 1 4000); do
        head -c $((i % 61 * 1024 + 512)) /dev/urandom >"$work/tree/bench-data/small-$i"
    done
    used_mib=$(du -s --block-size=1M "$work/tree" | cut -f1)
    root_mib=$((used_mib * 14 / 10 + 64))
    truncate -s "${root_mib}M" "$work/root.img"
    mkfs.ext4 -q -F -b 4096 -O metadata_csum_seed -J size=64 -L golden-root -d "$work/tree" "$work/root.img"
    rm -f "$card"
    truncate -s "$((1 + root_mib + 16))M" "$card"
    printf 'label: dos\nstart=2048,size=%d,type=83\nstart=%d,size=32768,type=da\n' \
        $((root_mib * 2048)) $(((1 + root_mib) * 2048)) | sfdisk --quiet "$card"
    dd if="$work/root.img" of="$card" bs=1M seek=1 conv=notrunc,sparse status=none
    rm -rf "$work/tree" "$work/root.img"
fi
# Mapped again each time: the map is this zshield's.
"$zshield" golden-map "$card" >"$work/card.blockmap"
log "$("$zshield" verify-golden "$card" 2>&1 | tail -n 1)"

src=$(losetup --find --show --read-only --offset $((1024 * 1024)) "$card")
loops+=("$src")
truncate -s 4G "$work/target.img"
dst=$(losetup --find --show "$work/target.img")
loops+=("$dst")
# Bytes of the used ranges, from the map (the card holds one file system).
used_bytes=$(awk '/"block":/ { getline; gsub(/[^0-9]/, ""); s += $0 } END { print s * 4096 }' "$work/card.blockmap")

fresh() { sync; echo 3 >/proc/sys/vm/drop_caches; wipefs -qa "$dst"; }
method_raw() {
    dd if="$src" of="$dst" bs=4M count=$(((used_bytes + 4194303) / 4194304)) conv=fsync status=none
}
method_rsync() {
    mkfs.ext4 -q -F "$dst"
    mkdir -p "$work/a" "$work/b"
    mount -o ro,noload "$src" "$work/a" && mounts+=("$work/a")
    mount "$dst" "$work/b" && mounts+=("$work/b")
    rsync -aHAXS --numeric-ids "$work/a/" "$work/b/"
    umount "$work/b" "$work/a"
    mounts=()
}
method_block() { "$bench_copy" "$card" "$src" "$dst" check >/dev/null; }
method_block-unverified() { "$bench_copy" "$card" "$src" "$dst" skip >/dev/null; }

best() { # best METHOD: the shortest of $runs runs, in seconds
    local i t0 t best=""
    for ((i = 0; i < runs; i++)); do
        fresh
        t0=$(date +%s.%N)
        "method_$1"
        sync
        t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
        if [ -z "$best" ] || awk -v t="$t" -v b="$best" 'BEGIN { exit !(t < b) }'; then best=$t; fi
    done
    echo "$best"
}

raw=$(best raw)
printf '%-17s %8s %8s\n' method seconds ratio
for m in raw rsync block block-unverified; do
    if [ "$m" = raw ]; then t=$raw; else t=$(best "$m"); fi
    printf '%-17s %8.2f %7.2fx\n' "$m" "$t" "$(awk -v t="$t" -v r="$raw" 'BEGIN { print t / r }')"
done
