//! The kernel command line: what recovery, if any, this boot asks for.
//!
//! Read from `/proc/cmdline` and from dracut's `/etc/cmdline.d/*.conf`, so that
//! an image can carry its options in the initramfs as dracut allows; what
//! asks for a recovery, consents to a wipe or names the target comes from the
//! boot entry alone. Bytes that are not UTF-8 (a Latin-1 hostname) are read,
//! never a reason to skip a line.

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Factory reset / first-boot provisioning.
    Default,
    /// Roll back to the latest snapshot.
    Latest,
    /// The card's start entry: provision a blank disk or finish one cut off;
    /// leave a complete system alone.
    Auto,
}

impl Mode {
    /// Whether this mode is a factory reset (explicit or automatic).
    pub fn resets(self) -> bool {
        matches!(self, Mode::Default | Mode::Auto)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Default => "default",
            Mode::Latest => "latest",
            Mode::Auto => "auto",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Mode::Default),
            "latest" => Ok(Mode::Latest),
            "auto" => Ok(Mode::Auto),
            other => Err(format!(
                "unknown recovery mode {other:?}: expected \"default\", \"latest\" or \"auto\""
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

/// `zshield.wipe`: the operator's consent to erase a disk that holds
/// something zshield did not make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Wipe {
    #[default]
    No,
    /// A bare `zshield.wipe`: whatever disk is the target, taken only when
    /// one disk alone could be.
    Any,
    /// `zshield.wipe=<serial>` (or WWN, or by-path name): that disk only.
    Disk(String),
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
    pub wipe: Wipe,
    /// `root=` of this boot: the golden root unless configured otherwise.
    pub root: Option<String>,
    /// Test only (a binary built with the `failpoints` feature):
    /// `zshield.test.cut_after=STEP` cuts the power (no sync, no unmount)
    /// right after the first step of that kind, as a power loss would.
    pub cut_after: Option<String>,
    /// Test only: `zshield.test.crash_after=STEP` kills zshield's process
    /// right after the first step of that kind.
    pub crash_after: Option<String>,
    /// Test only: `zshield.test.digests=skip` copies the golden by blocks
    /// without checking them, to measure what checking costs.
    pub skip_digests: bool,
    /// `zshield.provision=DIR`: another provisioning directory of the golden
    /// (one golden, several product lines).
    pub provision: Option<String>,
    /// `zshield.copy=auto|blocks|files`: how to copy the golden root, this once.
    pub copy: Option<String>,
    /// `zshield.layout=thin|classic`: how this reset keeps the root and its
    /// restore points.
    pub layout: Option<String>,
    /// `zshield.backup=NAME`: the restore point a rollback brings back
    /// (the newest without it).
    pub backup: Option<String>,
    /// `zshield.fallback=boot-tries`: GRUB started this rollback on its own,
    /// the disk's boot tries being used up (grub/40_zshield).
    pub fallback: bool,
    /// What is wrong with the arguments, one sentence each: a recovery asked
    /// for with any of these does not run.
    pub problems: Vec<String>,
    /// Arguments only the boot entry may give (`zshield_recovery=`,
    /// `zshield.wipe`, `zshield.target=`) found outside it, and ignored.
    pub ignored: Vec<String>,
}

/// The zshield arguments this binary knows.
fn known_keys() -> Vec<&'static str> {
    let mut keys = vec![
        "zshield_recovery",
        "zshield.target",
        "zshield.golden",
        "zshield.after",
        "zshield.dry_run",
        "zshield.wipe",
        "zshield.provision",
        "zshield.copy",
        "zshield.layout",
        "zshield.backup",
        FALLBACK_KEY,
    ];
    if cfg!(feature = "failpoints") {
        keys.extend([FAILPOINT_KEY, CRASH_KEY, DIGESTS_KEY]);
    }
    keys
}

const FAILPOINT_KEY: &str = "zshield.test.cut_after";
const CRASH_KEY: &str = "zshield.test.crash_after";
const DIGESTS_KEY: &str = "zshield.test.digests";
const FALLBACK_KEY: &str = "zshield.fallback";

/// What a file baked into an image must never say: it would ask for a
/// recovery, consent to a wipe or choose the disk at every boot of the golden
/// and of every disk made from it.
const BOOT_ENTRY_ONLY: [&str; 3] = ["zshield_recovery", "zshield.wipe", "zshield.target"];

/// Where the arguments come from: the boot entry (`/proc/cmdline`) or a
/// file of the initramfs (`/etc/cmdline.d/NAME.conf`).
pub const PROC_CMDLINE: &str = "/proc/cmdline";

impl BootArgs {
    /// Parses the boot entry's command line alone.
    pub fn parse(text: &str) -> BootArgs {
        BootArgs::parse_sources(&[(PROC_CMDLINE.to_string(), text.to_string())])
    }

    /// Parses command lines in order, each named by where it comes from; a
    /// later option wins, as in the kernel. Only the boot entry may ask for a
    /// recovery: a command line built into the initramfs would ask for it at
    /// every boot, of the golden and of every disk provisioned from it.
    pub fn parse_sources(sources: &[(String, String)]) -> BootArgs {
        let mut args = BootArgs::default();
        let known = known_keys();
        for (source, text) in sources {
            for word in split_words(text) {
                let (key, value) = match word.split_once('=') {
                    Some((k, v)) => (k, Some(v.to_string())),
                    None => (word.as_str(), None),
                };
                let ours = key.starts_with("zshield.") || key.starts_with("zshield_");
                if ours && !known.contains(&key) {
                    args.problems.push(format!(
                        "unknown argument {word} (did you mean {}?)",
                        nearest(key, &known)
                    ));
                    continue;
                }
                if ours && word.contains(char::REPLACEMENT_CHARACTER) {
                    args.problems.push(format!(
                        "{word} (from {source}) has bytes that are not UTF-8"
                    ));
                    continue;
                }
                if source != PROC_CMDLINE && BOOT_ENTRY_ONLY.contains(&key) {
                    args.ignored.push(format!("{word} from {source}"));
                    continue;
                }
                let non_empty = || value.clone().filter(|v| !v.is_empty());
                match key {
                    "zshield_recovery" => {
                        let asked = non_empty();
                        if let (Some(before), Some(now)) = (&args.recovery, &asked) {
                            if before != now {
                                args.problems.push(format!(
                                    "zshield_recovery={before} and zshield_recovery={now} both given: say one"
                                ));
                            }
                        }
                        args.recovery = asked.or(args.recovery.take());
                    }
                    "zshield.target" => args.target = non_empty(),
                    "zshield.golden" => args.golden = non_empty(),
                    "zshield.after" => args.after = non_empty(),
                    "zshield.dry_run" => args.dry_run = args.flag(&word, value.as_deref()),
                    "zshield.wipe" => args.wipe = Wipe::from_value(value.as_deref()),
                    "root" => args.root = non_empty(),
                    "zshield.provision" => args.provision = non_empty(),
                    "zshield.copy" => args.copy = non_empty(),
                    "zshield.layout" => args.layout = non_empty(),
                    "zshield.backup" => args.backup = non_empty(),
                    FAILPOINT_KEY => args.cut_after = non_empty(),
                    CRASH_KEY => args.crash_after = non_empty(),
                    FALLBACK_KEY => match value.as_deref() {
                        Some("boot-tries") => args.fallback = true,
                        _ => args
                            .problems
                            .push(format!("{word}: the only value is boot-tries")),
                    },
                    DIGESTS_KEY => match value.as_deref() {
                        Some("skip") => args.skip_digests = true,
                        _ => args
                            .problems
                            .push(format!("{word}: the only value is skip")),
                    },
                    _ => {}
                }
            }
        }
        args
    }

    /// Reads `/proc/cmdline` and then dracut's `cmdline.d` under `root`
    /// (`/` in production; a fixture directory in tests). Only a boot entry
    /// that cannot be read is an error; a `.conf` that cannot be read is a
    /// problem, so that a recovery asked for stops with its name rather than
    /// running without its options.
    pub fn read(root: &Path) -> std::io::Result<BootArgs> {
        let text =
            |path: &Path| std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned());
        let mut sources = vec![(PROC_CMDLINE.to_string(), text(&root.join("proc/cmdline"))?)];
        let mut unreadable = Vec::new();
        if let Ok(entries) = std::fs::read_dir(root.join("etc/cmdline.d")) {
            let mut confs: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            confs.sort();
            for conf in confs {
                let name = Path::new("/").join(conf.strip_prefix(root).unwrap_or(&conf));
                match text(&conf) {
                    Ok(text) => sources.push((name.display().to_string(), text)),
                    Err(e) => unreadable.push(format!("cannot read {}: {e}", name.display())),
                }
            }
        }
        let mut args = BootArgs::parse_sources(&sources);
        args.problems.extend(unreadable);
        Ok(args)
    }

    /// The recovery asked for, if any; an error when it is unknown or when
    /// anything else of zshield's on the command line is wrong.
    pub fn mode(&self) -> Result<Option<Mode>, String> {
        let Some(asked) = self.recovery.as_deref() else {
            return Ok(None);
        };
        let mode = asked
            .parse::<Mode>()
            .map_err(|e| format!("zshield_recovery: {e}"));
        let mut problems: Vec<String> = mode.as_ref().err().cloned().into_iter().collect();
        problems.extend(self.problems.iter().cloned());
        match (mode, problems.is_empty()) {
            (Ok(mode), true) => Ok(Some(mode)),
            _ => Err(problems.join("; ")),
        }
    }

    /// A flag's value; a value that is none is a problem, and off.
    fn flag(&mut self, word: &str, value: Option<&str>) -> bool {
        flag(value).unwrap_or_else(|| {
            self.problems.push(format!(
                "{word}: a flag takes 1/0, yes/no, true/false or on/off"
            ));
            false
        })
    }

    pub fn after(&self) -> Result<After, String> {
        self.after
            .as_deref()
            .map(str::parse)
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

impl Wipe {
    /// A flag's words say yes or no; any other value names the disk.
    pub fn from_value(value: Option<&str>) -> Wipe {
        match (flag(value), value) {
            (Some(true), _) => Wipe::Any,
            (Some(false), _) => Wipe::No,
            (None, Some(disk)) if !disk.is_empty() => Wipe::Disk(disk.to_string()),
            (None, _) => Wipe::Any,
        }
    }
}

/// A bare flag and 1/yes/true/on are on, 0/no/false/off off (any case);
/// anything else is not a flag value.
fn flag(value: Option<&str>) -> Option<bool> {
    let Some(value) = value else {
        return Some(true);
    };
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// The known key closest to `key`, by edit distance.
fn nearest<'a>(key: &str, known: &[&'a str]) -> &'a str {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut diagonal = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let above = row[j + 1];
                row[j + 1] = (above + 1)
                    .min(row[j] + 1)
                    .min(diagonal + usize::from(ca != *cb));
                diagonal = above;
            }
        }
        row[b.len()]
    };
    known
        .iter()
        .copied()
        .min_by_key(|k| distance(key, k))
        .unwrap_or("zshield_recovery")
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
        assert!(!a.dry_run && a.wipe == Wipe::No);
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
             zshield.provision=/opt/line-b",
        );
        assert_eq!(a.mode(), Ok(Some(Mode::Default)));
        assert_eq!(a.target.as_deref(), Some("/dev/disk/by-id/x"));
        assert_eq!(a.golden.as_deref(), Some("UUID=abc"));
        assert_eq!(a.after(), Ok(After::Poweroff));
        assert!(a.dry_run && a.wipe == Wipe::Any);
        assert_eq!(a.provision.as_deref(), Some("/opt/line-b"));
        assert!(a.problems.is_empty(), "{:?}", a.problems);
    }

    #[test]
    fn unknown_arguments_are_refused_naming_the_nearest_known_one() {
        let cases = [
            (
                "zshield.dry-run",
                "unknown argument zshield.dry-run (did you mean zshield.dry_run?)",
            ),
            (
                "zshield.tagret=/dev/sdc",
                "unknown argument zshield.tagret=/dev/sdc (did you mean zshield.target?)",
            ),
            ("zshield_recover=latest", "(did you mean zshield_recovery?)"),
        ];
        for (arg, said) in cases {
            let err = BootArgs::parse(&format!("zshield_recovery=default {arg}"))
                .mode()
                .unwrap_err();
            assert!(err.contains(said), "{arg}: {err}");
        }
        // A normal boot is not judged: it asks for nothing.
        assert_eq!(BootArgs::parse("zshield.dry-run").mode(), Ok(None));
    }

    #[test]
    fn flags_take_yes_and_no_words_and_nothing_else() {
        let on = |text: &str| BootArgs::parse(&format!("zshield_recovery=default {text}"));
        for (text, wipe) in [
            ("zshield.wipe", Wipe::Any),
            ("zshield.wipe=ON", Wipe::Any),
            ("zshield.wipe=Yes", Wipe::Any),
            ("zshield.wipe=1", Wipe::Any),
            ("zshield.wipe=False", Wipe::No),
            ("zshield.wipe=off", Wipe::No),
            ("zshield.wipe=0", Wipe::No),
            // Anything else names the one disk to erase.
            ("zshield.wipe=ZTARGET", Wipe::Disk("ZTARGET".into())),
            ("zshield.wipe=n", Wipe::Disk("n".into())),
        ] {
            let a = on(text);
            assert_eq!((a.mode().is_ok(), a.wipe), (true, wipe), "{text}");
        }
        for text in ["zshield.dry_run=2", "zshield.dry_run=disable"] {
            let err = on(text).mode().unwrap_err();
            assert!(err.contains(text) && err.contains("yes/no"), "{err}");
        }
    }

    #[test]
    fn grubs_automatic_rollback_names_itself() {
        let a = BootArgs::parse("zshield_recovery=latest zshield.fallback=boot-tries");
        assert!(a.fallback);
        assert_eq!(a.mode(), Ok(Some(Mode::Latest)));
        let wrong = BootArgs::parse("zshield_recovery=latest zshield.fallback=yes");
        assert!(wrong
            .mode()
            .unwrap_err()
            .contains("the only value is boot-tries"));
        assert!(!BootArgs::parse("zshield_recovery=latest").fallback);
    }

    #[test]
    fn the_test_failpoint_is_known_only_to_the_tests_binary() {
        let a = BootArgs::parse(
            "zshield_recovery=default zshield.test.cut_after=copy-root zshield.test.digests=skip",
        );
        if cfg!(feature = "failpoints") {
            assert_eq!(a.cut_after.as_deref(), Some("copy-root"));
            assert!(a.skip_digests);
            assert_eq!(a.mode(), Ok(Some(Mode::Default)));
            let wrong = BootArgs::parse("zshield_recovery=default zshield.test.digests=no");
            assert!(wrong.mode().unwrap_err().contains("the only value is skip"));
        } else {
            assert_eq!(a.cut_after, None);
            assert!(!a.skip_digests);
            assert!(a
                .mode()
                .unwrap_err()
                .contains("unknown argument zshield.test.cut_after"));
        }
    }

    #[test]
    fn unknown_mode_is_an_error_naming_the_value() {
        let err = BootArgs::parse("zshield_recovery=bogus")
            .mode()
            .unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn two_different_recoveries_are_refused_and_a_later_option_wins() {
        let err = BootArgs::parse("zshield_recovery=default zshield_recovery=latest")
            .mode()
            .unwrap_err();
        assert!(
            err.contains("zshield_recovery=default and zshield_recovery=latest"),
            "{err}"
        );
        let a = BootArgs::parse(
            "zshield_recovery=latest zshield_recovery=latest zshield.wipe zshield.wipe=0",
        );
        assert_eq!(a.mode(), Ok(Some(Mode::Latest)));
        let auto = BootArgs::parse("zshield_recovery=auto");
        assert_eq!(auto.mode(), Ok(Some(Mode::Auto)));
        assert!(Mode::Auto.resets() && Mode::Default.resets() && !Mode::Latest.resets());
        assert_eq!(a.wipe, Wipe::No);
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
    fn only_the_boot_entry_asks_for_a_recovery() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::create_dir_all(dir.join("etc/cmdline.d")).unwrap();
        std::fs::write(dir.join("proc/cmdline"), "root=/dev/sda2 ro\n").unwrap();
        std::fs::write(
            dir.join("etc/cmdline.d/50-zshield.conf"),
            "zshield_recovery=default zshield.after=poweroff zshield.wipe zshield.target=/dev/sdc\n",
        )
        .unwrap();
        std::fs::write(dir.join("etc/cmdline.d/ignored.txt"), "zshield.wipe\n").unwrap();
        let a = BootArgs::read(dir).unwrap();
        // Built into an initramfs it would reset the disk at every boot, and
        // consent to a wipe or choose the disk for every recovery of it.
        assert_eq!(a.mode(), Ok(None));
        assert_eq!(
            a.ignored,
            [
                "zshield_recovery=default from /etc/cmdline.d/50-zshield.conf",
                "zshield.wipe from /etc/cmdline.d/50-zshield.conf",
                "zshield.target=/dev/sdc from /etc/cmdline.d/50-zshield.conf"
            ]
        );
        // Other options do come from cmdline.d, and only from its .conf files.
        assert_eq!(a.after(), Ok(After::Poweroff));
        assert_eq!((a.wipe, a.target), (Wipe::No, None));
        std::fs::write(dir.join("proc/cmdline"), "zshield_recovery=latest\n").unwrap();
        assert_eq!(BootArgs::read(dir).unwrap().mode(), Ok(Some(Mode::Latest)));
    }

    #[test]
    fn bytes_that_are_not_utf8_never_hide_a_recovery() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::create_dir_all(dir.join("etc/cmdline.d")).unwrap();
        // A Latin-1 hostname on the boot entry and in a .conf.
        std::fs::write(
            dir.join("proc/cmdline"),
            b"hostname=m\xfcnchen zshield_recovery=default zshield.wipe=S3R1AL\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("etc/cmdline.d/10-host.conf"),
            b"hostname=k\xf6ln\n",
        )
        .unwrap();
        let a = BootArgs::read(dir).unwrap();
        assert_eq!(a.mode(), Ok(Some(Mode::Default)));
        assert_eq!(a.wipe, Wipe::Disk("S3R1AL".into()));
        // In a zshield argument such a byte is refused, never guessed at.
        std::fs::write(
            dir.join("proc/cmdline"),
            b"zshield_recovery=default zshield.target=/dev/sd\xe9\n",
        )
        .unwrap();
        let e = BootArgs::read(dir).unwrap().mode().unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn an_unreadable_conf_stops_a_recovery_and_says_which() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        // A directory named like a .conf cannot be read as one.
        std::fs::create_dir_all(dir.join("etc/cmdline.d/20-broken.conf")).unwrap();
        std::fs::write(dir.join("proc/cmdline"), "ro\n").unwrap();
        assert_eq!(BootArgs::read(dir).unwrap().mode(), Ok(None));
        std::fs::write(dir.join("proc/cmdline"), "zshield_recovery=latest\n").unwrap();
        let e = BootArgs::read(dir).unwrap().mode().unwrap_err();
        assert!(
            e.contains("cannot read /etc/cmdline.d/20-broken.conf"),
            "{e}"
        );
    }
}
