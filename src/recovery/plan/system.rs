//! The steps after the volumes of a factory reset: mount the target, copy
//! the golden onto it, configure it (fstab, LVM, GRUB defaults), provision
//! it, install GRUB.

use crate::config::Config;
use crate::layout::{mapper_path, partition_number};
use crate::recovery::probe::Probe;
use crate::recovery::step::{FstabEntry, Step};

use super::Volumes;

/// The system steps onto a target whose /boot, EFI system partition and
/// firmware are those of `v` and whose root is the configuration's root LV.
/// `copy_files` says why the root is copied file by file; without it, it was
/// copied block by block before.
pub(super) fn steps(
    probe: &Probe,
    c: &Config,
    v: &Volumes,
    copy_files: Option<String>,
) -> Vec<Step> {
    let (boot_dev, boot_uuid) = (&v.boot_dev, &v.boot_uuid);
    let mut steps = Vec::new();
    let vg = &c.vg;
    let root = mapper_path(vg, &c.root.name);
    let mut fstab = vec![
        FstabEntry {
            spec: root.clone(),
            mount_point: "/".into(),
            options: "errors=remount-ro".into(),
            passno: 1,
        },
        FstabEntry {
            spec: format!("UUID={}", boot_uuid),
            mount_point: "/boot".into(),
            options: "defaults".into(),
            passno: 2,
        },
    ];
    for data in &c.data {
        fstab.push(FstabEntry {
            spec: mapper_path(vg, &data.name),
            mount_point: data.mount.clone(),
            // Data volumes hold no devices and no programs to run as their owner.
            options: "defaults,nodev,nosuid".into(),
            passno: 2,
        });
    }
    let golden = &probe.golden;
    let golden_boot = golden
        .boot_dev
        .clone()
        .unwrap_or_else(|| format!("{}:/boot", golden.dev));
    steps.push(Step::MountTarget {
        root: root.clone(),
        boot: boot_dev.to_string(),
    });
    if let Some(why) = copy_files {
        steps.push(Step::CopyRoot {
            from: golden.dev.clone(),
            tree: golden.root_tree.clone(),
            to: root.clone(),
            why,
        });
    }
    steps.push(if v.boot_blocks {
        Step::KeepBootCopy {
            tree: golden.boot_tree.clone(),
        }
    } else {
        Step::CopyBoot {
            from: golden_boot,
            tree: golden.boot_tree.clone(),
            to: boot_dev.to_string(),
        }
    });
    steps.extend([Step::ConfigureTarget {
        fstab,
        mount_points: c.data.iter().map(|d| d.mount.clone()).collect(),
        golden_names: golden.names.clone(),
        golden: golden.spec_for_disk(),
        boot_tries: c.boot.tries,
    }]);
    // Files and hooks after the copy and the target's configuration, before
    // GRUB: a hook may change what the menu is made from.
    if !probe.provision.files.is_empty() {
        steps.push(Step::InstallFiles {
            tree: golden.root_tree.clone(),
            provision: probe.provision.clone(),
        });
    }
    if !probe.provision.hooks.is_empty() {
        steps.push(Step::RunHooks {
            provision: probe.provision.clone(),
        });
    }
    steps.push(Step::InstallBootloader {
        bios_disk: v.served.bios.then(|| probe.target.dev.clone()),
        root,
        esp: v.esp_dev.clone(),
    });
    // Where the firmware keeps variables: an entry of the disk's own.
    if let (true, Some(esp), Ok(vars)) = (v.served.uefi, &v.esp_dev, &probe.boot_vars) {
        if let Some(part) = partition_number(&probe.target.dev, esp) {
            steps.push(Step::MakeBootEntry {
                disk: probe.target.dev.clone(),
                part,
                esp: esp.clone(),
                after: vars.current_in_order(),
                stale: vars.stale(&probe.target_partitions),
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::super::tests::{names, plan_of};
    use super::*;
    use crate::fixtures::blank_probe;
    use crate::recovery::plan::{Options, Plan};

    #[test]
    fn provisioning_comes_after_the_copy_and_before_grub() {
        let mut probe = blank_probe();
        probe
            .provision
            .files
            .push(crate::target::provision::InstallFile {
                source: "modules".into(),
                destination: "/etc/modules".into(),
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
                uid: 0,
                gid: 0,
            });
        probe.provision.hooks.push(crate::target::provision::Hook {
            order: 10,
            name: "10_first.sh".into(),
        });
        probe.provision.dir = "/etc/zshield/provision".into();
        probe.provision.arch = "x86_64".into();
        probe.provision.hook_timeout_secs = 60;
        let p = plan_of(&probe, Options::default()).unwrap();
        let n = names(&p);
        let at = |name: &str| n.iter().position(|s| s == name).unwrap();
        assert_eq!(at("install-files"), at("configure-target") + 1);
        assert_eq!(at("run-hooks"), at("install-files") + 1);
        assert_eq!(at("install-bootloader"), at("run-hooks") + 1);
        let shown: Vec<String> = p.steps.iter().map(|s| s.to_string()).collect();
        assert!(shown.contains(&"install 1 file of /etc/zshield/provision/files.install for x86_64: /etc/modules (0644 root:root)".to_string()), "{shown:?}");
        assert!(shown.contains(&"run the hooks of /etc/zshield/provision/hooks in the target, in order, 60 s each at most: 10_first.sh".to_string()), "{shown:?}");
        // Nothing to provision: no such steps.
        let n = names(&plan_of(&blank_probe(), Options::default()).unwrap());
        assert!(!n.iter().any(|s| s == "install-files" || s == "run-hooks"));
    }

    #[test]
    fn the_firmware_gets_an_entry_for_the_disk_where_it_keeps_variables() {
        use crate::target::bootentry::{BootEntry, BootVars, LABEL};
        let entry = |p: &Plan| {
            p.steps
                .iter()
                .find(|s| matches!(s, Step::MakeBootEntry { .. }))
                .cloned()
        };
        // Started through BIOS: no variables, no entry.
        assert_eq!(
            entry(&plan_of(&blank_probe(), Options::default()).unwrap()),
            None
        );
        let mut probe = blank_probe();
        probe.booted_uefi = true;
        probe.boot_vars = Ok(BootVars {
            current: Some(1),
            order: vec![1, 0],
            entries: vec![
                BootEntry {
                    number: 3,
                    label: LABEL.into(),
                    partition: Some("old".into()),
                },
                BootEntry {
                    number: 4,
                    label: LABEL.into(),
                    partition: Some("spare".into()),
                },
            ],
        });
        probe.target_partitions = vec!["old".into(), "sdb1".into()];
        let p = plan_of(&probe, Options::default()).unwrap();
        let n = names(&p);
        let at = |name: &str| n.iter().position(|s| s == name).unwrap();
        assert_eq!(at("make-boot-entry"), at("install-bootloader") + 1);
        let step = entry(&p).unwrap();
        assert_eq!(
            step,
            Step::MakeBootEntry {
                disk: "/dev/sdb".into(),
                part: 4,
                esp: "/dev/sdb4".into(),
                after: Some(1),
                stale: vec![3],
            }
        );
        assert_eq!(
            step.to_string(),
            r"make the firmware's boot entry 'zshield' for \EFI\debian\shimx64.efi on /dev/sdb4, next in its boot order after Boot0001, the entry this machine started from; then remove the entries of earlier resets of the disk (Boot0003)"
        );
        // Started once from an entry outside the order: the disk's goes last.
        if let Ok(vars) = &mut probe.boot_vars {
            vars.current = Some(7);
        }
        let Some(Step::MakeBootEntry { after, .. }) =
            entry(&plan_of(&probe, Options::default()).unwrap())
        else {
            panic!()
        };
        assert_eq!(after, None);
        // Variables the kernel does not show: no entry; the removable path.
        probe.boot_vars = Err("the firmware's variables are not readable".into());
        let p = plan_of(&probe, Options::default()).unwrap();
        assert_eq!(entry(&p), None);
        assert!(p.firmware.unwrap().ends_with(". No firmware boot entry for it: the firmware's variables are not readable; it boots through its removable-media path"));
    }

    #[test]
    fn fstab_names_lvs_by_mapper_path_and_boot_by_uuid() {
        let p = plan_of(&blank_probe(), Options::default()).unwrap();
        let fstab = p.steps.iter().find_map(|s| match s {
            Step::ConfigureTarget { fstab, .. } => Some(fstab.clone()),
            _ => None,
        });
        let specs: Vec<String> = fstab
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e.spec, e.mount_point))
            .collect();
        assert_eq!(
            specs,
            [
                "/dev/mapper/vgroup-lv--root /",
                "UUID=00000000-0000-4000-8000-000000000001 /boot",
                "/dev/mapper/vgroup-lv--user /home",
                "/dev/mapper/vgroup-lv--audit /var/log/audit",
            ]
        );
    }
}
