//! The daily backup of the running system: refresh the copy of /boot inside
//! the root, then replace the snapshot with a fresh one of the root.
//!
//! When the VG has room for two snapshots the new one is taken first under a
//! temporary name, and only then is the old one removed and the new one
//! renamed, so that a valid backup exists at every moment. A backup cut off
//! half-way leaves the temporary snapshot behind; the next one tidies it up.
//!
//! A backup is only of a system at rest: never while dpkg changes packages,
//! never with /boot missing or not the running kernel's, never of a boot
//! that was not marked good (`health`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::disk::mounts::is_running_root;
use crate::events::{self, Event};
use crate::health;
use crate::layout::{
    current_backup, mapper_path, next_backup_name, size_in_extents, BOOT_COPY, TAG_COMPLETE,
    TAG_LAYOUT, TAG_ROLLBACK,
};
use crate::logging::RUN_DIR;
use crate::lvm::report::{Lv, Vg};
use crate::lvm::Lvm;
use crate::target::copy::mirror_tree;
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

/// One change to the VG, in the order a backup makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    DropRollbackTag,
    Remove(String),
    Rename { from: String, to: String },
    Snapshot { name: String, extents: u64 },
}

/// What a backup will do, decided from the VG before anything is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPlan {
    pub vg: String,
    pub root: String,
    pub changes: Vec<Change>,
    /// The VG has room for one snapshot only: the old backup goes first.
    pub without_backup_for_a_moment: bool,
}

/// Plans a backup, or says why none can be taken (nothing is changed then).
pub fn plan(config: &Config, vg: Option<&Vg>, lvs: &[Lv]) -> Result<BackupPlan, String> {
    let name = &config.vg;
    let vg = vg.filter(|vg| vg.has_tag(TAG_LAYOUT)).ok_or_else(|| {
        format!("not a zshield system: there is no volume group {name} made by zshield")
    })?;
    if !vg.has_tag(TAG_COMPLETE) {
        return Err(format!(
            "the zshield layout in VG {name} is incomplete (a factory reset was cut off): no backup taken; run the factory reset again"
        ));
    }
    let (root_name, snap_name) = (&config.root.name, &config.snapshot.name);
    let next = next_backup_name(snap_name);
    let find = |lv: &str| lvs.iter().find(|l| l.vg == *name && l.name == lv);
    let root = find(root_name).ok_or_else(|| format!("{name}/{root_name} does not exist"))?;
    let old = find(snap_name);
    if root.is_merging() || old.is_some_and(Lv::is_merging) {
        return Err(format!(
            "a rollback is merging {name}/{snap_name} into {name}/{root_name}: no backup until it has finished (reboot to let it finish)"
        ));
    }
    let mut changes = Vec::new();
    if root.has_tag(TAG_ROLLBACK) {
        if current_backup(config, lvs).is_none() {
            return Err(format!(
                "a rollback of {name}/{root_name} was cut off after its merge: boot with zshield_recovery=latest to finish it; no backup taken"
            ));
        }
        // The rollback never merged (or had finished but for this tag).
        changes.push(Change::DropRollbackTag);
    }
    let mut free = vg.free_count;
    let mut old_extents = old.map_or(0, |lv| lv.size / vg.extent_size);
    let mut has_old = old.is_some();
    if let Some(left) = find(&next) {
        if !has_old && current_backup(config, lvs) == Some(left) {
            // Cut off between removing the old backup and renaming the new one.
            changes.push(Change::Rename {
                from: next.clone(),
                to: snap_name.clone(),
            });
            has_old = true;
            old_extents = left.size / vg.extent_size;
        } else {
            changes.push(Change::Remove(next.clone()));
            free += left.size / vg.extent_size;
        }
    }
    let need = size_in_extents(config.snapshot.size, vg.extent_count, vg.extent_size);
    let too_small = |room: u64| {
        format!(
            "VG {name} is full: a backup needs {} of snapshot space and only {} is free; the old backup is kept; free space in the VG or make [snapshot] size smaller",
            human(need * vg.extent_size),
            human(room * vg.extent_size)
        )
    };
    let without_backup_for_a_moment = free < need;
    if !without_backup_for_a_moment {
        changes.push(Change::Snapshot {
            name: next.clone(),
            extents: need,
        });
        if has_old {
            changes.push(Change::Remove(snap_name.clone()));
        }
        changes.push(Change::Rename {
            from: next,
            to: snap_name.clone(),
        });
    } else if has_old && free + old_extents >= need {
        changes.push(Change::Remove(snap_name.clone()));
        changes.push(Change::Snapshot {
            name: snap_name.clone(),
            extents: need,
        });
    } else {
        return Err(too_small(free));
    }
    Ok(BackupPlan {
        vg: name.clone(),
        root: root_name.clone(),
        changes,
        without_backup_for_a_moment,
    })
}

/// `zshield backup`, also run as `zshield_backup` and by the daily timer;
/// what it did or why it did not goes into the event log too.
pub fn backup(config_path: &Path) -> Result<()> {
    let _lock = lock()?;
    let config = Config::load(config_path)?;
    let mut changed = false;
    let result = take(&config, &mut changed);
    let (status, detail) = match &result {
        Ok(taken) => ("done", taken.clone()),
        Err(e) if changed => ("failed", format!("{e:#}")),
        Err(e) => ("refused", format!("{e:#}")),
    };
    if let Err(e) = events::record(&config, &Event::now("backup", status, detail)) {
        log::warn!("cannot add this backup to the event log: {e:#}");
    }
    result.map(drop)
}

/// Takes the backup; returns what it took. `changed` turns true with the
/// first change to the VG.
fn take(config: &Config, changed: &mut bool) -> Result<String> {
    let lvm = Lvm;
    let vg = lvm.vgs()?.into_iter().find(|v| v.name == config.vg);
    let lvs = lvm.lvs()?;
    let plan = plan(config, vg.as_ref(), &lvs).map_err(anyhow::Error::msg)?;
    if !is_running_root(&mapper_path(&plan.vg, &plan.root))? {
        bail!("the running root is not {}: backups are taken on the appliance's disk system, not on the golden image", mapper_path(&plan.vg, &plan.root));
    }
    if !health::boot_marked_good(config) {
        return Err(TryLater(
            "this boot is not marked good (zshield-boot-ok.service has not passed the health checks): no backup of a system that may be broken; the old backup is kept, and the backup tries again later".into(),
        )
        .into());
    }
    check_packages_at_rest()?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("cannot read the running kernel's release")?;
    check_boot(Path::new("/"), release.trim())?;

    mirror_tree(
        Path::new("/boot"),
        &Path::new("/").join(BOOT_COPY),
        "refreshing the copy of /boot",
    )
    .context("cannot refresh the copy of /boot; no backup taken, the old one is kept")?;
    nix::unistd::sync();

    if plan.without_backup_for_a_moment {
        log::warn!(
            "VG {} has room for one snapshot only: the old backup is removed before the new one is taken",
            plan.vg
        );
    }
    for change in &plan.changes {
        *changed = true;
        apply(&lvm, &plan, change)?;
    }
    let taken = format!(
        "{}/{} is a snapshot of {}/{} ({})",
        plan.vg,
        config.snapshot.name,
        plan.vg,
        plan.root,
        plan.changes
            .iter()
            .find_map(|c| match c {
                Change::Snapshot { extents, .. } =>
                    vg.as_ref().map(|vg| human(extents * vg.extent_size)),
                _ => None,
            })
            .unwrap_or_default()
    );
    log::info!("backup taken: {taken}");
    Ok(taken)
}

fn apply(lvm: &Lvm, plan: &BackupPlan, change: &Change) -> Result<()> {
    let vg = &plan.vg;
    match change {
        Change::DropRollbackTag => {
            log::info!(
                "removing the stale tag {TAG_ROLLBACK} from {vg}/{}",
                plan.root
            );
            lvm.lv_del_tag(vg, &plan.root, TAG_ROLLBACK)
        }
        Change::Remove(lv) => {
            log::info!("removing {vg}/{lv}");
            lvm.lvremove(vg, lv)
        }
        Change::Rename { from, to } => {
            log::info!("renaming {vg}/{from} to {to}");
            lvm.lvrename(vg, from, to)
        }
        Change::Snapshot { name, extents } => {
            log::info!("taking the snapshot {vg}/{name} of {vg}/{}", plan.root);
            lvm.snapshot(vg, &plan.root, name, *extents)
                .map(drop)
                .with_context(|| {
                    // Leave nothing half-made: a snapshot that LVM created but
                    // could not finish is removed again.
                    if lvm
                        .lvs()
                        .is_ok_and(|lvs| lvs.iter().any(|l| l.vg == *vg && l.name == *name))
                    {
                        let _ = lvm.lvremove(vg, name);
                    }
                    format!("cannot take the snapshot {vg}/{name}")
                })
        }
    }
}

/// The locks dpkg holds (fcntl) while it changes packages; apt takes the
/// first for its whole run.
const DPKG_LOCKS: [&str; 2] = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"];

fn check_packages_at_rest() -> Result<()> {
    for lock in DPKG_LOCKS {
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
    // SAFETY: flock is plain data; all zeros is a valid value of it.
    let mut probe: nix::libc::flock = unsafe { std::mem::zeroed() };
    probe.l_type = nix::libc::F_WRLCK as i16;
    probe.l_whence = nix::libc::SEEK_SET as i16;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETLK(&mut probe))
        .with_context(|| format!("cannot ask who locks {}", path.display()))?;
    Ok((probe.l_type != nix::libc::F_UNLCK as i16).then_some(probe.l_pid))
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

/// One backup at a time: the timer and a manual run never overlap.
fn lock() -> Result<nix::fcntl::Flock<std::fs::File>> {
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

    fn vg(free_mib: u64) -> Vg {
        fixtures::complete_vg(free_mib / 4)
    }

    fn lv(name: &str, attr: &str, mib: u64) -> Lv {
        let origin = if name == "lv-root" { "" } else { "lv-root" };
        fixtures::lv(name, attr, mib, origin, &[])
    }

    fn plan_with(free_mib: u64, lvs: &[Lv]) -> Result<BackupPlan, String> {
        plan(&fixtures::small_config(), Some(&vg(free_mib)), lvs)
    }

    fn snapshot(name: &str) -> Change {
        Change::Snapshot {
            name: name.into(),
            extents: 128,
        }
    }

    fn rename(from: &str, to: &str) -> Change {
        Change::Rename {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn takes_the_new_snapshot_before_removing_the_old_when_there_is_room() {
        let root = lv("lv-root", "owi-aos---", 1280);
        let old = lv("snap0", "swi-a-s---", 512);
        let p = plan_with(600, &[root, old]).unwrap();
        assert!(!p.without_backup_for_a_moment);
        assert_eq!(
            p.changes,
            [
                snapshot("snap0_next"),
                Change::Remove("snap0".into()),
                rename("snap0_next", "snap0")
            ]
        );
    }

    #[test]
    fn falls_back_to_remove_then_create_when_the_vg_is_nearly_full() {
        let root = lv("lv-root", "owi-aos---", 1280);
        let old = lv("snap0", "swi-a-s---", 512);
        let p = plan_with(100, &[root.clone(), old]).unwrap();
        assert!(p.without_backup_for_a_moment);
        assert_eq!(
            p.changes,
            [Change::Remove("snap0".into()), snapshot("snap0")]
        );
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
        assert_eq!(p.changes[0], Change::Remove("snap0_next".into()));
        assert_eq!(p.changes[1], snapshot("snap0_next"));
        // Cut off after it: the new one becomes the backup.
        let p = plan_with(600, &[root, lv("snap0_next", "swi-a-s---", 512)]).unwrap();
        assert_eq!(p.changes[0], rename("snap0_next", "snap0"));
        assert_eq!(p.changes[2], Change::Remove("snap0".into()));
    }

    #[test]
    fn a_leftover_that_is_no_snapshot_is_removed_not_kept() {
        let root = lv("lv-root", "owi-aos---", 1280);
        let mut plain = lv("snap0_next", "-wi-a-----", 512);
        plain.origin.clear();
        let p = plan_with(600, &[root, plain]).unwrap();
        assert_eq!(p.changes[0], Change::Remove("snap0_next".into()));
        assert_eq!(p.changes.len(), 3, "{:?}", p.changes);
    }

    #[test]
    fn a_stale_rollback_tag_is_dropped_but_a_pending_rollback_is_refused() {
        let mut root = lv("lv-root", "owi-aos---", 1280);
        root.tags.push(TAG_ROLLBACK.into());
        let p = plan_with(600, &[root.clone(), lv("snap0", "swi-a-s---", 512)]).unwrap();
        assert_eq!(p.changes[0], Change::DropRollbackTag);
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
        let err = plan(&config, None, &[]).unwrap_err();
        assert!(err.contains("not a zshield system"), "{err}");
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
