//! The firmware's boot entry for the disk (UEFI): its variables read from
//! efivarfs, the entry written by the target's efibootmgr.
//!
//! The disk boots without it, through the removable-media path
//! EFI/BOOT/BOOTX64.EFI that firmware tries on every disk; some boards try
//! only the entries of their boot order, and for those the disk gets one,
//! placed right after the entry this machine started from (the card, first
//! in the product's boot order, must stay before the disk).

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::disk::mounts::MountStack;
use crate::runner::Cmd;

/// Where the kernel shows the firmware's variables.
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";
/// The vendor GUID of the boot manager's variables (UEFI's global one).
const GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// The entry's name in the firmware's boot menu.
pub const LABEL: &str = "zshield";
/// What the entry starts: Debian's signed shim on the ESP.
pub const LOADER: &str = r"\EFI\debian\shimx64.efi";

/// One Boot#### variable: its number, its description and the partition
/// its device path starts on, if any, as udev names it in
/// /dev/disk/by-partuuid (GPT: the partition's GUID; msdos: the disk's
/// signature and the partition's number, `ssssssss-pp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    pub number: u16,
    pub label: String,
    pub partition: Option<String>,
}

/// The boot manager's variables this needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootVars {
    /// The entry this boot started from.
    pub current: Option<u16>,
    pub order: Vec<u16>,
    pub entries: Vec<BootEntry>,
}

impl BootVars {
    /// The entries of earlier resets of the target: named like the disk's
    /// and leading to one of `target`'s partitions (as the disk was before
    /// this reset). Nothing else, not even an entry of ours for a disk that
    /// is gone: an entry is removed only when it is known to be the target's.
    pub fn stale(&self, target: &[String]) -> Vec<u16> {
        self.entries
            .iter()
            .filter(|e| e.label == LABEL)
            .filter(|e| e.partition.as_ref().is_some_and(|p| target.contains(p)))
            .map(|e| e.number)
            .collect()
    }

    /// The entry the machine started from, where it is in the boot order
    /// (not one started once through BootNext or the firmware's menu).
    pub fn current_in_order(&self) -> Option<u16> {
        self.current.filter(|c| self.order.contains(c))
    }
}

/// The variables in `dir` (efivarfs); an error says why there are none to
/// work with.
pub fn read(dir: &Path) -> Result<BootVars, String> {
    let var = |name: &str| std::fs::read(dir.join(format!("{name}-{GLOBAL}")));
    let order = var("BootOrder").map_err(|e| {
        if dir.join(format!("BootCurrent-{GLOBAL}")).exists() {
            format!("the firmware has no boot order to add to ({e})")
        } else {
            format!(
                "the firmware's variables are not readable at {} ({e})",
                dir.display()
            )
        }
    })?;
    let mut vars = BootVars {
        current: var("BootCurrent")
            .ok()
            .and_then(|v| numbers(&v).first().copied()),
        order: numbers(&order),
        entries: Vec::new(),
    };
    let listing =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for name in listing
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
    {
        let Some(number) = entry_number(&name) else {
            continue;
        };
        if let Ok(data) = var(&format!("Boot{number:04X}")) {
            if let Some(entry) = load_option(number, data.get(4..).unwrap_or_default()) {
                vars.entries.push(entry);
            }
        }
    }
    vars.entries.sort_by_key(|e| e.number);
    Ok(vars)
}

/// Boot#### with four upper-case hex digits and the global GUID.
fn entry_number(file: &str) -> Option<u16> {
    let hex = file
        .strip_prefix("Boot")?
        .strip_suffix(&format!("-{GLOBAL}"))?;
    if hex.len() != 4
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

/// A variable of little-endian u16s after efivarfs's 4 bytes of attributes.
fn numbers(var: &[u8]) -> Vec<u16> {
    var.get(4..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// An EFI_LOAD_OPTION: attributes (u32), the device path's length (u16), the
/// description (UTF-16, NUL-terminated), the device path.
fn load_option(number: u16, data: &[u8]) -> Option<BootEntry> {
    let path_len = usize::from(u16::from_le_bytes([*data.get(4)?, *data.get(5)?]));
    let mut label = Vec::new();
    let mut at = 6;
    loop {
        let c = u16::from_le_bytes([*data.get(at)?, *data.get(at + 1)?]);
        at += 2;
        if c == 0 {
            break;
        }
        label.push(c);
    }
    let path = data.get(at..at + path_len)?;
    Some(BootEntry {
        number,
        label: String::from_utf16_lossy(&label),
        partition: partition(path),
    })
}

/// The partition of the first hard-drive node of a device path (media, hard
/// drive: number, start, size, signature; format 2 = GPT with signature type
/// 2 = GUID, format 1 = msdos with signature type 1 = the disk's 32 bits).
fn partition(mut path: &[u8]) -> Option<String> {
    while path.len() >= 4 {
        let (kind, sub) = (path[0], path[1]);
        let len = usize::from(u16::from_le_bytes([path[2], path[3]]));
        if len < 4 || len > path.len() || kind == 0x7f {
            return None;
        }
        if (kind, sub, len) == (4, 1, 42) {
            return match (path[40], path[41]) {
                (2, 2) => Some(guid(&path[24..40])),
                (1, 1) => Some(format!(
                    "{:08x}-{:02x}",
                    u32::from_le_bytes([path[24], path[25], path[26], path[27]]),
                    u32::from_le_bytes([path[4], path[5], path[6], path[7]])
                )),
                _ => None,
            };
        }
        path = &path[len..];
    }
    None
}

/// A GUID in its text form (the first three fields are little-endian).
fn guid(b: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10..16]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

/// The boot order with `new` right after `after` (the entry this machine
/// started from) or in its place when it is one of the `stale` entries that
/// go, else last; without the stale ones.
/// efibootmgr refuses an order naming an entry that does not exist: the
/// caller leaves those out.
pub fn order_with(order: &[u16], after: Option<u16>, new: u16, stale: &[u16]) -> Vec<u16> {
    let mut out = Vec::new();
    for &n in order {
        if Some(n) == after && stale.contains(&n) {
            out.push(new);
        } else if n != new && !stale.contains(&n) {
            out.push(n);
            if Some(n) == after {
                out.push(new);
            }
        }
    }
    if !out.contains(&new) {
        out.push(new);
    }
    out
}

/// What `make` left in the firmware's variables, read back after it.
#[derive(Debug)]
pub struct MadeEntry {
    pub number: u16,
    /// None when the variables could not be read again.
    pub order: Option<Vec<u16>>,
    /// The stale entries that are gone.
    pub removed: Vec<u16>,
}

impl fmt::Display for MadeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |ns: &[u16]| {
            ns.iter()
                .map(|n| format!("Boot{n:04X}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "the firmware's boot entry Boot{:04X} '{LABEL}' is made; ",
            self.number
        )?;
        match &self.order {
            Some(order) => write!(f, "read back, the boot order is {}", names(order))?,
            None => write!(f, "the boot order could not be read back")?,
        }
        if !self.removed.is_empty() {
            write!(
                f,
                "; the entries of earlier resets removed: {}",
                names(&self.removed)
            )?;
        }
        Ok(())
    }
}

/// Makes the disk's entry with the target's efibootmgr (in a chroot with
/// the system's /sys, whose efivarfs it writes), each write leaving a disk
/// that boots: creates the entry for partition `part` of `disk` outside the
/// boot order, writes the order with it (`order_with`), then removes the
/// `stale` entries. A power cut leaves the new entry outside the order, or
/// the old entries beside it: the next reset removes them.
pub fn make(
    root: &Path,
    disk: &str,
    part: u32,
    after: Option<u16>,
    stale: &[u16],
) -> Result<MadeEntry> {
    let efibootmgr = |args: &[&str]| -> Result<()> {
        Cmd::new("efibootmgr")
            .arg("--quiet")
            .args(args)
            .chroot(root)
            .run()?;
        Ok(())
    };
    let vars = || read(Path::new(EFIVARS)).map_err(anyhow::Error::msg);
    let mut binds = MountStack::system_binds(root)?;
    let made = (|| {
        let before = vars()?;
        efibootmgr(&[
            "--create-only",
            "--disk",
            disk,
            "--part",
            &part.to_string(),
            "--label",
            LABEL,
            "--loader",
            LOADER,
        ])
        .context("making it")?;
        let now = vars()?;
        let Some(new) = now
            .entries
            .iter()
            .find(|e| e.label == LABEL && !before.entries.iter().any(|b| b.number == e.number))
            .map(|e| e.number)
        else {
            bail!("efibootmgr made no entry named {LABEL}");
        };
        let exists = |n: &u16| {
            Path::new(EFIVARS)
                .join(format!("Boot{n:04X}-{GLOBAL}"))
                .exists()
        };
        let order: Vec<String> = order_with(&now.order, after, new, stale)
            .iter()
            .filter(|n| exists(n))
            .map(|n| format!("{n:04X}"))
            .collect();
        efibootmgr(&["--bootorder", &order.join(",")])
            .with_context(|| format!("putting Boot{new:04X} into the boot order"))?;
        // The new entry boots the disk already: an old one left is untidy only.
        for n in stale {
            if let Err(e) = efibootmgr(&["--bootnum", &format!("{n:04X}"), "--delete-bootnum"]) {
                log::warn!("Boot{n:04X}, the firmware's entry of an earlier reset of the disk, stays: {e:#}");
            }
        }
        Ok(MadeEntry {
            number: new,
            order: vars().ok().map(|v| v.order),
            removed: stale.iter().copied().filter(|n| !exists(n)).collect(),
        })
    })();
    binds
        .unmount_all()
        .context("after making the firmware's boot entry")?;
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Boot#### variable as efivarfs shows it: the variable's attributes,
    /// then the load option.
    fn boot_var(label: &str, path: &[u8]) -> Vec<u8> {
        let mut v = 7u32.to_le_bytes().to_vec();
        v.extend(1u32.to_le_bytes());
        v.extend((path.len() as u16).to_le_bytes());
        for c in label.encode_utf16().chain([0]) {
            v.extend(c.to_le_bytes());
        }
        v.extend(path);
        v
    }

    /// HD(4,GPT,guid,start,size)/File(\EFI\debian\shimx64.efi)/End.
    fn disk_path(part: u32, guid_bytes: [u8; 16]) -> Vec<u8> {
        let mut p = vec![4, 1, 42, 0];
        p.extend(part.to_le_bytes());
        p.extend(2048u64.to_le_bytes());
        p.extend(131072u64.to_le_bytes());
        p.extend(guid_bytes);
        p.extend([2, 2]);
        let file: Vec<u8> = LOADER
            .encode_utf16()
            .chain([0])
            .flat_map(|c| c.to_le_bytes())
            .collect();
        p.extend([4, 4]);
        p.extend(((file.len() + 4) as u16).to_le_bytes());
        p.extend(file);
        p.extend([0x7f, 0xff, 4, 0]);
        p
    }

    const GUID_BYTES: [u8; 16] = [
        0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];

    fn write(dir: &Path, name: &str, data: &[u8]) {
        std::fs::write(dir.join(format!("{name}-{GLOBAL}")), data).unwrap();
    }

    #[test]
    fn reads_the_order_the_current_entry_and_where_entries_lead() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "BootCurrent", &[7, 0, 0, 0, 1, 0]);
        write(dir.path(), "BootOrder", &[7, 0, 0, 0, 1, 0, 0, 0, 0x0a, 0]);
        // A firmware volume's app: a path without a hard-drive node.
        write(
            dir.path(),
            "Boot0000",
            &boot_var("UiApp", &[4, 7, 4, 0, 0x7f, 0xff, 4, 0]),
        );
        write(
            dir.path(),
            "Boot0001",
            &boot_var(
                "UEFI QEMU HARDDISK",
                &[2, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 4, 0],
            ),
        );
        write(
            dir.path(),
            "Boot000A",
            &boot_var(LABEL, &disk_path(4, GUID_BYTES)),
        );
        // Not entries: another vendor's variable, lower-case hex.
        std::fs::write(
            dir.path()
                .join("Boot0002-12345678-93ca-11d2-aa0d-00e098032b8c"),
            b"x",
        )
        .unwrap();
        write(
            dir.path(),
            "Boot000b",
            &boot_var("lower", &[0x7f, 0xff, 4, 0]),
        );
        let vars = read(dir.path()).unwrap();
        assert_eq!(vars.current, Some(1));
        assert_eq!(vars.order, vec![1, 0, 10]);
        let found: Vec<(u16, &str, Option<&str>)> = vars
            .entries
            .iter()
            .map(|e| (e.number, e.label.as_str(), e.partition.as_deref()))
            .collect();
        assert_eq!(
            found,
            vec![
                (0, "UiApp", None),
                (1, "UEFI QEMU HARDDISK", None),
                (10, LABEL, Some("00112233-4455-6677-8899-aabbccddeeff")),
            ]
        );
    }

    #[test]
    fn no_variables_or_no_order_is_said() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap_err().contains("not readable"));
        write(dir.path(), "BootCurrent", &[7, 0, 0, 0, 1, 0]);
        assert!(read(dir.path()).unwrap_err().contains("no boot order"));
    }

    #[test]
    fn a_damaged_entry_is_skipped_not_misread() {
        let mut var = boot_var(LABEL, &disk_path(4, GUID_BYTES));
        var.truncate(30);
        assert_eq!(load_option(3, &var[4..]), None);
        // A node that claims more than the path holds.
        assert_eq!(partition(&[4, 1, 200, 0, 0, 0]), None);
    }

    #[test]
    fn an_msdos_partition_is_named_as_udev_names_it() {
        let mut path = disk_path(
            4,
            [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        (path[40], path[41]) = (1, 1);
        assert_eq!(partition(&path).as_deref(), Some("12345678-04"));
        // Another format: not a partition this can name.
        (path[40], path[41]) = (1, 2);
        assert_eq!(partition(&path), None);
    }

    #[test]
    fn the_entry_goes_right_after_the_one_the_machine_started_from() {
        assert_eq!(order_with(&[1, 0, 2], Some(1), 5, &[]), vec![1, 5, 0, 2]);
        assert_eq!(order_with(&[0, 1, 2], Some(2), 5, &[]), vec![0, 1, 2, 5]);
        // Not in the order (a one-time BootNext): last.
        assert_eq!(order_with(&[1, 0], Some(7), 5, &[]), vec![1, 0, 5]);
        assert_eq!(order_with(&[], None, 5, &[]), vec![5]);
        // Already there: moved, not twice.
        assert_eq!(order_with(&[5, 1, 0], Some(1), 5, &[]), vec![1, 5, 0]);
        // Started from the entry of the reset before (no card): the new one
        // takes its place; stale ones elsewhere in the order go.
        assert_eq!(
            order_with(&[3, 1, 4, 0], Some(3), 5, &[3, 4]),
            vec![5, 1, 0]
        );
        assert_eq!(order_with(&[1, 3, 0], Some(1), 5, &[3]), vec![1, 5, 0]);
    }

    #[test]
    fn what_was_made_is_told_as_read_back() {
        let made = MadeEntry {
            number: 5,
            order: Some(vec![1, 5, 0x1a]),
            removed: vec![],
        };
        assert_eq!(
            made.to_string(),
            "the firmware's boot entry Boot0005 'zshield' is made; read back, the boot order is Boot0001, Boot0005, Boot001A"
        );
        let made = MadeEntry {
            removed: vec![3, 4],
            ..made
        };
        assert!(made
            .to_string()
            .ends_with("; the entries of earlier resets removed: Boot0003, Boot0004"));
        let made = MadeEntry {
            order: None,
            ..made
        };
        assert!(made
            .to_string()
            .contains("is made; the boot order could not be read back; the entries"));
    }

    #[test]
    fn stale_entries_are_only_the_targets_own() {
        let vars = BootVars {
            current: None,
            order: vec![],
            entries: vec![
                BootEntry {
                    number: 1,
                    label: "UEFI QEMU HARDDISK".into(),
                    partition: None,
                },
                BootEntry {
                    number: 3,
                    label: LABEL.into(),
                    partition: Some("aaaa".into()),
                },
                BootEntry {
                    number: 4,
                    label: LABEL.into(),
                    partition: Some("bbbb".into()),
                },
                BootEntry {
                    number: 5,
                    label: LABEL.into(),
                    partition: None,
                },
                BootEntry {
                    number: 6,
                    label: "debian".into(),
                    partition: Some("cccc".into()),
                },
            ],
        };
        // Only those known to lead to the target: not one without a
        // partition, nor one of another disk, nor another name.
        assert_eq!(vars.stale(&["aaaa".into(), "cccc".into()]), vec![3]);
        assert_eq!(vars.stale(&[]), Vec::<u16>::new());
    }
}
