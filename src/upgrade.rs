//! `zshield upgrade BUNDLE`: a vendor-signed bundle applied to the running
//! system under a named restore point, then a trial boot.
//!
//! Everything that can refuse the bundle is checked before anything is
//! changed: its signature and metadata, this system (the thin layout, a boot
//! marked good, boot counting on, dpkg at rest, room), then its payload's
//! digest and contents. Then the restore point is taken and tagged, and
//! GRUB's boot tries are set to used up, so that whatever stops the upgrade
//! (a failed step, a power cut, a restart) ends at the next start in GRUB's
//! automatic rollback to that point. Once every step passed, the point is
//! tagged for the trial and the tries are reset: the trial boot's health
//! checks commit the upgrade (`zshield boot-ok`), a failed one or used-up
//! tries roll it back.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::backup;
use crate::bundle::{self, Metadata, Verified, Version};
use crate::config::{Config, ProvisionConfig};
use crate::disk::blockmap::Digests;
use crate::disk::mounts::is_running_root;
use crate::events::{self, Event};
use crate::failpoint::Failpoints;
use crate::health;
use crate::layout::{mapper_path, TAG_UPGRADE_APPLYING, TAG_UPGRADE_TRIAL, UPGRADE_STAGING};
use crate::logging::RUN_DIR;
use crate::lvm::Lvm;
use crate::points;
use crate::recovery::execute::Executor;
use crate::recovery::report::Report;
use crate::recovery::step::Step;
use crate::runner::Cmd;
use crate::signing;
use crate::target::provision::{self, InstallFile, Provision};

const STAGING: &str = UPGRADE_STAGING;
/// The payload's `data/` tree, as the root's own programs see it.
const STAGED_DATA: &str = "/var/lib/zshield/upgrade/data";
/// The metadata of each bundle applied, by name: the installed version, on
/// the root, so that a rollback brings back the record with the system.
const INSTALLED: &str = "/var/lib/zshield/bundles";
/// Room left on the root besides twice the payload (its copy and its tree).
const SPARE_ROOM: u64 = 64 << 20;

/// In the payload (`data/`): the packages, and the components' upgrades.
const REPOS_DIR: &str = "repos";
const UPGRADE_DIR: &str = "upgrade";
const UPGRADE_SCRIPT: &str = "upgrade.sh";

#[derive(Debug, Clone)]
pub struct Options {
    pub keys: PathBuf,
    pub allow_downgrade: bool,
    pub dry_run: bool,
}

/// One step of an upgrade, as printed and as run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A step of the backup that takes the upgrade's restore point.
    Point(Step),
    /// The point's tag and GRUB's tries used up: anything that stops the
    /// upgrade from here ends in the rollback.
    BeginApplying {
        point: String,
    },
    InstallFiles {
        files: Vec<InstallFile>,
    },
    InstallPackages {
        debs: Vec<String>,
    },
    RunUpgradeScript {
        script: String,
    },
    RunHook {
        hook: String,
    },
    RecordVersion {
        meta: Metadata,
    },
    /// The point's tag says trial, GRUB's tries are reset.
    StartTrial {
        point: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Point(step) => step.fmt(f),
            Action::BeginApplying { point } => write!(
                f,
                "tag {point} as the upgrade's and set GRUB's boot tries to used up (from here, a stop rolls back to it)"
            ),
            Action::InstallFiles { files } => {
                let names: Vec<String> = files.iter().map(|f| f.to_string()).collect();
                write!(f, "install {} file{}: {}", files.len(), plural(files.len()), names.join(", "))
            }
            Action::InstallPackages { debs } => write!(
                f,
                "install {} package{} with one dpkg -i: {}",
                debs.len(),
                plural(debs.len()),
                debs.join(", ")
            ),
            Action::RunUpgradeScript { script } => write!(f, "run {script}"),
            Action::RunHook { hook } => write!(f, "run the hook {hook}"),
            Action::RecordVersion { meta } => {
                write!(f, "record {} {} as installed ({INSTALLED}/{}.toml)", meta.name, meta.version, meta.name)
            }
            Action::StartTrial { point } => write!(
                f,
                "tag {point} for the trial and reset GRUB's boot tries; restart into the trial boot"
            ),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Why an upgrade did not start: nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The installed version of bundle `name` on the root `root`.
fn installed_version(root: &Path, name: &str) -> Result<Option<Version>> {
    let path = root
        .join(INSTALLED.trim_start_matches('/'))
        .join(format!("{name}.toml"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let meta =
                Metadata::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(Some(meta.version()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The steps of applying the payload unpacked in `root` (at [`STAGED_DATA`])
/// to the running system `root`, checked as far as they can be before they
/// run.
pub fn plan(
    root: &Path,
    point_steps: Vec<Step>,
    point: &str,
    meta: &Metadata,
    config: &Config,
) -> Result<Vec<Action>> {
    let data = in_root(root, STAGED_DATA);
    let settings = ProvisionConfig {
        dir: STAGED_DATA.into(),
        hook_timeout: config.provision.hook_timeout,
        continue_on_hook_failure: false,
    };
    let Provision { files, hooks, .. } = provision::load(root, &settings)?;
    let mut debs = list(&data.join(REPOS_DIR), |p| {
        p.extension().is_some_and(|x| x == "deb") && p.is_file()
    })?;
    debs.iter_mut()
        .for_each(|d| *d = format!("{REPOS_DIR}/{d}"));
    let mut scripts = Vec::new();
    for component in list(&data.join(UPGRADE_DIR), |p| p.is_dir())? {
        // upgrade/<component>/origin is the way back to the component's
        // first version, for the vendor's own scripts; the way back from
        // this upgrade is its restore point.
        for version in list(&data.join(UPGRADE_DIR).join(&component), |p| {
            p.is_dir() && !p.ends_with("origin")
        })? {
            let script = format!("{UPGRADE_DIR}/{component}/{version}/{UPGRADE_SCRIPT}");
            let executable = std::fs::metadata(data.join(&script))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if !executable {
                bail!("{script} is missing or not executable (every upgrade/<component>/<version>/ holds one, mode 0755)");
            }
            scripts.push(script);
        }
    }
    let mut actions: Vec<Action> = point_steps.into_iter().map(Action::Point).collect();
    actions.push(Action::BeginApplying {
        point: point.to_string(),
    });
    if !files.is_empty() {
        actions.push(Action::InstallFiles { files });
    }
    if !debs.is_empty() {
        actions.push(Action::InstallPackages { debs });
    }
    actions.extend(
        scripts
            .into_iter()
            .map(|script| Action::RunUpgradeScript { script }),
    );
    actions.extend(hooks.into_iter().map(|h| Action::RunHook {
        hook: format!("{}/{}", provision::HOOKS_DIR, h.name),
    }));
    actions.push(Action::RecordVersion { meta: meta.clone() });
    actions.push(Action::StartTrial {
        point: point.to_string(),
    });
    Ok(actions)
}

/// `path` (absolute) of the system whose root is `root`.
fn in_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The names in `dir` whose paths pass `keep`, sorted; none without `dir`.
fn list(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if keep(&entry.path()) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// What the running system must be for an upgrade, or why it is not.
fn check_system(config: &Config) -> Result<(), Refused> {
    let refuse = |e: anyhow::Error| Refused(format!("{e:#}"));
    let root = mapper_path(&config.vg, &config.root.name);
    if !Path::new(&root).exists() || !is_running_root(&root).map_err(refuse)? {
        return Err(Refused(format!(
            "the running root is not {root}: upgrades are applied to the appliance's disk system"
        )));
    }
    let lvs = Lvm.lvs().map_err(refuse)?;
    if !lvs
        .iter()
        .any(|l| l.vg == config.vg && l.name == config.root.name && l.is_thin())
    {
        return Err(Refused(format!(
            "{}/{} has the classic layout: an upgrade needs a named restore point, which the thin layout has (the next factory reset makes it)",
            config.vg, config.root.name
        )));
    }
    if let Some(busy) = lvs.iter().find(|l| {
        l.vg == config.vg && (l.has_tag(TAG_UPGRADE_APPLYING) || l.has_tag(TAG_UPGRADE_TRIAL))
    }) {
        return Err(Refused(format!(
            "an upgrade is already being applied or on trial (restore point {}): restart to finish its trial first",
            busy.name
        )));
    }
    if let Some(why) = health::not_counted(config).map_err(refuse)? {
        return Err(Refused(format!(
            "{why}: an upgrade needs GRUB's boot counting to come back on its own"
        )));
    }
    if !health::menu_counts(&health::disk_grub_cfg())
        || health::boot_tries().map_err(refuse)?.is_none()
    {
        return Err(Refused(
            "the disk's GRUB menu does not count boot tries (run update-grub): an upgrade needs it to come back on its own".into(),
        ));
    }
    if !health::marked_good() {
        return Err(Refused(
            "this boot is not marked good (zshield-boot-ok.service has not passed the health checks): upgrade a system that works".into(),
        ));
    }
    Ok(())
}

fn check_room(verified: &Verified) -> Result<(), Refused> {
    let parent = Path::new(STAGING).parent().expect("an absolute path");
    std::fs::create_dir_all(parent)
        .map_err(|e| Refused(format!("cannot create {}: {e}", parent.display())))?;
    let stat = nix::sys::statvfs::statvfs(parent)
        .map_err(|e| Refused(format!("cannot read the room on {}: {e}", parent.display())))?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let needed = 2 * verified.payload_size() + SPARE_ROOM;
    if free < needed {
        return Err(Refused(format!(
            "the root has {} MiB free, and the bundle needs {} MiB to be unpacked: free some room",
            free >> 20,
            needed.div_ceil(1 << 20)
        )));
    }
    Ok(())
}

/// Unpacks the payload into [`STAGED_DATA`] of `root`, its digest checked
/// first; nothing is left behind when it cannot.
fn unpack(verified: &Verified, root: &Path) -> Result<(), Refused> {
    let staging = in_root(root, STAGING);
    let fail = |e: std::io::Error| Refused(format!("cannot prepare {}: {e}", staging.display()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(fail)?;
    }
    let unpacked = (|| {
        let data = in_root(root, STAGED_DATA);
        std::fs::create_dir_all(&data).map_err(fail)?;
        let payload = staging.join(bundle::PAYLOAD);
        verified.copy_payload(&payload).map_err(Refused)?;
        Cmd::new("tar")
            .arg("-xf")
            .arg(payload.as_os_str())
            .arg("-C")
            .arg(data.as_os_str())
            .arg("--no-same-owner")
            .run()
            .map_err(|e| Refused(format!("cannot unpack its {}: {e:#}", bundle::PAYLOAD)))?;
        std::fs::remove_file(&payload).map_err(fail)
    })();
    if unpacked.is_err() {
        remove_staging(root);
    }
    unpacked
}

fn remove_staging(root: &Path) {
    let staging = in_root(root, STAGING);
    if let Err(e) = std::fs::remove_dir_all(&staging) {
        log::warn!("cannot remove {}: {e}", staging.display());
    }
}

/// A free name for the upgrade's point: the bundle's, or with `-2`, `-3`.
fn free_point_name(config: &Config, base: &str) -> Result<String> {
    let taken = points::list(&config.vg, &Lvm.lvs()?);
    let free = |name: &str| !taken.iter().any(|p| p.name == name);
    Ok(std::iter::once(base.to_string())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|name| free(name))
        .expect("some suffix is free"))
}

/// What became of an upgrade that started.
pub enum Applied {
    /// Every step passed: restart into the trial boot.
    OnTrial {
        point: String,
    },
    DryRun,
}

/// An upgrade that stopped while it took its restore point: the running
/// system is as it was; the message says what is left.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Stopped(pub String);

/// An upgrade that failed after it began to change the system: the caller
/// restarts the unit, whose GRUB rolls back to the upgrade's point.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);

/// `zshield upgrade`: the checks, then the steps. A refusal is a
/// [`Refused`], a failure after the first change a [`Failed`].
pub fn upgrade(config: &Config, bundle_path: &Path, options: &Options) -> Result<Applied> {
    let keys = signing::keys(&options.keys).map_err(Refused)?;
    let verified = bundle::verify(bundle_path, &keys).map_err(Refused)?;
    let meta = &verified.meta;
    log::info!(
        "{}: {meta}, signed with {} ({})",
        bundle_path.display(),
        verified.key.display(),
        verified.signed_comment
    );
    let installed = installed_version(Path::new("/"), &meta.name)?;
    let zshield = Version::parse(env!("CARGO_PKG_VERSION")).expect("our own version");
    bundle::applicable(
        meta,
        std::env::consts::ARCH,
        &zshield,
        installed.as_ref(),
        options.allow_downgrade,
    )
    .map_err(Refused)?;
    check_system(config)?;
    let _backup_lock = backup::lock().map_err(|e| Refused(format!("{e:#}")))?;
    let dpkg_lock = backup::lock_dpkg().map_err(Refused)?;
    check_room(&verified)?;
    let root = Path::new("/");
    let point = free_point_name(config, &meta.point_name())?;
    unpack(&verified, root)?;
    let planned = backup::named_point_steps(config, &point, &dpkg_lock)
        .map_err(|e| Refused(format!("its restore point cannot be taken: {e:#}")))
        .and_then(|steps| {
            plan(root, steps, &point, meta, config)
                .map_err(|e| Refused(format!("its data/ tree: {e:#}")))
        });
    let actions = match planned {
        Ok(actions) => actions,
        Err(refused) => {
            remove_staging(root);
            return Err(refused.into());
        }
    };
    let total = actions.len();
    let applying_from = actions
        .iter()
        .position(|a| matches!(a, Action::BeginApplying { .. }))
        .expect("every upgrade plan begins to apply");
    log::info!("plan: upgrade the running system to {meta}, under the restore point {point}");
    for (i, action) in actions.iter().enumerate() {
        log::info!("plan: {:2}. {action}", i + 1);
    }
    if options.dry_run {
        remove_staging(root);
        log::info!("dry run: nothing was changed");
        return Ok(Applied::DryRun);
    }
    let mut executor = Executor::new(
        PathBuf::from("/"),
        Failpoints::default(),
        Digests::Check,
        None,
    );
    let mut report = Report::backup(false);
    for (i, action) in actions.iter().enumerate() {
        log::info!("[{}/{total}] {action}", i + 1);
        // From the first write of the tag on: any stop ends in the rollback.
        let began = i >= applying_from;
        let start = Instant::now();
        let result = match action {
            Action::Point(step) => executor.run_one(step, &mut report),
            action => apply(action, root, config),
        };
        match result {
            Ok(()) => log::info!(
                "step {} done in {:.1} s",
                i + 1,
                start.elapsed().as_secs_f64()
            ),
            Err(e) if !began => {
                remove_staging(root);
                return Err(Stopped(format!(
                    "the upgrade to {meta} stopped in step {} of {total} ({action}): {e:#}; the running system was not changed (a restore point it took is kept: zshield backup --remove {point} removes it)",
                    i + 1
                ))
                .into());
            }
            Err(e) => {
                return Err(Failed(format!(
                    "the upgrade to {meta} failed in step {} of {total} ({action}): {e:#}; the system is half-upgraded: the next start rolls it back to the restore point {point}",
                    i + 1
                ))
                .into())
            }
        }
        if matches!(action, Action::BeginApplying { .. }) {
            record(
                config,
                "applying",
                format!(
                    "{meta} from {}, under the restore point {point}",
                    bundle_path.display()
                ),
            );
        }
    }
    record(
        config,
        "applied",
        format!("{meta}: every step passed; its trial boot follows (restore point {point})"),
    );
    Ok(Applied::OnTrial { point })
}

/// `zshield upgrade --image ROOT`: the image builder applies a bundle's
/// manifest and packages to the golden's root tree while it builds it (the
/// image-time manifest); its upgrade.sh scripts and hooks are for running
/// systems and do not run. The same checks of the bundle come first.
pub fn apply_to_image(root: &Path, bundle_path: &Path, keys: &Path) -> Result<Metadata> {
    let keys = signing::keys(keys).map_err(Refused)?;
    let verified = bundle::verify(bundle_path, &keys).map_err(Refused)?;
    let meta = verified.meta.clone();
    let zshield = Version::parse(env!("CARGO_PKG_VERSION")).expect("our own version");
    let installed = installed_version(root, &meta.name)?;
    bundle::applicable(
        &meta,
        std::env::consts::ARCH,
        &zshield,
        installed.as_ref(),
        false,
    )
    .map_err(Refused)?;
    unpack(&verified, root)?;
    let result = plan(
        root,
        Vec::new(),
        &meta.point_name(),
        &meta,
        &Config::default(),
    )
    .and_then(|actions| {
        for action in &actions {
            match action {
                Action::InstallFiles { .. }
                | Action::InstallPackages { .. }
                | Action::RecordVersion { .. } => {
                    log::info!("{meta}: {action}");
                    apply(action, root, &Config::default())?;
                }
                Action::RunUpgradeScript { .. } | Action::RunHook { .. } => {
                    log::info!("{meta}: at image time, not: {action}");
                }
                // The restore point and the trial are a running system's.
                Action::Point(_) | Action::BeginApplying { .. } | Action::StartTrial { .. } => {}
            }
        }
        Ok(())
    });
    remove_staging(root);
    result.map(|()| meta)
}

fn record(config: &Config, status: &str, detail: String) {
    if let Err(e) = events::record(config, &Event::now("upgrade", status, detail)) {
        log::warn!("cannot add the upgrade to the event log: {e:#}");
    }
}

/// Runs one step on the system whose root is `root` (`/` but at image time).
fn apply(action: &Action, root: &Path, config: &Config) -> Result<()> {
    let limit = Duration::from_secs(config.provision.hook_timeout);
    let data = in_root(root, STAGED_DATA);
    let lv = |point: &str| points::lv_name(point);
    match action {
        Action::Point(_) => unreachable!("the executor runs the backup's steps"),
        Action::BeginApplying { point } => {
            Lvm.lv_add_tag(&config.vg, &lv(point), TAG_UPGRADE_APPLYING)?;
            health::use_up_tries(config)?;
            // GRUB reads the tries from the disk: they must be there before
            // the first change.
            nix::unistd::sync();
            Ok(())
        }
        Action::InstallFiles { files } => {
            let provision = Provision {
                dir: STAGED_DATA.into(),
                files: files.clone(),
                ..Provision::default()
            };
            provision::install_files(root, root, &provision)
        }
        Action::InstallPackages { debs } => {
            let mut dpkg = Cmd::new("dpkg")
                .env("DEBIAN_FRONTEND", "noninteractive")
                // We hold the front-end lock ourselves, as apt does.
                .env("DPKG_FRONTEND_LOCKED", "1")
                .args(["--force-confdef", "--force-confold", "-i"]);
            for deb in debs {
                dpkg = dpkg.arg(Path::new(STAGED_DATA).join(deb).as_os_str());
            }
            if root != Path::new("/") {
                dpkg = dpkg.chroot(root);
            }
            dpkg.run_streaming(|line| log::info!("dpkg: {line}"))
        }
        Action::RunUpgradeScript { script } => {
            let path = data.join(script);
            let dir = path.parent().expect("a script in a directory");
            let cmd = Cmd::new(&path.to_string_lossy()).current_dir(dir);
            passed(provision::run_script("upgrade", script, cmd, limit)?, limit)
        }
        Action::RunHook { hook } => {
            let path = data.join(hook);
            let cmd = Cmd::new(&path.to_string_lossy()).current_dir(&data);
            passed(provision::run_script("hook", hook, cmd, limit)?, limit)
        }
        Action::RecordVersion { meta } => {
            let dir = &in_root(root, INSTALLED);
            std::fs::create_dir_all(dir)?;
            let text = toml::to_string(meta).context("cannot write the bundle's metadata")?;
            let path = dir.join(format!("{}.toml", meta.name));
            let temp = dir.join(format!(".{}.toml.new", meta.name));
            std::fs::write(&temp, text)?;
            std::fs::File::open(&temp)?.sync_all()?;
            std::fs::rename(&temp, &path)
                .with_context(|| format!("cannot write {}", path.display()))
        }
        Action::StartTrial { point } => {
            remove_staging(root);
            // This boot is not the trial: boot-ok run again before a
            // restart does not commit the upgrade.
            std::fs::create_dir_all(RUN_DIR)?;
            std::fs::write(Path::new(RUN_DIR).join(health::TRIAL_PENDING), point)?;
            nix::unistd::sync();
            Lvm.lv_tags(
                &config.vg,
                &lv(point),
                &[TAG_UPGRADE_TRIAL],
                &[TAG_UPGRADE_APPLYING],
            )?;
            health::reset_tries()?;
            nix::unistd::sync();
            Ok(())
        }
    }
}

fn passed(result: provision::HookResult, limit: Duration) -> Result<()> {
    if result.passed() {
        Ok(())
    } else {
        bail!(
            "{} {}: see its output in the log",
            result.name,
            result.verdict(limit)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &Path, body: &str, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn meta() -> Metadata {
        Metadata {
            name: "acme".into(),
            version: "2.0".into(),
            architectures: vec!["x86_64".into()],
            min_zshield: "0.1".into(),
            payload_size: 0,
            payload_sha256: "0".repeat(64),
        }
    }

    #[test]
    fn the_plan_applies_files_packages_upgrades_and_hooks_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        file(
            &root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n",
            0o644,
        );
        file(&root.join("etc/group"), "root:x:0:\n", 0o644);
        let data = &in_root(root, STAGED_DATA);
        file(&data.join("files.install"), "[[GENERIC]]\nrelease /etc/acme/release 0644 root:root\n[[MIPS]]\nm /etc/m 0644 nobody:nogroup\n", 0o644);
        file(&data.join("files/release"), "acme 2.0\n", 0o644);
        file(&data.join("repos/b_1_all.deb"), "", 0o644);
        file(&data.join("repos/a_1_all.deb"), "", 0o644);
        file(&data.join("repos/notes.txt"), "", 0o644);
        file(
            &data.join("upgrade/web/2.0/upgrade.sh"),
            "#!/bin/sh\n",
            0o755,
        );
        file(
            &data.join("upgrade/web/origin/upgrade.sh"),
            "#!/bin/sh\nexit 1\n",
            0o755,
        );
        file(
            &data.join("upgrade/db/1.1/upgrade.sh"),
            "#!/bin/sh\n",
            0o755,
        );
        file(&data.join("hooks/20_b.sh"), "#!/bin/sh\n", 0o755);
        file(&data.join("hooks/10_a.sh"), "#!/bin/sh\n", 0o755);
        let config = Config::default();
        let actions = plan(root, Vec::new(), "upgrade-acme-2.0", &meta(), &config).unwrap();
        let shown: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            shown,
            [
                "tag upgrade-acme-2.0 as the upgrade's and set GRUB's boot tries to used up (from here, a stop rolls back to it)",
                "install 1 file: /etc/acme/release (0644 root:root)",
                "install 2 packages with one dpkg -i: repos/a_1_all.deb, repos/b_1_all.deb",
                "run upgrade/db/1.1/upgrade.sh",
                "run upgrade/web/2.0/upgrade.sh",
                "run the hook hooks/10_a.sh",
                "run the hook hooks/20_b.sh",
                "record acme 2.0 as installed (/var/lib/zshield/bundles/acme.toml)",
                "tag upgrade-acme-2.0 for the trial and reset GRUB's boot tries; restart into the trial boot",
            ]
        );

        std::fs::set_permissions(
            data.join("upgrade/db/1.1/upgrade.sh"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let error = plan(root, Vec::new(), "p", &meta(), &config)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("upgrade/db/1.1/upgrade.sh is missing or not executable"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_tree_only_takes_the_point_and_records_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let actions = plan(dir.path(), Vec::new(), "p", &meta(), &Config::default()).unwrap();
        assert_eq!(actions.len(), 3);
    }
}
