//! What the operator reads: console lines, the human log and the JSON report.
//!
//! Console lines start with `zshield: ` (errors with `zshield: error: `) so that
//! they stand out among the boot messages; the log file also keeps the
//! commands run and what they said, with times.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::copy::CopyStats;
use crate::plan::Plan;

/// Where the log lives while the recovery runs: /run survives switch_root.
pub const RUN_DIR: &str = "/run/zshield";
/// Where it stays on the restored system.
pub const TARGET_LOG_DIR: &str = "var/log/zshield";

struct Logger {
    start: Instant,
    file: Mutex<Option<File>>,
    verbose: bool,
}

static LOGGER: std::sync::OnceLock<Logger> = std::sync::OnceLock::new();

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let message = record.args().to_string();
        let console = match record.level() {
            log::Level::Error => Some(format!("zshield: error: {message}")),
            log::Level::Warn => Some(format!("zshield: warning: {message}")),
            log::Level::Info => Some(format!("zshield: {message}")),
            _ if self.verbose => Some(format!("zshield: {message}")),
            _ => None,
        };
        if let Some(line) = console {
            eprintln!("{line}");
        }
        if let Some(file) = self.file.lock().ok().as_mut().and_then(|f| f.as_mut()) {
            let t = self.start.elapsed().as_secs_f64();
            let _ = writeln!(file, "[{t:9.3}] {:<5} {message}", record.level());
        }
    }

    fn flush(&self) {
        if let Some(file) = self.file.lock().ok().as_mut().and_then(|f| f.as_mut()) {
            let _ = file.sync_all();
        }
    }
}

/// Logs to the console and, when it can be created, to `log_file`.
pub fn init_logging(log_file: Option<&Path>, verbose: bool) {
    let file = log_file.and_then(|path| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ok()?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    let logger = LOGGER.get_or_init(|| Logger {
        start: Instant::now(),
        file: Mutex::new(file),
        verbose,
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

/// Keeps the kernel's routine messages off the console while zshield speaks
/// (they cut through its lines); errors still show. Undone on drop.
pub struct QuietConsole {
    previous: Option<String>,
}

const PRINTK: &str = "/proc/sys/kernel/printk";

impl QuietConsole {
    pub fn begin() -> QuietConsole {
        let previous = std::fs::read_to_string(PRINTK)
            .ok()
            .and_then(|s| s.split_whitespace().next().map(String::from));
        if previous.is_some() {
            // Console log level 4: only KERN_ERR and worse reach the console.
            let _ = std::fs::write(PRINTK, "4");
        }
        QuietConsole { previous }
    }
}

impl Drop for QuietConsole {
    fn drop(&mut self) {
        if let Some(level) = &self.previous {
            let _ = std::fs::write(PRINTK, level);
        }
    }
}

/// Seconds since the Unix epoch as `2026-11-22T03:04:05Z`.
pub fn utc_timestamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn now_utc() -> String {
    utc_timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
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
    pub mode: String,
    pub started: String,
    /// "ok", "refused" (nothing written) or "failed".
    pub status: String,
    pub error: Option<String>,
    pub dry_run: bool,
    pub seconds: f64,
    pub phases: Vec<Timed>,
    pub plan: Option<Plan>,
    /// What a rollback found and did (`latest`).
    pub rollback: Option<serde_json::Value>,
    pub steps: Vec<StepRecord>,
    pub copied_root: Option<CopyStats>,
    pub copied_boot: Option<CopyStats>,
    /// The provisioning hooks that ran, in order (a `*factory_test*` hook's
    /// result is the OEM's factory test).
    pub hooks: Vec<crate::provision::HookResult>,
    #[serde(skip)]
    start: Instant,
}

impl Report {
    pub fn new(mode: &str, dry_run: bool) -> Report {
        Report {
            zshield_version: env!("CARGO_PKG_VERSION"),
            mode: mode.to_string(),
            started: now_utc(),
            status: "running".into(),
            error: None,
            dry_run,
            seconds: 0.0,
            phases: Vec::new(),
            plan: None,
            rollback: None,
            steps: Vec::new(),
            copied_root: None,
            copied_boot: None,
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
        (name, description, detail): (String, String, serde_json::Value),
        writes_disk: bool,
        f: impl FnOnce(&mut Report) -> Result<T>,
    ) -> Result<T> {
        let number = self.steps.len() + 1;
        log::info!("[{number}/{total}] {description}");
        let start = Instant::now();
        let result = f(self);
        let seconds = start.elapsed().as_secs_f64();
        log::debug!("step {number} took {seconds:.2} s");
        let failed = result.is_err();
        self.steps.push(StepRecord {
            number,
            name,
            description: description.clone(),
            detail,
            writes_disk,
            seconds,
            ok: !failed,
        });
        result.with_context(|| format!("step {number}/{total} ({description}) failed"))
    }

    /// Whether a step that writes to a disk has started.
    pub fn touched_disks(&self) -> bool {
        self.steps.iter().any(|s| s.writes_disk)
    }

    /// The file name stem of this run's files: `20261122T030405Z-default`.
    pub fn stem(&self) -> String {
        format!("{}-{}", self.started.replace(['-', ':'], ""), self.mode)
    }

    /// Writes `<stem>.json` and a copy of the human log into `dir`.
    pub fn write(&mut self, dir: &Path) -> Result<PathBuf> {
        self.seconds = self.start.elapsed().as_secs_f64();
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let json = dir.join(format!("{}.json", self.stem()));
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&json, text).with_context(|| format!("cannot write {}", json.display()))?;
        let log = Path::new(RUN_DIR).join("zshield.log");
        let log_copy = dir.join(format!("{}.log", self.stem()));
        if log.exists() && log != log_copy {
            log::logger().flush();
            std::fs::copy(&log, &log_copy)
                .with_context(|| format!("cannot write {}", log_copy.display()))?;
        }
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_795_316_645), "2026-11-22T03:04:05Z");
    }

    #[test]
    fn report_files_are_named_by_time_and_mode() {
        let mut r = Report::new("default", false);
        r.started = "2026-11-22T03:04:05Z".into();
        assert_eq!(r.stem(), "20261122T030405Z-default");
        let dir = std::env::temp_dir().join(format!("zshield-report-{}", std::process::id()));
        let json = r.write(&dir).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(value["mode"], "default");
        assert_eq!(value["status"], "running");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
