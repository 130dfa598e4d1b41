//! `zshield backup`: a restore point of the running system, planned as
//! steps and run by the recovery's executor (`--dry-run` prints the plan).
//!
//! Thin layout: the copy of /boot inside the root is refreshed, a restore
//! point (a thin snapshot of the root) is added, and the oldest automatic
//! ones beyond `[restore_points] keep` go; above the pool's threshold,
//! automatic ones go first, oldest first, and a backup that cannot bring the
//! pool under it is refused. `--name` adds one rotation never removes,
//! `--remove` removes one.
//!
//! Classic layout (disks made before thin pools): the one snapshot is
//! replaced. When the VG has room for two the new one is taken first under
//! a temporary name, and only then is the old one removed and the new one
//! renamed, so that a valid backup exists at every moment. A backup cut off
//! half-way leaves the temporary snapshot behind; the next one tidies it up.
//!
//! A backup is only of a system at rest: never while dpkg changes packages,
//! never with /boot missing or not the running kernel's, never of a boot
//! that was not marked good (`health`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::disk::blockmap::Digests;
use crate::disk::mounts::is_running_root;
use crate::events::{self, Event};
use crate::failpoint::Failpoints;
use crate::health;
use crate::layout::{
    current_backup, mapper_path, next_backup_name, restoring_root_name, size_in_extents, BOOT_COPY,
    COMPLETE_MARKER, TAG_COMPLETE, TAG_LAYOUT, TAG_RESTORE_TO, TAG_ROLLBACK, TAG_UPGRADE_APPLYING,
    TAG_UPGRADE_TRIAL,
};
use crate::logging::RUN_DIR;
use crate::lvm::report::{Lv, Vg};
use crate::lvm::Lvm;
use crate::points::{self, Kind};
use crate::recovery::execute::Executor;
use crate::recovery::report::Report;
use crate::recovery::step::{Plan, Step};
use crate::units::human;

/// A backup that cannot be taken now but can later (dpkg or another backup
/// at work): `zshield backup` exits with [`TryLater::EXIT_CODE`], on which
/// zshield-backup.service starts it again a while later.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TryLater(pub String);

impl TryLater {
    /// EX_TEMPFAIL of sysexits.h.
    pub const EXIT_CODE: u8 = 75;
}

/// What `zshield backup` is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The daily restore point (the classic layout's one backup).
    Daily,
    /// `--name NAME`: one that rotation keeps.
    Named(String),
    /// `--remove NAME`.
    Remove(String),
}

impl Request {
    /// Whether it takes a restore point of the running system (which must
    /// then be at rest).
    fn takes_one(&self) -> bool {
        !matches!(self, Request::Remove(_))
    }
}

/// When and where a backup runs: what its plan needs to know besides LVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// Seconds since the epoch: the daily restore point's name.
    pub now: u64,
    /// The card's hand-over marker is on the running system's /boot (a
    /// rollback cut in its last step put it back before its tags came off).
    pub boot_marked_complete: bool,
}

/// Plans the backup `request`, or says why none can be taken (nothing is
/// changed then).
pub fn plan(
    config: &Config,
    vg: Option<&Vg>,
    lvs: &[Lv],
    request: &Request,
    at: &At,
) -> Result<Plan, String> {
    let name = &config.vg;
    let vg = vg.filter(|vg| vg.has_tag(TAG_LAYOUT)).ok_or_else(|| {
        format!("not a zshield system: there is no volume group {name} made by zshield")
    })?;
    if !vg.has_tag(TAG_COMPLETE) {
        return Err(format!(
            "the zshield layout in VG {name} is incomplete (a factory reset was cut off): no backup taken; run the factory reset again"
        ));
    }
    let root_name = &config.root.name;
    let root = lvs
        .iter()
        .find(|l| l.vg == *name && l.name == *root_name)
        .ok_or_else(|| format!("{name}/{root_name} does not exist"))?;
    if let Some(point) = lvs.iter().find(|l| {
        l.vg == *name && (l.has_tag(TAG_UPGRADE_APPLYING) || l.has_tag(TAG_UPGRADE_TRIAL))
    }) {
        let removes_it = matches!(request, Request::Remove(r) if points::lv_name(r) == point.name);
        if request.takes_one() || removes_it {
            return Err(format!(
                "an upgrade is being applied or on trial (its restore point is {name}/{}): no backup of a system that may be half-upgraded; the backup runs once the upgrade is committed",
                point.name
            ));
        }
    }
    let (found, steps, warnings) = if root.is_thin() {
        let (found, steps) = thin_steps(config, lvs, root, request, at)?;
        (found, steps, Vec::new())
    } else {
        if let Request::Named(point) | Request::Remove(point) = request {
            return Err(format!(
                "{name}/{root_name} has the classic layout, whose one backup is {name}/{}: named restore points ({point}) need the thin layout, which the next factory reset makes",
                config.snapshot.name
            ));
        }
        classic_steps(config, vg, lvs, root)?
    };
    Ok(Plan {
        target: format!("VG {name}"),
        disk: None,
        found,
        golden: None,
        firmware: None,
        warnings,
        steps,
    })
}

/// The copy of /boot a restore point keeps, refreshed first.
fn refresh_boot_copy() -> Step {
    Step::RefreshBootCopy {
        boot: PathBuf::from("/boot"),
        copy: Path::new("/").join(BOOT_COPY),
    }
}

fn thin_steps(
    config: &Config,
    lvs: &[Lv],
    root: &Lv,
    request: &Request,
    at: &At,
) -> Result<(String, Vec<Step>), String> {
    let vg = &config.vg;
    let mut steps = Vec::new();
    if let Some(lv) = lvs.iter().find(|l| l.vg == *vg && l.has_tag(TAG_ROLLBACK)) {
        // With the marker on /boot a rollback either was cut in its first
        // step, before anything but its tags (the root tagged, no new root
        // made), or in its last, after everything but them (the old root set
        // aside): its tags are all that is left of it.
        let restoring = restoring_root_name(&root.name);
        let begun_only =
            lv.name == root.name && !lvs.iter().any(|l| l.vg == *vg && l.name == restoring);
        let done_but_tags = lv.name != root.name;
        if !at.boot_marked_complete || !(begun_only || done_but_tags) {
            return Err(format!(
                "a rollback of {vg}/{} was cut off ({vg}/{} carries its tag): boot with zshield_recovery=latest to finish it; no backup taken",
                root.name, lv.name
            ));
        }
        steps.push(Step::DropTags {
            vg: vg.clone(),
            lv: lv.name.clone(),
            tags: lv
                .tags
                .iter()
                .filter(|t| *t == TAG_ROLLBACK || t.starts_with(TAG_RESTORE_TO))
                .cloned()
                .collect(),
        });
    }
    let pool_name = &root.pool_lv;
    let pool = lvs
        .iter()
        .find(|l| l.vg == *vg && l.name == *pool_name)
        .ok_or_else(|| {
            format!(
                "the thin pool {vg}/{pool_name} of {vg}/{} cannot be found: no backup taken; `lvs {vg}` shows what the VG holds",
                root.name
            )
        })?;
    let (Some(data), Some(metadata)) = (pool.data_percent, pool.metadata_percent) else {
        return Err(format!(
            "LVM reports no use for the thin pool {vg}/{pool_name} (is it active?): no backup taken"
        ));
    };
    let all = points::list(vg, lvs);
    let found = format!(
        "{vg}/{} in the thin pool {pool_name} ({data:.1}% of its data, {metadata:.1}% of its metadata used) and {} restore point{}",
        root.name,
        all.len(),
        if all.len() == 1 { "" } else { "s" }
    );
    let (point, kind) = match request {
        Request::Remove(wanted) => {
            let point = points::select(&all, Some(wanted))?;
            steps.push(Step::RemoveRestorePoint {
                vg: vg.clone(),
                lv: point.lv.clone(),
                why: "asked for by name".into(),
            });
            steps.push(Step::WriteRestoreMenu { vg: vg.clone() });
            return Ok((found, steps));
        }
        Request::Named(wanted) => {
            points::check_name(wanted)?;
            if all.iter().any(|p| p.name == *wanted) {
                return Err(format!(
                    "there is a restore point {wanted} already: remove it first (zshield backup --remove {wanted}) or choose another name"
                ));
            }
            (wanted.clone(), Kind::Named)
        }
        Request::Daily => (points::daily_name(at.now, &all), Kind::Daily),
    };
    let threshold = config.pool.threshold;
    let full = data.max(metadata);
    let rotated = points::rotated(
        &all,
        config.restore_points.keep,
        usize::from(kind.automatic()),
    );
    let candidates: Vec<String> = all
        .iter()
        .filter(|p| p.kind.automatic() && !rotated.iter().any(|r| r.lv == p.lv))
        .map(|p| p.lv.clone())
        .collect();
    if full >= f64::from(threshold) {
        // What lv-root maps itself stays whatever restore points go.
        let root_share =
            root.data_percent.unwrap_or(100.0) * root.size as f64 / pool.size.max(1) as f64;
        let refusal = |why: &str| {
            format!(
                "the thin pool {vg}/{pool_name} is {full:.1}% full, at or above its threshold of {threshold}%, and {why}: no restore point taken (it would keep more blocks from being freed); remove named ones (zshield backup --remove NAME) or data from the root, or give the pool room (lvextend -L +SIZE {vg}/{pool_name})"
            )
        };
        if rotated.is_empty() && candidates.is_empty() {
            return Err(refusal("has no automatic restore point left to remove"));
        }
        if root_share >= f64::from(threshold) {
            return Err(refusal(&format!(
                "{vg}/{} alone takes {root_share:.1}% of it",
                root.name
            )));
        }
    }
    let keep = config.restore_points.keep;
    let rotation = rotated.iter().map(|old| Step::RemoveRestorePoint {
        vg: vg.clone(),
        lv: old.lv.clone(),
        why: format!("rotation keeps the newest {keep} automatic ones"),
    });
    let create = Step::CreateRestorePoint {
        vg: vg.clone(),
        origin: root.name.clone(),
        lv: points::lv_name(&point),
        kind,
    };
    steps.push(refresh_boot_copy());
    if full >= f64::from(threshold) {
        // Room first: LVM itself refuses new thin volumes in a pool past
        // its own threshold that it cannot grow.
        // With no candidate left after rotation, the step only checks that
        // rotation brought the pool under its threshold.
        steps.extend(rotation);
        steps.push(Step::PrunePool {
            vg: vg.clone(),
            pool: pool_name.clone(),
            threshold,
            candidates,
        });
        steps.push(create);
    } else {
        // The new one first: a backup that fails later has lost no restore point.
        steps.push(create);
        steps.extend(rotation);
    }
    steps.push(Step::WriteRestoreMenu { vg: vg.clone() });
    Ok((found, steps))
}

/// The classic layout's replacement of its one snapshot, and a warning
/// when the VG has room for one only.
fn classic_steps(
    config: &Config,
    vg: &Vg,
    lvs: &[Lv],
    root: &Lv,
) -> Result<(String, Vec<Step>, Vec<String>), String> {
    let name = &config.vg;
    let (root_name, snap_name) = (&config.root.name, &config.snapshot.name);
    let next = next_backup_name(snap_name);
    let find = |lv: &str| lvs.iter().find(|l| l.vg == *name && l.name == lv);
    let old = find(snap_name);
    if root.is_merging() || old.is_some_and(Lv::is_merging) {
        return Err(format!(
            "a rollback is merging {name}/{snap_name} into {name}/{root_name}: no backup until it has finished (reboot to let it finish)"
        ));
    }
    let mut steps = vec![refresh_boot_copy()];
    if root.has_tag(TAG_ROLLBACK) {
        if current_backup(config, lvs).is_none() {
            return Err(format!(
                "a rollback of {name}/{root_name} was cut off after its merge: boot with zshield_recovery=latest to finish it; no backup taken"
            ));
        }
        // The rollback never merged (or had finished but for this tag).
        steps.push(Step::DropTags {
            vg: name.clone(),
            lv: root_name.clone(),
            tags: vec![TAG_ROLLBACK.into()],
        });
    }
    let remove = |lv: &str| Step::RemoveLv {
        vg: name.clone(),
        lv: lv.to_string(),
    };
    let rename = |from: &str, to: &str| Step::RenameLv {
        vg: name.clone(),
        from: from.to_string(),
        to: to.to_string(),
    };
    let mut free = vg.free_count;
    let mut old_extents = old.map_or(0, |lv| lv.size / vg.extent_size);
    let mut has_old = old.is_some();
    if let Some(left) = find(&next) {
        if !has_old && current_backup(config, lvs) == Some(left) {
            // Cut off between removing the old backup and renaming the new one.
            steps.push(rename(&next, snap_name));
            has_old = true;
            old_extents = left.size / vg.extent_size;
        } else {
            steps.push(remove(&next));
            free += left.size / vg.extent_size;
        }
    }
    let need = size_in_extents(config.snapshot.size, vg.extent_count, vg.extent_size);
    let snapshot = |snapshot: &str| Step::CreateSnapshot {
        vg: name.clone(),
        origin: root_name.clone(),
        snapshot: snapshot.to_string(),
        extents: need,
        bytes: need * vg.extent_size,
    };
    let mut warnings = Vec::new();
    if free >= need {
        steps.push(snapshot(&next));
        if has_old {
            steps.push(remove(snap_name));
        }
        steps.push(rename(&next, snap_name));
    } else if has_old && free + old_extents >= need {
        warnings.push(format!(
            "VG {name} has room for one snapshot only: the old backup is removed before the new one is taken"
        ));
        steps.push(remove(snap_name));
        steps.push(snapshot(snap_name));
    } else {
        return Err(format!(
            "VG {name} is full: a backup needs {} of snapshot space and only {} is free; the old backup is kept; free space in the VG or make [snapshot] size smaller",
            human(need * vg.extent_size),
            human(free * vg.extent_size)
        ));
    }
    let found = format!(
        "{name}/{root_name} (classic layout) and {}",
        if has_old {
            format!("its backup {name}/{snap_name}")
        } else {
            "no backup".to_string()
        }
    );
    Ok((found, steps, warnings))
}

/// `zshield backup`, also run as `zshield_backup` and by the daily timer;
/// what it did or why it did not goes into the event log too (not for a
/// dry run).
pub fn backup(config_path: &Path, request: &Request, dry_run: bool) -> Result<()> {
    let _lock = lock()?;
    let config = Config::load(config_path)?;
    run(&config, request, dry_run).map(drop)
}

/// [`backup`] with its lock held; returns what it did.
fn run(config: &Config, request: &Request, dry_run: bool) -> Result<String> {
    let mut report = Report::backup(dry_run);
    let result = take(config, request, dry_run, &mut report);
    if dry_run {
        return result;
    }
    let changed = report.steps.iter().any(|s| s.writes_disk);
    let result = result.map_err(|e| {
        if !changed {
            return e;
        }
        let done: Vec<&str> = report
            .steps
            .iter()
            .filter(|s| s.ok && s.writes_disk)
            .map(|s| s.description.as_str())
            .collect();
        let done = if done.is_empty() {
            "no step of it finished".to_string()
        } else {
            format!("done: {}", done.join("; "))
        };
        e.context(format!(
            "the backup stopped after it began to change the restore points ({done}; the root and the data volumes are as they were); see /var/log/zshield/backup.log and run zshield backup again once the cause is fixed"
        ))
    });
    let (status, detail) = match &result {
        Ok(taken) => ("done", taken.clone()),
        Err(e) if changed => ("failed", format!("{e:#}")),
        Err(e) => ("refused", format!("{e:#}")),
    };
    if let Err(e) = events::record(config, &Event::now("backup", status, detail)) {
        log::warn!("cannot add this backup to the event log: {e:#}");
    }
    // A pool at its threshold is news for whoever reads the event log.
    if let Some(pruned) = report.steps.iter().find(|s| s.name == "prune-pool") {
        let status = if pruned.ok { "pruned" } else { "full" };
        let detail = report
            .plan
            .as_ref()
            .map_or(String::new(), |p| p.found.clone());
        if let Err(e) = events::record(config, &Event::now("pool", status, detail)) {
            log::warn!("cannot add the pool's state to the event log: {e:#}");
        }
    }
    result
}

/// The plan of `request` for the running system as LVM shows it now.
fn plan_now(config: &Config, request: &Request) -> Result<Plan> {
    let lvm = Lvm;
    let vg = lvm.vgs()?.into_iter().find(|v| v.name == config.vg);
    let lvs = lvm.lvs()?;
    let at = At {
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        boot_marked_complete: Path::new("/boot").join(COMPLETE_MARKER).exists(),
    };
    plan(config, vg.as_ref(), &lvs, request, &at).map_err(anyhow::Error::msg)
}

/// The steps that take the named restore point `name` of the running
/// system, checked at rest, for a caller that runs them as steps of its own
/// plan ([`crate::upgrade`]) and holds the lock.
pub fn named_point_steps(config: &Config, name: &str, _dpkg: &DpkgLock) -> Result<Vec<Step>> {
    let plan = plan_now(config, &Request::Named(name.to_string()))?;
    check_running_root(config)?;
    // The caller holds dpkg's front-end lock: dpkg's own is left to check.
    check_at_rest(config, &DPKG_LOCKS[1..])?;
    Ok(plan.steps)
}

fn check_running_root(config: &Config) -> Result<()> {
    let root = mapper_path(&config.vg, &config.root.name);
    if !is_running_root(&root)? {
        bail!("the running root is not {root}: backups are taken on the appliance's disk system, not on the golden image");
    }
    Ok(())
}

/// Plans the backup, checks the system is at rest, runs the steps; returns
/// what it did.
fn take(config: &Config, request: &Request, dry_run: bool, report: &mut Report) -> Result<String> {
    let plan = plan_now(config, request)?;
    plan.show();
    if dry_run {
        log::info!("dry run: nothing was changed");
        return Ok("dry run".into());
    }
    report.plan = Some(plan.clone());
    check_running_root(config)?;
    if request.takes_one() {
        check_at_rest(config, &DPKG_LOCKS)?;
    }
    let mut exec = Executor::new(
        PathBuf::from("/"),
        Failpoints::default(),
        Digests::Check,
        None,
    );
    exec.run(&plan, report)?;
    let done = plan
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::CreateRestorePoint { .. }
                    | Step::RemoveRestorePoint { .. }
                    | Step::CreateSnapshot { .. }
            )
        })
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    log::info!("backup done: {done}");
    Ok(done)
}

/// Only a system at rest is kept: a boot marked good, dpkg not at work,
/// the running kernel's /boot mounted.
fn check_at_rest(config: &Config, dpkg_locks: &[&str]) -> Result<()> {
    if !health::boot_marked_good(config) {
        return Err(TryLater(
            "this boot is not marked good (zshield-boot-ok.service has not passed the health checks): no backup of a system that may be broken; the old backup is kept, and the backup tries again later".into(),
        )
        .into());
    }
    check_packages_at_rest(dpkg_locks)?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("cannot read the running kernel's release")?;
    check_boot(Path::new("/"), release.trim())
}

/// The locks dpkg holds (fcntl) while it changes packages; apt takes the
/// first for its whole run.
const DPKG_LOCKS: [&str; 2] = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"];

fn check_packages_at_rest(locks: &[&str]) -> Result<()> {
    for &lock in locks {
        if let Some(pid) = fcntl_lock_holder(Path::new(lock))? {
            return Err(TryLater(format!(
                "dpkg is changing packages (process {pid} holds {lock}): no backup of a half-installed system; the old backup is kept, and the backup tries again later"
            ))
            .into());
        }
    }
    Ok(())
}

/// The process holding a write lock on `path` (as `fcntl(F_GETLK)` tells).
fn fcntl_lock_holder(path: &Path) -> Result<Option<i32>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let mut probe = whole_file_write_lock();
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETLK(&mut probe))
        .with_context(|| format!("cannot ask who locks {}", path.display()))?;
    Ok((probe.l_type != nix::libc::F_UNLCK as i16).then_some(probe.l_pid))
}

fn whole_file_write_lock() -> nix::libc::flock {
    // SAFETY: flock is plain data; all zeros is a valid value of it.
    let mut lock: nix::libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = nix::libc::F_WRLCK as i16;
    lock.l_whence = nix::libc::SEEK_SET as i16;
    lock
}

/// dpkg's front-end lock, held as apt holds it while it lives, so that no
/// package changes meanwhile; dpkg run with `DPKG_FRONTEND_LOCKED=1` then
/// takes only its own. An open-file-description lock: it conflicts with
/// dpkg's and apt's, and no other open and close of the file in this process
/// (the at-rest check's) lets it go, as it would a POSIX record lock.
pub struct DpkgLock(#[allow(dead_code)] std::fs::File);

/// Takes [`DpkgLock`], or says who holds it.
pub fn lock_dpkg() -> Result<DpkgLock, String> {
    let path = DPKG_LOCKS[0];
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {path}: {e}"))?;
    let lock = whole_file_write_lock();
    if nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_OFD_SETLK(&lock)).is_err() {
        let holder = fcntl_lock_holder(Path::new(path))
            .ok()
            .flatten()
            .map_or_else(String::new, |pid| format!(" (process {pid})"));
        return Err(format!(
            "dpkg's lock {path} is held{holder}: packages are being changed; run the upgrade when that is done"
        ));
    }
    Ok(DpkgLock(file))
}

/// The backup keeps a copy of /boot for the rollback: it must be the running
/// system's /boot, mounted, with the running kernel in it. `root` is `/`
/// (a directory standing for it in tests).
fn check_boot(root: &Path, release: &str) -> Result<()> {
    let boot = root.join("boot");
    let dev = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.dev())
            .with_context(|| format!("cannot stat {}", p.display()))
    };
    if dev(&boot)? == dev(root)? {
        bail!(
            "/boot is not mounted: a backup now would keep an empty /boot, and a rollback to it could not boot; mount /boot and take the backup again (the old backup is kept)"
        );
    }
    let kernel = boot.join(format!("vmlinuz-{release}"));
    if !kernel.exists() {
        bail!(
            "/boot does not hold the running kernel ({} is missing): is another /boot mounted there? The old backup is kept",
            kernel.display()
        );
    }
    Ok(())
}

/// One backup at a time: the timer and a manual run never overlap (nor an
/// upgrade, which holds it while it applies).
pub fn lock() -> Result<nix::fcntl::Flock<std::fs::File>> {
    let path = Path::new(RUN_DIR).join("backup.lock");
    std::fs::create_dir_all(RUN_DIR)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        TryLater(format!(
            "another backup is running (it holds {}); try again when it has finished",
            path.display()
        ))
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    /// 2026-12-06 10:15:00 UTC, the marker on /boot.
    const AT: At = At {
        now: 1_796_552_100,
        boot_marked_complete: true,
    };

    fn vg(free_mib: u64) -> Vg {
        fixtures::complete_vg(free_mib / 4)
    }

    fn lv(name: &str, attr: &str, mib: u64) -> Lv {
        let origin = if name == "lv-root" { "" } else { "lv-root" };
        fixtures::lv(name, attr, mib, origin, &[])
    }

    fn plan_with(free_mib: u64, lvs: &[Lv]) -> Result<Plan, String> {
        plan(
            &fixtures::small_config(),
            Some(&vg(free_mib)),
            lvs,
            &Request::Daily,
            &AT,
        )
    }

    /// The plan's changes to the VG, in short.
    fn changes(p: &Plan) -> Vec<String> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::RefreshBootCopy { .. } => None,
                Step::CreateSnapshot {
                    snapshot, extents, ..
                } => Some(format!("snapshot {snapshot} {extents}")),
                Step::RemoveLv { lv, .. } => Some(format!("remove {lv}")),
                Step::RenameLv { from, to, .. } => Some(format!("rename {from} {to}")),
                Step::DropTags { tags, .. } => Some(format!("drop {}", tags.join(","))),
                other => Some(other.name()),
            })
            .collect()
    }

    #[test]
    fn takes_the_new_snapshot_before_removing_the_old_when_there_is_room() {
        let root = lv("lv-root", "owi-aos---", 1280);
        let old = lv("snap0", "swi-a-s---", 512);
        let p = plan_with(600, &[root, old]).unwrap();
        assert!(p.warnings.is_empty());
        assert_eq!(
            changes(&p),
            [
                "snapshot snap0_next 128",
                "remove snap0",
                "rename snap0_next snap0"
            ]
        );
        assert_eq!(p.steps[0].name(), "refresh-boot-copy");
    }

    #[test]
    fn falls_back_to_remove_then_create_when_the_vg_is_nearly_full() {
        let root = lv("lv-root", "owi-aos---", 1280);
        let old = lv("snap0", "swi-a-s---", 512);
        let p = plan_with(100, &[root.clone(), old]).unwrap();
        assert!(p.warnings[0].contains("room for one snapshot only"));
        assert_eq!(changes(&p), ["remove snap0", "snapshot snap0 128"]);
        // Not even room for one: refused, the old backup is kept.
        let small = lv("snap0", "swi-a-s---", 256);
        let err = plan_with(100, &[root, small]).unwrap_err();
        assert!(
            err.contains("is full") && err.contains("old backup is kept"),
            "{err}"
        );
    }

    #[test]
    fn tidies_up_after_a_backup_that_was_cut_off() {
        let root = lv("lv-root", "owi-aos---", 1280);
        // Cut off before the old one was removed: the new one is dropped.
        let p = plan_with(
            88,
            &[
                root.clone(),
                lv("snap0", "swi-a-s---", 512),
                lv("snap0_next", "swi-a-s---", 512),
            ],
        )
        .unwrap();
        assert_eq!(
            changes(&p)[..2],
            ["remove snap0_next", "snapshot snap0_next 128"]
        );
        // Cut off after it: the new one becomes the backup.
        let p = plan_with(600, &[root, lv("snap0_next", "swi-a-s---", 512)]).unwrap();
        assert_eq!(changes(&p)[0], "rename snap0_next snap0");
        assert_eq!(changes(&p)[2], "remove snap0");
    }

    #[test]
    fn a_leftover_that_is_no_snapshot_is_removed_not_kept() {
        let root = lv("lv-root", "owi-aos---", 1280);
        let mut plain = lv("snap0_next", "-wi-a-----", 512);
        plain.origin.clear();
        let p = plan_with(600, &[root, plain]).unwrap();
        assert_eq!(changes(&p)[0], "remove snap0_next");
        assert_eq!(changes(&p).len(), 3, "{:?}", changes(&p));
    }

    #[test]
    fn a_stale_rollback_tag_is_dropped_but_a_pending_rollback_is_refused() {
        let mut root = lv("lv-root", "owi-aos---", 1280);
        root.tags.push(TAG_ROLLBACK.into());
        let p = plan_with(600, &[root.clone(), lv("snap0", "swi-a-s---", 512)]).unwrap();
        assert_eq!(changes(&p)[0], "drop zshield_rollback");
        let err = plan_with(600, &[root]).unwrap_err();
        assert!(err.contains("zshield_recovery=latest"), "{err}");
    }

    #[test]
    fn refuses_while_a_merge_is_pending_and_on_other_systems() {
        let err = plan_with(
            600,
            &[
                lv("lv-root", "Owi-aos---", 1280),
                lv("snap0", "Swi-a-s---", 512),
            ],
        )
        .unwrap_err();
        assert!(err.contains("merging"), "{err}");
        let config = fixtures::small_config();
        let err = plan(&config, None, &[], &Request::Daily, &AT).unwrap_err();
        assert!(err.contains("not a zshield system"), "{err}");
        let root = lv("lv-root", "owi-aos---", 1280);
        let err = plan(
            &config,
            Some(&vg(600)),
            &[root],
            &Request::Named("x".into()),
            &AT,
        )
        .unwrap_err();
        assert!(err.contains("need the thin layout"), "{err}");
    }

    /// The thin layout with the factory's restore point and `daily` daily ones.
    fn thin_lvs(daily: u64, pool_percent: f64) -> Vec<Lv> {
        let mut root = fixtures::thin_lv("lv-root", "", 0, &[]);
        root.open = true;
        let mut lvs = vec![
            fixtures::thin_pool(pool_percent, 10.0),
            root,
            fixtures::thin_lv("rp-factory", "lv-root", 1, &[]),
        ];
        for n in 0..daily {
            lvs.push(fixtures::thin_lv(
                &format!("rp-daily-2026120{n}-101500"),
                "lv-root",
                10 + n,
                &[],
            ));
        }
        lvs
    }

    fn thin_plan(lvs: &[Lv], request: Request) -> Result<Plan, String> {
        plan(
            &fixtures::small_config(),
            Some(&vg(100)),
            lvs,
            &request,
            &AT,
        )
    }

    #[test]
    fn no_restore_point_is_taken_or_the_upgrades_removed_while_an_upgrade_runs() {
        for tag in [TAG_UPGRADE_APPLYING, TAG_UPGRADE_TRIAL] {
            let mut lvs = thin_lvs(1, 20.0);
            lvs.push(fixtures::thin_lv(
                "rp-upgrade-acme-2.0",
                "lv-root",
                20,
                &[tag],
            ));
            for request in [Request::Daily, Request::Named("x".into())] {
                let err = thin_plan(&lvs, request).unwrap_err();
                assert!(
                    err.contains("an upgrade is being applied or on trial"),
                    "{err}"
                );
            }
            assert!(thin_plan(&lvs, Request::Remove("upgrade-acme-2.0".into())).is_err());
            assert!(thin_plan(&lvs, Request::Remove("factory".into())).is_ok());
        }
    }

    fn point_changes(p: &Plan) -> Vec<String> {
        p.steps
            .iter()
            .map(|s| match s {
                Step::CreateRestorePoint { lv, .. } => format!("take {lv}"),
                Step::RemoveRestorePoint { lv, .. } => format!("remove {lv}"),
                Step::PrunePool { candidates, .. } => format!("prune {}", candidates.join(",")),
                other => other.name(),
            })
            .collect()
    }

    #[test]
    fn a_thin_backup_adds_a_restore_point_and_rotation_keeps_seven() {
        let p = thin_plan(&thin_lvs(3, 40.0), Request::Daily).unwrap();
        assert_eq!(
            point_changes(&p),
            [
                "refresh-boot-copy",
                "take rp-daily-20261206-101500",
                "write-restore-menu"
            ]
        );
        assert!(p.found.contains("40.0% of its data") && p.found.contains("4 restore points"));
        // Seven daily ones: the oldest goes, the factory's (named) stays.
        let p = thin_plan(&thin_lvs(7, 40.0), Request::Daily).unwrap();
        assert_eq!(
            point_changes(&p),
            [
                "refresh-boot-copy",
                "take rp-daily-20261206-101500-2",
                "remove rp-daily-20261200-101500",
                "write-restore-menu"
            ]
        );
        // A named one changes no rotation; its name is checked, once.
        let p = thin_plan(&thin_lvs(7, 40.0), Request::Named("before-upgrade".into())).unwrap();
        assert_eq!(
            point_changes(&p),
            [
                "refresh-boot-copy",
                "take rp-before-upgrade",
                "write-restore-menu"
            ]
        );
        let err = thin_plan(&thin_lvs(1, 40.0), Request::Named("factory".into())).unwrap_err();
        assert!(
            err.contains("there is a restore point factory already"),
            "{err}"
        );
        assert!(thin_plan(&thin_lvs(1, 40.0), Request::Named("daily-x".into())).is_err());
        // --remove: that one only, nothing refreshed.
        let p = thin_plan(&thin_lvs(1, 40.0), Request::Remove("factory".into())).unwrap();
        assert_eq!(
            point_changes(&p),
            ["remove rp-factory", "write-restore-menu"]
        );
        let err = thin_plan(&thin_lvs(1, 40.0), Request::Remove("nope".into())).unwrap_err();
        assert!(err.contains("no restore point \"nope\""), "{err}");
    }

    #[test]
    fn a_pool_above_its_threshold_loses_automatic_points_first_or_refuses() {
        let p = thin_plan(&thin_lvs(2, 85.0), Request::Daily).unwrap();
        assert_eq!(
            point_changes(&p),
            [
                "refresh-boot-copy",
                "prune rp-daily-20261200-101500,rp-daily-20261201-101500",
                "take rp-daily-20261206-101500",
                "write-restore-menu"
            ]
        );
        // Only named ones left: refused, nothing changed.
        let err = thin_plan(&thin_lvs(0, 85.0), Request::Daily).unwrap_err();
        assert!(
            err.contains("85.0% full") && err.contains("no automatic restore point left"),
            "{err}"
        );
        // Metadata counts as much as data.
        let mut lvs = thin_lvs(0, 10.0);
        lvs[0].metadata_percent = Some(90.0);
        assert!(thin_plan(&lvs, Request::Daily).is_err());
        // What the root maps itself no pruning frees: refused, nothing removed.
        let mut lvs = thin_lvs(2, 85.0);
        lvs[1].data_percent = Some(90.0);
        lvs[1].size = lvs[0].size;
        let err = thin_plan(&lvs, Request::Daily).unwrap_err();
        assert!(
            err.contains("vgroup/lv-root alone takes 90.0% of it"),
            "{err}"
        );
        // Rotation alone removes every automatic point (keep = 1): the pool
        // is checked after it, before the new point is taken.
        let mut config = fixtures::small_config();
        config.restore_points.keep = 1;
        let p = plan(
            &config,
            Some(&vg(100)),
            &thin_lvs(2, 85.0),
            &Request::Daily,
            &AT,
        )
        .unwrap();
        let last_three: Vec<String> = p.steps[p.steps.len() - 3..]
            .iter()
            .map(|s| s.name())
            .collect();
        assert_eq!(
            last_three,
            ["prune-pool", "create-restore-point", "write-restore-menu"]
        );
    }

    #[test]
    fn a_thin_backup_waits_for_a_rollback_that_was_cut_off() {
        let mut lvs = thin_lvs(1, 40.0);
        let to = format!("{TAG_RESTORE_TO}rp-factory");
        lvs.push(fixtures::thin_lv(
            "rp-replaced-20261206-100000",
            "",
            20,
            &[TAG_ROLLBACK, &to],
        ));
        let at = |marked| At {
            boot_marked_complete: marked,
            ..AT
        };
        let config = fixtures::small_config();
        let err = plan(&config, Some(&vg(100)), &lvs, &Request::Daily, &at(false)).unwrap_err();
        assert!(err.contains("zshield_recovery=latest"), "{err}");
        // Cut off in its last step (the marker back on /boot): its tags go.
        let p = plan(&config, Some(&vg(100)), &lvs, &Request::Daily, &at(true)).unwrap();
        assert_eq!(
            p.steps[0],
            Step::DropTags {
                vg: "vgroup".into(),
                lv: "rp-replaced-20261206-100000".into(),
                tags: vec![TAG_ROLLBACK.into(), to],
            }
        );
        // On the root, with the marker still on /boot and no new root made:
        // cut in its first step, before it changed anything but its tags.
        lvs.pop();
        lvs[1].tags.push(TAG_ROLLBACK.into());
        let p = plan(&config, Some(&vg(100)), &lvs, &Request::Daily, &at(true)).unwrap();
        assert_eq!(p.steps[0].name(), "drop-tags");
        // …but a new root made: that one is the rollback's to finish.
        lvs.push(fixtures::thin_lv(
            "lv-root_restoring",
            "rp-factory",
            21,
            &[],
        ));
        assert!(plan(&config, Some(&vg(100)), &lvs, &Request::Daily, &at(true)).is_err());
    }

    #[test]
    fn a_boot_that_is_not_mounted_is_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("boot")).unwrap();
        let err = check_boot(root.path(), "6.1.0-1-amd64")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/boot is not mounted"), "{err}");
    }

    #[test]
    fn finds_who_holds_dpkg_s_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("lock-frontend");
        assert_eq!(fcntl_lock_holder(&lock).unwrap(), None, "no lock file");
        std::fs::write(&lock, "").unwrap();
        assert_eq!(fcntl_lock_holder(&lock).unwrap(), None);
        // dpkg's lock is fcntl's, not flock's: another process must hold it.
        let mut holder = std::process::Command::new("perl")
            .args(["-MFcntl", "-e", HOLD_FCNTL_LOCK])
            .arg(&lock)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "locked\n");
        let held = fcntl_lock_holder(&lock).unwrap();
        holder.kill().unwrap();
        holder.wait().unwrap();
        assert_eq!(held, Some(holder.id() as i32));
    }

    /// Takes a write lock on ARGV[0] as dpkg does (struct flock of x86_64
    /// and aarch64 Linux), says so, and keeps it for a minute.
    const HOLD_FCNTL_LOCK: &str = r#"open(my $f, ">>", $ARGV[0]) or die "$!";
my $lock = pack("s s x4 q q l x4", F_WRLCK, 0, 0, 0, 0);
fcntl($f, F_SETLKW, $lock) or die "lock: $!";
$| = 1; print "locked\n"; sleep 60;"#;
}
