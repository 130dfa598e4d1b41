//! The kernel command line: what recovery, if any, this boot asks for.
//!
//! Read from `/proc/cmdline` and from dracut's `/etc/cmdline.d/*.conf`, so that
//! an image can carry its arguments in the initramfs as dracut allows.

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Factory reset / first-boot provisioning.
    Default,
    /// Roll back to the latest snapshot.
    Latest,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Default => "default",
            Mode::Latest => "latest",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Mode::Default),
            "latest" => Ok(Mode::Latest),
            other => Err(format!(
                "unknown recovery mode {other:?}: expected \"default\" or \"latest\""
            )),
        }
    }
}

/// What to do once the recovery has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    #[default]
    Reboot,
    Poweroff,
    /// Go on with the normal boot of the golden image.
    Continue,
}

impl std::str::FromStr for After {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reboot" => Ok(After::Reboot),
            "poweroff" => Ok(After::Poweroff),
            "continue" => Ok(After::Continue),
            other => Err(format!(
                "unknown zshield.after={other:?}: expected reboot, poweroff or continue"
            )),
        }
    }
}

/// The zshield arguments of one boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootArgs {
    /// `zshield_recovery=`: None when absent or empty (a normal boot).
    pub recovery: Option<String>,
    pub target: Option<String>,
    pub golden: Option<String>,
    pub after: Option<String>,
    pub dry_run: bool,
    pub wipe: bool,
    /// `root=` of this boot: the golden root unless configured otherwise.
    pub root: Option<String>,
    /// Test only: `zshield.test.cut_after=STEP` cuts the power (no sync, no
    /// unmount) right after the first step of that kind, as a power loss would.
    pub cut_after: Option<String>,
    /// `zshield.provision=DIR`: another provisioning directory of the golden
    /// (one golden, several product lines).
    pub provision: Option<String>,
}

impl BootArgs {
    /// Parses one or more command lines; a later argument wins, as in the kernel.
    pub fn parse(text: &str) -> BootArgs {
        let mut args = BootArgs::default();
        for word in split_words(text) {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (word.as_str(), None),
            };
            let non_empty = || value.clone().filter(|v| !v.is_empty());
            match key {
                "zshield_recovery" => args.recovery = non_empty(),
                "zshield.target" => args.target = non_empty(),
                "zshield.golden" => args.golden = non_empty(),
                "zshield.after" => args.after = non_empty(),
                "zshield.dry_run" => args.dry_run = flag(value.as_deref()),
                "zshield.wipe" => args.wipe = flag(value.as_deref()),
                "root" => args.root = non_empty(),
                "zshield.test.cut_after" => args.cut_after = non_empty(),
                "zshield.provision" => args.provision = non_empty(),
                _ => {}
            }
        }
        args
    }

    /// Reads `/proc/cmdline` and then dracut's `cmdline.d` under `root`
    /// (`/` in production; a fixture directory in tests).
    pub fn read(root: &Path) -> std::io::Result<BootArgs> {
        let mut text = std::fs::read_to_string(root.join("proc/cmdline"))?;
        if let Ok(entries) = std::fs::read_dir(root.join("etc/cmdline.d")) {
            let mut confs: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            confs.sort();
            for conf in confs {
                text.push(' ');
                text.push_str(&std::fs::read_to_string(conf)?);
            }
        }
        Ok(BootArgs::parse(&text))
    }

    pub fn mode(&self) -> Result<Option<Mode>, String> {
        self.recovery.as_deref().map(str::parse).transpose()
    }

    pub fn after(&self) -> Result<After, String> {
        self.after
            .as_deref()
            .map(str::parse)
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

/// `zshield.wipe` and `zshield.wipe=1` are on; `=0`, `=no`, `=false` are off.
fn flag(value: Option<&str>) -> bool {
    !matches!(value, Some("0" | "no" | "false" | "off"))
}

/// Splits a command line into words, honouring double quotes like the kernel.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_boot_asks_for_nothing() {
        let a = BootArgs::parse("BOOT_IMAGE=/vmlinuz root=LABEL=golden-root ro quiet\n");
        assert_eq!(a.mode(), Ok(None));
        assert_eq!(a.root.as_deref(), Some("LABEL=golden-root"));
        assert!(!a.dry_run && !a.wipe);
    }

    #[test]
    fn empty_recovery_is_a_normal_boot() {
        assert_eq!(BootArgs::parse("zshield_recovery= ro").mode(), Ok(None));
    }

    #[test]
    fn reads_every_zshield_argument() {
        let a = BootArgs::parse(
            "root=/dev/sda2 zshield_recovery=default zshield.target=/dev/disk/by-id/x \
             zshield.golden=UUID=abc zshield.after=poweroff zshield.dry_run zshield.wipe \
             zshield.test.cut_after=copy-root zshield.provision=/opt/line-b",
        );
        assert_eq!(a.mode(), Ok(Some(Mode::Default)));
        assert_eq!(a.target.as_deref(), Some("/dev/disk/by-id/x"));
        assert_eq!(a.golden.as_deref(), Some("UUID=abc"));
        assert_eq!(a.after(), Ok(After::Poweroff));
        assert!(a.dry_run && a.wipe);
        assert_eq!(a.cut_after.as_deref(), Some("copy-root"));
        assert_eq!(a.provision.as_deref(), Some("/opt/line-b"));
    }

    #[test]
    fn unknown_mode_is_an_error_naming_the_value() {
        let err = BootArgs::parse("zshield_recovery=bogus")
            .mode()
            .unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn later_argument_wins_and_flags_can_be_turned_off() {
        let a = BootArgs::parse("zshield_recovery=default zshield_recovery=latest zshield.wipe=0");
        assert_eq!(a.mode(), Ok(Some(Mode::Latest)));
        assert!(!a.wipe);
    }

    #[test]
    fn quotes_keep_spaces_together() {
        let a = BootArgs::parse("zshield.golden=\"LABEL=my root\" x");
        assert_eq!(a.golden.as_deref(), Some("LABEL=my root"));
    }

    #[test]
    fn after_defaults_to_reboot_and_rejects_unknown_values() {
        assert_eq!(BootArgs::parse("").after(), Ok(After::Reboot));
        assert!(BootArgs::parse("zshield.after=halt").after().is_err());
    }

    #[test]
    fn reads_dracut_cmdline_d_after_proc_cmdline() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::create_dir_all(dir.join("etc/cmdline.d")).unwrap();
        std::fs::write(dir.join("proc/cmdline"), "root=/dev/sda2 ro\n").unwrap();
        std::fs::write(
            dir.join("etc/cmdline.d/50-zshield.conf"),
            "zshield_recovery=latest\n",
        )
        .unwrap();
        std::fs::write(dir.join("etc/cmdline.d/ignored.txt"), "zshield.wipe\n").unwrap();
        let a = BootArgs::read(dir).unwrap();
        assert_eq!(a.mode(), Ok(Some(Mode::Latest)));
        assert!(!a.wipe);
    }
}
