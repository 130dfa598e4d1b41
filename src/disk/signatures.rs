//! Known signatures of filesystems, volume managers, RAID and encryption, at
//! the start of what they occupy (the disk, or a partition whose table is
//! gone) and at the end of a disk. Pure: from bytes to names.

use crate::units::{KIB, MIB};

/// Where zshield looks for a filesystem or volume whose partition table is
/// gone: the disk's start, sector 63 (old msdos tools), every MiB up to 64 MiB.
pub fn candidate_starts() -> Vec<u64> {
    let mut starts = vec![0, 63 * 512];
    starts.extend((1..64).map(|n| n * MIB));
    starts
}

/// How far beyond its start the signatures of a candidate reach (ZFS's
/// uberblocks, at 128–256 KiB).
pub const REACH: u64 = 256 * KIB;

const MD_MAGIC: [u8; 4] = [0xFC, 0x4E, 0x2B, 0xA9];
const ZFS_UBERBLOCK_LE: [u8; 8] = [0x0C, 0xB1, 0xBA, 0x00, 0, 0, 0, 0];
const ZFS_UBERBLOCK_BE: [u8; 8] = [0, 0, 0, 0, 0x00, 0xBA, 0xB1, 0x0C];
const BCACHE_MAGIC: [u8; 16] = [
    0xC6, 0x85, 0x73, 0xF6, 0x4E, 0x1A, 0x45, 0xCA, 0x82, 0x65, 0xF5, 0x7F, 0x48, 0xBA, 0x6D, 0x81,
];

fn has(buf: &[u8], offset: usize, magic: &[u8]) -> bool {
    buf.get(offset..offset + magic.len()) == Some(magic)
}

/// A ZFS vdev label's uberblock array starts 128 KiB into it, slots of 1 KiB
/// (or larger, in multiples of it).
fn zfs_label(buf: &[u8], start: usize) -> bool {
    (0..128).any(|slot| {
        let at = start + 128 * KIB as usize + slot * KIB as usize;
        has(buf, at, &ZFS_UBERBLOCK_LE) || has(buf, at, &ZFS_UBERBLOCK_BE)
    })
}

/// What starts at `start` in `buf` (whose first byte is that of the disk).
pub fn at_start(buf: &[u8], start: usize) -> Vec<&'static str> {
    let p = start;
    let mut found = Vec::new();
    if (0..4).any(|s| has(buf, p + s * 512, b"LABELONE") && has(buf, p + s * 512 + 24, b"LVM2")) {
        found.push("an LVM physical volume");
    }
    if has(buf, p + 1080, &[0x53, 0xEF]) {
        found.push("an ext2/3/4 filesystem");
    }
    if has(buf, p, b"XFSB") {
        found.push("an XFS filesystem");
    }
    if has(buf, p + 0x10040, b"_BHRfS_M") {
        found.push("a btrfs filesystem");
    }
    // The last 10 bytes of the first page, whatever the page size.
    if [4096, 8192, 16384, 65536].iter().any(|page| {
        has(buf, p + page - 10, b"SWAPSPACE2") || has(buf, p + page - 10, b"SWAP-SPACE")
    }) {
        found.push("a swap area");
    }
    if has(buf, p + 0x8001, b"CD001") {
        found.push("an ISO 9660 image");
    }
    if has(buf, p, &MD_MAGIC) || has(buf, p + 4096, &MD_MAGIC) {
        found.push("a Linux RAID (md 1.1/1.2) member");
    }
    if has(buf, p, b"LUKS\xBA\xBE") {
        found.push("a LUKS encrypted volume");
    }
    if has(buf, p + 3, b"NTFS    ") {
        found.push("an NTFS filesystem");
    } else if has(buf, p + 510, &[0x55, 0xAA])
        && (has(buf, p + 54, b"FAT") || has(buf, p + 82, b"FAT32"))
    {
        found.push("a FAT filesystem");
    }
    if zfs_label(buf, p) {
        found.push("a ZFS label");
    }
    if has(buf, p + 4096 + 24, &BCACHE_MAGIC) {
        found.push("a bcache device");
    }
    found
}

/// What lives at the end of a disk of `size` bytes whose last bytes are
/// `tail`, and the start of a disk (`head`): boot sectors and GPT headers.
pub fn of_disk(head: &[u8], tail: &[u8], size: u64, sector: u64) -> Vec<&'static str> {
    let mut found = Vec::new();
    let known_boot_sector = has(head, 3, b"NTFS    ") || has(head, 0x8001, b"CD001");
    if has(head, 510, &[0x55, 0xAA]) && !known_boot_sector && !has(head, 54, b"FAT") {
        found.push("a boot sector or unreadable partition table");
    }
    if has(head, sector as usize, b"EFI PART") {
        found.push("a GPT header");
    }
    let tail_start = size - tail.len() as u64;
    let at_end = |offset: u64, magic: &[u8]| {
        offset
            .checked_sub(tail_start)
            .is_some_and(|i| has(tail, i as usize, magic))
    };
    if size >= sector && at_end(size - sector, b"EFI PART") {
        found.push("a backup GPT header at the end of the disk");
    }
    // md 0.90 and 1.0 keep their superblock near the end of the device.
    let md_090 = (size & !(64 * KIB - 1)).saturating_sub(64 * KIB);
    let md_10 = size.saturating_sub(8 * KIB) & !(4 * KIB - 1);
    if at_end(md_090, &MD_MAGIC) || at_end(md_10, &MD_MAGIC) {
        found.push("a Linux RAID (md 0.90/1.0) member");
    }
    // ZFS's labels 2 and 3 fill the last 512 KiB (of a size rounded to 256 KiB).
    let labels_end = size & !(256 * KIB - 1);
    if let Some(l2) = labels_end.checked_sub(512 * KIB) {
        if let Some(i) = l2.checked_sub(tail_start) {
            if zfs_label(tail, i as usize) || zfs_label(tail, i as usize + 256 * KIB as usize) {
                found.push("a ZFS label at the end of the disk");
            }
        }
    }
    found
}

/// Where a signature was found, in words: "on the whole disk", "at 1 MiB".
pub fn place(start: u64) -> String {
    match start {
        0 => "on the whole disk".to_string(),
        s if s % MIB == 0 => format!("at {} MiB", s / MIB),
        s => format!("at sector {}", s / 512),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes written at offsets from a start.
    type Writes<'a> = Vec<(usize, &'a [u8])>;

    /// Bytes as each format documents its signature, `start` bytes in.
    fn with(start: usize, writes: &[(usize, &[u8])]) -> Vec<u8> {
        let mut buf = vec![0u8; 4 * MIB as usize];
        for (offset, bytes) in writes {
            buf[start + offset..start + offset + bytes.len()].copy_from_slice(bytes);
        }
        buf
    }

    #[test]
    fn every_known_signature_at_a_partition_start() {
        let cases: Vec<(&str, Writes)> = vec![
            ("LVM", vec![(512, b"LABELONE"), (512 + 24, b"LVM2 001")]),
            ("ext2/3/4", vec![(1080, &[0x53, 0xEF])]),
            ("XFS", vec![(0, b"XFSB")]),
            ("btrfs", vec![(0x10040, b"_BHRfS_M")]),
            ("swap", vec![(4086, b"SWAPSPACE2")]),
            ("ISO 9660", vec![(0x8001, b"CD001")]),
            ("md 1.1/1.2", vec![(4096, &MD_MAGIC)]),
            ("LUKS", vec![(0, b"LUKS\xBA\xBE")]),
            ("FAT", vec![(82, b"FAT32   "), (510, &[0x55, 0xAA])]),
            ("NTFS", vec![(3, b"NTFS    "), (510, &[0x55, 0xAA])]),
            ("ZFS", vec![(128 * 1024 + 3 * 1024, &ZFS_UBERBLOCK_LE)]),
            ("bcache", vec![(4096 + 24, &BCACHE_MAGIC)]),
        ];
        for (name, writes) in cases {
            for start in [0, 63 * 512, MIB as usize] {
                let found = at_start(&with(start, &writes), start);
                assert!(
                    found.len() == 1 && found[0].contains(name),
                    "{name} at {start}: {found:?}"
                );
            }
            // Not where it is not.
            assert!(
                at_start(&with(MIB as usize, &writes), 0).is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn signatures_at_the_end_of_a_disk() {
        let size = 64 * MIB + 12345;
        let tail_len = 16 * MIB as usize;
        let tail_at = |offset: u64, bytes: &[u8]| {
            let mut tail = vec![0u8; tail_len];
            let i = (offset - (size - tail_len as u64)) as usize;
            tail[i..i + bytes.len()].copy_from_slice(bytes);
            tail
        };
        let head = vec![0u8; MIB as usize];
        let md_090 = (size & !(64 * KIB - 1)) - 64 * KIB;
        let found = of_disk(&head, &tail_at(md_090, &MD_MAGIC), size, 512);
        assert_eq!(found, ["a Linux RAID (md 0.90/1.0) member"]);
        let found = of_disk(&head, &tail_at(size - 512, b"EFI PART"), size, 512);
        assert_eq!(found, ["a backup GPT header at the end of the disk"]);
        let l3 = (size & !(256 * KIB - 1)) - 256 * KIB + 128 * KIB;
        let found = of_disk(&head, &tail_at(l3, &ZFS_UBERBLOCK_BE), size, 512);
        assert_eq!(found, ["a ZFS label at the end of the disk"]);
        assert!(of_disk(&head, &vec![0u8; tail_len], size, 512).is_empty());
    }

    #[test]
    fn places_in_words() {
        assert_eq!(place(0), "on the whole disk");
        assert_eq!(place(MIB), "at 1 MiB");
        assert_eq!(place(63 * 512), "at sector 63");
        assert_eq!(candidate_starts().len(), 65);
    }
}
