//! Copying the golden onto the target, file by file (rsync) or block by
//! block (its block map), with progress on the console.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};

use crate::disk::blockdev;
use crate::disk::blockmap::{Digests, FsMap, Range, RangeReader};
use crate::disk::ext4::{self, SUPERBLOCK_OFFSET};
use crate::layout::{COMPLETE_MARKER, GRUB_ENV, RESTORE_MENU};
use crate::logging::Meter;
use crate::runner::Cmd;
use crate::units::human;

/// What one copy moved, from rsync's own statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
    /// What a mirror wrote or deleted (paths relative to its top; not
    /// directories), as rsync names them: a rollback installs GRUB for BIOS
    /// again only when its modules are among them.
    pub changed: Vec<String>,
}

/// Copies `from/` onto `to/` keeping hard links, ACLs, extended attributes
/// (file capabilities), sparse files, numeric owners and times. `exclude`
/// holds rsync patterns anchored at `from`.
pub fn copy_tree(from: &Path, to: &Path, exclude: &[&str], what: &str) -> Result<CopyStats> {
    rsync(from, to, exclude, false, what)
}

/// Makes `to/` the same as `from/`: as [`copy_tree`], and deletes what `from`
/// does not have (except `lost+found` and zshield's own state at the top: a
/// rollback restores /boot, not whether the card hands the boot over to it,
/// nor the boot tries GRUB counted). Files are compared by content, not by
/// size and time: /boot is small, and must come back exact.
pub fn mirror_tree(from: &Path, to: &Path, what: &str) -> Result<CopyStats> {
    let marker = format!("/{COMPLETE_MARKER}");
    let tries = format!("/{GRUB_ENV}");
    let points = format!("/{RESTORE_MENU}");
    rsync(
        from,
        to,
        &["/lost+found", &marker, &tries, &points],
        true,
        what,
    )
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
        cmd = cmd.args([
            "--delete",
            "--checksum",
            "--info=del1",
            &format!("--out-format={CHANGED}%n"),
        ]);
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
        } else if let Some(name) = changed_name(line) {
            stats.changed.push(name.to_string());
        } else if let Some(percent) = progress_percent(line) {
            meter.update(percent, line.split_whitespace().nth(2).unwrap_or(""));
        }
    })?;
    log::info!(
        "{what}: 100%, {} files, {}",
        stats.files,
        human(stats.bytes)
    );
    Ok(stats)
}

/// What a block copy moved, and what each part of it cost.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BlockCopyStats {
    pub bytes: u64,
    /// Of `bytes`, the zeros made from the map, without reading the card.
    pub zero_bytes: u64,
    pub ranges: usize,
    pub copy_seconds: f64,
    pub resize_seconds: f64,
    pub check_seconds: f64,
}

/// Copies the used ranges of the golden file system `map` from `from` onto
/// `to`, checking each against its SHA-256 before it is written; the range
/// with the primary superblock goes last, already carrying `uuid` and
/// `label`, so that the copy is never seen under the golden's names. Then the
/// copy is grown to all of `to` (resize2fs) and checked (e2fsck -fn).
pub fn copy_blocks(
    from: &str,
    to: &str,
    map: &FsMap,
    uuid: &str,
    label: &str,
    digests: Digests,
) -> Result<BlockCopyStats> {
    let started = Instant::now();
    let source = File::open(from).with_context(|| format!("cannot open {from}"))?;
    let target = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_EXCL)
        .open(to)
        .with_context(|| format!("cannot open {to} for writing (is it in use?)"))?;
    let bs = map.block_size;
    let sb_block = SUPERBLOCK_OFFSET as u64 / bs;
    let holds_superblock = |r: &Range| r.block <= sb_block && sb_block < r.block + r.blocks;
    let (last, first): (Vec<&Range>, Vec<&Range>) =
        map.ranges.iter().partition(|r| holds_superblock(r));
    ensure!(
        last.len() == 1,
        "the block map of {} does not cover its superblock",
        map.label
    );
    let ranges: Vec<&Range> = first.into_iter().chain(last).collect();
    let reader = RangeReader {
        file: &source,
        name: from,
        fs: map,
        start: 0,
        digests,
        zeros_from_map: true,
    };
    let what = format!("copying {} block by block", map.label);
    let total = map.used_bytes().max(1);
    let mut done = 0;
    let mut zero_bytes = 0;
    let mut meter = Meter::new(&what);
    reader.stream(&ranges, |range, at, buf| {
        if holds_superblock(range) {
            let sb = (SUPERBLOCK_OFFSET as u64 - at) as usize;
            ext4::rename(&mut buf[sb..sb + 1024], uuid, label)
                .with_context(|| format!("the copy of {}", map.label))?;
        }
        let len = buf.len() as u64;
        if range.zero {
            // Not a write of its buffer: the device may make zeros for free.
            blockdev::zero_out(&target, at, len)
                .or_else(|_| target.write_all_at(buf, at).map_err(anyhow::Error::from))
                .with_context(|| format!("cannot zero {len} bytes at byte {at} of {to}"))?;
            zero_bytes += len;
        } else {
            target
                .write_all_at(buf, at)
                .with_context(|| format!("cannot write {len} bytes at byte {at} of {to}"))?;
        }
        done += len;
        meter.update_rate(done, total, started);
        Ok(())
    })?;
    target
        .sync_all()
        .with_context(|| format!("cannot flush {to}"))?;
    drop(target);
    let copy_seconds = started.elapsed().as_secs_f64();
    let checked = match digests {
        Digests::Check => "checked against the block map",
        Digests::Skip => "NOT checked",
    };
    log::info!(
        "{what}: 100%, {} in {} ranges {checked} ({} of zeros from the map, not read), {:.1} s",
        human(done),
        map.ranges.len(),
        human(zero_bytes),
        copy_seconds
    );
    let timed = |cmd: Cmd| -> Result<f64> {
        let start = Instant::now();
        cmd.run()?;
        Ok(start.elapsed().as_secs_f64())
    };
    // -f: resize2fs wants a file system checked since its last mount, and a
    // golden /boot was mounted for grub-install; every block of this one was
    // checked against the map, and e2fsck -fn checks the result.
    let resize_seconds = timed(Cmd::new("resize2fs").args(["-f", to]))?;
    let check_seconds = timed(Cmd::new("e2fsck").args(["-f", "-n", to]))?;
    log::info!(
        "grew the copy to {to} in {resize_seconds:.1} s; e2fsck -fn found it clean in {check_seconds:.1} s"
    );
    Ok(BlockCopyStats {
        bytes: done,
        zero_bytes,
        ranges: map.ranges.len(),
        copy_seconds,
        resize_seconds,
        check_seconds,
    })
}

/// How rsync names what a mirror writes (`--out-format`).
const CHANGED: &str = "zshield-changed ";

/// A file a mirror wrote (`zshield-changed grub/grub.cfg`) or deleted
/// (`deleting vmlinuz-9.9.9`); not a directory (`grub/`).
fn changed_name(line: &str) -> Option<&str> {
    line.strip_prefix(CHANGED)
        .or_else(|| line.strip_prefix("deleting "))
        .filter(|name| !name.ends_with('/'))
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
            changed_name("zshield-changed grub/grub.cfg"),
            Some("grub/grub.cfg")
        );
        assert_eq!(
            changed_name("deleting vmlinuz-9.9.9-ztest"),
            Some("vmlinuz-9.9.9-ztest")
        );
        assert_eq!(changed_name("zshield-changed grub/"), None);
        assert_eq!(changed_name("Number of files: 3"), None);
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
