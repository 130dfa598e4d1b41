//! Test fixtures shared by the unit tests: configurations, LVM report rows
//! and probes of the machines the QEMU scenarios boot.

use crate::config::Config;
use crate::config::Label;
use crate::disk::blockdev::Holder;
use crate::disk::blockmap::{FsMap, Range};
use crate::disk::content::{Content, ExistingLayout, PvArea, TablePartition};
use crate::disk::identity::Identity;
use crate::layout::{
    EXTENT, GPT_BOOT_NAME, GPT_LINUX_FS_TYPE, GPT_LVM_NAME, GPT_LVM_TYPE, TAG_COMPLETE,
    TAG_FS_READY, TAG_LAYOUT,
};
use crate::lvm::report::{Lv, Pv, Vg};
use crate::recovery::probe::{GoldenRoot, Probe, TargetDisk};
use crate::target::provision::Provision;
use crate::units::{GIB, MIB};

/// The layout of the QEMU tests: a 4 GiB disk, a 512 MiB snapshot.
const SMALL: &str = r#"
target = "/dev/sdb"
boot_size = "256M"
vg = "vgroup"
[root]
name = "lv-root"
size = "1280M"
[snapshot]
name = "snap0"
size = "512M"
[pool]
name = "lv-pool"
size = "1792M"
"#;

/// The QEMU tests' layout without data volumes: for the parts that read LVM reports.
pub fn small_config() -> Config {
    Config::parse(SMALL, "test").expect("the test configuration parses")
}

/// The same with the two data volumes, for the planner.
pub fn config() -> Config {
    let data = r#"
[[data]]
name = "lv-user"
size = "256M"
mount = "/home"
[[data]]
name = "lv-audit"
size = "256M"
mount = "/var/log/audit"
"#;
    Config::parse(&format!("{SMALL}{data}"), "test").expect("the test configuration parses")
}

/// VG "vgroup" of 1024 extents of 4 MiB with `free` of them free.
pub fn vg(free: u64, tags: &[&str]) -> Vg {
    Vg {
        name: "vgroup".into(),
        size: 4 << 30,
        extent_size: EXTENT,
        extent_count: 1024,
        free_count: free,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

/// A complete zshield VG with `free` extents free.
pub fn complete_vg(free: u64) -> Vg {
    vg(free, &[TAG_LAYOUT, TAG_COMPLETE])
}

/// An LV of "vgroup" as `lvs` reports one whose `lv_attr` is `attr`
/// (`owi-aos---`): the attribute string is how people write these states,
/// so the tests say them that way and this sets LVM's named fields to match.
pub fn lv(name: &str, attr: &str, mib: u64, origin: &str, tags: &[&str]) -> Lv {
    let at = |i: usize| attr.chars().nth(i).unwrap_or('-');
    let role = match at(0) {
        's' | 'S' => "public,snapshot,thicksnapshot",
        'o' | 'O' => "public,origin,thickorigin",
        _ => "public",
    };
    Lv {
        name: name.into(),
        vg: "vgroup".into(),
        attr: attr.into(),
        size: mib * MIB,
        origin: origin.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        created: 0,
        snap_percent: None,
        pool_lv: String::new(),
        data_percent: None,
        metadata_size: 0,
        metadata_percent: None,
        roles: role.split(',').map(String::from).collect(),
        merging: matches!(at(0), 'S' | 'O'),
        snapshot_invalid: at(4) == 'I',
        merge_failed: matches!(at(4), 'm' | 'M'),
        suspended: at(4) == 'S',
        active: at(4) != '-',
        open: at(5) == 'o',
    }
}

/// A thin volume of the pool lv-pool, inactive as LVM leaves snapshots,
/// made at `created`; a snapshot of `origin` unless it is empty.
pub fn thin_lv(name: &str, origin: &str, created: u64, tags: &[&str]) -> Lv {
    let mut lv = lv(name, "Vwi---t--k", 1280, origin, tags);
    lv.pool_lv = "lv-pool".into();
    lv.created = created;
    lv.roles = if origin.is_empty() {
        vec!["public".into()]
    } else {
        vec!["public".into(), "snapshot".into(), "thinsnapshot".into()]
    };
    lv
}

/// The thin pool lv-pool of 1792 MiB, `data` and `metadata` percent used.
pub fn thin_pool(data: f64, metadata: f64) -> Lv {
    let mut pool = lv("lv-pool", "twi-aot---", 1792, "", &[]);
    pool.roles = vec!["private".into()];
    pool.data_percent = Some(data);
    pool.metadata_size = 16 * MIB;
    pool.metadata_percent = Some(metadata);
    pool
}

/// Filesystem UUIDs counted up from 1, so that plans are the same every run.
pub fn uuids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("00000000-0000-4000-8000-{n:012}")
    }
}

/// A blank 4 GiB /dev/sdb, the golden on /dev/sda.
pub fn blank_probe() -> Probe {
    Probe {
        target: TargetDisk {
            requested: "/dev/sdb".into(),
            dev: "/dev/sdb".into(),
            size: 4 * GIB,
            is_partition: false,
            read_only: false,
            mounts: vec![],
            holders: vec![],
            identity: target_identity(),
        },
        golden: GoldenRoot {
            spec: "LABEL=golden-root".into(),
            dev: "/dev/sda2".into(),
            disks: vec!["/dev/sda".into()],
            boot_dev: Some("/dev/sda1".into()),
            names: vec!["LABEL=golden-root".into()],
            uuid: Some("0b4c6e7e-2f0a-4d8e-9c39-6a1f2a7d5e11".into()),
            root_tree: "/run/zshield/golden".into(),
            boot_tree: "/run/zshield/golden-boot".into(),
            block_map: Err("no block map in this fixture".into()),
            boot_map: Err("no block map in this fixture".into()),
            map_damage: None,
            signed_map_required: false,
            efi: Ok(()),
        },
        content: Content::Blank,
        partitions: vec![],
        pvs: vec![],
        vgs: vec![],
        lvs: vec![],
        provision: Provision::default(),
        candidates: vec![target_identity()],
        lvm_asked: true,
        booted_uefi: false,
        boot_vars: Err("this machine started through BIOS".into()),
        target_partitions: Vec::new(),
    }
}

/// The virtual target disk as udev names it.
pub fn target_identity() -> Identity {
    Identity {
        dev: "/dev/sdb".into(),
        model: Some("QEMU HARDDISK".into()),
        serial: Some("ZTARGET".into()),
        path: Some("pci-0000:00:04.0-scsi-0:0:0:0".into()),
        size: 4 * GIB,
        ..Identity::default()
    }
}

/// The GPT zshield makes on a 4 GiB disk.
pub fn gpt_layout() -> Content {
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
        esp: None,
        esp_area: Vec::new(),
        repair: None,
        pv_area: PvArea::Pv,
    })
}

/// /dev/sdb provisioned to the end, its VG active.
pub fn complete_probe() -> Probe {
    let mut probe = blank_probe();
    probe.content = gpt_layout();
    probe.pvs = vec![Pv {
        name: "/dev/sdb3".into(),
        vg: "vgroup".into(),
    }];
    let mut vg = complete_vg(947 - 320 - 128 - 64 - 64);
    vg.size = 947 * EXTENT;
    vg.extent_count = 947;
    probe.vgs = vec![vg];
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

/// The same disk in the thin layout: lv-root in lv-pool, the factory's
/// restore point and a daily one.
pub fn complete_thin_probe() -> Probe {
    let mut probe = complete_probe();
    probe.vgs[0].free_count = 947 - 448 - 8 - 64 - 64;
    let mut root = thin_lv("lv-root", "", 0, &[]);
    root.attr = "Vwi-aot---".into();
    root.active = true;
    probe.lvs.splice(
        0..2,
        [
            thin_pool(40.0, 10.0),
            root,
            thin_lv("rp-factory", "lv-root", 1, &[]),
            thin_lv("rp-daily-20261206-101500", "lv-root", 2, &[]),
            lv("lvol0_pmspare", "ewi-------", 16, "", &[]),
        ],
    );
    probe
}

/// The block map entry of a golden root of 512 MiB with 300 MiB used.
pub fn golden_root_map() -> FsMap {
    FsMap {
        label: "golden-root".into(),
        uuid: "0b4c6e7e-2f0a-4d8e-9c39-6a1f2a7d5e11".into(),
        partition: 2,
        offset: 65 * MIB,
        block_size: 4096,
        blocks: 131_072,
        features: vec![
            "has_journal".into(),
            "metadata_csum".into(),
            "metadata_csum_seed".into(),
        ],
        ranges: vec![Range {
            block: 0,
            blocks: 76_800,
            sha256: "00".repeat(32),
            zero: false,
        }],
    }
}

/// The block map entry of a golden /boot of 64 MiB with 48 MiB used.
pub fn golden_boot_map() -> FsMap {
    FsMap {
        label: "golden-boot".into(),
        uuid: "5d0c1d57-30a3-4c3e-a8a1-7d8e2f6b9c04".into(),
        partition: 1,
        offset: MIB,
        block_size: 4096,
        blocks: 16_384,
        features: vec!["has_journal".into(), "metadata_csum_seed".into()],
        ranges: vec![Range {
            block: 0,
            blocks: 12_288,
            sha256: "00".repeat(32),
            zero: false,
        }],
    }
}
