//! Mounts that undo themselves: a stack unmounted in reverse order.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

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
            binds.bind(&Path::new("/").join(dir), &root.join(dir))?;
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
