//! Mounts: what the kernel has mounted (/proc/self/mountinfo), and mounts
//! that undo themselves, a stack unmounted in reverse order.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::disk::blockdev::parse_devno;
use crate::fstab::unescape;
use crate::inroot::resolve_in_root;

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    pub devno: u64,
    /// The directory of the filesystem that is mounted (`/` for all of it).
    pub root: String,
    pub mount_point: PathBuf,
    /// The mount source, e.g. `/dev/sdb1`.
    pub source: String,
}

/// Parses mountinfo text; lines that do not parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mounted> {
    text.lines()
        .filter_map(|line| {
            let (ours, theirs) = line.split_once(" - ")?;
            let fields: Vec<&str> = ours.split_whitespace().collect();
            Some(Mounted {
                devno: parse_devno(fields.get(2)?)?,
                root: unescape(fields.get(3)?),
                mount_point: PathBuf::from(unescape(fields.get(4)?)),
                source: unescape(theirs.split_whitespace().nth(1)?),
            })
        })
        .collect()
}

fn mountinfo() -> Vec<Mounted> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| parse_mountinfo(&text))
        .unwrap_or_default()
}

/// Where the whole filesystem on `devno` is mounted already, if it is.
pub fn mount_point_of(devno: u64) -> Option<PathBuf> {
    mountinfo()
        .into_iter()
        .find(|m| m.devno == devno && m.root == "/")
        .map(|m| m.mount_point)
}

/// Whether the running system's root is the block device `dev` (the disk
/// system's root LV, not the golden card's root).
pub fn is_running_root(dev: &str) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/").context("cannot stat /")?;
    let lv = std::fs::metadata(dev).with_context(|| format!("{dev} does not exist"))?;
    Ok(root.dev() == lv.rdev())
}

/// Mounts of any of `devnos`, as "SOURCE on DIR".
pub fn mounts_of(devnos: &BTreeSet<u64>) -> Vec<String> {
    mountinfo()
        .into_iter()
        .filter(|m| devnos.contains(&m.devno))
        .map(|m| format!("{} on {}", m.source, m.mount_point.display()))
        .collect()
}

#[derive(Debug, Default)]
pub struct MountStack {
    mounted: Vec<PathBuf>,
}

impl MountStack {
    pub fn new() -> MountStack {
        MountStack::default()
    }

    /// Mounts an ext4 filesystem; `read_only` also skips journal replay
    /// (`noload`), since replaying writes the device.
    pub fn ext4(&mut self, dev: &str, dir: &Path, read_only: bool) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (flags, data) = if read_only {
            (MsFlags::MS_RDONLY, Some("noload"))
        } else {
            (MsFlags::empty(), None)
        };
        mount(Some(dev), dir, Some("ext4"), flags, data).with_context(|| {
            format!(
                "cannot mount {dev} on {} (ext4{})",
                dir.display(),
                if read_only { ", read-only" } else { "" }
            )
        })?;
        log::debug!("mounted {dev} on {}", dir.display());
        self.mounted.push(dir.to_path_buf());
        Ok(())
    }

    /// Mounts an EFI system partition (FAT), readable by root only, as
    /// Debian's installer mounts it.
    pub fn vfat(&mut self, dev: &str, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        mount(
            Some(dev),
            dir,
            Some("vfat"),
            MsFlags::empty(),
            Some("umask=0077"),
        )
        .with_context(|| format!("cannot mount {dev} on {} (vfat)", dir.display()))?;
        log::debug!("mounted {dev} on {}", dir.display());
        self.mounted.push(dir.to_path_buf());
        Ok(())
    }

    /// Binds `source` (recursively) onto `dir`, for a chroot.
    pub fn bind(&mut self, source: &Path, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        mount(
            Some(source),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("cannot bind {} onto {}", source.display(), dir.display()))?;
        // A private copy: unmounting the chroot's /dev must not reach the host's.
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )?;
        self.mounted.push(dir.to_path_buf());
        Ok(())
    }

    /// Unmounts everything, last first; reports the first failure.
    /// /proc, /sys, /dev and /run bound into `root`: what the target's own
    /// tools (GRUB, provisioning hooks) need when they run in a chroot there.
    pub fn system_binds(root: &Path) -> Result<MountStack> {
        let mut binds = MountStack::new();
        for dir in ["proc", "sys", "dev", "run"] {
            // mount(2) follows a symlink: an absolute one must lead into the root.
            binds.bind(&Path::new("/").join(dir), &resolve_in_root(root, dir)?)?;
        }
        Ok(binds)
    }

    pub fn unmount_all(&mut self) -> Result<()> {
        let mut first_error = None;
        while let Some(dir) = self.mounted.pop() {
            // A recursive bind carries submounts (/dev/pts…): detach those lazily.
            let result =
                umount2(&dir, MntFlags::empty()).or_else(|_| umount2(&dir, MntFlags::MNT_DETACH));
            match result {
                Ok(()) => log::debug!("unmounted {}", dir.display()),
                Err(e) => {
                    log::warn!("cannot unmount {}: {e}", dir.display());
                    first_error.get_or_insert_with(|| {
                        anyhow::anyhow!("cannot unmount {}: {e}", dir.display())
                    });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for MountStack {
    fn drop(&mut self) {
        let _ = self.unmount_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mountinfo_with_escapes() {
        let text = "36 25 8:17 / /mnt/my\\040disk rw,relatime shared:1 - ext4 /dev/sdb1 rw\n\
                    37 25 8:18 /sub /srv rw - ext4 /dev/sdb2 rw\n\
                    garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].devno, nix::sys::stat::makedev(8, 17));
        assert_eq!(m[0].mount_point, Path::new("/mnt/my disk"));
        assert_eq!(
            (m[0].root.as_str(), m[0].source.as_str()),
            ("/", "/dev/sdb1")
        );
        assert_eq!(m[1].root, "/sub");
    }
}
