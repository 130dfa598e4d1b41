//! The running system's side of boot counting: `zshield boot-ok`
//! (zshield-boot-ok.service, once the system is up) runs the health checks
//! and marks the boot good, which sets GRUB's count of boot tries back to 0
//! (grub/40_zshield counts them); a failed required check records the failed
//! boot and reboots, so that the count moves on without a person. Backups
//! are only of a boot marked good.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::disk::mounts::is_running_root;
use crate::events::{self, Event};
use crate::layout::{
    mapper_path, GRUB_ENV, TAG_UPGRADE_APPLYING, TAG_UPGRADE_TRIAL, UPGRADE_STAGING,
};
use crate::logging::RUN_DIR;
use crate::lvm::Lvm;
use crate::runner::Cmd;

/// `required/*` must all pass for a boot to be good; `wanted/*` only warn.
pub const HEALTH_DIR: &str = "/etc/zshield/health.d";

/// The unit that runs `zshield boot-ok` once the system is up.
pub const BOOT_OK_UNIT: &str = "zshield-boot-ok.service";

/// Under [`RUN_DIR`] (a tmpfs): this boot was marked good.
const BOOT_GOOD: &str = "boot-good";
/// Under [`RUN_DIR`]: an upgrade was applied in this boot (`zshield upgrade
/// --no-reboot`); its trial is the next boot, not this one.
pub const TRIAL_PENDING: &str = "upgrade-trial-pending";

/// GRUB's variables in the disk's grubenv (grub/40_zshield).
const TRIES_VAR: &str = "zshield_boot_tries";
const FALLBACK_VAR: &str = "zshield_fallback";

/// Where the kernel lists the watchdogs it drives.
const WATCHDOG_CLASS: &str = "/sys/class/watchdog";
/// WDIOF_CARDRESET in a watchdog's bootstatus: it reset the board last time.
const WDIOF_CARDRESET: u32 = 0x20;

/// One health check and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub name: String,
    pub required: bool,
    /// None when it passed; else why not.
    pub failure: Option<String>,
}

/// The checks of `dir`/required and `dir`/wanted: executable files, in name
/// order (hidden files and package managers' leftovers are not checks).
pub fn checks(dir: &Path) -> Result<Vec<(PathBuf, bool)>> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    for (kind, required) in [("required", true), ("wanted", false)] {
        let sub = dir.join(kind);
        let entries = match std::fs::read_dir(&sub) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", sub.display())),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
                let leftover = name.starts_with('.')
                    || name.ends_with('~')
                    || name.contains(".dpkg-")
                    || name.ends_with(".ucf-old");
                !leftover
                    && std::fs::metadata(p)
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .collect();
        paths.sort();
        found.extend(paths.into_iter().map(|p| (p, required)));
    }
    Ok(found)
}

/// Runs every check of `dir`, each killed past `limit`.
pub fn run_checks(dir: &Path, limit: Duration) -> Result<Vec<CheckResult>> {
    let mut results = Vec::new();
    for (path, required) in checks(dir)? {
        let name = format!(
            "{}/{}",
            if required { "required" } else { "wanted" },
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        log::info!("health check {name}");
        let finished = Cmd::new(&path.to_string_lossy())
            .run_limited(limit, |line| log::info!("{name}: {line}"));
        let failure = match finished {
            Ok(f) if f.timed_out => Some(format!("still running after {} s", limit.as_secs())),
            Ok(f) => match f.code {
                Some(0) => None,
                Some(code) => Some(format!("exit status {code}")),
                None => Some("ended by a signal".to_string()),
            },
            Err(e) => Some(format!("{e:#}")),
        };
        match &failure {
            None => log::info!("health check {name}: passed"),
            Some(why) if required => log::error!("health check {name} failed: {why}"),
            Some(why) => log::warn!("health check {name} failed: {why} (wanted, not required)"),
        }
        results.push(CheckResult {
            name,
            required,
            failure,
        });
    }
    Ok(results)
}

/// The boot's verdict from its checks: the failed required ones, if any.
pub fn verdict(results: &[CheckResult]) -> Result<String, String> {
    let failed = |required: bool| -> Vec<String> {
        results
            .iter()
            .filter(|r| r.required == required)
            .filter_map(|r| r.failure.as_ref().map(|why| format!("{} ({why})", r.name)))
            .collect()
    };
    let (required, wanted) = (failed(true), failed(false));
    if !required.is_empty() {
        return Err(format!(
            "required health check failed: {}",
            required.join(", ")
        ));
    }
    let passed = results.iter().filter(|r| r.failure.is_none()).count();
    let mut words = format!("{passed} of {} health checks passed", results.len());
    if !wanted.is_empty() {
        words += &format!("; wanted, not required: {}", wanted.join(", "));
    }
    Ok(words)
}

/// The boot-try state in the disk's grubenv: GRUB's count of boots not
/// marked good, and whether GRUB has started its automatic rollback.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BootTries {
    pub tries: u32,
    pub fallback_started: bool,
}

impl BootTries {
    /// From `grub-editenv FILE list`.
    pub fn parse(list: &str) -> BootTries {
        let mut state = BootTries::default();
        for line in list.lines() {
            match line.split_once('=') {
                Some((TRIES_VAR, v)) => state.tries = v.trim().parse().unwrap_or(0),
                Some((FALLBACK_VAR, v)) => state.fallback_started = v.trim() == "started",
                _ => {}
            }
        }
        state
    }
}

/// The running disk system's GRUB menu.
pub fn disk_grub_cfg() -> PathBuf {
    Path::new("/boot").join("grub/grub.cfg")
}

fn grub_env() -> PathBuf {
    Path::new("/boot").join(GRUB_ENV)
}

/// The boot-try state of the running disk system; None without a grubenv.
pub fn boot_tries() -> Result<Option<BootTries>> {
    let env = grub_env();
    if !env.exists() {
        return Ok(None);
    }
    let list = Cmd::new("grub-editenv")
        .arg(env.as_os_str())
        .arg("list")
        .run()?;
    Ok(Some(BootTries::parse(&list)))
}

/// Whether this boot was marked good (or needs no mark: counting is off).
pub fn boot_marked_good(config: &Config) -> bool {
    config.boot.tries == 0 || marked_good()
}

/// What `zshield boot-ok` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOk {
    /// Not the disk system, or counting is off: nothing to mark.
    NotCounted(String),
    Good(String),
    /// A required check failed: the caller reboots when `reboot` says so.
    Failed {
        detail: String,
        reboot: bool,
    },
}

/// Why this boot is not one that GRUB counts, if it is not: counting is
/// off, or this is not the disk system (the golden card's boots count nothing).
pub fn not_counted(config: &Config) -> Result<Option<String>> {
    if config.boot.tries == 0 {
        return Ok(Some("boot counting is off ([boot] tries = 0)".into()));
    }
    let root = mapper_path(&config.vg, &config.root.name);
    if !Path::new(&root).exists() || !is_running_root(&root)? {
        return Ok(Some(format!(
            "the running root is not {root}: the golden card's boot counts nothing"
        )));
    }
    Ok(None)
}

/// Whether this boot was marked good by its health checks.
pub fn marked_good() -> bool {
    Path::new(RUN_DIR).join(BOOT_GOOD).exists()
}

/// Whether the disk's GRUB menu counts boot tries (grub/40_zshield made it
/// with counting on): only then does a reboot lead anywhere but to the same
/// failed boot.
pub fn menu_counts(grub_cfg: &Path) -> bool {
    std::fs::read_to_string(grub_cfg).is_ok_and(|cfg| cfg.contains(TRIES_VAR))
}

/// `zshield boot-ok`: the health checks of this boot, and their verdict in
/// the disk's grubenv and in the event log.
pub fn boot_ok(config: &Config) -> Result<BootOk> {
    if let Some(why) = not_counted(config)? {
        return Ok(BootOk::NotCounted(why));
    }
    for watchdog in watchdog_resets(Path::new(WATCHDOG_CLASS)) {
        record(
            config,
            &Event::now(
                "boot",
                "after-watchdog-reset",
                format!("the board's watchdog ({watchdog}) reset the unit: the boot before this one hung"),
            ),
        );
    }
    let env = grub_env();
    let before = boot_tries()?.with_context(|| {
        format!(
            "{} is missing: GRUB cannot count this disk's boots; boot with zshield_recovery=latest or reinstall GRUB (grub-install creates it)",
            env.display()
        )
    })?;
    let (trial, applying) = upgrade_in_progress(config)?;
    if let Some(point) = applying {
        // The unit stopped while an upgrade was being applied and GRUB did
        // not roll back (the tries it had used up never reached the disk,
        // or a person chose the entry): not a system to keep.
        let reboot = menu_counts(&disk_grub_cfg());
        if reboot {
            use_up_tries(config)?;
        }
        let detail = format!(
            "an upgrade was being applied when the unit stopped: this boot is not marked good{}",
            if reboot {
                format!(", and the next start rolls back to its restore point {point}")
            } else {
                format!("; the disk's GRUB menu does not count boot tries: roll back to {point} with zshield_recovery=latest")
            }
        );
        record(config, &Event::now("boot", "failed", detail.clone()));
        return Ok(BootOk::Failed { detail, reboot });
    }
    let results = run_checks(
        Path::new(HEALTH_DIR),
        Duration::from_secs(config.boot.check_timeout),
    )?;
    let after_fallback = if before.fallback_started {
        ", after GRUB's automatic rollback"
    } else {
        ""
    };
    match verdict(&results) {
        Ok(words) => {
            reset_tries()?;
            Cmd::new("grub-editenv")
                .arg(env.as_os_str())
                .args(["unset", FALLBACK_VAR])
                .run()?;
            std::fs::create_dir_all(RUN_DIR)?;
            std::fs::write(Path::new(RUN_DIR).join(BOOT_GOOD), "")
                .with_context(|| format!("cannot write {RUN_DIR}/{BOOT_GOOD}"))?;
            let detail = format!("{words}{after_fallback}");
            record(config, &Event::now("boot", "good", detail.clone()));
            let pending = Path::new(RUN_DIR).join(TRIAL_PENDING).exists();
            if let (Some(point), true) = (&trial, pending) {
                log::info!(
                    "the upgrade under the restore point {point} was applied in this boot: its trial is the next boot, after a restart"
                );
            }
            if let (Some(point), false) = (trial, pending) {
                Lvm.lv_del_tag(&config.vg, &point, TAG_UPGRADE_TRIAL)?;
                let committed = format!(
                    "the health checks of its trial boot passed; its restore point {point} is kept"
                );
                log::info!("upgrade committed: {committed}");
                record(config, &Event::now("upgrade", "committed", committed));
            }
            if !pending {
                remove_leftover_staging();
            }
            Ok(BootOk::Good(detail))
        }
        Err(words) => {
            let reboot = menu_counts(&disk_grub_cfg());
            // An upgrade on trial is not tried again: the next start rolls
            // it back.
            let rolls_back = match &trial {
                Some(point) if reboot => {
                    use_up_tries(config)?;
                    format!("; the upgrade on trial is rolled back to its restore point {point} at the next start")
                }
                _ => String::new(),
            };
            let detail = format!(
                "{words}; boot try {} of {}{after_fallback}{rolls_back}{}",
                before.tries.max(1),
                config.boot.tries,
                if reboot {
                    ""
                } else {
                    "; the disk's GRUB menu does not count boot tries (run update-grub): no reboot"
                }
            );
            record(config, &Event::now("boot", "failed", detail.clone()));
            Ok(BootOk::Failed { detail, reboot })
        }
    }
}

/// A bundle unpacked by an upgrade that a rollback brought back with its
/// restore point (called with no upgrade being applied).
fn remove_leftover_staging() {
    let staging = Path::new(UPGRADE_STAGING);
    if staging.exists() {
        match std::fs::remove_dir_all(staging) {
            Ok(()) => {
                log::info!("removed {UPGRADE_STAGING}, left by an upgrade that was rolled back")
            }
            Err(e) => log::warn!("cannot remove {UPGRADE_STAGING}: {e}"),
        }
    }
}

/// The restore points (LVs) of an upgrade on trial and of one being
/// applied, if any.
fn upgrade_in_progress(config: &Config) -> Result<(Option<String>, Option<String>)> {
    let lvs = Lvm.lvs()?;
    let tagged = |tag: &str| {
        lvs.iter()
            .find(|l| l.vg == config.vg && l.has_tag(tag))
            .map(|l| l.name.clone())
    };
    Ok((tagged(TAG_UPGRADE_TRIAL), tagged(TAG_UPGRADE_APPLYING)))
}

/// The number of tries the disk's menu counts up to (grub/40_zshield made
/// it from GRUB_ZSHIELD_BOOT_TRIES), from its text.
fn menu_tries(grub_cfg: &str) -> Option<u32> {
    let test = format!("\"${{{TRIES_VAR}}}\" != ");
    grub_cfg.lines().find_map(|line| {
        let rest = &line[line.find(&test)? + test.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

/// Sets GRUB's count of boot tries to used up: its next start rolls back
/// (grub/40_zshield), as after that many failed boots. The number is the
/// menu's own, which `[boot] tries` may no longer be.
pub fn use_up_tries(config: &Config) -> Result<()> {
    let tries = std::fs::read_to_string(disk_grub_cfg())
        .ok()
        .and_then(|cfg| menu_tries(&cfg))
        .unwrap_or(config.boot.tries);
    Cmd::new("grub-editenv")
        .arg(grub_env().as_os_str())
        .args(["set", &format!("{TRIES_VAR}={tries}")])
        .run()?;
    Cmd::new("grub-editenv")
        .arg(grub_env().as_os_str())
        .args(["unset", FALLBACK_VAR])
        .run()
        .map(drop)
}

/// Sets GRUB's count of boot tries back to none used.
pub fn reset_tries() -> Result<()> {
    Cmd::new("grub-editenv")
        .arg(grub_env().as_os_str())
        .args(["set", &format!("{TRIES_VAR}=0")])
        .run()
        .map(drop)
}

/// The watchdogs under CLASS (as "identity (watchdogN)") whose bootstatus
/// says that they reset the board: the boot before this one hung.
fn watchdog_resets(class: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(class) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let dir = entry.path();
            let status = std::fs::read_to_string(dir.join("bootstatus")).ok()?;
            let status: u32 = status.trim().parse().ok()?;
            (status & WDIOF_CARDRESET != 0).then(|| {
                let identity = std::fs::read_to_string(dir.join("identity")).unwrap_or_default();
                format!(
                    "{} ({})",
                    identity.trim(),
                    entry.file_name().to_string_lossy()
                )
            })
        })
        .collect();
    found.sort();
    found
}

pub(crate) fn record(config: &Config, event: &Event) {
    if let Err(e) = events::record(config, event) {
        log::warn!("cannot add this boot to the event log: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watchdog_that_reset_the_board_is_named() {
        let class = tempfile::tempdir().unwrap();
        for (name, identity, status) in [
            ("watchdog0", "wdat_wdt\n", "32\n"),
            ("watchdog1", "softdog\n", "0\n"),
        ] {
            let dir = class.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("identity"), identity).unwrap();
            std::fs::write(dir.join("bootstatus"), status).unwrap();
        }
        assert_eq!(watchdog_resets(class.path()), vec!["wdat_wdt (watchdog0)"]);
        assert!(watchdog_resets(&class.path().join("none")).is_empty());
    }

    fn script(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn required_checks_decide_wanted_ones_warn_and_slow_ones_fail() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        script(&d.join("required/10-ok"), "echo fine");
        script(&d.join("wanted/20-net"), "exit 3");
        script(&d.join("required/.hidden"), "exit 1");
        script(&d.join("required/30-x.dpkg-old"), "exit 1");
        std::fs::write(d.join("required/40-not-executable"), "exit 1").unwrap();
        let results = run_checks(d, Duration::from_secs(5)).unwrap();
        let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["required/10-ok", "wanted/20-net"]);
        assert_eq!(
            verdict(&results),
            Ok(
                "1 of 2 health checks passed; wanted, not required: wanted/20-net (exit status 3)"
                    .into()
            )
        );

        script(&d.join("required/50-hangs"), "sleep 30");
        let results = run_checks(d, Duration::from_secs(1)).unwrap();
        assert_eq!(
            verdict(&results),
            Err("required health check failed: required/50-hangs (still running after 1 s)".into())
        );
    }

    #[test]
    fn no_checks_is_a_good_boot() {
        let dir = tempfile::tempdir().unwrap();
        let results = run_checks(dir.path(), Duration::from_secs(1)).unwrap();
        assert_eq!(verdict(&results), Ok("0 of 0 health checks passed".into()));
    }

    #[test]
    fn a_failed_boot_reboots_only_when_the_menu_counts() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("grub.cfg");
        assert!(!menu_counts(&cfg));
        std::fs::write(&cfg, "menuentry 'Debian GNU/Linux' {\n}\n").unwrap();
        assert!(!menu_counts(&cfg));
        std::fs::write(
            &cfg,
            "load_env --file \"${zshield_env}\" zshield_boot_tries\n",
        )
        .unwrap();
        assert!(menu_counts(&cfg));
    }

    #[test]
    fn the_menu_says_how_many_tries_it_counts() {
        let cfg = "\tload_env --file \"${zshield_env}\" zshield_boot_tries zshield_fallback\n\tif [ \"${zshield_boot_tries}\" != 5 ]; then\n";
        assert_eq!(menu_tries(cfg), Some(5));
        assert_eq!(menu_tries("menuentry 'Debian' {\n}\n"), None);
    }

    #[test]
    fn the_boot_try_state_reads_from_grub_editenv_list() {
        let list = "saved_entry=0\nzshield_boot_tries=2\nzshield_fallback=started\n";
        assert_eq!(
            BootTries::parse(list),
            BootTries {
                tries: 2,
                fallback_started: true
            }
        );
        assert_eq!(BootTries::parse(""), BootTries::default());
    }
}
