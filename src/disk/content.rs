//! What a disk holds, judged from its partition table, the signatures at its
//! start, at the usual partition starts and at its end, and samples across
//! the whole of it: blank, a zshield layout (complete or half-made), or
//! something foreign. Blank means nothing was found anywhere zshield looked.

use crate::config::Label;
use crate::disk::gpt_copies::Damage;
pub use crate::disk::partition::TablePartition;
use crate::disk::signatures;
use crate::layout::{
    GPT_BIOS_NAME, GPT_BIOS_TYPE, GPT_BOOT_NAME, GPT_ESP_NAME, GPT_ESP_TYPE, GPT_LINUX_FS_TYPE,
    GPT_LVM_NAME, GPT_LVM_TYPE, MSDOS_ESP, MSDOS_LINUX, MSDOS_LVM, MSDOS_SIGNATURE_MAGIC,
};
use crate::units::{human, GIB, KIB, MIB};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Table {
    Gpt {
        partitions: Vec<TablePartition>,
        /// One copy (or the protective MBR) damaged, the other intact.
        damage: Option<Damage>,
    },
    Msdos {
        signature: u32,
        partitions: Vec<TablePartition>,
    },
}

impl Table {
    pub fn partitions(&self) -> &[TablePartition] {
        match self {
            Table::Gpt { partitions, .. } | Table::Msdos { partitions, .. } => partitions,
        }
    }
}

/// The partitions of a zshield layout found on a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingLayout {
    pub label: Label,
    pub boot: TablePartition,
    pub pv: TablePartition,
    /// The number of the EFI system partition, on layouts made for UEFI too.
    pub esp: Option<u32>,
    /// What the start of the EFI system partition holds that is neither FAT
    /// nor nothing (what zshield and a cut-off mkfs.fat leave there): a sign
    /// that the partition was put to another use.
    pub esp_area: Vec<String>,
    /// A GPT to repair from its intact copy before anything else.
    pub repair: Option<Damage>,
    /// What the start of the PV partition holds.
    pub pv_area: PvArea,
}

/// What the start of a layout's PV partition holds, as read from the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PvArea {
    /// Nothing zshield knows: the PV is still to be made.
    Blank,
    /// An LVM label whose metadata area holds no volume group.
    Pv,
    /// An LVM label whose metadata area holds a volume group's text.
    PvOfVg,
    /// What zshield never puts there: a LUKS volume, a file system…
    Other(Vec<String>),
}

// One per probe of a disk: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// No partition table, no signature, nothing but zeros where they live.
    Blank,
    Zshield(ExistingLayout),
    /// A zshield GPT written for sectors of another size than the disk shows
    /// now (another controller, enclosure or adapter): its data volumes are
    /// there, but nothing can be read or repaired where it stands.
    OtherSectorSize {
        written: u64,
        seen: u64,
    },
    /// What was found, in words, for the refusal line.
    Foreign(Vec<String>),
}

/// The raw evidence read from a disk.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The disk's size in bytes.
    pub size: u64,
    /// Its logical sector size.
    pub sector: u64,
    /// The first `HEAD_BYTES` (or the whole disk if smaller).
    pub head: Vec<u8>,
    /// The last `TAIL_BYTES`.
    pub tail: Vec<u8>,
    /// `SAMPLE_BYTES` at every GiB between them, with their offsets.
    pub samples: Vec<(u64, Vec<u8>)>,
    /// `PARTITION_HEAD_BYTES` at the start of each partition of the table.
    pub partition_heads: Vec<(u64, Vec<u8>)>,
    /// The partition table, when one could be parsed.
    pub table: Option<Table>,
    /// What could not be parsed (a damaged GPT, say).
    pub table_error: Option<String>,
    /// With no table at `sector`: the sector size a GPT of zshield's layout
    /// was found at instead.
    pub zshield_gpt_sector: Option<u64>,
}

/// How much zshield reads of a disk to judge it: the first 64 MiB (every
/// usual partition start), the last 16 MiB, 64 KiB at every GiB.
pub const HEAD_BYTES: u64 = 64 * MIB;
pub const TAIL_BYTES: u64 = 16 * MIB;
pub const SAMPLE_BYTES: u64 = 64 * KIB;
pub const SAMPLE_EVERY: u64 = GIB;
/// At a partition's start: every signature, and an LVM PV's metadata area.
pub const PARTITION_HEAD_BYTES: u64 = MIB;

pub fn classify(e: &Evidence) -> Content {
    if let Some(table) = &e.table {
        if let Some(mut layout) = zshield_layout(table) {
            layout.pv_area = pv_area(partition_head(e, layout.pv.start));
            let esp = table
                .partitions()
                .iter()
                .find(|p| Some(p.number) == layout.esp);
            if let Some(esp) = esp {
                layout.esp_area = esp_area(partition_head(e, esp.start));
            }
            if let Some(damage) = &layout.repair {
                // A damaged zshield GPT is repaired only while nothing shows
                // that the disk was put to another use since.
                let reuse = signs_of_reuse(e, &layout);
                if !reuse.is_empty() {
                    return Content::Foreign(vec![format!(
                        "a zshield GPT ({}) but also {}: the disk was put to another use since",
                        damage.what,
                        reuse.join(", ")
                    )]);
                }
            }
            return Content::Zshield(layout);
        }
        return Content::Foreign(vec![describe_table(table)]);
    }
    if let Some(written) = e.zshield_gpt_sector {
        return Content::OtherSectorSize {
            written,
            seen: e.sector,
        };
    }
    let mut found = Vec::new();
    if let Some(err) = &e.table_error {
        found.push(format!("a damaged partition table ({err})"));
    }
    found.extend(found_signatures(e).into_iter().map(|(what, _)| what));
    if found.is_empty() {
        if let Some(offset) = first_data(e) {
            found.push(format!(
                "unrecognised data at byte {offset} ({})",
                human(offset)
            ));
        }
    }
    if found.is_empty() {
        Content::Blank
    } else {
        Content::Foreign(found)
    }
}

/// Every known signature on the disk, in words, with where what it names
/// starts (for the wipe).
pub fn found_signatures(e: &Evidence) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = Vec::new();
    for start in signatures::candidate_starts() {
        for what in signatures::at_start(&e.head, start as usize) {
            found.push((format!("{what} {}", signatures::place(start)), start));
        }
    }
    let end = e.size.saturating_sub(TAIL_BYTES);
    for what in signatures::of_disk(&e.head, &e.tail, e.size, e.sector.max(512)) {
        found.push((what.to_string(), if what.contains("end") { end } else { 0 }));
    }
    found
}

/// `(start, size)` of what the disk held, for a wipe: the partitions of its
/// table (or those the kernel knows), and a MiB where each signature found
/// without them starts.
pub fn old_areas(e: &Evidence, kernel_partitions: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut areas: Vec<(u64, u64)> = match &e.table {
        Some(t) => t.partitions().iter().map(|p| (p.start, p.size)).collect(),
        None => kernel_partitions.to_vec(),
    };
    areas.extend(
        found_signatures(e)
            .into_iter()
            .filter(|(_, start)| *start > 0)
            .map(|(_, start)| (start, MIB)),
    );
    areas
}

/// The bytes read at the start of the partition at `start` (empty when none were).
fn partition_head(e: &Evidence, start: u64) -> &[u8] {
    e.partition_heads
        .iter()
        .find(|(at, _)| *at == start)
        .map_or(&[][..], |(_, bytes)| bytes)
}

fn pv_area(head: &[u8]) -> PvArea {
    let found = signatures::at_start(head, 0);
    match found.as_slice() {
        [] if is_blank(head) => PvArea::Blank,
        // zshield zeroes it before it writes the table.
        [] => PvArea::Other(vec!["unrecognised data".into()]),
        ["an LVM physical volume"] => {
            // Only a volume group's metadata text has a sequence number.
            let text = head.get(4096..).unwrap_or_default();
            if text.windows(8).any(|w| w == b"seqno = ") {
                PvArea::PvOfVg
            } else {
                PvArea::Pv
            }
        }
        others => PvArea::Other(others.iter().map(|s| s.to_string()).collect()),
    }
}

fn esp_area(head: &[u8]) -> Vec<String> {
    let found = signatures::at_start(head, 0);
    match found.as_slice() {
        [] if is_blank(head) => Vec::new(),
        [] => vec!["unrecognised data".into()],
        others => others
            .iter()
            .filter(|s| **s != "a FAT filesystem")
            .map(|s| s.to_string())
            .collect(),
    }
}

/// What a zshield GPT never has, found on a disk whose GPT is damaged: an
/// msdos table in its first sector, a file system or volume where its table
/// has none, something else on its LVM partition, RAID or ZFS at its end.
fn signs_of_reuse(e: &Evidence, layout: &ExistingLayout) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(table @ Table::Msdos { .. }) = read_msdos(&e.head, e.sector) {
        found.push(describe_table(&table).replacen("a foreign", "an", 1));
    }
    // Inside /boot or the PV, what matches is their own content (the backup
    // superblocks of an ext file system with 1 KiB blocks fall on MiBs).
    let inside = |p: &TablePartition, start: u64| start > p.start && start < p.start + p.size;
    let ours = |what: &str, start: u64| {
        (start == layout.boot.start && what == "an ext2/3/4 filesystem")
            || (start == layout.pv.start && what == "an LVM physical volume")
            || inside(&layout.boot, start)
            || inside(&layout.pv, start)
    };
    for start in signatures::candidate_starts() {
        for what in signatures::at_start(&e.head, start as usize) {
            if !ours(what, start) {
                found.push(format!("{what} {}", signatures::place(start)));
            }
        }
    }
    let gpt_own = [
        "a boot sector or unreadable partition table",
        "a GPT header",
        "a backup GPT header at the end of the disk",
    ];
    for what in signatures::of_disk(&e.head, &e.tail, e.size, e.sector.max(512)) {
        if !gpt_own.contains(&what) {
            found.push(what.to_string());
        }
    }
    if let PvArea::Other(others) = &layout.pv_area {
        found.extend(others.iter().map(|o| format!("{o} on its LVM partition")));
    }
    found.extend(
        layout
            .esp_area
            .iter()
            .map(|o| format!("{o} on its EFI system partition")),
    );
    found
}

/// What the start of a volume (`head`, `signatures::REACH` bytes) holds that
/// was ever used: any file system or volume but an ext one that was never
/// mounted, which is all a cut-off mkfs leaves.
pub fn used(head: &[u8]) -> Option<String> {
    let found = signatures::at_start(head, 0);
    match found.as_slice() {
        [] => None,
        ["an ext2/3/4 filesystem"] => {
            let sb = &head[1024..2048];
            let last_mount = u32::from_le_bytes(sb[0x2C..0x30].try_into().expect("4 bytes"));
            let mounts = u16::from_le_bytes([sb[0x34], sb[0x35]]);
            (last_mount != 0 || mounts != 0)
                .then(|| "an ext2/3/4 filesystem that was mounted".to_string())
        }
        others => Some(others.join(", ")),
    }
}

/// A new disk reads as zeros, some as 0xFF.
fn is_blank(buf: &[u8]) -> bool {
    buf.iter().all(|&b| b == 0) || buf.iter().all(|&b| b == 0xFF)
}

/// The offset of the first region read that holds data.
fn first_data(e: &Evidence) -> Option<u64> {
    let position = |buf: &[u8], at: u64| {
        (!is_blank(buf)).then(|| {
            let first = buf[0];
            at + buf.iter().position(|&b| b != first).unwrap_or(0) as u64
        })
    };
    position(&e.head, 0)
        .or_else(|| e.samples.iter().find_map(|(at, buf)| position(buf, *at)))
        .or_else(|| position(&e.tail, e.size - e.tail.len() as u64))
}

pub fn zshield_layout(table: &Table) -> Option<ExistingLayout> {
    match table {
        Table::Gpt { partitions, damage } => {
            let (bios, boot, pv, esp) = match partitions.as_slice() {
                [bios, boot, pv] => (bios, boot, pv, None),
                [bios, boot, pv, esp] => (bios, boot, pv, Some(esp)),
                _ => return None,
            };
            let ok = bios.name == GPT_BIOS_NAME
                && bios.kind == GPT_BIOS_TYPE
                && boot.name == GPT_BOOT_NAME
                && boot.kind == GPT_LINUX_FS_TYPE
                && pv.name == GPT_LVM_NAME
                && pv.kind == GPT_LVM_TYPE
                && esp.is_none_or(|e| e.name == GPT_ESP_NAME && e.kind == GPT_ESP_TYPE);
            ok.then(|| ExistingLayout {
                label: Label::Gpt,
                boot: boot.clone(),
                pv: pv.clone(),
                esp: esp.map(|e| e.number),
                esp_area: Vec::new(),
                repair: damage.clone(),
                pv_area: PvArea::Blank,
            })
        }
        Table::Msdos {
            signature,
            partitions,
        } => {
            let (boot, pv, esp) = match partitions.as_slice() {
                [boot, pv] => (boot, pv, None),
                [boot, pv, esp] => (boot, pv, Some(esp)),
                _ => return None,
            };
            let ok = signature & 0xFFFF_0000 == MSDOS_SIGNATURE_MAGIC
                && boot.kind == format!("{MSDOS_LINUX:#04x}")
                && pv.kind == format!("{MSDOS_LVM:#04x}")
                && esp.is_none_or(|e| e.kind == format!("{MSDOS_ESP:#04x}"));
            ok.then(|| ExistingLayout {
                label: Label::Msdos,
                boot: boot.clone(),
                pv: pv.clone(),
                esp: esp.map(|e| e.number),
                esp_area: Vec::new(),
                repair: None,
                pv_area: PvArea::Blank,
            })
        }
    }
}

/// An msdos table with at least one partition; a protective MBR alone (0xEE)
/// or a boot sector without partitions is left to the signature check.
pub fn read_msdos(head: &[u8], sector: u64) -> Option<Table> {
    let mbr = mbrman::MBR::read_from(&mut std::io::Cursor::new(head), sector as u32).ok()?;
    let partitions: Vec<TablePartition> = mbr
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(number, p)| TablePartition {
            number: number as u32,
            start: u64::from(p.starting_lba) * sector,
            size: u64::from(p.sectors) * sector,
            kind: format!("{:#04x}", p.sys),
            name: String::new(),
        })
        .collect();
    if partitions.is_empty() || partitions.iter().any(|p| p.kind == "0xee") {
        return None;
    }
    let signature = u32::from_le_bytes(mbr.header.disk_signature);
    Some(Table::Msdos {
        signature,
        partitions,
    })
}

/// Names of common partition types, for the refusal line.
fn type_name(kind: &str) -> &str {
    match kind {
        GPT_LINUX_FS_TYPE | "0x83" => "Linux filesystem",
        GPT_LVM_TYPE | "0x8e" => "Linux LVM",
        GPT_BIOS_TYPE => "BIOS boot",
        GPT_ESP_TYPE | "0xef" => "EFI system",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" | "0x82" => "Linux swap",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" | "0xfd" => "Linux RAID",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" | "0x07" => "Microsoft basic data",
        "0x0c" | "0x0b" => "FAT32",
        "0x05" | "0x0f" => "extended",
        other => other,
    }
}

fn describe_table(table: &Table) -> String {
    let (kind, parts) = match table {
        Table::Gpt { partitions, .. } => ("GPT", partitions),
        Table::Msdos { partitions, .. } => ("msdos", partitions),
    };
    let list: Vec<String> = parts
        .iter()
        .map(|p| {
            if p.name.is_empty() {
                format!("{} {}", p.number, type_name(&p.kind))
            } else {
                format!("{} {:?} ({})", p.number, p.name, type_name(&p.kind))
            }
        })
        .collect();
    if list.is_empty() {
        format!("a foreign {kind} partition table with no partitions")
    } else {
        format!(
            "a foreign {kind} partition table (partitions {})",
            list.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u32, kind: &str, name: &str) -> TablePartition {
        TablePartition {
            number,
            start: u64::from(number) * MIB,
            size: MIB,
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// A blank 8 GiB disk, as read (a short head keeps the tests light:
    /// candidates past it are not looked at).
    fn zeros() -> Evidence {
        Evidence {
            size: 8 * GIB,
            sector: 512,
            head: vec![0; 2 * MIB as usize],
            tail: vec![0; TAIL_BYTES as usize],
            samples: (1..8)
                .map(|g| (g * GIB, vec![0; SAMPLE_BYTES as usize]))
                .collect(),
            ..Default::default()
        }
    }

    fn zshield_gpt() -> Table {
        Table::Gpt {
            partitions: vec![
                part(1, GPT_BIOS_TYPE, GPT_BIOS_NAME),
                part(2, GPT_LINUX_FS_TYPE, GPT_BOOT_NAME),
                part(3, GPT_LVM_TYPE, GPT_LVM_NAME),
            ],
            damage: None,
        }
    }

    #[test]
    fn a_volume_is_used_once_it_held_anything_but_a_fresh_ext_file_system() {
        let mut head = vec![0u8; signatures::REACH as usize];
        assert_eq!(used(&head), None);
        head[1080..1082].copy_from_slice(&[0x53, 0xEF]);
        assert_eq!(used(&head), None, "a mkfs never mounted");
        head[1024 + 0x34] = 1;
        assert_eq!(
            used(&head).as_deref(),
            Some("an ext2/3/4 filesystem that was mounted")
        );
        let mut luks = vec![0u8; signatures::REACH as usize];
        luks[..6].copy_from_slice(b"LUKS\xBA\xBE");
        assert_eq!(used(&luks).as_deref(), Some("a LUKS encrypted volume"));
    }

    #[test]
    fn zeros_are_blank_and_so_are_ones() {
        assert_eq!(classify(&zeros()), Content::Blank);
        let mut e = zeros();
        e.head.fill(0xFF);
        e.tail.fill(0xFF);
        assert_eq!(classify(&e), Content::Blank);
    }

    #[test]
    fn a_filesystem_whose_table_was_zapped_is_foreign_and_placed() {
        let mut e = zeros();
        e.head[MIB as usize + 1080..MIB as usize + 1082].copy_from_slice(&[0x53, 0xEF]);
        let Content::Foreign(found) = classify(&e) else {
            panic!()
        };
        assert_eq!(found, ["an ext2/3/4 filesystem at 1 MiB"]);
        assert_eq!(found_signatures(&e)[0].1, MIB);
    }

    #[test]
    fn data_in_the_middle_of_the_disk_is_not_blank() {
        let mut e = zeros();
        e.samples[3].1[100] = 1;
        let Content::Foreign(found) = classify(&e) else {
            panic!()
        };
        assert_eq!(
            found,
            [format!(
                "unrecognised data at byte {} (4 GiB)",
                4 * GIB + 100
            )]
        );
    }

    #[test]
    fn recognises_a_zshield_gpt() {
        let e = Evidence {
            table: Some(zshield_gpt()),
            ..zeros()
        };
        match classify(&e) {
            Content::Zshield(l) => {
                assert_eq!(l.label, Label::Gpt);
                assert_eq!(l.boot.number, 2);
                assert_eq!(l.pv.number, 3);
                assert_eq!(l.esp, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_esp_after_the_pv_is_part_of_a_zshield_layout_and_nothing_else_is() {
        let with = |esp: TablePartition| {
            let mut t = zshield_gpt();
            if let Table::Gpt { partitions, .. } = &mut t {
                partitions.push(esp);
            }
            classify(&Evidence {
                table: Some(t),
                ..zeros()
            })
        };
        assert!(matches!(
            with(part(4, GPT_ESP_TYPE, GPT_ESP_NAME)),
            Content::Zshield(ExistingLayout { esp: Some(4), .. })
        ));
        assert!(matches!(
            with(part(4, GPT_ESP_TYPE, "EFI system partition")),
            Content::Foreign(_)
        ));
        assert!(matches!(
            with(part(4, GPT_LINUX_FS_TYPE, GPT_ESP_NAME)),
            Content::Foreign(_)
        ));
        let msdos = |kind: &str| {
            classify(&Evidence {
                table: Some(Table::Msdos {
                    signature: 0x7A73_1234,
                    partitions: vec![part(1, "0x83", ""), part(2, "0x8e", ""), part(3, kind, "")],
                }),
                ..zeros()
            })
        };
        assert!(matches!(
            msdos("0xef"),
            Content::Zshield(ExistingLayout { esp: Some(3), .. })
        ));
        assert!(matches!(msdos("0x83"), Content::Foreign(_)));
    }

    #[test]
    fn an_esp_holds_fat_or_nothing() {
        let esp_holding = |head: Vec<u8>| {
            let mut t = zshield_gpt();
            let esp = part(4, GPT_ESP_TYPE, GPT_ESP_NAME);
            let start = esp.start;
            if let Table::Gpt { partitions, .. } = &mut t {
                partitions.push(esp);
            }
            match classify(&Evidence {
                table: Some(t),
                partition_heads: vec![(start, head)],
                ..zeros()
            }) {
                Content::Zshield(layout) => layout.esp_area,
                other => panic!("{other:?}"),
            }
        };
        let mut fat = vec![0u8; MIB as usize];
        fat[82..90].copy_from_slice(b"FAT32   ");
        fat[510..512].copy_from_slice(&[0x55, 0xAA]);
        assert!(esp_holding(fat).is_empty());
        assert!(esp_holding(vec![0; MIB as usize]).is_empty());
        let mut luks = vec![0u8; MIB as usize];
        luks[..6].copy_from_slice(b"LUKS\xBA\xBE");
        assert_eq!(esp_holding(luks), ["a LUKS encrypted volume"]);
        let mut other = vec![0u8; MIB as usize];
        other[4096] = 1;
        assert_eq!(esp_holding(other), ["unrecognised data"]);
    }

    #[test]
    fn a_gpt_with_other_names_is_foreign() {
        let mut t = zshield_gpt();
        if let Table::Gpt { partitions, .. } = &mut t {
            partitions[2].name = "data".into();
        }
        let e = Evidence {
            table: Some(t),
            ..zeros()
        };
        let Content::Foreign(found) = classify(&e) else {
            panic!()
        };
        assert!(
            found[0].contains("foreign GPT") && found[0].contains("\"data\""),
            "{found:?}"
        );
    }

    #[test]
    fn msdos_needs_the_zshield_signature() {
        let parts = vec![part(1, "0x83", ""), part(2, "0x8e", "")];
        let ours = Table::Msdos {
            signature: 0x7A73_1234,
            partitions: parts.clone(),
        };
        assert!(matches!(
            classify(&Evidence {
                table: Some(ours),
                ..zeros()
            }),
            Content::Zshield(_)
        ));
        let theirs = Table::Msdos {
            signature: 0x1234_5678,
            partitions: parts,
        };
        let Content::Foreign(found) = classify(&Evidence {
            table: Some(theirs),
            ..zeros()
        }) else {
            panic!()
        };
        assert_eq!(
            found[0],
            "a foreign msdos partition table (partitions 1 Linux filesystem, 2 Linux LVM)"
        );
    }

    #[test]
    fn names_whole_disk_signatures() {
        let mut e = zeros();
        e.head[512..520].copy_from_slice(b"LABELONE");
        e.head[536..544].copy_from_slice(b"LVM2 001");
        e.head[1080..1082].copy_from_slice(&[0x53, 0xEF]);
        let Content::Foreign(found) = classify(&e) else {
            panic!()
        };
        assert!(found.iter().any(|f| f.contains("LVM")), "{found:?}");
        assert!(found.iter().any(|f| f.contains("ext2/3/4")), "{found:?}");
    }

    #[test]
    fn a_lone_backup_gpt_is_not_blank() {
        let mut e = zeros();
        let n = e.tail.len();
        e.tail[n - 512..n - 504].copy_from_slice(b"EFI PART");
        let Content::Foreign(found) = classify(&e) else {
            panic!()
        };
        assert!(found[0].contains("backup GPT"), "{found:?}");
    }

    #[test]
    fn unknown_bytes_are_not_blank() {
        let mut e = zeros();
        e.head[300_000] = 7;
        e.head[300_001] = 7;
        let Content::Foreign(found) = classify(&e) else {
            panic!()
        };
        assert!(found[0].contains("unrecognised"), "{found:?}");
    }

    #[test]
    fn a_damaged_table_is_foreign() {
        let e = Evidence {
            table_error: Some("bad CRC".into()),
            ..zeros()
        };
        let Content::Foreign(found) = classify(&e) else {
            panic!()
        };
        assert!(found[0].contains("bad CRC"));
    }
}
