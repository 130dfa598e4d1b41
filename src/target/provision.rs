//! Per-unit provisioning after the golden copy: the install manifest
//! (`files.install` with its `files/` directory) and the ordered hooks
//! (`hooks/NN_name.sh`) of the golden's provisioning directory.
//!
//! Everything is read and checked in the probe, before a disk is written;
//! files are installed and hooks run in the target after the copy.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::accounts::id_of;
use crate::config::ProvisionConfig;
use crate::disk::mounts::MountStack;
use crate::inroot::resolve_in_root;
use crate::runner::Cmd;

pub const MANIFEST: &str = "files.install";
pub const FILES_DIR: &str = "files";
pub const HOOKS_DIR: &str = "hooks";

/// A section of the manifest: GENERIC applies everywhere, the others on one
/// architecture each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Section {
    Generic,
    X86,
    Arm,
    Mips,
}

impl Section {
    const ALL: [(&'static str, Section); 4] = [
        ("GENERIC", Section::Generic),
        ("X86", Section::X86),
        ("ARM", Section::Arm),
        ("MIPS", Section::Mips),
    ];

    fn from_name(name: &str) -> Option<Section> {
        Section::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
    }

    /// The section of a Rust target architecture (`std::env::consts::ARCH`).
    pub fn for_arch(arch: &str) -> Option<Section> {
        match arch {
            "x86_64" => Some(Section::X86),
            "aarch64" => Some(Section::Arm),
            "mips64" => Some(Section::Mips),
            _ => None,
        }
    }
}

/// One line of the manifest, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub section: Section,
    /// A path under `files/`.
    pub source: String,
    /// An absolute path in the target.
    pub destination: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

/// A file to install, with its owner resolved in the target's passwd/group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallFile {
    pub source: String,
    pub destination: String,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub uid: u32,
    pub gid: u32,
}

impl fmt::Display for InstallFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:04o} {}:{})",
            self.destination, self.mode, self.owner, self.group
        )
    }
}

/// A hook, `NN_name.sh`, run in order of NN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    pub order: u32,
    pub name: String,
}

impl Hook {
    /// `90_factory_test.sh`: how an OEM runs its factory test.
    pub fn is_factory_test(&self) -> bool {
        self.name.contains("factory_test")
    }
}

/// What the provisioning directory asks for on this architecture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Provision {
    /// The directory, as a path in the golden root (and so in its copy).
    pub dir: String,
    pub arch: String,
    pub files: Vec<InstallFile>,
    pub hooks: Vec<Hook>,
    pub hook_timeout_secs: u64,
    pub continue_on_hook_failure: bool,
}

/// Parses the manifest; errors name the file and the line.
pub fn parse(text: &str, path: &str) -> Result<Vec<Entry>, String> {
    let mut section = None;
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let at = |message: String| format!("{path} line {line}: {message}");
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        if content.starts_with('[') {
            let name = content
                .strip_prefix("[[")
                .and_then(|s| s.strip_suffix("]]"))
                .filter(|n| !n.is_empty() && !n.contains(['[', ']']))
                .ok_or_else(|| {
                    at(format!(
                        "malformed section header {content:?}: write [[GENERIC]], [[X86]], [[ARM]] or [[MIPS]]"
                    ))
                })?;
            section = Some(Section::from_name(name).ok_or_else(|| {
                at(format!(
                    "unknown section [[{name}]]: the sections are GENERIC, X86, ARM and MIPS"
                ))
            })?);
            continue;
        }
        let section = section.ok_or_else(|| {
            at(
                "an entry before any section: start with [[GENERIC]], [[X86]], [[ARM]] or [[MIPS]]"
                    .into(),
            )
        })?;
        let fields: Vec<&str> = content.split_whitespace().collect();
        let [source, destination, mode, owner_group] = fields[..] else {
            return Err(at(format!(
                "expected 'file destination mode owner:group', found {} field{}",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" }
            )));
        };
        if source.starts_with('/') || source.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(at(format!(
                "the file {source:?} must be a relative path under {FILES_DIR}/, without '..'"
            )));
        }
        if !destination.starts_with('/')
            || destination.ends_with('/')
            || destination.split('/').any(|c| c == ".." || c == ".")
        {
            return Err(at(format!(
                "the destination {destination:?} must be an absolute file path, without '..'"
            )));
        }
        let mode = parse_mode(mode).ok_or_else(|| {
            at(format!(
                "bad mode {mode:?}: write it in octal, such as 0644 or 0755"
            ))
        })?;
        let (owner, group) = owner_group
            .split_once(':')
            .filter(|(o, g)| !o.is_empty() && !g.is_empty() && !g.contains(':'))
            .ok_or_else(|| {
                at(format!(
                    "bad owner {owner_group:?}: write owner:group, such as root:root"
                ))
            })?;
        entries.push(Entry {
            line,
            section,
            source: source.into(),
            destination: destination.into(),
            mode,
            owner: owner.into(),
            group: group.into(),
        });
    }
    Ok(entries)
}

fn parse_mode(text: &str) -> Option<u32> {
    if !(3..=4).contains(&text.len()) {
        return None;
    }
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
}

/// The entries for `arch`, checked against the target: each source exists
/// (`source_is_file`), each owner and group is known to the target, and no
/// destination is installed twice.
pub fn resolve(
    entries: &[Entry],
    arch: Section,
    path: &str,
    passwd: &str,
    group: &str,
    source_is_file: impl Fn(&str) -> bool,
) -> Result<Vec<InstallFile>, String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut files = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.section == Section::Generic || e.section == arch)
    {
        let at = |message: String| format!("{path} line {}: {message}", e.line);
        if let Some(first) = seen.insert(&e.destination, e.line) {
            return Err(at(format!(
                "{} is installed twice (also line {first})",
                e.destination
            )));
        }
        if !source_is_file(&e.source) {
            return Err(at(format!(
                "the file {FILES_DIR}/{} is missing from the golden",
                e.source
            )));
        }
        let uid = id_of(passwd, &e.owner).ok_or_else(|| {
            at(format!(
                "unknown owner {:?}: no such user in the target's /etc/passwd",
                e.owner
            ))
        })?;
        let gid = id_of(group, &e.group).ok_or_else(|| {
            at(format!(
                "unknown group {:?}: no such group in the target's /etc/group",
                e.group
            ))
        })?;
        files.push(InstallFile {
            source: e.source.clone(),
            destination: e.destination.clone(),
            mode: e.mode,
            owner: e.owner.clone(),
            group: e.group.clone(),
            uid,
            gid,
        });
    }
    Ok(files)
}

/// Orders the hook file names; every file in `hooks/` must be `NN_name.sh`.
pub fn order_hooks(names: &[String]) -> Result<Vec<Hook>, String> {
    let mut hooks = Vec::new();
    for name in names {
        let parsed = name
            .strip_suffix(".sh")
            .and_then(|stem| stem.split_once('_'))
            .filter(|(nn, rest)| {
                !nn.is_empty() && nn.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
            })
            .and_then(|(nn, _)| nn.parse::<u32>().ok());
        let order = parsed.ok_or_else(|| {
            format!(
                "{HOOKS_DIR}/{name}: a hook must be named NN_name.sh (NN: its place in the order)"
            )
        })?;
        hooks.push(Hook {
            order,
            name: name.clone(),
        });
    }
    hooks.sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));
    Ok(hooks)
}

/// Reads and checks the provisioning directory in the (read-only) golden
/// root. No directory: nothing to provision.
pub fn load(golden_root: &Path, settings: &ProvisionConfig) -> Result<Provision> {
    let arch = std::env::consts::ARCH;
    let section = Section::for_arch(arch)
        .with_context(|| format!("no manifest section for the architecture {arch}"))?;
    let dir = golden_root.join(settings.dir.trim_start_matches('/'));
    let mut provision = Provision {
        dir: settings.dir.to_string(),
        arch: arch.to_string(),
        hook_timeout_secs: settings.hook_timeout,
        continue_on_hook_failure: settings.continue_on_hook_failure,
        ..Provision::default()
    };
    if !dir.is_dir() {
        log::debug!("no provisioning directory {} in the golden", settings.dir);
        return Ok(provision);
    }
    let manifest = dir.join(MANIFEST);
    if manifest.exists() {
        let shown = format!("{}/{MANIFEST}", settings.dir);
        let text =
            std::fs::read_to_string(&manifest).with_context(|| format!("cannot read {shown}"))?;
        let entries = parse(&text, &shown).map_err(anyhow::Error::msg)?;
        let etc = |name: &str| {
            resolve_in_root(golden_root, Path::new("etc").join(name))
                .and_then(|path| Ok(std::fs::read_to_string(path)?))
                .with_context(|| format!("cannot read the golden's /etc/{name}"))
        };
        let files_dir = dir.join(FILES_DIR);
        provision.files = resolve(
            &entries,
            section,
            &shown,
            &etc("passwd")?,
            &etc("group")?,
            |source| files_dir.join(source).is_file(),
        )
        .map_err(anyhow::Error::msg)?;
    }
    let hooks_dir = dir.join(HOOKS_DIR);
    if hooks_dir.is_dir() {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&hooks_dir)
            .with_context(|| format!("cannot list {}/{HOOKS_DIR}", settings.dir))?
        {
            let entry =
                entry.with_context(|| format!("cannot list {}/{HOOKS_DIR}", settings.dir))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        provision.hooks =
            order_hooks(&names).map_err(|e| anyhow::anyhow!("{}/{e}", settings.dir))?;
        for hook in &provision.hooks {
            let meta = std::fs::metadata(hooks_dir.join(&hook.name)).with_context(|| {
                format!("cannot read {}/{HOOKS_DIR}/{}", settings.dir, hook.name)
            })?;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                bail!(
                    "{}/{HOOKS_DIR}/{} is not an executable file: make it executable (chmod 0755) in the golden",
                    settings.dir,
                    hook.name
                );
            }
        }
    }
    Ok(provision)
}

/// Installs each file into the target root: written beside its destination,
/// given its mode and owner, flushed, then renamed over it.
pub fn install_files(golden_root: &Path, target_root: &Path, p: &Provision) -> Result<()> {
    let files_dir = golden_root
        .join(p.dir.trim_start_matches('/'))
        .join(FILES_DIR);
    for f in &p.files {
        // Where the target reads it: a symlink on the way is followed inside
        // the target, and what is left of the path to create holds none.
        let dest = resolve_in_root(target_root, &f.destination)
            .with_context(|| format!("cannot install {}", f.destination))?;
        let parent = dest.parent().context("a destination has a parent")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the directory of {}", f.destination))?;
        let file_name = dest.file_name().unwrap_or_default().to_string_lossy();
        let temp = parent.join(format!(".{file_name}.zshield-new"));
        let content = std::fs::read(files_dir.join(&f.source))
            .with_context(|| format!("cannot read {}/{FILES_DIR}/{}", p.dir, f.source))?;
        let write = || -> std::io::Result<()> {
            let mut out = std::fs::File::create(&temp)?;
            out.write_all(&content)?;
            std::os::unix::fs::fchown(&out, Some(f.uid), Some(f.gid))?;
            // After chown, which clears set-id bits.
            out.set_permissions(std::fs::Permissions::from_mode(f.mode))?;
            out.sync_all()?;
            std::fs::rename(&temp, &dest)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&temp);
            return Err(e).with_context(|| format!("cannot install {}", f.destination));
        }
        log::info!("installed {f}");
    }
    Ok(())
}

/// What one hook did, for the log and the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct HookResult {
    pub name: String,
    /// None when it was killed.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub seconds: f64,
    pub factory_test: bool,
    /// Its last lines of output.
    pub output_tail: Vec<String>,
}

impl HookResult {
    pub fn passed(&self) -> bool {
        self.exit_code == Some(0)
    }
}

const OUTPUT_TAIL: usize = 20;

/// Runs one script as `cmd` (chrooted or not, as the caller made it),
/// killed past `limit`, its output logged as `kind name`'s.
pub fn run_script(kind: &str, name: &str, cmd: Cmd, limit: Duration) -> Result<HookResult> {
    let label = format!("{kind} {name}");
    log::info!("{label}: running (limit {} s)", limit.as_secs());
    let start = Instant::now();
    let mut tail: Vec<String> = Vec::new();
    let finished = cmd.run_limited(limit, |line| {
        log::info!("{label}: {line}");
        tail.push(line.to_string());
        if tail.len() > OUTPUT_TAIL {
            tail.remove(0);
        }
    })?;
    let result = HookResult {
        name: name.to_string(),
        exit_code: finished.code,
        timed_out: finished.timed_out,
        seconds: start.elapsed().as_secs_f64(),
        factory_test: false,
        output_tail: tail,
    };
    log::info!(
        "{label}: {} in {:.1} s",
        result.verdict(limit),
        result.seconds
    );
    Ok(result)
}

impl HookResult {
    /// How it ended, in words.
    pub fn verdict(&self, limit: Duration) -> String {
        if self.timed_out {
            format!("ran past its limit of {} s and was killed", limit.as_secs())
        } else {
            match self.exit_code {
                Some(0) => "succeeded".to_string(),
                Some(code) => format!("failed with exit code {code}"),
                None => "was killed by a signal".to_string(),
            }
        }
    }
}

/// Runs the hooks in order inside the target (chroot, with /proc, /sys, /dev
/// and /run), each within its time limit; each result goes into `results`.
pub fn run_hooks(target_root: &Path, p: &Provision, results: &mut Vec<HookResult>) -> Result<()> {
    let mut binds = MountStack::system_binds(target_root)?;
    let limit = Duration::from_secs(p.hook_timeout_secs);
    let mut failure = None;
    for hook in &p.hooks {
        let path = format!("{}/{HOOKS_DIR}/{}", p.dir.trim_end_matches('/'), hook.name);
        let mut result = run_script(
            "hook",
            &hook.name,
            Cmd::new(&path).chroot(target_root),
            limit,
        )?;
        result.factory_test = hook.is_factory_test();
        let verdict = result.verdict(limit);
        let passed = result.passed();
        if result.factory_test {
            log::info!(
                "factory test {}: {}",
                hook.name,
                if passed { "passed" } else { "FAILED" }
            );
        }
        results.push(result);
        if !passed {
            if p.continue_on_hook_failure {
                log::warn!(
                    "hook {} {verdict}; going on (continue_on_hook_failure = true)",
                    hook.name
                );
            } else {
                failure = Some(format!(
                    "hook {} {verdict}: see its output above and in the log; fix it in the golden, or set continue_on_hook_failure = true in [provision]",
                    hook.name
                ));
                break;
            }
        }
    }
    binds.unmount_all()?;
    match failure {
        Some(message) => bail!(message),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nvyos:x:1000:100::/home/vyos:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:\n";

    fn parse_ok(text: &str) -> Vec<Entry> {
        parse(text, "files.install").unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(text, "files.install").unwrap_err()
    }

    #[test]
    fn parses_the_teams_manifest() {
        let text =
            "[[GENERIC]]\n#\nsysctl.conf             /etc/sysctl.conf        0644     root:root\n\
                    [[X86]]\nmodules                 /etc/modules            0644     root:root\n\
                    [[ARM]]\nkeepalived_aarch64      /usr/sbin/keepalived    0755     vyos:users\n\
                    [[MIPS]]\n\n";
        let e = parse_ok(text);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            Entry {
                line: 3,
                section: Section::Generic,
                source: "sysctl.conf".into(),
                destination: "/etc/sysctl.conf".into(),
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
            }
        );
        assert_eq!((e[1].section, e[1].line), (Section::X86, 5));
        assert_eq!((e[2].section, e[2].mode), (Section::Arm, 0o755));
        // A comment after an entry, and modes with three digits or set-id bits.
        let e = parse_ok("[[GENERIC]]\na /a 644 root:root # the a file\nb /b 4755 0:0\n");
        assert_eq!((e[0].mode, e[1].mode), (0o644, 0o4755));
    }

    #[test]
    fn every_malformed_line_is_named_with_its_line() {
        let cases = [
            (
                "a /a 0644 root:root\n",
                "line 1: an entry before any section",
            ),
            ("[[PPC]]\n", "line 1: unknown section [[PPC]]"),
            ("[[GENERIC]\n", "line 1: malformed section header"),
            ("[GENERIC]\n", "line 1: malformed section header"),
            ("[[]]\n", "line 1: malformed section header"),
            (
                "[[GENERIC]]\n\na /a 0644\n",
                "line 3: expected 'file destination mode owner:group', found 3 fields",
            ),
            ("[[GENERIC]]\na /a 0644 root:root extra\n", "found 5 fields"),
            (
                "[[GENERIC]]\n/etc/a /a 0644 root:root\n",
                "the file \"/etc/a\" must be a relative path",
            ),
            (
                "[[GENERIC]]\n../a /a 0644 root:root\n",
                "must be a relative path",
            ),
            (
                "[[GENERIC]]\na etc/a 0644 root:root\n",
                "the destination \"etc/a\" must be an absolute file path",
            ),
            (
                "[[GENERIC]]\na /etc/../a 0644 root:root\n",
                "must be an absolute file path",
            ),
            (
                "[[GENERIC]]\na /etc/ 0644 root:root\n",
                "must be an absolute file path",
            ),
            ("[[GENERIC]]\na /a 0844 root:root\n", "bad mode \"0844\""),
            ("[[GENERIC]]\na /a rw-r--r-- root:root\n", "bad mode"),
            ("[[GENERIC]]\na /a 17777 root:root\n", "bad mode"),
            ("[[GENERIC]]\na /a 64 root:root\n", "bad mode"),
            (
                "[[GENERIC]]\na /a 0644 root\n",
                "bad owner \"root\": write owner:group",
            ),
            ("[[GENERIC]]\na /a 0644 root:\n", "bad owner"),
            ("[[GENERIC]]\na /a 0644 :root\n", "bad owner"),
            ("[[GENERIC]]\na /a 0644 a:b:c\n", "bad owner"),
        ];
        for (text, expected) in cases {
            let err = parse_err(text);
            assert!(err.starts_with("files.install line "), "{err}");
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    fn resolved(text: &str, arch: Section) -> Result<Vec<InstallFile>, String> {
        resolve(&parse_ok(text), arch, "files.install", PASSWD, GROUP, |s| {
            s != "missing"
        })
    }

    #[test]
    fn the_generic_section_and_this_architectures_apply() {
        let text = "[[GENERIC]]\ng /etc/g 0644 root:root\n[[X86]]\nx /etc/x 0600 root:root\n\
                    [[ARM]]\nk /usr/sbin/k 0755 vyos:users\n";
        let x86: Vec<String> = resolved(text, Section::X86)
            .unwrap()
            .iter()
            .map(|f| f.destination.clone())
            .collect();
        assert_eq!(x86, ["/etc/g", "/etc/x"]);
        let arm = resolved(text, Section::Arm).unwrap();
        assert_eq!(arm.len(), 2);
        assert_eq!((arm[1].uid, arm[1].gid), (1000, 100));
        assert_eq!(arm[1].to_string(), "/usr/sbin/k (0755 vyos:users)");
        assert_eq!(Section::for_arch("x86_64"), Some(Section::X86));
        assert_eq!(Section::for_arch("aarch64"), Some(Section::Arm));
        assert_eq!(Section::for_arch("mips64"), Some(Section::Mips));
        assert_eq!(Section::for_arch("riscv64"), None);
    }

    #[test]
    fn sources_owners_and_groups_are_checked_against_the_target() {
        let err = resolved("[[GENERIC]]\nmissing /a 0644 root:root\n", Section::X86).unwrap_err();
        assert_eq!(
            err,
            "files.install line 2: the file files/missing is missing from the golden"
        );
        let err = resolved("[[X86]]\na /a 0644 nobody:root\n", Section::X86).unwrap_err();
        assert!(err.contains("line 2: unknown owner \"nobody\""), "{err}");
        let err = resolved("[[X86]]\na /a 0644 root:wheel\n", Section::X86).unwrap_err();
        assert!(err.contains("unknown group \"wheel\""), "{err}");
        // Numbers need no entry; an unknown owner in another architecture's
        // section does not matter here.
        let ok = resolved(
            "[[X86]]\na /a 0644 4321:4321\n[[ARM]]\nb /b 0644 nobody:x\n",
            Section::X86,
        )
        .unwrap();
        assert_eq!((ok[0].uid, ok[0].gid), (4321, 4321));
        let err = resolved(
            "[[GENERIC]]\na /etc/a 0644 root:root\n[[X86]]\nb /etc/a 0644 root:root\n",
            Section::X86,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "files.install line 4: /etc/a is installed twice (also line 2)"
        );
    }

    #[test]
    fn hooks_run_in_numeric_order_and_must_be_named_nn_name() {
        let names: Vec<String> = ["20_b.sh", "9_a.sh", "100_c.sh", "20_a.sh"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let order: Vec<String> = order_hooks(&names)
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(order, ["9_a.sh", "20_a.sh", "20_b.sh", "100_c.sh"]);
        for bad in [
            "README",
            "a_b.sh",
            "10-x.sh",
            "10_.sh",
            "_x.sh",
            "10_x.bash",
        ] {
            let err = order_hooks(&[bad.to_string()]).unwrap_err();
            assert!(err.contains("must be named NN_name.sh"), "{bad}: {err}");
        }
        assert!(Hook {
            order: 90,
            name: "90_factory_test.sh".into()
        }
        .is_factory_test());
    }

    #[test]
    fn files_are_installed_where_the_target_reads_them() {
        use std::os::unix::fs::MetadataExt;
        let (tmp, host) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (golden, target) = (tmp.path().join("golden"), tmp.path().join("target"));
        std::fs::create_dir_all(golden.join("opt/prov").join(FILES_DIR)).unwrap();
        std::fs::write(golden.join("opt/prov/files/motd"), "hello\n").unwrap();
        // The target's /etc points at a path that, on the host, is outside it.
        let host_etc = host.path().join("etc-real");
        std::fs::create_dir(&host_etc).unwrap();
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&host_etc, target.join("etc")).unwrap();
        let me = std::fs::metadata(tmp.path()).unwrap();
        let p = Provision {
            dir: "/opt/prov".into(),
            files: vec![InstallFile {
                source: "motd".into(),
                destination: "/etc/motd".into(),
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
                uid: me.uid(),
                gid: me.gid(),
            }],
            ..Provision::default()
        };
        install_files(&golden, &target, &p).unwrap();
        let etc_real = target.join(host_etc.strip_prefix("/").unwrap());
        assert_eq!(
            std::fs::read_to_string(etc_real.join("motd")).unwrap(),
            "hello\n"
        );
        assert_eq!(std::fs::read_dir(&host_etc).unwrap().count(), 0);
    }
}
