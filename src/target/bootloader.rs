//! Installing the target's own GRUB from inside it (chroot).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::disk::mounts::MountStack;
use crate::inroot::{create_dir_all_in_root, entry_in_root, resolve_in_root};
use crate::layout::ESP_MOUNT;
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
            .any(|d| resolve_in_root(root, Path::new(d).join(name)).is_ok_and(|p| p.exists()))
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

/// What GRUB for UEFI with Secure Boot is installed from, in the golden:
/// Debian's signed shim and GRUB (shim-signed, grub-efi-amd64-signed) and
/// grub-install's EFI modules (grub-efi-amd64-bin).
const EFI_FILES: [&str; 3] = [
    "usr/lib/shim/shimx64.efi.signed",
    "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
    "usr/lib/grub/x86_64-efi/modinfo.sh",
];

/// Whether the system in `root` can install GRUB for UEFI with Secure Boot;
/// else what it lacks.
pub fn check_efi(root: &Path) -> Result<(), String> {
    let missing: Vec<&str> = EFI_FILES
        .into_iter()
        .filter(|f| !resolve_in_root(root, f).is_ok_and(|p| p.is_file()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the golden has no /{} (install shim-signed, grub-efi-amd64-signed and grub-efi-amd64-bin in it)",
            missing.join(", /")
        ))
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
    let path = resolve_in_root(root, "etc/default/grub")?;
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let text = set_shell_var(&text, "GRUB_DISABLE_LINUX_UUID", "true");
    let text = set_shell_var(&text, "GRUB_DISABLE_OS_PROBER", "true");
    let text = set_shell_var(&text, "GRUB_ZSHIELD_GOLDEN", golden);
    let text = set_shell_var(&text, "GRUB_ZSHIELD_BOOT_TRIES", &boot_tries.to_string());
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let golden_only = entry_in_root(root, GOLDEN_ONLY_DEFAULTS)?;
    if golden_only.symlink_metadata().is_ok() {
        std::fs::remove_file(&golden_only)
            .with_context(|| format!("cannot remove /{GOLDEN_ONLY_DEFAULTS}"))?;
        log::info!("removed /{GOLDEN_ONLY_DEFAULTS} (the golden's own boot options)");
    }
    Ok(())
}

/// Runs the target's grub-install, with `bios_disk` on that disk (BIOS), with
/// `esp` onto that EFI system partition (UEFI, Secure Boot), and its
/// grub-mkconfig in a chroot with /proc, /sys, /dev and /run. The menu, which
/// both GRUBs read, is made beside the old one, checked to boot `root_dev`,
/// flushed and only then renamed over it (grub-mkconfig itself rewrites the
/// file in place), so that a power cut leaves one whole menu or the other.
/// The target's /boot is mounted.
pub fn install(
    root: &Path,
    bios_disk: Option<&str>,
    root_dev: &str,
    esp: Option<&str>,
) -> Result<()> {
    let tools = tools(root)?;
    let mut mounts = MountStack::new();
    if let Some(esp) = esp {
        mounts.vfat(esp, &create_dir_all_in_root(root, ESP_MOUNT)?)?;
    }
    let mut binds = MountStack::system_binds(root)?;
    if let Some(disk) = bios_disk {
        install_bios_in(&tools, root, disk)?;
    }
    if esp.is_some() {
        // Debian's signed shim and GRUB in EFI/debian and again at the
        // removable-media path EFI/BOOT, which firmware boots without a
        // variable naming it; no variables written here.
        Cmd::new(tools.install)
            .args([
                "--target=x86_64-efi",
                &format!("--efi-directory=/{ESP_MOUNT}"),
                "--uefi-secure-boot",
                "--force-extra-removable",
                "--no-nvram",
            ])
            .chroot(root)
            .run()?;
    }
    let new_config = format!("{}.zshield-new", tools.config);
    Cmd::new(tools.mkconfig)
        .args(["-o", &new_config])
        .chroot(root)
        .run()?;
    binds.unmount_all()?;
    mounts.unmount_all()?;

    let new_path = resolve_in_root(root, &new_config)?;
    let cfg = std::fs::read_to_string(&new_path)
        .with_context(|| format!("cannot read {}", new_path.display()))?;
    check_menu(&cfg, root_dev)?;
    // grub-mkconfig would leave a menu with a password hash readable by all.
    let mode = if holds_password(&cfg) { 0o600 } else { 0o444 };
    let cfg_path = resolve_in_root(root, tools.config)?;
    let put_in_place = || -> std::io::Result<()> {
        let file = std::fs::File::open(&new_path)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&new_path, &cfg_path)?;
        std::fs::File::open(cfg_path.parent().unwrap_or(Path::new("/")))?.sync_all()
    };
    put_in_place()
        .with_context(|| format!("cannot put the new menu in place at {}", cfg_path.display()))
}

fn install_bios_in(tools: &Tools, root: &Path, disk: &str) -> Result<()> {
    Cmd::new(tools.install)
        .args(["--target=i386-pc", "--recheck", disk])
        .chroot(root)
        .run()
        .map(drop)
}

/// Runs the target's grub-install for BIOS on `disk` alone, keeping the menu
/// the target's /boot holds: a rollback's, whose restored /boot brought back
/// other GRUB modules than the boot code on the disk was made with.
pub fn install_bios(root: &Path, disk: &str) -> Result<()> {
    let tools = tools(root)?;
    let mut binds = MountStack::system_binds(root)?;
    install_bios_in(&tools, root, disk)?;
    binds.unmount_all()
}

/// Whether GRUB's files for BIOS (its modules, which the boot code on the
/// disk must match) are among `changed`, paths relative to /boot.
pub fn bios_modules_among(changed: &[String]) -> bool {
    changed.iter().any(|f| {
        ["grub/i386-pc/", "grub2/i386-pc/"]
            .iter()
            .any(|dir| f.starts_with(dir))
    })
}

/// Checks that the menu in the target's /boot (a restored one, not made
/// here) boots `root_dev`.
pub fn check_installed_menu(root: &Path, root_dev: &str) -> Result<()> {
    let path = resolve_in_root(root, tools(root)?.config)?;
    let cfg = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    check_menu(&cfg, root_dev)
}

/// Whether a GRUB menu carries a password (01_zshield_password's hash).
fn holds_password(cfg: &str) -> bool {
    cfg.lines().any(|l| l.trim_start().starts_with("password"))
}

/// Every kernel line of the generated menu must boot `root=root_dev`.
fn check_menu(cfg: &str, root_dev: &str) -> Result<()> {
    let kernels: Vec<&str> = cfg
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("linux"))
        .collect();
    if kernels.is_empty() {
        bail!("the GRUB menu has no kernel: is there a kernel in /boot?");
    }
    let wanted = format!("root={root_dev}");
    if let Some(bad) = kernels
        .iter()
        .find(|l| !l.split_whitespace().any(|w| w == wanted))
    {
        bail!("the GRUB menu does not boot {wanted}: {bad}");
    }
    // Nobody is at an appliance's console: a panic without panic=N stops it for good.
    let reboots = |l: &&str| {
        l.split_whitespace().any(|w| {
            w.strip_prefix("panic=")
                .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n > 0))
        })
    };
    if let Some(stops) = kernels.iter().find(|l| !reboots(l)) {
        log::warn!("a kernel line of the disk's menu has no panic=N: a kernel panic would stop the unit until someone turns it off; add panic=10 to GRUB_CMDLINE_LINUX in the golden: {stops}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bios_modules_call_for_grub_install() {
        let changed = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(bios_modules_among(&changed(&[
            "grub/grub.cfg",
            "grub/i386-pc/ztest.mod"
        ])));
        assert!(bios_modules_among(&changed(&["grub2/i386-pc/normal.mod"])));
        assert!(!bios_modules_among(&changed(&[
            "grub/grub.cfg",
            "grub/x86_64-efi/normal.mod",
            "vmlinuz-6.1"
        ])));
        assert!(!bios_modules_among(&[]));
    }

    #[test]
    fn a_menu_with_a_password_hash_is_told_apart() {
        assert!(holds_password(
            "set superusers=\"zshield\"\npassword_pbkdf2 zshield grub.pbkdf2.sha512.1.AA.BB\n"
        ));
        assert!(!holds_password(
            "menuentry 'Debian' --unrestricted {\n\tlinux /vmlinuz\n}\n"
        ));
    }

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

    #[test]
    fn an_absolute_etc_symlink_names_the_targets_etc_not_the_hosts() {
        let (tmp, host) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let root = tmp.path();
        let host_etc = host.path().join("etc-real");
        let etc_real = root.join(host_etc.strip_prefix("/").unwrap());
        for etc in [&host_etc, &etc_real] {
            std::fs::create_dir_all(etc.join("default/grub.d")).unwrap();
            std::fs::write(etc.join("default/grub"), "GRUB_TIMEOUT=5\n").unwrap();
            std::fs::write(etc.join("default/grub.d/zshield-golden.cfg"), "x\n").unwrap();
        }
        std::os::unix::fs::symlink(&host_etc, root.join("etc")).unwrap();
        configure_defaults(root, "UUID=0b4c6e7e", 3).unwrap();
        let text = std::fs::read_to_string(etc_real.join("default/grub")).unwrap();
        assert!(
            text.contains("\nGRUB_ZSHIELD_GOLDEN=UUID=0b4c6e7e\n"),
            "{text}"
        );
        assert!(!etc_real.join("default/grub.d/zshield-golden.cfg").exists());
        // The host's files, where the symlink points outside the target, are untouched.
        assert_eq!(
            std::fs::read_to_string(host_etc.join("default/grub")).unwrap(),
            "GRUB_TIMEOUT=5\n"
        );
        assert!(host_etc.join("default/grub.d/zshield-golden.cfg").exists());
    }
}
