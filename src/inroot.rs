//! Paths inside the target root, resolved as the target itself would see
//! them once booted (openat2's RESOLVE_IN_ROOT, done in userspace): an
//! absolute symlink in the copied system names a path of that system, not
//! of the initramfs zshield runs in, and `..` stops at the target's `/`.
//!
//! The result holds no symlink up to its first missing component, so the
//! plain `std::fs` call made on it afterwards stays inside the root (nothing
//! else changes the target while zshield writes it).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// As the kernel's limit (ELOOP).
const MAX_SYMLINKS: usize = 40;

/// Where `path` (absolute or not, taken from the target's `/`) is inside
/// `root`, every symlink followed, the last one too: a file written there
/// is the one the target reads at `path`. Missing components are kept as
/// they are, to be created.
pub fn resolve_in_root(root: &Path, path: impl AsRef<Path>) -> Result<PathBuf> {
    walk(root, path.as_ref(), true)
}

/// Where the entry `path` itself is inside `root`: its directories resolved,
/// a symlink at its end left as it is (to be removed, not its target).
pub fn entry_in_root(root: &Path, path: impl AsRef<Path>) -> Result<PathBuf> {
    walk(root, path.as_ref(), false)
}

/// Creates the directory `path` of the target with its parents, each
/// resolved inside `root`; returns where it is.
pub fn create_dir_all_in_root(root: &Path, path: impl AsRef<Path>) -> Result<PathBuf> {
    let path = path.as_ref();
    let dir = resolve_in_root(root, path)?;
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create /{} (at {})",
            relative(path).display(),
            dir.display()
        )
    })?;
    Ok(dir)
}

fn walk(root: &Path, path: &Path, follow_last: bool) -> Result<PathBuf> {
    let shown = || format!("/{} in {}", relative(path).display(), root.display());
    let mut pending: VecDeque<OsString> = names(path).collect();
    let mut resolved = root.to_path_buf();
    let mut followed = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            // `resolved` holds no symlink, so its parent is the real one.
            if resolved != root {
                resolved.pop();
            }
            continue;
        }
        let next = resolved.join(&name);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                resolved = next;
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot resolve {}", shown()));
            }
        };
        if !meta.file_type().is_symlink() || (!follow_last && pending.is_empty()) {
            resolved = next;
            continue;
        }
        followed += 1;
        if followed > MAX_SYMLINKS {
            bail!(
                "cannot resolve {}: too many levels of symbolic links",
                shown()
            );
        }
        let target = std::fs::read_link(&next)
            .with_context(|| format!("cannot read the symlink {}", next.display()))?;
        if target.is_absolute() {
            resolved = root.to_path_buf();
        }
        for name in names(&target).rev() {
            pending.push_front(name);
        }
    }
    Ok(resolved)
}

/// The names of `path`, `..` kept, `/` and `.` dropped.
fn names(path: &Path) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some("..".into()),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

fn relative(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn an_absolute_symlink_is_followed_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("etc-real/default")).unwrap();
        symlink("/etc-real", root.join("etc")).unwrap();
        symlink("/etc/fstab.real", root.join("etc-real/fstab")).unwrap();
        symlink("../../run/x", root.join("etc-real/default/grub")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/etc/default").unwrap(),
            root.join("etc-real/default")
        );
        // The last one too, and a relative one from the directory it is in.
        assert_eq!(
            resolve_in_root(root, "/etc/fstab").unwrap(),
            root.join("etc-real/fstab.real")
        );
        assert_eq!(
            resolve_in_root(root, "etc/default/grub").unwrap(),
            root.join("run/x")
        );
        // The entry itself, for removal.
        assert_eq!(
            entry_in_root(root, "/etc/fstab").unwrap(),
            root.join("etc-real/fstab")
        );
    }

    #[test]
    fn dot_dot_stops_at_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        assert_eq!(
            resolve_in_root(&root, "../../../etc/fstab").unwrap(),
            root.join("etc/fstab")
        );
        symlink("../../../../outside", root.join("etc/up")).unwrap();
        assert_eq!(
            resolve_in_root(&root, "/etc/up/file").unwrap(),
            root.join("outside/file")
        );
    }

    #[test]
    fn a_symlink_loop_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        symlink("/b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        let err = resolve_in_root(root, "/a/file").unwrap_err().to_string();
        assert!(err.contains("too many levels of symbolic links"), "{err}");
        assert!(create_dir_all_in_root(root, "/b/dir").is_err());
    }

    #[test]
    fn missing_components_are_appended() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir(root.join("real")).unwrap();
        symlink("/real", root.join("var")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/var/log/zshield/x.json").unwrap(),
            root.join("real/log/zshield/x.json")
        );
        let dir = create_dir_all_in_root(root, "/var/log/zshield").unwrap();
        assert_eq!(dir, root.join("real/log/zshield"));
        assert!(dir.is_dir());
        // A dangling absolute symlink's target is created inside the root.
        symlink("/run/x", root.join("default")).unwrap();
        let dir = create_dir_all_in_root(root, "default/grub.d").unwrap();
        assert_eq!(dir, root.join("run/x/grub.d"));
        assert!(dir.is_dir());
    }
}
