//! From a probed description of the disks to the list of steps of a factory
//! reset. Pure: every refusal happens here, before anything is written.

use std::fmt;

use crate::config::{Config, Label};
use crate::content::{Content, ExistingLayout, GPT_BIOS_NAME, GPT_BOOT_NAME, GPT_LVM_NAME};
use crate::fstab;
use crate::lvm_report::{Lv, Pv, Vg};
use crate::provision::Provision;
use crate::units::{human, MIB};

/// VG tag: this VG was made by zshield.
pub const TAG_LAYOUT: &str = "zshield";
/// VG tag: the last factory reset finished; set at its very end.
pub const TAG_COMPLETE: &str = "zshield_complete";
/// LV tag: the filesystem of this data volume was made and may hold data.
pub const TAG_FS_READY: &str = "zshield_fs_ready";

/// Extent size and first extent of the VGs zshield makes (passed to LVM, so
/// that the plan can count extents before the VG exists).
pub const EXTENT: u64 = 4 * MIB;
pub const PE_START: u64 = MIB;
const ALIGN: u64 = MIB;
const BIOS_BOOT_SIZE: u64 = MIB;

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
}

/// A kernel device stacked on the disk or one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `sdb3`
    pub held: String,
    /// `dm-0`
    pub holder: String,
    /// The device-mapper name, `vgroup-lv--root`, when the holder is dm.
    pub dm_name: Option<String>,
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
    /// The golden's per-unit files and hooks for this architecture, checked.
    pub provision: Provision,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `zshield.wipe`: the operator allows erasing foreign content.
    pub wipe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartKind {
    BiosBoot,
    Boot,
    Lvm,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewPartition {
    pub number: u32,
    pub name: &'static str,
    pub kind: PartKind,
    /// Bytes from the start of the disk.
    pub start: u64,
    pub size: u64,
}

/// One step of a factory reset. Each carries what it needs, so that the plan
/// printed by `--dry-run` is exactly what runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    DeactivateVg {
        vg: String,
    },
    Wipe {
        disk: String,
        ranges: Vec<(u64, u64)>,
    },
    Partition {
        disk: String,
        label: Label,
        partitions: Vec<NewPartition>,
    },
    MkfsBoot {
        dev: String,
        uuid: String,
    },
    CreatePv {
        dev: String,
    },
    CreateVg {
        vg: String,
        pv: String,
    },
    UnmarkComplete {
        vg: String,
    },
    RemoveLv {
        vg: String,
        lv: String,
    },
    CreateLv {
        vg: String,
        lv: String,
        extents: u64,
        bytes: u64,
    },
    MkfsLv {
        vg: String,
        lv: String,
        uuid: String,
    },
    MarkFsReady {
        vg: String,
        lv: String,
    },
    KeepLv {
        vg: String,
        lv: String,
    },
    MountTarget {
        root: String,
        boot: String,
    },
    CopyRoot {
        from: String,
        to: String,
    },
    CopyBoot {
        from: String,
        to: String,
    },
    ConfigureTarget {
        fstab: Vec<FstabEntry>,
        mount_points: Vec<String>,
        /// Where the disk's own "Recover to factory default" finds the golden.
        golden: String,
    },
    /// The install manifest's files for this architecture.
    InstallFiles {
        provision: Provision,
    },
    /// The provisioning hooks, in order, inside the target.
    RunHooks {
        provision: Provision,
    },
    InstallBootloader {
        disk: String,
        root: String,
    },
    CreateSnapshot {
        vg: String,
        origin: String,
        snapshot: String,
        extents: u64,
        bytes: u64,
    },
    MarkComplete {
        vg: String,
    },
}

/// `fstab::Entry` in a form the JSON report can carry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FstabEntry {
    pub spec: String,
    pub mount_point: String,
    pub options: String,
    pub passno: u8,
}

impl FstabEntry {
    pub fn to_entry(&self) -> fstab::Entry {
        fstab::Entry {
            spec: self.spec.clone(),
            mount_point: self.mount_point.clone(),
            fstype: "ext4".into(),
            options: self.options.clone(),
            passno: self.passno,
        }
    }
}

impl Step {
    /// The step's kind in kebab case, as the JSON report and the test
    /// failpoint name it: `partition`, `copy-root`…
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v["step"].as_str().map(String::from))
            .unwrap_or_default()
    }

    /// Whether the step changes a disk (the report says where a failure left them).
    pub fn writes_disk(&self) -> bool {
        !matches!(
            self,
            Step::KeepLv { .. } | Step::DeactivateVg { .. } | Step::MountTarget { .. }
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::DeactivateVg { vg } => write!(f, "deactivate volume group {vg}"),
            Step::Wipe { disk, ranges } => {
                let total: u64 = ranges.iter().map(|r| r.1).sum();
                write!(
                    f,
                    "wipe old signatures on {disk} ({} ranges, {})",
                    ranges.len(),
                    human(total)
                )
            }
            Step::Partition {
                disk,
                label,
                partitions,
            } => {
                let parts: Vec<String> = partitions
                    .iter()
                    .map(|p| format!("{} {} {}", p.number, p.name, human(p.size)))
                    .collect();
                write!(
                    f,
                    "write a {label} partition table on {disk}: {}",
                    parts.join(", ")
                )
            }
            Step::MkfsBoot { dev, uuid } => write!(f, "make ext4 for /boot on {dev} (UUID {uuid})"),
            Step::CreatePv { dev } => write!(f, "create LVM physical volume {dev}"),
            Step::CreateVg { vg, pv } => write!(f, "create volume group {vg} on {pv}"),
            Step::UnmarkComplete { vg } => write!(f, "mark {vg} as being provisioned"),
            Step::RemoveLv { vg, lv } => write!(f, "remove {vg}/{lv}"),
            Step::CreateLv { vg, lv, bytes, .. } => {
                write!(f, "create {vg}/{lv} ({})", human(*bytes))
            }
            Step::MkfsLv { vg, lv, uuid } => write!(f, "make ext4 on {vg}/{lv} (UUID {uuid})"),
            Step::MarkFsReady { vg, lv } => write!(f, "mark {vg}/{lv} as holding data"),
            Step::KeepLv { vg, lv } => write!(f, "keep {vg}/{lv} with its data"),
            Step::MountTarget { root, boot } => write!(f, "mount {root} and {boot}"),
            Step::CopyRoot { from, to } => write!(f, "copy the golden root {from} onto {to}"),
            Step::CopyBoot { from, to } => write!(f, "copy the golden /boot {from} onto {to}"),
            Step::ConfigureTarget { fstab, golden, .. } => {
                let mps: Vec<&str> = fstab.iter().map(|e| e.mount_point.as_str()).collect();
                write!(
                    f,
                    "rewrite /etc/fstab ({}), drop the LVM devices file, set GRUB defaults (factory default from {golden})",
                    mps.join(" ")
                )
            }
            Step::InstallFiles { provision } => {
                let files: Vec<String> = provision.files.iter().map(|f| f.to_string()).collect();
                write!(
                    f,
                    "install {} file{} of {}/{} for {}: {}",
                    files.len(),
                    if files.len() == 1 { "" } else { "s" },
                    provision.dir,
                    crate::provision::MANIFEST,
                    provision.arch,
                    files.join(", ")
                )
            }
            Step::RunHooks { provision } => {
                let hooks: Vec<&str> = provision.hooks.iter().map(|h| h.name.as_str()).collect();
                write!(
                    f,
                    "run the hooks of {}/{} in the target, in order, {} s each at most: {}",
                    provision.dir,
                    crate::provision::HOOKS_DIR,
                    provision.hook_timeout_secs,
                    hooks.join(", ")
                )
            }
            Step::InstallBootloader { disk, root } => {
                write!(
                    f,
                    "install GRUB on {disk} and generate its menu with root={root}"
                )
            }
            Step::CreateSnapshot {
                vg,
                origin,
                snapshot,
                bytes,
                ..
            } => {
                write!(
                    f,
                    "take snapshot {vg}/{snapshot} of {origin} ({})",
                    human(*bytes)
                )
            }
            Step::MarkComplete { vg } => write!(f, "mark the layout on {vg} as complete"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub target: String,
    pub golden: String,
    /// What the target held, in words.
    pub found: String,
    pub boot_dev: String,
    pub pv_dev: String,
    pub vg: String,
    pub root_lv: String,
    pub steps: Vec<Step>,
}

/// Why zshield will not touch the disks: one line that says what and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse<T>(message: String) -> Result<T, Refusal> {
    Err(Refusal(message))
}

/// `/dev/sdb` + 3 → `/dev/sdb3`; `/dev/nvme0n1` + 3 → `/dev/nvme0n1p3`.
pub fn partition_dev(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

/// The device-mapper path of an LV: dashes in either name are doubled.
pub fn mapper_path(vg: &str, lv: &str) -> String {
    format!(
        "/dev/mapper/{}-{}",
        vg.replace('-', "--"),
        lv.replace('-', "--")
    )
}

fn align_up(n: u64, a: u64) -> u64 {
    n.div_ceil(a) * a
}

fn align_down(n: u64, a: u64) -> u64 {
    n / a * a
}

/// The partitions of a fresh layout on a disk of `size` bytes.
pub fn fresh_partitions(label: Label, size: u64, boot_size: u64) -> Vec<NewPartition> {
    let boot_size = align_up(boot_size, ALIGN);
    // A MiB is left free at the end for the backup GPT (and for symmetry on msdos).
    let end = align_down(size.saturating_sub(MIB), ALIGN);
    let mut parts = Vec::new();
    let mut start = ALIGN;
    let mut number = 1;
    if label == Label::Gpt {
        parts.push(NewPartition {
            number,
            name: GPT_BIOS_NAME,
            kind: PartKind::BiosBoot,
            start,
            size: BIOS_BOOT_SIZE,
        });
        start += BIOS_BOOT_SIZE;
        number += 1;
    }
    parts.push(NewPartition {
        number,
        name: GPT_BOOT_NAME,
        kind: PartKind::Boot,
        start,
        size: boot_size,
    });
    start += boot_size;
    parts.push(NewPartition {
        number: number + 1,
        name: GPT_LVM_NAME,
        kind: PartKind::Lvm,
        start,
        size: end.saturating_sub(start),
    });
    parts
}

/// Extents of a VG made by zshield on a PV of `pv_size` bytes.
pub fn fresh_vg_extents(pv_size: u64) -> u64 {
    pv_size.saturating_sub(PE_START) / EXTENT
}

/// What the LVs need, in extents of a VG of `vg_extents` × `extent_size`.
struct Demand {
    root: u64,
    snapshot: u64,
    data: Vec<u64>,
}

/// `size` in extents of a VG of `vg_extents` × `extent_size`, rounded up.
pub fn size_in_extents(size: crate::units::Size, vg_extents: u64, extent_size: u64) -> u64 {
    size.resolve(vg_extents * extent_size)
        .div_ceil(extent_size)
        .max(1)
}

fn demand(config: &Config, vg_extents: u64, extent_size: u64) -> Demand {
    let extents = |size| size_in_extents(size, vg_extents, extent_size);
    Demand {
        root: extents(config.root.size),
        snapshot: extents(config.snapshot.size),
        data: config.data.iter().map(|d| extents(d.size)).collect(),
    }
}

/// Whether `path` is the disk `dev` or one of its partitions.
pub fn on_disk(dev: &str, path: &str) -> bool {
    match path.strip_prefix(dev) {
        Some("") => true,
        // The kernel's naming: a disk whose name ends in a digit has its
        // partitions after a `p` (nvme0n1p2, loop1p1), so loop10 is not on loop1.
        Some(rest) => {
            let n = if dev.ends_with(|c: char| c.is_ascii_digit()) {
                match rest.strip_prefix('p') {
                    Some(n) => n,
                    None => return false,
                }
            } else {
                rest
            };
            !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

pub fn plan(
    probe: &Probe,
    config: &Config,
    options: &Options,
    new_uuid: &mut dyn FnMut() -> String,
) -> Result<Plan, Refusal> {
    let t = &probe.target;
    let dev = &t.dev;
    if t.is_partition {
        return refuse(format!(
            "target {} ({dev}) is a partition, not a whole disk: set target (or zshield.target=) to the disk itself",
            t.requested
        ));
    }
    if t.read_only {
        return refuse(format!(
            "target {dev} is read-only: check the disk and its write-protect switch"
        ));
    }
    let golden_parts = std::iter::once(&probe.golden.dev).chain(&probe.golden.boot_dev);
    if let Some(g) = golden_parts.clone().find(|g| on_disk(dev, g)).or_else(|| {
        probe
            .golden
            .disks
            .contains(dev)
            .then_some(&probe.golden.dev)
    }) {
        return refuse(format!(
            "target {dev} holds the golden {g}: refusing to write the golden disk; disk names can change order between boots, name the target by /dev/disk/by-id/ or /dev/disk/by-path/"
        ));
    }
    if !t.mounts.is_empty() {
        return refuse(format!(
            "target {dev} is in use ({}): unmount it first",
            t.mounts.join(", ")
        ));
    }

    // VGs with a PV on the target; each must live on the target alone.
    let mut target_vgs: Vec<String> = Vec::new();
    for pv in probe
        .pvs
        .iter()
        .filter(|p| on_disk(dev, &p.name) && !p.vg.is_empty())
    {
        if !target_vgs.contains(&pv.vg) {
            target_vgs.push(pv.vg.clone());
        }
    }
    for vg in &target_vgs {
        if let Some(other) = probe
            .pvs
            .iter()
            .find(|p| p.vg == *vg && !on_disk(dev, &p.name))
        {
            return refuse(format!(
                "volume group {vg} spans the target {dev} and {}: refusing to break it; remove it by hand first",
                other.name
            ));
        }
    }
    for h in &t.holders {
        let ours = h.dm_name.as_deref().is_some_and(|name| {
            target_vgs
                .iter()
                .any(|vg| name.starts_with(&format!("{}-", vg.replace('-', "--"))))
        });
        if !ours {
            return refuse(format!(
                "target {dev} is in use: {} is held by {}{}; stop what uses it first",
                h.held,
                h.holder,
                h.dm_name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(pv) = probe
        .pvs
        .iter()
        .find(|p| p.vg == config.vg && !on_disk(dev, &p.name))
    {
        return refuse(format!(
            "a volume group named {} already exists on {}, not on the target {dev}: two VGs of one name cannot coexist; rename or remove it",
            config.vg, pv.name
        ));
    }

    let mut planner = Planner {
        probe,
        config,
        steps: Vec::new(),
        new_uuid,
    };
    let wipe_hint = "boot with zshield.wipe to erase the whole disk, or check the target";
    let found = match &probe.content {
        Content::Blank => {
            planner.fresh(None, &[])?;
            "a blank disk".to_string()
        }
        Content::Foreign(found) => {
            let found = found.join("; ");
            if !options.wipe {
                return refuse(format!(
                    "target {dev} holds {found}: refusing to overwrite it; {wipe_hint}"
                ));
            }
            planner.fresh(Some(&probe.partitions), &target_vgs)?;
            format!("{found} (wiped: zshield.wipe)")
        }
        Content::Zshield(layout) => {
            let vg = probe.vgs.iter().find(|v| v.name == config.vg);
            let foreign_lvm = match target_vgs.iter().find(|v| **v != config.vg) {
                Some(other) => Some(format!("a volume group {other} that zshield did not make")),
                None if vg.is_some_and(|v| !v.tags.iter().any(|t| t == TAG_LAYOUT)) => {
                    Some(format!(
                        "a volume group {} that zshield did not make (no tag {TAG_LAYOUT})",
                        config.vg
                    ))
                }
                None => None,
            };
            match foreign_lvm {
                Some(what) if !options.wipe => {
                    return refuse(format!(
                        "target {dev} carries a zshield partition table but {what}: refusing to touch it; {wipe_hint}"
                    ));
                }
                Some(what) => {
                    planner.fresh(Some(&probe.partitions), &target_vgs)?;
                    format!("a zshield partition table with {what} (wiped: zshield.wipe)")
                }
                None => planner.existing(layout)?,
            }
        }
    };
    let (boot_dev, pv_dev) = planner.devices();
    let mut plan = Plan {
        target: dev.clone(),
        golden: probe.golden.dev.clone(),
        found,
        boot_dev,
        pv_dev,
        vg: config.vg.clone(),
        root_lv: config.root.name.clone(),
        steps: planner.steps,
    };
    finish(&mut plan, probe, config);
    Ok(plan)
}

struct Planner<'a> {
    probe: &'a Probe,
    config: &'a Config,
    steps: Vec<Step>,
    new_uuid: &'a mut dyn FnMut() -> String,
}

impl Planner<'_> {
    /// The /boot and PV partitions: those of an existing layout, which is kept,
    /// or those a fresh table will have.
    fn devices(&self) -> (String, String) {
        let dev = &self.probe.target.dev;
        let wiped = self
            .steps
            .iter()
            .any(|s| matches!(s, Step::Partition { .. }));
        match &self.probe.content {
            Content::Zshield(l) if !wiped => (
                partition_dev(dev, l.boot.number),
                partition_dev(dev, l.pv.number),
            ),
            _ => {
                let boot = if self.config.label == Label::Gpt {
                    2
                } else {
                    1
                };
                (partition_dev(dev, boot), partition_dev(dev, boot + 1))
            }
        }
    }

    fn vg(&self) -> String {
        self.config.vg.clone()
    }

    /// A new layout on a blank disk, or on one wiped first (`wipe` holds the
    /// old partitions, `vgs_to_drop` the old VGs to deactivate).
    fn fresh(
        &mut self,
        wipe: Option<&[(u64, u64)]>,
        vgs_to_drop: &[String],
    ) -> Result<(), Refusal> {
        let t = &self.probe.target;
        let c = self.config;
        if c.label == Label::Msdos && t.size > (u64::from(u32::MAX) + 1) * 512 {
            return refuse(format!(
                "target {} is larger than 2 TiB, more than an msdos label can address: set label = \"gpt\"",
                t.dev
            ));
        }
        let parts = fresh_partitions(c.label, t.size, c.boot_size);
        let pv = parts.last().expect("a layout always has a PV partition");
        let available = fresh_vg_extents(pv.size);
        let d = demand(c, available, EXTENT);
        let needed = d.root + d.snapshot + d.data.iter().sum::<u64>();
        if needed > available || pv.size < PE_START + EXTENT {
            let lv_bytes = needed * EXTENT;
            return refuse(format!(
                "target {} ({}) is too small for the layout: it needs at least {} (/boot {}, LVs {}); use a larger disk or smaller sizes in the configuration",
                t.dev,
                human(t.size),
                human(pv.start + PE_START + lv_bytes + MIB),
                human(align_up(c.boot_size, ALIGN)),
                human(lv_bytes)
            ));
        }

        for vg in vgs_to_drop {
            self.steps.push(Step::DeactivateVg { vg: vg.clone() });
        }
        if let Some(old_partitions) = wipe {
            self.steps.push(Step::Wipe {
                disk: t.dev.clone(),
                ranges: wipe_ranges(t.size, old_partitions),
            });
        }
        self.steps.push(Step::Partition {
            disk: t.dev.clone(),
            label: c.label,
            partitions: parts,
        });
        let (boot_dev, pv_dev) = self.devices();
        self.steps.push(Step::MkfsBoot {
            dev: boot_dev,
            uuid: (self.new_uuid)(),
        });
        self.steps.push(Step::CreatePv {
            dev: pv_dev.clone(),
        });
        self.steps.push(Step::CreateVg {
            vg: self.vg(),
            pv: pv_dev,
        });
        self.create_lvs(&d, &[], EXTENT);
        Ok(())
    }

    /// A zshield layout, complete or cut off: finish it, keeping the data volumes.
    fn existing(&mut self, layout: &ExistingLayout) -> Result<String, Refusal> {
        let c = self.config;
        let probe = self.probe;
        let (boot_dev, pv_dev) = self.devices();
        let pv = probe.pvs.iter().find(|p| p.name == pv_dev);
        let vg = probe.vgs.iter().find(|v| v.name == c.vg);
        if vg.is_some() && pv.is_none_or(|p| p.vg != c.vg) {
            return refuse(format!(
                "a volume group named {} exists, but not on {pv_dev} of the target: refusing to make a second one; rename or remove it",
                c.vg
            ));
        }
        if layout.label != c.label {
            log::warn!(
                "the target keeps its {} partition table although the configuration asks for {}",
                layout.label,
                c.label
            );
        }
        let lvs: Vec<&Lv> = probe.lvs.iter().filter(|l| l.vg == c.vg).collect();
        let find = |name: &str| lvs.iter().find(|l| l.name == name).copied();

        // Extents: a VG still to be made is counted like a fresh one; an existing one as LVM says.
        let (extent_size, total, mut free) = match vg {
            Some(v) => (v.extent_size, v.extent_count, v.free_count),
            None => {
                let n = fresh_vg_extents(layout.pv.size);
                (EXTENT, n, n)
            }
        };
        let d = demand(c, total, extent_size);

        // Snapshots of the root first: LVM will not remove an origin that has one.
        let mut removals: Vec<&Lv> = lvs
            .iter()
            .copied()
            .filter(|l| l.is_snapshot() && l.origin == c.root.name)
            .collect();
        for name in [&c.snapshot.name, &c.root.name] {
            if let Some(lv) = find(name).filter(|lv| !removals.contains(lv)) {
                removals.push(lv);
            }
        }
        let mut kept = Vec::new();
        for data in &c.data {
            match find(&data.name) {
                Some(lv) if lv.has_tag(TAG_FS_READY) => kept.push(data.name.clone()),
                // Created, but its filesystem was never finished: it never held data.
                Some(lv) => removals.push(lv),
                None => {}
            }
        }
        free += removals.iter().map(|l| l.size / extent_size).sum::<u64>();
        let kept_extents: u64 = c
            .data
            .iter()
            .zip(&d.data)
            .filter(|(dv, _)| kept.contains(&dv.name))
            .map(|(_, e)| e)
            .sum();
        let needed = d.root + d.snapshot + d.data.iter().sum::<u64>() - kept_extents;
        if needed > free {
            return refuse(format!(
                "volume group {} on {} has {} free for the recovery but needs {}: free space in the VG (remove LVs zshield does not manage) or use zshield.wipe",
                c.vg,
                probe.target.dev,
                human(free * extent_size),
                human(needed * extent_size)
            ));
        }

        let complete = vg.is_some_and(|v| v.tags.iter().any(|t| t == TAG_COMPLETE));
        if complete {
            self.steps.push(Step::UnmarkComplete { vg: self.vg() });
        }
        for lv in removals {
            self.steps.push(Step::RemoveLv {
                vg: self.vg(),
                lv: lv.name.clone(),
            });
        }
        self.steps.push(Step::MkfsBoot {
            dev: boot_dev,
            uuid: (self.new_uuid)(),
        });
        match (pv, vg) {
            (None, _) => {
                self.steps.push(Step::CreatePv {
                    dev: pv_dev.clone(),
                });
                self.steps.push(Step::CreateVg {
                    vg: self.vg(),
                    pv: pv_dev,
                });
            }
            (Some(_), None) => self.steps.push(Step::CreateVg {
                vg: self.vg(),
                pv: pv_dev,
            }),
            (Some(_), Some(_)) => {}
        }
        self.create_lvs(&d, &kept, extent_size);
        let kept = if kept.is_empty() {
            "nothing".to_string()
        } else {
            kept.join(", ")
        };
        Ok(if complete {
            format!("a complete zshield layout (kept with their data: {kept})")
        } else {
            format!("a zshield layout cut off before its end, to be finished (kept with their data: {kept})")
        })
    }

    /// lv-root, then the data volumes not in `kept`, then (last) the snapshot.
    fn create_lvs(&mut self, d: &Demand, kept: &[String], extent_size: u64) {
        let c = self.config;
        let vg = self.vg();
        let create = |steps: &mut Vec<Step>,
                      new_uuid: &mut dyn FnMut() -> String,
                      lv: &str,
                      extents: u64| {
            steps.push(Step::CreateLv {
                vg: vg.clone(),
                lv: lv.into(),
                extents,
                bytes: extents * extent_size,
            });
            steps.push(Step::MkfsLv {
                vg: vg.clone(),
                lv: lv.into(),
                uuid: new_uuid(),
            });
        };
        create(&mut self.steps, self.new_uuid, &c.root.name, d.root);
        for (data, extents) in c.data.iter().zip(&d.data) {
            if kept.contains(&data.name) {
                self.steps.push(Step::KeepLv {
                    vg: vg.clone(),
                    lv: data.name.clone(),
                });
            } else {
                create(&mut self.steps, self.new_uuid, &data.name, *extents);
                self.steps.push(Step::MarkFsReady {
                    vg: vg.clone(),
                    lv: data.name.clone(),
                });
            }
        }
        self.steps.push(Step::CreateSnapshot {
            vg,
            origin: c.root.name.clone(),
            snapshot: c.snapshot.name.clone(),
            extents: d.snapshot,
            bytes: d.snapshot * extent_size,
        });
    }
}

/// Adds the steps that follow the LVM work: copy, configure, GRUB, snapshot, mark.
/// The snapshot planned by `fresh`/`existing` is moved after GRUB so that it
/// captures the finished root.
fn finish(plan: &mut Plan, probe: &Probe, config: &Config) {
    let snapshot_at = plan
        .steps
        .iter()
        .position(|s| matches!(s, Step::CreateSnapshot { .. }));
    let snapshot = snapshot_at.map(|i| plan.steps.remove(i));
    let root = mapper_path(&config.vg, &config.root.name);
    let boot_uuid = plan.steps.iter().find_map(|s| match s {
        Step::MkfsBoot { uuid, .. } => Some(uuid.clone()),
        _ => None,
    });
    let mut fstab = vec![FstabEntry {
        spec: root.clone(),
        mount_point: "/".into(),
        options: "errors=remount-ro".into(),
        passno: 1,
    }];
    if let Some(uuid) = boot_uuid {
        fstab.push(FstabEntry {
            spec: format!("UUID={uuid}"),
            mount_point: "/boot".into(),
            options: "defaults".into(),
            passno: 2,
        });
    }
    for d in &config.data {
        fstab.push(FstabEntry {
            spec: mapper_path(&config.vg, &d.name),
            mount_point: d.mount.clone(),
            options: "defaults,nodev".into(),
            passno: 2,
        });
    }
    let golden_boot = probe
        .golden
        .boot_dev
        .clone()
        .unwrap_or_else(|| format!("{}:/boot", probe.golden.dev));
    plan.steps.extend([
        Step::MountTarget {
            root: root.clone(),
            boot: plan.boot_dev.clone(),
        },
        Step::CopyRoot {
            from: probe.golden.dev.clone(),
            to: root.clone(),
        },
        Step::CopyBoot {
            from: golden_boot,
            to: plan.boot_dev.clone(),
        },
        Step::ConfigureTarget {
            fstab,
            mount_points: config.data.iter().map(|d| d.mount.clone()).collect(),
            golden: probe.golden.spec_for_disk(),
        },
    ]);
    // Files and hooks after the copy and the target's configuration, before
    // GRUB: a hook may change what the menu is made from.
    if !probe.provision.files.is_empty() {
        plan.steps.push(Step::InstallFiles {
            provision: probe.provision.clone(),
        });
    }
    if !probe.provision.hooks.is_empty() {
        plan.steps.push(Step::RunHooks {
            provision: probe.provision.clone(),
        });
    }
    plan.steps.extend([Step::InstallBootloader {
        disk: plan.target.clone(),
        root,
    }]);
    plan.steps.extend(snapshot);
    plan.steps.push(Step::MarkComplete {
        vg: config.vg.clone(),
    });
}

/// The first and last MiB of the disk and of every old partition: where
/// partition tables, LVM labels, filesystem and RAID superblocks live.
pub fn wipe_ranges(disk_size: u64, partitions: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut both_ends = |start: u64, size: u64| {
        ranges.push((start, MIB.min(size)));
        if size > MIB {
            ranges.push((start + size - MIB, MIB));
        }
    };
    both_ends(0, disk_size);
    for &(start, size) in partitions {
        both_ends(start, size);
    }
    ranges.sort_unstable();
    ranges.dedup();
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{TablePartition, GPT_LINUX_FS_TYPE, GPT_LVM_TYPE};
    use crate::units::{Size, GIB};

    fn config() -> Config {
        Config::parse(
            r#"
boot_size = "256M"
[root]
name = "lv-root"
size = "1280M"
[snapshot]
name = "snap0"
size = "512M"
[[data]]
name = "lv-user"
size = "256M"
mount = "/home"
[[data]]
name = "lv-audit"
size = "256M"
mount = "/var/log/audit"
"#,
            "test",
        )
        .unwrap()
    }

    fn blank_probe() -> Probe {
        Probe {
            target: TargetDisk {
                requested: "/dev/sdb".into(),
                dev: "/dev/sdb".into(),
                size: 4 * GIB,
                is_partition: false,
                read_only: false,
                mounts: vec![],
                holders: vec![],
            },
            golden: GoldenRoot {
                spec: "LABEL=golden-root".into(),
                dev: "/dev/sda2".into(),
                disks: vec!["/dev/sda".into()],
                boot_dev: Some("/dev/sda1".into()),
                names: vec!["LABEL=golden-root".into()],
                uuid: Some("0b4c6e7e-2f0a-4d8e-9c39-6a1f2a7d5e11".into()),
            },
            content: Content::Blank,
            partitions: vec![],
            pvs: vec![],
            vgs: vec![],
            lvs: vec![],
            provision: Provision::default(),
        }
    }

    fn uuids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("00000000-0000-4000-8000-{n:012}")
        }
    }

    fn plan_of(probe: &Probe, options: Options) -> Result<Plan, Refusal> {
        plan(probe, &config(), &options, &mut uuids())
    }

    fn names(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| {
                serde_json::to_value(s).unwrap()["step"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn refusal(probe: &Probe) -> String {
        plan_of(probe, Options::default()).unwrap_err().0
    }

    #[test]
    fn blank_disk_gets_the_whole_layout_in_order() {
        let p = plan_of(&blank_probe(), Options::default()).unwrap();
        assert_eq!(
            names(&p),
            [
                "partition",
                "mkfs-boot",
                "create-pv",
                "create-vg",
                "create-lv",
                "mkfs-lv",
                "create-lv",
                "mkfs-lv",
                "mark-fs-ready",
                "create-lv",
                "mkfs-lv",
                "mark-fs-ready",
                "mount-target",
                "copy-root",
                "copy-boot",
                "configure-target",
                "install-bootloader",
                "create-snapshot",
                "mark-complete",
            ]
        );
        assert_eq!(p.boot_dev, "/dev/sdb2");
        assert_eq!(p.pv_dev, "/dev/sdb3");
        assert_eq!(p.found, "a blank disk");
        let Step::Partition { partitions, .. } = &p.steps[0] else {
            panic!()
        };
        assert_eq!((partitions[0].start, partitions[0].size), (MIB, MIB));
        assert_eq!(
            (partitions[1].start, partitions[1].size),
            (2 * MIB, 256 * MIB)
        );
        assert_eq!(partitions[2].start, 258 * MIB);
        assert_eq!(partitions[2].start + partitions[2].size, 4 * GIB - MIB);
        assert!(p.steps.contains(&Step::CreateLv {
            vg: "vgroup".into(),
            lv: "lv-root".into(),
            extents: 320,
            bytes: 1280 * MIB
        }));
    }

    #[test]
    fn provisioning_comes_after_the_copy_and_before_grub() {
        let mut probe = blank_probe();
        probe.provision.files.push(crate::provision::InstallFile {
            source: "modules".into(),
            destination: "/etc/modules".into(),
            mode: 0o644,
            owner: "root".into(),
            group: "root".into(),
            uid: 0,
            gid: 0,
        });
        probe.provision.hooks.push(crate::provision::Hook {
            order: 10,
            name: "10_first.sh".into(),
        });
        probe.provision.dir = "/etc/zshield/provision".into();
        probe.provision.arch = "x86_64".into();
        probe.provision.hook_timeout_secs = 60;
        let p = plan_of(&probe, Options::default()).unwrap();
        let n = names(&p);
        let at = |name: &str| n.iter().position(|s| s == name).unwrap();
        assert_eq!(at("install-files"), at("configure-target") + 1);
        assert_eq!(at("run-hooks"), at("install-files") + 1);
        assert_eq!(at("install-bootloader"), at("run-hooks") + 1);
        let shown: Vec<String> = p.steps.iter().map(|s| s.to_string()).collect();
        assert!(shown.contains(&"install 1 file of /etc/zshield/provision/files.install for x86_64: /etc/modules (0644 root:root)".to_string()), "{shown:?}");
        assert!(shown.contains(&"run the hooks of /etc/zshield/provision/hooks in the target, in order, 60 s each at most: 10_first.sh".to_string()), "{shown:?}");
        // Nothing to provision: no such steps.
        let n = names(&plan_of(&blank_probe(), Options::default()).unwrap());
        assert!(!n.iter().any(|s| s == "install-files" || s == "run-hooks"));
    }

    #[test]
    fn fstab_names_lvs_by_mapper_path_and_boot_by_uuid() {
        let p = plan_of(&blank_probe(), Options::default()).unwrap();
        let fstab = p.steps.iter().find_map(|s| match s {
            Step::ConfigureTarget { fstab, .. } => Some(fstab.clone()),
            _ => None,
        });
        let specs: Vec<String> = fstab
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e.spec, e.mount_point))
            .collect();
        assert_eq!(
            specs,
            [
                "/dev/mapper/vgroup-lv--root /",
                "UUID=00000000-0000-4000-8000-000000000001 /boot",
                "/dev/mapper/vgroup-lv--user /home",
                "/dev/mapper/vgroup-lv--audit /var/log/audit",
            ]
        );
    }

    #[test]
    fn msdos_layout_has_no_bios_boot_partition() {
        let mut c = config();
        c.label = Label::Msdos;
        let p = plan(&blank_probe(), &c, &Options::default(), &mut uuids()).unwrap();
        let Step::Partition { partitions, .. } = &p.steps[0] else {
            panic!()
        };
        assert_eq!(partitions.len(), 2);
        assert_eq!(partitions[0].start, MIB);
        assert_eq!(
            (p.boot_dev.as_str(), p.pv_dev.as_str()),
            ("/dev/sdb1", "/dev/sdb2")
        );
    }

    #[test]
    fn refuses_a_partition_a_read_only_disk_and_a_mounted_one() {
        let mut probe = blank_probe();
        probe.target.is_partition = true;
        assert!(refusal(&probe).contains("is a partition, not a whole disk"));
        let mut probe = blank_probe();
        probe.target.read_only = true;
        assert!(refusal(&probe).contains("read-only"));
        let mut probe = blank_probe();
        probe.target.mounts = vec!["/dev/sdb1 on /mnt".into()];
        assert!(refusal(&probe).contains("in use (/dev/sdb1 on /mnt)"));
    }

    #[test]
    fn refuses_the_golden_disk_when_names_are_swapped() {
        let mut probe = blank_probe();
        probe.golden.dev = "/dev/sdb2".into();
        probe.golden.disks = vec!["/dev/sdb".into()];
        let r = refusal(&probe);
        assert!(
            r.contains("holds the golden /dev/sdb2") && r.contains("by-id"),
            "{r}"
        );
        // A golden on an LV whose PV is on the target is refused by the disk list.
        let mut probe = blank_probe();
        probe.golden.dev = "/dev/dm-3".into();
        probe.golden.disks = vec!["/dev/sdb".into()];
        assert!(refusal(&probe).contains("holds the golden /dev/dm-3"));
    }

    #[test]
    fn refuses_a_foreign_holder() {
        let mut probe = blank_probe();
        probe.target.holders = vec![Holder {
            held: "sdb1".into(),
            holder: "md0".into(),
            dm_name: None,
        }];
        assert!(refusal(&probe).contains("sdb1 is held by md0"));
    }

    #[test]
    fn refuses_a_too_small_disk_with_the_sizes() {
        let mut probe = blank_probe();
        probe.target.size = 2 * GIB;
        let r = refusal(&probe);
        assert!(
            r.contains("too small") && r.contains("(2 GiB)") && r.contains("LVs 2.2 GiB"),
            "{r}"
        );
    }

    #[test]
    fn foreign_content_is_refused_then_wiped_when_asked() {
        let mut probe = blank_probe();
        probe.content = Content::Foreign(vec![
            "a foreign GPT partition table (partitions 1 \"data\")".into(),
        ]);
        probe.partitions = vec![(MIB, 3 * GIB)];
        let r = refusal(&probe);
        assert!(
            r.contains("holds a foreign GPT") && r.contains("zshield.wipe"),
            "{r}"
        );

        let p = plan_of(&probe, Options { wipe: true }).unwrap();
        assert_eq!(names(&p)[..2], ["wipe", "partition"]);
        let Step::Wipe { ranges, .. } = &p.steps[0] else {
            panic!()
        };
        assert_eq!(
            ranges,
            &[(0, MIB), (MIB, MIB), (3 * GIB, MIB), (4 * GIB - MIB, MIB)]
        );
        assert!(p.found.contains("wiped"));
    }

    #[test]
    fn a_vg_of_the_same_name_elsewhere_is_refused() {
        let mut probe = blank_probe();
        probe.pvs = vec![Pv {
            name: "/dev/sdc1".into(),
            vg: "vgroup".into(),
        }];
        assert!(refusal(&probe).contains("already exists on /dev/sdc1"));
    }

    fn gpt_layout() -> Content {
        let part = |number: u32, kind: &str, name: &str, start: u64, size: u64| TablePartition {
            number,
            start,
            size,
            kind: kind.into(),
            name: name.into(),
        };
        Content::Zshield(ExistingLayout {
            label: Label::Gpt,
            boot: part(2, GPT_LINUX_FS_TYPE, GPT_BOOT_NAME, 2 * MIB, 256 * MIB),
            pv: part(
                3,
                GPT_LVM_TYPE,
                GPT_LVM_NAME,
                258 * MIB,
                4 * GIB - 259 * MIB,
            ),
        })
    }

    fn lv(name: &str, attr: &str, mib: u64, origin: &str, tags: &[&str]) -> Lv {
        Lv {
            name: name.into(),
            vg: "vgroup".into(),
            attr: attr.into(),
            size: mib * MIB,
            origin: origin.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created: 0,
            snap_percent: None,
        }
    }

    fn complete_probe() -> Probe {
        let mut probe = blank_probe();
        probe.content = gpt_layout();
        probe.pvs = vec![Pv {
            name: "/dev/sdb3".into(),
            vg: "vgroup".into(),
        }];
        probe.vgs = vec![Vg {
            name: "vgroup".into(),
            size: 947 * EXTENT,
            extent_size: EXTENT,
            extent_count: 947,
            free_count: 947 - 320 - 128 - 64 - 64,
            tags: vec![TAG_LAYOUT.into(), TAG_COMPLETE.into()],
        }];
        probe.lvs = vec![
            lv("lv-root", "owi-a-s---", 1280, "", &[]),
            lv("snap0", "swi-a-s---", 512, "lv-root", &[]),
            lv("lv-user", "-wi-a-----", 256, "", &[TAG_FS_READY]),
            lv("lv-audit", "-wi-a-----", 256, "", &[TAG_FS_READY]),
        ];
        probe.target.holders = vec![Holder {
            held: "sdb3".into(),
            holder: "dm-0".into(),
            dm_name: Some("vgroup-lv--root".into()),
        }];
        probe
    }

    #[test]
    fn refuses_a_vg_of_our_name_whose_pv_is_not_the_target_partition() {
        // Its PV is on /dev/sdb10 (not a partition of the layout), or not seen at all.
        let mut probe = complete_probe();
        probe.pvs[0].name = "/dev/sdb10".into();
        let r = refusal(&probe);
        assert!(r.contains("but not on /dev/sdb3"), "{r}");
        probe.pvs.clear();
        probe.target.holders.clear();
        let r = refusal(&probe);
        assert!(r.contains("but not on /dev/sdb3"), "{r}");
    }

    #[test]
    fn reprovisioning_keeps_the_data_volumes() {
        let p = plan_of(&complete_probe(), Options::default()).unwrap();
        assert_eq!(
            names(&p)[..6],
            [
                "unmark-complete",
                "remove-lv",
                "remove-lv",
                "mkfs-boot",
                "create-lv",
                "mkfs-lv"
            ]
        );
        assert_eq!(
            p.steps[1],
            Step::RemoveLv {
                vg: "vgroup".into(),
                lv: "snap0".into()
            }
        );
        assert_eq!(
            p.steps[2],
            Step::RemoveLv {
                vg: "vgroup".into(),
                lv: "lv-root".into()
            }
        );
        for step in &p.steps {
            let text = serde_json::to_string(step).unwrap();
            if text.contains("lv-user") || text.contains("lv-audit") {
                assert!(
                    matches!(step, Step::KeepLv { .. } | Step::ConfigureTarget { .. }),
                    "a data volume is touched by {step}"
                );
            }
        }
        assert!(
            p.found.contains("complete zshield layout") && p.found.contains("lv-user, lv-audit")
        );
        assert_eq!(
            p.steps.last(),
            Some(&Step::MarkComplete {
                vg: "vgroup".into()
            })
        );
    }

    #[test]
    fn a_half_made_layout_is_finished() {
        // Cut off after the partition table and the PV: no VG yet.
        let mut probe = blank_probe();
        probe.content = gpt_layout();
        probe.pvs = vec![Pv {
            name: "/dev/sdb3".into(),
            vg: "".into(),
        }];
        let p = plan_of(&probe, Options::default()).unwrap();
        assert_eq!(names(&p)[..3], ["mkfs-boot", "create-vg", "create-lv"]);
        assert!(p.found.contains("cut off"));

        // Cut off while making lv-audit's filesystem: it never held data.
        let mut probe = complete_probe();
        probe.vgs[0].tags = vec![TAG_LAYOUT.into()];
        probe.lvs.retain(|l| l.name != "snap0");
        probe.lvs[2].tags.clear();
        let p = plan_of(&probe, Options::default()).unwrap();
        assert!(
            !names(&p).contains(&"unmark-complete".to_string()),
            "the VG was never complete"
        );
        assert!(p.steps.contains(&Step::RemoveLv {
            vg: "vgroup".into(),
            lv: "lv-audit".into()
        }));
        assert!(p.steps.contains(&Step::KeepLv {
            vg: "vgroup".into(),
            lv: "lv-user".into()
        }));
        assert!(p.steps.contains(&Step::MarkFsReady {
            vg: "vgroup".into(),
            lv: "lv-audit".into()
        }));
    }

    #[test]
    fn a_vg_zshield_did_not_make_is_refused_unless_wiped() {
        let mut probe = complete_probe();
        probe.vgs[0].tags.clear();
        assert!(refusal(&probe).contains("did not make"));
        let p = plan_of(&probe, Options { wipe: true }).unwrap();
        assert_eq!(names(&p)[..3], ["deactivate-vg", "wipe", "partition"]);
    }

    #[test]
    fn percent_sizes_resolve_on_the_vg() {
        let mut c = config();
        c.snapshot.size = Size::PercentOfVg(10);
        let p = plan(&blank_probe(), &c, &Options::default(), &mut uuids()).unwrap();
        // PV = 4 GiB - 259 MiB; (PV - 1 MiB) / 4 MiB = 959 extents; 10% = 95.9 → 96.
        assert!(
            p.steps
                .iter()
                .any(|s| matches!(s, Step::CreateSnapshot { extents: 96, .. })),
            "{:?}",
            p.steps
        );
    }

    #[test]
    fn not_enough_room_in_an_existing_vg_is_refused() {
        let mut probe = complete_probe();
        probe.vgs[0].free_count = 0;
        // What lv-root and snap0 free is just enough for the same sizes…
        assert!(plan_of(&probe, Options::default()).is_ok());
        // …but not for a larger root.
        let mut c = config();
        c.root.size = Size::Bytes(2 * GIB);
        let r = plan(&probe, &c, &Options::default(), &mut uuids())
            .unwrap_err()
            .0;
        assert!(
            r.contains("has 1.7 GiB free for the recovery but needs 2.5 GiB"),
            "{r}"
        );
    }

    #[test]
    fn device_names() {
        assert_eq!(partition_dev("/dev/sdb", 3), "/dev/sdb3");
        assert_eq!(partition_dev("/dev/nvme0n1", 3), "/dev/nvme0n1p3");
        assert_eq!(partition_dev("/dev/loop7", 1), "/dev/loop7p1");
        assert_eq!(
            mapper_path("vgroup", "lv-root"),
            "/dev/mapper/vgroup-lv--root"
        );
        assert_eq!(mapper_path("my-vg", "snap0"), "/dev/mapper/my--vg-snap0");
        assert!(on_disk("/dev/sdb", "/dev/sdb3") && on_disk("/dev/nvme0n1", "/dev/nvme0n1p2"));
        assert!(!on_disk("/dev/sdb", "/dev/sdba1") && !on_disk("/dev/sd", "/dev/sdb"));
        assert!(!on_disk("/dev/loop1", "/dev/loop10") && !on_disk("/dev/nvme0n1", "/dev/nvme0n12"));
        assert!(!on_disk("/dev/sdb", "/dev/sdbp1") && on_disk("/dev/loop1", "/dev/loop1p3"));
    }
}
