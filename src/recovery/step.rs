//! The steps of both recoveries. Each carries every value the executor uses,
//! so that the plan printed by `zshield plan` and `--dry-run` is exactly what
//! runs; the same text goes to the console, the log and the JSON report.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::Label;
use crate::disk::blockmap::FsMap;
use crate::disk::gpt_copies::Copy;
use crate::disk::identity::Identity;
use crate::fstab;
use crate::layout::{NewPartition, BOOT_COPY, RESTORE_MENU, THIN_CHUNK};
use crate::points::Kind;
use crate::target::bootentry;
use crate::target::provision::{Provision, HOOKS_DIR, MANIFEST};
use crate::units::human;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    // Factory reset: the disk and its volumes.
    /// A zshield GPT with one copy damaged: the whole plan is this step,
    /// then the disk is read and planned again (until the kernel reads the
    /// table, LVM cannot see the volume group on it).
    RepairGpt {
        disk: String,
        intact: Copy,
        damage: String,
    },
    DeactivateVg {
        vg: String,
    },
    Wipe {
        disk: String,
        ranges: Vec<(u64, u64)>,
    },
    Partition {
        disk: String,
        label: Label,
        partitions: Vec<NewPartition>,
        /// The msdos disk signature (zshield's mark and a random half); none on GPT.
        msdos_signature: Option<u32>,
    },
    MkfsBoot {
        dev: String,
        uuid: String,
    },
    /// FAT on the EFI system partition, with the volume ID `XXXX-XXXX`.
    MkfsEsp {
        dev: String,
        volume_id: String,
    },
    /// The golden /boot onto the /boot partition block by block, as
    /// [`Step::CopyRootBlocks`] does with the root; it takes the place of
    /// [`Step::MkfsBoot`].
    CopyBootBlocks {
        from: String,
        to: String,
        uuid: String,
        why: String,
        map: FsMap,
    },
    CreatePv {
        dev: String,
    },
    CreateVg {
        vg: String,
        pv: String,
    },
    /// The golden root read and checked against the card's block map before
    /// the target's working system is removed.
    VerifyGolden {
        from: String,
        map: FsMap,
    },
    /// A data volume not marked as holding data is made again only when it
    /// holds nothing that was ever used: read before anything is written.
    CheckUnused {
        vg: String,
        lv: String,
    },
    /// The card's hand-over marker off `boot` first, then the VG's tag.
    UnmarkComplete {
        vg: String,
        boot: String,
    },
    /// An explicit reset runs again where the last one failed.
    ClearFailure {
        vg: String,
    },
    RemoveLv {
        vg: String,
        lv: String,
    },
    CreateLv {
        vg: String,
        lv: String,
        extents: u64,
        bytes: u64,
    },
    MkfsLv {
        vg: String,
        lv: String,
        uuid: String,
    },
    /// The thin pool of the thin layout: `extents` of data, `metadata_bytes`
    /// of metadata (and LVM's spare of that size), `THIN_CHUNK` chunks.
    CreatePool {
        vg: String,
        pool: String,
        extents: u64,
        bytes: u64,
        metadata_bytes: u64,
    },
    /// A thin volume of `pool`, `bytes` virtual: its blocks come from the
    /// pool as they are written.
    CreateThinLv {
        vg: String,
        pool: String,
        lv: String,
        bytes: u64,
    },
    MarkFsReady {
        vg: String,
        lv: String,
    },
    KeepLv {
        vg: String,
        lv: String,
    },
    // Factory reset: the system on it.
    MountTarget {
        root: String,
        boot: String,
    },
    /// The golden root onto the root volume block by block, each range
    /// checked against the card's block map; the copy gets `uuid` and
    /// `label`, then is grown to the volume and checked. On a thin volume
    /// its allocations are then aligned to the pool's chunks of `stripe`
    /// bytes (as mkfs.ext4 does by itself on one), so that a write of a whole
    /// chunk is one: a partial write to a chunk a restore point shares copies it.
    CopyRootBlocks {
        from: String,
        to: String,
        uuid: String,
        label: String,
        why: String,
        map: FsMap,
        stripe: Option<u64>,
    },
    CopyRoot {
        from: String,
        /// Where the golden root is mounted (read-only).
        tree: PathBuf,
        to: String,
        why: String,
    },
    CopyBoot {
        from: String,
        /// Where the golden /boot is mounted (read-only).
        tree: PathBuf,
        to: String,
    },
    /// After a block copy of /boot: only the copy of it in the root that the
    /// first backup needs (`CopyBoot` makes it too).
    KeepBootCopy {
        /// Where the golden /boot is mounted (read-only).
        tree: PathBuf,
    },
    ConfigureTarget {
        fstab: Vec<FstabEntry>,
        mount_points: Vec<String>,
        /// The names of the golden disk's filesystems: fstab lines naming
        /// them are disabled.
        golden_names: Vec<String>,
        /// Where the disk's own "Recover to factory default" finds the golden.
        golden: String,
        /// Boots that may fail in a row before the disk's GRUB rolls back
        /// (0: no counting).
        boot_tries: u32,
    },
    /// The install manifest's files for this architecture.
    InstallFiles {
        /// The golden root the files come from.
        tree: PathBuf,
        provision: Provision,
    },
    /// The provisioning hooks, in order, inside the target.
    RunHooks {
        provision: Provision,
    },
    // Rollback.
    /// The rollback's tag on the root, the card's hand-over marker off the
    /// disk's /boot partition `boot`, then the merge: until the rollback is
    /// done, a power-on with the card goes to its automatic mode, which
    /// finishes it.
    Merge {
        vg: String,
        root: String,
        snapshot: String,
        boot: String,
    },
    ResumeMerge {
        vg: String,
        root: String,
        snapshot: String,
    },
    /// /boot from the copy in the merged root onto `boot`, the /boot
    /// partition of the VG's disk as the probe found it, once the root's
    /// /etc/fstab is seen to mount /boot from that partition: a /boot the
    /// fstab finds elsewhere (a file system of another disk that carries the
    /// same UUID) is never written.
    RestoreBoot {
        vg: String,
        root: String,
        boot: String,
    },
    // Both.
    /// GRUB for BIOS on `bios_disk` and for UEFI with Secure Boot on the EFI
    /// system partition `esp`, as the disk is to serve them; its menu always.
    InstallBootloader {
        bios_disk: Option<String>,
        root: String,
        esp: Option<String>,
    },
    /// The firmware's boot entry for the EFI system partition `esp`
    /// (partition `part` of `disk`), right after the entry `after` this
    /// machine started from (last without one); then the `stale` entries of
    /// earlier resets go.
    MakeBootEntry {
        disk: String,
        part: u32,
        esp: String,
        after: Option<u16>,
        stale: Vec<u16>,
    },
    CreateSnapshot {
        vg: String,
        origin: String,
        snapshot: String,
        extents: u64,
        bytes: u64,
    },
    /// A restore point: a thin snapshot `lv` of `origin`, left inactive.
    CreateRestorePoint {
        vg: String,
        origin: String,
        lv: String,
        kind: Kind,
    },
    // Backup.
    /// The copy of /boot in the running root (`BOOT_COPY`), which the
    /// snapshot taken next keeps for a rollback to it.
    RefreshBootCopy {
        boot: PathBuf,
        copy: PathBuf,
    },
    /// Tags off an LV: a stale rollback's, say.
    DropTags {
        vg: String,
        lv: String,
        tags: Vec<String>,
    },
    RenameLv {
        vg: String,
        from: String,
        to: String,
    },
    /// The upgrade whose restore point a rollback brings back is over: its
    /// tags come off the point, and the event log tells why it was undone.
    EndUpgrade {
        vg: String,
        point: String,
        why: String,
    },
    RemoveRestorePoint {
        vg: String,
        lv: String,
        why: String,
    },
    /// While the pool's data or metadata use is at `threshold` percent or
    /// more, the `candidates` (automatic restore points, oldest first) are
    /// removed one by one; fails when that is not enough.
    PrunePool {
        vg: String,
        pool: String,
        threshold: u8,
        candidates: Vec<String>,
    },
    // Thin rollback.
    /// The rollback's tags on the root (the restore point `point` it brings
    /// back; the `stale` tags of an earlier try off), then the card's
    /// hand-over marker off `boot`: until the rollback is done, a power-on
    /// with the card finishes it.
    BeginRollback {
        vg: String,
        root: String,
        point: String,
        stale: Vec<String>,
        boot: String,
    },
    /// A restore point (a root a rollback set aside) skipped at activation
    /// from the next boot on, as LVM leaves thin snapshots.
    SetAside {
        vg: String,
        lv: String,
    },
    /// A new root `root`: a thin snapshot of the restore point, active.
    RestoreRoot {
        vg: String,
        point: String,
        root: String,
    },
    /// A thin rollback's GRUB: the restored /boot's menu is kept when it
    /// boots `root` (else made again, as `InstallBootloader` does); GRUB is
    /// installed for BIOS on `bios_disk` again only when restoring /boot
    /// changed its modules there (the ESP's signed GRUB carries its own and,
    /// as always, finds /boot by its UUID).
    ReinstallBootloader {
        bios_disk: Option<String>,
        root: String,
    },
    /// The disk's GRUB submenu of restore points, from the ones `vg` holds
    /// when it runs, written beside the old one and renamed over it.
    WriteRestoreMenu {
        vg: String,
    },
    /// The card's hand-over marker back on `boot`, then the rollback's tags
    /// off the set-aside root `kept`: the rollback is done.
    FinishRollback {
        vg: String,
        kept: String,
        tags: Vec<String>,
        boot: String,
    },
    /// The VG's tag, then the card's hand-over marker on `boot`.
    MarkComplete {
        vg: String,
        boot: String,
    },
    /// The rollback's last step: a fresh backup of the restored root, the
    /// card's hand-over marker back on `boot`, and the end of the rollback
    /// (its tag comes off the root).
    #[serde(rename = "snapshot")]
    FreshBackup {
        vg: String,
        origin: String,
        snapshot: String,
        extents: u64,
        bytes: u64,
        boot: String,
    },
}

/// `fstab::Entry` in a form the JSON report can carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FstabEntry {
    pub spec: String,
    pub mount_point: String,
    pub options: String,
    pub passno: u8,
}

impl FstabEntry {
    pub fn to_entry(&self) -> fstab::Entry {
        fstab::Entry {
            spec: self.spec.clone(),
            mount_point: self.mount_point.clone(),
            fstype: "ext4".into(),
            options: self.options.clone(),
            passno: self.passno,
        }
    }
}

impl Step {
    /// The step's kind in kebab case, as the JSON report and the test
    /// failpoint name it: `partition`, `copy-root`…
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v["step"].as_str().map(String::from))
            .unwrap_or_default()
    }

    /// Whether the step changes a disk (the report says where a failure left them).
    pub fn writes_disk(&self) -> bool {
        !matches!(
            self,
            Step::KeepLv { .. }
                | Step::DeactivateVg { .. }
                | Step::MountTarget { .. }
                | Step::VerifyGolden { .. }
                | Step::CheckUnused { .. }
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::DeactivateVg { vg } => write!(f, "deactivate volume group {vg}"),
            Step::RepairGpt {
                disk,
                intact,
                damage,
            } => write!(
                f,
                "repair the GPT of {disk} from its {intact} copy ({damage})"
            ),
            Step::Wipe { disk, ranges } => {
                let total: u64 = ranges.iter().map(|r| r.1).sum();
                write!(
                    f,
                    "zero old signatures and the new partitions' starts on {disk} ({} ranges, {})",
                    ranges.len(),
                    human(total)
                )
            }
            Step::Partition {
                disk,
                label,
                partitions,
                ..
            } => {
                let parts: Vec<String> = partitions
                    .iter()
                    .map(|p| format!("{} {} {}", p.number, p.name, human(p.size)))
                    .collect();
                write!(
                    f,
                    "write a {label} partition table on {disk}: {}",
                    parts.join(", ")
                )
            }
            Step::MkfsBoot { dev, uuid } => write!(f, "make ext4 for /boot on {dev} (UUID {uuid})"),
            Step::MkfsEsp { dev, volume_id } => write!(
                f,
                "make FAT for the EFI system partition on {dev} (volume ID {volume_id})"
            ),
            Step::CopyBootBlocks { from, to, uuid, why, .. } => write!(
                f,
                "copy the golden /boot {from} onto {to} block by block, checking each range, as UUID {uuid}; grow it to the partition and check it ({why})"
            ),
            Step::CreatePv { dev } => write!(f, "create LVM physical volume {dev}"),
            Step::CreateVg { vg, pv } => write!(f, "create volume group {vg} on {pv}"),
            Step::CheckUnused { vg, lv } => write!(
                f,
                "check that {vg}/{lv}, whose file system was never finished, holds nothing used"
            ),
            Step::VerifyGolden { from, map } => write!(
                f,
                "check {} {from} against the card's block map ({} in {} ranges) before anything is removed",
                map.label,
                human(map.used_bytes()),
                map.ranges.len()
            ),
            Step::UnmarkComplete { vg, boot } => write!(
                f,
                "mark {vg} as being provisioned (and {boot} as not bootable from the card)"
            ),
            Step::ClearFailure { vg } => {
                write!(f, "clear the record of the last reset's failure on {vg}")
            }
            Step::RemoveLv { vg, lv } => write!(f, "remove {vg}/{lv}"),
            Step::CreateLv { vg, lv, bytes, .. } => {
                write!(f, "create {vg}/{lv} ({})", human(*bytes))
            }
            Step::MkfsLv { vg, lv, uuid } => write!(f, "make ext4 on {vg}/{lv} (UUID {uuid})"),
            Step::CreatePool {
                vg,
                pool,
                bytes,
                metadata_bytes,
                ..
            } => write!(
                f,
                "create the thin pool {vg}/{pool} ({} of data, {} of metadata and as much for LVM's spare, {} chunks)",
                human(*bytes),
                human(*metadata_bytes),
                human(THIN_CHUNK)
            ),
            Step::CreateThinLv {
                vg,
                pool,
                lv,
                bytes,
            } => write!(f, "create {vg}/{lv} in the thin pool {pool} ({} virtual)", human(*bytes)),
            Step::CreateRestorePoint {
                vg,
                origin,
                lv,
                kind,
            } => write!(
                f,
                "take the {} restore point {vg}/{lv}, a thin snapshot of {origin}",
                kind.word()
            ),
            Step::RefreshBootCopy { boot, copy } => write!(
                f,
                "refresh the copy of {} in the root ({})",
                boot.display(),
                copy.display()
            ),
            Step::DropTags { vg, lv, tags } => {
                write!(f, "remove the stale tags {} from {vg}/{lv}", tags.join(", "))
            }
            Step::RenameLv { vg, from, to } => write!(f, "rename {vg}/{from} to {to}"),
            Step::EndUpgrade { vg, point, why } => {
                write!(f, "end the upgrade whose restore point is {vg}/{point}: {why}")
            }
            Step::RemoveRestorePoint { vg, lv, why } => {
                write!(f, "remove the restore point {vg}/{lv} ({why})")
            }
            Step::PrunePool {
                vg,
                pool,
                threshold,
                candidates,
            } if candidates.is_empty() => write!(
                f,
                "check that the thin pool {vg}/{pool} is under {threshold}% full now"
            ),
            Step::PrunePool {
                vg,
                pool,
                threshold,
                candidates,
            } => write!(
                f,
                "while the thin pool {vg}/{pool} is {threshold}% full or more, remove automatic restore points, oldest first ({})",
                candidates.join(", ")
            ),
            Step::BeginRollback {
                vg, root, point, boot, ..
            } => write!(
                f,
                "mark {vg}/{root} as being rolled back to {point} (and {boot} as not bootable from the card)"
            ),
            Step::SetAside { vg, lv } => write!(
                f,
                "have LVM skip {vg}/{lv} at activation, as every restore point"
            ),
            Step::RestoreRoot { vg, point, root } => write!(
                f,
                "make {vg}/{root}, a thin snapshot of the restore point {point}"
            ),
            Step::ReinstallBootloader { bios_disk, root } => {
                write!(f, "check that the restored GRUB menu boots root={root} (else generate it again)")?;
                if let Some(disk) = bios_disk {
                    write!(f, "; install GRUB on {disk} for BIOS again if restoring /boot changed its modules")?;
                }
                Ok(())
            }
            Step::WriteRestoreMenu { vg } => write!(
                f,
                "write the disk's GRUB submenu of the restore points of {vg} (/boot/{RESTORE_MENU})"
            ),
            Step::FinishRollback { vg, kept, boot, .. } => write!(
                f,
                "mark the rollback as done ({boot} bootable from the card again, {vg}/{kept} a restore point like any other)"
            ),
            Step::MarkFsReady { vg, lv } => write!(f, "mark {vg}/{lv} as holding data"),
            Step::KeepLv { vg, lv } => write!(f, "keep {vg}/{lv} with its data"),
            Step::MountTarget { root, boot } => write!(f, "mount {root} and {boot}"),
            Step::CopyRootBlocks {
                from,
                to,
                uuid,
                why,
                stripe,
                ..
            } => {
                write!(
                    f,
                    "copy the golden root {from} onto {to} block by block, checking each range, as UUID {uuid}; grow it to the volume and check it"
                )?;
                if let Some(stripe) = stripe {
                    write!(f, "; align its allocations to {}", human(*stripe))?;
                }
                write!(f, " ({why})")
            }
            Step::CopyRoot { from, to, why, .. } => {
                write!(f, "copy the golden root {from} onto {to} file by file ({why})")
            }
            Step::CopyBoot { from, to, .. } => {
                write!(f, "copy the golden /boot {from} onto {to}")
            }
            Step::KeepBootCopy { .. } => {
                write!(f, "keep a copy of /boot in the root (/{BOOT_COPY}) for backups")
            }
            Step::ConfigureTarget {
                fstab,
                golden,
                boot_tries,
                ..
            } => {
                let mps: Vec<&str> = fstab.iter().map(|e| e.mount_point.as_str()).collect();
                let counting = match boot_tries {
                    0 => "no boot counting".to_string(),
                    n => format!("rollback after {n} failed boots"),
                };
                write!(
                    f,
                    "rewrite /etc/fstab ({}), drop the LVM devices file, set GRUB defaults (factory default from {golden}, {counting})",
                    mps.join(" ")
                )
            }
            Step::InstallFiles { provision, .. } => {
                let files: Vec<String> = provision.files.iter().map(|f| f.to_string()).collect();
                write!(
                    f,
                    "install {} file{} of {}/{MANIFEST} for {}: {}",
                    files.len(),
                    plural(files.len()),
                    provision.dir,
                    provision.arch,
                    files.join(", ")
                )
            }
            Step::RunHooks { provision } => {
                let hooks: Vec<&str> = provision.hooks.iter().map(|h| h.name.as_str()).collect();
                write!(
                    f,
                    "run the hooks of {}/{HOOKS_DIR} in the target, in order, {} s each at most: {}",
                    provision.dir,
                    provision.hook_timeout_secs,
                    hooks.join(", ")
                )
            }
            Step::Merge {
                vg, root, snapshot, ..
            } => {
                write!(f, "merge the backup {vg}/{snapshot} into {vg}/{root}")
            }
            Step::ResumeMerge { vg, root, snapshot } => write!(
                f,
                "finish the merge of {vg}/{snapshot} into {vg}/{root} that was cut off"
            ),
            Step::RestoreBoot { boot, .. } => write!(
                f,
                "restore /boot from the copy in the restored root (/{BOOT_COPY}) onto {boot}, which its /etc/fstab must name"
            ),
            Step::InstallBootloader {
                bios_disk,
                root,
                esp,
            } => {
                const SIGNED: &str = "(Debian's signed shim and GRUB, for Secure Boot)";
                match (bios_disk, esp) {
                    (Some(disk), None) => write!(f, "install GRUB on {disk} for BIOS")?,
                    (Some(disk), Some(esp)) => write!(
                        f,
                        "install GRUB on {disk} for BIOS and on {esp} for UEFI {SIGNED}"
                    )?,
                    (None, Some(esp)) => write!(f, "install GRUB on {esp} for UEFI {SIGNED}")?,
                    // The EFI system partition's GRUB finds /boot by its UUID.
                    (None, None) => write!(f, "keep the GRUB that is installed")?,
                }
                write!(f, " and generate its menu with root={root}")
            }
            Step::MakeBootEntry {
                esp, after, stale, ..
            } => {
                write!(
                    f,
                    "make the firmware's boot entry '{}' for {} on {esp}, ",
                    bootentry::LABEL,
                    bootentry::LOADER
                )?;
                match after {
                    Some(n) if stale.contains(n) => write!(
                        f,
                        "in its boot order where Boot{n:04X} is, the entry this machine started from"
                    )?,
                    Some(n) => write!(
                        f,
                        "next in its boot order after Boot{n:04X}, the entry this machine started from"
                    )?,
                    None => write!(f, "last in its boot order")?,
                }
                if !stale.is_empty() {
                    let names: Vec<String> = stale.iter().map(|n| format!("Boot{n:04X}")).collect();
                    write!(
                        f,
                        "; then remove the entries of earlier resets of the disk ({})",
                        names.join(", ")
                    )?;
                }
                Ok(())
            }
            Step::CreateSnapshot {
                vg,
                origin,
                snapshot,
                bytes,
                ..
            } => write!(
                f,
                "take snapshot {vg}/{snapshot} of {origin} ({})",
                human(*bytes)
            ),
            Step::MarkComplete { vg, boot } => write!(
                f,
                "mark the layout on {vg} as complete (and {boot} as bootable from the card)"
            ),
            Step::FreshBackup {
                vg,
                origin,
                snapshot,
                bytes,
                ..
            } => write!(
                f,
                "take a fresh backup {vg}/{snapshot} of {vg}/{origin} ({})",
                human(*bytes)
            ),
        }
    }
}

/// What a recovery will do, decided before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The disk the recovery writes.
    pub target: String,
    /// How the operator knows it (model, serial, size), for a factory reset.
    pub disk: Option<Identity>,
    /// What the target holds, in words.
    pub found: String,
    /// The golden root device a factory reset copies from.
    pub golden: Option<String>,
    /// What the disk will boot through, and why, when the plan installs GRUB.
    pub firmware: Option<String>,
    /// What the operator should know before it runs, one line each.
    pub warnings: Vec<String>,
    pub steps: Vec<Step>,
}

impl Plan {
    /// The plan as the console and the log show it.
    pub fn show(&self) {
        match &self.golden {
            Some(golden) => log::info!(
                "plan: target {} holds {}; golden root {golden}",
                self.disk
                    .as_ref()
                    .map_or(self.target.clone(), |d| d.to_string()),
                self.found
            ),
            None => log::info!("plan: {} holds {}", self.target, self.found),
        }
        if let Some(firmware) = &self.firmware {
            log::info!("plan: {firmware}");
        }
        for warning in &self.warnings {
            log::warn!("{warning}");
        }
        for (i, step) in self.steps.iter().enumerate() {
            log::info!("plan: {:2}. {step}", i + 1);
        }
        if self.rereads_disk() {
            log::info!("plan: then zshield reads the disk again and plans the rest");
        }
    }

    /// Whether the disk must be read and planned again after this plan.
    pub fn rereads_disk(&self) -> bool {
        matches!(self.steps.last(), Some(Step::RepairGpt { .. }))
    }

    /// Whether it makes a thin pool (the thin layout).
    pub fn makes_pool(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::CreatePool { .. }))
    }
}

/// Why zshield will not touch the disks: one line that says what and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);
