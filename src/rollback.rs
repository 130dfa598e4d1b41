//! `zshield_recovery=latest`: merge the backup snapshot back into the root,
//! bring /boot in step with the merged root, reinstall GRUB and take a fresh
//! backup, so that "latest backup" can be chosen again.
//!
//! /boot is a partition outside LVM: each backup keeps a copy of it inside the
//! root (`BOOT_COPY`), and the rollback restores /boot from the merged copy.
//! The root carries the tag `TAG_ROLLBACK` from before the merge until /boot
//! and GRUB are restored, so that a run cut off after the merge (when the
//! snapshot is gone) is recognised and finished by the next one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::blockdev::{settle_udev, BlockDev};
use crate::bootloader;
use crate::config::Config;
use crate::copy::{mirror_tree, Meter};
use crate::golden;
use crate::lvm::Lvm;
use crate::lvm_report::{Lv, Vg};
use crate::mounts::MountStack;
use crate::plan::{mapper_path, size_in_extents, TAG_COMPLETE};
use crate::recover::{failpoint, power_loss, Outcome, Request};
use crate::report::{Report, RUN_DIR, TARGET_LOG_DIR};
use crate::units::human;

/// Where the backup keeps its copy of /boot, inside the root.
pub const BOOT_COPY: &str = "var/lib/zshield/boot";
/// On the root LV while a rollback is under way.
pub const TAG_ROLLBACK: &str = "zshield_rollback";

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
    if !vg.tags.iter().any(|t| t == TAG_COMPLETE) {
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
    let backup = crate::backup::current(config, lvs);
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

pub fn rollback(req: &Request, report: &mut Report) -> Result<Outcome> {
    let config = Config::load(&req.config)?;
    let lvm = Lvm;
    let found = report.phase("probe", |_| {
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
        assess(&config, vg.as_ref(), &lvs).map_err(anyhow::Error::msg)
    })?;
    report.rollback = serde_json::to_value(&found).ok();
    let steps = steps(&found);
    for (i, (_, description)) in steps.iter().enumerate() {
        log::info!("plan: {:2}. {description}", i + 1);
    }
    if req.dry_run {
        log::info!("dry run: nothing was written");
        return Ok(Outcome::Untouched);
    }
    let mut exec = Rollback {
        found: &found,
        lvm,
        root_dir: Path::new(RUN_DIR).join("target"),
        mounts: MountStack::new(),
        cut_after: req.cut_after.clone(),
    };
    let result = report.phase("execute", |report| {
        for (name, description) in &steps {
            let detail = serde_json::json!({ "vg": found.vg, "root": found.root, "merged": found.merged, "snapshot": found.snapshot });
            report.step(
                steps.len(),
                (name.to_string(), description.clone(), detail),
                true,
                |report| exec.run(name, report),
            )?;
            failpoint(&exec.cut_after, name, report.steps.len());
        }
        Ok(())
    });
    if exec.mounts_root() {
        report.status = if result.is_ok() { "ok" } else { "failed" }.into();
        match report.write(&exec.root_dir.join(TARGET_LOG_DIR)) {
            Ok(_) => log::info!("report on the restored root: /{TARGET_LOG_DIR}/"),
            Err(e) => log::warn!("cannot write the report on the restored root: {e:#}"),
        }
    }
    nix::unistd::sync();
    let unmounted = exec.mounts.unmount_all();
    result?;
    unmounted?;
    Ok(Outcome::Done)
}

/// The steps from `found.start` on, by name and description.
fn steps(found: &Found) -> Vec<(&'static str, String)> {
    let (vg, root, snap) = (&found.vg, &found.root, &found.snapshot);
    let merged = &found.merged;
    let mut steps = Vec::new();
    match found.start {
        Start::Merge => steps.push((
            "merge",
            format!("merge the backup {vg}/{merged} into {vg}/{root}"),
        )),
        Start::ResumeMerge => steps.push((
            "resume-merge",
            format!("finish the merge of {vg}/{merged} into {vg}/{root} that was cut off"),
        )),
        Start::AfterMerge => {}
    }
    steps.push((
        "restore-boot",
        format!("restore /boot from the copy in the merged root (/{BOOT_COPY})"),
    ));
    steps.push((
        "install-bootloader",
        "install GRUB and its menu for the restored root".to_string(),
    ));
    steps.push((
        "snapshot",
        format!(
            "take a fresh backup {vg}/{snap} of {vg}/{root} ({})",
            human(found.snapshot_bytes)
        ),
    ));
    steps
}

struct Rollback<'a> {
    found: &'a Found,
    lvm: Lvm,
    root_dir: PathBuf,
    mounts: MountStack,
    cut_after: Option<String>,
}

impl Rollback<'_> {
    fn mounts_root(&self) -> bool {
        self.root_dir.join("etc").exists()
    }

    fn root_dev(&self) -> String {
        mapper_path(&self.found.vg, &self.found.root)
    }

    fn run(&mut self, step: &str, report: &mut Report) -> Result<()> {
        let Found {
            vg,
            root,
            merged,
            snapshot,
            ..
        } = self.found;
        match step {
            "merge" | "resume-merge" => {
                if step == "merge" {
                    self.lvm.lv_add_tag(vg, root, TAG_ROLLBACK)?;
                }
                let mut meter = Meter::new("merging the backup");
                let cut = self.cut_after.as_deref() == Some("merge-started");
                let progress = |percent: f64| {
                    if cut && percent < 100.0 {
                        power_loss(&format!(
                            "during step {}, with the merge at {percent:.1}%",
                            report.steps.len() + 1
                        ));
                    }
                    meter.update(percent as u32, "");
                };
                if step == "merge" {
                    self.lvm.merge(vg, merged, progress)?;
                } else {
                    self.lvm.resume_merge(vg, root, progress)?;
                }
                let lvs = self.lvm.lvs()?;
                let left = |name: &str| lvs.iter().find(|l| l.vg == *vg && l.name == name);
                if left(merged).is_some() || left(root).is_some_and(Lv::is_merging) {
                    bail!("LVM reported the merge of {vg}/{merged} as done, but it is still there; boot with zshield_recovery=latest again to finish it");
                }
                log::info!("merging the backup: 100%, {vg}/{root} is as it was at the backup");
                Ok(())
            }
            "restore-boot" => {
                self.mount()?;
                let copy = self.root_dir.join(BOOT_COPY);
                if !copy.is_dir() {
                    log::warn!("the backup holds no copy of /boot (/{BOOT_COPY}): /boot is left as it is, and may not match the restored root");
                    return Ok(());
                }
                report.copied_boot = Some(mirror_tree(
                    &copy,
                    &self.root_dir.join("boot"),
                    "restoring /boot",
                )?);
                Ok(())
            }
            "install-bootloader" => {
                let boot = BlockDev::open(&self.boot_dev()?)?;
                let disk = boot.whole_disk()?;
                bootloader::install(&self.root_dir, &disk.dev, &self.root_dev())
            }
            "snapshot" => {
                nix::unistd::sync();
                self.lvm
                    .snapshot(vg, root, snapshot, self.found.snapshot_extents)?;
                self.lvm.lv_del_tag(vg, root, TAG_ROLLBACK)
            }
            other => bail!("unknown rollback step {other}"),
        }
    }

    /// The /boot partition, as the restored root's fstab names it.
    fn boot_dev(&self) -> Result<String> {
        let fstab = golden::read_fstab(&self.root_dir)?;
        let spec = golden::fstab_device(&fstab, "/boot")
            .context("the restored root's /etc/fstab has no /boot line")?;
        golden::resolve(&spec, Duration::from_secs(10))
            .with_context(|| format!("cannot find the /boot partition {spec}"))
    }

    fn mount(&mut self) -> Result<()> {
        let root_dev = self.root_dev();
        self.mounts.ext4(&root_dev, &self.root_dir, false)?;
        let boot = self.boot_dev()?;
        self.mounts.ext4(&boot, &self.root_dir.join("boot"), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vg() -> Vg {
        Vg {
            name: "vgroup".into(),
            size: 4 << 30,
            extent_size: 4 << 20,
            extent_count: 1024,
            free_count: 100,
            tags: vec!["zshield".into(), TAG_COMPLETE.into()],
        }
    }

    fn lv(name: &str, attr: &str, origin: &str, tags: &[&str]) -> Lv {
        Lv {
            name: name.into(),
            vg: "vgroup".into(),
            attr: attr.into(),
            size: 512 << 20,
            origin: origin.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created: 0,
            snap_percent: None,
        }
    }

    fn assess_with(root: Lv, snap: Option<Lv>) -> Result<Found, String> {
        let config = crate::config::small_test_config();
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
        let names: Vec<_> = steps(&found).into_iter().map(|(n, _)| n).collect();
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
        let config = crate::config::small_test_config();
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
        let config = crate::config::small_test_config();
        let mut half_made = vg();
        half_made.tags.pop();
        let err = assess(&config, Some(&half_made), &[]).unwrap_err();
        assert!(err.contains("incomplete"), "{err}");
        let err = assess(&config, None, &[]).unwrap_err();
        assert!(err.contains("never provisioned"), "{err}");
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
        assert_eq!(steps(&found)[0].0, "restore-boot");
    }
}
