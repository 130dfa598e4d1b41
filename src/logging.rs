//! What the operator reads as it happens: console lines and the human log.
//!
//! Console lines start with `zshield: ` (errors with `zshield: error: `) so that
//! they stand out among the boot messages; the log file also keeps the
//! commands run and what they said, with times.
//!
//! In the initramfs standard error is /dev/console (the recovery unit has
//! `StandardOutput=tty`): lines are out as soon as they are written, not queued
//! in the journal when the power goes. /dev/console is only the last of the
//! kernel's consoles (`console=tty0 console=ttyS0`: the serial line), so
//! zshield writes to the others (the screen) itself, and waits for all of them
//! to drain before the machine goes down.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the log lives while the recovery runs: /run survives switch_root.
pub const RUN_DIR: &str = "/run/zshield";
/// Where it stays on the restored system.
pub const TARGET_LOG_DIR: &str = "var/log/zshield";

struct Logger {
    start: Instant,
    file: Mutex<Option<File>>,
    /// Every console of the kernel, when zshield writes to them itself.
    consoles: Mutex<Vec<File>>,
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
            _ => None,
        };
        if let Some(line) = console {
            eprintln!("{line}");
            if let Ok(mut consoles) = self.consoles.lock() {
                for console in consoles.iter_mut() {
                    let _ = writeln!(console, "{line}");
                }
            }
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
        if let Ok(consoles) = self.consoles.lock() {
            // Until the last byte has left the serial line, not only the buffer.
            let _ = nix::sys::termios::tcdrain(std::io::stderr());
            for console in consoles.iter() {
                let _ = nix::sys::termios::tcdrain(console);
            }
        }
    }
}

/// Where console lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// Standard error only (a terminal, a service's journal).
    Stderr,
    /// Standard error, which is /dev/console, and every other console of the
    /// kernel: the initramfs, where the operator reads them.
    Every,
}

/// Logs to the console and, when it can be created, to `log_file`. The first
/// call wins.
pub fn init_logging(log_file: Option<&Path>, console: Console) {
    let file = log_file.and_then(|path| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ok()?;
        }
        // It holds every hook's output: root and adm only.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .ok()?;
        let _ = crate::accounts::restrict_to_adm(path, Path::new("/"));
        Some(file)
    });
    let consoles = match console {
        Console::Stderr => Vec::new(),
        Console::Every => other_consoles(),
    };
    let logger = LOGGER.get_or_init(|| Logger {
        start: Instant::now(),
        file: Mutex::new(file),
        consoles: Mutex::new(consoles),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

/// The kernel's consoles but the last, which /dev/console is (the kernel lists
/// them in /sys/class/tty/console/active, /dev/console's last).
fn other_consoles() -> Vec<File> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    // Opened without waiting for a modem's carrier, then written to blocking,
    // so that a full buffer delays a line rather than drops it.
    let open = |path: &str| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
            .open(path)
            .ok()?;
        fcntl(&file, FcntlArg::F_SETFL(OFlag::empty())).ok()?;
        Some(file)
    };
    let active = std::fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
    let mut names: Vec<&str> = active.split_whitespace().collect();
    names.pop();
    names
        .into_iter()
        .filter_map(|name| open(&format!("/dev/{name}")))
        .collect()
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

/// Logs progress every 10% or every 10 s, whichever comes first.
pub struct Meter<'a> {
    what: &'a str,
    last_percent: u32,
    last_time: Instant,
}

impl<'a> Meter<'a> {
    pub fn new(what: &'a str) -> Meter<'a> {
        Meter {
            what,
            last_percent: 0,
            last_time: Instant::now(),
        }
    }

    /// `done` of `total` bytes since `started`, with the speed.
    pub fn update_rate(&mut self, done: u64, total: u64, started: Instant) {
        let seconds = started.elapsed().as_secs_f64().max(0.001);
        self.update(
            (done * 100 / total.max(1)) as u32,
            &format!("{:.1} MB/s", done as f64 / seconds / 1e6),
        );
    }

    /// `detail` (a speed, say) is shown beside the figure when not empty.
    pub fn update(&mut self, percent: u32, detail: &str) {
        if percent >= self.last_percent + 10
            || (percent > self.last_percent && self.last_time.elapsed() > Duration::from_secs(10))
        {
            if percent < 100 {
                if detail.is_empty() {
                    log::info!("{}: {percent}%", self.what);
                } else {
                    log::info!("{}: {percent}% ({detail})", self.what);
                }
            }
            self.last_percent = percent;
            self.last_time = Instant::now();
        }
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
}
