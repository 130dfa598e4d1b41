//! The refusals of a factory reset that hold whatever the target holds: a
//! partition, a read-only or mounted disk, the golden's own disk, a VG that
//! spans other disks, a device stacked on it that zshield did not make.

use crate::config::Config;
use crate::layout::{dm_prefix, on_disk};
use crate::recovery::probe::Probe;
use crate::recovery::step::Refusal;

fn refuse<T>(message: String) -> Result<T, Refusal> {
    Err(Refusal(message))
}

/// The refusals that do not depend on what the disk holds. Returns the VGs
/// with a PV on the target.
pub fn check_target(probe: &Probe, config: &Config) -> Result<Vec<String>, Refusal> {
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
        let ours = h
            .dm_name
            .as_deref()
            .is_some_and(|name| target_vgs.iter().any(|vg| name.starts_with(&dm_prefix(vg))));
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
    Ok(target_vgs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::blockdev::Holder;
    use crate::fixtures::{blank_probe, config};
    use crate::lvm::report::Pv;

    fn refusal(probe: &Probe) -> String {
        check_target(probe, &config()).unwrap_err().0
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
    fn a_vg_of_the_same_name_elsewhere_is_refused() {
        let mut probe = blank_probe();
        probe.pvs = vec![Pv {
            name: "/dev/sdc1".into(),
            vg: "vgroup".into(),
        }];
        assert!(refusal(&probe).contains("already exists on /dev/sdc1"));
    }
}
