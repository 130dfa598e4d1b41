//! Reading a GPT from the bytes zshield read of a disk, both copies checked
//! as the kernel checks them (signature, header CRC, own LBA, array CRC), and
//! the writes that rebuild a damaged copy from the intact one. Pure.
//!
//! Linux uses the backup copy only when booted with `gpt`: a disk whose
//! primary copy is damaged shows no partitions, so LVM cannot see zshield's
//! volume group until the primary copy is written again.

use std::fmt;

use serde::Serialize;

use crate::disk::partition::TablePartition;

const SIGNATURE: &[u8; 8] = b"EFI PART";
const HEADER_SIZE: usize = 92;
const ENTRY_SIZE: usize = 128;
/// More than any table zshield would read (128 entries is the rule).
const MAX_ENTRIES: usize = 1024;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Which of a GPT's two copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Copy {
    Primary,
    Backup,
}

impl fmt::Display for Copy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Copy::Primary => "primary",
            Copy::Backup => "backup",
        })
    }
}

/// One copy that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Valid {
    header: Vec<u8>,
    entries: Vec<u8>,
}

impl Valid {
    fn u64_at(&self, at: usize) -> u64 {
        le_u64(&self.header, at)
    }
    fn my_lba(&self) -> u64 {
        self.u64_at(24)
    }
    fn alternate_lba(&self) -> u64 {
        self.u64_at(32)
    }
    fn first_usable(&self) -> u64 {
        self.u64_at(40)
    }
    fn last_usable(&self) -> u64 {
        self.u64_at(48)
    }
}

/// A GPT found on a disk: the partitions of an intact copy, and what is
/// damaged (one copy, the protective MBR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    pub partitions: Vec<TablePartition>,
    pub damage: Option<Damage>,
}

/// A GPT with one copy intact and something to repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// The copy the repair takes the table from.
    pub intact: Copy,
    /// What is wrong, in words.
    pub what: String,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The bytes of `[offset, offset + len)` of the disk, when `buf` (which
/// holds the disk from `buf_at`) covers them.
fn slice(buf: &[u8], buf_at: u64, offset: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(offset.checked_sub(buf_at)?).ok()?;
    buf.get(start..start.checked_add(len)?)
}

/// The copy whose header is at `lba`, checked; `Err` says why it is not valid.
fn read_copy(head: &[u8], tail: &[u8], size: u64, sector: u64, lba: u64) -> Result<Valid, String> {
    let sectors = size / sector;
    let tail_at = size - tail.len() as u64;
    let read = |offset: u64, len: usize| {
        slice(head, 0, offset, len).or_else(|| slice(tail, tail_at, offset, len))
    };
    let block = read(lba * sector, sector as usize).ok_or("its header was not read")?;
    if &block[..8] != SIGNATURE {
        return Err("no GPT signature".into());
    }
    let header_size = le_u32(block, 12) as usize;
    if !(HEADER_SIZE..=sector as usize).contains(&header_size) {
        return Err(format!("header size {header_size}"));
    }
    let mut header = block[..header_size].to_vec();
    let stored_crc = le_u32(&header, 16);
    header[16..20].fill(0);
    if CRC32.checksum(&header) != stored_crc {
        return Err("header checksum mismatch".into());
    }
    header[16..20].copy_from_slice(&stored_crc.to_le_bytes());
    let copy = Valid {
        header,
        entries: Vec::new(),
    };
    if copy.my_lba() != lba {
        return Err(format!("header says it is at LBA {}", copy.my_lba()));
    }
    if copy.first_usable() > copy.last_usable() || copy.last_usable() >= sectors {
        return Err("usable area outside the disk".into());
    }
    let count = le_u32(&copy.header, 80) as usize;
    let entry_size = le_u32(&copy.header, 84) as usize;
    if entry_size != ENTRY_SIZE || count > MAX_ENTRIES {
        return Err(format!("{count} entries of {entry_size} bytes"));
    }
    let entries = read(copy.u64_at(72) * sector, count * entry_size)
        .ok_or("its partition array lies where zshield did not read")?;
    if CRC32.checksum(entries) != le_u32(&copy.header, 88) {
        return Err("partition array checksum mismatch".into());
    }
    Ok(Valid {
        entries: entries.to_vec(),
        ..copy
    })
}

/// A GUID as it is written (mixed-endian fields), in upper case.
fn guid(b: &[u8]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{}",
        le_u32(b, 0),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10..16]
            .iter()
            .map(|x| format!("{x:02X}"))
            .collect::<String>()
    )
}

fn partitions(copy: &Valid, sector: u64) -> Vec<TablePartition> {
    copy.entries
        .chunks_exact(ENTRY_SIZE)
        .enumerate()
        .filter(|(_, e)| e[..16].iter().any(|&b| b != 0))
        .map(|(i, e)| {
            let first = le_u64(e, 32);
            let last = le_u64(e, 40);
            let name: Vec<u16> = e[56..128]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&c| c != 0)
                .collect();
            TablePartition {
                number: i as u32 + 1,
                start: first * sector,
                size: (last + 1).saturating_sub(first) * sector,
                kind: guid(&e[..16]),
                name: String::from_utf16_lossy(&name),
            }
        })
        .collect()
}

/// Whether the MBR is a protective one (an 0xEE partition), which the kernel
/// wants before it reads a GPT.
fn protective_mbr(head: &[u8]) -> bool {
    head.get(510..512) == Some(&[0x55, 0xAA])
        && (0..4).any(|i| head.get(446 + 16 * i + 4) == Some(&0xEE))
}

/// Both copies of the GPT of a disk whose first (`head`) and last (`tail`)
/// bytes were read. `Ok(None)`: no GPT signature anywhere; `Err`: a GPT whose
/// two copies are both damaged, and why.
pub fn read(head: &[u8], tail: &[u8], size: u64, sector: u64) -> Result<Option<Gpt>, String> {
    let last = size / sector - 1;
    let primary = read_copy(head, tail, size, sector, 1);
    let backup_lba = primary.as_ref().map_or(last, |p| p.alternate_lba());
    let backup = read_copy(head, tail, size, sector, backup_lba);
    let mbr_ok = protective_mbr(head);
    let (intact, damage) = match (&primary, &backup) {
        (Ok(p), Ok(_)) if mbr_ok => (p, None),
        (Ok(p), Ok(_)) => (p, Some((Copy::Primary, "protective MBR missing".into()))),
        (Ok(p), Err(why)) => (
            p,
            Some((Copy::Primary, format!("backup copy damaged: {why}"))),
        ),
        (Err(why), Ok(b)) => (
            b,
            Some((Copy::Backup, format!("primary copy damaged: {why}"))),
        ),
        (Err(p), Err(b)) => {
            let signed = |r: &str| r != "no GPT signature" && r != "its header was not read";
            return if signed(p) || signed(b) {
                Err(format!(
                    "both copies are damaged (primary: {p}; backup: {b})"
                ))
            } else {
                Ok(None)
            };
        }
    };
    Ok(Some(Gpt {
        partitions: partitions(intact, sector),
        damage: damage.map(|(intact, what)| Damage { intact, what }),
    }))
}

/// The header of `from` moved to `my_lba`, pointing at `alternate` and at
/// its array at `entries_lba`, with its checksum made again.
fn moved_header(from: &Valid, my_lba: u64, alternate: u64, entries_lba: u64) -> Vec<u8> {
    let mut header = from.header.clone();
    header[24..32].copy_from_slice(&my_lba.to_le_bytes());
    header[32..40].copy_from_slice(&alternate.to_le_bytes());
    header[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    header[16..20].fill(0);
    let crc = CRC32.checksum(&header);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    header
}

/// `(offset, bytes)` to write so that the disk's GPT is whole again: the
/// damaged copy made from the intact one, and a protective MBR where there is
/// none (the first 446 bytes, boot code, are kept). `Err` when the disk no
/// longer holds what was planned or a copy has no room.
pub fn repair(
    head: &[u8],
    tail: &[u8],
    size: u64,
    sector: u64,
    intact: Copy,
) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let last = size / sector - 1;
    let gpt = read(head, tail, size, sector)?.ok_or("no GPT on the disk any more")?;
    match &gpt.damage {
        Some(d) if d.intact == intact => {}
        Some(d) => return Err(format!("the disk changed since it was planned: {}", d.what)),
        None => return Ok(Vec::new()),
    }
    let from_lba = match intact {
        Copy::Primary => 1,
        Copy::Backup => last,
    };
    let from = read_copy(head, tail, size, sector, from_lba)?;
    let entry_sectors = (from.entries.len() as u64).div_ceil(sector);
    let pad = |mut b: Vec<u8>| {
        b.resize(b.len().div_ceil(sector as usize) * sector as usize, 0);
        b
    };
    let mut writes = Vec::new();
    match intact {
        Copy::Backup => {
            if 2 + entry_sectors > from.first_usable() {
                return Err("no room for the primary array before the first partition".into());
            }
            writes.push((2 * sector, pad(from.entries.clone())));
            writes.push((sector, pad(moved_header(&from, 1, from_lba, 2))));
        }
        Copy::Primary => {
            let at = from.alternate_lba();
            let entries_lba = at - entry_sectors;
            if entries_lba <= from.last_usable() || at > last {
                return Err("no room for the backup copy after the last partition".into());
            }
            writes.push((entries_lba * sector, pad(from.entries.clone())));
            writes.push((at * sector, pad(moved_header(&from, at, 1, entries_lba))));
        }
    }
    if !protective_mbr(head) {
        let mut mbr = head[..512].to_vec();
        mbr[446..510].fill(0);
        let entry = &mut mbr[446..462];
        entry[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
        entry[4] = 0xEE;
        entry[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
        entry[8..12].copy_from_slice(&1u32.to_le_bytes());
        let sectors = u32::try_from(last).unwrap_or(u32::MAX);
        entry[12..16].copy_from_slice(&sectors.to_le_bytes());
        mbr[510..512].copy_from_slice(&[0x55, 0xAA]);
        writes.push((0, mbr));
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MIB;

    const SIZE: u64 = 64 * MIB;
    const SECTOR: u64 = 512;
    const LVM_TYPE: [u8; 16] = [
        0x79, 0xD3, 0xD6, 0xE6, 0x07, 0xF5, 0xC2, 0x44, 0xA2, 0x3C, 0x23, 0x8F, 0x2A, 0x3D, 0xF9,
        0x28,
    ];

    /// A whole disk image (zeros) with a GPT of one partition named "data".
    fn disk_with_gpt() -> Vec<u8> {
        let mut disk = vec![0u8; SIZE as usize];
        let last = SIZE / SECTOR - 1;
        let mut entries = vec![0u8; 128 * ENTRY_SIZE];
        entries[..16].copy_from_slice(&LVM_TYPE);
        entries[16] = 1;
        entries[32..40].copy_from_slice(&2048u64.to_le_bytes());
        entries[40..48].copy_from_slice(&(last - 2048).to_le_bytes());
        for (i, c) in "data".encode_utf16().enumerate() {
            entries[56 + 2 * i..58 + 2 * i].copy_from_slice(&c.to_le_bytes());
        }
        let mut header = vec![0u8; HEADER_SIZE];
        header[..8].copy_from_slice(SIGNATURE);
        header[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        header[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        header[40..48].copy_from_slice(&34u64.to_le_bytes());
        header[48..56].copy_from_slice(&(last - 33).to_le_bytes());
        header[80..84].copy_from_slice(&128u32.to_le_bytes());
        header[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        header[88..92].copy_from_slice(&CRC32.checksum(&entries).to_le_bytes());
        let valid = Valid { header, entries };
        let primary = moved_header(&valid, 1, last, 2);
        let backup = moved_header(&valid, last, 1, last - 32);
        let put = |disk: &mut Vec<u8>, at: u64, b: &[u8]| {
            disk[at as usize..at as usize + b.len()].copy_from_slice(b)
        };
        put(&mut disk, SECTOR, &primary);
        put(&mut disk, 2 * SECTOR, &valid.entries);
        put(&mut disk, last * SECTOR, &backup);
        put(&mut disk, (last - 32) * SECTOR, &valid.entries);
        disk[446 + 4] = 0xEE;
        disk[510] = 0x55;
        disk[511] = 0xAA;
        disk
    }

    fn read_disk(disk: &[u8]) -> Result<Option<Gpt>, String> {
        read(
            &disk[..MIB as usize],
            &disk[(SIZE - MIB) as usize..],
            SIZE,
            SECTOR,
        )
    }

    fn repaired(mut disk: Vec<u8>, intact: Copy) -> Vec<u8> {
        let writes = repair(
            &disk[..MIB as usize],
            &disk[(SIZE - MIB) as usize..],
            SIZE,
            SECTOR,
            intact,
        )
        .unwrap();
        assert!(!writes.is_empty());
        for (at, bytes) in writes {
            disk[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
        }
        disk
    }

    #[test]
    fn an_intact_gpt_gives_its_partitions_and_no_damage() {
        let gpt = read_disk(&disk_with_gpt()).unwrap().unwrap();
        assert_eq!(gpt.damage, None);
        assert_eq!(gpt.partitions.len(), 1);
        let p = &gpt.partitions[0];
        assert_eq!(
            (p.number, p.start, p.name.as_str()),
            (1, 2048 * SECTOR, "data")
        );
        assert_eq!(p.kind, crate::layout::GPT_LVM_TYPE);
        assert_eq!(p.size, SIZE - 2 * 2048 * SECTOR);
        assert_eq!(read_disk(&vec![0u8; SIZE as usize]), Ok(None));
    }

    #[test]
    fn a_zeroed_primary_header_is_repaired_from_the_backup() {
        let good = disk_with_gpt();
        let mut disk = good.clone();
        disk[SECTOR as usize..2 * SECTOR as usize].fill(0);
        let gpt = read_disk(&disk).unwrap().unwrap();
        let damage = gpt.damage.clone().unwrap();
        assert_eq!(damage.intact, Copy::Backup);
        assert!(
            damage
                .what
                .contains("primary copy damaged: no GPT signature"),
            "{damage:?}"
        );
        assert_eq!(
            gpt.partitions,
            read_disk(&good).unwrap().unwrap().partitions
        );
        assert_eq!(repaired(disk, Copy::Backup), good);
    }

    #[test]
    fn a_corrupted_primary_array_is_repaired_from_the_backup() {
        let good = disk_with_gpt();
        let mut disk = good.clone();
        disk[2 * SECTOR as usize + 40] ^= 0xFF;
        let damage = read_disk(&disk).unwrap().unwrap().damage.unwrap();
        assert_eq!(damage.intact, Copy::Backup);
        assert!(
            damage.what.contains("partition array checksum"),
            "{damage:?}"
        );
        assert_eq!(repaired(disk, Copy::Backup), good);
    }

    #[test]
    fn a_damaged_backup_and_a_lost_protective_mbr_are_made_again() {
        let good = disk_with_gpt();
        let mut disk = good.clone();
        let last = (SIZE / SECTOR - 1) as usize;
        disk[last * SECTOR as usize + 30] ^= 1;
        let damage = read_disk(&disk).unwrap().unwrap().damage.unwrap();
        assert_eq!(damage.intact, Copy::Primary);
        assert!(damage.what.contains("backup copy damaged"), "{damage:?}");
        let mut fixed = repaired(disk, Copy::Primary);
        assert_eq!(fixed, good);

        fixed[446..512].fill(0);
        fixed[0] = 0xEB; // boot code is kept
        let damage = read_disk(&fixed).unwrap().unwrap().damage.unwrap();
        assert!(damage.what.contains("protective MBR"), "{damage:?}");
        let mbr_fixed = repaired(fixed, Copy::Primary);
        assert_eq!(mbr_fixed[0], 0xEB);
        assert_eq!(read_disk(&mbr_fixed).unwrap().unwrap().damage, None);
    }

    #[test]
    fn both_copies_damaged_is_an_error_and_a_changed_disk_is_not_repaired() {
        let mut disk = disk_with_gpt();
        disk[2 * SECTOR as usize + 40] ^= 0xFF;
        let writes_backup = |d: &[u8]| {
            repair(
                &d[..MIB as usize],
                &d[(SIZE - MIB) as usize..],
                SIZE,
                SECTOR,
                Copy::Primary,
            )
        };
        assert!(writes_backup(&disk)
            .unwrap_err()
            .contains("changed since it was planned"));
        let last = (SIZE / SECTOR - 1) as usize;
        disk[last * SECTOR as usize + 30] ^= 1;
        let err = read_disk(&disk).unwrap_err();
        assert!(err.contains("both copies are damaged"), "{err}");
    }
}
