//! Looking at the machine: the golden root and the target disk as they are.
//! Nothing here writes to a disk; the golden is mounted read-only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::blockdev::{ext_superblock, mounts_of, read_evidence, settle_udev, BlockDev};
use crate::config::ProvisionConfig;
use crate::content::classify;
use crate::golden;
use crate::lvm::Lvm;
use crate::mounts::MountStack;
use crate::plan::{GoldenRoot, Probe, TargetDisk};
use crate::provision;

/// How long to wait for a device named on the command line to appear.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(30);

/// The probe's findings and the read-only mounts of the golden they needed.
pub struct Probed {
    pub probe: Probe,
    pub target: BlockDev,
    /// The golden root and /boot trees, mounted read-only.
    pub golden_root: PathBuf,
    pub golden_boot: PathBuf,
    /// Kept alive while the trees are in use.
    pub golden_mounts: MountStack,
}

/// Where a device is mounted already, if it is.
fn mount_point_of(devno: u64) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (major, minor) = f.get(2)?.split_once(':')?;
        let d = nix::sys::stat::makedev(major.parse().ok()?, minor.parse().ok()?);
        (d == devno && *f.get(3)? == "/").then(|| PathBuf::from(f[4]))
    })
}

/// Mounts `dev` read-only at `dir`, or reuses the place it is mounted already
/// (the running golden system, for `zshield plan`).
fn mount_golden(dev: &BlockDev, dir: &Path, mounts: &mut MountStack) -> Result<PathBuf> {
    if let Some(existing) = mount_point_of(dev.devno) {
        return Ok(existing);
    }
    mounts.ext4(&dev.dev, dir, true)?;
    Ok(dir.to_path_buf())
}

pub fn probe(
    golden_spec: &str,
    target_spec: &str,
    lvm: Option<&Lvm>,
    provision: &ProvisionConfig,
) -> Result<Probed> {
    settle_udev();
    let mut golden_mounts = MountStack::new();

    let golden_dev = golden::resolve(golden_spec, DEVICE_TIMEOUT).with_context(|| {
        format!("cannot find the golden root {golden_spec}: insert the CompactFlash card with the golden image, or check root= and zshield.golden=")
    })?;
    let golden_dev = BlockDev::open(&golden_dev)?;
    let golden_root = mount_golden(
        &golden_dev,
        &Path::new(crate::report::RUN_DIR).join("golden"),
        &mut golden_mounts,
    )?;
    golden::confirm_root(&golden_root, &golden_dev.dev)?;
    let fstab = golden::read_fstab(&golden_root)?;
    let (golden_boot, boot_dev) = match golden::fstab_device(&fstab, "/boot") {
        Some(spec) => {
            let dev = golden::resolve(&spec, DEVICE_TIMEOUT).with_context(|| {
                format!("cannot find the golden /boot {spec} named in its fstab")
            })?;
            let dev = BlockDev::open(&dev)?;
            let dir = mount_golden(
                &dev,
                &Path::new(crate::report::RUN_DIR).join("golden-boot"),
                &mut golden_mounts,
            )?;
            (dir, Some(dev.dev))
        }
        None => (golden_root.join("boot"), None),
    };
    let mut disks: BTreeSet<String> = golden_dev.underlying_disks();
    if let Some(boot) = &boot_dev {
        disks.extend(BlockDev::open(boot)?.underlying_disks());
    }
    let disks: Vec<String> = disks.into_iter().collect();
    let provision = provision::load(&golden_root, provision)?;
    let golden = GoldenRoot {
        spec: golden_spec.to_string(),
        dev: golden_dev.dev.clone(),
        names: golden::names_on(&disks),
        disks,
        boot_dev,
        uuid: ext_superblock(&golden_dev.dev).map(|(uuid, _)| uuid),
    };

    golden::resolve(target_spec, DEVICE_TIMEOUT)
        .with_context(|| format!("the target disk {target_spec} is not there: check the configuration's target or zshield.target="))?;
    let target = BlockDev::open(target_spec)?;
    let partitions = target.partitions();
    let mut holders = target.holders();
    for (_, p) in &partitions {
        holders.extend(p.holders());
    }
    let mut devnos: BTreeSet<u64> = partitions.iter().map(|(_, p)| p.devno).collect();
    devnos.insert(target.devno);
    for h in &holders {
        if let Ok(dev) = BlockDev::open(&format!("/dev/{}", h.holder)) {
            devnos.insert(dev.devno);
        }
    }
    let evidence = read_evidence(&target)?;
    let old_partitions: Vec<(u64, u64)> = match &evidence.table {
        Some(t) => t.partitions().iter().map(|p| (p.start, p.size)).collect(),
        None => partitions
            .iter()
            .map(|(_, p)| (p.start(), p.size()))
            .collect(),
    };
    let (pvs, vgs, lvs) = match lvm {
        Some(lvm) => (lvm.pvs()?, lvm.vgs()?, lvm.lvs()?),
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let probe = Probe {
        target: TargetDisk {
            requested: target_spec.to_string(),
            dev: target.dev.clone(),
            size: target.size(),
            is_partition: target.is_partition(),
            read_only: target.read_only(),
            mounts: mounts_of(&devnos),
            holders,
        },
        golden,
        content: classify(&evidence),
        partitions: old_partitions,
        pvs,
        vgs,
        lvs,
        provision,
    };
    Ok(Probed {
        probe,
        target,
        golden_root,
        golden_boot,
        golden_mounts,
    })
}
