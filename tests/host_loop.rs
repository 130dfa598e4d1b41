//! Host integration tests on loop devices: partitioning, reading disks back,
//! wiping, the read-only guard and the golden copy. They need root and loop
//! devices (not device-mapper: LVM is covered by the QEMU scenarios).
//! Run with `make test-host` (one thread: they share the loop driver).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use zshield::config::Label;
use zshield::disk::blockdev::{self, BlockDev, ReadOnlyGuard};
use zshield::disk::content::{found_signatures, old_areas, Content};
use zshield::disk::gpt_copies::Copy;
use zshield::disk::mounts::MountStack;
use zshield::layout::{fresh_partitions, wipe_ranges, NewPartition, MSDOS_SIGNATURE_MAGIC};
use zshield::target::copy::copy_tree;
use zshield::units::{GIB, MIB};

fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A sparse image attached to a loop device with partition scanning; both go
/// away on drop.
struct Loop {
    dev: String,
    image: PathBuf,
    /// Holds the image; removed with it.
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new(name: &str, size: u64) -> Loop {
        Loop::with_sector(name, size, 512)
    }

    /// With `sector`-byte logical sectors, as a disk behind another controller.
    fn with_sector(name: &str, size: u64, sector: u64) -> Loop {
        assert!(
            sh("id -u") == "0",
            "the host tests need root (loop devices)"
        );
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join(format!("{name}.img"));
        sh(&format!("truncate -s {size} {}", image.display()));
        let dev = sh(&format!(
            "losetup --find --show --partscan --sector-size {sector} {}",
            image.display()
        ));
        Loop {
            dev,
            image,
            _dir: dir,
        }
    }

    fn block(&self) -> BlockDev {
        BlockDev::open(&self.dev).unwrap()
    }

    /// openssl's sha256 uses the CPU's SHA instructions: several times
    /// quicker than sha256sum on these sparse GiBs.
    fn sha256(&self) -> String {
        sh(&format!(
            "openssl dgst -sha256 -r {0} 2>/dev/null || sha256sum {0}",
            self.image.display()
        ))
    }
}

impl Loop {
    /// Drops what the loop device cached, after its image was written as a file.
    fn flush(&self) {
        sh(&format!("blockdev --flushbufs {}", self.dev));
    }

    /// Writes `bytes` at `offset` of the image file, as a damaged card would hold them.
    fn poke(&self, offset: u64, bytes: &[u8]) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.image)
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, bytes, offset).unwrap();
        self.flush();
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

fn expected(parts: &[NewPartition]) -> Vec<(u32, u64, u64)> {
    parts.iter().map(|p| (p.number, p.start, p.size)).collect()
}

/// Partitions a loop device with sfdisk and makes sure the kernel sees them
/// (this host's kernel has no partition table parser: `partx` tells it).
fn sfdisk(dev: &str, script: &str) {
    sh(&format!("printf '{script}' | sfdisk --quiet --no-reread {dev} && partx --add {dev} 2>/dev/null || partx --update {dev}"));
}

fn content_of(disk: &BlockDev) -> Content {
    blockdev::examine(disk).unwrap().1
}

#[test]
fn gpt_layout_is_written_seen_by_the_kernel_and_recognised() {
    let l = Loop::new("gpt", GIB);
    let disk = l.block();
    assert_eq!(content_of(&disk), Content::Blank);
    let parts = fresh_partitions(Label::Gpt, disk.size(), 256 * MIB, true);
    blockdev::write_table(&disk, Label::Gpt, &parts, 0).unwrap();
    blockdev::reread_partitions(&disk, &expected(&parts)).unwrap();

    let kernel = disk.partitions();
    assert_eq!(kernel.len(), 4);
    for ((number, dev), planned) in kernel.iter().zip(&parts) {
        assert_eq!(*number, planned.number);
        assert_eq!(
            (dev.start(), dev.size()),
            (planned.start, planned.size),
            "{}",
            dev.dev
        );
    }
    // An independent reader agrees on names and types, and the GPT is valid.
    let json = sh(&format!("sfdisk --json {}", l.dev));
    assert!(json.contains("\"label\": \"gpt\""), "{json}");
    for needle in [
        "zshield-bios",
        "zshield-boot",
        "zshield-lvm",
        "zshield-esp",
        "21686148-6449-6E6F-744E-656564454649",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928",
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
    ] {
        assert!(json.contains(needle), "{needle} not in {json}");
    }
    let verify = sh(&format!("sfdisk --verify {} 2>&1 || true", l.dev));
    assert!(verify.contains("No errors detected"), "{verify}");

    match content_of(&disk) {
        Content::Zshield(layout) => {
            assert_eq!(layout.label, Label::Gpt);
            assert_eq!(
                (layout.pv.number, layout.pv.start, layout.pv.size),
                (3, parts[2].start, parts[2].size)
            );
            assert_eq!(layout.esp, Some(4));
        }
        other => panic!("a zshield GPT read back as {other:?}"),
    }

    // A damaged primary copy (a zeroed header, then a corrupted array) is
    // still zshield's, to be repaired from the backup; `zshield plan` says
    // so without writing, and the repair gives back the disk byte for byte.
    let whole = l.sha256();
    let setup = PlanSetup::new("boot_size = \"256M\"\n");
    for (damage, what) in [
        (
            format!(
                "dd if=/dev/zero of={} bs=512 seek=1 count=1 conv=notrunc status=none",
                l.dev
            ),
            "primary copy damaged: no GPT signature",
        ),
        (
            format!(
                "printf 'XX' | dd of={} bs=1 seek=1100 conv=notrunc status=none",
                l.dev
            ),
            "primary copy damaged: partition array checksum mismatch",
        ),
    ] {
        sh(&damage);
        let Content::Zshield(layout) = content_of(&disk) else {
            panic!("{what}: a damaged zshield GPT is not zshield's")
        };
        let repair = layout.repair.expect("a repair");
        assert_eq!((repair.intact, repair.what.as_str()), (Copy::Backup, what));
        let damaged = l.sha256();
        let (ok, text) = setup.plan(&l.dev);
        assert!(ok, "{text}");
        assert!(
            text.contains(&format!(
                "holds a zshield layout with a damaged GPT ({what})"
            )) && text.contains(&format!("repair the GPT of {} from its backup copy", l.dev))
                && text.contains("then zshield reads the disk again"),
            "{text}"
        );
        assert_eq!(l.sha256(), damaged, "zshield plan wrote the disk");
        blockdev::repair_gpt(&disk, Copy::Backup).unwrap();
        assert_eq!(
            l.sha256(),
            whole,
            "{what}: the repair did not give the table back"
        );
    }
}

#[test]
fn msdos_layout_carries_the_zshield_signature() {
    let l = Loop::new("msdos", GIB);
    let disk = l.block();
    let parts = fresh_partitions(Label::Msdos, disk.size(), 128 * MIB, true);
    blockdev::write_table(&disk, Label::Msdos, &parts, MSDOS_SIGNATURE_MAGIC | 0x1234).unwrap();
    blockdev::reread_partitions(&disk, &expected(&parts)).unwrap();
    let json = sh(&format!("sfdisk --json {}", l.dev));
    assert!(
        json.contains("\"label\": \"dos\"") && json.contains("\"id\": \"0x7a731234\""),
        "{json}"
    );
    assert!(json.contains("\"type\": \"8e\""), "{json}");
    // The ESP as UEFI firmware finds one on an msdos disk (as on the card).
    assert!(json.contains("\"type\": \"ef\""), "{json}");
    assert!(
        matches!(content_of(&disk), Content::Zshield(l) if l.label == Label::Msdos && l.pv.number == 2 && l.esp == Some(3))
    );
}

#[test]
fn foreign_table_is_named_and_a_wipe_leaves_nothing_behind() {
    let l = Loop::new("foreign", GIB);
    sfdisk(&l.dev, "label: gpt\\n,200M,L,\\n,,L,\\n");
    sh(&format!("mkfs.ext4 -q {}p1", l.dev));
    let disk = l.block();
    let Content::Foreign(found) = content_of(&disk) else {
        panic!("a foreign GPT was not seen as foreign")
    };
    assert!(
        found[0].contains("foreign GPT partition table"),
        "{found:?}"
    );

    // What a factory reset with zshield.wipe erases: the ends of every old
    // partition and where each signature starts (ext4's backup superblocks).
    let kernel: Vec<(u64, u64)> = disk
        .partitions()
        .iter()
        .map(|(_, p)| (p.start(), p.size()))
        .collect();
    let old = old_areas(&blockdev::examine(&disk).unwrap().0, &kernel);
    blockdev::wipe(&disk, &wipe_ranges(disk.size(), &old)).unwrap();
    blockdev::reread_partitions(&disk, &[]).unwrap();
    // No table and no signature left; the old filesystem's body is still
    // there, so the disk is not blank.
    let (evidence, content) = blockdev::examine(&disk).unwrap();
    assert!(evidence.table.is_none() && found_signatures(&evidence).is_empty());
    let Content::Foreign(found) = content else {
        panic!("a wiped disk with data left is not blank")
    };
    assert!(found[0].starts_with("unrecognised data"), "{found:?}");
    assert!(
        disk.partitions().is_empty(),
        "the kernel still sees old partitions"
    );
    // The old filesystem's superblock at the start of partition 1 is gone too.
    let at = old[0].0;
    let sb = sh(&format!(
        "dd if={} bs=1 skip={} count=2 status=none | od -An -tx1",
        l.dev,
        at + 1080
    ));
    assert_eq!(sb.trim(), "00 00");
}

#[test]
fn a_disk_in_use_cannot_be_repartitioned() {
    let l = Loop::new("busy", GIB);
    sfdisk(&l.dev, "label: gpt\\n,,L,\\n");
    sh(&format!("mkfs.ext4 -q {}p1", l.dev));
    let disk = l.block();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("busy");
    let mut mounts = MountStack::new();
    // Read-only, so that only a write of zshield's could change the image.
    mounts.ext4(&format!("{}p1", l.dev), &dir, true).unwrap();

    let devnos = disk.partitions().iter().map(|(_, p)| p.devno).collect();
    let seen = zshield::disk::mounts::mounts_of(&devnos);
    assert_eq!(seen, vec![format!("{}p1 on {}", l.dev, dir.display())]);
    let before = l.sha256();
    let parts = fresh_partitions(Label::Gpt, disk.size(), 128 * MIB, false);
    let err = blockdev::write_table(&disk, Label::Gpt, &parts, 0).unwrap_err();
    assert!(format!("{err:#}").contains("in use"), "{err:#}");
    mounts.unmount_all().unwrap();
    assert_eq!(l.sha256(), before, "a refused write changed the disk");
}

#[test]
fn read_only_guard_blocks_writes_and_is_undone() {
    let l = Loop::new("ro", 64 * MIB);
    let disk = l.block();
    {
        let _guard = ReadOnlyGuard::new(&l.dev).unwrap();
        assert!(disk.read_only());
        let err = blockdev::wipe(&disk, &[(0, 4096)]).unwrap_err();
        assert!(format!("{err:#}").contains(&l.dev), "{err:#}");
    }
    assert!(!disk.read_only());
    blockdev::wipe(&disk, &[(0, 4096)]).unwrap();
}

#[test]
fn ext_superblock_gives_the_uuid_and_label_zshield_chose() {
    let l = Loop::new("sb", 64 * MIB);
    sh(&format!(
        "mkfs.ext4 -q -U 0b5e8c41-6f0a-4f3e-9d7a-0123456789ab -L lv-root {}",
        l.dev
    ));
    assert_eq!(
        blockdev::ext_superblock(&l.dev),
        Some((
            "0b5e8c41-6f0a-4f3e-9d7a-0123456789ab".to_string(),
            "lv-root".to_string()
        ))
    );
    let resolved = zshield::disk::golden::resolve(
        "UUID=0B5E8C41-6F0A-4F3E-9D7A-0123456789AB",
        std::time::Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(resolved, l.dev);
}

/// Everything a golden root holds that a careless copy loses.
fn make_fixtures(root: &Path) {
    let r = root.display();
    sh(&format!(
        "set -e; cd {r}
         mkdir -p usr/bin etc home/user boot
         printf 'hello' > usr/bin/one && ln usr/bin/one usr/bin/two
         cp /bin/true usr/bin/capable && setcap cap_net_raw+ep usr/bin/capable
         echo data > etc/acl && setfacl -m u:1234:r etc/acl
         echo x > etc/xattr && setfattr -n user.zshield -v yes etc/xattr
         truncate -s 64M sparse && printf end >> sparse
         echo mine > home/user/file && chown -R 4321:4321 home/user
         ln -s ../etc/acl usr/link
         mknod dev-null c 1 3
         chmod 4755 usr/bin/one
         touch -d '2001-02-03 04:05:06' etc/acl
         echo kernel > boot/vmlinuz"
    ));
}

#[test]
fn golden_copy_keeps_links_acls_capabilities_sparse_owners_and_times() {
    let src = Loop::new("copy-src", 256 * MIB);
    let dst = Loop::new("copy-dst", 256 * MIB);
    sh(&format!(
        "mkfs.ext4 -q {} && mkfs.ext4 -q {}",
        src.dev, dst.dev
    ));
    let base = tempfile::tempdir().unwrap();
    let (from, to) = (base.path().join("from"), base.path().join("to"));
    let mut mounts = MountStack::new();
    mounts.ext4(&src.dev, &from, false).unwrap();
    make_fixtures(&from);
    mounts.ext4(&dst.dev, &to, false).unwrap();

    let stats = copy_tree(&from, &to, &["/boot/*"], "copying the test tree").unwrap();
    // Regular files sent: the hard link travels with its first name, /boot/* is excluded.
    assert_eq!(stats.files, 6, "{stats:?}");
    let t = to.display();
    let ino = |p: &str| std::fs::metadata(to.join(p)).unwrap().ino();
    assert_eq!(ino("usr/bin/one"), ino("usr/bin/two"), "hard link lost");
    assert_eq!(
        sh(&format!("getcap {t}/usr/bin/capable")),
        format!("{t}/usr/bin/capable cap_net_raw=ep")
    );
    assert!(sh(&format!("getfacl -cn {t}/etc/acl")).contains("user:1234:r--"));
    assert_eq!(
        sh(&format!(
            "getfattr --only-values -n user.zshield {t}/etc/xattr"
        )),
        "yes"
    );
    let sparse = std::fs::metadata(to.join("sparse")).unwrap();
    assert!(
        sparse.blocks() * 512 < MIB,
        "sparse file filled in: {} blocks",
        sparse.blocks()
    );
    assert_eq!(sparse.len(), 64 * MIB + 3);
    let owned = std::fs::metadata(to.join("home/user/file")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (4321, 4321));
    assert_eq!(
        std::fs::read_link(to.join("usr/link")).unwrap(),
        Path::new("../etc/acl")
    );
    assert_eq!(
        std::fs::metadata(to.join("usr/bin/one")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::metadata(to.join("etc/acl")).unwrap().mtime(),
        std::fs::metadata(from.join("etc/acl")).unwrap().mtime()
    );
    assert!(
        std::fs::metadata(to.join("dev-null")).unwrap().rdev() != 0,
        "device node lost"
    );
    assert!(
        to.join("boot").is_dir() && !to.join("boot/vmlinuz").exists(),
        "/boot/* must be left to the /boot copy"
    );
    mounts.unmount_all().unwrap();
}

/// `zshield plan` end to end: a golden on one loop disk, a blank target on
/// another; then the same with the names swapped, which must be refused.
#[test]
fn plan_command_prints_the_steps_and_refuses_the_golden_disk() {
    let setup = PlanSetup::new(
        "boot_size = \"256M\"\n[root]\nname = \"lv-root\"\nsize = \"1280M\"\n[snapshot]\nname = \"snap0\"\nsize = \"512M\"\n[pool]\nsize = \"1792M\"\n\
         [[data]]\nname = \"lv-user\"\nsize = \"256M\"\nmount = \"/home\"\n",
    );
    let golden = &setup.golden;
    let target = Loop::new("plan-target", 4 * GIB);
    let run = |dev: &str| setup.plan(dev);
    let target_before = target.sha256();
    let golden_before = golden.sha256();

    let (ok, text) = run(&target.dev);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "plan: target {} (no serial, 4 GiB) holds a blank disk",
            target.dev
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("write a gpt partition table on {}", target.dev)),
        "{text}"
    );
    assert!(text.contains("copy the golden root"), "{text}");
    assert!(
        text.contains("create the thin pool vgroup/lv-pool (1.7 GiB of data")
            && text.contains(
                "take the named restore point vgroup/rp-factory, a thin snapshot of lv-root"
            ),
        "{text}"
    );
    // Without its tools the plan still shows, with one warning line each.
    for missing in [
        "zshield: warning: the tool lvm is missing",
        "zshield: warning: the tool mkfs.ext4 is missing",
        "zshield: warning: the tool rsync is missing",
        "zshield: warning: the golden system has no grub-install",
    ] {
        assert!(text.contains(missing), "{missing} not in {text}");
    }

    let (ok, text) = run(&golden.dev);
    assert!(!ok);
    let line = text
        .lines()
        .find(|l| l.starts_with("zshield: error: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("holds the golden") && line.contains("by-id"),
        "{line}"
    );

    assert_eq!(target.sha256(), target_before, "plan wrote the target");
    assert_eq!(golden.sha256(), golden_before, "plan wrote the golden");
}

/// A golden root partition and a configuration for `zshield plan`.
struct PlanSetup {
    golden: Loop,
    golden_part: String,
    /// The labels of this golden's root and /boot: the card's own
    /// (golden-root, golden-boot) would be seen twice while the tests run
    /// side by side, and a golden named by label must be one device.
    root_label: String,
    boot_label: String,
    config: PathBuf,
    _tmp: tempfile::TempDir,
}

impl PlanSetup {
    fn new(config: &str) -> PlanSetup {
        PlanSetup::with_table(config, "label: dos\\n,,L,\\n", false)
    }

    /// The golden root on p1 and the card's reserved partition p2 with the
    /// block map the image builder writes (`zshield golden-map`).
    fn with_block_map(config: &str) -> PlanSetup {
        let setup = PlanSetup::with_table(config, "label: dos\\n,48M,L,\\n,,da,\\n", false);
        let out = Command::new(env!("CARGO_BIN_EXE_zshield"))
            .arg("golden-map")
            .arg(&setup.golden.image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        setup.golden.flush();
        setup
    }

    /// The golden root on p1 and its /boot on p2, mounted by label as the
    /// card's fstab does.
    fn with_boot(config: &str) -> PlanSetup {
        PlanSetup::with_table(config, "label: dos\\n,40M,L,\\n,,L,\\n", true)
    }

    fn with_table(config: &str, table: &str, boot: bool) -> PlanSetup {
        let golden = Loop::new("plan-golden", 64 * MIB);
        sfdisk(&golden.dev, table);
        let golden_part = format!("{}p1", golden.dev);
        blockdev::wait_for_nodes(
            std::slice::from_ref(&golden_part),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        static SETUPS: AtomicUsize = AtomicUsize::new(0);
        let n = SETUPS.fetch_add(1, Ordering::Relaxed);
        let root_label = format!("gr{}-{n}", std::process::id());
        let boot_label = format!("gb{}-{n}", std::process::id());
        let mut fstab = format!("LABEL={root_label} / ext4 ro 0 0\\n");
        if boot {
            fstab += &format!("LABEL={boot_label} /boot ext4 ro 0 0\\n");
        }
        sh(&format!(
            "mkdir -p {t}/etc {t}/sbin && echo 'ID=debian' > {t}/etc/os-release && touch {t}/sbin/init \
             && printf '{fstab}' > {t}/etc/fstab \
             && mkfs.ext4 -q -L {root_label} -d {t} {golden_part}",
            t = tmp.path().join("tree").display()
        ));
        if boot {
            sh(&format!("mkfs.ext4 -q -L {boot_label} {}p2", golden.dev));
        }
        let path = tmp.path().join("zshield.conf");
        std::fs::write(&path, config).unwrap();
        PlanSetup {
            golden,
            golden_part,
            root_label,
            boot_label,
            config: path,
            _tmp: tmp,
        }
    }

    /// `zshield plan` for `target` (no lvm here: LVM state is the QEMU
    /// tests' business): whether it succeeded, and what it said.
    fn plan(&self, target: &str) -> (bool, String) {
        self.plan_with_golden(&self.golden_part, target)
    }

    /// The same with the golden named `golden` (`LABEL=…`, say).
    fn plan_with_golden(&self, golden: &str, target: &str) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_zshield"))
            .args(["plan", "--config"])
            .arg(&self.config)
            .args(["--golden", golden, "--target", target])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A disk whose partition table was zapped (`wipefs -a`, as `sgdisk
/// --zap-all` leaves it) still holds what its first partition held: zshield
/// names it and where it starts, refuses, and leaves the disk as it was.
#[test]
fn what_a_zapped_table_leaves_is_found_and_refused() {
    let setup = PlanSetup::new(
        "boot_size = \"64M\"\n[root]\nname = \"lv-root\"\nsize = \"64M\"\n[snapshot]\nname = \"snap0\"\nsize = \"16M\"\n[pool]\nsize = \"80M\"\n",
    );
    // Made by the real tools where Debian has them; LVM, md, ZFS and bcache
    // written at their documented offsets (the host kernel has no dm or md).
    // The smallest disk each tool takes (XFS wants 300 MB), so that hashing it is quick.
    let cases = [
        ("an ext2/3/4 filesystem", 64, "mkfs.ext4 -q -F {p}"),
        ("an XFS filesystem", 320, "mkfs.xfs -q -f {p}"),
        ("a btrfs filesystem", 160, "mkfs.btrfs -q -f {p}"),
        ("a FAT filesystem", 64, "mkfs.vfat -F 32 {p} >/dev/null"),
        ("an NTFS filesystem", 64, "mkntfs -Q -F -q {p}"),
        ("a swap area", 64, "mkswap {p} >/dev/null"),
        (
            "a LUKS encrypted volume",
            64,
            "echo -n pass | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file=- {p}",
        ),
        (
            "an ISO 9660 image",
            64,
            "xorriso -as mkisofs -quiet -o {p} /etc/hostname 2>/dev/null",
        ),
        (
            "an LVM physical volume",
            64,
            "printf 'LABELONE' | dd of={p} bs=1 seek=512 conv=notrunc status=none \
             && printf 'LVM2 001' | dd of={p} bs=1 seek=536 conv=notrunc status=none",
        ),
        (
            "a Linux RAID (md 1.1/1.2) member",
            64,
            "printf '\\374\\116\\053\\251' | dd of={p} bs=1 seek=4096 conv=notrunc status=none",
        ),
        (
            "a ZFS label",
            64,
            "printf '\\014\\261\\272\\000\\000\\000\\000\\000' | dd of={p} bs=1 seek=131072 conv=notrunc status=none",
        ),
        (
            "a bcache device",
            64,
            "printf '\\306\\205\\163\\366\\116\\032\\105\\312\\202\\145\\365\\177\\110\\272\\155\\201' | dd of={p} bs=1 seek=4120 conv=notrunc status=none",
        ),
    ];
    for (what, mib, make) in cases {
        let l = Loop::new("zapped", mib * MIB);
        sfdisk(&l.dev, "label: gpt\\nstart=2048,type=L\\n");
        let part = format!("{}p1", l.dev);
        blockdev::wait_for_nodes(
            std::slice::from_ref(&part),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        sh(&make.replace("{p}", &part));
        sh(&format!("wipefs -q -a {}", l.dev));
        let before = l.sha256();
        let expected = format!("{what} at 1 MiB");
        let Content::Foreign(found) = content_of(&l.block()) else {
            panic!("{what}: not foreign")
        };
        assert!(found.contains(&expected), "{what}: {found:?}");
        let (ok, text) = setup.plan(&l.dev);
        assert!(
            !ok && text.contains(&expected) && text.contains("zshield.wipe"),
            "{what}: {text}"
        );
        assert_eq!(l.sha256(), before, "{what}: the refusal changed the disk");
    }

    // Data in the middle of the disk only, where a sample falls.
    let l = Loop::new("middle", 3 * GIB);
    sh(&format!(
        "printf 'data' | dd of={} bs=1 seek={} conv=notrunc status=none",
        l.image.display(),
        2 * GIB + 4096
    ));
    let Content::Foreign(found) = content_of(&l.block()) else {
        panic!("data in the middle: not foreign")
    };
    assert!(
        found[0].contains(&format!("unrecognised data at byte {}", 2 * GIB + 4096)),
        "{found:?}"
    );

    // An msdos zshield disk whose first MiB was zeroed: its /boot is still there.
    let l = Loop::new("msdos-zeroed", 512 * MIB);
    let disk = l.block();
    let parts = fresh_partitions(Label::Msdos, disk.size(), 128 * MIB, false);
    blockdev::write_table(&disk, Label::Msdos, &parts, MSDOS_SIGNATURE_MAGIC | 7).unwrap();
    blockdev::reread_partitions(&disk, &expected(&parts)).unwrap();
    sh(&format!(
        "mkfs.ext4 -q {}p1 && dd if=/dev/zero of={} bs=1M count=1 conv=notrunc status=none",
        l.dev, l.dev
    ));
    let Content::Foreign(found) = content_of(&disk) else {
        panic!("zeroed msdos zshield disk: not foreign")
    };
    assert!(
        found.contains(&"an ext2/3/4 filesystem at 1 MiB".to_string()),
        "{found:?}"
    );
}

/// A card whose reserved partition holds a block map that does not check out
/// is a damaged card: a reset refuses it, whichever copy it would make, and
/// writes nothing (issue 20, finding 4: it used to copy file by file).
#[test]
fn a_card_whose_block_map_does_not_check_out_is_refused() {
    let setup = PlanSetup::with_block_map(
        "boot_size = \"64M\"\n[root]\nname = \"lv-root\"\nsize = \"64M\"\n[snapshot]\nname = \"snap0\"\nsize = \"16M\"\n[pool]\nsize = \"80M\"\n[[data]]\nname = \"lv-user\"\nsize = \"64M\"\nmount = \"/home\"\n",
    );
    let target = Loop::new("map-target", 512 * MIB);
    let (ok, text) = setup.plan(&target.dev);
    assert!(ok, "a card with its map: {text}");
    // One byte of the map's JSON, past its header line.
    let reserved = 49 * MIB;
    setup.golden.poke(reserved + 200, b"#");
    let (target_before, golden_before) = (target.sha256(), setup.golden.sha256());
    let (ok, text) = setup.plan(&target.dev);
    let line = text
        .lines()
        .find(|l| l.starts_with("zshield: error: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        !ok && line.contains("the golden card is damaged or altered")
            && line.contains("SHA-256 does not match"),
        "{text}"
    );
    assert_eq!(
        target.sha256(),
        target_before,
        "the refusal changed the target"
    );
    assert_eq!(
        setup.golden.sha256(),
        golden_before,
        "the refusal changed the card"
    );
    // Its magic damaged too: still a damaged card, not a card without a map.
    setup.golden.poke(reserved, b"X");
    let (ok, text) = setup.plan(&target.dev);
    let line = refusal_line(ok, &text);
    assert!(
        line.contains("the golden card is damaged or altered"),
        "{line}"
    );
}

/// A zshield disk as a factory reset leaves it, without LVM (the host has no
/// device-mapper): its GPT, an ext4 /boot with 1 KiB blocks (whose backup
/// superblocks fall on MiBs) and an LVM label on its PV partition.
fn zshield_disk(name: &str) -> Loop {
    let l = Loop::new(name, 2 * GIB);
    let disk = l.block();
    let parts = fresh_partitions(Label::Gpt, disk.size(), 256 * MIB, false);
    blockdev::write_table(&disk, Label::Gpt, &parts, 0).unwrap();
    blockdev::reread_partitions(&disk, &expected(&parts)).unwrap();
    sh(&format!(
        "mkfs.ext4 -q -b 1024 {d}p2 && printf 'LABELONE' | dd of={d}p3 bs=1 seek=512 conv=notrunc status=none \
         && printf 'LVM2 001' | dd of={d}p3 bs=1 seek=536 conv=notrunc status=none",
        d = l.dev
    ));
    l
}

const SMALL_LAYOUT: &str = "boot_size = \"256M\"\n[root]\nname = \"lv-root\"\nsize = \"256M\"\n[snapshot]\nname = \"snap0\"\nsize = \"64M\"\n[pool]\nsize = \"320M\"\n\
     [[data]]\nname = \"lv-user\"\nsize = \"64M\"\nmount = \"/home\"\n";

/// The one error line of a refused plan.
fn refusal_line(ok: bool, text: &str) -> String {
    assert!(!ok, "not refused: {text}");
    text.lines()
        .find(|l| l.starts_with("zshield: error: "))
        .unwrap_or_else(|| panic!("{text}"))
        .to_string()
}

/// Issue 20, finding 1: a disk that once held a zshield GPT and was reused
/// (an msdos table and a file system written over its start, the backup GPT
/// left at its end) is not "a zshield layout with a damaged GPT" to repair.
#[test]
fn a_reused_zshield_disk_is_not_repaired_over() {
    let setup = PlanSetup::new(SMALL_LAYOUT);
    let l = zshield_disk("reused");
    // Only the primary GPT lost: repaired from its backup copy.
    sh(&format!(
        "dd if=/dev/zero of={} bs=512 seek=1 count=1 conv=notrunc status=none",
        l.dev
    ));
    let (ok, text) = setup.plan(&l.dev);
    assert!(
        ok && text.contains("a zshield layout with a damaged GPT")
            && text.contains("repair the GPT"),
        "{text}"
    );
    // The customer's msdos table (one Linux partition at 1 MiB) and its ext4.
    let mbr = tempfile::NamedTempFile::new().unwrap();
    sh(&format!(
        "truncate -s 2G {m} && printf 'label: dos\\nstart=2048,size=204800,type=83\\n' | sfdisk --quiet {m} \
         && dd if={m} of={d} bs=512 count=1 conv=notrunc status=none \
         && part=$(losetup --find --show --offset 1048576 --sizelimit 104857600 {d}) \
         && mkfs.ext4 -q $part && losetup -d $part",
        m = mbr.path().display(),
        d = l.dev
    ));
    let before = l.sha256();
    let (ok, text) = setup.plan(&l.dev);
    let line = refusal_line(ok, &text);
    assert!(
        line.contains("a zshield GPT (primary copy damaged")
            && line.contains("an msdos partition table (partitions 1 Linux filesystem)")
            && line.contains("an ext2/3/4 filesystem at 1 MiB")
            && line.contains("zshield.wipe"),
        "{line}"
    );
    assert_eq!(l.sha256(), before, "the refusal changed the disk");
}

/// Issue 20, finding 2: a zshield GPT whose LVM partition holds a LUKS volume
/// is not "cut off, to be finished" with a PV made over it.
#[test]
fn a_luks_volume_on_the_lvm_partition_is_not_made_a_pv() {
    let setup = PlanSetup::new(SMALL_LAYOUT);
    let l = zshield_disk("luks-pv");
    sh(&format!(
        "echo -n pass | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file=- {}p3",
        l.dev
    ));
    let before = l.sha256();
    let (ok, text) = setup.plan(&l.dev);
    let line = refusal_line(ok, &text);
    assert!(
        line.contains(&format!("a LUKS encrypted volume on {}p3", l.dev))
            && line.contains("refusing to touch it"),
        "{line}"
    );
    assert_eq!(l.sha256(), before, "the refusal changed the disk");
}

/// Issue 20, finding 3: the golden root and its /boot come from the card
/// alone; a USB stick carrying one of their labels is refused, never taken
/// for the source of what is copied onto the disk.
#[test]
fn a_stick_labelled_like_the_card_is_refused() {
    let setup = PlanSetup::with_boot(SMALL_LAYOUT);
    let target = Loop::new("stick-target", 2 * GIB);
    let golden = format!("LABEL={}", setup.root_label);
    let (ok, text) = setup.plan_with_golden(&golden, &target.dev);
    assert!(ok, "{text}");
    for label in [&setup.boot_label, &setup.root_label] {
        let stick = Loop::new("stick", 16 * MIB);
        sh(&format!(
            "mkfs.ext4 -q -L {label} {}",
            stick.image.display()
        ));
        stick.flush();
        let before = (target.sha256(), stick.sha256(), setup.golden.sha256());
        let (ok, text) = setup.plan_with_golden(&golden, &target.dev);
        let line = refusal_line(ok, &text);
        assert!(
            line.contains(&format!("LABEL={label} names 2 devices"))
                && line.contains(&stick.dev)
                && line.contains("not the CompactFlash card"),
            "{line}"
        );
        let after = (target.sha256(), stick.sha256(), setup.golden.sha256());
        assert_eq!(after, before, "the refusal changed a disk");
        // A detached loop device lingers while udev still reads it: unlabelled,
        // it cannot be counted again in the next round.
        sh(&format!("wipefs -q -a {}", stick.dev));
    }
}

/// Issue 20, finding 10: a zshield disk moved behind a controller with
/// another sector size is refused without the advice to wipe it.
#[test]
fn a_zshield_disk_seen_at_another_sector_size_is_not_called_foreign() {
    let setup = PlanSetup::new(SMALL_LAYOUT);
    let written = Loop::with_sector("sector-4k", 2 * GIB, 4096);
    let disk = written.block();
    let parts = fresh_partitions(Label::Gpt, disk.size(), 256 * MIB, false);
    blockdev::write_table(&disk, Label::Gpt, &parts, 0).unwrap();
    let image = written.image.clone();
    // The same image, now seen with 512-byte sectors.
    let dev = sh(&format!("losetup --find --show {}", image.display()));
    let before = written.sha256();
    let (ok, text) = setup.plan(&dev);
    sh(&format!("losetup -d {dev}"));
    let line = refusal_line(ok, &text);
    assert!(
        line.contains(
            "a zshield layout written for 4096-byte sectors, but the disk shows 512-byte sectors"
        ) && !line.contains("zshield.wipe"),
        "{line}"
    );
    assert_eq!(written.sha256(), before, "the refusal changed the disk");
}
