//! Which disk is which, whatever the kernel named it this boot: model,
//! serial (or WWN, or the port it is on) and size, from udev's database and
//! sysfs. The consent to erase a disk names it by these, so that a boot that
//! enumerates disks in another order cannot erase a different one.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::disk::blockdev::BlockDev;
use crate::units::human;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// `/dev/sdb`, this boot's name.
    pub dev: String,
    pub model: Option<String>,
    /// udev's `ID_SERIAL_SHORT`.
    pub serial: Option<String>,
    pub wwn: Option<String>,
    /// udev's `ID_PATH`: the port the disk is on.
    pub path: Option<String>,
    pub size: u64,
    pub removable: bool,
    pub usb: bool,
}

/// `KEY=VALUE` of the `E:` lines of a udev database entry
/// (`/run/udev/data/b8:16`).
fn udev_property<'a>(db: &'a str, key: &str) -> Option<&'a str> {
    db.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl Identity {
    /// From udev's database entry `db` (empty without udev) and what sysfs
    /// says of the disk.
    pub fn from_udev(dev: &str, db: &str, size: u64, removable: bool, sys_path: &str) -> Identity {
        let get = |key| udev_property(db, key).map(String::from);
        Identity {
            dev: dev.to_string(),
            model: get("ID_MODEL").map(|m| m.replace('_', " ")),
            serial: get("ID_SERIAL_SHORT"),
            wwn: get("ID_WWN_WITH_EXTENSION").or_else(|| get("ID_WWN")),
            path: get("ID_PATH"),
            size,
            removable,
            usb: get("ID_BUS").as_deref() == Some("usb") || sys_path.contains("/usb"),
        }
    }

    pub fn of(disk: &BlockDev) -> Identity {
        let devno = disk.devno;
        let (major, minor) = (nix::sys::stat::major(devno), nix::sys::stat::minor(devno));
        let db =
            std::fs::read_to_string(format!("/run/udev/data/b{major}:{minor}")).unwrap_or_default();
        let removable =
            std::fs::read_to_string(disk.sys.join("removable")).is_ok_and(|r| r.trim() == "1");
        Identity::from_udev(
            &disk.dev,
            &db,
            disk.size(),
            removable,
            &disk.sys.to_string_lossy(),
        )
    }

    /// What `zshield.wipe=` takes to erase this disk: its serial, else its
    /// WWN, else the port it is on; none when udev knows none of them.
    pub fn consent(&self) -> Option<&str> {
        self.serial
            .as_deref()
            .or(self.wwn.as_deref())
            .or(self.path.as_deref())
    }

    /// Whether `zshield.wipe=<given>` names this disk.
    pub fn is_named_by(&self, given: &str) -> bool {
        let given = given.strip_prefix("/dev/disk/by-path/").unwrap_or(given);
        [&self.serial, &self.wwn, &self.path]
            .into_iter()
            .flatten()
            .any(|id| id == given)
    }
}

impl fmt::Display for Identity {
    /// `/dev/sdb (QEMU HARDDISK, serial ZTARGET, 4 GiB)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.model.iter().cloned().collect();
        match (&self.serial, &self.wwn, &self.path) {
            (Some(serial), _, _) => parts.push(format!("serial {serial}")),
            (None, Some(wwn), _) => parts.push(format!("WWN {wwn}")),
            (None, None, Some(path)) => parts.push(format!("at /dev/disk/by-path/{path}")),
            (None, None, None) => parts.push("no serial".into()),
        }
        parts.push(human(self.size));
        write!(f, "{} ({})", self.dev, parts.join(", "))
    }
}

/// Kernel devices that are never a target disk: partitions' stacks,
/// memory, loop, optical, network block devices.
fn never_a_disk(name: &str) -> bool {
    ["loop", "ram", "zram", "dm-", "md", "sr", "nbd", "fd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The disks that could be the target: whole disks, not the golden's
/// (`golden_disks`), not removable, not on USB, at least `min_size`.
pub fn candidates(
    all: &[Identity],
    golden_disks: &BTreeSet<String>,
    min_size: u64,
) -> Vec<Identity> {
    all.iter()
        .filter(|d| {
            let name = d.dev.trim_start_matches("/dev/");
            !never_a_disk(name)
                && !golden_disks.contains(&d.dev)
                && !d.removable
                && !d.usb
                && d.size >= min_size
        })
        .cloned()
        .collect()
}

/// Every whole disk the kernel knows, identified.
pub fn all_disks() -> Vec<Identity> {
    let mut disks: Vec<Identity> = std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    BlockDev::open(&format!("/dev/{}", e.file_name().to_string_lossy())).ok()
                })
                .map(|d| Identity::of(&d))
                .collect()
        })
        .unwrap_or_default();
    disks.sort_by(|a, b| a.dev.cmp(&b.dev));
    disks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GIB;

    const QEMU_DB: &str = "S:disk/by-id/scsi-0QEMU_QEMU_HARDDISK_ZTARGET\n\
        E:ID_BUS=scsi\nE:ID_MODEL=QEMU_HARDDISK\nE:ID_SERIAL=0QEMU_QEMU_HARDDISK_ZTARGET\n\
        E:ID_SERIAL_SHORT=ZTARGET\nE:ID_PATH=pci-0000:00:04.0-scsi-0:0:0:0\n";

    pub(crate) fn disk(dev: &str, serial: Option<&str>, size: u64) -> Identity {
        Identity {
            dev: dev.into(),
            model: Some("QEMU HARDDISK".into()),
            serial: serial.map(String::from),
            path: Some(format!(
                "pci-0000:00:04.0-{}",
                dev.trim_start_matches("/dev/")
            )),
            size,
            ..Identity::default()
        }
    }

    #[test]
    fn a_disk_is_named_by_model_serial_and_size() {
        let d = Identity::from_udev(
            "/dev/sdb",
            QEMU_DB,
            4 * GIB,
            false,
            "/sys/devices/pci0000:00/x",
        );
        assert_eq!(
            d.to_string(),
            "/dev/sdb (QEMU HARDDISK, serial ZTARGET, 4 GiB)"
        );
        assert_eq!(d.consent(), Some("ZTARGET"));
        assert!(d.is_named_by("ZTARGET") && !d.is_named_by("ZTARGET2") && !d.is_named_by(""));
        assert!(d.is_named_by("/dev/disk/by-path/pci-0000:00:04.0-scsi-0:0:0:0"));
        assert!(!d.usb);

        let bare = Identity::from_udev(
            "/dev/sdc",
            "E:ID_PATH=pci-0000:00:1f.2-ata-2\n",
            GIB,
            false,
            "",
        );
        assert_eq!(
            bare.to_string(),
            "/dev/sdc (at /dev/disk/by-path/pci-0000:00:1f.2-ata-2, 1 GiB)"
        );
        assert_eq!(bare.consent(), Some("pci-0000:00:1f.2-ata-2"));
        let none = Identity::from_udev("/dev/vda", "", GIB, false, "");
        assert_eq!(
            (none.consent(), none.to_string().contains("no serial")),
            (None, true)
        );
    }

    #[test]
    fn candidates_leave_out_the_golden_removable_usb_small_and_virtual() {
        let usb = Identity::from_udev(
            "/dev/sdd",
            "E:ID_BUS=usb\nE:ID_SERIAL_SHORT=U1\n",
            8 * GIB,
            false,
            "",
        );
        let all = vec![
            disk("/dev/sda", Some("CF"), 8 * GIB),
            disk("/dev/sdb", Some("HDD"), 500 * GIB),
            Identity {
                removable: true,
                ..disk("/dev/sdc", Some("R"), 8 * GIB)
            },
            usb,
            disk("/dev/vda", Some("small"), GIB / 2),
            disk("/dev/loop0", None, 8 * GIB),
            disk("/dev/dm-0", None, 8 * GIB),
        ];
        let golden: BTreeSet<String> = ["/dev/sda".to_string()].into();
        let found: Vec<String> = candidates(&all, &golden, GIB)
            .into_iter()
            .map(|d| d.dev)
            .collect();
        assert_eq!(found, ["/dev/sdb"]);
    }
}
