//! Host tests of the golden card's block map on card image files, as the image
//! builder makes them (`zshield golden-map`) and an OEM checks a written card
//! (`zshield verify-golden`). Needs e2fsprogs and sfdisk; no loop device.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use zshield::disk::blockmap::{self, BlockMap, Digests};
use zshield::target::copy::copy_blocks;
use zshield::units::MIB;

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn zshield(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zshield"))
        .args(args)
        .output()
        .unwrap()
}

/// A card image as build-golden.sh makes one: p1 /boot and p2 root (ext4
/// filled with mkfs.ext4 -d, 4 KiB blocks, metadata_csum_seed), p3 reserved.
fn card(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    sh(&format!(
        "mkdir -p {t}/etc {t}/data && echo golden >{t}/etc/os-release \
         && head -c 3000000 /dev/urandom >{t}/data/random && ln {t}/data/random {t}/data/link \
         && echo acl >{t}/data/acl && setfacl -m u:1234:r {t}/data/acl \
         && cp /bin/true {t}/data/cap && setcap cap_net_raw+ep {t}/data/cap \
         && echo owned >{t}/data/owned && chown 4321:4321 {t}/data/owned \
         && truncate -s 8M {t}/data/sparse && echo tail >>{t}/data/sparse",
        t = tree.display()
    ));
    let card = dir.join("cf.img");
    let d = dir.display();
    sh(&format!(
        "for p in boot:16 root:32; do n=${{p%:*}}; truncate -s ${{p#*:}}M {d}/$n.img \
           && mkfs.ext4 -q -F -b 4096 -O metadata_csum_seed -L golden-$n -d {t} {d}/$n.img; done \
         && truncate -s 53M {c} \
         && printf 'label: dos\\nstart=2048,size=32768,type=83\\nstart=34816,size=65536,type=83\\nstart=100352,size=8192,type=da\\n' \
            | sfdisk --quiet {c} \
         && dd if={d}/boot.img of={c} bs=1M seek=1 conv=notrunc status=none \
         && dd if={d}/root.img of={c} bs=1M seek=17 conv=notrunc status=none",
        t = tree.display(),
        c = card.display()
    ));
    card
}

fn flip_byte(path: &Path, at: u64) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x5a], at).unwrap();
}

#[test]
fn a_card_is_checked_against_the_map_it_carries_and_damage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let card = card(dir.path());

    let made = zshield(&["golden-map", card.to_str().unwrap()]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let printed = BlockMap::decode(&made.stdout).unwrap();
    let stored = blockmap::load(&card).unwrap();
    assert_eq!(printed, stored);
    let labels: Vec<&str> = stored
        .filesystems
        .iter()
        .map(|f| f.label.as_str())
        .collect();
    assert_eq!(labels, ["golden-boot", "golden-root"]);
    let root = &stored.filesystems[1];
    assert_eq!(
        (root.partition, root.offset, root.block_size),
        (2, 17 * MIB, 4096)
    );
    assert!(root.features.iter().any(|f| f == "metadata_csum_seed"));
    // The 3 MB file and the file system's own metadata, not its free space.
    assert!(root.used_bytes() > 3_000_000 && root.used_bytes() < 16 * MIB);

    let ok = zshield(&["verify-golden", card.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stderr).contains("the golden card matches its block map"));

    // A flipped bit in a free block changes nothing the copy would carry.
    let last_used = root
        .ranges
        .iter()
        .map(|r| r.block + r.blocks)
        .max()
        .unwrap();
    assert!(last_used < root.blocks);
    flip_byte(&card, root.offset + last_used * 4096 + 100);
    assert!(zshield(&["verify-golden", card.to_str().unwrap()])
        .status
        .success());

    // One in a used block of the root is found, and named.
    let range = &root.ranges[root.ranges.len() / 2];
    let at = root.offset + range.block * 4096 + 4096 + 7;
    flip_byte(&card, at);
    let before = std::fs::read(&card).unwrap();
    let bad = zshield(&["verify-golden", card.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("zshield: error: "), "{err}");
    assert!(err.contains("replace the CompactFlash card"), "{err}");
    let start = root.offset + range.block * 4096;
    assert!(err.contains(&format!("(bytes {start}-")), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(
        std::fs::read(&card).unwrap(),
        before,
        "verify-golden wrote to the card"
    );
}

#[test]
fn a_card_without_a_map_or_a_place_for_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let card = card(dir.path());
    let out = zshield(&["verify-golden", card.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no readable block map on partition 3"));

    // No reserved partition: the map has nowhere to go.
    sh(&format!(
        "printf 'label: dos\\nstart=2048,size=32768,type=83\\nstart=34816,size=65536,type=83\\n' | sfdisk --quiet {}",
        card.display()
    ));
    let out = zshield(&["golden-map", card.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has no reserved partition (type 0xda)"),
        "{err}"
    );
}

#[test]
fn a_signed_map_names_its_key_and_another_key_or_none_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let card = card(dir.path());
    let d = dir.path().display();
    sh(&format!(
        "cd {d} && mkdir vendor other && minisign -G -W -p vendor/v.pub -s v.key >/dev/null \
         && minisign -G -W -p other/o.pub -s o.key >/dev/null"
    ));
    let path = card.to_str().unwrap();
    let keys = |name: &str| format!("{d}/{name}");
    let verify = |keys: &str| zshield(&["verify-golden", "--keys", keys, path]);
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    assert!(zshield(&["golden-map", path]).status.success());
    let unsigned = verify(&keys("vendor"));
    assert!(!unsigned.status.success());
    assert!(
        stderr(&unsigned).contains("its block map is not signed"),
        "{}",
        stderr(&unsigned)
    );

    let key = format!("{d}/v.key");
    let made = zshield(&["golden-map", "--sign-with", &key, path]);
    assert!(made.status.success(), "{}", stderr(&made));
    let ok = verify(&keys("vendor"));
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        stderr(&ok).contains("its block map is signed with"),
        "{}",
        stderr(&ok)
    );
    let other = verify(&keys("other"));
    assert!(!other.status.success());
    assert!(
        stderr(&other)
            .contains("its block map is signed with a key that is not among the vendor's keys"),
        "{}",
        stderr(&other)
    );
    // The map made again (as a forger would for a changed card) leaves no
    // old signature behind it.
    assert!(zshield(&["golden-map", path]).status.success());
    assert!(stderr(&verify(&keys("vendor"))).contains("its block map is not signed"));
}

/// Mounts `image` read-only for as long as it lives.
struct Mounted(tempfile::TempDir);

impl Mounted {
    fn new(image: &Path) -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        sh(&format!(
            "mount -o loop,ro {} {}",
            image.display(),
            dir.path().display()
        ));
        Mounted(dir)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_block_copy_is_the_golden_with_its_own_name_grown_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let card = card(dir.path());
    assert!(zshield(&["golden-map", card.to_str().unwrap()])
        .status
        .success());
    let map = blockmap::load(&card).unwrap().filesystems.remove(1);
    let golden = dir.path().join("root.img");
    let copy = dir.path().join("lv-root.img");
    sh(&format!("truncate -s 96M {}", copy.display()));
    let uuid = "0b5e8c41-6f0a-4f3e-9d7a-0123456789ab";

    let copy_golden = || {
        copy_blocks(
            golden.to_str().unwrap(),
            copy.to_str().unwrap(),
            &map,
            uuid,
            "lv-root",
            Digests::Check,
        )
    };
    let stats = copy_golden().unwrap();
    assert_eq!(stats.bytes, map.used_bytes());
    let probe = |what: &str| {
        let out = Command::new("blkid")
            .args(["-p", "-o", "value", "-s", what])
            .arg(&copy)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(probe("UUID"), uuid);
    assert_eq!(probe("LABEL"), "lv-root");
    let blocks = Command::new("dumpe2fs")
        .args(["-h"])
        .arg(&copy)
        .output()
        .unwrap();
    let blocks = String::from_utf8_lossy(&blocks.stdout).to_string();
    assert!(
        blocks.contains(&format!("Block count:              {}", 96 * MIB / 4096)),
        "{blocks}"
    );

    // File by file the same: contents, modes, owners, times, hard links,
    // ACLs, capabilities, holes (rsync lists any difference it would carry).
    let (a, b) = (Mounted::new(&golden), Mounted::new(&copy));
    let diff = Command::new("rsync")
        .args([
            "-naHAXSc",
            "--numeric-ids",
            "--itemize-changes",
            "--exclude=/lost+found",
        ])
        .arg(format!("{}/", a.0.path().display()))
        .arg(format!("{}/", b.0.path().display()))
        .output()
        .unwrap();
    assert!(diff.status.success());
    assert_eq!(
        String::from_utf8_lossy(&diff.stdout),
        "",
        "the copy differs from the golden"
    );
    drop((a, b));

    // A damaged golden: the range is refused before it is written.
    let range = &map.ranges[map.ranges.len() / 2];
    flip_byte(&golden, range.block * 4096 + 11);
    let err = copy_golden().unwrap_err().to_string();
    assert!(err.contains("replace the CompactFlash card"), "{err}");
    assert!(err.contains(&format!("blocks {}-", range.block)), "{err}");
}
