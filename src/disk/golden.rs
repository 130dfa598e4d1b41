//! Finding and confirming the golden root, the read-only source of every
//! reset, and the names under which its filesystems can be found.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::disk::blockdev::{all_devices, ext_superblock, BlockDev};

/// Resolves `LABEL=`, `UUID=`, `PARTUUID=`, `PARTLABEL=` or a path to a device
/// node, waiting up to `timeout` for udev to create it. Without udev's links
/// (or before them), ext filesystems are found by reading their superblocks.
pub fn resolve(spec: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(dev) = resolve_now(spec) {
            return Ok(dev);
        }
        if Instant::now() >= deadline {
            bail!("no device matches {spec} (waited {}s)", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The one device `spec` names, on `card` (the golden root's disks) when
/// given. A second device of that name anywhere (a USB stick labelled like
/// the card's file systems) is refused, never guessed between: the golden is
/// the source of every reset.
pub fn resolve_unique(spec: &str, card: Option<&[String]>, timeout: Duration) -> Result<String> {
    let mut all = resolve_all(spec, timeout)?;
    if all.len() > 1 {
        bail!(
            "{spec} names {} devices ({}): refusing to guess which is the card's; detach the one that is not the CompactFlash card (a USB stick?)",
            all.len(),
            all.join(", ")
        );
    }
    let dev = all.remove(0);
    if let Some(card) = card {
        let disks = BlockDev::open(&dev)?.underlying_disks();
        if !disks.iter().any(|d| card.contains(d)) {
            bail!(
                "{spec} is {dev}, which is not on the card ({}): the golden's file systems must all come from the card; detach {dev} or check the golden's fstab",
                card.join(", ")
            );
        }
    }
    Ok(dev)
}

/// Every device `spec` names, once one is there (waiting up to `timeout`).
pub fn resolve_all(spec: &str, timeout: Duration) -> Result<Vec<String>> {
    let first = resolve(spec, timeout)?;
    let mut all = named_by(spec);
    all.push(BlockDev::open(&first)?.dev);
    all.sort();
    all.dedup();
    Ok(all)
}

/// Every ext file system whose superblock `spec` (`LABEL=` or `UUID=`) names:
/// udev's link names only one of them. A suspended device-mapper device is
/// not read (a read would wait for it).
fn named_by(spec: &str) -> Vec<String> {
    let Some((key, value)) = spec.split_once('=') else {
        return Vec::new();
    };
    let suspended = |dev: &str| {
        let name = dev.trim_start_matches("/dev/");
        std::fs::read_to_string(format!("/sys/class/block/{name}/dm/suspended"))
            .is_ok_and(|s| s.trim() == "1")
    };
    all_devices()
        .into_iter()
        .filter(|dev| !suspended(dev))
        .filter(|dev| match (key, ext_superblock(dev)) {
            ("LABEL", Some((_, label))) => label == value,
            ("UUID", Some((uuid, _))) => uuid.eq_ignore_ascii_case(value),
            _ => false,
        })
        .collect()
}

fn resolve_now(spec: &str) -> Option<String> {
    let link = match spec.split_once('=') {
        Some(("LABEL", v)) => format!("/dev/disk/by-label/{}", udev_escape(v)),
        Some(("UUID", v)) => format!("/dev/disk/by-uuid/{}", v.to_ascii_lowercase()),
        Some(("PARTUUID", v)) => format!("/dev/disk/by-partuuid/{}", v.to_ascii_lowercase()),
        Some(("PARTLABEL", v)) => format!("/dev/disk/by-partlabel/{}", udev_escape(v)),
        Some(_) => return None,
        None => spec.to_string(),
    };
    if let Ok(dev) = BlockDev::open(&link) {
        return Some(dev.dev);
    }
    named_by(spec).into_iter().next()
}

/// udev writes unsafe characters of labels as `\xNN` in link names.
fn udev_escape(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) {
                c.to_string()
            } else {
                format!("\\x{:02x}", c as u32)
            }
        })
        .collect()
}

/// Fails unless `dir` (the mounted golden) looks like a root filesystem.
pub fn confirm_root(dir: &Path, dev: &str) -> Result<()> {
    let has = |p: &str| dir.join(p).exists() || dir.join(p).is_symlink();
    let missing: Vec<&str> = [
        (
            "etc/os-release",
            has("etc/os-release") || has("usr/lib/os-release"),
        ),
        (
            "sbin/init",
            has("sbin/init") || has("usr/sbin/init") || has("usr/lib/systemd/systemd"),
        ),
        ("etc/fstab", has("etc/fstab")),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        bail!(
            "the golden {dev} is not a root filesystem (no {}): check root= or zshield.golden=",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Every name under which an fstab could point at a filesystem of `disks`:
/// udev's links, their `KEY=value` forms, superblock UUIDs and labels, nodes.
pub fn names_on(disks: &[String]) -> Vec<String> {
    let on_golden = |dev: &str| {
        BlockDev::open(dev)
            .is_ok_and(|d| d.underlying_disks().iter().any(|disk| disks.contains(disk)))
    };
    let mut names = Vec::new();
    for (dir, key) in [
        ("/dev/disk/by-label", Some("LABEL")),
        ("/dev/disk/by-uuid", Some("UUID")),
        ("/dev/disk/by-partuuid", Some("PARTUUID")),
        ("/dev/disk/by-partlabel", Some("PARTLABEL")),
        ("/dev/disk/by-id", None),
        ("/dev/disk/by-path", None),
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path().display().to_string();
            if !on_golden(&path) {
                continue;
            }
            if let Some(key) = key {
                names.push(format!("{key}={}", entry.file_name().to_string_lossy()));
            }
            names.push(path);
        }
    }
    for dev in all_devices().iter().filter(|d| on_golden(d)) {
        names.push(dev.clone());
        if let Some((uuid, label)) = ext_superblock(dev) {
            names.push(format!("UUID={uuid}"));
            if !label.is_empty() {
                names.push(format!("LABEL={label}"));
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Reads the golden's fstab (for /boot) with a clear error.
pub fn read_fstab(dir: &Path) -> Result<String> {
    let path = dir.join("etc/fstab");
    std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the golden {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_labels_like_udev() {
        assert_eq!(udev_escape("golden-root"), "golden-root");
        assert_eq!(udev_escape("my root/x"), "my\\x20root\\x2fx");
    }

    #[test]
    fn confirms_a_root_filesystem() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/fstab"), "").unwrap();
        let err = confirm_root(dir, "/dev/sda2").unwrap_err().to_string();
        assert!(err.contains("no etc/os-release, sbin/init"), "{err}");
        std::fs::write(dir.join("etc/os-release"), "").unwrap();
        std::fs::create_dir_all(dir.join("sbin")).unwrap();
        std::fs::write(dir.join("sbin/init"), "").unwrap();
        confirm_root(dir, "/dev/sda2").unwrap();
    }
}
