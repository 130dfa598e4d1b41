//! The one executor of both recoveries: runs a plan's steps in order, each
//! logged, timed and recorded in the report, with the test failpoint after
//! each; then closes the run (report on the target, sync, unmounts).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cmdline::Mode;
use crate::disk::blockdev::{self, ext_superblock, BlockDev};
use crate::disk::blockmap::{self, Digests};
use crate::disk::content;
use crate::disk::golden;
use crate::disk::mounts::MountStack;
use crate::disk::signatures::REACH;
use crate::events::{self, Event, EVENTS_FILE};
use crate::failpoint::Failpoints;
use crate::fstab::{self, GoldenNames};
use crate::inroot::{create_dir_all_in_root, entry_in_root, resolve_in_root};
use crate::layout::{
    mapper_path, BOOT_COPY, COMPLETE_MARKER, RESTORE_MENU, TAG_COMPLETE, TAG_FAILED, TAG_FS_READY,
    TAG_LAYOUT, TAG_RESTORE_TO, TAG_ROLLBACK, TAG_UPGRADE_APPLYING, TAG_UPGRADE_TRIAL, THIN_CHUNK,
};
use crate::logging::Meter;
use crate::logging::RUN_DIR;
use crate::logging::TARGET_LOG_DIR;
use crate::lvm::report::Lv;
use crate::lvm::Lvm;
use crate::points;
use crate::recovery::report::{Report, Run, Status};
use crate::recovery::step::{FstabEntry, Plan, Step};
use crate::runner::Cmd;
use crate::target::copy::{copy_blocks, copy_tree, mirror_tree};
use crate::target::provision;
use crate::target::{bootentry, bootloader};
use crate::units::human;

pub struct Executor {
    lvm: Lvm,
    /// Where the target's root (and its /boot) are mounted.
    root_dir: PathBuf,
    mounts: MountStack,
    root_mounted: bool,
    failpoints: Failpoints,
    /// Whether block copies check what they read (always, but in a test).
    digests: Digests,
    /// The data volume that holds the event log: VG and LV.
    events: Option<(String, String)>,
}

impl Executor {
    pub fn new(
        root_dir: PathBuf,
        failpoints: Failpoints,
        digests: Digests,
        events: Option<(String, String)>,
    ) -> Executor {
        Executor {
            lvm: Lvm,
            root_dir,
            mounts: MountStack::new(),
            root_mounted: false,
            failpoints,
            digests,
            events,
        }
    }

    /// The first backup, too, must hold the /boot of its root.
    fn keep_boot_copy(&self, tree: &Path) -> Result<()> {
        let copy = create_dir_all_in_root(&self.root_dir, BOOT_COPY)?;
        mirror_tree(tree, &copy, "keeping a copy of /boot for backups")?;
        Ok(())
    }

    /// Runs every step of `plan`; stops at the first that fails.
    pub fn run(&mut self, plan: &Plan, report: &mut Report) -> Result<()> {
        // After a GPT repair the disk is planned again: its steps follow the repair's.
        let total = report.steps.len() + plan.steps.len();
        for step in &plan.steps {
            report.step(total, step, |report| self.step(step, report))?;
            self.failpoints.after_step(&step.name(), report.steps.len());
        }
        Ok(())
    }

    /// Runs one step for a caller that numbers and reports the steps of a
    /// plan of its own (`zshield upgrade`, whose restore point is steps of
    /// the backup).
    pub fn run_one(&mut self, step: &Step, report: &mut Report) -> Result<()> {
        self.step(step, report)
    }

    /// Ends a run that got as far as it did: the report goes onto the target
    /// when its root is mounted, everything is synced, the target unmounted.
    pub fn close(mut self, report: &mut Report) -> Result<()> {
        // A root the copy has reached: a fresh lv-root is empty when mounted.
        if self.root_mounted && self.root_dir.join("etc").exists() {
            match report.write(&self.root_dir.join(TARGET_LOG_DIR), &self.root_dir) {
                Ok(path) => log::info!(
                    "report on the target: /{}",
                    path.strip_prefix(&self.root_dir).unwrap_or(&path).display()
                ),
                Err(e) => log::warn!("cannot write the report on the target: {e:#}"),
            }
        }
        // A run that wrote nothing leaves every disk as it was, the event
        // log's too: its refusal says "no disk was changed".
        let wrote = report.steps.iter().any(|s| s.writes_disk);
        if let Some(dev) = self.events_volume().filter(|_| wrote) {
            if let Err(e) = self.log_event(&dev, report) {
                log::warn!("cannot add this recovery to the event log on {dev}: {e:#}");
            }
        }
        nix::unistd::sync();
        self.mounts.unmount_all()
    }

    /// The event log's volume, active: a kept data volume is not activated
    /// by the recovery itself (after a GPT repair, say). None before its file
    /// system is marked made: mounted unfinished, it would look used to the
    /// next reset (check-unused).
    fn events_volume(&self) -> Option<String> {
        let (vg, lv) = self.events.as_ref()?;
        let dev = mapper_path(vg, lv);
        let lvs = self.lvm.lvs().ok()?;
        if !lvs
            .iter()
            .any(|l| l.vg == *vg && l.name == *lv && l.has_tag(TAG_FS_READY))
        {
            return None;
        }
        if !Path::new(&dev).exists() {
            if let Err(e) = self.lvm.activate_lv(vg, lv) {
                log::warn!("cannot activate the event log's volume {vg}/{lv}: {e:#}");
            }
        }
        Path::new(&dev).exists().then_some(dev)
    }

    /// One line for this recovery in the event log, which outlives it.
    fn log_event(&mut self, dev: &str, report: &Report) -> Result<()> {
        let volume = Path::new(RUN_DIR).join("events");
        self.mounts.ext4(dev, &volume, false)?;
        let event = match report.mode {
            Run::Recovery(Mode::Default | Mode::Auto) => "factory-reset",
            Run::Recovery(Mode::Latest) if report.fallback => "automatic-rollback",
            Run::Recovery(Mode::Latest) => "rollback",
            Run::Backup => "backup",
        };
        let status = match report.status {
            Status::Ok => "done",
            Status::Refused => "refused",
            Status::Failed | Status::Running => "failed",
        };
        let cleared = report
            .steps
            .iter()
            .any(|s| s.ok && s.name == "clear-failure");
        if cleared {
            let detail = "the record of the last reset's failure, by an explicit factory reset";
            events::append(
                &volume,
                &self.root_dir,
                &Event::now("failure-cleared", "done", detail),
            )?;
            log::info!("event log: failure-cleared done, on {dev} ({EVENTS_FILE})");
        }
        let found = report.plan.as_ref().map(|p| p.found.as_str());
        let detail = report.error.as_deref().or(found).unwrap_or_default();
        events::append(&volume, &self.root_dir, &Event::now(event, status, detail))?;
        log::info!("event log: {event} {status}, on {dev} ({EVENTS_FILE})");
        for ended in report
            .steps
            .iter()
            .filter(|s| s.ok && s.name == "end-upgrade")
        {
            let field = |name: &str| ended.detail[name].as_str().unwrap_or_default().to_string();
            let detail = format!("to the restore point {}: {}", field("point"), field("why"));
            events::append(
                &volume,
                &self.root_dir,
                &Event::now("upgrade", "rolled-back", detail),
            )?;
            log::info!("event log: upgrade rolled-back, on {dev} ({EVENTS_FILE})");
        }
        Ok(())
    }

    fn mount_root(&mut self, root: &str) -> Result<()> {
        self.mounts.ext4(root, &self.root_dir, false)?;
        self.root_mounted = true;
        Ok(())
    }

    fn mount_boot(&mut self, boot: &str) -> Result<()> {
        let dir = self.boot_dir()?;
        self.mounts.ext4(boot, &dir, false)
    }

    /// The target's /boot: a symlink there names a directory of the target.
    fn boot_dir(&self) -> Result<PathBuf> {
        resolve_in_root(&self.root_dir, "boot")
    }

    fn step(&mut self, step: &Step, report: &mut Report) -> Result<()> {
        let lvm = &self.lvm;
        match step {
            Step::DeactivateVg { vg } => lvm.deactivate(vg),
            Step::RepairGpt { disk, intact, .. } => {
                blockdev::repair_gpt(&BlockDev::open(disk)?, *intact)
            }
            Step::Wipe { disk, ranges } => {
                let disk = BlockDev::open(disk)?;
                blockdev::wipe(&disk, ranges)?;
                blockdev::reread_partitions(&disk, &[])
            }
            Step::Partition {
                disk,
                label,
                partitions,
                msdos_signature,
            } => {
                let disk = BlockDev::open(disk)?;
                blockdev::write_table(&disk, *label, partitions, msdos_signature.unwrap_or(0))?;
                let expected: Vec<(u32, u64, u64)> = partitions
                    .iter()
                    .map(|p| (p.number, p.start, p.size))
                    .collect();
                blockdev::reread_partitions(&disk, &expected)
            }
            Step::MkfsBoot { dev, uuid } => mkfs(dev, uuid, "boot"),
            Step::MkfsEsp { dev, volume_id } => {
                Cmd::new("mkfs.fat")
                    .args(["-F", "32", "-n", "ZSHIELD-ESP", "-i"])
                    .arg(volume_id.replace('-', ""))
                    .arg(dev)
                    .run()?;
                Ok(())
            }
            Step::CopyBootBlocks {
                from,
                to,
                uuid,
                map,
                ..
            } => {
                report.copied_boot_blocks =
                    Some(copy_blocks(from, to, map, uuid, "boot", self.digests)?);
                Ok(())
            }
            Step::CreatePv { dev } => lvm.pvcreate(dev),
            Step::CreateVg { vg, pv } => lvm.vgcreate(vg, pv, TAG_LAYOUT),
            Step::CheckUnused { vg, lv } => {
                lvm.activate_lv(vg, lv)?;
                let dev = mapper_path(vg, lv);
                let mut head = vec![0; REACH as usize];
                std::fs::File::open(&dev)
                    .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0))
                    .with_context(|| format!("cannot read {dev}"))?;
                if let Some(used) = content::used(&head) {
                    bail!(
                        "{vg}/{lv} is not marked as holding data (no tag {TAG_FS_READY}) but holds {used}: refusing to make it again; to keep it, tag it (lvchange --addtag {TAG_FS_READY} {vg}/{lv}); to have it made empty, remove it (lvremove {vg}/{lv})"
                    );
                }
                Ok(())
            }
            Step::VerifyGolden { from, map } => {
                let v = blockmap::verify_fs(from, map)?;
                log::info!(
                    "{} matches the card's block map: {} in {:.1} s",
                    map.label,
                    human(v.bytes),
                    v.seconds
                );
                Ok(())
            }
            Step::UnmarkComplete { vg, boot } => {
                set_complete_marker(boot, false)?;
                lvm.vg_tag(vg, TAG_COMPLETE, false)
            }
            Step::ClearFailure { vg } => lvm.vg_tag(vg, TAG_FAILED, false),
            Step::RemoveLv { vg, lv } => remove_lv(lvm, vg, lv),
            Step::CreateLv {
                vg, lv, extents, ..
            } => lvm.lvcreate(vg, lv, *extents).map(drop),
            Step::MkfsLv { vg, lv, uuid } => mkfs(&mapper_path(vg, lv), uuid, lv),
            Step::CreatePool {
                vg,
                pool,
                extents,
                metadata_bytes,
                ..
            } => lvm.create_thin_pool(vg, pool, *extents, *metadata_bytes, THIN_CHUNK),
            Step::CreateThinLv {
                vg,
                pool,
                lv,
                bytes,
            } => lvm.create_thin(vg, pool, lv, *bytes).map(drop),
            Step::CreateRestorePoint { vg, origin, lv, .. } => {
                nix::unistd::sync();
                lvm.thin_snapshot(vg, origin, lv, false).map(drop)
            }
            Step::RefreshBootCopy { boot, copy } => {
                mirror_tree(boot, copy, "refreshing the copy of /boot")?;
                nix::unistd::sync();
                Ok(())
            }
            Step::DropTags { vg, lv, tags } => {
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                lvm.lv_tags(vg, lv, &[], &tags)
            }
            Step::RenameLv { vg, from, to } => lvm.lvrename(vg, from, to),
            Step::EndUpgrade { vg, point, .. } => {
                lvm.lv_tags(vg, point, &[], &[TAG_UPGRADE_APPLYING, TAG_UPGRADE_TRIAL])
            }
            Step::RemoveRestorePoint { vg, lv, .. } => lvm.lvremove(vg, lv),
            Step::PrunePool {
                vg,
                pool,
                threshold,
                candidates,
            } => prune_pool(lvm, vg, pool, *threshold, candidates),
            Step::BeginRollback {
                vg,
                root,
                point,
                stale,
                boot,
            } => {
                let to = format!("{TAG_RESTORE_TO}{point}");
                let stale: Vec<&str> = stale.iter().map(String::as_str).collect();
                lvm.lv_tags(vg, root, &[TAG_ROLLBACK, &to], &stale)?;
                set_complete_marker(boot, false)
            }
            Step::SetAside { vg, lv } => lvm.set_aside(vg, lv),
            Step::RestoreRoot { vg, point, root } => {
                lvm.thin_snapshot(vg, point, root, true).map(drop)
            }
            Step::ReinstallBootloader { bios_disk, root } => {
                // The restored /boot's menu is the restore point's own, made
                // by the restored root: remade only when it does not boot
                // the root (rp-factory's is the card's), as grub-mkconfig
                // takes half a minute under QEMU.
                if let Err(e) = bootloader::check_installed_menu(&self.root_dir, root) {
                    log::info!("the restored /boot's menu is not one for this disk ({e:#}): generating it again");
                    return bootloader::install(&self.root_dir, bios_disk.as_deref(), root, None);
                }
                let Some(disk) = bios_disk else {
                    return Ok(());
                };
                let modules_changed = report
                    .copied_boot
                    .as_ref()
                    .is_none_or(|copy| bootloader::bios_modules_among(&copy.changed));
                if modules_changed {
                    log::info!("restoring /boot changed GRUB's modules for BIOS: installing GRUB on {disk} for BIOS again");
                    bootloader::install_bios(&self.root_dir, disk)
                } else {
                    log::info!("restoring /boot changed none of GRUB's modules for BIOS: the boot code on {disk} matches them already");
                    Ok(())
                }
            }
            Step::WriteRestoreMenu { vg } => {
                let menu = points::grub_menu(&points::list(vg, &lvm.lvs()?));
                let path = self.boot_dir()?.join(RESTORE_MENU);
                let new = path.with_extension("cfg.zshield-new");
                write_synced(&new, menu.as_bytes())?;
                std::fs::rename(&new, &path).with_context(|| {
                    format!("cannot rename {} to {}", new.display(), path.display())
                })
            }
            Step::FinishRollback {
                vg,
                kept,
                tags,
                boot,
            } => {
                // Marker before tags, as the classic rollback does.
                set_complete_marker(boot, true)?;
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                lvm.lv_tags(vg, kept, &[], &tags)
            }
            Step::MarkFsReady { vg, lv } => lvm.lv_add_tag(vg, lv, TAG_FS_READY),
            Step::KeepLv { vg, lv } => {
                log::info!("{vg}/{lv} is kept as it is");
                Ok(())
            }
            Step::MountTarget { root, boot } => {
                self.mount_root(root)?;
                self.mount_boot(boot)
            }
            Step::CopyRootBlocks {
                from,
                to,
                uuid,
                label,
                map,
                stripe,
                ..
            } => {
                report.copied_root_blocks =
                    Some(copy_blocks(from, to, map, uuid, label, self.digests)?);
                if let Some(stripe) = stripe {
                    let blocks = stripe / map.block_size;
                    Cmd::new("tune2fs")
                        .args(["-E", &format!("stride={blocks},stripe_width={blocks}"), to])
                        .run()?;
                }
                Ok(())
            }
            Step::CopyRoot { tree, .. } => {
                report.copied_root = Some(copy_tree(
                    tree,
                    &self.root_dir,
                    &["/boot/*"],
                    "copying the golden root",
                )?);
                Ok(())
            }
            Step::CopyBoot { tree, .. } => {
                report.copied_boot = Some(copy_tree(
                    tree,
                    &self.boot_dir()?,
                    &[],
                    "copying the golden /boot",
                )?);
                self.keep_boot_copy(tree)
            }
            Step::KeepBootCopy { tree } => self.keep_boot_copy(tree),
            Step::ConfigureTarget {
                fstab,
                mount_points,
                golden_names,
                golden,
                boot_tries,
            } => configure(
                &self.root_dir,
                fstab,
                mount_points,
                golden_names,
                golden,
                *boot_tries,
            ),
            Step::InstallFiles { tree, provision } => {
                provision::install_files(tree, &self.root_dir, provision)
            }
            Step::RunHooks { provision } => {
                provision::run_hooks(&self.root_dir, provision, &mut report.hooks)
            }
            Step::Merge {
                vg,
                root,
                snapshot,
                boot,
            } => {
                lvm.lv_add_tag(vg, root, TAG_ROLLBACK)?;
                set_complete_marker(boot, false)?;
                self.merge(vg, root, snapshot, false)
            }
            Step::ResumeMerge { vg, root, snapshot } => self.merge(vg, root, snapshot, true),
            Step::RestoreBoot { vg, root, boot } => {
                self.mount_root(&mapper_path(vg, root))?;
                check_boot_line(&self.root_dir, boot, &format!("{vg}/{root}"))?;
                self.mount_boot(boot)?;
                // Where keep_boot_copy put it.
                let copy = resolve_in_root(&self.root_dir, BOOT_COPY)?;
                if !copy.is_dir() {
                    log::warn!("the backup holds no copy of /boot (/{BOOT_COPY}): /boot is left as it is, and may not match the restored root");
                    return Ok(());
                }
                report.copied_boot =
                    Some(mirror_tree(&copy, &self.boot_dir()?, "restoring /boot")?);
                Ok(())
            }
            Step::InstallBootloader {
                bios_disk,
                root,
                esp,
            } => bootloader::install(&self.root_dir, bios_disk.as_deref(), root, esp.as_deref()),
            Step::MakeBootEntry {
                disk,
                part,
                esp,
                after,
                stale,
            } => {
                // Not a failure of the reset: the disk boots without it.
                match bootentry::make(&self.root_dir, disk, *part, *after, stale) {
                    Ok(made) => log::info!("{made}; the entry starts {esp}"),
                    Err(e) => log::warn!(
                        "the firmware's boot entry for {esp} is not in its boot order ({e:#}): the disk boots through its removable-media path EFI/BOOT/BOOTX64.EFI, which firmware tries on every disk"
                    ),
                }
                Ok(())
            }
            Step::MarkComplete { vg, boot } => {
                lvm.vg_tag(vg, TAG_COMPLETE, true)?;
                set_complete_marker(boot, true)
            }
            Step::CreateSnapshot {
                vg,
                origin,
                snapshot,
                extents,
                ..
            } => {
                nix::unistd::sync();
                lvm.snapshot(vg, origin, snapshot, *extents)
                    .map(drop)
                    .inspect_err(|_| {
                        // Leave nothing half-made: a snapshot that LVM created
                        // but could not finish is removed again.
                        if lvm
                            .lvs()
                            .is_ok_and(|lvs| lvs.iter().any(|l| l.vg == *vg && l.name == *snapshot))
                        {
                            let _ = lvm.lvremove(vg, snapshot);
                        }
                    })
            }
            Step::FreshBackup {
                vg,
                origin,
                snapshot,
                extents,
                boot,
                ..
            } => {
                nix::unistd::sync();
                lvm.snapshot(vg, origin, snapshot, *extents)?;
                // Marker before tag: a power cut between them leaves a disk
                // the card hands over to, whose stale tag the next backup drops.
                set_complete_marker(boot, true)?;
                lvm.lv_del_tag(vg, origin, TAG_ROLLBACK)
            }
        }
    }

    /// Merges `snapshot` into `root` (or polls a merge resumed at activation)
    /// to its end, with progress, and checks LVM's word for it.
    fn merge(&self, vg: &str, root: &str, snapshot: &str, resume: bool) -> Result<()> {
        let mut meter = Meter::new("merging the backup");
        let progress = |percent: f64| meter.update(percent as u32, "");
        if resume {
            self.lvm.resume_merge(vg, root, progress)?;
        } else {
            self.lvm.merge(vg, snapshot, progress)?;
        }
        let lvs = self.lvm.lvs()?;
        let left = |name: &str| lvs.iter().find(|l| l.vg == vg && l.name == name);
        if left(snapshot).is_some() || left(root).is_some_and(Lv::is_merging) {
            bail!("LVM reported the merge of {vg}/{snapshot} as done, but it is still there; boot with zshield_recovery=latest again to finish it");
        }
        log::info!("merging the backup: 100%, {vg}/{root} is as it was at the backup");
        Ok(())
    }
}

/// Removes the `candidates`, oldest first, while the pool is at
/// `threshold` percent or more, data or metadata.
fn prune_pool(lvm: &Lvm, vg: &str, pool: &str, threshold: u8, candidates: &[String]) -> Result<()> {
    let full = || -> Result<Option<f64>> {
        let lvs = lvm.lvs()?;
        let lv = lvs
            .iter()
            .find(|l| l.vg == vg && l.name == pool)
            .with_context(|| format!("the thin pool {vg}/{pool} is gone"))?;
        let (Some(data), Some(metadata)) = (lv.data_percent, lv.metadata_percent) else {
            bail!("LVM reports no use for the thin pool {vg}/{pool} (is it active?)");
        };
        let used = data.max(metadata);
        Ok((used >= f64::from(threshold)).then_some(used))
    };
    for lv in candidates {
        let Some(used) = full()? else {
            return Ok(());
        };
        log::warn!(
            "the thin pool {vg}/{pool} is {used:.1}% full: removing the restore point {vg}/{lv}"
        );
        lvm.lvremove(vg, lv)?;
    }
    match full()? {
        None => Ok(()),
        Some(used) => bail!(
            "the thin pool {vg}/{pool} is still {used:.1}% full with every automatic restore point removed (the threshold is {threshold}%): remove named restore points (zshield backup --remove NAME) or data from the root, or give the pool more room (lvextend)"
        ),
    }
}

/// Puts the card's hand-over marker on the /boot file system `boot`, or takes
/// it off, and has it on the disk before the next step.
fn set_complete_marker(boot: &str, present: bool) -> Result<()> {
    let dir = Path::new(RUN_DIR).join("boot-marker");
    let mut mounts = MountStack::new();
    mounts.ext4(boot, &dir, false)?;
    let marker = dir.join(COMPLETE_MARKER);
    let changed = if present {
        write_synced(&marker, b"complete\n")
    } else {
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            removed => removed.with_context(|| format!("cannot remove {}", marker.display())),
        }
    };
    nix::unistd::sync();
    let unmounted = mounts.unmount_all();
    changed.and(unmounted)
}

fn write_synced(path: &Path, content: &[u8]) -> Result<()> {
    let parent = path.parent().context("a marker has a directory")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, content)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Fails, before /boot is written, unless the restored root's /etc/fstab
/// mounts /boot from `boot`, the partition the plan restores (`merged`: the
/// root, merged already).
fn check_boot_line(root_dir: &Path, boot: &str, merged: &str) -> Result<()> {
    let path = resolve_in_root(root_dir, "etc/fstab")?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the restored root's /etc/fstab ({merged})"))?;
    let spec = fstab::device_of(&text, "/boot");
    let fs = ext_superblock(boot);
    // A spec by PARTUUID=, PARTLABEL= or path: the device it leads to.
    let leads_to_boot = |spec: &str| {
        let devno = |dev: &str| BlockDev::open(dev).map(|d| d.devno).ok();
        golden::resolve(spec, Duration::from_secs(2))
            .ok()
            .is_some_and(|dev| devno(&dev).is_some() && devno(&dev) == devno(boot))
    };
    boot_line_problem(spec.as_deref(), boot, fs.as_ref(), leads_to_boot, merged)
        .map_err(anyhow::Error::msg)?;
    log::info!(
        "the restored root mounts /boot from {}: {boot}",
        spec.unwrap_or_default()
    );
    Ok(())
}

/// Why the restored root's /boot line (`spec`) does not name `boot`, whose
/// ext file system has `fs` (UUID, label): one line with what to do.
/// `leads_to_boot` says whether a spec by anything else leads there.
fn boot_line_problem(
    spec: Option<&str>,
    boot: &str,
    fs: Option<&(String, String)>,
    leads_to_boot: impl FnOnce(&str) -> bool,
    merged: &str,
) -> std::result::Result<(), String> {
    let unwritten = format!(
        "/boot was not restored and nothing else was written, but {merged} is merged already (it holds the backup now)"
    );
    let again =
        "choose \"Recover to latest backup\" again to finish, or \"Recover to factory default\"";
    let Some((uuid, label)) = fs else {
        return Err(format!(
            "{boot}, the /boot partition of this disk, holds no ext2/3/4 file system: {unwritten}; choose \"Recover to factory default\""
        ));
    };
    let Some(spec) = spec else {
        return Err(format!(
            "the restored root's /etc/fstab has no /boot line: {unwritten}; add the line \"UUID={uuid} /boot ext4 defaults 0 2\" to it and {again}"
        ));
    };
    let names_boot = match spec.split_once('=') {
        Some(("UUID", value)) => value.eq_ignore_ascii_case(uuid),
        Some(("LABEL", value)) => value == label,
        _ => leads_to_boot(spec),
    };
    if names_boot {
        return Ok(());
    }
    Err(format!(
        "the restored root's /etc/fstab mounts /boot from {spec}, which is not {boot} (UUID={uuid}), the /boot partition of this disk: {unwritten}; make that line name UUID={uuid} and {again}"
    ))
}

/// fstab, mount points, the LVM devices file and GRUB's defaults.
fn configure(
    root: &Path,
    entries: &[FstabEntry],
    mount_points: &[String],
    golden_names: &[String],
    golden: &str,
    boot_tries: u32,
) -> Result<()> {
    let path = resolve_in_root(root, "etc/fstab")?;
    let golden_fstab = std::fs::read_to_string(&path).unwrap_or_default();
    let entries: Vec<fstab::Entry> = entries.iter().map(FstabEntry::to_entry).collect();
    let names = GoldenNames::new(golden_names.iter().cloned());
    let rewritten = fstab::rewrite(&golden_fstab, &entries, &names);
    for line in &rewritten.disabled {
        log::warn!("fstab line disabled, it names the golden disk: {line}");
    }
    std::fs::write(&path, rewritten.text)
        .with_context(|| format!("cannot write {}", path.display()))?;
    for mp in mount_points {
        create_dir_all_in_root(root, mp)
            .with_context(|| format!("cannot create the mount point {mp}"))?;
    }
    let devices_file = entry_in_root(root, "etc/lvm/devices/system.devices")?;
    if devices_file.symlink_metadata().is_ok() {
        std::fs::remove_file(&devices_file)
            .context("cannot remove /etc/lvm/devices/system.devices")?;
        log::info!("removed /etc/lvm/devices/system.devices (it named the build machine's disks)");
    }
    bootloader::configure_defaults(root, golden, boot_tries)
}

/// Removes `vg/lv`; one that is gone already counts as removed: a snapshot
/// whose merge into the root was cut off by a power loss goes on merging once
/// the VG is active, and may end between the probe and this step.
fn remove_lv(lvm: &Lvm, vg: &str, lv: &str) -> Result<()> {
    let Err(error) = lvm.lvremove(vg, lv) else {
        return Ok(());
    };
    if lvm.lvs()?.iter().any(|l| l.vg == vg && l.name == lv) {
        return Err(error);
    }
    log::info!("{vg}/{lv} is gone already (its merge into the origin ended meanwhile)");
    Ok(())
}

fn mkfs(dev: &str, uuid: &str, label: &str) -> Result<()> {
    // ext4 labels hold 16 bytes.
    let label: String = label.chars().take(16).collect();
    Cmd::new("mkfs.ext4")
        .args(["-q", "-F", "-U", uuid, "-L", &label, dev])
        .run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "5d1c2b3a-0f4e-4c6d-9a8b-7e6f5d4c3b2a";

    fn check(spec: Option<&str>, leads_to_boot: bool) -> std::result::Result<(), String> {
        let fs = (UUID.to_string(), "boot".to_string());
        boot_line_problem(
            spec,
            "/dev/sdb2",
            Some(&fs),
            |_| leads_to_boot,
            "vgroup/lv-root",
        )
    }

    #[test]
    fn restores_boot_where_the_restored_fstab_names_it() {
        check(Some(&format!("UUID={UUID}")), false).unwrap();
        check(Some(&format!("UUID={}", UUID.to_uppercase())), false).unwrap();
        check(Some("LABEL=boot"), false).unwrap();
        check(Some("PARTUUID=0a1b2c3d-01"), true).unwrap();
        check(Some("/dev/disk/by-id/ata-disk-part2"), true).unwrap();
    }

    #[test]
    fn a_boot_line_naming_another_file_system_is_an_error() {
        let err = check(Some("UUID=0b4c6e7e-2f0a-4d8e-9c39-6a1f2a7d5e11"), true).unwrap_err();
        assert!(
            err.contains("mounts /boot from UUID=0b4c6e7e-2f0a-4d8e-9c39-6a1f2a7d5e11")
                && err.contains(&format!("not /dev/sdb2 (UUID={UUID})"))
                && err.contains("vgroup/lv-root is merged already")
                && err.contains("/boot was not restored")
                && err.contains("Recover to latest backup"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        let err = check(Some("LABEL=other"), true).unwrap_err();
        assert!(err.contains("mounts /boot from LABEL=other"), "{err}");
        let err = check(Some("PARTUUID=0a1b2c3d-01"), false).unwrap_err();
        assert!(
            err.contains("mounts /boot from PARTUUID=0a1b2c3d-01"),
            "{err}"
        );
        let err = check(None, true).unwrap_err();
        assert!(
            err.contains("has no /boot line") && err.contains(UUID),
            "{err}"
        );
        let err = boot_line_problem(
            Some(&format!("UUID={UUID}")),
            "/dev/sdb2",
            None,
            |_| true,
            "vgroup/lv-root",
        )
        .unwrap_err();
        assert!(err.contains("holds no ext2/3/4 file system"), "{err}");
    }
}
