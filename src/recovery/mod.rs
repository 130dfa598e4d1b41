//! The recovery engine, as the product describes it: probe → plan → (print
//! the plan on a dry run) → validate → execute the steps with progress and
//! timings → report. Both recoveries share it: the factory reset
//! (`default`: `probe` + `plan`) and the rollback (`latest`: `rollback`).

pub mod execute;
pub mod plan;
pub mod probe;
pub mod report;
pub mod rollback;
pub mod step;
pub mod thin_rollback;
pub mod unfinished;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use crate::cmdline::{After, Mode, Wipe};
use crate::config::{check_provision_dir, Config};
use crate::disk::blockdev::{BlockDev, ReadOnlyGuard};
use crate::disk::blockmap::Digests;
use crate::disk::golden;
use crate::failpoint::Failpoints;
use crate::inroot::resolve_in_root;
use crate::layout::{least_disk_size, on_disk, TAG_COMPLETE, TAG_FAILED, TAG_ROLLBACK};
use crate::logging::RUN_DIR;
use crate::lvm::Lvm;
use crate::signing::{self, Keys};
use crate::target::bootloader;
use execute::Executor;
use plan::Options;
use probe::Probe;
use report::{Report, Status};
use step::{Plan, Refusal};

/// What the operator asked for, from the kernel command line and the CLI.
#[derive(Debug, Clone)]
pub struct Request {
    pub mode: Mode,
    pub config: PathBuf,
    pub target: Option<String>,
    pub golden: Option<String>,
    /// `root=` of this boot.
    pub root: Option<String>,
    pub wipe: Wipe,
    pub dry_run: bool,
    pub after: After,
    /// Test only: simulate a power loss after the first step of this kind.
    pub failpoints: Failpoints,
    /// Test only: copy by blocks without checking them (`zshield.test.digests=skip`).
    pub skip_digests: bool,
    /// Another provisioning directory of the golden (`zshield.provision=`).
    pub provision: Option<String>,
    /// How to copy the golden root this once (`zshield.copy=`).
    pub copy: Option<String>,
    /// How this reset keeps the root (`zshield.layout=`).
    pub layout: Option<String>,
    /// The restore point a rollback brings back (`zshield.backup=`).
    pub backup: Option<String>,
    /// GRUB's automatic rollback after failed boots (`zshield.fallback=`).
    pub fallback: bool,
}

/// How a recovery that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Only the plan was shown.
    DryRun,
    /// The automatic mode found a complete system: nothing was done.
    LeftAlone,
}

/// How a recovery failed: whether a disk was written decides what the
/// operator is told.
#[derive(Debug)]
pub enum Failure {
    /// Nothing was written: refused, or stopped before the first write.
    Refused(anyhow::Error),
    /// Stopped after a step that writes `disk` had started.
    Failed {
        error: anyhow::Error,
        disk: String,
        mode: Mode,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(error) => write!(f, "{error:#}; no disk was changed"),
            Failure::Failed { error, disk, mode } => write!(
                f,
                "{error:#}; {disk} is partly {}: fix the cause and start the recovery again, it resumes where it stopped",
                match mode {
                    Mode::Default | Mode::Auto => "provisioned",
                    Mode::Latest => "rolled back",
                }
            ),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        Failure::Refused(refusal.into())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure::Refused(error)
    }
}

/// How a missing configuration file is taken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// A recovery never guesses: the built-in defaults name a target disk
    /// that may not be this machine's.
    Refuse,
    /// `zshield plan` shows what the defaults would do.
    ShowDefaults,
}

fn load_config(path: &Path, missing: Missing) -> Result<Config> {
    if !path.exists() {
        if missing == Missing::Refuse {
            anyhow::bail!(
                "no configuration file {}: a recovery does not guess the target disk; install it in the image (make install does) and rebuild the initramfs with the zshield dracut module",
                path.display()
            );
        }
        log::warn!(
            "no configuration file {}: showing the built-in defaults",
            path.display()
        );
    }
    Ok(Config::load(path)?)
}

/// Resolves the configuration with the command line's overrides: the
/// configuration, the target and the golden.
fn load(req: &Request, missing: Missing) -> Result<(Config, String, String)> {
    let mut config = load_config(&req.config, missing)?;
    if let Some(dir) = &req.provision {
        check_provision_dir(dir).map_err(|e| anyhow!("zshield.provision={dir}: {e}"))?;
        config.provision.dir = dir.clone();
    }
    if let Some(copy) = &req.copy {
        config.copy = copy
            .parse()
            .map_err(|e| anyhow!("zshield.copy={copy}: {e}"))?;
    }
    if let Some(layout) = &req.layout {
        config.layout = layout
            .parse()
            .map_err(|e| anyhow!("zshield.layout={layout}: {e}"))?;
    }
    let target = req.target.clone().unwrap_or_else(|| config.target.clone());
    let golden = golden_spec(req, &config)
        .context("no golden root: this boot has no root= and the configuration names no golden; set zshield.golden=")?;
    Ok((config, target, golden))
}

/// The golden root as this boot names it: `zshield.golden=`, the
/// configuration's, else `root=`.
fn golden_spec(req: &Request, config: &Config) -> Option<String> {
    req.golden
        .clone()
        .or_else(|| config.golden.clone())
        .or_else(|| req.root.clone())
}

fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).exists()))
}

/// What a factory reset runs here and in the golden, and is missing: one
/// line each. `thin`: it makes a thin pool, which LVM activates only with
/// thin_check, here and in every boot of the disk.
fn missing_tools(golden_root: &Path, thin: bool) -> Vec<String> {
    let mut missing: Vec<String> = [
        "lvm",
        "mkfs.ext4",
        "e2fsck",
        "resize2fs",
        "tune2fs",
        "rsync",
    ]
    .into_iter()
    .filter(|tool| !in_path(tool))
    .map(|tool| {
        format!(
            "the tool {tool} is missing here: rebuild the initramfs with the zshield dracut module"
        )
    })
    .collect();
    if let Err(e) = bootloader::check_tools(golden_root) {
        missing.push(format!("{e:#}"));
    }
    if thin {
        let no_thin = "LVM activates no thin pool without it: install thin-provisioning-tools in the golden and rebuild its initramfs, or set layout = \"classic\"";
        if !in_path(THIN_CHECK) {
            missing.push(format!("the tool {THIN_CHECK} is missing here; {no_thin}"));
        }
        if !resolve_in_root(golden_root, Path::new("usr/sbin").join(THIN_CHECK))
            .is_ok_and(|p| p.is_file())
        {
            missing.push(format!(
                "the golden has no /usr/sbin/{THIN_CHECK}; {no_thin}"
            ));
        }
    }
    missing
}

/// The tool LVM runs to check a thin pool's metadata before it activates it.
const THIN_CHECK: &str = "thin_check";

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `zshield plan`: what `recover --mode default` would do here, touching nothing.
/// Whether the configured VG holds a complete system whose rollback was cut
/// off (its root still carries the rollback's tag): the automatic mode then
/// finishes that rollback instead of anything else. A VG that cannot be read
/// says no: the factory reset's own probe reports why.
pub fn rollback_cut_off(config_path: &Path) -> bool {
    let Ok(config) = load_config(config_path, Missing::Refuse) else {
        return false;
    };
    // The initramfs may not have seen the disk yet.
    crate::disk::blockdev::settle_udev();
    let lvm = Lvm;
    let complete = lvm.vgs().is_ok_and(|vgs| {
        vgs.iter()
            .any(|v| v.name == config.vg && v.has_tag(TAG_COMPLETE))
    });
    // The classic rollback tags the root; the thin one the root it sets aside.
    complete
        && lvm.lvs().is_ok_and(|lvs| {
            lvs.iter().any(|l| {
                l.vg == config.vg
                    && (l.name == config.root.name || l.is_thin())
                    && l.has_tag(TAG_ROLLBACK)
            })
        })
}

/// The vendor's keys, when a factory reset takes only signed cards.
fn card_signers(config: &Config) -> Option<Result<Keys, String>> {
    config
        .require_signed_map
        .then(|| signing::keys(std::path::Path::new(signing::KEYS_DIR)))
}

pub fn print_plan(req: &Request) -> Result<()> {
    let (config, target, golden) = load(req, Missing::ShowDefaults)?;
    let lvm = in_path("lvm").then_some(Lvm);
    if lvm.is_none() {
        log::warn!("no lvm tool here: existing volume groups are not taken into account");
    }
    let (probe, _golden_mounts) = probe::probe(
        &golden,
        &target,
        lvm.as_ref(),
        &config.provision,
        least_disk_size(&config),
        card_signers(&config).as_ref(),
    )?;
    let plan = plan::plan(
        &probe,
        &config,
        &Options {
            wipe: req.wipe.clone(),
            auto: false,
        },
        &mut new_uuid,
    )?;
    plan.show();
    for line in missing_tools(&probe.golden.root_tree, plan.makes_pool()) {
        log::warn!("{line}");
    }
    Ok(())
}

/// Runs the recovery `req.mode` asks for and writes its report.
pub fn recover(req: &Request) -> Result<Outcome, Failure> {
    let mut report = Report::new(req.mode, req.dry_run);
    report.fallback = req.fallback;
    log::info!(
        "{} {} (zshield {})",
        match req.mode {
            Mode::Default => "factory reset",
            Mode::Auto => "automatic provisioning",
            Mode::Latest => "rollback to the latest backup",
        },
        if req.dry_run { "dry run" } else { "starting" },
        env!("CARGO_PKG_VERSION")
    );
    let result = match req.mode {
        Mode::Default | Mode::Auto => factory_reset(req, &mut report),
        Mode::Latest => rollback(req, &mut report),
    };
    conclude(&mut report, &result);
    let written = report.write(Path::new(RUN_DIR), Path::new("/"));
    match &written {
        Ok(path) => log::info!("report: {}", path.display()),
        Err(e) => log::warn!("{e:#}"),
    }
    let acted = !matches!(result, Ok(Outcome::DryRun | Outcome::LeftAlone));
    if req.mode == Mode::Auto && acted {
        let path = written.unwrap_or_else(|_| Path::new(RUN_DIR).join(report.stem() + ".json"));
        for line in report.verdict(&path) {
            log::info!("{line}");
        }
    }
    result
}

/// How `result` ends the report.
fn conclude(report: &mut Report, result: &Result<Outcome, Failure>) {
    match result {
        Ok(_) => report.conclude(Status::Ok, None),
        Err(failure) => {
            let status = match failure {
                Failure::Refused(_) => Status::Refused,
                Failure::Failed { .. } => Status::Failed,
            };
            report.conclude(status, Some(failure.to_string()))
        }
    }
}

fn factory_reset(req: &Request, report: &mut Report) -> Result<Outcome, Failure> {
    let (config, target, golden) = load(req, Missing::Refuse)?;
    log::info!(
        "target {target}, golden {golden}, layout {} on VG {}",
        config.label,
        config.vg
    );
    let (outcome, reread) = reset_once(req, report, &config, &target, &golden)?;
    if outcome == Outcome::DryRun || !reread {
        return Ok(outcome);
    }
    log::info!("the partition table of {target} is whole again: reading the disk again");
    let again = reset_once(req, report, &config, &target, &golden).map_err(|failure| match failure {
        // The repair was written: a refusal now is not "no disk was changed".
        Failure::Refused(error) => Failure::Failed {
            error: error.context(format!(
                "the GPT of {target} was repaired from its backup copy, and then the reset was refused"
            )),
            disk: target.clone(),
            mode: req.mode,
        },
        failed => failed,
    })?;
    match again {
        (_, true) => Err(Failure::Failed {
            error: anyhow!(
                "the partition table of {target} still reads as damaged after its repair"
            ),
            disk: target,
            mode: req.mode,
        }),
        (outcome, false) => Ok(outcome),
    }
}

/// One probe, plan and run of a factory reset; `true` when the plan only
/// repaired the partition table and the disk must be read again.
fn reset_once(
    req: &Request,
    report: &mut Report,
    config: &Config,
    target: &str,
    golden: &str,
) -> Result<(Outcome, bool), Failure> {
    let (probe, mut golden_mounts) = report.phase("probe", |_| {
        probe::probe(
            golden,
            target,
            Some(&Lvm),
            &config.provision,
            least_disk_size(config),
            card_signers(config).as_ref(),
        )
    })?;
    let plan = report.phase("plan", |_| {
        plan::plan(
            &probe,
            config,
            &Options {
                wipe: req.wipe.clone(),
                auto: req.mode == Mode::Auto,
            },
            &mut new_uuid,
        )
        .map_err(anyhow::Error::from)
    })?;
    let (reread, thin) = (plan.rereads_disk(), plan.makes_pool());
    let result = run(req, report, config, plan, || validate(&probe, thin));
    if let Ok(Outcome::DryRun) = result {
        for line in missing_tools(&probe.golden.root_tree, thin) {
            log::warn!("{line}");
        }
    }
    let unmounted = golden_mounts.unmount_all();
    match (result, unmounted) {
        (Ok(Outcome::Done), Err(error)) => Err(Failure::Failed {
            error,
            disk: probe.target.dev.clone(),
            mode: req.mode,
        }),
        (result, _) => result.map(|outcome| (outcome, reread)),
    }
}

fn rollback(req: &Request, report: &mut Report) -> Result<Outcome, Failure> {
    let config = load_config(&req.config, Missing::Refuse)?;
    let golden = golden_spec(req, &config);
    let probe = report.phase("probe", |_| {
        rollback::probe(&config, &Lvm, golden.as_deref())
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let plan = rollback::plan(&config, &probe, req.backup.as_deref(), now)?;
    run(req, report, &config, plan, || {
        rollback::guard_card(&probe.card)
    })
}

/// The part both recoveries share, from a plan: show it, stop on a dry run,
/// validate, execute, close.
fn run(
    req: &Request,
    report: &mut Report,
    config: &Config,
    plan: Plan,
    validate: impl FnOnce() -> Result<Vec<ReadOnlyGuard>>,
) -> Result<Outcome, Failure> {
    plan.show();
    report.plan = Some(plan.clone());
    if req.dry_run {
        log::info!("dry run: nothing was written");
        return Ok(Outcome::DryRun);
    }
    if plan.steps.is_empty() {
        log::info!("nothing to do: no disk was changed");
        return Ok(Outcome::LeftAlone);
    }
    let _read_only = report.phase("validate", |_| validate())?;
    unfinished::begin(&plan.target, req.mode).map_err(Failure::Refused)?;
    let digests = if req.skip_digests {
        Digests::Skip
    } else {
        Digests::Check
    };
    let mut exec = Executor::new(
        Path::new(RUN_DIR).join("target"),
        req.failpoints.clone(),
        digests,
        config
            .events_volume()
            .map(|volume| (config.vg.clone(), volume.name.clone())),
    );
    let executed = report.phase("execute", |report| exec.run(&plan, report));
    let wrote = report.steps.iter().any(|s| s.writes_disk);
    let result = match executed {
        Ok(()) => Ok(Outcome::Done),
        Err(error) if wrote => Err(Failure::Failed {
            error,
            disk: plan.target.clone(),
            mode: req.mode,
        }),
        Err(error) => Err(Failure::Refused(error)),
    };
    if let Err(Failure::Failed { .. }) = &result {
        if req.mode.resets() {
            record_failure(&config.vg);
        }
    }
    // The report on the target says how the run ended, too.
    conclude(report, &result);
    let closed = exec.close(report);
    match (result, closed) {
        (Ok(_), Err(e)) => Err(Failure::Failed {
            error: e,
            disk: plan.target,
            mode: req.mode,
        }),
        (result, _) => result,
    }
}

/// Marks the VG of a factory reset that failed, so that the automatic mode
/// does not run it again and again; a VG not yet made holds no record, and
/// the reset then counts as cut off.
fn record_failure(vg: &str) {
    match Lvm.vg_tag(vg, TAG_FAILED, true) {
        Ok(()) => log::info!("the failure is recorded on volume group {vg}: the automatic mode will not run this reset again"),
        Err(e) => log::warn!("the failure could not be recorded on the disk ({e:#}): the automatic mode will run the reset again"),
    }
}

/// Last checks before the first write; returns guards that keep the golden's
/// disks read-only at the kernel's level for the rest of the run.
fn validate(probe: &Probe, thin: bool) -> Result<Vec<ReadOnlyGuard>> {
    if let Some(line) = missing_tools(&probe.golden.root_tree, thin)
        .into_iter()
        .next()
    {
        anyhow::bail!("{line}");
    }
    // Partitions follow their disk's flag (and a guard on a partition of a
    // read-only disk would find it read-only and never clear it).
    let golden = &probe.golden;
    let mut devs: Vec<&String> = golden.disks.iter().collect();
    for dev in std::iter::once(&golden.dev).chain(&golden.boot_dev) {
        if !golden.disks.iter().any(|disk| on_disk(disk, dev)) {
            devs.push(dev);
        }
    }
    devs.into_iter()
        .map(|dev| ReadOnlyGuard::new(dev))
        .collect()
}

/// Whether a failure must stop the machine instead of letting the boot go
/// on: after a write, unless this boot's root (`root_disks`, the disks
/// under it; None when it cannot be found) is known to be elsewhere than the
/// disk the failure left partly written. Booting a half-made root would bring
/// the appliance up unprovisioned, and dracut's way out is a root shell.
fn stops_the_boot(failure: &Failure, root_disks: Option<&BTreeSet<String>>) -> bool {
    match failure {
        Failure::Refused(_) => false,
        Failure::Failed { disk, .. } => root_disks.is_none_or(|disks| disks.contains(disk)),
    }
}

/// Whether a failure in the initramfs stops the machine: the automatic
/// mode's always (its FAIL stays on the factory line's screen), any other
/// when it left the disk under this boot's root (`root=`) partly written.
pub fn failure_stops(failure: &Failure, root: Option<&str>) -> bool {
    match failure {
        Failure::Failed {
            mode: Mode::Auto, ..
        } => true,
        _ => stops_the_boot(failure, root_disks(root).as_ref()),
    }
}

/// The disks under this boot's root device, when it can be found now.
fn root_disks(root: Option<&str>) -> Option<BTreeSet<String>> {
    let dev = golden::resolve(root?, Duration::ZERO).ok()?;
    Some(BlockDev::open(&dev).ok()?.underlying_disks())
}

/// After a failure that left the disk under this boot's root partly written:
/// what to do, on every console, then the machine stops at that screen
/// (halted: no boot, no shell), or powers off with `zshield.after=poweroff`.
pub fn stop_after_failure(failure: &Failure, after: After) {
    if let Failure::Failed { disk, mode, .. } = failure {
        if *mode == Mode::Auto {
            log::warn!("{disk} is partly provisioned: the unit stops here, nothing boots from it");
        } else {
            log::warn!(
                "the root of this boot is on {disk}, which is partly written: it is not booted"
            );
        }
        log::warn!(
            "to finish: {}",
            match mode {
                Mode::Default | Mode::Auto => "boot with the CompactFlash card and pick \"Recover to factory default\" again",
                Mode::Latest => "pick \"Recover to latest backup\" again, or \"Recover to factory default\" with the CompactFlash card",
            }
        );
    }
    use nix::sys::reboot::{reboot, RebootMode};
    let mode = if after == After::Poweroff {
        log::warn!("powering off (zshield.after=poweroff)");
        RebootMode::RB_POWER_OFF
    } else {
        log::warn!("the machine is halted here: turn it off");
        RebootMode::RB_HALT_SYSTEM
    };
    nix::unistd::sync();
    log::logger().flush();
    let Err(e) = reboot(mode);
    log::error!("cannot stop the machine: {e}; do not boot it until the recovery is finished");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Reboots or powers off straight away (everything is synced and unmounted),
/// once the console has shown every line; `continue` returns and the boot goes on.
pub fn after(after: After) {
    use nix::sys::reboot::{reboot, RebootMode};
    nix::unistd::sync();
    let mode = match after {
        After::Continue => return,
        After::Reboot => RebootMode::RB_AUTOBOOT,
        After::Poweroff => RebootMode::RB_POWER_OFF,
    };
    log::logger().flush();
    let Err(e) = reboot(mode);
    log::error!(
        "cannot {}: {e}; turn the machine off by hand",
        match after {
            After::Reboot => "reboot",
            After::Poweroff => "power off",
            After::Continue => "continue",
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failure_under_this_boots_root_stops_the_boot() {
        let failed = Failure::Failed {
            error: anyhow!("hook failed"),
            disk: "/dev/sdb".into(),
            mode: Mode::Default,
        };
        let on = |disks: &[&str]| disks.iter().map(|d| d.to_string()).collect::<BTreeSet<_>>();
        assert!(stops_the_boot(&failed, Some(&on(&["/dev/sdb"]))));
        // A root that cannot be found is a doubt.
        assert!(stops_the_boot(&failed, None));
        // The golden root: the boot goes on into it.
        assert!(!stops_the_boot(&failed, Some(&on(&["/dev/sda"]))));
        let refused = Failure::Refused(anyhow!("the target is in use"));
        assert!(!stops_the_boot(&refused, None));
        // The factory line's FAIL stays on its screen, whatever the root.
        let auto = Failure::Failed {
            error: anyhow!("killed"),
            disk: "/dev/sdb".into(),
            mode: Mode::Auto,
        };
        assert!(failure_stops(&auto, Some("/dev/nonexistent-golden")));
        assert!(!failure_stops(&refused, None));
    }

    #[test]
    fn a_recovery_without_its_configuration_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("zshield.conf");
        let err = load_config(&missing, Missing::Refuse).unwrap_err();
        assert!(
            format!("{err:#}").contains("no configuration file")
                && format!("{err:#}").contains("does not guess the target disk"),
            "{err:#}"
        );
        assert_eq!(
            load_config(&missing, Missing::ShowDefaults).unwrap(),
            Config::default()
        );
    }
}
