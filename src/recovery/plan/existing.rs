//! Finishing a zshield layout that is there, complete or cut off: what goes
//! (the root, its snapshots, data volumes whose filesystem was never made),
//! what stays (the data volumes), and whether the VG has room.

use crate::disk::content::ExistingLayout;
use crate::layout::{
    fresh_vg_extents, partition_dev, restoring_root_name, EXTENT, POOL_METADATA_SPARE,
    TAG_COMPLETE, TAG_FAILED, TAG_FS_READY,
};
use crate::lvm::report::Lv;
use crate::points;
use crate::recovery::step::{Refusal, Step};
use crate::units::human;

use super::{copy, firmware, refuse, Demand, Planner, Volumes};

impl Planner<'_> {
    /// A zshield layout, complete or cut off: finish it, keeping the data volumes.
    pub(super) fn existing(
        &mut self,
        layout: &ExistingLayout,
    ) -> Result<(String, Volumes), Refusal> {
        let c = self.config;
        let probe = self.probe;
        let boot_dev = partition_dev(&probe.target.dev, layout.boot.number);
        let pv_dev = partition_dev(&probe.target.dev, layout.pv.number);
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
        // A layout made before ESPs keeps being BIOS only: its partitions
        // hold the data volumes, and there is no room for one.
        let served = firmware::served(probe, c, layout.esp.is_some())?;
        if let Some(number) = layout.esp.filter(|_| served.uefi) {
            if !layout.esp_area.is_empty() {
                return refuse(format!(
                    "target {} carries a zshield partition table but {} on its EFI system partition {}, where zshield puts FAT: refusing to format it; copy what it holds elsewhere and zero its first MiB (blkdiscard -z -l 1MiB, or dd), or set boot.firmware = \"bios\"",
                    probe.target.identity,
                    layout.esp_area.join(", "),
                    partition_dev(&probe.target.dev, number)
                ));
            }
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
        let demand = Demand::new(c, total, extent_size);
        let root_copy = copy::choose(&probe.golden, c.copy, demand.root * extent_size)?;
        let boot_copy = copy::choose_boot(&probe.golden, c.copy, layout.boot.size)?;

        // The thin layout's pool: the configured one, or the one the root is in.
        let mut pools: Vec<&str> = vec![c.pool.name.as_str()];
        if let Some(root) = find(&c.root.name).filter(|r| r.is_thin()) {
            pools.push(&root.pool_lv);
        }
        let in_pool = |l: &Lv| l.is_thin() && pools.contains(&l.pool_lv.as_str());
        if let Some(data) = c.data.iter().find(|d| find(&d.name).is_some_and(in_pool)) {
            return refuse(format!(
                "the data volume {}/{} is a thin volume of the pool that holds the root, which a factory reset makes anew: refusing to touch it; move its data elsewhere (or make it a plain LV) first",
                c.vg, data.name
            ));
        }
        let restoring = restoring_root_name(&c.root.name);
        let ours = |l: &Lv| {
            l.name == c.root.name || l.name == restoring || l.name.starts_with(points::PREFIX)
        };
        if let Some(other) = lvs.iter().find(|l| in_pool(l) && !ours(l)) {
            return refuse(format!(
                "{}/{} is a thin volume of the pool that holds the root, which a factory reset makes anew, and zshield did not make it: refusing to touch it; move its data out of the pool and remove it (lvremove {}/{}) first",
                c.vg, other.name, c.vg, other.name
            ));
        }
        // Thin volumes of the pool (restore points, the root) and snapshots
        // of the root first: LVM will not remove an origin with a classic
        // snapshot, nor a pool with volumes; then the root and the pools.
        let mut removals: Vec<&Lv> = lvs
            .iter()
            .copied()
            .filter(|l| in_pool(l) || (l.is_snapshot() && l.origin == c.root.name))
            .collect();
        let names = [c.snapshot.name.as_str(), c.root.name.as_str()];
        for name in names.into_iter().chain(pools.iter().copied()) {
            if let Some(lv) = find(name).filter(|lv| !removals.contains(lv)) {
                removals.push(lv);
            }
        }
        let mut kept = Vec::new();
        for data in &c.data {
            match find(&data.name) {
                Some(lv) if lv.has_tag(TAG_FS_READY) => kept.push(data.name.clone()),
                // Created, but its filesystem was never finished: made again
                // once it is seen to hold nothing used.
                Some(lv) => {
                    self.steps.push(Step::CheckUnused {
                        vg: self.vg(),
                        lv: lv.name.clone(),
                    });
                    removals.push(lv);
                }
                None => {}
            }
        }
        // A thin volume frees nothing of the VG; a pool its data and its
        // metadata; LVM's spare of pool metadata goes with the VG's last pool
        // (and a new pool needs one again).
        free += removals
            .iter()
            .filter(|l| !l.is_thin())
            .map(|l| (l.size + l.metadata_size) / extent_size)
            .sum::<u64>();
        let spare = find(POOL_METADATA_SPARE).map_or(0, |l| l.size / extent_size);
        let pool_left = lvs
            .iter()
            .any(|l| l.metadata_size > 0 && !removals.contains(l));
        let spare_kept = if pool_left {
            spare.min(demand.pool_metadata)
        } else {
            free += spare;
            0
        };
        let kept_extents: u64 = c
            .data
            .iter()
            .zip(&demand.data)
            .filter(|(dv, _)| kept.contains(&dv.name))
            .map(|(_, e)| e)
            .sum();
        let needed = demand.total() - kept_extents - spare_kept;
        if needed > free {
            return refuse(format!(
                "volume group {} on {} has {} free for the recovery but needs {} ({} more): free space in the VG (remove LVs zshield does not manage) or give the root or the data volumes smaller sizes in the configuration; zshield.wipe does not apply to a zshield layout, whose data volumes it keeps",
                c.vg,
                probe.target.dev,
                human(free * extent_size),
                human(needed * extent_size),
                human((needed - free) * extent_size)
            ));
        }

        let complete = vg.is_some_and(|v| v.has_tag(TAG_COMPLETE));
        if complete {
            // A damaged card must not cost the unit its working system.
            if let Some(map) = root_copy.checked_map() {
                self.steps.push(Step::VerifyGolden {
                    from: probe.golden.dev.clone(),
                    map: map.clone(),
                });
            }
            if let (Some(map), Some(from)) = (boot_copy.checked_map(), &probe.golden.boot_dev) {
                self.steps.push(Step::VerifyGolden {
                    from: from.clone(),
                    map: map.clone(),
                });
            }
            self.steps.push(Step::UnmarkComplete {
                vg: self.vg(),
                boot: boot_dev.clone(),
            });
        }
        if vg.is_some_and(|v| v.has_tag(TAG_FAILED)) {
            self.steps.push(Step::ClearFailure { vg: self.vg() });
        }
        for lv in removals {
            self.steps.push(Step::RemoveLv {
                vg: self.vg(),
                lv: lv.name.clone(),
            });
        }
        let (boot_uuid, boot_blocks) = self.make_boot(&boot_dev, boot_copy);
        let esp_dev = match layout.esp {
            Some(number) if served.uefi => {
                Some(self.make_esp(&partition_dev(&probe.target.dev, number)))
            }
            _ => None,
        };
        if pv.is_none() {
            self.steps.push(Step::CreatePv {
                dev: pv_dev.clone(),
            });
        }
        if vg.is_none() {
            self.steps.push(Step::CreateVg {
                vg: self.vg(),
                pv: pv_dev,
            });
        }
        let kept_words = if kept.is_empty() {
            "nothing".to_string()
        } else {
            kept.join(", ")
        };
        let found = if complete {
            format!("a complete zshield layout (kept with their data: {kept_words})")
        } else {
            format!("a zshield layout cut off before its end, to be finished (kept with their data: {kept_words})")
        };
        Ok((
            found,
            Volumes {
                boot_dev,
                boot_uuid,
                boot_blocks,
                served,
                esp_dev,
                demand,
                root_copy,
                kept,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{names, plan_of, refusal};
    use super::super::Options;
    use crate::config::RootLayout;
    use crate::disk::content::{Content, PvArea};
    use crate::fixtures::{
        blank_probe, complete_probe, complete_thin_probe, config, gpt_layout, uuids,
    };
    use crate::layout::{TAG_COMPLETE, TAG_FAILED, TAG_LAYOUT};
    use crate::lvm::report::Pv;
    use crate::recovery::plan::plan;
    use crate::recovery::step::Step;
    use crate::units::{Size, GIB};

    #[test]
    fn refuses_a_vg_of_our_name_whose_pv_is_not_the_target_partition() {
        // Its PV is on /dev/sdb10 (not a partition of the layout), or not
        // seen at all; the layout's partition holds no PV.
        let mut probe = complete_probe();
        if let Content::Zshield(layout) = &mut probe.content {
            layout.pv_area = PvArea::Blank;
        }
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
                "create-pool",
                "create-thin-lv"
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
                vg: "vgroup".into(),
                boot: "/dev/sdb2".into(),
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
        assert_eq!(names(&p)[..3], ["mkfs-boot", "create-vg", "create-pool"]);
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
        // Read before anything is written: it may have held data after all.
        assert_eq!(
            p.steps[0],
            Step::CheckUnused {
                vg: "vgroup".into(),
                lv: "lv-audit".into()
            }
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
    fn not_enough_room_in_an_existing_vg_is_refused() {
        let mut probe = complete_probe();
        probe.vgs[0].free_count = 0;
        let mut c = config();
        c.layout = RootLayout::Classic;
        // What lv-root and snap0 free is just enough for the same sizes…
        assert!(plan(&probe, &c, &Options::default(), &mut uuids()).is_ok());
        // …but not for a larger root.
        c.root.size = Size::Bytes(2 * GIB);
        let r = plan(&probe, &c, &Options::default(), &mut uuids())
            .unwrap_err()
            .0;
        assert!(
            r.contains("has 1.7 GiB free for the recovery but needs 2.5 GiB"),
            "{r}"
        );
        // The pool's metadata and LVM's spare of it take 32 MiB more.
        let r = refusal(&probe);
        assert!(
            r.contains("has 1.7 GiB free for the recovery but needs 1.7 GiB (32 MiB more)"),
            "{r}"
        );
    }

    #[test]
    fn a_thin_layout_is_made_anew_with_its_pool_and_restore_points() {
        let mut probe = complete_thin_probe();
        probe.vgs[0].free_count = 0;
        let p = plan_of(&probe, Options::default()).unwrap();
        let removed: Vec<String> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::RemoveLv { lv, .. } => Some(lv.clone()),
                _ => None,
            })
            .collect();
        // The pool's volumes before the pool, which frees its data, its
        // metadata and the spare: just enough for the same sizes.
        assert_eq!(
            removed,
            [
                "lv-root",
                "rp-factory",
                "rp-daily-20261206-101500",
                "lv-pool"
            ]
        );
        assert!(names(&p).contains(&"create-pool".to_string()));
        // A data volume in the pool would go with it: refused.
        let user = probe.lvs.iter_mut().find(|l| l.name == "lv-user").unwrap();
        user.pool_lv = "lv-pool".into();
        let r = refusal(&probe);
        assert!(
            r.contains("the data volume vgroup/lv-user is a thin volume of the pool"),
            "{r}"
        );
        // Nor is any thin volume zshield did not make.
        let mut probe = complete_thin_probe();
        let mut other = probe.lvs[2].clone();
        other.name = "scratch".into();
        probe.lvs.push(other);
        let r = refusal(&probe);
        assert!(
            r.contains("vgroup/scratch is a thin volume") && r.contains("zshield did not make"),
            "{r}"
        );
    }

    #[test]
    fn the_automatic_mode_leaves_a_complete_system_alone_and_finishes_one_cut_off() {
        let auto = || Options {
            auto: true,
            ..Options::default()
        };
        let p = plan_of(&complete_probe(), auto()).unwrap();
        assert!(p.steps.is_empty(), "{:?}", names(&p));
        assert!(p.found.contains("leaves it alone"), "{}", p.found);

        let mut cut_off = complete_probe();
        cut_off.vgs[0].tags = vec![TAG_LAYOUT.into()];
        let p = plan_of(&cut_off, auto()).unwrap();
        assert!(p.found.contains("cut off"), "{}", p.found);
        assert_eq!(names(&p).last().map(String::as_str), Some("mark-complete"));
        assert!(!plan_of(&blank_probe(), auto()).unwrap().steps.is_empty());
    }

    #[test]
    fn a_recorded_failure_stops_the_automatic_mode_and_an_explicit_reset_clears_it() {
        let mut failed = complete_probe();
        failed.vgs[0].tags = vec![TAG_LAYOUT.into(), TAG_FAILED.into()];
        let auto = Options {
            auto: true,
            ..Options::default()
        };
        let r = plan(&failed, &config(), &auto, &mut uuids()).unwrap_err().0;
        assert!(
            r.contains("failed") && r.contains("Recover to factory default"),
            "{r}"
        );
        let p = plan_of(&failed, Options::default()).unwrap();
        assert_eq!(names(&p)[0], "clear-failure");
        // Even a complete system marked failed (a failure after it was marked):
        // the hand-over marker goes first, then the record.
        failed.vgs[0].tags.push(TAG_COMPLETE.into());
        let p = plan_of(&failed, Options::default()).unwrap();
        assert_eq!(names(&p)[..2], ["unmark-complete", "clear-failure"]);
        assert_eq!(
            p.steps[0],
            Step::UnmarkComplete {
                vg: "vgroup".into(),
                boot: "/dev/sdb2".into()
            }
        );
    }

    #[test]
    fn what_lvm_cannot_read_on_the_pv_partition_is_never_made_over() {
        let with_area = |area: PvArea, pv_seen: bool| {
            let mut probe = blank_probe();
            probe.content = gpt_layout();
            if let Content::Zshield(layout) = &mut probe.content {
                layout.pv_area = area;
            }
            if pv_seen {
                probe.pvs = vec![Pv {
                    name: "/dev/sdb3".into(),
                    vg: "".into(),
                }];
            }
            probe
        };
        // Damaged metadata: LVM shows no PV, or an orphan one, where a VG was.
        for (area, seen) in [
            (PvArea::Pv, false),
            (PvArea::PvOfVg, false),
            (PvArea::PvOfVg, true),
        ] {
            let r = refusal(&with_area(area.clone(), seen));
            assert!(
                r.contains("refusing to touch it") && r.contains("vgcfgrestore"),
                "{area:?} {seen}: {r}"
            );
        }
        let r = refusal(&with_area(
            PvArea::Other(vec!["a LUKS encrypted volume".into()]),
            false,
        ));
        assert!(
            r.contains("a LUKS encrypted volume on /dev/sdb3") && r.contains("zshield.wipe="),
            "{r}"
        );
        // With the disk named for erasing: a fresh layout over all of it.
        let consent = Options {
            wipe: crate::cmdline::Wipe::Disk("ZT-SERIAL-1".into()),
            ..Options::default()
        };
        let mut probe = with_area(PvArea::PvOfVg, false);
        probe.target.identity.serial = Some("ZT-SERIAL-1".into());
        let p = plan_of(&probe, consent).unwrap();
        assert!(names(&p).contains(&"wipe".to_string()), "{:?}", names(&p));
        // A PV made and cut off before its VG: finished as before.
        let p = plan_of(&with_area(PvArea::Pv, true), Options::default()).unwrap();
        assert_eq!(names(&p)[..2], ["mkfs-boot", "create-vg"]);
        // The usual case: the VG is there, as its metadata says.
        let mut complete = complete_probe();
        if let Content::Zshield(layout) = &mut complete.content {
            layout.pv_area = PvArea::PvOfVg;
        }
        assert!(plan_of(&complete, Options::default()).is_ok());
        // Without LVM (a plan on a machine without it) nothing is judged.
        let mut probe = with_area(PvArea::Pv, false);
        probe.lvm_asked = false;
        assert!(plan_of(&probe, Options::default()).is_ok());
    }
}
