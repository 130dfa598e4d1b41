//! Copying the golden tree onto the target, with progress on the console.

use std::path::Path;

use anyhow::Result;

use crate::logging::Meter;
use crate::runner::Cmd;

/// What one copy moved, from rsync's own statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
}

/// Copies `from/` onto `to/` keeping hard links, ACLs, extended attributes
/// (file capabilities), sparse files, numeric owners and times. `exclude`
/// holds rsync patterns anchored at `from`.
pub fn copy_tree(from: &Path, to: &Path, exclude: &[&str], what: &str) -> Result<CopyStats> {
    rsync(from, to, exclude, false, what)
}

/// Makes `to/` the same as `from/`: as [`copy_tree`], and deletes what `from`
/// does not have (except `lost+found` at the top). Files are compared by
/// content, not by size and time: /boot is small, and must come back exact.
pub fn mirror_tree(from: &Path, to: &Path, what: &str) -> Result<CopyStats> {
    rsync(from, to, &["/lost+found"], true, what)
}

fn rsync(from: &Path, to: &Path, exclude: &[&str], delete: bool, what: &str) -> Result<CopyStats> {
    let mut cmd = Cmd::new("rsync").args([
        "-aHAXS",
        "--numeric-ids",
        "--one-file-system",
        "--info=progress2",
        "--no-inc-recursive",
        "--stats",
    ]);
    if delete {
        cmd = cmd.args(["--delete", "--checksum"]);
    }
    for pattern in exclude {
        cmd = cmd.arg(format!("--exclude={pattern}"));
    }
    cmd = cmd
        .arg(format!("{}/", from.display()))
        .arg(format!("{}/", to.display()));

    let mut stats = CopyStats::default();
    let mut meter = Meter::new(what);
    cmd.run_streaming(|line| {
        if let Some(n) = stat(line, "Number of regular files transferred:") {
            stats.files = n;
        } else if let Some(n) = stat(line, "Total transferred file size:") {
            stats.bytes = n;
        } else if let Some(percent) = progress_percent(line) {
            meter.update(percent, line.split_whitespace().nth(2).unwrap_or(""));
        }
    })?;
    log::info!(
        "{what}: 100%, {} files, {}",
        stats.files,
        crate::units::human(stats.bytes)
    );
    Ok(stats)
}

/// `  1,234,567  45%   12.34MB/s    0:00:05 (xfr#12, to-chk=3/40)` → 45
fn progress_percent(line: &str) -> Option<u32> {
    line.split_whitespace()
        .nth(1)?
        .strip_suffix('%')?
        .parse()
        .ok()
}

/// `Total transferred file size: 1,234 bytes` → 1234
fn stat(line: &str, key: &str) -> Option<u64> {
    let rest = line.strip_prefix(key)?;
    rest.split_whitespace()
        .next()?
        .replace(',', "")
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rsync_progress_and_stats() {
        assert_eq!(
            progress_percent("    401,408,000  45%   12.34MB/s    0:00:05 (xfr#12, to-chk=3/40)"),
            Some(45)
        );
        assert_eq!(progress_percent("sending incremental file list"), None);
        assert_eq!(
            stat(
                "Total transferred file size: 401,408,000 bytes",
                "Total transferred file size:"
            ),
            Some(401_408_000)
        );
        assert_eq!(
            stat(
                "Number of regular files transferred: 12,345",
                "Number of regular files transferred:"
            ),
            Some(12_345)
        );
    }
}
