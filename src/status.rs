//! `zshield status`: the layout and the state of the backup, for a person or
//! (with `--json`) for monitoring. Unhealthy (a non-zero exit) when there is no
//! valid backup younger than two days.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::Config;
use crate::events::{self, Event};
use crate::health;
use crate::layout::{
    current_backup, TAG_COMPLETE, TAG_LAYOUT, TAG_ROLLBACK, TAG_UPGRADE_APPLYING, TAG_UPGRADE_TRIAL,
};
use crate::logging::utc_timestamp;
use crate::lvm::report::{Lv, Vg};
use crate::points::{self, Kind};
use crate::units::human;

/// A backup older than this is a problem.
pub const MAX_AGE_SECS: u64 = 2 * 24 * 3600;
/// COW use above this is worth a warning: at 100 % the backup is lost.
pub const COW_WARNING_PERCENT: f64 = 80.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LvStatus {
    pub name: String,
    pub size: u64,
    pub attr: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupStatus {
    pub name: String,
    pub created: String,
    pub age_seconds: u64,
    pub size: u64,
    /// COW space used, in percent.
    pub cow_percent: Option<f64>,
    pub valid: bool,
    pub merge_pending: bool,
}

/// A restore point of the thin layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointStatus {
    pub name: String,
    pub lv: String,
    pub kind: Kind,
    pub created: String,
    pub age_seconds: u64,
}

/// The thin layout's pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolStatus {
    pub name: String,
    pub size: u64,
    pub data_percent: Option<f64>,
    pub metadata_percent: Option<f64>,
    /// `[pool] threshold`: above it, a problem.
    pub threshold: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub vg: String,
    pub vg_size: u64,
    pub vg_free: u64,
    pub layout_complete: bool,
    pub volumes: Vec<LvStatus>,
    /// The classic layout's one backup.
    pub backup: Option<BackupStatus>,
    /// The thin layout's pool and restore points, oldest first.
    pub pool: Option<PoolStatus>,
    pub restore_points: Vec<PointStatus>,
    pub healthy: bool,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// The last events of the event log, oldest first.
    pub events: Vec<Event>,
    /// GRUB's boot counting; None when it is off or not this system's.
    pub boot: Option<BootStatus>,
    /// An upgrade being applied or on trial (`zshield upgrade`).
    pub upgrade: Option<UpgradeStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpgradeStatus {
    /// Its restore point.
    pub point: String,
    /// `applying` or `on-trial`.
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootStatus {
    /// Boots since the last one marked good, as GRUB counted them.
    pub tries_used: u32,
    /// `[boot] tries`: GRUB rolls back when they are used up.
    pub tries: u32,
    /// GRUB's automatic rollback started, and no boot was good since.
    pub fallback_started: bool,
    /// This boot passed its health checks (`zshield boot-ok`).
    pub marked_good: bool,
}

/// How many events `zshield status` shows.
const SHOWN_EVENTS: usize = 8;

pub fn assess(config: &Config, vg: Option<&Vg>, lvs: &[Lv], now: u64) -> Status {
    let name = &config.vg;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let vg = vg.filter(|v| v.has_tag(TAG_LAYOUT));
    let layout_complete = vg.is_some_and(|v| v.has_tag(TAG_COMPLETE));
    match vg {
        None => problems.push(format!(
            "not a zshield system: no volume group {name} made by zshield"
        )),
        Some(_) if !layout_complete => problems.push(format!(
            "the zshield layout in VG {name} is incomplete (a factory reset was cut off)"
        )),
        Some(_) => {}
    }
    let ours: Vec<&Lv> = lvs.iter().filter(|l| l.vg == *name).collect();
    let root = ours.iter().find(|l| l.name == config.root.name);
    let thin_pool = root
        .filter(|r| r.is_thin())
        .and_then(|r| ours.iter().find(|l| l.name == r.pool_lv));
    let pool = thin_pool.map(|p| PoolStatus {
        name: format!("{name}/{}", p.name),
        size: p.size,
        data_percent: p.data_percent,
        metadata_percent: p.metadata_percent,
        threshold: config.pool.threshold,
    });
    let restore_points: Vec<PointStatus> = points::list(name, lvs)
        .into_iter()
        .map(|p| PointStatus {
            created: utc_timestamp(p.created),
            age_seconds: now.saturating_sub(p.created),
            name: p.name,
            lv: p.lv,
            kind: p.kind,
        })
        .collect();
    if let (Some(pool), true) = (&pool, vg.is_some()) {
        thin_problems(pool, &restore_points, &mut problems);
    }
    if vg.is_some() && root.is_none() {
        problems.push(format!(
            "{name}/{} does not exist: is a rollback unfinished? Boot with zshield_recovery=latest, or reset",
            config.root.name
        ));
    }
    if let Some(lv) = ours.iter().find(|l| l.is_thin() && l.has_tag(TAG_ROLLBACK)) {
        warnings.push(format!(
            "{name}/{} carries the tag of a rollback that was not finished: boot with zshield_recovery=latest to finish it (the next backup drops the tag when the rollback changed nothing yet or did all but that)",
            lv.name
        ));
    }
    let backup = current_backup(config, lvs).map(|snap| BackupStatus {
        name: format!("{name}/{}", snap.name),
        created: utc_timestamp(snap.created),
        age_seconds: now.saturating_sub(snap.created),
        size: snap.size,
        cow_percent: snap.snap_percent,
        valid: snap.is_snapshot() && !snap.is_invalid_snapshot(),
        merge_pending: snap.is_merging() || root.is_some_and(|r| r.is_merging()),
    });
    if vg.is_some() && root.is_some() && pool.is_none() {
        let snap = format!("{name}/{}", config.snapshot.name);
        match &backup {
            None => problems.push(format!("there is no backup: {snap} does not exist")),
            Some(b) if !b.valid => problems.push(format!(
                "the backup {snap} is invalid (its COW space overflowed): take a new one with zshield_backup"
            )),
            Some(b) if b.age_seconds > MAX_AGE_SECS => problems.push(format!(
                "the backup {snap} is {} hours old (taken {}): is the zshield-backup.timer running?",
                b.age_seconds / 3600,
                b.created
            )),
            Some(_) => {}
        }
        if let Some(b) = &backup {
            if b.merge_pending {
                warnings.push(format!(
                    "a merge of {snap} into {name}/{} is pending: it finishes on the next activation",
                    config.root.name
                ));
            }
            if let Some(p) = b.cow_percent.filter(|p| *p > COW_WARNING_PERCENT) {
                warnings.push(format!(
                    "the backup {snap} has used {p:.1}% of its COW space: at 100% it becomes invalid; take a new backup or make [snapshot] size larger"
                ));
            }
        }
    }
    Status {
        vg: name.clone(),
        vg_size: vg.map_or(0, |v| v.size),
        vg_free: vg.map_or(0, |v| v.free_count * v.extent_size),
        layout_complete,
        volumes: ours
            .iter()
            .map(|l| LvStatus {
                name: l.name.clone(),
                size: l.size,
                attr: l.attr.clone(),
                tags: l.tags.clone(),
            })
            .collect(),
        backup,
        pool,
        restore_points,
        healthy: problems.is_empty(),
        problems,
        warnings,
        events: Vec::new(),
        boot: None,
        upgrade: upgrade_status(&ours),
    }
}

fn upgrade_status(lvs: &[&Lv]) -> Option<UpgradeStatus> {
    lvs.iter().find_map(|l| {
        let state = if l.has_tag(TAG_UPGRADE_APPLYING) {
            "applying"
        } else if l.has_tag(TAG_UPGRADE_TRIAL) {
            "on-trial"
        } else {
            return None;
        };
        Some(UpgradeStatus {
            point: l.name.clone(),
            state,
        })
    })
}

/// What is wrong with a thin layout: a pool at its threshold, no restore
/// point of the last two days.
fn thin_problems(pool: &PoolStatus, points: &[PointStatus], problems: &mut Vec<String>) {
    for (what, used) in [
        ("data", pool.data_percent),
        ("metadata", pool.metadata_percent),
    ] {
        match used {
            Some(p) if p >= f64::from(pool.threshold) => problems.push(format!(
                "the thin pool {} has used {p:.1}% of its {what}, at or above its threshold of {}%: the next backup removes automatic restore points; remove named ones or give the pool room (lvextend) before it fills",
                pool.name, pool.threshold
            )),
            Some(_) => {}
            None => problems.push(format!(
                "LVM reports no {what} use for the thin pool {} (is it active?)",
                pool.name
            )),
        }
    }
    let newest = points.iter().rev().find(|p| p.kind != Kind::Replaced);
    match newest {
        None => problems.push("there is no restore point: take one with zshield_backup".into()),
        Some(p) if p.age_seconds > MAX_AGE_SECS => problems.push(format!(
            "the newest restore point {} is {} hours old (taken {}): is the zshield-backup.timer running?",
            p.name,
            p.age_seconds / 3600,
            p.created
        )),
        Some(_) => {}
    }
}

/// Reads the VG and its LVs and assesses them.
pub fn read(config_path: &std::path::Path) -> anyhow::Result<Status> {
    let config = Config::load(config_path)?;
    let lvm = crate::lvm::Lvm;
    let vg = lvm.vgs()?.into_iter().find(|v| v.name == config.vg);
    let lvs = lvm.lvs()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut status = assess(&config, vg.as_ref(), &lvs, now);
    if let Some(volume) = config.events_volume() {
        match events::last(std::path::Path::new(&volume.mount), SHOWN_EVENTS) {
            Ok(events) => status.events = events,
            Err(e) => status
                .warnings
                .push(format!("cannot read the event log: {e:#}")),
        }
    }
    if config.boot.tries > 0 {
        match health::boot_tries() {
            Ok(Some(tries)) => {
                status.boot = Some(BootStatus {
                    tries_used: tries.tries,
                    tries: config.boot.tries,
                    fallback_started: tries.fallback_started,
                    marked_good: health::boot_marked_good(&config),
                })
            }
            Ok(None) => {}
            Err(e) => status
                .warnings
                .push(format!("cannot read GRUB's boot tries: {e:#}")),
        }
    }
    Ok(status)
}

/// The status as a person reads it.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let layout = if s.layout_complete {
        "complete zshield layout"
    } else {
        "no complete zshield layout"
    };
    let _ = writeln!(
        out,
        "VG {}: {layout}, {}, {} free",
        s.vg,
        human(s.vg_size),
        human(s.vg_free)
    );
    for lv in &s.volumes {
        let line = format!(
            "  {:<12} {:>10}  {}  {}",
            lv.name,
            human(lv.size),
            lv.attr,
            lv.tags.join(",")
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if let Some(p) = &s.pool {
        let percent = |p: Option<f64>| p.map_or("?".to_string(), |p| format!("{p:.1}%"));
        let _ = writeln!(
            out,
            "pool: {} of {}, data {} used, metadata {} used (threshold {}%)",
            p.name,
            human(p.size),
            percent(p.data_percent),
            percent(p.metadata_percent),
            p.threshold
        );
        for r in &s.restore_points {
            let _ = writeln!(
                out,
                "restore point: {} ({}) taken {} ({} h ago)",
                r.name,
                r.kind.word(),
                r.created,
                r.age_seconds / 3600
            );
        }
        if s.restore_points.is_empty() {
            out.push_str("restore point: none\n");
        }
        if let Some(u) = &s.upgrade {
            let what = if u.state == "applying" {
                "being applied (a restart now rolls back to it)"
            } else {
                "on trial: the next boot marked good commits it, a failed one rolls back to it"
            };
            let _ = writeln!(out, "upgrade: under the restore point {}, {what}", u.point);
        }
    }
    match &s.backup {
        _ if s.pool.is_some() => {}
        Some(b) => {
            let _ = writeln!(
                out,
                "backup: {} taken {} ({} h ago), {}, COW {} used, {}{}",
                b.name,
                b.created,
                b.age_seconds / 3600,
                human(b.size),
                b.cow_percent
                    .map_or("?".to_string(), |p| format!("{p:.1}%")),
                if b.valid { "valid" } else { "INVALID" },
                if b.merge_pending {
                    ", merge pending"
                } else {
                    ""
                }
            );
        }
        None => out.push_str("backup: none\n"),
    }
    if let Some(b) = &s.boot {
        let _ = writeln!(
            out,
            "boot: {}; {} of {} tries used since the last good boot{}",
            if b.marked_good {
                "this boot is marked good"
            } else {
                "this boot is NOT marked good (yet)"
            },
            b.tries_used,
            b.tries,
            if b.fallback_started {
                "; GRUB rolled back on its own after failed boots"
            } else {
                ""
            }
        );
    }
    for e in &s.events {
        let _ = writeln!(
            out,
            "event: {} {} {}: {}",
            e.time, e.event, e.status, e.detail
        );
    }
    for w in &s.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for p in &s.problems {
        let _ = writeln!(out, "problem: {p}");
    }
    let _ = writeln!(out, "{}", if s.healthy { "healthy" } else { "UNHEALTHY" });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const NOW: u64 = 1_795_316_645;

    fn vg() -> Vg {
        fixtures::complete_vg(10)
    }

    fn lvs(snap_attr: &str, age: u64, percent: f64) -> Vec<Lv> {
        let lv = |name: &str, attr: &str, origin: &str, pct| Lv {
            created: NOW - age,
            snap_percent: pct,
            ..fixtures::lv(name, attr, 512, origin, &[])
        };
        vec![
            lv("lv-root", "owi-aos---", "", None),
            lv("snap0", snap_attr, "lv-root", Some(percent)),
        ]
    }

    fn status(lvs: &[Lv]) -> Status {
        assess(&fixtures::small_config(), Some(&vg()), lvs, NOW)
    }

    #[test]
    fn a_fresh_valid_backup_is_healthy() {
        let s = status(&lvs("swi-a-s---", 3600, 12.5));
        assert!(s.healthy, "{s:?}");
        let b = s.backup.as_ref().unwrap();
        assert_eq!(
            (b.age_seconds, b.cow_percent, b.valid),
            (3600, Some(12.5), true)
        );
        assert!(render(&s).contains("COW 12.5% used, valid"));
    }

    #[test]
    fn an_old_invalid_or_missing_backup_is_a_problem() {
        let s = status(&lvs("swi-a-s---", 3 * 24 * 3600, 1.0));
        assert!(
            !s.healthy && s.problems[0].contains("72 hours old"),
            "{s:?}"
        );
        let s = status(&lvs("swi-I-s---", 60, 100.0));
        assert!(!s.healthy && s.problems[0].contains("invalid"), "{s:?}");
        let s = status(&lvs("swi-a-s---", 60, 1.0)[..1]);
        assert!(!s.healthy && s.problems[0].contains("no backup"), "{s:?}");
        let s = assess(&fixtures::small_config(), None, &[], NOW);
        assert!(!s.healthy && s.problems[0].contains("not a zshield system"));
    }

    #[test]
    fn a_thin_layout_lists_its_restore_points_and_watches_its_pool() {
        let at = |name: &str, age: u64| fixtures::thin_lv(name, "lv-root", NOW - age, &[]);
        let mut root = fixtures::thin_lv("lv-root", "", 0, &[]);
        root.open = true;
        let mut lvs = vec![
            fixtures::thin_pool(40.0, 10.0),
            root,
            at("rp-factory", 9 * 24 * 3600),
            at("rp-daily-20261206-101500", 3600),
        ];
        let s = status(&lvs);
        assert!(s.healthy, "{s:?}");
        assert!(s.backup.is_none());
        let names: Vec<&str> = s.restore_points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["factory", "daily-20261206-101500"]);
        let text = render(&s);
        assert!(
            text.contains("data 40.0% used, metadata 10.0% used (threshold 80%)")
                && text.contains("restore point: factory (named)"),
            "{text}"
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""kind":"daily""#), "{json}");
        lvs[0].data_percent = Some(81.0);
        let s = status(&lvs);
        assert!(
            !s.healthy && s.problems[0].contains("81.0% of its data"),
            "{s:?}"
        );
        lvs[0].data_percent = Some(40.0);
        lvs.pop();
        let s = status(&lvs);
        assert!(
            !s.healthy && s.problems[0].contains("216 hours old"),
            "{s:?}"
        );
    }

    #[test]
    fn warns_of_a_filling_cow_and_a_pending_merge() {
        let s = status(&lvs("swi-a-s---", 60, 85.0));
        assert!(s.healthy && s.warnings[0].contains("85.0%"), "{s:?}");
        let s = status(&lvs("Swi-a-s---", 60, 1.0));
        assert!(s.warnings[0].contains("merge"), "{s:?}");
    }
}
