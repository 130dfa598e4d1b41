//! The JSON report of one recovery: what was found and planned, each phase
//! and step with its time, what was copied, the hooks, and how it ended.
//! It is written to /run/zshield and, when the target's root is mounted, onto
//! the target (`/var/log/zshield/`), each with a copy of the human log.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::accounts::restrict_to_adm;
use crate::cmdline::Mode;
use crate::inroot::{create_dir_all_in_root, resolve_in_root};
use crate::logging::{now_utc, RUN_DIR, TARGET_LOG_DIR};
use crate::recovery::step::{Plan, Step};
use crate::target::copy::{BlockCopyStats, CopyStats};
use crate::target::provision::HookResult;

/// How a recovery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    Ok,
    /// Nothing was written: refused, or stopped before the first write.
    Refused,
    /// Stopped after a step that writes a disk had started.
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timed {
    pub name: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub number: usize,
    pub name: String,
    pub description: String,
    /// The step's devices, names and sizes.
    pub detail: serde_json::Value,
    pub writes_disk: bool,
    pub seconds: f64,
    pub ok: bool,
}

/// What ran: a recovery in its mode, or a backup (`zshield backup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Recovery(Mode),
    Backup,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Run::Recovery(mode) => mode.fmt(f),
            Run::Backup => f.write_str("backup"),
        }
    }
}

impl Serialize for Run {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The JSON report of one recovery.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub zshield_version: &'static str,
    pub mode: Run,
    pub started: String,
    pub status: Status,
    pub error: Option<String>,
    pub dry_run: bool,
    pub seconds: f64,
    pub phases: Vec<Timed>,
    pub plan: Option<Plan>,
    pub steps: Vec<StepRecord>,
    pub copied_root: Option<CopyStats>,
    pub copied_root_blocks: Option<BlockCopyStats>,
    pub copied_boot: Option<CopyStats>,
    pub copied_boot_blocks: Option<BlockCopyStats>,
    /// The provisioning hooks that ran, in order (a `*factory_test*` hook's
    /// result is the OEM's factory test).
    pub hooks: Vec<HookResult>,
    /// GRUB started this rollback on its own: the boot tries were used up.
    pub fallback: bool,
    #[serde(skip)]
    start: Instant,
}

impl Report {
    pub fn new(mode: Mode, dry_run: bool) -> Report {
        Report::of(Run::Recovery(mode), dry_run)
    }

    /// The record of a backup's steps.
    pub fn backup(dry_run: bool) -> Report {
        Report::of(Run::Backup, dry_run)
    }

    fn of(mode: Run, dry_run: bool) -> Report {
        Report {
            zshield_version: env!("CARGO_PKG_VERSION"),
            mode,
            started: now_utc(),
            status: Status::Running,
            error: None,
            dry_run,
            seconds: 0.0,
            phases: Vec::new(),
            plan: None,
            steps: Vec::new(),
            copied_root: None,
            copied_root_blocks: None,
            copied_boot: None,
            copied_boot_blocks: None,
            hooks: Vec::new(),
            fallback: false,
            start: Instant::now(),
        }
    }

    /// Runs `f` as a named phase, logging and keeping its duration.
    pub fn phase<T>(&mut self, name: &str, f: impl FnOnce(&mut Report) -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let result = f(self);
        let seconds = start.elapsed().as_secs_f64();
        log::info!(
            "phase {name}: {:.1} s{}",
            seconds,
            if result.is_err() { " (failed)" } else { "" }
        );
        self.phases.push(Timed {
            name: name.into(),
            seconds,
        });
        result
    }

    /// Runs one step of `total`: logs it, times it and records it.
    pub fn step<T>(
        &mut self,
        total: usize,
        step: &Step,
        f: impl FnOnce(&mut Report) -> Result<T>,
    ) -> Result<T> {
        let number = self.steps.len() + 1;
        let description = step.to_string();
        log::info!("[{number}/{total}] {description}");
        let start = Instant::now();
        let result = f(self);
        let seconds = start.elapsed().as_secs_f64();
        log::debug!("step {number} took {seconds:.2} s");
        let failed = result.is_err();
        self.steps.push(StepRecord {
            number,
            name: step.name(),
            description: description.clone(),
            detail: serde_json::to_value(step).unwrap_or_default(),
            writes_disk: step.writes_disk(),
            seconds,
            ok: !failed,
        });
        result.with_context(|| format!("step {number}/{total} ({description}) failed"))
    }

    /// How the run ended, and the error line when it did not end well.
    pub fn conclude(&mut self, status: Status, error: Option<String>) {
        self.status = status;
        self.error = error;
    }

    /// The automatic mode's verdict, one unmistakable block for the factory
    /// line: PASS or FAIL, the hook that failed or the error, where the
    /// report is (`report`).
    pub fn verdict(&self, report: &Path) -> Vec<String> {
        let rule = "=".repeat(72);
        let failed_hook = self.hooks.iter().find(|h| !h.passed());
        let factory_test = self.hooks.iter().find(|h| h.factory_test);
        let verdict = match (self.status, failed_hook, factory_test) {
            (Status::Ok, _, Some(test)) => {
                format!(
                    "FACTORY TEST: PASS ({} in {:.1} s)",
                    test.name, test.seconds
                )
            }
            (Status::Ok, _, None) => {
                "FACTORY TEST: PASS (provisioned; the golden has no factory test hook)".into()
            }
            (_, Some(hook), _) => format!(
                "FACTORY TEST: FAIL ({} {})",
                hook.name,
                match (hook.exit_code, hook.timed_out) {
                    (_, true) => "was killed at its time limit".to_string(),
                    (Some(code), _) => format!("exited with {code}"),
                    (None, _) => "was killed".to_string(),
                }
            ),
            _ => "FACTORY TEST: FAIL (the system was not provisioned)".into(),
        };
        let mut lines = vec![rule.clone(), verdict];
        if let (Some(error), None) = (&self.error, failed_hook) {
            lines.push(error.clone());
        }
        lines.push(format!(
            "report: {} here, and in /{TARGET_LOG_DIR} on the disk's system when it got that far",
            report.display()
        ));
        lines.push(rule);
        lines
    }

    /// The file name stem of this run's files: `20261122T030405Z-default`.
    pub fn stem(&self) -> String {
        format!("{}-{}", self.started.replace(['-', ':'], ""), self.mode)
    }

    /// Writes `<stem>.json` and a copy of the human log into `dir`, a
    /// directory of the system whose root is `root` (for its group `adm`).
    pub fn write(&mut self, dir: &Path, root: &Path) -> Result<PathBuf> {
        self.seconds = self.start.elapsed().as_secs_f64();
        // Resolved as that system sees it: on the target, a symlink in its
        // /var must not lead the report into the initramfs.
        let dir = dir
            .strip_prefix(root)
            .with_context(|| format!("{} is not in {}", dir.display(), root.display()))?;
        create_dir_all_in_root(root, dir)?;
        let json = resolve_in_root(root, dir.join(format!("{}.json", self.stem())))?;
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&json, text).with_context(|| format!("cannot write {}", json.display()))?;
        restrict_to_adm(&json, root)?;
        let log = Path::new(RUN_DIR).join("zshield.log");
        let log_copy = resolve_in_root(root, dir.join(format!("{}.log", self.stem())))?;
        if log.exists() && log != log_copy {
            log::logger().flush();
            std::fs::copy(&log, &log_copy)
                .with_context(|| format!("cannot write {}", log_copy.display()))?;
            restrict_to_adm(&log_copy, root)?;
        }
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_files_are_named_by_time_and_mode() {
        let mut r = Report::new(Mode::Default, false);
        r.started = "2026-11-22T03:04:05Z".into();
        assert_eq!(r.stem(), "20261122T030405Z-default");
        let dir = tempfile::tempdir().unwrap();
        let json = r.write(dir.path(), dir.path()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&json).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "{mode:o}");
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(value["mode"], "default");
        assert_eq!(value["status"], "running");
    }

    #[test]
    fn the_report_on_the_target_stays_in_the_target() {
        let (tmp, host) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let root = tmp.path();
        std::os::unix::fs::symlink(host.path(), root.join("var")).unwrap();
        let mut r = Report::new(Mode::Default, false);
        let json = r.write(&root.join(TARGET_LOG_DIR), root).unwrap();
        let inside = root.join(host.path().strip_prefix("/").unwrap());
        assert_eq!(json.parent().unwrap(), inside.join("log/zshield"));
        assert!(json.is_file());
        assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_verdict_says_pass_or_fail_and_which_hook() {
        let hook = |name: &str, exit_code: Option<i32>, timed_out: bool| HookResult {
            name: name.into(),
            exit_code,
            timed_out,
            seconds: 1.25,
            factory_test: name.contains("factory_test"),
            output_tail: Vec::new(),
        };
        let report = Path::new("/run/zshield/x-auto.json");
        let mut r = Report::new(Mode::Auto, false);
        r.hooks = vec![
            hook("10_a.sh", Some(0), false),
            hook("90_factory_test.sh", Some(0), false),
        ];
        r.conclude(Status::Ok, None);
        let lines = r.verdict(report);
        assert_eq!(lines[1], "FACTORY TEST: PASS (90_factory_test.sh in 1.2 s)");
        assert!(
            lines[2].starts_with("report: /run/zshield/x-auto.json here"),
            "{lines:?}"
        );
        assert_eq!(lines.first(), lines.last());

        r.hooks[1] = hook("90_factory_test.sh", Some(3), false);
        r.conclude(
            Status::Failed,
            Some("hook 90_factory_test.sh failed".into()),
        );
        assert_eq!(
            r.verdict(report)[1],
            "FACTORY TEST: FAIL (90_factory_test.sh exited with 3)"
        );
        r.hooks[1] = hook("90_factory_test.sh", None, true);
        assert!(r.verdict(report)[1].ends_with("was killed at its time limit)"));

        r.hooks.clear();
        r.conclude(Status::Refused, Some("target /dev/sdb holds ntfs".into()));
        let lines = r.verdict(report);
        assert_eq!(
            lines[1],
            "FACTORY TEST: FAIL (the system was not provisioned)"
        );
        assert_eq!(lines[2], "target /dev/sdb holds ntfs");
    }
}
