//! `zshield_recovery=latest` on the thin layout: no merge, no copy. The new
//! root is made first, as a thin snapshot of the chosen restore point under
//! a temporary name; then the current root is set aside as a restore point
//! of its own, and the new one takes its name; then /boot comes back from the
//! copy in it and GRUB follows. No moment has no root to go back to: until
//! the rename the old root is lv-root, after it the new one is, and the old
//! one stays a restore point until rotation removes it.
//!
//! The root carries the rollback's tag and the name of the point it restores
//! from the rollback's first step to its last (a rename keeps tags), so that
//! a run cut off anywhere is finished by the next one (the card's automatic
//! mode included), with the same point.

use serde::Serialize;

use crate::config::Config;
use crate::layout::{
    mapper_path, restoring_root_name, TAG_COMPLETE, TAG_RESTORE_TO, TAG_ROLLBACK,
    TAG_UPGRADE_APPLYING, TAG_UPGRADE_TRIAL,
};
use crate::lvm::report::{Lv, Vg};
use crate::points::{self, RestorePoint};
use crate::recovery::step::Step;

/// Where a thin rollback starts, from what the VG holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// From its first step (again, when a run was cut off before the new
    /// root was made).
    Begin,
    /// The new root is made under its temporary name; the old one is still
    /// lv-root.
    SetAside,
    /// The old root is set aside; the new one has its temporary name still.
    Rename,
    /// The new root is lv-root; /boot, GRUB and the end are left.
    AfterRoot,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found {
    pub start: Start,
    pub vg: String,
    pub root: String,
    /// The restore point brought back (its LV).
    pub point: String,
    /// The LV the current root is kept as.
    pub kept: String,
    /// Tags of an earlier try that named another point.
    pub stale: Vec<String>,
    /// An LV and the tags an earlier rollback left on it when it was cut
    /// off in its last step, after the card's hand-over marker was back
    /// on: that rollback is done, and its tags go first.
    pub leftover: Option<(String, Vec<String>)>,
    /// Automatic restore points to remove first, oldest first, while the
    /// pool is at or above its threshold (a PrunePool step).
    pub prune: Option<Step>,
    /// The restore point of an upgrade being applied or on trial, and why
    /// this rollback ends that upgrade.
    pub upgrade: Option<(String, String)>,
}

/// Whether the rollback of this VG is a thin one: its root is a thin
/// volume, or was one when a rollback set it aside.
pub fn applies(config: &Config, lvs: &[Lv]) -> bool {
    lvs.iter().any(|l| {
        l.vg == config.vg && l.is_thin() && (l.name == config.root.name || l.has_tag(TAG_ROLLBACK))
    })
}

fn recorded_point(lv: &Lv) -> Option<&str> {
    lv.tags.iter().find_map(|t| t.strip_prefix(TAG_RESTORE_TO))
}

/// Decides how to roll back to `wanted` (the newest restore point without
/// it), or why not; `now` names the kept root. `marked_complete`: the card's
/// hand-over marker is on /boot, so the disk's system has booted since any
/// rollback whose tags are still there, which was cut off in its first step
/// before it took the marker off (nothing else done) or in its last after
/// it put it back (everything else done): those tags are leftovers, not a
/// rollback to finish. Refusals change nothing.
pub fn assess(
    config: &Config,
    vg: Option<&Vg>,
    lvs: &[Lv],
    wanted: Option<&str>,
    now: u64,
    marked_complete: bool,
) -> Result<Found, String> {
    let name = &config.vg;
    let factory = "choose \"Recover to factory default\"";
    if !vg.is_some_and(|v| v.has_tag(TAG_COMPLETE)) {
        return Err(format!(
            "the zshield layout in VG {name} is incomplete (a factory reset was cut off); {factory}"
        ));
    }
    let root_name = &config.root.name;
    let restoring = restoring_root_name(root_name);
    let ours: Vec<&Lv> = lvs.iter().filter(|l| l.vg == *name).collect();
    let find = |lv: &str| ours.iter().find(|l| l.name == lv).copied();
    let root = find(root_name);
    let made = find(&restoring);
    let in_flight = ours
        .iter()
        .find(|l| l.is_thin() && l.has_tag(TAG_ROLLBACK))
        .copied();
    if let Some(root) = root.filter(|r| r.is_open()) {
        return Err(format!(
            "{name}/{} is in use (mounted): a rollback runs before the root is mounted; boot with zshield_recovery=latest",
            root.name
        ));
    }
    let points = points::list(name, lvs);
    // A rollback while an upgrade is applied or on trial brings back the
    // point the upgrade took, unless a person names another.
    let upgrading = ours.iter().find(|l| {
        l.is_thin()
            && l.name.starts_with(points::PREFIX)
            && (l.has_tag(TAG_UPGRADE_APPLYING) || l.has_tag(TAG_UPGRADE_TRIAL))
    });
    let upgrade_point = upgrading.and_then(|l| l.name.strip_prefix(points::PREFIX));
    let wanted = wanted.or(upgrade_point);
    let choose = |wanted: Option<&str>| -> Result<&RestorePoint, String> {
        points::select(&points, wanted).map_err(|e| {
            format!("{e}: nothing to roll back to; boot normally and take one with zshield_backup, or {factory}")
        })
    };
    let replaced = || points::lv_name(&points::replaced_name(now, &points));
    let found = |start, point: &RestorePoint, kept: String, stale: Vec<String>| Found {
        start,
        vg: name.clone(),
        root: root_name.clone(),
        point: point.lv.clone(),
        kept,
        stale,
        leftover: None,
        prune: None,
        upgrade: None,
    };
    let rollback_tags = |lv: &Lv| -> Vec<String> {
        lv.tags
            .iter()
            .filter(|t| *t == TAG_ROLLBACK || t.starts_with(TAG_RESTORE_TO))
            .cloned()
            .collect()
    };
    let finish_recorded = |lv: &Lv| -> Result<&RestorePoint, String> {
        let recorded = recorded_point(lv).ok_or_else(|| {
            format!(
                "{name}/{} carries the rollback's tag but not the restore point it brings back; {factory}",
                lv.name
            )
        })?;
        let point = choose(Some(recorded))?;
        if wanted.is_some_and(|w| w != point.name && w != point.lv) {
            log::warn!(
                "a rollback to {} was cut off after its new root was made: it is finished first",
                point.name
            );
        }
        Ok(point)
    };
    let assessed = match (in_flight, root, made) {
        (None, None, _) => Err(format!("{name}/{root_name} does not exist; {factory}")),
        (None, Some(root), _) => {
            let point = choose(wanted)?;
            Ok(Found {
                prune: room(config, root, lvs, point)?,
                ..found(Start::Begin, point, replaced(), Vec::new())
            })
        }
        // Begun, no new root yet: begun again, with the point asked for
        // now, or else the one asked for then (unless the disk has booted
        // since: then the newest).
        (Some(begun), Some(root), None) if begun.name == root.name => {
            let recorded = recorded_point(begun).filter(|_| !marked_complete);
            let point = choose(wanted.or(recorded))?;
            let prune = room(config, root, lvs, point)?;
            let stale = begun
                .tags
                .iter()
                .filter(|t| t.starts_with(TAG_RESTORE_TO) && t[TAG_RESTORE_TO.len()..] != point.lv)
                .cloned()
                .collect();
            Ok(Found {
                prune,
                ..found(Start::Begin, point, replaced(), stale)
            })
        }
        (Some(begun), Some(root), Some(_)) if begun.name == root.name => Ok(found(
            Start::SetAside,
            finish_recorded(begun)?,
            replaced(),
            Vec::new(),
        )),
        (Some(kept), None, Some(_)) => Ok(found(
            Start::Rename,
            finish_recorded(kept)?,
            kept.name.clone(),
            Vec::new(),
        )),
        (Some(done), Some(root), _) if marked_complete => {
            let point = choose(wanted)?;
            Ok(Found {
                leftover: Some((done.name.clone(), rollback_tags(done))),
                prune: room(config, root, lvs, point)?,
                ..found(Start::Begin, point, replaced(), Vec::new())
            })
        }
        (Some(kept), Some(_), _) => Ok(found(
            Start::AfterRoot,
            finish_recorded(kept)?,
            kept.name.clone(),
            Vec::new(),
        )),
        (Some(kept), None, None) => Err(format!(
            "a rollback set {name}/{root_name} aside as {name}/{} and neither its new root nor {name}/{restoring} is there; {factory}",
            kept.name
        )),
    };
    let mut found = assessed?;
    if let (Some(lv), Some(upgrade)) = (upgrading, upgrade_point) {
        let why = if found.point != lv.name {
            format!(
                "a rollback to {} was asked for",
                found.point.trim_start_matches(points::PREFIX)
            )
        } else if lv.has_tag(TAG_UPGRADE_APPLYING) {
            "it was stopped while it was being applied (a power cut, a failed step or a restart): the system is as it was before it".to_string()
        } else {
            "its trial boot was not marked good (a required health check failed, or the boot tries ran out)".to_string()
        };
        found.upgrade = Some((upgrade.to_string(), why));
    }
    Ok(found)
}

/// Room in the thin pool of `root` for the new root made from `point`: none
/// needed below `[pool] threshold`; at or above it, the automatic restore
/// points but `point` go first, oldest first, until it is below (LVM itself
/// refuses new thin volumes in a pool past its own threshold that it cannot
/// grow); with none to remove, the rollback is refused.
fn room(
    config: &Config,
    root: &Lv,
    lvs: &[Lv],
    point: &RestorePoint,
) -> Result<Option<Step>, String> {
    let vg = &config.vg;
    let Some(pool) = lvs.iter().find(|l| l.vg == *vg && l.name == root.pool_lv) else {
        return Err(format!(
            "the thin pool {vg}/{} of {vg}/{} cannot be found: no rollback started; choose \"Recover to factory default\"",
            root.pool_lv, root.name
        ));
    };
    let (Some(data), Some(metadata)) = (pool.data_percent, pool.metadata_percent) else {
        return Err(format!(
            "LVM reports no use for the thin pool {vg}/{} (is it active?): no rollback started; choose \"Recover to factory default\"",
            pool.name
        ));
    };
    let (used, threshold) = (data.max(metadata), config.pool.threshold);
    if used < f64::from(threshold) {
        return Ok(None);
    }
    let candidates: Vec<String> = points::list(vg, lvs)
        .into_iter()
        .filter(|p| p.kind.automatic() && p.lv != point.lv)
        .map(|p| p.lv)
        .collect();
    if candidates.is_empty() {
        return Err(format!(
            "the thin pool {vg}/{} is {used:.1}% full, at or above its threshold of {threshold}%, with no automatic restore point to remove but the one brought back: no rollback started; remove named restore points from the running system (zshield backup --remove NAME) or give the pool room (lvextend -L +SIZE {vg}/{}), or choose \"Recover to factory default\"",
            pool.name, pool.name
        ));
    }
    Ok(Some(Step::PrunePool {
        vg: vg.clone(),
        pool: pool.name.clone(),
        threshold,
        candidates,
    }))
}

impl Found {
    pub fn in_words(&self) -> String {
        let (vg, root, point) = (&self.vg, &self.root, &self.point);
        match self.start {
            Start::Begin => format!("the restore point {vg}/{point} of {vg}/{root} (thin)"),
            _ => format!(
                "a rollback of {vg}/{root} to {vg}/{point} that was cut off (the root it replaces is kept as {vg}/{})",
                self.kept
            ),
        }
    }
}

/// The steps from `found.start` on; GRUB for BIOS on `bios_disk`, /boot
/// on `boot`.
pub fn steps(found: &Found, bios_disk: Option<String>, boot: &str) -> Vec<Step> {
    let (vg, root) = (found.vg.clone(), found.root.clone());
    let restoring = restoring_root_name(&root);
    let mut steps = Vec::new();
    if let Some((lv, tags)) = &found.leftover {
        steps.push(Step::DropTags {
            vg: vg.clone(),
            lv: lv.clone(),
            tags: tags.clone(),
        });
    }
    steps.extend(found.prune.clone());
    if found.start == Start::Begin {
        steps.push(Step::BeginRollback {
            vg: vg.clone(),
            root: root.clone(),
            point: found.point.clone(),
            stale: found.stale.clone(),
            boot: boot.to_string(),
        });
        steps.push(Step::RestoreRoot {
            vg: vg.clone(),
            point: found.point.clone(),
            root: restoring.clone(),
        });
    }
    if matches!(found.start, Start::Begin | Start::SetAside) {
        steps.push(Step::RenameLv {
            vg: vg.clone(),
            from: root.clone(),
            to: found.kept.clone(),
        });
    }
    if found.start != Start::AfterRoot {
        // Again after a cut: the rename may have been the last thing done.
        steps.push(Step::SetAside {
            vg: vg.clone(),
            lv: found.kept.clone(),
        });
        steps.push(Step::RenameLv {
            vg: vg.clone(),
            from: restoring,
            to: root.clone(),
        });
    }
    let root_dev = mapper_path(&vg, &root);
    steps.extend([
        Step::RestoreBoot {
            vg: vg.clone(),
            root: root.clone(),
            boot: boot.to_string(),
        },
        // A run cut off may have been cut in the middle of grub-install:
        // the next one installs GRUB whatever its restore changed.
        if found.start == Start::Begin {
            Step::ReinstallBootloader {
                bios_disk,
                root: root_dev,
            }
        } else {
            Step::InstallBootloader {
                bios_disk,
                root: root_dev,
                esp: None,
            }
        },
        Step::WriteRestoreMenu { vg: vg.clone() },
    ]);
    if let Some((point, why)) = &found.upgrade {
        steps.push(Step::EndUpgrade {
            vg: vg.clone(),
            point: points::lv_name(point),
            why: why.clone(),
        });
    }
    steps.extend([Step::FinishRollback {
        vg,
        kept: found.kept.clone(),
        tags: vec![
            TAG_ROLLBACK.to_string(),
            format!("{TAG_RESTORE_TO}{}", found.point),
        ],
        boot: boot.to_string(),
    }]);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{complete_vg, small_config, thin_lv, thin_pool};

    const NOW: u64 = 1_796_552_100;

    fn root() -> Lv {
        let mut root = thin_lv("lv-root", "", 0, &[]);
        root.active = true;
        root
    }

    fn lvs(extra: Vec<Lv>) -> Vec<Lv> {
        let mut lvs = vec![
            thin_pool(40.0, 10.0),
            thin_lv("rp-factory", "lv-root", 1, &[]),
            thin_lv("rp-before-upgrade", "lv-root", 2, &[]),
            thin_lv("rp-daily-20261205-101500", "lv-root", 3, &[]),
        ];
        lvs.extend(extra);
        lvs
    }

    fn assess_with(lvs: &[Lv], wanted: Option<&str>) -> Result<Found, String> {
        assess(
            &small_config(),
            Some(&complete_vg(100)),
            lvs,
            wanted,
            NOW,
            false,
        )
    }

    #[test]
    fn a_rollback_during_an_upgrade_brings_back_its_point_and_ends_it() {
        for (tag, why) in [
            (TAG_UPGRADE_TRIAL, "its trial boot was not marked good"),
            (
                TAG_UPGRADE_APPLYING,
                "it was stopped while it was being applied",
            ),
        ] {
            // A daily point newer than the upgrade's does not win.
            let all = lvs(vec![
                root(),
                thin_lv("rp-upgrade-acme-2.0", "lv-root", 4, &[tag]),
                thin_lv("rp-daily-20261206-101500", "lv-root", 5, &[]),
            ]);
            let found = assess_with(&all, None).unwrap();
            assert_eq!(found.point, "rp-upgrade-acme-2.0");
            let (point, said) = found.upgrade.clone().unwrap();
            assert_eq!(point, "upgrade-acme-2.0");
            assert!(said.starts_with(why), "{said}");
            let planned = steps(&found, None, "/dev/sdb2");
            let end = planned
                .iter()
                .position(|s| s.name() == "end-upgrade")
                .unwrap();
            assert_eq!(planned[end + 1].name(), "finish-rollback");
            assert!(matches!(
                &planned[end],
                Step::EndUpgrade { point, .. } if point == "rp-upgrade-acme-2.0"
            ));

            // A person who names another point gets it; the upgrade ends.
            let found = assess_with(&all, Some("factory")).unwrap();
            assert_eq!(found.point, "rp-factory");
            assert_eq!(
                found.upgrade.unwrap().1,
                "a rollback to factory was asked for"
            );
        }
        let found = assess_with(&lvs(vec![root()]), None).unwrap();
        assert!(found.upgrade.is_none());
        assert!(!names(&found).contains(&"end-upgrade".to_string()));
    }

    fn names(found: &Found) -> Vec<String> {
        steps(found, Some("/dev/sdb".into()), "/dev/sdb2")
            .iter()
            .map(|s| match s {
                Step::RenameLv { from, to, .. } => format!("rename {from} {to}"),
                other => other.name(),
            })
            .collect()
    }

    #[test]
    fn the_new_root_is_made_before_the_old_one_is_set_aside() {
        let all = lvs(vec![root()]);
        assert!(applies(&small_config(), &all));
        let found = assess_with(&all, None).unwrap();
        assert_eq!(found.start, Start::Begin);
        assert_eq!(found.point, "rp-daily-20261205-101500");
        assert_eq!(found.kept, "rp-replaced-20261206-101500");
        assert_eq!(
            names(&found),
            [
                "begin-rollback",
                "restore-root",
                "rename lv-root rp-replaced-20261206-101500",
                "set-aside",
                "rename lv-root_restoring lv-root",
                "restore-boot",
                "reinstall-bootloader",
                "write-restore-menu",
                "finish-rollback"
            ]
        );
        let found = assess_with(&all, Some("factory")).unwrap();
        assert_eq!(found.point, "rp-factory");
        let err = assess_with(&all, Some("nope")).unwrap_err();
        assert!(
            err.contains("no restore point \"nope\"") && err.contains("Recover to factory default"),
            "{err}"
        );
        let mut mounted = root();
        mounted.open = true;
        let err = assess_with(&lvs(vec![mounted]), None).unwrap_err();
        assert!(err.contains("in use"), "{err}");
        let err = assess_with(&[thin_pool(40.0, 10.0), root()], None).unwrap_err();
        assert!(err.contains("there is no restore point"), "{err}");
    }

    #[test]
    fn a_full_pool_loses_automatic_points_first_or_the_rollback_is_refused() {
        let mut all = lvs(vec![root()]);
        assert_eq!(assess_with(&all, None).unwrap().prune, None);
        all[0].metadata_percent = Some(85.0);
        // The daily point goes, oldest automatic first, before anything else.
        let found = assess_with(&all, Some("factory")).unwrap();
        assert_eq!(
            found.prune,
            Some(Step::PrunePool {
                vg: "vgroup".into(),
                pool: "lv-pool".into(),
                threshold: 80,
                candidates: vec!["rp-daily-20261205-101500".into()],
            })
        );
        assert_eq!(names(&found)[..2], ["prune-pool", "begin-rollback"]);
        // The point brought back is never removed: nothing else to remove.
        let err = assess_with(&all, None).unwrap_err();
        assert!(
            err.contains("85.0% full") && err.contains("no rollback started"),
            "{err}"
        );
        all[0].metadata_percent = None;
        assert!(assess_with(&all, None).is_err());
    }

    #[test]
    fn a_rollback_cut_off_is_finished_with_the_point_it_began_with() {
        let to = format!("{TAG_RESTORE_TO}rp-factory");
        let tags = [TAG_ROLLBACK, to.as_str()];
        let tagged = |mut lv: Lv| {
            lv.tags = tags.iter().map(|t| t.to_string()).collect();
            lv
        };
        let restoring = || {
            let mut lv = thin_lv("lv-root_restoring", "rp-factory", 5, &[]);
            lv.active = true;
            lv
        };
        // Cut off before the new root was made: begun again.
        let found = assess_with(&lvs(vec![tagged(root())]), None).unwrap();
        assert_eq!(
            (found.start, found.point.as_str()),
            (Start::Begin, "rp-factory")
        );
        assert!(found.stale.is_empty());
        // …unless another point is asked for now: the old tag goes.
        let found = assess_with(&lvs(vec![tagged(root())]), Some("before-upgrade")).unwrap();
        assert_eq!(found.point, "rp-before-upgrade");
        assert_eq!(found.stale, std::slice::from_ref(&to));
        // The new root made: the one it was made from, whatever is asked.
        let found = assess_with(
            &lvs(vec![tagged(root()), restoring()]),
            Some("before-upgrade"),
        )
        .unwrap();
        assert_eq!(
            (found.start, found.point.as_str()),
            (Start::SetAside, "rp-factory")
        );
        assert_eq!(
            names(&found)[0],
            "rename lv-root rp-replaced-20261206-101500"
        );
        // The old root set aside, no lv-root: set aside again, then renamed.
        let kept = tagged(thin_lv("rp-replaced-20261206-100000", "", 4, &[]));
        let found = assess_with(&lvs(vec![kept.clone(), restoring()]), None).unwrap();
        assert_eq!(
            (found.start, found.kept.as_str()),
            (Start::Rename, "rp-replaced-20261206-100000")
        );
        assert_eq!(
            names(&found)[..3],
            [
                "set-aside",
                "rename lv-root_restoring lv-root",
                "restore-boot"
            ]
        );
        assert!(found.in_words().contains("cut off"));
        // The new root is lv-root: /boot and on, GRUB whatever the restore changes.
        let found = assess_with(&lvs(vec![kept.clone(), root()]), None).unwrap();
        assert_eq!(found.start, Start::AfterRoot);
        assert_eq!(names(&found)[..2], ["restore-boot", "install-bootloader"]);
        let last = steps(&found, None, "/dev/sdb2").pop().unwrap();
        assert_eq!(
            last,
            Step::FinishRollback {
                vg: "vgroup".into(),
                kept: "rp-replaced-20261206-100000".into(),
                tags: vec![TAG_ROLLBACK.into(), to],
                boot: "/dev/sdb2".into(),
            }
        );
        // Neither root: nothing to finish with.
        let err = assess_with(&lvs(vec![kept]), None).unwrap_err();
        assert!(err.contains("neither its new root"), "{err}");
    }

    #[test]
    fn tags_left_while_the_disk_was_marked_complete_start_a_new_rollback() {
        let to = format!("{TAG_RESTORE_TO}rp-factory");
        let tagged = |mut lv: Lv| {
            lv.tags = vec![TAG_ROLLBACK.to_string(), to.clone()];
            lv
        };
        let marked = |lvs: &[Lv]| {
            assess(
                &small_config(),
                Some(&complete_vg(100)),
                lvs,
                None,
                NOW,
                true,
            )
        };
        // Cut in its first step before the marker came off: the disk has run
        // since, and `latest` means the newest point now.
        let found = marked(&lvs(vec![tagged(root())])).unwrap();
        assert_eq!(
            (found.start, found.point.as_str()),
            (Start::Begin, "rp-daily-20261205-101500")
        );
        assert_eq!(found.stale, std::slice::from_ref(&to));
        assert_eq!(found.leftover, None);
        // Cut in its last step after the marker was back: done; its tags go
        // first, then a rollback of the root that runs now.
        let done = tagged(thin_lv("rp-replaced-20261206-100000", "", 4, &[]));
        let found = marked(&lvs(vec![done, root()])).unwrap();
        assert_eq!(
            (found.start, found.point.as_str()),
            (Start::Begin, "rp-daily-20261205-101500")
        );
        assert_eq!(
            steps(&found, None, "/dev/sdb2")[0],
            Step::DropTags {
                vg: "vgroup".into(),
                lv: "rp-replaced-20261206-100000".into(),
                tags: vec![TAG_ROLLBACK.into(), to.clone()],
            }
        );
        assert_eq!(
            names(&found)[1..4],
            [
                "begin-rollback",
                "restore-root",
                "rename lv-root rp-replaced-20261206-101500"
            ]
        );
    }
}
