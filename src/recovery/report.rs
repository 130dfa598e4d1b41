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
use crate::logging::{now_utc, RUN_DIR};
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

/// The JSON report of one recovery.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub zshield_version: &'static str,
    pub mode: Mode,
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
    #[serde(skip)]
    start: Instant,
}

impl Report {
    pub fn new(mode: Mode, dry_run: bool) -> Report {
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

    /// The file name stem of this run's files: `20261122T030405Z-default`.
    pub fn stem(&self) -> String {
        format!("{}-{}", self.started.replace(['-', ':'], ""), self.mode)
    }

    /// Writes `<stem>.json` and a copy of the human log into `dir`, a
    /// directory of the system whose root is `root` (for its group `adm`).
    pub fn write(&mut self, dir: &Path, root: &Path) -> Result<PathBuf> {
        self.seconds = self.start.elapsed().as_secs_f64();
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let json = dir.join(format!("{}.json", self.stem()));
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&json, text).with_context(|| format!("cannot write {}", json.display()))?;
        restrict_to_adm(&json, root)?;
        let log = Path::new(RUN_DIR).join("zshield.log");
        let log_copy = dir.join(format!("{}.log", self.stem()));
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
}
