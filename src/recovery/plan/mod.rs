//! From a probed description of the disks to the steps of a factory reset.
//! Pure: every refusal happens here, before anything is written.

mod checks;
mod copy;
mod existing;
mod firmware;
mod system;

use crate::cmdline::Wipe;
use crate::config::{Config, Label, RootLayout};
use crate::disk::blockmap::FsMap;
use crate::disk::content::{Content, ExistingLayout, PvArea};
use crate::disk::identity::Identity;
use crate::layout::{
    align_up, fresh_numbers, fresh_partitions, fresh_vg_extents, mapper_path, partition_dev,
    pool_metadata_bytes, size_in_extents, wipe_ranges, ALIGN, EXTENT, MSDOS_SIGNATURE_MAGIC,
    PE_START, TAG_COMPLETE, TAG_FAILED, TAG_FS_READY, TAG_LAYOUT, THIN_CHUNK,
};
use crate::points::{self, Kind, FACTORY_POINT};
use crate::recovery::probe::Probe;
use crate::recovery::step::{Plan, Refusal, Step};
use crate::units::{human, MIB};
pub(super) use copy::FsCopy;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `zshield.wipe`: the operator allows erasing foreign content.
    pub wipe: Wipe,
    /// The automatic mode (`zshield_recovery=auto`): a complete system is left
    /// alone, and a recorded failure is not run again.
    pub auto: bool,
}

/// The kernel argument that allows erasing `disk`: by its serial (or WWN,
/// or port), so that it holds whatever the disks are called next boot.
fn wipe_argument(disk: &Identity) -> String {
    match disk.consent() {
        Some(id) => format!("zshield.wipe={id}"),
        None => "zshield.wipe".into(),
    }
}

/// Whether the operator's `wipe` allows erasing the target; a consent that
/// names another disk, or a bare one with several disks about, is refused.
fn wipe_allowed(probe: &Probe, wipe: &Wipe) -> Result<bool, Refusal> {
    let target = &probe.target.identity;
    match wipe {
        Wipe::No => Ok(false),
        Wipe::Disk(given) if target.is_named_by(given) => Ok(true),
        Wipe::Disk(given) => refuse(format!(
            "zshield.wipe={given} does not name the target {target}: refusing to erase it; to erase this disk boot with {}",
            wipe_argument(target)
        )),
        Wipe::Any => match probe.candidates.as_slice() {
            [one] if one.dev == target.dev => Ok(true),
            others => {
                let named: Vec<String> = others.iter().map(|d| d.to_string()).collect();
                refuse(format!(
                    "a bare zshield.wipe erases only when one disk alone could be the target, and here {} could ({}): refusing to erase {target}; boot with {} to erase it",
                    others.len(),
                    named.join("; "),
                    wipe_argument(target)
                ))
            }
        },
    }
}

fn refuse<T>(message: String) -> Result<T, Refusal> {
    Err(Refusal(message))
}

/// What the LVs need, in extents.
struct Demand {
    layout: RootLayout,
    /// lv-root's size: in the thin layout its virtual size, taken from the pool.
    root: u64,
    /// The classic layout's snapshot.
    snapshot: u64,
    /// The thin layout's pool: its data, and its metadata (LVM's spare
    /// beside it takes as much again).
    pool: u64,
    pool_metadata: u64,
    data: Vec<u64>,
    extent_size: u64,
}

impl Demand {
    fn new(config: &Config, vg_extents: u64, extent_size: u64) -> Demand {
        let extents = |size| size_in_extents(size, vg_extents, extent_size);
        let pool = extents(config.pool.size);
        Demand {
            layout: config.layout,
            root: extents(config.root.size),
            snapshot: extents(config.snapshot.size),
            pool,
            pool_metadata: pool_metadata_bytes(pool * extent_size).div_ceil(extent_size),
            data: config.data.iter().map(|d| extents(d.size)).collect(),
            extent_size,
        }
    }

    /// Extents of the root's part of the VG.
    fn system(&self) -> u64 {
        match self.layout {
            RootLayout::Thin => self.pool + 2 * self.pool_metadata,
            RootLayout::Classic => self.root + self.snapshot,
        }
    }

    fn total(&self) -> u64 {
        self.system() + self.data.iter().sum::<u64>()
    }
}

pub fn plan(
    probe: &Probe,
    config: &Config,
    options: &Options,
    new_uuid: &mut dyn FnMut() -> String,
) -> Result<Plan, Refusal> {
    let target_vgs = checks::check_target(probe, config)?;
    let dev = &probe.target.dev;
    let mut planner = Planner {
        probe,
        config,
        steps: Vec::new(),
        new_uuid,
    };
    // A disk whose table zshield no longer recognises may still carry its
    // VG: then erasing it is never the advice.
    let data = zshield_data_volumes(probe, &target_vgs);
    let named = &probe.target.identity;
    let wipe_hint = if data.is_empty() {
        format!(
            "boot with {} to erase the whole disk, or check the target",
            wipe_argument(named)
        )
    } else {
        format!(
            "it still carries zshield's data volumes {}: do not erase it; restore its partition table (its backup GPT, or testdisk), or copy their data elsewhere before anything else",
            data.join(", ")
        )
    };
    let wipe_all = Some(probe.partitions.as_slice());
    let (found, volumes) = match &probe.content {
        Content::Blank => ("a blank disk".to_string(), planner.fresh(None, &[])?),
        Content::OtherSectorSize { written, seen } => {
            return refuse(format!(
                "target {named} holds a zshield layout written for {written}-byte sectors, but the disk shows {seen}-byte sectors now (another controller, enclosure or adapter): refusing to touch it, its data volumes are on it; attach it as it was when it was provisioned"
            ));
        }
        Content::Foreign(found) => {
            let found = found.join("; ");
            if !wipe_allowed(probe, &options.wipe)? {
                return refuse(format!(
                    "target {named} holds {found}: refusing to overwrite it; {wipe_hint}"
                ));
            }
            let volumes = planner.fresh(wipe_all, &target_vgs)?;
            (
                format!("{found} (wiped: {})", wipe_argument(named)),
                volumes,
            )
        }
        Content::Zshield(
            layout @ ExistingLayout {
                repair: Some(damage),
                ..
            },
        ) => {
            // What the raw bytes show is judged before the repair (a reset
            // that would refuse afterwards must not write it); what only LVM
            // can tell, once the kernel sees the repaired table.
            copy::refuse_damaged_card(&probe.golden)?;
            if let PvArea::Other(found) = &layout.pv_area {
                if !wipe_allowed(probe, &options.wipe)? {
                    return refuse(format!(
                        "target {named} carries a zshield GPT ({}) but {} on its LVM partition: refusing to touch it; {wipe_hint}",
                        damage.what,
                        found.join(", ")
                    ));
                }
            }
            return Ok(Plan {
                target: dev.clone(),
                disk: Some(probe.target.identity.clone()),
                found: format!("a zshield layout with a damaged GPT ({})", damage.what),
                golden: Some(probe.golden.dev.clone()),
                firmware: None,
                warnings: Vec::new(),
                steps: vec![Step::RepairGpt {
                    disk: dev.clone(),
                    intact: damage.intact,
                    damage: damage.what.clone(),
                }],
            });
        }
        Content::Zshield(layout) => {
            let vg = probe.vgs.iter().find(|v| v.name == config.vg);
            let foreign_lvm = match target_vgs.iter().find(|v| **v != config.vg) {
                Some(other) => Some(format!("a volume group {other} that zshield did not make")),
                None if vg.is_some_and(|v| !v.has_tag(TAG_LAYOUT)) => Some(format!(
                    "a volume group {} that zshield did not make (no tag {TAG_LAYOUT})",
                    config.vg
                )),
                None => stranger_on_pv(probe, layout),
            };
            match foreign_lvm {
                Some(what) if !wipe_allowed(probe, &options.wipe)? => {
                    let hint = if matches!(layout.pv_area, PvArea::Pv | PvArea::PvOfVg) {
                        format!(
                            "its data volumes may still be in it: restore the volume group's metadata (vgcfgrestore, from /etc/lvm/backup of the disk's root) or copy their data elsewhere; only then, to erase the whole disk, boot with {}",
                            wipe_argument(named)
                        )
                    } else {
                        wipe_hint
                    };
                    return refuse(format!(
                        "target {named} carries a zshield partition table but {what}: refusing to touch it; {hint}"
                    ));
                }
                Some(what) => (
                    format!(
                        "a zshield partition table with {what} (wiped: {})",
                        wipe_argument(named)
                    ),
                    planner.fresh(wipe_all, &target_vgs)?,
                ),
                None if options.auto && vg.is_some_and(|v| v.has_tag(TAG_COMPLETE)) => {
                    return Ok(Plan {
                        target: dev.clone(),
                        disk: Some(named.clone()),
                        found: "a complete zshield system: the automatic mode leaves it alone"
                            .into(),
                        golden: Some(probe.golden.dev.clone()),
                        firmware: None,
                        warnings: Vec::new(),
                        steps: Vec::new(),
                    });
                }
                None if options.auto && vg.is_some_and(|v| v.has_tag(TAG_FAILED)) => {
                    return refuse(format!(
                        "the last factory reset of {named} failed (its event log and /var/log/zshield on the disk say why): the automatic mode does not run it again; fix the cause, then pick \"Recover to factory default\" in the card's menu"
                    ));
                }
                None => planner.existing(layout)?,
            }
        }
    };
    let mut firmware = firmware::describe(&volumes.served, config, probe.booted_uefi);
    if let (true, true, Err(why)) = (probe.booted_uefi, volumes.served.uefi, &probe.boot_vars) {
        firmware.push_str(&format!(
            ". No firmware boot entry for it: {why}; it boots through its removable-media path"
        ));
    }
    planner.volumes_and_system(volumes);
    Ok(Plan {
        target: dev.clone(),
        disk: Some(named.clone()),
        found,
        golden: Some(probe.golden.dev.clone()),
        firmware: Some(firmware),
        warnings: Vec::new(),
        steps: planner.steps,
    })
}

/// What the layout's PV partition holds that LVM does not show as zshield's
/// PV: a volume LVM cannot read (damaged metadata, another system's) or
/// something else (LUKS, a file system). A PV made over it would destroy it.
fn stranger_on_pv(probe: &Probe, layout: &ExistingLayout) -> Option<String> {
    let dev = partition_dev(&probe.target.dev, layout.pv.number);
    let known = probe.pvs.iter().find(|p| p.name == dev);
    match (&layout.pv_area, known) {
        (PvArea::Other(found), _) => Some(format!(
            "{} on {dev}, where its volume group belongs",
            found.join(", ")
        )),
        // What LVM cannot read is known only where LVM was asked.
        _ if !probe.lvm_asked => None,
        (PvArea::Pv | PvArea::PvOfVg, None) => Some(format!(
            "an LVM physical volume on {dev} that LVM cannot read (damaged metadata, or another system's)"
        )),
        (PvArea::PvOfVg, Some(pv)) if pv.vg.is_empty() => Some(format!(
            "an LVM physical volume on {dev} whose metadata holds a volume group that LVM does not show"
        )),
        _ => None,
    }
}

/// `VG/LV` of the data volumes (made by zshield, holding data) of the VGs
/// on the target.
fn zshield_data_volumes(probe: &Probe, target_vgs: &[String]) -> Vec<String> {
    let ours = |vg: &str| {
        target_vgs.iter().any(|v| v == vg)
            && probe
                .vgs
                .iter()
                .any(|v| v.name == vg && v.has_tag(TAG_LAYOUT))
    };
    probe
        .lvs
        .iter()
        .filter(|lv| ours(&lv.vg) && lv.has_tag(TAG_FS_READY))
        .map(|lv| format!("{}/{}", lv.vg, lv.name))
        .collect()
}

/// What the LVM part of the plan decided, for the steps that follow it.
struct Volumes {
    boot_dev: String,
    boot_uuid: String,
    /// /boot was copied block by block (else it is made empty, for a file copy).
    boot_blocks: bool,
    /// What the disk will boot through.
    served: firmware::Served,
    /// The EFI system partition, made again, for GRUB's UEFI half.
    esp_dev: Option<String>,
    demand: Demand,
    root_copy: FsCopy,
    /// Data volumes kept with their data.
    kept: Vec<String>,
}

struct Planner<'a> {
    probe: &'a Probe,
    config: &'a Config,
    steps: Vec<Step>,
    new_uuid: &'a mut dyn FnMut() -> String,
}

impl Planner<'_> {
    fn vg(&self) -> String {
        self.config.vg.clone()
    }

    /// /boot's file system on `dev`: the golden's copied block by block, or
    /// an empty one for the file copy. Returns its UUID and whether it holds
    /// the copy.
    /// Checks the golden file system `from` against `map` before a file
    /// copy of it (once: a complete layout's plan checks it first of all).
    fn verify_golden(&mut self, from: &str, map: &FsMap) {
        let done = self
            .steps
            .iter()
            .any(|s| matches!(s, Step::VerifyGolden { from: f, .. } if f == from));
        if !done {
            self.steps.push(Step::VerifyGolden {
                from: from.to_string(),
                map: map.clone(),
            });
        }
    }

    fn make_boot(&mut self, dev: &str, copy: FsCopy) -> (String, bool) {
        let uuid = (self.new_uuid)();
        let golden_boot = self.probe.golden.boot_dev.clone();
        if let (Some(map), Some(from), FsCopy::Files { .. }) =
            (copy.checked_map(), &golden_boot, &copy)
        {
            self.verify_golden(from, map);
        }
        let step = match (copy, golden_boot) {
            (FsCopy::Blocks { map, why }, Some(from)) => Step::CopyBootBlocks {
                from,
                to: dev.to_string(),
                uuid: uuid.clone(),
                why,
                map,
            },
            _ => Step::MkfsBoot {
                dev: dev.to_string(),
                uuid: uuid.clone(),
            },
        };
        let by_blocks = matches!(step, Step::CopyBootBlocks { .. });
        self.steps.push(step);
        (uuid, by_blocks)
    }

    /// FAT on the EFI system partition `dev` (nothing on it is kept: GRUB is
    /// installed there again); its volume ID from a new UUID.
    fn make_esp(&mut self, dev: &str) -> String {
        let uuid = (self.new_uuid)().to_uppercase();
        self.steps.push(Step::MkfsEsp {
            dev: dev.to_string(),
            volume_id: format!("{}-{}", &uuid[..4], &uuid[4..8]),
        });
        dev.to_string()
    }

    /// A new layout on a blank disk, or on one wiped first (`wipe` holds the
    /// old partitions, `vgs_to_drop` the old VGs to deactivate).
    fn fresh(
        &mut self,
        wipe: Option<&[(u64, u64)]>,
        vgs_to_drop: &[String],
    ) -> Result<Volumes, Refusal> {
        let t = &self.probe.target;
        let c = self.config;
        if c.label == Label::Msdos && t.size > (u64::from(u32::MAX) + 1) * 512 {
            return refuse(format!(
                "target {} is larger than 2 TiB, more than an msdos label can address: set label = \"gpt\"",
                t.dev
            ));
        }
        let served = firmware::served(self.probe, c, true)?;
        let esp = served.uefi;
        let parts = fresh_partitions(c.label, t.size, c.boot_size, esp);
        let (boot_number, pv_number) = fresh_numbers(c.label);
        let boot_bytes = parts
            .iter()
            .find(|p| p.number == boot_number)
            .map_or(0, |p| p.size);
        let boot_copy = copy::choose_boot(&self.probe.golden, c.copy, boot_bytes)?;
        let pv = parts
            .iter()
            .find(|p| p.number == pv_number)
            .expect("a layout always has a PV partition")
            .clone();
        let available = fresh_vg_extents(pv.size);
        let demand = Demand::new(c, available, EXTENT);
        let root_copy = copy::choose(&self.probe.golden, c.copy, demand.root * EXTENT)?;
        let needed = demand.total();
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
        // Where the new partitions start is zeroed too: a reset cut off after
        // the table finds nothing there but what it makes (an LVM partition
        // that holds anything else is refused).
        let mut ranges = wipe.map_or_else(Vec::new, |old| wipe_ranges(t.size, old));
        ranges.extend(parts.iter().map(|p| (p.start, MIB.min(p.size))));
        ranges.sort_unstable();
        ranges.dedup();
        self.steps.push(Step::Wipe {
            disk: t.dev.clone(),
            ranges,
        });
        let msdos_signature = (c.label == Label::Msdos).then(|| {
            let random = u32::from_str_radix(&(self.new_uuid)()[..4], 16).unwrap_or(0);
            MSDOS_SIGNATURE_MAGIC | random
        });
        self.steps.push(Step::Partition {
            disk: t.dev.clone(),
            label: c.label,
            partitions: parts,
            msdos_signature,
        });
        let boot_dev = partition_dev(&t.dev, boot_number);
        let pv_dev = partition_dev(&t.dev, pv_number);
        let (boot_uuid, boot_blocks) = self.make_boot(&boot_dev, boot_copy);
        let esp_dev = esp.then(|| self.make_esp(&partition_dev(&t.dev, pv_number + 1)));
        self.steps.push(Step::CreatePv {
            dev: pv_dev.clone(),
        });
        self.steps.push(Step::CreateVg {
            vg: self.vg(),
            pv: pv_dev,
        });
        Ok(Volumes {
            boot_dev,
            boot_uuid,
            boot_blocks,
            served,
            esp_dev,
            demand,
            root_copy,
            kept: Vec::new(),
        })
    }

    /// lv-root and the data volumes not kept; then the system on them: copy,
    /// configuration, provisioning, GRUB; then the first snapshot, which
    /// captures the finished root, and the mark that the layout is complete.
    fn volumes_and_system(&mut self, v: Volumes) {
        let c = self.config;
        let probe = self.probe;
        let vg = self.vg();
        let d = &v.demand;
        match d.layout {
            RootLayout::Thin => {
                self.steps.push(Step::CreatePool {
                    vg: vg.clone(),
                    pool: c.pool.name.clone(),
                    extents: d.pool,
                    bytes: d.pool * d.extent_size,
                    metadata_bytes: d.pool_metadata * d.extent_size,
                });
                self.steps.push(Step::CreateThinLv {
                    vg: vg.clone(),
                    pool: c.pool.name.clone(),
                    lv: c.root.name.clone(),
                    bytes: d.root * d.extent_size,
                });
            }
            RootLayout::Classic => self.create_lv(&c.root.name, d.root, d.extent_size),
        }
        if let FsCopy::Files { .. } = v.root_copy {
            self.mkfs_lv(&c.root.name);
        }
        for (data, extents) in c.data.iter().zip(&d.data) {
            if v.kept.contains(&data.name) {
                self.steps.push(Step::KeepLv {
                    vg: vg.clone(),
                    lv: data.name.clone(),
                });
            } else {
                self.create_lv(&data.name, *extents, d.extent_size);
                self.mkfs_lv(&data.name);
                self.steps.push(Step::MarkFsReady {
                    vg: vg.clone(),
                    lv: data.name.clone(),
                });
            }
        }
        // The data volumes first, as with mkfs: a reset cut off after the
        // copy finds them made and keeps them.
        let copy_files = match &v.root_copy {
            FsCopy::Blocks { map, why } => {
                self.steps.push(Step::CopyRootBlocks {
                    from: probe.golden.dev.clone(),
                    to: mapper_path(&vg, &c.root.name),
                    uuid: (self.new_uuid)(),
                    label: c.root.name.clone(),
                    why: why.clone(),
                    map: map.clone(),
                    stripe: (d.layout == RootLayout::Thin).then_some(THIN_CHUNK),
                });
                None
            }
            FsCopy::Files { why, checked } => {
                if let Some(map) = checked {
                    self.verify_golden(&probe.golden.dev, map);
                }
                Some(why.clone())
            }
        };

        self.steps.extend(system::steps(probe, c, &v, copy_files));
        match d.layout {
            // The system as it left the factory, kept until it is removed by name.
            RootLayout::Thin => self.steps.extend([
                Step::CreateRestorePoint {
                    vg: vg.clone(),
                    origin: c.root.name.clone(),
                    lv: points::lv_name(FACTORY_POINT),
                    kind: Kind::Named,
                },
                Step::WriteRestoreMenu { vg: vg.clone() },
            ]),
            RootLayout::Classic => self.steps.push(Step::CreateSnapshot {
                vg: vg.clone(),
                origin: c.root.name.clone(),
                snapshot: c.snapshot.name.clone(),
                extents: d.snapshot,
                bytes: d.snapshot * d.extent_size,
            }),
        }
        self.steps.push(Step::MarkComplete {
            vg,
            boot: v.boot_dev.clone(),
        });
    }

    fn create_lv(&mut self, lv: &str, extents: u64, extent_size: u64) {
        self.steps.push(Step::CreateLv {
            vg: self.vg(),
            lv: lv.into(),
            extents,
            bytes: extents * extent_size,
        });
    }

    fn mkfs_lv(&mut self, lv: &str) {
        self.steps.push(Step::MkfsLv {
            vg: self.vg(),
            lv: lv.into(),
            uuid: (self.new_uuid)(),
        });
    }
}
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::disk::gpt_copies::{Copy, Damage};
    use crate::fixtures::{blank_probe, complete_probe, config, uuids};
    use crate::layout::{PartKind, ESP_SIZE};
    use crate::units::{Size, GIB};

    pub(super) fn plan_of(probe: &Probe, options: Options) -> Result<Plan, Refusal> {
        plan(probe, &config(), &options, &mut uuids())
    }

    pub(super) fn names(plan: &Plan) -> Vec<String> {
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

    /// The /boot and PV partitions the plan makes.
    fn devices(plan: &Plan) -> (String, String) {
        let boot = plan.steps.iter().find_map(|s| match s {
            Step::MkfsBoot { dev, .. } => Some(dev.clone()),
            _ => None,
        });
        let pv = plan.steps.iter().find_map(|s| match s {
            Step::CreatePv { dev } => Some(dev.clone()),
            _ => None,
        });
        (boot.unwrap_or_default(), pv.unwrap_or_default())
    }

    pub(super) fn refusal(probe: &Probe) -> String {
        plan_of(probe, Options::default()).unwrap_err().0
    }

    #[test]
    fn blank_disk_gets_the_whole_layout_in_order() {
        let p = plan_of(&blank_probe(), Options::default()).unwrap();
        assert_eq!(
            names(&p),
            [
                "wipe",
                "partition",
                "mkfs-boot",
                "mkfs-esp",
                "create-pv",
                "create-vg",
                "create-pool",
                "create-thin-lv",
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
                "create-restore-point",
                "write-restore-menu",
                "mark-complete",
            ]
        );
        assert_eq!(devices(&p), ("/dev/sdb2".into(), "/dev/sdb3".into()));
        assert_eq!(p.found, "a blank disk");
        // Only where the new partitions start: a blank disk has no old ones.
        assert_eq!(
            p.steps[0],
            Step::Wipe {
                disk: "/dev/sdb".into(),
                ranges: vec![
                    (MIB, MIB),
                    (2 * MIB, MIB),
                    (258 * MIB, MIB),
                    (4 * GIB - MIB - ESP_SIZE, MIB)
                ]
            }
        );
        let Step::Partition { partitions, .. } = &p.steps[1] else {
            panic!()
        };
        assert_eq!((partitions[0].start, partitions[0].size), (MIB, MIB));
        assert_eq!(
            (partitions[1].start, partitions[1].size),
            (2 * MIB, 256 * MIB)
        );
        assert_eq!(partitions[2].start, 258 * MIB);
        // The ESP last, for UEFI; GRUB goes on it too.
        assert_eq!(
            partitions[2].start + partitions[2].size,
            partitions[3].start
        );
        assert_eq!(
            (partitions[3].kind, partitions[3].start + partitions[3].size),
            (PartKind::Esp, 4 * GIB - MIB)
        );
        assert!(p.steps.iter().any(|s| matches!(
            s,
            Step::InstallBootloader { esp: Some(esp), .. } if esp == "/dev/sdb4"
        )));
        // lv-root in the pool, whose metadata (16 MiB, and as much for the
        // spare) comes on top; the first restore point is the factory's.
        assert!(p.steps.contains(&Step::CreatePool {
            vg: "vgroup".into(),
            pool: "lv-pool".into(),
            extents: 448,
            bytes: 1792 * MIB,
            metadata_bytes: 16 * MIB,
        }));
        assert!(p.steps.contains(&Step::CreateThinLv {
            vg: "vgroup".into(),
            pool: "lv-pool".into(),
            lv: "lv-root".into(),
            bytes: 1280 * MIB
        }));
        assert_eq!(
            p.steps[p.steps.len() - 3].to_string(),
            "take the named restore point vgroup/rp-factory, a thin snapshot of lv-root"
        );
        // The classic layout: a plain root and its snapshot.
        let mut c = config();
        c.layout = RootLayout::Classic;
        let p = plan(&blank_probe(), &c, &Options::default(), &mut uuids()).unwrap();
        assert!(p.steps.contains(&Step::CreateLv {
            vg: "vgroup".into(),
            lv: "lv-root".into(),
            extents: 320,
            bytes: 1280 * MIB
        }));
        assert!(names(&p).contains(&"create-snapshot".to_string()));
    }

    #[test]
    fn a_damaged_zshield_gpt_is_repaired_first_then_planned_again() {
        // The kernel saw no partitions: LVM sees no volume group.
        let mut probe = blank_probe();
        probe.content = crate::fixtures::gpt_layout();
        let Content::Zshield(layout) = &mut probe.content else {
            unreachable!()
        };
        layout.repair = Some(Damage {
            intact: Copy::Backup,
            what: "primary copy damaged: no GPT signature".into(),
        });
        let p = plan_of(&probe, Options::default()).unwrap();
        assert_eq!(names(&p), ["repair-gpt"]);
        assert!(p.rereads_disk());
        assert_eq!(
            p.found,
            "a zshield layout with a damaged GPT (primary copy damaged: no GPT signature)"
        );
        assert_eq!(
            p.steps[0].to_string(),
            "repair the GPT of /dev/sdb from its backup copy (primary copy damaged: no GPT signature)"
        );
        assert!(!plan_of(&complete_probe(), Options::default())
            .unwrap()
            .rereads_disk());

        // What would refuse the reset after the repair refuses it before:
        // a damaged card, something else on the LVM partition.
        let mut damaged_card = probe.clone();
        damaged_card.golden.map_damage = Some("its SHA-256 does not match".into());
        assert!(refusal(&damaged_card).contains("the golden card is damaged"));
        let Content::Zshield(layout) = &mut probe.content else {
            unreachable!()
        };
        layout.pv_area = PvArea::Other(vec!["a LUKS encrypted volume".into()]);
        let r = refusal(&probe);
        assert!(
            r.contains("a LUKS encrypted volume on its LVM partition"),
            "{r}"
        );
    }

    #[test]
    fn msdos_layout_has_no_bios_boot_partition() {
        let mut c = config();
        c.label = Label::Msdos;
        let p = plan(&blank_probe(), &c, &Options::default(), &mut uuids()).unwrap();
        let Step::Partition { partitions, .. } = &p.steps[1] else {
            panic!()
        };
        assert_eq!(partitions.len(), 3);
        assert_eq!(partitions[0].start, MIB);
        assert_eq!(partitions[2].kind, PartKind::Esp);
        assert_eq!(devices(&p), ("/dev/sdb1".into(), "/dev/sdb2".into()));
    }

    #[test]
    fn a_golden_that_cannot_boot_uefi_makes_a_bios_only_layout() {
        let mut probe = blank_probe();
        probe.golden.efi = Err("the golden has no /usr/lib/shim/shimx64.efi.signed".into());
        let p = plan_of(&probe, Options::default()).unwrap();
        let Step::Partition { partitions, .. } = &p.steps[1] else {
            panic!()
        };
        assert_eq!(partitions.len(), 3);
        assert_eq!(partitions[2].start + partitions[2].size, 4 * GIB - MIB);
        assert!(!names(&p).contains(&"mkfs-esp".to_string()));
        assert!(p
            .steps
            .iter()
            .any(|s| matches!(s, Step::InstallBootloader { esp: None, .. })));
    }

    #[test]
    fn the_plan_says_which_firmware_the_disk_serves() {
        let p = plan_of(&blank_probe(), Options::default()).unwrap();
        assert_eq!(
            p.firmware.as_deref(),
            Some("the disk boots through BIOS and UEFI with Secure Boot (boot.firmware = auto; this machine started through BIOS)")
        );
        let mut c = config();
        c.boot.firmware = crate::config::Firmware::Uefi;
        let p = plan(&blank_probe(), &c, &Options::default(), &mut uuids()).unwrap();
        let grub = p
            .steps
            .iter()
            .find(|s| matches!(s, Step::InstallBootloader { .. }));
        assert_eq!(
            grub.unwrap().to_string(),
            "install GRUB on /dev/sdb4 for UEFI (Debian's signed shim and GRUB, for Secure Boot) and generate its menu with root=/dev/mapper/vgroup-lv--root"
        );
    }

    #[test]
    fn an_esp_that_holds_something_else_is_not_formatted() {
        let mut probe = complete_probe();
        let Content::Zshield(layout) = &mut probe.content else {
            unreachable!()
        };
        layout.esp = Some(4);
        let p = plan_of(&probe, Options::default()).unwrap();
        assert!(p.steps.contains(&Step::MkfsEsp {
            dev: "/dev/sdb4".into(),
            volume_id: "0000-0000".into()
        }));
        let Content::Zshield(layout) = &mut probe.content else {
            unreachable!()
        };
        layout.esp_area = vec!["a LUKS encrypted volume".into()];
        let r = refusal(&probe);
        assert!(
            r.contains("a LUKS encrypted volume on its EFI system partition /dev/sdb4")
                && r.contains("refusing to format it"),
            "{r}"
        );
        // BIOS only: the partition is left alone.
        let mut c = config();
        c.boot.firmware = crate::config::Firmware::Bios;
        let p = plan(&probe, &c, &Options::default(), &mut uuids()).unwrap();
        assert!(!names(&p).contains(&"mkfs-esp".to_string()));
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
            r.starts_with(
                "target /dev/sdb (QEMU HARDDISK, serial ZTARGET, 4 GiB) holds a foreign GPT"
            ) && r.contains("boot with zshield.wipe=ZTARGET to erase"),
            "{r}"
        );

        // Consent names the disk: another serial is refused, naming both.
        let other = Options {
            wipe: Wipe::Disk("WD-OTHER".into()),
            ..Options::default()
        };
        let r = plan_of(&probe, other).unwrap_err().0;
        assert!(
            r.contains("zshield.wipe=WD-OTHER does not name the target /dev/sdb (QEMU HARDDISK, serial ZTARGET")
                && r.contains("boot with zshield.wipe=ZTARGET"),
            "{r}"
        );
        let by_serial = Options {
            wipe: Wipe::Disk("ZTARGET".into()),
            ..Options::default()
        };
        let p = plan_of(&probe, by_serial).unwrap();
        assert!(
            p.found.ends_with("(wiped: zshield.wipe=ZTARGET)"),
            "{}",
            p.found
        );

        // A bare zshield.wipe only when one disk alone could be the target.
        let mut two = probe.clone();
        two.candidates.push(Identity {
            dev: "/dev/sdc".into(),
            serial: Some("ZSPARE".into()),
            ..two.target.identity.clone()
        });
        let r = plan_of(
            &two,
            Options {
                wipe: Wipe::Any,
                ..Options::default()
            },
        )
        .unwrap_err()
        .0;
        assert!(
            r.contains("here 2 could (/dev/sdb (QEMU HARDDISK, serial ZTARGET, 4 GiB); /dev/sdc (QEMU HARDDISK, serial ZSPARE, 4 GiB))")
                && r.contains("boot with zshield.wipe=ZTARGET"),
            "{r}"
        );

        let p = plan_of(
            &probe,
            Options {
                wipe: Wipe::Any,
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(names(&p)[..2], ["wipe", "partition"]);
        let Step::Wipe { ranges, .. } = &p.steps[0] else {
            panic!()
        };
        // The old table's partitions and the disk's ends, and where the new
        // partitions start (the BIOS boot, /boot and LVM partitions).
        assert_eq!(
            ranges,
            &[
                (0, MIB),
                (MIB, MIB),
                (2 * MIB, MIB),
                (258 * MIB, MIB),
                (3 * GIB, MIB),
                (4 * GIB - MIB - ESP_SIZE, MIB),
                (4 * GIB - MIB, MIB)
            ]
        );
        assert!(p.found.contains("wiped"));
    }

    #[test]
    fn a_lost_table_over_zshield_data_is_never_advised_to_be_wiped() {
        // The table is gone, LVM still sees the VG on the disk.
        let mut probe = complete_probe();
        probe.content = Content::Foreign(vec!["an LVM physical volume at 258 MiB".into()]);
        let r = refusal(&probe);
        assert!(
            !r.contains("zshield.wipe")
                && r.contains("data volumes vgroup/lv-user, vgroup/lv-audit")
                && r.contains("restore its partition table"),
            "{r}"
        );
    }

    #[test]
    fn a_vg_zshield_did_not_make_is_refused_unless_wiped() {
        let mut probe = complete_probe();
        probe.vgs[0].tags.clear();
        assert!(refusal(&probe).contains("did not make"));
        let p = plan_of(
            &probe,
            Options {
                wipe: Wipe::Any,
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(names(&p)[..3], ["deactivate-vg", "wipe", "partition"]);
    }

    #[test]
    fn percent_sizes_resolve_on_the_vg() {
        let mut c = config();
        c.layout = RootLayout::Classic;
        c.snapshot.size = Size::PercentOfVg(10);
        let p = plan(&blank_probe(), &c, &Options::default(), &mut uuids()).unwrap();
        // PV = 4 GiB - 259 MiB - the ESP's 64 MiB; (PV - 1 MiB) / 4 MiB = 943
        // extents; 10% = 94.3 → 95.
        assert!(
            p.steps
                .iter()
                .any(|s| matches!(s, Step::CreateSnapshot { extents: 95, .. })),
            "{:?}",
            p.steps
        );
    }
}
