//! The event log that outlives resets and rollbacks: one JSON line per
//! recovery and per backup (taken or refused) in `zshield/events.jsonl` on a
//! data volume (`events = "lv-audit"` in the configuration), which neither a
//! reset nor a rollback replaces. The recoveries write it from the initramfs,
//! the backup from the running system; `zshield status` shows the last ones.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::accounts::restrict_to_adm;
use crate::config::Config;
use crate::layout::mapper_path;
use crate::logging::now_utc;

/// Where the log is, under the events volume's mount point.
pub const EVENTS_FILE: &str = "zshield/events.jsonl";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// UTC, `2026-12-03T08:17:14Z`.
    pub time: String,
    /// `factory-reset`, `rollback`, `backup`.
    pub event: String,
    /// `done`, `failed`, `refused`.
    pub status: String,
    pub detail: String,
}

impl Event {
    pub fn now(event: &str, status: &str, detail: impl Into<String>) -> Event {
        Event {
            time: now_utc(),
            event: event.into(),
            status: status.into(),
            detail: detail.into(),
        }
    }
}

/// Appends `event` to the log on the volume mounted at `volume`; `root` is
/// the system whose `adm` group may read it.
pub fn append(volume: &Path, root: &Path, event: &Event) -> Result<()> {
    let path = volume.join(EVENTS_FILE);
    let dir = path.parent().expect("the log is in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut line = serde_json::to_vec(event).expect("an event serialises");
    line.push(b'\n');
    // One write of a whole line: a power cut leaves at most the last line cut.
    file.write_all(&line)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot append to {}", path.display()))?;
    restrict_to_adm(&path, root)
}

/// Appends `event` to the running system's log on the events volume, when it
/// is mounted where the configuration says (else the line would go into the
/// root, and a rollback would take it away).
pub fn record(config: &Config, event: &Event) -> Result<()> {
    let Some(volume) = config.events_volume() else {
        return Ok(());
    };
    let dev = mapper_path(&config.vg, &volume.name);
    let stat = |p: &str| std::fs::metadata(p).with_context(|| format!("cannot stat {p}"));
    if stat(&volume.mount)?.dev() != stat(&dev)?.rdev() {
        bail!("{dev} is not mounted on {}", volume.mount);
    }
    append(Path::new(&volume.mount), Path::new("/"), event)
}

/// The last `n` events of the log on the volume mounted at `volume`, oldest
/// first; none when there is no log yet. A line that does not read (cut by a
/// power loss) is skipped.
pub fn last(volume: &Path, n: usize) -> Result<Vec<Event>> {
    let path = volume.join(EVENTS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let events: Vec<Event> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    Ok(events[events.len().saturating_sub(n)..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_appended_and_the_last_read_back_skipping_a_cut_line() {
        let volume = tempfile::tempdir().unwrap();
        assert!(last(volume.path(), 5).unwrap().is_empty());
        for i in 0..4 {
            let e = Event::now("backup", "done", format!("backup {i}"));
            append(volume.path(), Path::new("/nonexistent"), &e).unwrap();
        }
        let path = volume.path().join(EVENTS_FILE);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"{\"time\": \"2026-").unwrap();
        let events = last(volume.path(), 2).unwrap();
        let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(details, ["backup 2", "backup 3"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
}
