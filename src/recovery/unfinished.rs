//! The mark of a recovery that has begun to write a disk and has not ended:
//! `/run/zshield/unfinished`, set before the first write and taken off by
//! zshield once its own rules take over (done, or the stop after a failure).
//! Left behind, it means the process died in between (killed, out of memory,
//! a crash): the initramfs glue then runs `zshield interrupted`, which stops
//! the boot at the failure screen, so that a half-made system never boots.

use std::path::Path;

use anyhow::{anyhow, Context, Result};

use crate::cmdline::Mode;
use crate::logging::RUN_DIR;
use crate::recovery::Failure;

const MARK: &str = "unfinished";

/// Marks `disk` as being written by a `mode` recovery, on record before the
/// first write.
pub fn begin(disk: &str, mode: Mode) -> Result<()> {
    begin_in(Path::new(RUN_DIR), disk, mode)
}

/// zshield itself decides what follows now.
pub fn end() {
    let path = Path::new(RUN_DIR).join(MARK);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            log::warn!(
                "cannot remove {}: {e}; the boot will stop at it",
                path.display()
            )
        }
        _ => {}
    }
}

/// The failure a mark left behind stands for, if there is one.
pub fn left_behind() -> Option<Failure> {
    left_behind_in(Path::new(RUN_DIR))
}

fn begin_in(dir: &Path, disk: &str, mode: Mode) -> Result<()> {
    let path = dir.join(MARK);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, format!("{mode} {disk}\n")))
        .with_context(|| format!("cannot write {}", path.display()))
}

fn left_behind_in(dir: &Path) -> Option<Failure> {
    let path = dir.join(MARK);
    if !path.exists() {
        return None;
    }
    // A mark that cannot be read is a doubt: it stops the boot as the
    // automatic mode's failure would.
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let (mode, disk) = text
        .trim()
        .split_once(' ')
        .and_then(|(mode, disk)| Some((mode.parse().ok()?, disk.to_string())))
        .unwrap_or((Mode::Auto, "the target disk".to_string()));
    Some(Failure::Failed {
        error: anyhow!(
            "the {mode} recovery ended without finishing after it began to write {disk} (zshield's process was killed or crashed)"
        ),
        disk,
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_left_behind_is_a_failure_of_its_disk_and_mode() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(left_behind_in(tmp.path()).is_none());
        begin_in(tmp.path(), "/dev/sdb", Mode::Latest).unwrap();
        let failure = left_behind_in(tmp.path()).expect("a mark");
        let text = failure.to_string();
        assert!(
            text.contains(
                "the latest recovery ended without finishing after it began to write /dev/sdb"
            ) && text.contains("/dev/sdb is partly rolled back"),
            "{text}"
        );
        std::fs::write(tmp.path().join(MARK), "garbled").unwrap();
        assert!(matches!(
            left_behind_in(tmp.path()),
            Some(Failure::Failed {
                mode: Mode::Auto,
                ..
            })
        ));
    }
}
