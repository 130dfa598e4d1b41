//! The recovery, as the product describes it: probe → plan → (print the plan
//! on a dry run) → execute the steps with progress and timings → report.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::blockdev::{self, BlockDev, ReadOnlyGuard};
use crate::bootloader;
use crate::cmdline::{After, Mode};
use crate::config::{check_provision_dir, Config};
use crate::copy::{copy_tree, mirror_tree};
use crate::fstab::{self, GoldenNames};
use crate::lvm::Lvm;
use crate::mounts::MountStack;
use crate::plan::{self, mapper_path, Options, Plan, Step, TAG_COMPLETE, TAG_FS_READY, TAG_LAYOUT};
use crate::probe::{probe, Probed};
use crate::provision;
use crate::report::{Report, RUN_DIR, TARGET_LOG_DIR};
use crate::runner::Cmd;

/// What the operator asked for, from the kernel command line and the CLI.
#[derive(Debug, Clone)]
pub struct Request {
    pub mode: Mode,
    pub config: PathBuf,
    pub target: Option<String>,
    pub golden: Option<String>,
    /// `root=` of this boot.
    pub root: Option<String>,
    pub wipe: bool,
    pub dry_run: bool,
    pub after: After,
    /// Test only: simulate a power loss after the first step of this kind.
    pub cut_after: Option<String>,
    /// Another provisioning directory of the golden (`zshield.provision=`).
    pub provision: Option<String>,
}

/// How a recovery ended, for the caller's exit code and after-action.
pub enum Outcome {
    Done,
    /// Nothing was written: the plan was refused or the run was a dry run.
    Untouched,
}

/// Resolves the configuration with the command line's overrides.
fn load(req: &Request) -> Result<(Config, String, String)> {
    let mut config = Config::load(&req.config)?;
    if let Some(dir) = &req.provision {
        check_provision_dir(dir).map_err(|e| anyhow::anyhow!("zshield.provision={dir}: {e}"))?;
        config.provision.dir = dir.clone();
    }
    let target = req.target.clone().unwrap_or_else(|| config.target.clone());
    let golden = req
        .golden
        .clone()
        .or_else(|| config.golden.clone())
        .or_else(|| req.root.clone())
        .context("no golden root: this boot has no root= and the configuration names no golden; set zshield.golden=")?;
    Ok((config, target, golden))
}

fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).exists()))
}

fn lvm_if_present() -> Option<Lvm> {
    let found = in_path("lvm");
    if !found {
        log::warn!("no lvm tool here: existing volume groups are not taken into account");
    }
    found.then_some(Lvm)
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `zshield plan`: what `recover --mode default` would do here, touching nothing.
pub fn print_plan(req: &Request) -> Result<()> {
    let (config, target, golden) = load(req)?;
    let lvm = lvm_if_present();
    let probed = probe(&golden, &target, lvm.as_ref(), &config.provision)?;
    let plan = plan::plan(
        &probed.probe,
        &config,
        &Options { wipe: req.wipe },
        &mut new_uuid,
    )?;
    show(&plan);
    Ok(())
}

fn show(plan: &Plan) {
    log::info!(
        "plan: target {} holds {}; golden root {}",
        plan.target,
        plan.found,
        plan.golden
    );
    for (i, step) in plan.steps.iter().enumerate() {
        log::info!("plan: {:2}. {step}", i + 1);
    }
}

/// Runs the recovery `req.mode` asks for, with its report.
pub fn recover(req: &Request) -> Result<Outcome> {
    let mut report = Report::new(&req.mode.to_string(), req.dry_run);
    log::info!(
        "{} {} (zshield {})",
        match req.mode {
            Mode::Default => "factory reset",
            Mode::Latest => "rollback to the latest backup",
        },
        if req.dry_run { "dry run" } else { "starting" },
        env!("CARGO_PKG_VERSION")
    );
    let result = match req.mode {
        Mode::Default => run_factory_reset(req, &mut report),
        Mode::Latest => crate::rollback::rollback(req, &mut report),
    };
    let touched = report.touched_disks();
    match &result {
        Ok(_) => report.status = "ok".into(),
        Err(e) => {
            report.status = if touched { "failed" } else { "refused" }.into();
            report.error = Some(format!("{e:#}"));
        }
    }
    match report.write(Path::new(RUN_DIR)) {
        Ok(path) => log::info!("report: {}", path.display()),
        Err(e) => log::warn!("{e:#}"),
    }
    result.map_err(|e| {
        let disks = if touched {
            let target = report.plan.as_ref().map_or("the disk", |p| p.target.as_str());
            format!(
                "{target} is partly {}: fix the cause and start the recovery again, it resumes where it stopped",
                match req.mode {
                    Mode::Default => "provisioned",
                    Mode::Latest => "rolled back",
                }
            )
        } else {
            "no disk was changed".to_string()
        };
        anyhow::anyhow!("{e:#}; {disks}")
    })
}

fn run_factory_reset(req: &Request, report: &mut Report) -> Result<Outcome> {
    let (config, target, golden) = load(req)?;
    log::info!(
        "target {target}, golden {golden}, layout {} on VG {}",
        config.label,
        config.vg
    );
    let lvm = Lvm;
    let Probed {
        probe,
        target,
        golden_root,
        golden_boot,
        mut golden_mounts,
    } = report.phase("probe", |_| {
        probe(&golden, &target, Some(&lvm), &config.provision)
    })?;
    let plan = report.phase("plan", |_| {
        plan::plan(&probe, &config, &Options { wipe: req.wipe }, &mut new_uuid)
            .map_err(anyhow::Error::from)
    })?;
    show(&plan);
    report.plan = Some(plan.clone());
    if req.dry_run {
        log::info!("dry run: nothing was written");
        return Ok(Outcome::Untouched);
    }
    let _golden_read_only = report.phase("validate", |_| validate(&probe, &golden_root))?;

    let mut exec = Executor {
        plan: &plan,
        lvm,
        target: &target,
        golden_root: &golden_root,
        golden_boot: &golden_boot,
        golden_names: GoldenNames::new(probe.golden.names.clone()),
        target_root: Path::new(RUN_DIR).join("target"),
        target_mounts: MountStack::new(),
        cut_after: req.cut_after.clone(),
    };
    let result = report.phase("execute", |report| exec.run_all(report));
    if exec.target_mounts_has_root() {
        let dir = exec.target_root.join(TARGET_LOG_DIR);
        report.status = if result.is_ok() { "ok" } else { "failed" }.into();
        match report.write(&dir) {
            Ok(path) => log::info!(
                "report on the target: /{}",
                path.strip_prefix(&exec.target_root)
                    .unwrap_or(&path)
                    .display()
            ),
            Err(e) => log::warn!("cannot write the report on the target: {e:#}"),
        }
    }
    nix::unistd::sync();
    let unmounted = exec.target_mounts.unmount_all();
    let golden_unmounted = golden_mounts.unmount_all();
    result?;
    unmounted?;
    golden_unmounted?;
    Ok(Outcome::Done)
}

/// Last checks before the first write; returns guards that keep the golden's
/// disks read-only at the kernel's level for the rest of the run.
fn validate(probe: &plan::Probe, golden_root: &Path) -> Result<Vec<ReadOnlyGuard>> {
    if let Some(tool) = ["lvm", "mkfs.ext4", "rsync"]
        .into_iter()
        .find(|t| !in_path(t))
    {
        bail!("the tool {tool} is missing from this initramfs: rebuild it with the zshield dracut module");
    }
    bootloader::check_tools(golden_root)?;
    // Partitions follow their disk's flag (and a guard on a partition of a
    // read-only disk would find it read-only and never clear it).
    let golden = &probe.golden;
    let mut devs: Vec<&String> = golden.disks.iter().collect();
    for dev in std::iter::once(&golden.dev).chain(&golden.boot_dev) {
        if !golden.disks.iter().any(|disk| plan::on_disk(disk, dev)) {
            devs.push(dev);
        }
    }
    devs.into_iter()
        .map(|dev| ReadOnlyGuard::new(dev))
        .collect()
}

struct Executor<'a> {
    plan: &'a Plan,
    lvm: Lvm,
    target: &'a BlockDev,
    golden_root: &'a Path,
    golden_boot: &'a Path,
    golden_names: GoldenNames,
    target_root: PathBuf,
    target_mounts: MountStack,
    cut_after: Option<String>,
}

impl Executor<'_> {
    fn target_mounts_has_root(&self) -> bool {
        self.plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::MountTarget { .. }))
            && self.target_root.join("etc").exists()
    }

    fn run_all(&mut self, report: &mut Report) -> Result<()> {
        let total = self.plan.steps.len();
        for step in &self.plan.steps {
            let record = (
                step.name(),
                step.to_string(),
                serde_json::to_value(step).unwrap_or_default(),
            );
            report.step(total, record, step.writes_disk(), |report| {
                self.run(step, report)
            })?;
            failpoint(&self.cut_after, &step.name(), report.steps.len());
        }
        Ok(())
    }

    fn run(&mut self, step: &Step, report: &mut Report) -> Result<()> {
        let lvm = &self.lvm;
        match step {
            Step::DeactivateVg { vg } => lvm.deactivate(vg),
            Step::Wipe { ranges, .. } => {
                blockdev::wipe(self.target, ranges)?;
                blockdev::reread_partitions(self.target, &[])
            }
            Step::Partition {
                label, partitions, ..
            } => {
                blockdev::write_table(self.target, *label, partitions, rand_u16())?;
                let expected: Vec<(u32, u64, u64)> = partitions
                    .iter()
                    .map(|p| (p.number, p.start, p.size))
                    .collect();
                blockdev::reread_partitions(self.target, &expected)
            }
            Step::MkfsBoot { dev, uuid } => mkfs(dev, uuid, "boot"),
            Step::CreatePv { dev } => lvm.pvcreate(dev),
            Step::CreateVg { vg, pv } => lvm.vgcreate(vg, pv, TAG_LAYOUT),
            Step::UnmarkComplete { vg } => lvm.vg_tag(vg, TAG_COMPLETE, false),
            Step::RemoveLv { vg, lv } => lvm.lvremove(vg, lv),
            Step::CreateLv {
                vg, lv, extents, ..
            } => lvm.lvcreate(vg, lv, *extents).map(drop),
            Step::MkfsLv { vg, lv, uuid } => mkfs(&mapper_path(vg, lv), uuid, lv),
            Step::MarkFsReady { vg, lv } => lvm.lv_add_tag(vg, lv, TAG_FS_READY),
            Step::KeepLv { vg, lv } => {
                log::info!("{vg}/{lv} is kept as it is");
                Ok(())
            }
            Step::MountTarget { root, boot } => {
                self.target_mounts.ext4(root, &self.target_root, false)?;
                self.target_mounts
                    .ext4(boot, &self.target_root.join("boot"), false)
            }
            Step::CopyRoot { .. } => {
                report.copied_root = Some(copy_tree(
                    self.golden_root,
                    &self.target_root,
                    &["/boot/*"],
                    "copying the golden root",
                )?);
                Ok(())
            }
            Step::CopyBoot { .. } => {
                report.copied_boot = Some(copy_tree(
                    self.golden_boot,
                    &self.target_root.join("boot"),
                    &[],
                    "copying the golden /boot",
                )?);
                // The first backup, too, must hold the /boot of its root.
                let copy = self.target_root.join(crate::rollback::BOOT_COPY);
                std::fs::create_dir_all(&copy)
                    .with_context(|| format!("cannot create {}", copy.display()))?;
                mirror_tree(
                    self.golden_boot,
                    &copy,
                    "keeping a copy of /boot for backups",
                )?;
                Ok(())
            }
            Step::ConfigureTarget {
                fstab,
                mount_points,
                golden,
            } => self.configure(fstab, mount_points, golden),
            Step::InstallFiles { provision } => {
                provision::install_files(self.golden_root, &self.target_root, provision)
            }
            Step::RunHooks { provision } => {
                provision::run_hooks(&self.target_root, provision, report)
            }
            Step::InstallBootloader { disk, root } => {
                bootloader::install(&self.target_root, disk, root)
            }
            Step::CreateSnapshot {
                vg,
                origin,
                snapshot,
                extents,
                ..
            } => {
                nix::unistd::sync();
                lvm.snapshot(vg, origin, snapshot, *extents).map(drop)
            }
            Step::MarkComplete { vg } => lvm.vg_tag(vg, TAG_COMPLETE, true),
        }
    }

    /// fstab, mount points, the LVM devices file and GRUB's defaults.
    fn configure(
        &self,
        entries: &[plan::FstabEntry],
        mount_points: &[String],
        golden: &str,
    ) -> Result<()> {
        let root = &self.target_root;
        let path = root.join("etc/fstab");
        let golden_fstab = std::fs::read_to_string(&path).unwrap_or_default();
        let entries: Vec<fstab::Entry> = entries.iter().map(plan::FstabEntry::to_entry).collect();
        let rewritten = fstab::rewrite(&golden_fstab, &entries, &self.golden_names);
        for line in &rewritten.disabled {
            log::warn!("fstab line disabled, it names the golden disk: {line}");
        }
        std::fs::write(&path, rewritten.text)
            .with_context(|| format!("cannot write {}", path.display()))?;
        for mp in mount_points {
            let dir = root.join(mp.trim_start_matches('/'));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create the mount point {mp}"))?;
        }
        let devices_file = root.join("etc/lvm/devices/system.devices");
        if devices_file.exists() {
            std::fs::remove_file(&devices_file)
                .context("cannot remove /etc/lvm/devices/system.devices")?;
            log::info!(
                "removed /etc/lvm/devices/system.devices (it named the build machine's disks)"
            );
        }
        bootloader::configure_defaults(root, golden)
    }
}

fn mkfs(dev: &str, uuid: &str, label: &str) -> Result<()> {
    // ext4 labels hold 16 bytes.
    let label: String = label.chars().take(16).collect();
    Cmd::new("mkfs.ext4")
        .args(["-q", "-F", "-U", uuid, "-L", &label, dev])
        .run()?;
    Ok(())
}

fn rand_u16() -> u16 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    u16::from_le_bytes([bytes[0], bytes[1]])
}

/// The test failpoint `zshield.test.cut_after=NAME`: cuts the power after the
/// first step of that name.
pub fn failpoint(cut_after: &Option<String>, step: &str, number: usize) {
    if cut_after.as_deref() == Some(step) {
        power_loss(&format!("after step {number}"));
    }
}

/// Off at once, with what is not yet on the disks lost.
pub fn power_loss(when: &str) {
    let line = format!("test failpoint zshield.test.cut_after: cutting the power {when}");
    log::warn!("{line}");
    // The kernel log reaches the console at once; the journal may not.
    let _ = std::fs::write("/dev/kmsg", format!("<3>zshield: warning: {line}\n"));
    let Err(e) = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    log::error!("cannot cut the power: {e}");
}

/// Reboots or powers off straight away (everything is synced and unmounted);
/// `continue` returns and the boot goes on.
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
        after_name(after)
    );
}

fn after_name(after: After) -> &'static str {
    match after {
        After::Reboot => "reboot",
        After::Poweroff => "power off",
        After::Continue => "continue",
    }
}
