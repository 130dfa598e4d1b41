//! Restore points of the thin layout: thin snapshots of lv-root in its pool,
//! each an LV named `rp-NAME`. What kind each one is, which one a rollback
//! brings back, which ones rotation removes. Pure.

use serde::Serialize;

use crate::logging::utc_timestamp;
use crate::lvm::report::Lv;

/// The LV of restore point NAME is `rp-NAME`.
pub const PREFIX: &str = "rp-";
/// The restore point every factory reset of the thin layout ends with: the
/// system as it left the factory, a named one.
pub const FACTORY_POINT: &str = "factory";
const DAILY: &str = "daily-";
const REPLACED: &str = "replaced-";
/// Longest name given to `zshield backup --name`.
const MAX_NAME: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Taken by the daily backup (or `zshield backup`); rotation removes it.
    Daily,
    /// `zshield backup --name NAME`: only `--remove NAME` removes it.
    Named,
    /// The root a rollback set aside: kept so that the rollback can be
    /// undone, then removed by rotation like a daily one.
    Replaced,
}

impl Kind {
    /// Whether rotation and pool pruning may remove it.
    pub fn automatic(self) -> bool {
        self != Kind::Named
    }

    pub fn word(self) -> &'static str {
        match self {
            Kind::Daily => "daily",
            Kind::Named => "named",
            Kind::Replaced => "replaced",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestorePoint {
    /// What people and `zshield.backup=` call it: the LV name without `rp-`.
    pub name: String,
    pub lv: String,
    pub kind: Kind,
    /// Seconds since the epoch: the time in its name (daily and replaced
    /// ones: a rollback renames the root it sets aside, which keeps the
    /// LV's creation time), else LVM's creation time of the LV.
    pub created: u64,
}

pub fn lv_name(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// `2026-12-06T10:15:00Z` → `20261206-101500`.
fn stamp(secs: u64) -> String {
    let digits: String = utc_timestamp(secs)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    format!("{}-{}", &digits[..8], &digits[8..])
}

/// The name of a daily restore point taken at `now`, unused among `taken`.
pub fn daily_name(now: u64, taken: &[RestorePoint]) -> String {
    unused(format!("{DAILY}{}", stamp(now)), taken)
}

/// The name the root replaced by a rollback at `now` is kept under.
pub fn replaced_name(now: u64, taken: &[RestorePoint]) -> String {
    unused(format!("{REPLACED}{}", stamp(now)), taken)
}

/// `daily-20261206-101500[-2]` → 2026-12-06 10:15:00 UTC in seconds.
fn time_in_name(name: &str) -> Option<u64> {
    let stamp = name
        .strip_prefix(DAILY)
        .or_else(|| name.strip_prefix(REPLACED))?;
    let digits = |range: std::ops::Range<usize>| -> Option<u64> { stamp.get(range)?.parse().ok() };
    if stamp.as_bytes().get(8) != Some(&b'-') {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    if year < 1970 {
        return None;
    }
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Two in the same second get `-2`, `-3`…
fn unused(base: String, taken: &[RestorePoint]) -> String {
    let free = |name: &str| !taken.iter().any(|p| p.name == name);
    if free(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| free(name))
        .expect("some suffix is free")
}

/// A name for `zshield backup --name`: LVM's characters, not one of the
/// automatic kinds' prefixes.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || name.starts_with(['-', '.'])
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
    {
        return Err(format!(
            "invalid restore point name {name:?}: use up to {MAX_NAME} letters, digits, '.', '_', '-', '+', not starting with '-' or '.'"
        ));
    }
    if name.starts_with(DAILY) || name.starts_with(REPLACED) {
        return Err(format!(
            "invalid restore point name {name:?}: names starting with {DAILY:?} or {REPLACED:?} are the automatic ones'"
        ));
    }
    Ok(())
}

fn kind_of(name: &str) -> Kind {
    if name.starts_with(DAILY) {
        Kind::Daily
    } else if name.starts_with(REPLACED) {
        Kind::Replaced
    } else {
        Kind::Named
    }
}

/// The restore points in `vg`, oldest first.
pub fn list(vg: &str, lvs: &[Lv]) -> Vec<RestorePoint> {
    let mut points: Vec<RestorePoint> = lvs
        .iter()
        .filter(|l| l.vg == vg && l.is_thin())
        .filter_map(|l| {
            let name = l.name.strip_prefix(PREFIX)?;
            Some(RestorePoint {
                name: name.to_string(),
                lv: l.name.clone(),
                kind: kind_of(name),
                created: time_in_name(name).unwrap_or(l.created),
            })
        })
        .collect();
    // Two in one second: `-2` before `-10`.
    points.sort_by(|a, b| {
        (a.created, a.name.len(), &a.name).cmp(&(b.created, b.name.len(), &b.name))
    });
    points
}

/// The point a rollback brings back: `wanted` by name (or LV name), else
/// the newest daily or named one (a replaced root is chosen only by name).
pub fn select<'a>(
    points: &'a [RestorePoint],
    wanted: Option<&str>,
) -> Result<&'a RestorePoint, String> {
    match wanted {
        Some(wanted) => points
            .iter()
            .find(|p| p.name == wanted || p.lv == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
                format!(
                    "there is no restore point {wanted:?} (there are: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            }),
        None => points
            .iter()
            .rev()
            .find(|p| p.kind != Kind::Replaced)
            .ok_or_else(|| "there is no restore point".to_string()),
    }
}

/// The disk's GRUB submenu of restore points (grub/40_zshield sources it):
/// one entry each, newest first, that rolls back to it.
pub fn grub_menu(points: &[RestorePoint]) -> String {
    let mut menu = String::from(
        "# Written by zshield after every reset, backup and rollback: the restore points, newest first.\n",
    );
    for p in points.iter().rev() {
        let kind = match p.kind {
            Kind::Replaced => "the root a rollback replaced",
            other => other.word(),
        };
        // Names hold only LVM's characters: nothing to quote.
        menu.push_str(&format!(
            "menuentry 'Roll back to {} ({kind}, {})' --class recovery --id 'zshield-point-{}' {{\n\tzshield_restore_point {}\n}}\n",
            p.name,
            utc_timestamp(p.created),
            p.name,
            p.name
        ));
    }
    if points.is_empty() {
        menu.push_str("menuentry 'No restore points: take one with zshield_backup' --id 'zshield-no-points' {\n\ttrue\n}\n");
    }
    menu
}

/// The automatic points rotation removes so that `keep` automatic ones
/// remain, counting `adding` new ones: the oldest first.
pub fn rotated(points: &[RestorePoint], keep: u32, adding: usize) -> Vec<&RestorePoint> {
    let automatic: Vec<&RestorePoint> = points.iter().filter(|p| p.kind.automatic()).collect();
    let excess = (automatic.len() + adding).saturating_sub(keep as usize);
    automatic.into_iter().take(excess).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::thin_lv;

    fn points(names: &[(&str, u64)]) -> Vec<RestorePoint> {
        let lvs: Vec<Lv> = names
            .iter()
            .map(|(name, t)| thin_lv(&lv_name(name), "lv-root", *t, &[]))
            .collect();
        list("vgroup", &lvs)
    }

    #[test]
    fn names_say_the_kind_and_the_time() {
        // 2026-12-06 10:15:00 UTC.
        let now = 1_796_552_100;
        assert_eq!(daily_name(now, &[]), "daily-20261206-101500");
        let taken = points(&[("daily-20261206-101500", now)]);
        assert_eq!(daily_name(now, &taken), "daily-20261206-101500-2");
        assert_eq!(replaced_name(now, &taken), "replaced-20261206-101500");
        let all = points(&[
            ("before-upgrade", 3),
            ("daily-20261206-101500", 1),
            ("replaced-20261206-101600", 2),
        ]);
        // Oldest first: the named one by LVM's time, the others by their names'.
        let kinds: Vec<Kind> = all.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [Kind::Named, Kind::Daily, Kind::Replaced]);
        assert_eq!(all[0].lv, "rp-before-upgrade");
        check_name("before-upgrade").unwrap();
        for bad in ["", "-x", "a b", "daily-1", "replaced-x", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_time_in_a_name_is_the_points_time() {
        let now = 1_796_552_100;
        assert_eq!(time_in_name(&daily_name(now, &[])), Some(now));
        assert_eq!(time_in_name("replaced-20261206-101500-2"), Some(now));
        assert_eq!(time_in_name("replaced-19700101-000000"), Some(0));
        assert_eq!(time_in_name("daily-2026"), None);
        assert_eq!(time_in_name("daily-00000101-000000"), None);
        assert_eq!(time_in_name("before-upgrade"), None);
        // A rollback renamed the root it set aside: LVM's time is the old
        // root's; the name's is when it was set aside.
        let lvs = [
            thin_lv("rp-daily-20261205-101500", "lv-root", now - 86_400, &[]),
            thin_lv("rp-replaced-20261206-101500", "", 0, &[]),
        ];
        let all = list("vgroup", &lvs);
        assert_eq!(all[1].name, "replaced-20261206-101500");
        assert_eq!(all[1].created, now);
    }

    #[test]
    fn latest_is_the_newest_but_a_replaced_root() {
        let all = points(&[
            ("daily-1", 1),
            ("kept", 2),
            ("daily-3", 3),
            ("replaced-4", 4),
        ]);
        assert_eq!(select(&all, None).unwrap().name, "daily-3");
        assert_eq!(select(&all, Some("kept")).unwrap().name, "kept");
        assert_eq!(
            select(&all, Some("rp-replaced-4")).unwrap().name,
            "replaced-4"
        );
        let err = select(&all, Some("nope")).unwrap_err();
        assert!(
            err.contains("no restore point \"nope\"") && err.contains("kept"),
            "{err}"
        );
        assert!(select(&[], None).is_err());
    }

    #[test]
    fn the_grub_menu_lists_the_newest_first() {
        let menu = grub_menu(&points(&[
            ("factory", 0),
            ("daily-20261206-101500", 1_796_552_100),
        ]));
        let entries: Vec<&str> = menu
            .lines()
            .filter(|l| l.starts_with("menuentry"))
            .collect();
        assert_eq!(
            entries,
            [
                "menuentry 'Roll back to daily-20261206-101500 (daily, 2026-12-06T10:15:00Z)' --class recovery --id 'zshield-point-daily-20261206-101500' {",
                "menuentry 'Roll back to factory (named, 1970-01-01T00:00:00Z)' --class recovery --id 'zshield-point-factory' {",
            ]
        );
        assert!(menu.contains("\tzshield_restore_point factory\n}"));
        assert!(grub_menu(&[]).contains("No restore points"));
    }

    #[test]
    fn rotation_keeps_the_newest_automatic_ones_and_every_named_one() {
        let all = points(&[
            ("daily-1", 1),
            ("kept", 2),
            ("replaced-3", 3),
            ("daily-4", 4),
        ]);
        let names = |v: Vec<&RestorePoint>| v.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(rotated(&all, 2, 1)), ["daily-1", "replaced-3"]);
        assert_eq!(names(rotated(&all, 7, 1)), Vec::<String>::new());
        assert_eq!(names(rotated(&all, 3, 0)), Vec::<String>::new());
    }
}
