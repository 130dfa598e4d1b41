//! Host tests of upgrade bundles as a vendor makes them (scripts/zshield-bundle,
//! with Debian's minisign) and as `zshield upgrade` checks them before it
//! changes anything. Needs minisign and tar; no loop device.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use zshield::bundle::{self, Version};

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

struct Vendor {
    dir: tempfile::TempDir,
}

impl Vendor {
    /// A key pair (`NAME.key`, `keys-NAME/NAME.pub`) and a data/ tree.
    fn new() -> Vendor {
        let vendor = Vendor {
            dir: tempfile::tempdir().unwrap(),
        };
        for name in ["vendor", "other"] {
            sh(&format!(
                "cd {d} && mkdir keys-{name} && minisign -G -W -p keys-{name}/{name}.pub -s {name}.key >/dev/null",
                d = vendor.path().display()
            ));
        }
        sh(&format!(
            "cd {d} && mkdir -p data/files data/hooks data/upgrade/web/2.1 && echo hello >data/files/motd \
             && printf '[[GENERIC]]\\nmotd /etc/motd 0644 root:root\\n' >data/files.install \
             && printf '#!/bin/sh\\necho hook\\n' >data/hooks/10_hello.sh && chmod 755 data/hooks/10_hello.sh \
             && printf '#!/bin/sh\\necho upgrade\\n' >data/upgrade/web/2.1/upgrade.sh && chmod 755 data/upgrade/web/2.1/upgrade.sh",
            d = vendor.path().display()
        ));
        vendor
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn keys(&self, name: &str) -> zshield::signing::Keys {
        zshield::signing::keys(&self.path().join(format!("keys-{name}"))).unwrap()
    }

    /// A bundle of the data/ tree, signed with `key`.
    fn bundle(&self, file: &str, key: &str, version: &str, arch: &str) -> PathBuf {
        let out = self.path().join(file);
        sh(&format!(
            "{script} --key {d}/{key}.key --name acme --version {version} --arch {arch} {d}/data {out}",
            script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/zshield-bundle"),
            d = self.path().display(),
            out = out.display()
        ));
        out
    }
}

/// Overwrites `file` with `bytes` at `at`.
fn write_at(file: &Path, at: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all_at(bytes, at).unwrap();
}

/// The offset of `needle` in `file`.
fn find(file: &Path, needle: &[u8]) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap() as u64
}

#[test]
fn a_signed_bundle_is_verified_and_its_payload_copied() {
    let v = Vendor::new();
    let path = v.bundle("good.zsb", "vendor", "2.1", "x86_64");
    let verified = bundle::verify(&path, &v.keys("vendor")).unwrap();
    assert_eq!(verified.meta.name, "acme");
    assert_eq!(verified.meta.version, "2.1");
    assert!(verified.key.ends_with("vendor.pub"));
    let here = Version::parse(env!("CARGO_PKG_VERSION")).unwrap();
    assert_eq!(
        bundle::applicable(&verified.meta, "x86_64", &here, None, false),
        Ok(())
    );
    let copy = v.path().join("data.tar");
    verified.copy_payload(&copy).unwrap();
    let listing = Command::new("tar").arg("-tf").arg(&copy).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("./files/motd"), "{listing}");
    assert!(
        listing.contains("./upgrade/web/2.1/upgrade.sh"),
        "{listing}"
    );
}

#[test]
fn a_tampered_payload_is_refused_when_copied() {
    let v = Vendor::new();
    let path = v.bundle("tampered.zsb", "vendor", "2.1", "x86_64");
    // A byte of motd's content in data.tar, the last member.
    write_at(&path, find(&path, b"hello\n"), b"j");
    let verified = bundle::verify(&path, &v.keys("vendor")).unwrap();
    let copy = v.path().join("data.tar");
    let error = verified.copy_payload(&copy).unwrap_err();
    assert!(error.contains("does not match the SHA-256"), "{error}");
    assert!(
        !copy.exists(),
        "a payload that does not match is not left behind"
    );
}

#[test]
fn a_changed_metadata_byte_is_a_bad_signature() {
    let v = Vendor::new();
    let path = v.bundle("meta.zsb", "vendor", "2.1", "x86_64");
    write_at(
        &path,
        find(&path, b"version = \"2.1\""),
        b"version = \"9.1\"",
    );
    let error = bundle::verify(&path, &v.keys("vendor")).unwrap_err();
    assert!(
        error.ends_with("changed after it was signed (bad signature)"),
        "{error}"
    );
    // The signed comment is covered by the signature too.
    let other = v.bundle("comment.zsb", "vendor", "2.1", "x86_64");
    write_at(&other, find(&other, b"trusted comment: zshield") + 17, b"Z");
    let error = bundle::verify(&other, &v.keys("vendor")).unwrap_err();
    assert!(error.contains("(bad signature)"), "{error}");
}

#[test]
fn a_bundle_signed_by_another_key_is_refused_by_the_command() {
    let v = Vendor::new();
    let path = v.bundle("other.zsb", "other", "2.1", "x86_64");
    let error = bundle::verify(&path, &v.keys("vendor")).unwrap_err();
    assert!(error.contains("not among the vendor's keys"), "{error}");
    let keys = v.path().join("keys-vendor");
    let out = zshield(&[
        "upgrade",
        "--dry-run",
        "--keys",
        keys.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("zshield: error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    assert!(
        line.contains("is refused: it is signed with a key that is not among the vendor's keys")
            && line.ends_with("nothing was changed"),
        "{line}"
    );
    let none = v.path().join("no-keys");
    std::fs::create_dir(&none).unwrap();
    assert!(zshield::signing::keys(&none)
        .unwrap_err()
        .contains("no vendor key"));
}

#[test]
fn another_architecture_and_older_versions_are_refused() {
    let v = Vendor::new();
    let here = Version::parse(env!("CARGO_PKG_VERSION")).unwrap();
    let arm = v.bundle("arm.zsb", "vendor", "2.1", "aarch64");
    let meta = bundle::verify(&arm, &v.keys("vendor")).unwrap().meta;
    let error = bundle::applicable(&meta, "x86_64", &here, None, false).unwrap_err();
    assert!(
        error.contains("it is for aarch64, not for this machine (x86_64)"),
        "{error}"
    );

    let old = v.bundle("old.zsb", "vendor", "2.0.9", "x86_64");
    let meta = bundle::verify(&old, &v.keys("vendor")).unwrap().meta;
    let installed = Version::parse("2.1").unwrap();
    let error = bundle::applicable(&meta, "x86_64", &here, Some(&installed), false).unwrap_err();
    assert!(
        error.contains("acme 2.1 is installed, and 2.0.9 is not newer"),
        "{error}"
    );
    assert_eq!(
        bundle::applicable(&meta, "x86_64", &here, Some(&installed), true),
        Ok(())
    );
}

#[test]
fn a_file_that_is_not_a_bundle_is_refused() {
    let v = Vendor::new();
    let plain = v.path().join("plain.tar");
    sh(&format!(
        "tar --format=ustar -cf {} -C {} data",
        plain.display(),
        v.path().display()
    ));
    let error = bundle::verify(&plain, &v.keys("vendor")).unwrap_err();
    assert!(error.starts_with("it is not a bundle"), "{error}");
    let random = v.path().join("random");
    sh(&format!("head -c 4096 /dev/urandom >{}", random.display()));
    let error = bundle::verify(&random, &v.keys("vendor")).unwrap_err();
    assert!(error.contains("not a bundle"), "{error}");
}

#[test]
fn at_image_time_the_manifest_goes_into_the_root_and_no_script_runs() {
    let v = Vendor::new();
    let path = v.bundle("image.zsb", "vendor", "2.1", "x86_64");
    let root = v.path().join("root");
    sh(&format!(
        "mkdir -p {r}/etc && echo 'root:x:0:0:root:/root:/bin/sh' >{r}/etc/passwd && echo 'root:x:0:' >{r}/etc/group",
        r = root.display()
    ));
    let keys = v.path().join("keys-vendor");
    let apply = || {
        zshield(&[
            "upgrade",
            "--image",
            root.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
    };
    let out = apply();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/motd")).unwrap(),
        "hello\n"
    );
    let record = std::fs::read_to_string(root.join("var/lib/zshield/bundles/acme.toml")).unwrap();
    assert!(record.contains("version = \"2.1\""), "{record}");
    assert!(
        stderr.contains("at image time, not: run the hook hooks/10_hello.sh"),
        "{stderr}"
    );
    assert!(!root.join("var/lib/zshield/upgrade").exists());
    // The same version again is not newer.
    let again = apply();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not newer"));

    // A tampered payload leaves nothing behind, not even its unpacking place.
    let tampered = v.bundle("tampered.zsb", "vendor", "2.2", "x86_64");
    write_at(&tampered, find(&tampered, b"hello\n"), b"j");
    let out = zshield(&[
        "upgrade",
        "--image",
        root.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        tampered.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match the SHA-256"));
    assert!(!root.join("var/lib/zshield/upgrade").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/motd")).unwrap(),
        "hello\n"
    );
}
