//! Users and groups as a system's own passwd and group files name them (the
//! target's, not the initramfs's), and the files only root and `adm` read.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::inroot::resolve_in_root;

/// The id of `name` (or `name` itself when it is a number) in a passwd or
/// group file's text.
pub fn id_of(db: &str, name: &str) -> Option<u32> {
    if let Ok(id) = name.parse() {
        return Some(id);
    }
    db.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Logs and reports carry every hook's output: mode 0640, group `adm` when
/// the system whose root is `root` has one (root otherwise).
pub fn restrict_to_adm(path: &Path, root: &Path) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    let adm = resolve_in_root(root, "etc/group")
        .and_then(|group| Ok(std::fs::read_to_string(group)?))
        .ok()
        .and_then(|groups| id_of(&groups, "adm"));
    if let Some(gid) = adm {
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("cannot give {} to the group adm", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ids_by_name_or_number() {
        let group = "root:x:0:\nadm:x:4:syslog\n";
        assert_eq!(id_of(group, "adm"), Some(4));
        assert_eq!(id_of(group, "1234"), Some(1234));
        assert_eq!(id_of(group, "wheel"), None);
    }
}
