//! `zshield_recovery=latest`: merge the backup snapshot back into the root,
//! bring /boot in step with the merged root, reinstall GRUB and take a fresh
//! backup, so that "latest backup" can be chosen again.
//!
//! /boot is a partition outside LVM: each backup keeps a copy of it inside the
//! root (`BOOT_COPY`), and the rollback restores /boot from the merged copy.
//! The root carries the tag `TAG_ROLLBACK` from before the merge until /boot
//! and GRUB are restored, so that a run cut off after the merge (when the
//! snapshot is gone) is recognised and finished by the next one.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::config::{Config, Firmware};
use crate::disk::blockdev::{examine, settle_udev, BlockDev, ReadOnlyGuard};
use crate::disk::content::Content;
use crate::disk::golden;
use crate::disk::mounts::MountStack;
use crate::layout::{
    current_backup, mapper_path, partition_dev, size_in_extents, COMPLETE_MARKER, TAG_COMPLETE,
    TAG_ROLLBACK,
};
use crate::logging::RUN_DIR;
use crate::lvm::report::{Lv, Vg};
use crate::lvm::Lvm;
use crate::recovery::step::{Plan, Refusal, Step};
use crate::recovery::thin_rollback;
use crate::units::human;

/// Where a rollback starts, from what the VG holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// The snapshot is intact: merge it.
    Merge,
    /// A merge was started and cut off: poll it to its end.
    ResumeMerge,
    /// The merge finished, but not what follows it (/boot, GRUB, new backup).
    AfterMerge,
}

/// What `latest` found, for the plan and the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    pub start: Start,
    pub vg: String,
    pub root: String,
    /// The backup merged into the root (snap0, or the one a cut-off backup left).
    pub merged: String,
    /// The name of the fresh backup.
    pub snapshot: String,
    /// Extents of the new snapshot taken at the end.
    pub snapshot_extents: u64,
    pub snapshot_bytes: u64,
}

/// Decides how to roll back, or why not. Refusals change nothing.
pub fn assess(config: &Config, vg: Option<&Vg>, lvs: &[Lv]) -> Result<Found, String> {
    let name = &config.vg;
    let factory = "choose \"Recover to factory default\"";
    let vg = vg.ok_or_else(|| {
        format!(
            "no volume group {name} here: this disk was never provisioned by zshield; {factory}"
        )
    })?;
    if !vg.has_tag(TAG_COMPLETE) {
        return Err(format!(
            "the zshield layout in VG {name} is incomplete (a factory reset was cut off); {factory}"
        ));
    }
    let (root_name, snap_name) = (&config.root.name, &config.snapshot.name);
    let find = |lv: &str| lvs.iter().find(|l| l.vg == *name && l.name == lv);
    let root =
        find(root_name).ok_or_else(|| format!("{name}/{root_name} does not exist; {factory}"))?;
    if root.is_open() {
        return Err(format!(
            "{name}/{root_name} is in use (mounted): a rollback runs before the root is mounted; boot with zshield_recovery=latest"
        ));
    }
    let backup = current_backup(config, lvs);
    // The fresh backup gets the configured size, or what the VG will have
    // once the merged one is gone, if that is less.
    let room = vg.free_count + backup.map_or(0, |b| b.size / vg.extent_size);
    let snapshot_extents =
        size_in_extents(config.snapshot.size, vg.extent_count, vg.extent_size).min(room);
    if snapshot_extents == 0 {
        return Err(format!(
            "VG {name} has no room for a new backup after the rollback; nothing was changed; free space in the VG"
        ));
    }
    let found = |start, merged: &str| Found {
        start,
        vg: name.clone(),
        root: root_name.clone(),
        merged: merged.to_string(),
        snapshot: snap_name.clone(),
        snapshot_extents,
        snapshot_bytes: snapshot_extents * vg.extent_size,
    };
    let Some(snap) = backup else {
        if root.is_merging() {
            return Err(format!(
                "{name}/{root_name} has a merge pending, but not from {name}/{snap_name}; {factory}"
            ));
        }
        if root.has_tag(TAG_ROLLBACK) {
            return Ok(found(Start::AfterMerge, snap_name));
        }
        return Err(format!(
            "there is no backup to roll back to: {name}/{snap_name} does not exist; boot normally and take one with zshield_backup, or {factory}"
        ));
    };
    if !snap.is_snapshot() || snap.origin != *root_name {
        return Err(format!(
            "{name}/{snap_name} is not a snapshot of {name}/{root_name}; {factory}"
        ));
    }
    if snap.is_merging() || root.is_merging() {
        if snap.is_invalid_snapshot() {
            return Err(format!(
                "a merge of {name}/{snap_name} into {name}/{root_name} was started and cannot be finished (the snapshot is invalid); {factory}"
            ));
        }
        return Ok(found(Start::ResumeMerge, &snap.name));
    }
    if snap.is_invalid_snapshot() {
        return Err(format!(
            "the backup {name}/{snap_name} is invalid: more changed after it was taken than its {} of COW space holds, so it cannot be restored; boot normally, or {factory}",
            human(snap.size)
        ));
    }
    if !snap.is_active() {
        return Err(format!(
            "the backup {name}/{snap_name} could not be activated, so its state is unknown; {factory}"
        ));
    }
    Ok(found(Start::Merge, &snap.name))
}

/// How long a rollback waits for the golden card to appear: it does not
/// need the card, and one that is not here is nothing to guard.
const CARD_TIMEOUT: Duration = Duration::from_secs(10);

/// What the VG holds, as LVM reports it once the VG is active (which resumes
/// in the kernel a merge that a power loss cut off).
pub struct Probe {
    pub vg: Option<Vg>,
    pub lvs: Vec<Lv>,
    /// The disk of the VG's physical volume: where GRUB goes.
    pub disk: Option<String>,
    /// Its /boot partition in zshield's layout (whose LVM partition is that
    /// physical volume), or why there is none: the one partition the rollback
    /// restores /boot onto and puts the card's hand-over marker on.
    pub boot: Result<String, String>,
    /// The golden card's disks, kept read-only while the rollback runs; none
    /// when the card is not here (the disk's own kernel started the rollback).
    pub card: Vec<String>,
    /// The card's hand-over marker is on that /boot (read only when an LV
    /// carries a rollback's tag: see thin_rollback::assess).
    pub boot_marked_complete: bool,
}

/// `golden`: the golden root as this boot names it (`zshield.golden=`, the
/// configuration, `root=`), to find the card by.
pub fn probe(config: &Config, lvm: &Lvm, golden: Option<&str>) -> Result<Probe> {
    settle_udev();
    let vg = lvm.vgs()?.into_iter().find(|v| v.name == config.vg);
    if vg.is_some() {
        lvm.activate(&config.vg)?;
    }
    let lvs = lvm.lvs()?;
    for lv in lvs.iter().filter(|l| l.vg == config.vg) {
        log::info!(
            "found {}/{} ({}, {})",
            lv.vg,
            lv.name,
            lv.attr,
            human(lv.size)
        );
    }
    let (disk, boot) = match lvm.pvs()?.into_iter().find(|pv| pv.vg == config.vg) {
        Some(pv) => {
            let pv = BlockDev::open(&pv.name)?;
            let disk = pv.whole_disk()?;
            let boot = boot_partition(&disk, &pv)?;
            (Some(disk.dev), boot)
        }
        None => (None, Err("no physical volume".into())),
    };
    // After the activation: root= may name the VG's own root volume.
    let card = card_disks(golden, disk.as_deref());
    let tagged = lvs
        .iter()
        .any(|l| l.vg == config.vg && l.has_tag(TAG_ROLLBACK));
    let boot_marked_complete = tagged && boot.as_deref().is_ok_and(marker_on);
    Ok(Probe {
        vg,
        lvs,
        disk,
        boot,
        card,
        boot_marked_complete,
    })
}

/// Whether the card's hand-over marker is on the /boot file system `boot`,
/// mounted read-only without replaying its journal; no when it cannot be read.
fn marker_on(boot: &str) -> bool {
    let dir = Path::new(RUN_DIR).join("boot-check");
    let mut mounts = MountStack::new();
    if let Err(e) = mounts.ext4(boot, &dir, true) {
        log::warn!("cannot look for the card's hand-over marker on {boot}: {e:#}");
        return false;
    }
    let marked = dir.join(COMPLETE_MARKER).exists();
    if let Err(e) = mounts.unmount_all() {
        log::warn!("cannot unmount {boot} from {}: {e:#}", dir.display());
    }
    marked
}

/// The /boot partition of zshield's layout on `disk`, whose LVM partition
/// must be `pv`, or why there is none.
fn boot_partition(disk: &BlockDev, pv: &BlockDev) -> Result<Result<String, String>> {
    let layout = match examine(disk)? {
        (_, Content::Zshield(layout)) => layout,
        (_, Content::Foreign(found)) => return Ok(Err(format!("it holds {}", found.join(", ")))),
        (_, Content::Blank) => return Ok(Err("it reads as blank".into())),
        (_, Content::OtherSectorSize { written, seen }) => {
            return Ok(Err(format!(
                "its zshield table was written for {written}-byte sectors and the disk shows {seen}-byte sectors now"
            )))
        }
    };
    let lvm_partition = partition_dev(&disk.dev, layout.pv.number);
    if BlockDev::open(&lvm_partition).map(|p| p.devno).ok() != Some(pv.devno) {
        return Ok(Err(format!(
            "its physical volume {} is not the LVM partition {lvm_partition} of its zshield layout",
            pv.dev
        )));
    }
    Ok(Ok(partition_dev(&disk.dev, layout.boot.number)))
}

/// The disks under the golden root `spec` names, but the VG's own disk
/// `vg_disk` (the disk's own kernel boots with root= on its root volume).
fn card_disks(spec: Option<&str>, vg_disk: Option<&str>) -> Vec<String> {
    let Some(spec) = spec else {
        log::info!("no golden root named (root=, zshield.golden=): no card to keep read-only");
        return Vec::new();
    };
    // Every device of that name: a stick labelled like the card must not
    // take the guard while the card stays writable.
    let devs = match golden::resolve_all(spec, CARD_TIMEOUT) {
        Ok(devs) => devs,
        Err(e) => {
            log::info!("no golden card here ({e:#}): no card to keep read-only");
            return Vec::new();
        }
    };
    let mut card: Vec<String> = devs
        .iter()
        .filter_map(|dev| BlockDev::open(dev).ok())
        .flat_map(|dev| dev.underlying_disks())
        .filter(|d| Some(d.as_str()) != vg_disk)
        .collect();
    card.sort();
    card.dedup();
    if card.is_empty() {
        log::info!(
            "the golden root {spec} is {} on the disk of the VG: no card to keep read-only",
            devs.join(", ")
        );
    }
    card
}

/// Sets the golden card's disks read-only at the kernel's level, as a
/// factory reset does, until the guards are dropped at the end of the run.
pub fn guard_card(card: &[String]) -> Result<Vec<ReadOnlyGuard>> {
    card.iter()
        .map(|disk| {
            let guard = ReadOnlyGuard::new(disk)?;
            log::info!("the golden card {disk} is read-only while the rollback runs");
            Ok(guard)
        })
        .collect()
}

/// The steps from where the rollback to `wanted` (`zshield.backup=`; the
/// newest restore point without it) stands, or why there is none; `now`
/// names what a thin rollback keeps.
pub fn plan(
    config: &Config,
    probe: &Probe,
    wanted: Option<&str>,
    now: u64,
) -> Result<Plan, Refusal> {
    let (vg, lvs) = (probe.vg.as_ref(), probe.lvs.as_slice());
    let thin = if thin_rollback::applies(config, lvs) {
        Some(
            thin_rollback::assess(config, vg, lvs, wanted, now, probe.boot_marked_complete)
                .map_err(Refusal)?,
        )
    } else {
        None
    };
    let classic = match (&thin, wanted) {
        (Some(_), _) => None,
        (None, Some(wanted)) => {
            return Err(Refusal(format!(
                "zshield.backup={wanted} names a restore point, but VG {} has the classic layout, whose one backup is {}: roll back to it without zshield.backup=; a factory reset makes the disk thin",
                config.vg, config.snapshot.name
            )))
        }
        (None, None) => Some(assess(config, vg, lvs).map_err(Refusal)?),
    };
    let factory = "choose \"Recover to factory default\"";
    let name = &config.vg;
    let disk = probe.disk.clone().ok_or_else(|| {
        Refusal(format!(
            "the physical volume of VG {name} cannot be found; {factory}"
        ))
    })?;
    let boot = probe.boot.as_ref().map_err(|why| {
        Refusal(format!(
            "the /boot partition of {disk}, the disk of VG {name}, cannot be found ({why}), so /boot could not be restored; nothing was changed; {factory}"
        ))
    })?;
    let bios_disk = (config.boot.firmware != Firmware::Uefi).then(|| disk.clone());
    let (found, steps) = match (thin, classic) {
        (Some(thin), _) => (
            thin.in_words(),
            thin_rollback::steps(&thin, bios_disk, boot),
        ),
        (None, Some(classic)) => (classic.in_words(), steps(&classic, bios_disk, boot)),
        (None, None) => unreachable!("one of the two was assessed"),
    };
    Ok(Plan {
        found,
        disk: None,
        golden: None,
        firmware: None,
        warnings: Vec::new(),
        steps,
        target: disk,
    })
}

impl Found {
    fn in_words(&self) -> String {
        let (vg, root, merged) = (&self.vg, &self.root, &self.merged);
        match self.start {
            Start::Merge => format!("the backup {vg}/{merged} of {vg}/{root}"),
            Start::ResumeMerge => {
                format!("a merge of {vg}/{merged} into {vg}/{root} that was cut off")
            }
            Start::AfterMerge => format!("{vg}/{root} merged by a rollback that was cut off"),
        }
    }
}

/// The steps from `found.start` on.
fn steps(found: &Found, bios_disk: Option<String>, boot: &str) -> Vec<Step> {
    let (vg, root) = (found.vg.clone(), found.root.clone());
    let mut steps = Vec::new();
    let merge = (vg.clone(), root.clone(), found.merged.clone());
    match found.start {
        Start::Merge => steps.push(Step::Merge {
            vg: merge.0,
            root: merge.1,
            snapshot: merge.2,
            boot: boot.to_string(),
        }),
        Start::ResumeMerge => steps.push(Step::ResumeMerge {
            vg: merge.0,
            root: merge.1,
            snapshot: merge.2,
        }),
        Start::AfterMerge => {}
    }
    steps.extend([
        Step::RestoreBoot {
            vg: vg.clone(),
            root: root.clone(),
            boot: boot.to_string(),
        },
        // The ESP's GRUB finds /boot by its UUID, which a rollback keeps.
        Step::InstallBootloader {
            bios_disk,
            root: mapper_path(&vg, &root),
            esp: None,
        },
        Step::FreshBackup {
            vg,
            origin: root,
            snapshot: found.snapshot.clone(),
            extents: found.snapshot_extents,
            bytes: found.snapshot_bytes,
            boot: boot.to_string(),
        },
    ]);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, complete_vg, small_config};

    fn vg() -> Vg {
        complete_vg(100)
    }

    fn lv(name: &str, attr: &str, origin: &str, tags: &[&str]) -> Lv {
        fixtures::lv(name, attr, 512, origin, tags)
    }

    fn step_names(found: &Found) -> Vec<String> {
        steps(found, Some("/dev/sdb".into()), "/dev/sdb2")
            .iter()
            .map(Step::name)
            .collect()
    }

    fn assess_with(root: Lv, snap: Option<Lv>) -> Result<Found, String> {
        let config = small_config();
        let lvs: Vec<Lv> = std::iter::once(root).chain(snap).collect();
        assess(&config, Some(&vg()), &lvs)
    }

    #[test]
    fn merges_an_intact_backup() {
        let found = assess_with(
            lv("lv-root", "owi-a-s---", "", &[]),
            Some(lv("snap0", "swi-a-s---", "lv-root", &[])),
        )
        .unwrap();
        assert_eq!(found.start, Start::Merge);
        assert_eq!(found.snapshot_extents, 128);
        let names = step_names(&found);
        assert_eq!(
            names,
            ["merge", "restore-boot", "install-bootloader", "snapshot"]
        );
    }

    #[test]
    fn merges_a_backup_left_under_its_temporary_name_and_fits_the_new_one() {
        let found = assess_with(
            lv("lv-root", "owi-a-s---", "", &[]),
            Some(lv("snap0_next", "swi-a-s---", "lv-root", &[])),
        )
        .unwrap();
        assert_eq!(
            (found.start, found.merged.as_str()),
            (Start::Merge, "snap0_next")
        );
        // 100 free extents + the 128 of the merged backup: the new one fits.
        assert_eq!(found.snapshot_extents, 128);
        let config = small_config();
        let mut full = vg();
        full.free_count = 0;
        let lvs = [lv("lv-root", "-wi-a-----", "", &[TAG_ROLLBACK])];
        let err = assess(&config, Some(&full), &lvs).unwrap_err();
        assert!(err.contains("no room for a new backup"), "{err}");
    }

    #[test]
    fn refuses_a_missing_or_overflowed_backup() {
        let err = assess_with(lv("lv-root", "-wi-a-----", "", &[]), None).unwrap_err();
        assert!(
            err.contains("no backup") && err.contains("zshield_backup"),
            "{err}"
        );
        let err = assess_with(
            lv("lv-root", "owi-a-s---", "", &[]),
            Some(lv("snap0", "swi-I-s---", "lv-root", &[])),
        )
        .unwrap_err();
        assert!(
            err.contains("invalid") && err.contains("cannot be restored"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_mounted_root_and_an_incomplete_layout() {
        let err = assess_with(
            lv("lv-root", "owi-aos---", "", &[]),
            Some(lv("snap0", "swi-a-s---", "lv-root", &[])),
        )
        .unwrap_err();
        assert!(err.contains("in use"), "{err}");
        let config = small_config();
        let mut half_made = vg();
        half_made.tags.pop();
        let err = assess(&config, Some(&half_made), &[]).unwrap_err();
        assert!(err.contains("incomplete"), "{err}");
        let err = assess(&config, None, &[]).unwrap_err();
        assert!(err.contains("never provisioned"), "{err}");
    }

    /// The VG on /dev/sdb with an intact backup; its /boot as given.
    fn probe_with_boot(boot: Result<String, String>) -> Probe {
        Probe {
            vg: Some(vg()),
            lvs: vec![
                lv("lv-root", "owi-a-s---", "", &[]),
                lv("snap0", "swi-a-s---", "lv-root", &[]),
            ],
            disk: Some("/dev/sdb".into()),
            boot,
            card: vec!["/dev/sda".into()],
            boot_marked_complete: false,
        }
    }

    #[test]
    fn the_plan_names_the_boot_partition_of_the_vgs_disk() {
        let plan = plan(
            &small_config(),
            &probe_with_boot(Ok("/dev/sdb2".into())),
            None,
            0,
        )
        .unwrap();
        assert_eq!(plan.target, "/dev/sdb");
        let restore = plan
            .steps
            .iter()
            .find(|s| s.name() == "restore-boot")
            .unwrap();
        assert_eq!(
            restore,
            &Step::RestoreBoot {
                vg: "vgroup".into(),
                root: "lv-root".into(),
                boot: "/dev/sdb2".into(),
            }
        );
        assert!(
            restore.to_string().contains(" onto /dev/sdb2, "),
            "{restore}"
        );
        // The hand-over marker goes off and on the same partition.
        for step in &plan.steps {
            match step {
                Step::Merge { boot, .. } | Step::FreshBackup { boot, .. } => {
                    assert_eq!(boot, "/dev/sdb2")
                }
                _ => {}
            }
        }
    }

    #[test]
    fn refuses_a_disk_whose_boot_partition_is_unknown() {
        let why = "it holds a msdos partition table".to_string();
        let err = plan(&small_config(), &probe_with_boot(Err(why)), None, 0).unwrap_err();
        assert!(
            err.0.contains("the /boot partition of /dev/sdb")
                && err.0.contains("msdos partition table")
                && err.0.contains("nothing was changed"),
            "{err}"
        );
    }

    #[test]
    fn finishes_what_a_power_loss_cut_off() {
        let found = assess_with(
            lv("lv-root", "Owi-a-s---", "", &[TAG_ROLLBACK]),
            Some(lv("snap0", "Swi-a-s---", "lv-root", &[])),
        )
        .unwrap();
        assert_eq!(found.start, Start::ResumeMerge);
        let err = assess_with(
            lv("lv-root", "Owi-a-s---", "", &[TAG_ROLLBACK]),
            Some(lv("snap0", "Swi-M-s---", "lv-root", &[])),
        )
        .unwrap_err();
        assert!(err.contains("cannot be finished"), "{err}");
        // A merging origin whose snapshot cannot be seen is not "merge done".
        let err = assess_with(lv("lv-root", "Owi-a-s---", "", &[TAG_ROLLBACK]), None).unwrap_err();
        assert!(err.contains("merge pending"), "{err}");
        // Cut off after the merge: the snapshot is gone, the tag says why.
        let found = assess_with(lv("lv-root", "-wi-a-----", "", &[TAG_ROLLBACK]), None).unwrap();
        assert_eq!(found.start, Start::AfterMerge);
        assert_eq!(step_names(&found)[0], "restore-boot");
    }
}
