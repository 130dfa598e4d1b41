//! The on-disk contract every mode shares: what zshield writes and later
//! recognises. Partition names and types, the msdos signature, LVM tags, the
//! extent geometry, device naming and where the backup keeps /boot. Pure.

use serde::Serialize;

use crate::config::{Config, Label, RootLayout};
use crate::lvm::report::Lv;
use crate::units::{Size, GIB, MIB};

/// GPT partition names of a zshield layout.
pub const GPT_BIOS_NAME: &str = "zshield-bios";
pub const GPT_BOOT_NAME: &str = "zshield-boot";
pub const GPT_LVM_NAME: &str = "zshield-lvm";
pub const GPT_ESP_NAME: &str = "zshield-esp";
pub const GPT_BIOS_TYPE: &str = "21686148-6449-6E6F-744E-656564454649";
pub const GPT_LINUX_FS_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
pub const GPT_LVM_TYPE: &str = "E6D6D379-F507-44C2-A23C-238F2A3DF928";
pub const GPT_ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// msdos labels carry no names: zshield marks its tables by the upper half of
/// the disk signature ("zs"); the lower half is random.
pub const MSDOS_SIGNATURE_MAGIC: u32 = 0x7A73_0000;
pub const MSDOS_LINUX: u8 = 0x83;
pub const MSDOS_LVM: u8 = 0x8E;
/// UEFI firmware boots an msdos disk from a primary partition of this type,
/// as it does the card.
pub const MSDOS_ESP: u8 = 0xEF;

/// VG tag: this VG was made by zshield.
pub const TAG_LAYOUT: &str = "zshield";
/// VG tag: the last factory reset finished; set at its very end.
pub const TAG_COMPLETE: &str = "zshield_complete";
/// VG tag: a factory reset failed here (not one cut off): the automatic mode
/// does not run it again; an explicit "Recover to factory default" clears it.
pub const TAG_FAILED: &str = "zshield_failed";
/// In the disk's /boot file system, beside `grub/`: there while the layout is
/// complete. The card's GRUB hands the boot over to the disk only when it finds
/// it, so that no power-on starts a half-made system.
pub const COMPLETE_MARKER: &str = "zshield/complete";
/// In the disk's /boot file system: GRUB's environment block, where the disk's
/// menu counts boot tries (grub/40_zshield) and `zshield boot-ok` resets them.
/// Not part of the copy of /boot that backups keep and rollbacks restore.
pub const GRUB_ENV: &str = "grub/grubenv";
/// In the disk's /boot file system: the entries of the GRUB submenu of
/// restore points (grub/40_zshield sources it).
pub const RESTORE_MENU: &str = "grub/zshield-points.cfg";
/// LV tag: the filesystem of this data volume was made and may hold data.
pub const TAG_FS_READY: &str = "zshield_fs_ready";
/// LV tag: a rollback is under way. The classic layout's root carries it from
/// before its merge until /boot, GRUB and the fresh backup are done; the thin
/// layout's root from the rollback's first step to its last, renamed aside
/// as a restore point meanwhile.
pub const TAG_ROLLBACK: &str = "zshield_rollback";

/// Tag prefix on the root a thin rollback replaces, from its start until it
/// is done: the restore point (LV) it brings back, so that a run cut off
/// after the root was set aside restores that one, whatever the next boot asks.
pub const TAG_RESTORE_TO: &str = "zshield_restore_to:";

/// LV tag on the restore point an upgrade took, while the upgrade is being
/// applied: the disk's GRUB counts the boot tries as used up meanwhile, so
/// that whatever stops the upgrade ends in a rollback to this point.
pub const TAG_UPGRADE_APPLYING: &str = "zshield_upgrade_applying";
/// LV tag on the restore point an upgrade took, while the upgraded system
/// is on trial: the first boot marked good commits it (the tag comes off),
/// GRUB's automatic rollback brings this point back.
pub const TAG_UPGRADE_TRIAL: &str = "zshield_upgrade_trial";

/// Where `zshield upgrade` unpacks a bundle, on the root: the upgrade's
/// restore point holds it too, so a rollback brings it back, and the next
/// boot marked good with no upgrade under way removes it.
pub const UPGRADE_STAGING: &str = "/var/lib/zshield/upgrade";

/// The name a thin rollback gives the new root until the old one is set aside.
pub fn restoring_root_name(root: &str) -> String {
    format!("{root}_restoring")
}

/// The LV in which LVM keeps a spare of the largest thin pool metadata of
/// its VG, for repairs (`lvs --all` shows it as `[lvol0_pmspare]`).
pub const POOL_METADATA_SPARE: &str = "lvol0_pmspare";

/// The thin pool's chunk: the unit it allocates and shares between lv-root
/// and its restore points. Each first write to a chunk a restore point
/// shares costs the pool a new mapping: under QEMU/TCG, overwriting 256 MiB
/// after a restore point took 2.9 times as long as without one at LVM's
/// 64 KiB, 1.6 at 256 KiB and 1.3 at 1 MiB (the same boot, 1.2-1.4 s
/// without). A small write to a shared chunk copies all of it.
pub const THIN_CHUNK: u64 = MIB;
/// Thin pool metadata LVM accepts at most (lvmthin(7): 15.81 GiB).
const POOL_METADATA_MAX: u64 = 15 * GIB;
const POOL_METADATA_MIN: u64 = 16 * MIB;

/// Metadata for a pool of `data` bytes: 128 bytes per chunk, twice LVM's
/// own estimate, for the mappings of restore points that diverged; at least
/// 16 MiB. Whole extents; LVM keeps a spare of the same size for repairs.
pub fn pool_metadata_bytes(data: u64) -> u64 {
    let estimate = data / THIN_CHUNK * 128;
    align_up(estimate.clamp(POOL_METADATA_MIN, POOL_METADATA_MAX), EXTENT)
}

/// Where each backup keeps its copy of /boot, inside the root: /boot is a
/// partition outside LVM, so a rollback restores it from the merged copy.
pub const BOOT_COPY: &str = "var/lib/zshield/boot";

/// Extent size and first extent of the VGs zshield makes (passed to LVM, so
/// that the plan can count extents before the VG exists).
pub const EXTENT: u64 = 4 * MIB;
pub const PE_START: u64 = MIB;
pub const ALIGN: u64 = MIB;
const BIOS_BOOT_SIZE: u64 = MIB;
/// Debian's signed shim, MOK manager, fallback and GRUB, twice (their own
/// directory and the removable-media path), take 10 MiB.
pub const ESP_SIZE: u64 = 64 * MIB;
/// Where the disk's ESP is mounted (Debian's place for it).
pub const ESP_MOUNT: &str = "boot/efi";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartKind {
    BiosBoot,
    Boot,
    Lvm,
    Esp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPartition {
    pub number: u32,
    pub name: &'static str,
    pub kind: PartKind,
    /// Bytes from the start of the disk.
    pub start: u64,
    pub size: u64,
}

/// `/dev/sdb` + 3 → `/dev/sdb3`; `/dev/nvme0n1` + 3 → `/dev/nvme0n1p3`.
pub fn partition_dev(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

/// The number of `disk`'s partition `dev` (what `partition_dev` made).
pub fn partition_number(disk: &str, dev: &str) -> Option<u32> {
    let rest = dev.strip_prefix(disk)?;
    let n = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        rest.strip_prefix('p')?
    } else {
        rest
    };
    n.parse().ok()
}

/// Whether `path` is the disk `dev` or one of its partitions.
pub fn on_disk(dev: &str, path: &str) -> bool {
    match path.strip_prefix(dev) {
        Some("") => true,
        // The kernel's naming: a disk whose name ends in a digit has its
        // partitions after a `p` (nvme0n1p2, loop1p1), so loop10 is not on loop1.
        Some(rest) => {
            let n = if dev.ends_with(|c: char| c.is_ascii_digit()) {
                match rest.strip_prefix('p') {
                    Some(n) => n,
                    None => return false,
                }
            } else {
                rest
            };
            !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// The device-mapper name of a VG's LVs starts with this: dashes doubled.
pub fn dm_prefix(vg: &str) -> String {
    format!("{}-", vg.replace('-', "--"))
}

/// The device-mapper path of an LV: dashes in either name are doubled.
pub fn mapper_path(vg: &str, lv: &str) -> String {
    format!("/dev/mapper/{}{}", dm_prefix(vg), lv.replace('-', "--"))
}

/// The partition numbers of /boot and the PV in a fresh layout.
pub fn fresh_numbers(label: Label) -> (u32, u32) {
    match label {
        Label::Gpt => (2, 3),
        Label::Msdos => (1, 2),
    }
}

pub fn align_up(n: u64, a: u64) -> u64 {
    n.div_ceil(a) * a
}

fn align_down(n: u64, a: u64) -> u64 {
    n / a * a
}

/// The partitions of a fresh layout on a disk of `size` bytes: with `esp`,
/// an EFI system partition last (on either label), numbered after the PV so
/// that the numbers of a layout without one stay what they are.
pub fn fresh_partitions(label: Label, size: u64, boot_size: u64, esp: bool) -> Vec<NewPartition> {
    let boot_size = align_up(boot_size, ALIGN);
    // A MiB is left free at the end for the backup GPT (and for symmetry on msdos).
    let mut end = align_down(size.saturating_sub(MIB), ALIGN);
    let esp_start = end.saturating_sub(ESP_SIZE);
    if esp {
        end = esp_start;
    }
    let (boot_number, pv_number) = fresh_numbers(label);
    let mut parts = Vec::new();
    let mut start = ALIGN;
    if label == Label::Gpt {
        parts.push(NewPartition {
            number: 1,
            name: GPT_BIOS_NAME,
            kind: PartKind::BiosBoot,
            start,
            size: BIOS_BOOT_SIZE,
        });
        start += BIOS_BOOT_SIZE;
    }
    parts.push(NewPartition {
        number: boot_number,
        name: GPT_BOOT_NAME,
        kind: PartKind::Boot,
        start,
        size: boot_size,
    });
    start += boot_size;
    parts.push(NewPartition {
        number: pv_number,
        name: GPT_LVM_NAME,
        kind: PartKind::Lvm,
        start,
        size: end.saturating_sub(start),
    });
    if esp {
        parts.push(NewPartition {
            number: pv_number + 1,
            name: GPT_ESP_NAME,
            kind: PartKind::Esp,
            start: esp_start,
            size: ESP_SIZE,
        });
    }
    parts
}

/// Extents of a VG made by zshield on a PV of `pv_size` bytes.
pub fn fresh_vg_extents(pv_size: u64) -> u64 {
    pv_size.saturating_sub(PE_START) / EXTENT
}

/// `size` in extents of a VG of `vg_extents` × `extent_size`, rounded up.
pub fn size_in_extents(size: Size, vg_extents: u64, extent_size: u64) -> u64 {
    size.resolve(vg_extents * extent_size)
        .div_ceil(extent_size)
        .max(1)
}

/// Less than any disk the layout fits on: /boot and the LVs of a fixed
/// size (a share of the VG counts nothing); the planner checks the real need.
/// A bare `zshield.wipe` and `target = "auto"` leave smaller disks out.
pub fn least_disk_size(config: &Config) -> u64 {
    let fixed = |size: Size| match size {
        Size::Bytes(bytes) => bytes,
        Size::PercentOfVg(_) => 0,
    };
    let root = match config.layout {
        RootLayout::Thin => {
            let pool = fixed(config.pool.size);
            pool + 2 * pool_metadata_bytes(pool)
        }
        RootLayout::Classic => fixed(config.root.size) + fixed(config.snapshot.size),
    };
    align_up(config.boot_size, ALIGN)
        + ESP_SIZE
        + root
        + config.data.iter().map(|d| fixed(d.size)).sum::<u64>()
}

/// The first and last MiB of the disk and of every old partition: where
/// partition tables, LVM labels, filesystem and RAID superblocks live.
pub fn wipe_ranges(disk_size: u64, partitions: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut both_ends = |start: u64, size: u64| {
        ranges.push((start, MIB.min(size)));
        if size > MIB {
            ranges.push((start + size - MIB, MIB));
        }
    };
    both_ends(0, disk_size);
    for &(start, size) in partitions {
        both_ends(start, size);
    }
    ranges.sort_unstable();
    ranges.dedup();
    ranges
}

/// The temporary name of a new backup while the old one still exists.
pub fn next_backup_name(snapshot: &str) -> String {
    format!("{snapshot}_next")
}

/// The backup among `lvs`: the snapshot of the root named in the
/// configuration or, when a backup was cut off between removing the old one
/// and renaming the new one, that new one.
pub fn current_backup<'a>(config: &Config, lvs: &'a [Lv]) -> Option<&'a Lv> {
    let find = |name: &str| lvs.iter().find(|l| l.vg == config.vg && l.name == name);
    find(&config.snapshot.name).or_else(|| {
        find(&next_backup_name(&config.snapshot.name)).filter(|lv| {
            lv.is_snapshot() && lv.origin == config.root.name && !lv.is_invalid_snapshot()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert_eq!(partition_dev("/dev/sdb", 3), "/dev/sdb3");
        assert_eq!(partition_dev("/dev/nvme0n1", 3), "/dev/nvme0n1p3");
        assert_eq!(partition_dev("/dev/loop7", 1), "/dev/loop7p1");
        assert_eq!(
            mapper_path("vgroup", "lv-root"),
            "/dev/mapper/vgroup-lv--root"
        );
        assert_eq!(mapper_path("my-vg", "snap0"), "/dev/mapper/my--vg-snap0");
        assert!(on_disk("/dev/sdb", "/dev/sdb3") && on_disk("/dev/nvme0n1", "/dev/nvme0n1p2"));
        assert!(!on_disk("/dev/sdb", "/dev/sdba1") && !on_disk("/dev/sd", "/dev/sdb"));
        assert!(!on_disk("/dev/loop1", "/dev/loop10") && !on_disk("/dev/nvme0n1", "/dev/nvme0n12"));
        assert!(!on_disk("/dev/sdb", "/dev/sdbp1") && on_disk("/dev/loop1", "/dev/loop1p3"));
        for (disk, n) in [("/dev/sdb", 4), ("/dev/nvme0n1", 4), ("/dev/loop7", 12)] {
            assert_eq!(partition_number(disk, &partition_dev(disk, n)), Some(n));
        }
        assert_eq!(partition_number("/dev/sdb", "/dev/sdc4"), None);
        assert_eq!(partition_number("/dev/loop1", "/dev/loop14"), None);
    }

    #[test]
    fn fresh_layouts() {
        let gpt = fresh_partitions(Label::Gpt, 4 * GIB, 256 * MIB, false);
        let spans: Vec<(u32, u64, u64)> = gpt.iter().map(|p| (p.number, p.start, p.size)).collect();
        assert_eq!(
            spans,
            [
                (1, MIB, MIB),
                (2, 2 * MIB, 256 * MIB),
                (3, 258 * MIB, 4 * GIB - 259 * MIB)
            ]
        );
        let msdos = fresh_partitions(Label::Msdos, 4 * GIB, 256 * MIB, false);
        assert_eq!((msdos[0].number, msdos[0].start), (1, MIB));
        assert_eq!(msdos[1].number, 2);
        // The ESP last, a MiB before the end; the PV ends where it starts.
        for label in [Label::Gpt, Label::Msdos] {
            let parts = fresh_partitions(label, 4 * GIB, 256 * MIB, true);
            let (pv, esp) = (&parts[parts.len() - 2], &parts[parts.len() - 1]);
            assert_eq!((esp.kind, esp.number), (PartKind::Esp, pv.number + 1));
            assert_eq!((esp.start, esp.size), (4 * GIB - MIB - ESP_SIZE, ESP_SIZE));
            assert_eq!(pv.start + pv.size, esp.start);
        }
        assert_eq!(fresh_vg_extents(8 * MIB + 1), 1);
    }

    #[test]
    fn pool_metadata_follows_lvms_estimate() {
        assert_eq!(pool_metadata_bytes(1792 * MIB), 16 * MIB);
        // 128 bytes per 1 MiB chunk, in whole extents.
        assert_eq!(pool_metadata_bytes(200 * GIB), 28 * MIB);
        assert_eq!(pool_metadata_bytes(1 << 60), 15 * GIB);
    }
}
