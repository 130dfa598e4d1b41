//! How the golden root reaches lv-root, and the golden /boot its partition:
//! block by block from the card's block map when it can (and `copy`
//! allows), file by file otherwise; the plan says which and why.

use crate::config::CopyMethod;
use crate::disk::blockmap::FsMap;
use crate::recovery::probe::GoldenRoot;
use crate::recovery::step::Refusal;
use crate::units::human;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsCopy {
    Blocks {
        map: FsMap,
        why: String,
    },
    Files {
        why: String,
        /// The map the golden file system is checked against before it is
        /// copied (`require_signed_map`: every byte copied is vouched for).
        checked: Option<FsMap>,
    },
}

/// The copy for a golden root onto a root volume of `root_bytes`.
/// `copy = "blocks"` is refused when the root cannot be copied so, and any
/// copy from a card whose block map does not check out.
pub fn choose(golden: &GoldenRoot, method: CopyMethod, root_bytes: u64) -> Result<FsCopy, Refusal> {
    refuse_damaged_card(golden)?;
    let what = Place {
        golden: "the golden root",
        target: "the root volume",
        bytes: root_bytes,
    };
    match choose_for(golden, &golden.block_map, method, &what)? {
        FsCopy::Files { why, .. } if method == CopyMethod::Blocks => Err(Refusal(format!(
            "copy = \"blocks\", but {why}: rebuild the golden image with its block map, or set copy = \"auto\""
        ))),
        chosen => Ok(chosen),
    }
}

impl FsCopy {
    /// The map the golden file system is read and checked against before
    /// anything is copied or removed, if any: a block copy checks each range
    /// as it copies, a file copy under `require_signed_map` first.
    pub fn checked_map(&self) -> Option<&FsMap> {
        match self {
            FsCopy::Blocks { map, .. } => Some(map),
            FsCopy::Files { checked, .. } => checked.as_ref(),
        }
    }
}

/// A copy file by file is not checked against the signed block map.
fn signed_only(why: &str) -> Refusal {
    Refusal(format!(
        "this unit takes only what the vendor's signed block map vouches for (require_signed_map), so it copies block by block only, but {why}: use a card made by the vendor's image builder"
    ))
}

/// A card whose block map does not check out is damaged or altered.
pub fn refuse_damaged_card(golden: &GoldenRoot) -> Result<(), Refusal> {
    match &golden.map_damage {
        Some(damage) => Err(Refusal(format!(
            "the golden card is damaged or altered ({damage}): refusing to copy from it, by blocks or by files; replace the CompactFlash card"
        ))),
        None => Ok(()),
    }
}

/// The copy for the golden /boot onto a /boot partition of `boot_bytes`:
/// `copy = "blocks"` is about the root; a /boot that cannot be copied by
/// blocks is copied file by file.
pub fn choose_boot(
    golden: &GoldenRoot,
    method: CopyMethod,
    boot_bytes: u64,
) -> Result<FsCopy, Refusal> {
    let what = Place {
        golden: "the golden /boot",
        target: "the /boot partition",
        bytes: boot_bytes,
    };
    choose_for(golden, &golden.boot_map, method, &what)
}

/// A golden file system and where it goes.
struct Place {
    golden: &'static str,
    target: &'static str,
    bytes: u64,
}

/// With `require_signed_map`, only from a file system the signed map
/// vouches for: by blocks, or by files once checked against it.
fn choose_for(
    golden: &GoldenRoot,
    map: &Result<FsMap, String>,
    method: CopyMethod,
    to: &Place,
) -> Result<FsCopy, Refusal> {
    if method == CopyMethod::Files {
        let checked = match golden.signed_map_required {
            true => Some(map.clone().map_err(|why| signed_only(&why))?),
            false => None,
        };
        return Ok(FsCopy::Files {
            why: "asked for: copy = \"files\"".into(),
            checked,
        });
    }
    Ok(match usable_map(map, to) {
        Ok(map) => FsCopy::Blocks {
            why: format!(
                "the card's block map lists {} ({} used of {}, in {} ranges)",
                to.golden,
                human(map.used_bytes()),
                human(map.blocks * map.block_size),
                map.ranges.len()
            ),
            map,
        },
        Err(why) if golden.signed_map_required => return Err(signed_only(&why)),
        Err(why) => FsCopy::Files { why, checked: None },
    })
}

fn usable_map(map: &Result<FsMap, String>, to: &Place) -> Result<FsMap, String> {
    let map = map.clone()?;
    let size = map.blocks * map.block_size;
    if size > to.bytes {
        return Err(format!(
            "{} file system ({}) is larger than {} ({})",
            to.golden,
            human(size),
            to.target,
            human(to.bytes)
        ));
    }
    let has = |f: &str| map.features.iter().any(|g| g == f);
    if has("metadata_csum") && !has("metadata_csum_seed") {
        return Err(format!(
            "{} has metadata checksums without metadata_csum_seed (a copy could not take a UUID of its own)",
            to.golden
        ));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{names, plan_of};
    use super::super::Options;
    use super::*;
    use crate::fixtures::{blank_probe, complete_probe, golden_boot_map, golden_root_map};
    use crate::recovery::step::Step;
    use crate::units::{GIB, MIB};

    #[test]
    fn a_block_copy_makes_the_root_file_system_right_before_the_target_is_mounted() {
        let mut probe = blank_probe();
        probe.golden.block_map = Ok(golden_root_map());
        let p = plan_of(&probe, Options::default()).unwrap();
        let n = names(&p);
        let at = |name: &str| n.iter().position(|s| s == name);
        assert_eq!(at("copy-root-blocks"), at("mount-target").map(|i| i - 1));
        assert_eq!(at("copy-root"), None);
        assert_eq!(
            n.iter().filter(|s| *s == "mkfs-lv").count(),
            2,
            "the data volumes only"
        );
        let copy = p.steps.iter().find_map(|s| match s {
            Step::CopyRootBlocks {
                to, label, uuid, ..
            } => Some((to, label, uuid)),
            _ => None,
        });
        let (to, label, uuid) = copy.unwrap();
        assert_eq!(
            (to.as_str(), label.as_str()),
            ("/dev/mapper/vgroup-lv--root", "lv-root")
        );
        assert_ne!(
            uuid, "0b4c6e7e-2f0a-4d8e-9c39-6a1f2a7d5e11",
            "the copy's own UUID"
        );

        // Without a map: mkfs and rsync, as before, and the plan says why.
        let p = plan_of(&blank_probe(), Options::default()).unwrap();
        let shown: Vec<String> = p.steps.iter().map(|s| s.to_string()).collect();
        assert!(
            shown
                .iter()
                .any(|s| s.contains("file by file (no block map in this fixture)")),
            "{shown:?}"
        );
    }

    #[test]
    fn a_working_system_is_removed_only_after_the_card_is_checked() {
        let mut probe = complete_probe();
        probe.golden.block_map = Ok(golden_root_map());
        let n = names(&plan_of(&probe, Options::default()).unwrap());
        assert_eq!(n[0], "verify-golden");
        assert_eq!(n[1], "unmark-complete");
        // A blank disk has nothing to lose: the copy checks as it goes.
        let mut blank = blank_probe();
        blank.golden.block_map = Ok(golden_root_map());
        let n = names(&plan_of(&blank, Options::default()).unwrap());
        assert!(!n.iter().any(|s| s == "verify-golden"));
        // A file copy has no map to check against.
        let n = names(&plan_of(&complete_probe(), Options::default()).unwrap());
        assert!(!n.iter().any(|s| s == "verify-golden"));
    }

    #[test]
    fn a_card_whose_map_does_not_check_out_is_refused_for_any_copy() {
        for mut probe in [blank_probe(), complete_probe()] {
            probe.golden.map_damage =
                Some("the block map itself is damaged (its SHA-256 does not match)".into());
            let r = super::super::tests::refusal(&probe);
            assert!(
                r.contains("the golden card is damaged or altered")
                    && r.contains("SHA-256 does not match")
                    && r.contains("replace the CompactFlash card"),
                "{r}"
            );
            let mut files = crate::fixtures::config();
            files.copy = CopyMethod::Files;
            let r = crate::recovery::plan::plan(
                &probe,
                &files,
                &Options::default(),
                &mut crate::fixtures::uuids(),
            );
            assert!(r.is_err(), "copy = \"files\" took a damaged card");
        }
    }

    #[test]
    fn blocks_when_the_map_fits_files_otherwise_and_always_why() {
        let mut golden = blank_probe().golden;
        let files = choose(&golden, CopyMethod::Auto, GIB).unwrap();
        assert!(
            matches!(&files, FsCopy::Files { why, .. } if why.contains("no block map")),
            "{files:?}"
        );
        golden.block_map = Ok(golden_root_map());
        let blocks = choose(&golden, CopyMethod::Auto, GIB).unwrap();
        assert!(
            matches!(&blocks, FsCopy::Blocks { why, .. } if why.contains("the card's block map lists the golden root")),
            "{blocks:?}"
        );
        let forced = choose(&golden, CopyMethod::Files, GIB).unwrap();
        assert!(matches!(forced, FsCopy::Files { why, .. } if why.contains("copy = \"files\"")));

        let small = choose(&golden, CopyMethod::Auto, 256 * MIB).unwrap();
        assert!(
            matches!(&small, FsCopy::Files { why, .. } if why.contains("larger than the root volume (256 MiB)")),
            "{small:?}"
        );
        let refused = choose(&golden, CopyMethod::Blocks, 256 * MIB).unwrap_err();
        assert!(refused
            .0
            .starts_with("copy = \"blocks\", but the golden root file system"));

        let mut map = golden_root_map();
        map.features.retain(|f| f != "metadata_csum_seed");
        golden.block_map = Ok(map);
        let unseeded = choose(&golden, CopyMethod::Auto, GIB).unwrap();
        assert!(
            matches!(unseeded, FsCopy::Files { why, .. } if why.contains("metadata_csum_seed"))
        );
    }

    #[test]
    fn boot_is_copied_by_blocks_in_place_of_its_mkfs_and_checked_before_a_working_system_goes() {
        let mut probe = blank_probe();
        probe.golden.boot_map = Ok(golden_boot_map());
        let p = plan_of(&probe, Options::default()).unwrap();
        let n = names(&p);
        assert_eq!(n[2], "copy-boot-blocks", "{n:?}");
        assert!(!n.iter().any(|s| s == "mkfs-boot" || s == "copy-boot"));
        assert!(n.iter().any(|s| s == "keep-boot-copy"));
        let (uuid, to) = p
            .steps
            .iter()
            .find_map(|s| match s {
                Step::CopyBootBlocks { uuid, to, from, .. } => {
                    assert_eq!(from, "/dev/sda1");
                    Some((uuid.clone(), to.clone()))
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(to, "/dev/sdb2");
        let fstab = p.steps.iter().find_map(|s| match s {
            Step::ConfigureTarget { fstab, .. } => Some(fstab.clone()),
            _ => None,
        });
        assert!(fstab
            .unwrap()
            .iter()
            .any(|e| e.spec == format!("UUID={uuid}")));

        // Too large for the partition, or copy = "files": mkfs and rsync.
        let mut golden = probe.golden.clone();
        let files = choose_boot(&golden, CopyMethod::Auto, 32 * MIB).unwrap();
        assert!(
            matches!(&files, FsCopy::Files { why, .. } if why.contains("larger than the /boot partition (32 MiB)")),
            "{files:?}"
        );
        assert!(matches!(
            choose_boot(&golden, CopyMethod::Files, GIB),
            Ok(FsCopy::Files { .. })
        ));
        golden.boot_map = Err("the golden /boot is a directory of its root".into());
        assert!(matches!(
            choose_boot(&golden, CopyMethod::Blocks, GIB),
            Ok(FsCopy::Files { why, .. }) if why.contains("directory")
        ));

        let mut complete = complete_probe();
        complete.golden.boot_map = Ok(golden_boot_map());
        complete.golden.block_map = Ok(golden_root_map());
        let p = plan_of(&complete, Options::default()).unwrap();
        let checked: Vec<String> = p
            .steps
            .iter()
            .take_while(|s| matches!(s, Step::VerifyGolden { .. }))
            .map(|s| s.to_string())
            .collect();
        assert_eq!(checked.len(), 2, "{checked:?}");
        assert!(checked[1].starts_with("check golden-boot /dev/sda1 against the card's block map"));
    }

    #[test]
    fn with_signed_maps_required_only_what_the_map_vouches_for_is_copied() {
        let mut probe = blank_probe();
        probe.golden.signed_map_required = true;
        probe.golden.block_map = Ok(golden_root_map());
        probe.golden.boot_map = Ok(golden_boot_map());
        // copy = "files": each file system is checked against the map first.
        let mut files = crate::fixtures::config();
        files.copy = CopyMethod::Files;
        let p = crate::recovery::plan::plan(
            &probe,
            &files,
            &Options::default(),
            &mut crate::fixtures::uuids(),
        )
        .unwrap();
        let n = names(&p);
        let at = |name: &str| n.iter().position(|s| s == name).unwrap();
        let checks: Vec<&Step> = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::VerifyGolden { .. }))
            .collect();
        assert_eq!(checks.len(), 2, "{n:?}");
        assert!(at("verify-golden") < at("mkfs-boot"), "{n:?}");
        assert!(
            n.iter().rposition(|s| s == "verify-golden").unwrap() < at("copy-root"),
            "{n:?}"
        );
        // What the map does not list, or cannot be copied by blocks, is refused.
        for (root, boot) in [
            (Err("no block map".to_string()), Ok(golden_boot_map())),
            (
                Ok(golden_root_map()),
                Err("the golden /boot is a directory of its root".into()),
            ),
        ] {
            probe.golden.block_map = root;
            probe.golden.boot_map = boot;
            let r = super::super::tests::refusal(&probe);
            assert!(r.contains("require_signed_map"), "{r}");
        }
        let mut golden = probe.golden.clone();
        golden.block_map = Ok(golden_root_map());
        let r = choose(&golden, CopyMethod::Auto, 256 * MIB).unwrap_err();
        assert!(r.0.contains("larger than the root volume"), "{}", r.0);
    }
}
