//! Looking at the machine for a factory reset: the golden root and the
//! target disk as they are, described for the planner. Nothing here writes
//! to a disk; the golden is mounted read-only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config::{ProvisionConfig, TARGET_AUTO};
use crate::disk::blockdev::{examine, ext_superblock, settle_udev, BlockDev, Holder};
use crate::disk::blockmap::{self, FsMap, Stored};
use crate::disk::content::{old_areas, Content};
use crate::disk::golden;
use crate::disk::identity::{self, Identity};
use crate::disk::mounts::{mount_point_of, mounts_of, MountStack};
use crate::fstab;
use crate::layout::on_disk;
use crate::logging::RUN_DIR;
use crate::lvm::report::{Lv, Pv, Vg};
use crate::lvm::Lvm;
use crate::signing::Keys;
use crate::target::bootentry::{self, BootVars};
use crate::target::bootloader;
use crate::target::provision::{self, Provision};

/// How long to wait for a device named on the command line to appear.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(30);

/// The disk to provision, as the probe found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDisk {
    /// As configured, e.g. `/dev/disk/by-id/…`.
    pub requested: String,
    /// The kernel's node, e.g. `/dev/sdb`.
    pub dev: String,
    pub size: u64,
    pub is_partition: bool,
    pub read_only: bool,
    /// `/dev/sdb1 on /mnt`, one per mount of the disk or its partitions.
    pub mounts: Vec<String>,
    pub holders: Vec<Holder>,
    /// Model, serial and size: how the operator knows the disk.
    pub identity: Identity,
}

/// The golden root filesystem of this boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldenRoot {
    /// As given: `LABEL=golden-root`, `/dev/sda2`…
    pub spec: String,
    pub dev: String,
    /// The whole disks under it, e.g. `/dev/sda`.
    pub disks: Vec<String>,
    /// The golden /boot partition when the golden fstab mounts one.
    pub boot_dev: Option<String>,
    /// Every name of the golden disk's filesystems (for the fstab check).
    pub names: Vec<String>,
    /// The golden root filesystem's UUID, when it is an ext filesystem.
    pub uuid: Option<String>,
    /// Where the golden root and its /boot are mounted, read-only.
    pub root_tree: PathBuf,
    pub boot_tree: PathBuf,
    /// The golden root's entry in the card's block map, or why there is none.
    pub block_map: Result<FsMap, String>,
    /// The same for the golden /boot.
    pub boot_map: Result<FsMap, String>,
    /// The card carries a block map that does not check out or does not
    /// list the golden's file systems: a damaged or altered card.
    pub map_damage: Option<String>,
    /// Only a card whose block map the vendor signed is taken
    /// (`require_signed_map`): every byte copied must be checked against
    /// that map, so nothing is copied file by file.
    pub signed_map_required: bool,
    /// Whether a disk made from this golden can boot through UEFI with
    /// Secure Boot (its signed shim and GRUB, and mkfs.fat here), or why not.
    pub efi: Result<(), String>,
}

impl GoldenRoot {
    /// How the provisioned disk's "factory default" entry names this golden:
    /// by its filesystem UUID, which stays right whatever the disks are called.
    pub fn spec_for_disk(&self) -> String {
        match &self.uuid {
            Some(uuid) => format!("UUID={uuid}"),
            None => self.spec.clone(),
        }
    }
}

/// Everything the planner needs to know about the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub target: TargetDisk,
    pub golden: GoldenRoot,
    pub content: Content,
    /// `(start, size)` in bytes of the partitions on the target now.
    pub partitions: Vec<(u64, u64)>,
    pub pvs: Vec<Pv>,
    pub vgs: Vec<Vg>,
    pub lvs: Vec<Lv>,
    /// Whether LVM was asked (`zshield plan` on a machine without it is not).
    pub lvm_asked: bool,
    /// Whether this machine started through UEFI (the kernel shows its
    /// variables' interface).
    pub booted_uefi: bool,
    /// The firmware's boot variables, or why there are none to add the
    /// disk's entry to.
    pub boot_vars: Result<BootVars, String>,
    /// The target's partitions as udev names them in /dev/disk/by-partuuid,
    /// before the reset: the firmware's entries of earlier resets lead there.
    pub target_partitions: Vec<String>,
    /// The golden's per-unit files and hooks for this architecture, checked.
    pub provision: Provision,
    /// The disks that could be the target (not the golden's, not removable,
    /// not on USB, large enough): a bare `zshield.wipe` needs it to be one.
    pub candidates: Vec<Identity>,
}

/// The names udev gives `target`'s partitions in /dev/disk/by-partuuid
/// (none when it cannot be read: then no boot entry is taken for the
/// target's).
fn target_partitions(target: &str) -> Vec<String> {
    let Ok(links) = std::fs::read_dir("/dev/disk/by-partuuid") else {
        return Vec::new();
    };
    links
        .flatten()
        .filter(|link| {
            std::fs::canonicalize(link.path())
                .is_ok_and(|dev| on_disk(target, &dev.to_string_lossy()))
        })
        .map(|link| link.file_name().to_string_lossy().to_lowercase())
        .collect()
}

/// `target = "auto"`: the one disk that could be the target, waiting a while
/// for one to appear; refused when there are several.
fn auto_target(candidates: impl Fn() -> Vec<Identity>) -> Result<String> {
    let deadline = Instant::now() + DEVICE_TIMEOUT;
    loop {
        match candidates().as_slice() {
            [one] => {
                log::info!("target auto: {one}, the only disk that could be the target");
                return Ok(one.dev.clone());
            }
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
            [] => bail!(
                "target auto: no disk could be the target (none that is not the golden's, not removable, not on USB and large enough): connect the hard disk, or name it with zshield.target="
            ),
            several => {
                let named: Vec<String> = several.iter().map(|d| d.to_string()).collect();
                bail!(
                    "target auto: {} disks could be the target ({}): name one with zshield.target=/dev/disk/by-id/… or in the configuration's target",
                    several.len(),
                    named.join("; ")
                )
            }
        }
    }
}

/// The entries of the golden root and of the golden /boot (`None`: a
/// directory of the root) in the block map their card carries, or why there
/// is none; and what is wrong with the card when it carries a map that does
/// not check out or does not list them (a damaged or altered card), or, with
/// `signers` (the vendor's keys, when cards must be signed), a map that is
/// not signed with one of them.
fn golden_block_maps(
    disks: &[String],
    root: Option<&str>,
    boot: Option<Option<String>>,
    signers: Option<&Result<Keys, String>>,
) -> (Result<FsMap, String>, Result<FsMap, String>, Option<String>) {
    let altered = |why: String| (Err(why.clone()), Err(why.clone()), Some(why));
    let card = match disks {
        [disk] => match blockmap::load_if_present(Path::new(disk)) {
            Ok(Some(stored)) => Ok((disk, stored)),
            Ok(None) if signers.is_some() => {
                return altered(format!(
                    "{disk} carries no block map, and this unit takes only cards whose map the vendor signed (require_signed_map)"
                ))
            }
            Ok(None) => Err(format!("{disk} carries no block map")),
            Err(e) => return altered(format!("{e:#}")),
        },
        _ if signers.is_some() => {
            return altered(
                "the golden is not on one disk, so no signed block map can vouch for it (require_signed_map)".into(),
            )
        }
        _ => Err("the golden is not on one disk".into()),
    };
    if let (Ok((disk, stored)), Some(signers)) = (&card, signers) {
        if let Err(why) = signed_by(stored, signers.as_ref()) {
            return altered(format!("the block map of {disk} {why}"));
        }
    }
    let mut damage = None;
    let mut entry = |uuid: Option<&str>, what: &str| -> Result<FsMap, String> {
        let uuid = uuid.ok_or_else(|| format!("{what} is not an ext2/3/4 file system"))?;
        let (disk, stored) = card.as_ref().map_err(Clone::clone)?;
        let listed = stored
            .map
            .filesystems
            .iter()
            .find(|fs| fs.uuid == uuid)
            .cloned();
        listed.ok_or_else(|| {
            let why = format!("the block map of {disk} does not list {what} (UUID {uuid})");
            damage.get_or_insert(why.clone());
            why
        })
    };
    let root = entry(root, "the golden root");
    let boot = match boot {
        Some(uuid) => entry(uuid.as_deref(), "the golden /boot"),
        None => Err("the golden /boot is a directory of its root".into()),
    };
    (root, boot, damage)
}

/// Whether one of the vendor's keys signed the stored map, in words if not.
fn signed_by(stored: &Stored, signers: Result<&Keys, &String>) -> Result<(), String> {
    let keys = signers.map_err(|e| format!("cannot be checked: {e}"))?;
    let key = stored.signed_by(keys).map_err(|why| {
        format!("{why}, and this unit takes only cards whose map the vendor signed (require_signed_map)")
    })?;
    log::info!(
        "the golden card's block map is signed with {}",
        key.display()
    );
    Ok(())
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

/// Looks at the golden and the target; returns what it found and the
/// read-only mounts of the golden, to be kept while its trees are in use.
pub fn probe(
    golden_spec: &str,
    target_spec: &str,
    lvm: Option<&Lvm>,
    provision: &ProvisionConfig,
    least_size: u64,
    signers: Option<&Result<Keys, String>>,
) -> Result<(Probe, MountStack)> {
    settle_udev();
    let mut golden_mounts = MountStack::new();

    let golden_dev = golden::resolve_unique(golden_spec, None, DEVICE_TIMEOUT).with_context(|| {
        format!("cannot take the golden root {golden_spec}: insert the CompactFlash card with the golden image, or check root= and zshield.golden=")
    })?;
    let golden_dev = BlockDev::open(&golden_dev)?;
    let golden_root = mount_golden(
        &golden_dev,
        &Path::new(RUN_DIR).join("golden"),
        &mut golden_mounts,
    )?;
    golden::confirm_root(&golden_root, &golden_dev.dev)?;
    let golden_fstab = golden::read_fstab(&golden_root)?;
    let card: Vec<String> = golden_dev.underlying_disks().into_iter().collect();
    let (golden_boot, boot_dev) = match fstab::device_of(&golden_fstab, "/boot") {
        Some(spec) => {
            let dev =
                golden::resolve_unique(&spec, Some(&card), DEVICE_TIMEOUT).with_context(|| {
                    format!("cannot take the golden /boot {spec} named in its fstab")
                })?;
            let dev = BlockDev::open(&dev)?;
            let dir = mount_golden(
                &dev,
                &Path::new(RUN_DIR).join("golden-boot"),
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
    let uuid = ext_superblock(&golden_dev.dev).map(|(uuid, _)| uuid);
    let boot_uuid = boot_dev
        .as_ref()
        .map(|dev| ext_superblock(dev).map(|(uuid, _)| uuid));
    let (block_map, boot_map, map_damage) =
        golden_block_maps(&disks, uuid.as_deref(), boot_uuid, signers);
    let efi = bootloader::check_efi(&golden_root).and_then(|()| {
        if super::in_path("mkfs.fat") {
            Ok(())
        } else {
            Err("the initramfs has no mkfs.fat: rebuild it with the zshield dracut module and dosfstools in the golden".into())
        }
    });
    let golden = GoldenRoot {
        spec: golden_spec.to_string(),
        dev: golden_dev.dev.clone(),
        names: golden::names_on(&disks),
        disks,
        boot_dev,
        uuid,
        root_tree: golden_root,
        boot_tree: golden_boot,
        block_map,
        boot_map,
        map_damage,
        signed_map_required: signers.is_some(),
        efi,
    };

    let golden_disks: BTreeSet<String> = golden.disks.iter().cloned().collect();
    let candidates = || identity::candidates(&identity::all_disks(), &golden_disks, least_size);
    let target_spec = if target_spec == TARGET_AUTO {
        auto_target(candidates)?
    } else {
        golden::resolve(target_spec, DEVICE_TIMEOUT)
            .with_context(|| format!("the target disk {target_spec} is not there: check the configuration's target or zshield.target="))?;
        target_spec.to_string()
    };
    let target = BlockDev::open(&target_spec)?;
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
    let (evidence, content) = examine(&target)?;
    let kernel_partitions: Vec<(u64, u64)> = partitions
        .iter()
        .map(|(_, p)| (p.start(), p.size()))
        .collect();
    let old_partitions = old_areas(&evidence, &kernel_partitions);
    let (pvs, vgs, lvs) = match lvm {
        Some(lvm) => (lvm.pvs()?, lvm.vgs()?, lvm.lvs()?),
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let booted_uefi = Path::new("/sys/firmware/efi").exists();
    let probe = Probe {
        target: TargetDisk {
            requested: target_spec.to_string(),
            dev: target.dev.clone(),
            size: target.size(),
            is_partition: target.is_partition(),
            read_only: target.read_only(),
            mounts: mounts_of(&devnos),
            holders,
            identity: Identity::of(&target),
        },
        golden,
        content,
        partitions: old_partitions,
        pvs,
        vgs,
        lvs,
        lvm_asked: lvm.is_some(),
        booted_uefi,
        boot_vars: if booted_uefi {
            bootentry::read(std::path::Path::new(bootentry::EFIVARS))
        } else {
            Err("this machine started through BIOS".into())
        },
        target_partitions: target_partitions(&target.dev),
        provision,
        candidates: candidates(),
    };
    Ok((probe, golden_mounts))
}
