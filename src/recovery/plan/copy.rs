//! How the golden root reaches lv-root: block by block from the card's block
//! map when it can (and `copy` allows), file by file otherwise; the plan says
//! which and why.

use crate::config::CopyMethod;
use crate::disk::blockmap::FsMap;
use crate::recovery::probe::GoldenRoot;
use crate::recovery::step::Refusal;
use crate::units::human;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCopy {
    Blocks { map: FsMap, why: String },
    Files { why: String },
}

/// The copy for a golden root onto a root volume of `root_bytes`.
pub fn choose(
    golden: &GoldenRoot,
    method: CopyMethod,
    root_bytes: u64,
) -> Result<RootCopy, Refusal> {
    if method == CopyMethod::Files {
        return Ok(RootCopy::Files {
            why: "asked for: copy = \"files\"".into(),
        });
    }
    match usable_map(golden, root_bytes) {
        Ok(map) => Ok(RootCopy::Blocks {
            why: format!(
                "the card's block map lists the golden root ({} used of {}, in {} ranges)",
                human(map.used_bytes()),
                human(map.blocks * map.block_size),
                map.ranges.len()
            ),
            map,
        }),
        Err(why) if method == CopyMethod::Auto => Ok(RootCopy::Files { why }),
        Err(why) => Err(Refusal(format!(
            "copy = \"blocks\", but {why}: rebuild the golden image with its block map, or set copy = \"auto\""
        ))),
    }
}

fn usable_map(golden: &GoldenRoot, root_bytes: u64) -> Result<FsMap, String> {
    let map = golden.block_map.clone()?;
    let size = map.blocks * map.block_size;
    if size > root_bytes {
        return Err(format!(
            "the golden root file system ({}) is larger than the root volume ({})",
            human(size),
            human(root_bytes)
        ));
    }
    let has = |f: &str| map.features.iter().any(|g| g == f);
    if has("metadata_csum") && !has("metadata_csum_seed") {
        return Err(
            "the golden root has metadata checksums without metadata_csum_seed (a copy could not take a UUID of its own)"
                .into(),
        );
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{names, plan_of};
    use super::super::Options;
    use super::*;
    use crate::fixtures::{blank_probe, complete_probe, golden_root_map};
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
    fn blocks_when_the_map_fits_files_otherwise_and_always_why() {
        let mut golden = blank_probe().golden;
        let files = choose(&golden, CopyMethod::Auto, GIB).unwrap();
        assert!(
            matches!(&files, RootCopy::Files { why } if why.contains("no block map")),
            "{files:?}"
        );
        golden.block_map = Ok(golden_root_map());
        let blocks = choose(&golden, CopyMethod::Auto, GIB).unwrap();
        assert!(
            matches!(&blocks, RootCopy::Blocks { why, .. } if why.contains("the card's block map lists the golden root")),
            "{blocks:?}"
        );
        let forced = choose(&golden, CopyMethod::Files, GIB).unwrap();
        assert!(matches!(forced, RootCopy::Files { why } if why.contains("copy = \"files\"")));

        let small = choose(&golden, CopyMethod::Auto, 256 * MIB).unwrap();
        assert!(
            matches!(&small, RootCopy::Files { why } if why.contains("larger than the root volume (256 MiB)")),
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
        assert!(matches!(unseeded, RootCopy::Files { why } if why.contains("metadata_csum_seed")));
    }
}
