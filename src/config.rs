//! `/etc/zshield/zshield.conf`: the layout zshield gives the target disk.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::units::{Size, GIB};

pub const DEFAULT_PATH: &str = "/etc/zshield/zshield.conf";

/// `target = "auto"`: the one disk that could be the target.
pub const TARGET_AUTO: &str = "auto";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Gpt,
    Msdos,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Label::Gpt => "gpt",
            Label::Msdos => "msdos",
        })
    }
}

/// `copy`: how the golden root reaches lv-root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyMethod {
    /// Block by block when the card has a block map of the golden root and it
    /// fits; file by file otherwise.
    #[default]
    Auto,
    /// Block by block, or refuse.
    Blocks,
    /// File by file (rsync).
    Files,
}

impl std::str::FromStr for CopyMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(CopyMethod::Auto),
            "blocks" => Ok(CopyMethod::Blocks),
            "files" => Ok(CopyMethod::Files),
            other => Err(format!("copy \"{other}\" is not auto, blocks or files")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    #[serde(deserialize_with = "size")]
    pub size: Size,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataVolume {
    pub name: String,
    #[serde(deserialize_with = "size")]
    pub size: Size,
    /// Where the running system mounts it (an absolute path).
    pub mount: String,
}

/// `[provision]`: the golden's per-unit files and hooks (see `provision`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvisionConfig {
    /// The provisioning directory, a path in the golden root.
    pub dir: String,
    /// Seconds a hook may run before it is killed.
    pub hook_timeout: u64,
    /// Go on with the recovery when a hook fails (the report says so).
    pub continue_on_hook_failure: bool,
}

impl Default for ProvisionConfig {
    fn default() -> Self {
        ProvisionConfig {
            dir: "/etc/zshield/provision".into(),
            hook_timeout: 60,
            continue_on_hook_failure: false,
        }
    }
}

/// `layout`: how a factory reset keeps lv-root and its restore points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RootLayout {
    /// lv-root is a thin volume in a thin pool; every restore point is a
    /// thin snapshot of it (no copy-on-write cost, several kept).
    #[default]
    Thin,
    /// lv-root is a plain LV with one copy-on-write snapshot (`[snapshot]`),
    /// as zshield made disks before thin pools.
    Classic,
}

impl fmt::Display for RootLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RootLayout::Thin => "thin",
            RootLayout::Classic => "classic",
        })
    }
}

impl std::str::FromStr for RootLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "thin" => Ok(RootLayout::Thin),
            "classic" => Ok(RootLayout::Classic),
            other => Err(format!("layout \"{other}\" is not thin or classic")),
        }
    }
}

/// The highest `[pool] threshold`: below LVM's `thin_pool_autoextend_threshold`
/// (90, the golden's lvmlocal.conf), past which LVM refuses new thin volumes
/// in a pool it cannot grow.
const MAX_POOL_THRESHOLD: u8 = 89;

/// `[pool]`: the thin pool of the thin layout.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    pub name: String,
    /// Its data space: lv-root's blocks and what the restore points keep of
    /// older ones. Its metadata is sized from it (`layout::pool_metadata_bytes`).
    #[serde(deserialize_with = "size")]
    pub size: Size,
    /// Data or metadata use, in percent, above which automatic restore points
    /// are removed, oldest first, and a new one is refused.
    pub threshold: u8,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: "lv-pool".into(),
            size: Size::Bytes(200 * GIB),
            threshold: 80,
        }
    }
}

/// `[restore_points]`: what the thin layout keeps.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestorePointsConfig {
    /// Automatic restore points (daily ones, and the roots that rollbacks
    /// replaced) kept; the oldest go first. Named ones are never removed
    /// but by `zshield backup --remove`.
    pub keep: u32,
}

impl Default for RestorePointsConfig {
    fn default() -> Self {
        RestorePointsConfig { keep: 7 }
    }
}

/// `[boot] firmware`: what the disk zshield makes must boot through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// BIOS, and UEFI with Secure Boot where the golden and the disk's layout
    /// allow it; a new layout this machine (started through UEFI) could not
    /// boot is refused, an old one without an ESP finished with a warning.
    #[default]
    Auto,
    /// BIOS only: no EFI system partition on a new layout.
    Bios,
    /// UEFI with Secure Boot only, or refuse.
    Uefi,
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Firmware::Auto => "auto",
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        })
    }
}

/// `[boot]`: the firmware the disk boots through, boot counting in the
/// disk's GRUB and the running system's health checks (see `health`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootConfig {
    pub firmware: Firmware,
    /// Boots that may fail in a row before GRUB rolls back on its own; 0
    /// turns boot counting off.
    pub tries: u32,
    /// Seconds a health check may run before it is killed (and fails).
    pub check_timeout: u64,
    /// Seconds after the switch to the disk's root by which a boot must be
    /// marked good, or it reboots as a failed try; 0: no deadline. A running
    /// file system check or the health checks hold it off.
    pub deadline: u64,
    /// Seconds a boot may sit in systemd's emergency or rescue mode before it
    /// reboots as a failed try; 0: it waits there for a person.
    pub emergency_timeout: u64,
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            firmware: Firmware::Auto,
            tries: 3,
            check_timeout: 120,
            deadline: 900,
            emergency_timeout: 120,
        }
    }
}

/// More tries than GRUB's counting script spells out (one test per value).
pub const MAX_BOOT_TRIES: u32 = 9;

/// The data volume of the event log when the configuration names none.
const DEFAULT_EVENTS_VOLUME: &str = "lv-audit";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub target: String,
    /// None: the `root=` device of this boot.
    pub golden: Option<String>,
    pub label: Label,
    #[serde(deserialize_with = "bytes")]
    pub boot_size: u64,
    pub vg: String,
    pub layout: RootLayout,
    pub root: Volume,
    /// The classic layout's snapshot.
    pub snapshot: Volume,
    pub pool: PoolConfig,
    pub restore_points: RestorePointsConfig,
    pub data: Vec<DataVolume>,
    pub provision: ProvisionConfig,
    pub boot: BootConfig,
    pub copy: CopyMethod,
    /// The data volume that holds the event log ("" for none); unset, it
    /// is lv-audit when there is one.
    pub events: Option<String>,
    /// A factory reset takes only a card whose block map is signed with one
    /// of the vendor's keys (/etc/zshield/keys): on in the product image
    /// when the vendor ships keys.
    pub require_signed_map: bool,
}

impl Default for Config {
    /// The product's layout for its 500 GB disk: room is left in the VG for the
    /// backup to create a new snapshot before it drops the old one.
    fn default() -> Self {
        Config {
            target: TARGET_AUTO.into(),
            golden: None,
            label: Label::Gpt,
            boot_size: GIB,
            vg: "vgroup".into(),
            layout: RootLayout::Thin,
            root: Volume {
                name: "lv-root".into(),
                size: Size::Bytes(100 * GIB),
            },
            snapshot: Volume {
                name: "snap0".into(),
                size: Size::Bytes(100 * GIB),
            },
            pool: PoolConfig::default(),
            restore_points: RestorePointsConfig::default(),
            data: vec![
                DataVolume {
                    name: "lv-user".into(),
                    size: Size::Bytes(120 * GIB),
                    mount: "/home".into(),
                },
                DataVolume {
                    name: "lv-audit".into(),
                    size: Size::Bytes(40 * GIB),
                    mount: "/var/log/audit".into(),
                },
            ],
            provision: ProvisionConfig::default(),
            boot: BootConfig::default(),
            copy: CopyMethod::Auto,
            events: None,
            require_signed_map: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    /// Reads the file; a missing file means the built-in defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_string(),
            message,
        };
        let config: Config =
            toml::from_str(text).map_err(|e| invalid(one_line_toml_error(&e, text)))?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// The data volume that holds the event log, if any.
    pub fn events_volume(&self) -> Option<&DataVolume> {
        let name = self.events.as_deref().unwrap_or(DEFAULT_EVENTS_VOLUME);
        self.data.iter().find(|d| d.name == name)
    }

    fn validate(&self) -> Result<(), String> {
        let mut names = vec![&self.root.name, &self.snapshot.name, &self.pool.name];
        names.extend(self.data.iter().map(|d| &d.name));
        for name in std::iter::once(&self.vg).chain(names.iter().copied()) {
            if !valid_lvm_name(name) {
                return Err(format!(
                    "invalid LVM name {name:?}: use letters, digits, '.', '_', '-', '+', not starting with '-'"
                ));
            }
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(format!("the volume name {name:?} is used twice"));
            }
        }
        let mut mounts: Vec<&str> = vec!["/", "/boot"];
        for d in &self.data {
            let m = d.mount.as_str();
            if !m.starts_with('/')
                || m.contains(char::is_whitespace)
                || m.split('/').any(|c| c == "..")
            {
                return Err(format!(
                    "data volume {:?}: mount {m:?} must be an absolute path without spaces",
                    d.name
                ));
            }
            if mounts.contains(&m.trim_end_matches('/')) || mounts.contains(&m) {
                return Err(format!(
                    "data volume {:?}: mount point {m} is already used",
                    d.name
                ));
            }
            mounts.push(m);
        }
        if self.boot_size < 64 * 1024 * 1024 {
            return Err(
                "boot_size must be at least 64M (it holds kernels and initramfs images)".into(),
            );
        }
        if self.target != TARGET_AUTO && !self.target.starts_with("/dev/") {
            return Err(format!(
                "target {:?} must be \"auto\" or a device path under /dev",
                self.target
            ));
        }
        if let Some(name) = self.events.as_deref().filter(|n| !n.is_empty()) {
            if self.events_volume().is_none() {
                return Err(format!(
                    "events = {name:?} is not one of the data volumes: name one (the event log must outlive resets and rollbacks), or \"\" for none"
                ));
            }
        }
        if let (RootLayout::Thin, Size::Bytes(root), Size::Bytes(pool)) =
            (self.layout, self.root.size, self.pool.size)
        {
            if root > pool {
                return Err(format!(
                    "[root] size ({}) is larger than [pool] size ({}): the root alone could fill the thin pool",
                    crate::units::human(root),
                    crate::units::human(pool)
                ));
            }
        }
        if !(1..=MAX_POOL_THRESHOLD).contains(&self.pool.threshold) {
            return Err(format!("pool.threshold must be from 1 to {MAX_POOL_THRESHOLD} (percent): past LVM's own threshold (90 in the golden's /etc/lvm/lvmlocal.conf) LVM refuses new thin volumes in a pool it cannot grow, and a backup there would fail instead of pruning"));
        }
        if self.restore_points.keep == 0 {
            return Err("restore_points.keep must be at least 1".into());
        }
        let p = &self.provision;
        check_provision_dir(&p.dir).map_err(|e| format!("provision.dir {e}"))?;
        if p.hook_timeout == 0 {
            return Err("provision.hook_timeout must be at least 1 (seconds)".into());
        }
        if self.boot.tries > MAX_BOOT_TRIES {
            return Err(format!(
                "boot.tries must be from 0 (no boot counting) to {MAX_BOOT_TRIES}"
            ));
        }
        if self.boot.check_timeout == 0 {
            return Err("boot.check_timeout must be at least 1 (seconds)".into());
        }
        // The health checks run before a boot can be marked good.
        if self.boot.deadline != 0 && self.boot.deadline <= self.boot.check_timeout {
            return Err(format!(
                "boot.deadline must be 0 (none) or more than boot.check_timeout ({} s)",
                self.boot.check_timeout
            ));
        }
        Ok(())
    }
}

/// A provisioning directory (`provision.dir`, `zshield.provision=`) is a
/// path in the golden root.
pub fn check_provision_dir(dir: &str) -> Result<(), String> {
    if !dir.starts_with('/') || dir.split('/').any(|c| c == "..") {
        return Err(format!(
            "{dir:?} must be an absolute path in the golden, without '..'"
        ));
    }
    Ok(())
}

/// LVM's own rules for VG and LV names (lvm(8), "VALID NAMES").
fn valid_lvm_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
}

/// toml's messages span several lines with a caret; a failure line must be one.
fn one_line_toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let source_line = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line} ({source_line}): {message}")
        }
        None => message,
    }
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Size::bytes(n).map_err(serde::de::Error::custom),
        Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
}

fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match size(d)? {
        Size::Bytes(b) => Ok(b),
        Size::PercentOfVg(_) => Err(serde::de::Error::custom(
            "this size cannot be a share of the VG",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MIB;

    #[test]
    fn provision_settings_have_defaults_and_are_checked() {
        let c = Config::parse("", "t").unwrap();
        assert_eq!(c.provision, ProvisionConfig::default());
        let c = Config::parse(
            "[provision]\ndir = \"/opt/line-a\"\nhook_timeout = 5\ncontinue_on_hook_failure = true\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            (
                c.provision.dir.as_str(),
                c.provision.hook_timeout,
                c.provision.continue_on_hook_failure
            ),
            ("/opt/line-a", 5, true)
        );
        let err = Config::parse("[provision]\ndir = \"provision\"\n", "t").unwrap_err();
        assert!(
            err.to_string()
                .contains("provision.dir \"provision\" must be an absolute path"),
            "{err}"
        );
        let err = Config::parse("[provision]\nhook_timeout = 0\n", "t").unwrap_err();
        assert!(
            err.to_string().contains("hook_timeout must be at least 1"),
            "{err}"
        );
        let err = Config::parse("[provision]\nhooks = 1\n", "t").unwrap_err();
        assert!(err.to_string().contains("hooks"), "{err}");
    }

    #[test]
    fn boot_counting_defaults_to_three_tries_and_can_be_turned_off() {
        let c = Config::parse("", "t").unwrap();
        assert_eq!((c.boot.tries, c.boot.check_timeout), (3, 120));
        let c = Config::parse("[boot]\ntries = 0\ncheck_timeout = 30\n", "t").unwrap();
        assert_eq!((c.boot.tries, c.boot.check_timeout), (0, 30));
        let err = Config::parse("[boot]\ntries = 10\n", "t").unwrap_err();
        assert!(
            err.to_string().contains("boot.tries must be from 0"),
            "{err}"
        );
        let err = Config::parse("[boot]\ncheck_timeout = 0\n", "t").unwrap_err();
        assert!(err.to_string().contains("check_timeout"), "{err}");
        assert_eq!((c.boot.deadline, c.boot.emergency_timeout), (900, 120));
        let err = Config::parse("[boot]\ndeadline = 100\n", "t").unwrap_err();
        assert!(
            err.to_string()
                .contains("more than boot.check_timeout (120 s)"),
            "{err}"
        );
        let c = Config::parse("[boot]\ndeadline = 0\nemergency_timeout = 0\n", "t").unwrap();
        assert_eq!((c.boot.deadline, c.boot.emergency_timeout), (0, 0));
        assert_eq!(c.boot.firmware, Firmware::Auto);
        let c = Config::parse("[boot]\nfirmware = \"uefi\"\n", "t").unwrap();
        assert_eq!(c.boot.firmware, Firmware::Uefi);
        let err = Config::parse("[boot]\nfirmware = \"efi\"\n", "t").unwrap_err();
        assert!(err.to_string().contains("firmware"), "{err}");
    }

    const SMALL: &str = r#"
target = "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_ZTARGET"
label = "msdos"
boot_size = "256M"
vg = "vgroup"
[root]
name = "lv-root"
size = "1280M"
[snapshot]
name = "snap0"
size = "25%VG"
[[data]]
name = "lv-user"
size = 268435456
mount = "/home"
"#;

    #[test]
    fn sizes_too_large_for_any_disk_are_refused_with_their_key() {
        for text in [
            "boot_size = 18446744073709551615\n",
            "boot_size = \"16777216T\"\n",
            "[root]\nname = \"lv-root\"\nsize = 1152921504606846977\n",
        ] {
            let err = Config::parse(text, "t").unwrap_err().to_string();
            assert!(
                err.contains("1 EiB") && err.contains("line "),
                "{text}: {err}"
            );
        }
        assert!(Config::parse("boot_size = \"1024T\"\n", "t").is_ok());
    }

    #[test]
    fn defaults_follow_the_product() {
        let c = Config::default();
        assert_eq!(c.target, TARGET_AUTO);
        assert_eq!(c.vg, "vgroup");
        assert_eq!(c.root.size, Size::Bytes(100 * GIB));
        assert_eq!(c.snapshot.name, "snap0");
        assert_eq!(c.data.len(), 2);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn the_shipped_config_is_the_default() {
        let shipped = include_str!("../etc/zshield.conf");
        assert_eq!(
            Config::parse(shipped, "etc/zshield.conf").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn parses_a_small_config() {
        let c = Config::parse(SMALL, "test").unwrap();
        assert_eq!(c.label, Label::Msdos);
        assert_eq!(c.boot_size, 256 * MIB);
        assert_eq!(c.root.size, Size::Bytes(1280 * MIB));
        assert_eq!(c.snapshot.size, Size::PercentOfVg(25));
        assert_eq!(c.data[0].size, Size::Bytes(256 * MIB));
        assert_eq!(c.golden, None);
    }

    #[test]
    fn the_event_log_is_on_a_data_volume() {
        assert_eq!(Config::default().events_volume().unwrap().name, "lv-audit");
        let c = Config::parse("events = \"lv-user\"\n", "t").unwrap();
        assert_eq!(c.events_volume().unwrap().mount, "/home");
        assert_eq!(
            Config::parse("events = \"\"\n", "t")
                .unwrap()
                .events_volume(),
            None
        );
        let e = error_of("events = \"lv-root\"\n");
        assert!(
            e.contains("events = \"lv-root\" is not one of the data volumes"),
            "{e}"
        );
    }

    #[test]
    fn the_pool_holds_at_least_the_root() {
        let e = error_of("[root]\nname = \"lv-root\"\nsize = \"2G\"\n[pool]\nsize = \"1G\"\n");
        assert!(e.contains("larger than [pool] size"), "{e}");
        assert!(Config::parse("layout = \"classic\"\n[root]\nname = \"lv-root\"\nsize = \"2G\"\n[pool]\nsize = \"1G\"\n", "t").is_ok());
        assert!(error_of("[pool]\nthreshold = 99\n").contains("pool.threshold"));
        assert!(error_of("[restore_points]\nkeep = 0\n").contains("keep"));
    }

    #[test]
    fn missing_keys_take_defaults() {
        let c = Config::parse("target = \"/dev/vdb\"\n", "t").unwrap();
        assert_eq!(c.target, "/dev/vdb");
        assert_eq!(c.snapshot, Config::default().snapshot);
    }

    fn error_of(text: &str) -> String {
        Config::parse(text, "/etc/zshield/zshield.conf")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn malformed_config_names_key_and_line() {
        let e = error_of("vg = \"vgroup\"\nboot_size = \"lots\"\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("boot_size"), "{e}");
        assert!(e.contains("/etc/zshield/zshield.conf"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");

        let e = error_of("vg = \"vgroup\"\n\ntarrget = \"/dev/sdb\"\n");
        assert!(e.contains("line 3") && e.contains("tarrget"), "{e}");

        let e = error_of("label = \"dos\"\n");
        assert!(e.contains("line 1") && e.contains("dos"), "{e}");
    }

    #[test]
    fn rejects_bad_names_and_mounts() {
        assert!(error_of("vg = \"my vg\"\n").contains("invalid LVM name"));
        assert!(error_of("[snapshot]\nname = \"lv-root\"\nsize = \"1G\"\n").contains("used twice"));
        assert!(
            error_of("[[data]]\nname = \"d\"\nsize = \"1G\"\nmount = \"data\"\n")
                .contains("absolute")
        );
        assert!(
            error_of("[[data]]\nname = \"d\"\nsize = \"1G\"\nmount = \"/boot\"\n")
                .contains("already used")
        );
        assert!(error_of("boot_size = \"10%VG\"\n").contains("share of the VG"));
        assert!(error_of("boot_size = \"1M\"\n").contains("at least 64M"));
        assert!(error_of("target = \"sdb\"\n").contains("under /dev"));
    }
}
