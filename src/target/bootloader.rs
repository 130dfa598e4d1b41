//! Installing the target's own GRUB from inside it (chroot).

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::disk::mounts::MountStack;
use crate::runner::Cmd;

/// Sets `KEY=value` in a shell-style defaults file (`/etc/default/grub`),
/// replacing an existing assignment (commented or not) or appending one.
pub fn set_shell_var(text: &str, key: &str, value: &str) -> String {
    let assignment = format!("{key}={value}");
    let mut out = Vec::new();
    let mut done = false;
    for line in text.lines() {
        let bare = line.trim_start().trim_start_matches('#').trim_start();
        if bare
            .strip_prefix(key)
            .is_some_and(|rest| rest.starts_with('='))
        {
            if !done {
                out.push(assignment.clone());
                done = true;
            }
        } else {
            out.push(line.to_string());
        }
    }
    if !done {
        out.push(assignment);
    }
    out.join("\n") + "\n"
}

/// The GRUB tools the target system has: Debian's names or Fedora's.
struct Tools {
    install: &'static str,
    mkconfig: &'static str,
    config: &'static str,
}

/// Checks that the system in `root` can install GRUB.
pub fn check_tools(root: &Path) -> Result<()> {
    tools(root).map(drop)
}

fn tools(root: &Path) -> Result<Tools> {
    let has = |name: &str| {
        ["usr/sbin", "usr/bin", "sbin", "bin"]
            .iter()
            .any(|d| root.join(d).join(name).exists())
    };
    if has("grub-install") {
        Ok(Tools {
            install: "grub-install",
            mkconfig: "grub-mkconfig",
            config: "/boot/grub/grub.cfg",
        })
    } else if has("grub2-install") {
        Ok(Tools {
            install: "grub2-install",
            mkconfig: "grub2-mkconfig",
            config: "/boot/grub2/grub.cfg",
        })
    } else {
        bail!("the golden system has no grub-install or grub2-install: install grub-pc (or grub2-pc) in the golden image");
    }
}

/// GRUB defaults that only the golden's own menu may have (the CF is
/// read-only media: no fsck); the image builder puts them there.
const GOLDEN_ONLY_DEFAULTS: &str = "etc/default/grub.d/zshield-golden.cfg";

/// Points GRUB at `root` by device path (a snapshot shares its origin's UUID,
/// so `root=UUID=` could boot the snapshot), the disk's "Recover to factory
/// default" entry (grub/41_zshield) at the golden, and its boot counting at
/// `boot_tries` (0: none).
pub fn configure_defaults(root: &Path, golden: &str, boot_tries: u32) -> Result<()> {
    let path = root.join("etc/default/grub");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let text = set_shell_var(&text, "GRUB_DISABLE_LINUX_UUID", "true");
    let text = set_shell_var(&text, "GRUB_DISABLE_OS_PROBER", "true");
    let text = set_shell_var(&text, "GRUB_ZSHIELD_GOLDEN", golden);
    let text = set_shell_var(&text, "GRUB_ZSHIELD_BOOT_TRIES", &boot_tries.to_string());
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let golden_only = root.join(GOLDEN_ONLY_DEFAULTS);
    if golden_only.exists() {
        std::fs::remove_file(&golden_only)
            .with_context(|| format!("cannot remove /{GOLDEN_ONLY_DEFAULTS}"))?;
        log::info!("removed /{GOLDEN_ONLY_DEFAULTS} (the golden's own boot options)");
    }
    Ok(())
}

/// Runs the target's grub-install on `disk` and its grub-mkconfig in a chroot
/// with /proc, /sys, /dev and /run, then checks the menu boots `root_dev`.
pub fn install(root: &Path, disk: &str, root_dev: &str) -> Result<()> {
    let tools = tools(root)?;
    let mut binds = MountStack::system_binds(root)?;
    Cmd::new(tools.install)
        .args(["--target=i386-pc", "--recheck", disk])
        .chroot(root)
        .run()?;
    Cmd::new(tools.mkconfig)
        .args(["-o", tools.config])
        .chroot(root)
        .run()?;
    binds.unmount_all()?;

    let cfg_path = root.join(tools.config.trim_start_matches('/'));
    let cfg = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("cannot read {}", cfg_path.display()))?;
    check_menu(&cfg, root_dev)
}

/// Every kernel line of the generated menu must boot `root=root_dev`.
fn check_menu(cfg: &str, root_dev: &str) -> Result<()> {
    let kernels: Vec<&str> = cfg
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("linux"))
        .collect();
    if kernels.is_empty() {
        bail!("the generated GRUB menu has no kernel: is there a kernel in the golden /boot?");
    }
    let wanted = format!("root={root_dev}");
    if let Some(bad) = kernels
        .iter()
        .find(|l| !l.split_whitespace().any(|w| w == wanted))
    {
        bail!("the generated GRUB menu does not boot {wanted}: {bad}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_replaces_and_uncomments_variables() {
        let text =
            "GRUB_TIMEOUT=5\n#GRUB_DISABLE_LINUX_UUID=true\nGRUB_CMDLINE_LINUX=\"console=ttyS0\"\n";
        let out = set_shell_var(text, "GRUB_DISABLE_LINUX_UUID", "true");
        assert_eq!(
            out,
            "GRUB_TIMEOUT=5\nGRUB_DISABLE_LINUX_UUID=true\nGRUB_CMDLINE_LINUX=\"console=ttyS0\"\n"
        );
        let out = set_shell_var(&out, "GRUB_TIMEOUT", "1");
        assert!(out.starts_with("GRUB_TIMEOUT=1\n"));
        let out = set_shell_var("", "GRUB_DISABLE_OS_PROBER", "true");
        assert_eq!(out, "GRUB_DISABLE_OS_PROBER=true\n");
        // A longer name with the same prefix is another variable.
        let out = set_shell_var(
            "GRUB_DISABLE_LINUX_UUID_X=1\n",
            "GRUB_DISABLE_LINUX_UUID",
            "true",
        );
        assert_eq!(
            out,
            "GRUB_DISABLE_LINUX_UUID_X=1\nGRUB_DISABLE_LINUX_UUID=true\n"
        );
    }

    #[test]
    fn the_menu_must_boot_the_lv_by_path() {
        let good = "menuentry 'Debian' {\n\tlinux /vmlinuz-6.1 root=/dev/mapper/vgroup-lv--root ro console=ttyS0\n}\n";
        check_menu(good, "/dev/mapper/vgroup-lv--root").unwrap();
        let by_uuid = good.replace("root=/dev/mapper/vgroup-lv--root", "root=UUID=1234");
        let err = check_menu(&by_uuid, "/dev/mapper/vgroup-lv--root")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not boot root=/dev/mapper/vgroup-lv--root"),
            "{err}"
        );
        assert!(check_menu("set timeout=5\n", "/dev/x").is_err());
    }

    #[test]
    fn the_disk_names_its_golden_and_drops_the_golden_only_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("etc/default/grub.d")).unwrap();
        std::fs::write(root.join("etc/default/grub"), "GRUB_TIMEOUT=5\n").unwrap();
        std::fs::write(root.join(GOLDEN_ONLY_DEFAULTS), "GRUB_CMDLINE_LINUX=x\n").unwrap();
        configure_defaults(root, "UUID=0b4c6e7e-2f0a-4d8e-9c39-6a1f2a7d5e11", 3).unwrap();
        let text = std::fs::read_to_string(root.join("etc/default/grub")).unwrap();
        assert!(text.contains("\nGRUB_ZSHIELD_GOLDEN=UUID=0b4c6e7e-2f0a-4d8e-9c39-6a1f2a7d5e11\n"));
        assert!(text.contains("\nGRUB_DISABLE_LINUX_UUID=true\n"));
        assert!(text.ends_with("\nGRUB_ZSHIELD_BOOT_TRIES=3\n"));
        assert!(!root.join(GOLDEN_ONLY_DEFAULTS).exists());
        // Again, with nothing left to remove: the same file.
        configure_defaults(root, "UUID=0b4c6e7e-2f0a-4d8e-9c39-6a1f2a7d5e11", 3).unwrap();
        assert_eq!(
            text,
            std::fs::read_to_string(root.join("etc/default/grub")).unwrap()
        );
    }
}
