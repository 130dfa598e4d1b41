//! Upgrade bundles: one file, a ustar archive of exactly three members in
//! this order: `bundle.toml` (what the bundle is), `bundle.toml.minisig` (its
//! minisign signature, made with the vendor's key) and `data.tar` (the
//! `data/` tree). The signed metadata carries the payload's size and SHA-256,
//! so the one signature covers every byte. Nothing of a bundle is parsed
//! before its signature is checked but the archive's own headers, read here
//! (no tar program ever sees an unverified byte).

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::signing::{self, Keys};

pub const METADATA: &str = "bundle.toml";
pub const SIGNATURE: &str = "bundle.toml.minisig";
pub const PAYLOAD: &str = "data.tar";

const BLOCK: u64 = 512;
/// Larger metadata or signature files are not ours.
const SMALL: u64 = 64 * 1024;

/// A version: numbers separated by dots, compared number by number
/// (`2.10` is newer than `2.9`; `2.1` and `2.1.0` are the same).
#[derive(Debug, Clone, Eq)]
pub struct Version(Vec<u64>);

impl Version {
    pub fn parse(text: &str) -> Result<Version, String> {
        let number = |n: &str| {
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse().ok())
                .flatten()
        };
        text.split('.')
            .map(number)
            .collect::<Option<Vec<u64>>>()
            .map(Version)
            .ok_or_else(|| {
                format!("invalid version {text:?}: write numbers separated by dots, such as 2.1.0")
            })
    }

    fn significant(&self) -> &[u64] {
        let end = self.0.iter().rposition(|n| *n != 0).map_or(0, |i| i + 1);
        &self.0[..end]
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.significant() == other.significant()
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> std::cmp::Ordering {
        self.significant().cmp(other.significant())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// `bundle.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// What is upgraded, such as `acme-firmware`: also part of the restore
    /// point's name, so LVM's characters only.
    pub name: String,
    pub version: String,
    /// `uname -m` names (`x86_64`, `aarch64`) of the machines it is for.
    pub architectures: Vec<String>,
    /// The oldest zshield that can apply it.
    pub min_zshield: String,
    pub payload_size: u64,
    pub payload_sha256: String,
}

impl Metadata {
    pub fn parse(text: &str) -> Result<Metadata, String> {
        let meta: Metadata =
            toml::from_str(text).map_err(|e| format!("its {METADATA} is not valid: {e}"))?;
        crate::points::check_name(&meta.name)
            .map_err(|e| format!("its {METADATA} names it badly: {e}"))?;
        Version::parse(&meta.version).map_err(|e| format!("its {METADATA}: {e}"))?;
        Version::parse(&meta.min_zshield).map_err(|e| format!("its {METADATA}: {e}"))?;
        if meta.payload_sha256.len() != 64
            || !meta.payload_sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(format!("its {METADATA} has no valid payload_sha256"));
        }
        Ok(meta)
    }

    pub fn version(&self) -> Version {
        Version::parse(&self.version).expect("checked when parsed")
    }

    /// The named restore point an upgrade to it takes first.
    pub fn point_name(&self) -> String {
        format!("upgrade-{}-{}", self.name, self.version)
    }
}

impl fmt::Display for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// One member of the archive: where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The members of a ustar archive, read from its headers: regular files
/// only, each header's checksum right.
pub fn members(file: &mut (impl Read + Seek)) -> Result<Vec<Member>, String> {
    let mut found = Vec::new();
    let mut offset = 0u64;
    let mut header = [0u8; BLOCK as usize];
    loop {
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut header))
            .map_err(|_| "it is not a bundle: its archive ends early".to_string())?;
        if header.iter().all(|b| *b == 0) {
            return Ok(found);
        }
        let stored = octal(&header[148..156]).ok_or("it is not a bundle (not a tar archive)")?;
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if sum != stored || &header[257..262] != b"ustar" {
            return Err("it is not a bundle (not a tar archive, or a damaged one)".into());
        }
        let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&header[..name_end]).into_owned();
        if !matches!(header[156], b'0' | 0) {
            return Err(format!(
                "it is not a bundle: its member {name:?} is not a plain file"
            ));
        }
        let size =
            octal(&header[124..136]).ok_or("it is not a bundle: a member's size is unreadable")?;
        found.push(Member {
            name,
            offset: offset + BLOCK,
            size,
        });
        offset += BLOCK + size.div_ceil(BLOCK) * BLOCK;
    }
}

/// A bundle whose signature and metadata were checked; its payload is
/// checked as it is copied out ([`Verified::copy_payload`]).
#[derive(Debug)]
pub struct Verified {
    pub path: PathBuf,
    pub meta: Metadata,
    /// The key file that made the signature.
    pub key: PathBuf,
    pub signed_comment: String,
    payload: Member,
}

fn read_member(file: &mut File, member: &Member) -> Result<String, String> {
    if member.size > SMALL {
        return Err(format!(
            "it is not a bundle: its {} is too large",
            member.name
        ));
    }
    let mut text = vec![0u8; member.size as usize];
    file.seek(SeekFrom::Start(member.offset))
        .and_then(|_| file.read_exact(&mut text))
        .map_err(|e| format!("cannot read its {}: {e}", member.name))?;
    String::from_utf8(text).map_err(|_| format!("its {} is not text", member.name))
}

/// Checks that one of `keys` signed the bundle at `path` and that its
/// metadata is whole, reading nothing else of it.
pub fn verify(path: &Path, keys: &Keys) -> Result<Verified, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let found = members(&mut file)?;
    let names: Vec<&str> = found.iter().map(|m| m.name.as_str()).collect();
    if names != [METADATA, SIGNATURE, PAYLOAD] {
        return Err(format!(
            "it is not a bundle: it holds {names:?}, not {METADATA}, {SIGNATURE} and {PAYLOAD} in that order"
        ));
    }
    let text = read_member(&mut file, &found[0])?;
    let signature = read_member(&mut file, &found[1])?;
    let (key, signed_comment) =
        signing::verify(text.as_bytes(), &signature, keys).map_err(|e| format!("it is {e}"))?;
    let meta = Metadata::parse(&text)?;
    if meta.payload_size != found[2].size {
        return Err(format!(
            "its {PAYLOAD} is {} bytes, not the {} its signed metadata names: the bundle was changed",
            found[2].size, meta.payload_size
        ));
    }
    Ok(Verified {
        path: path.to_path_buf(),
        meta,
        key,
        signed_comment,
        payload: found[2].clone(),
    })
}

/// Why a verified bundle cannot be applied here, if it cannot.
pub fn applicable(
    meta: &Metadata,
    arch: &str,
    zshield: &Version,
    installed: Option<&Version>,
    allow_downgrade: bool,
) -> Result<(), String> {
    if !meta.architectures.iter().any(|a| a == arch) {
        return Err(format!(
            "it is for {}, not for this machine ({arch})",
            meta.architectures.join(", ")
        ));
    }
    let needs = Version::parse(&meta.min_zshield)?;
    if needs > *zshield {
        return Err(format!(
            "it needs zshield {needs} or newer; this is zshield {zshield}"
        ));
    }
    if let Some(installed) = installed {
        let version = meta.version();
        if version <= *installed && !allow_downgrade {
            return Err(format!(
                "{} {installed} is installed, and {version} is not newer: pass --allow-downgrade to go back (or to apply it again)",
                meta.name
            ));
        }
    }
    Ok(())
}

impl Verified {
    pub fn payload_size(&self) -> u64 {
        self.payload.size
    }

    /// Copies the payload to `to`, checking its SHA-256 against the signed
    /// one; `to` is removed when it does not match.
    pub fn copy_payload(&self, to: &Path) -> Result<(), String> {
        let copy = || -> std::io::Result<String> {
            let mut file = File::open(&self.path)?;
            file.seek(SeekFrom::Start(self.payload.offset))?;
            let mut from = file.take(self.payload.size);
            let mut out = File::create(to)?;
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut copied = 0u64;
            loop {
                let n = from.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                copied += n as u64;
            }
            if copied != self.payload.size {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the bundle ends early",
                ));
            }
            out.sync_all()?;
            Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
        };
        let result = match copy() {
            Ok(digest) if digest.eq_ignore_ascii_case(&self.meta.payload_sha256) => Ok(()),
            Ok(_) => Err(format!(
                "its {PAYLOAD} does not match the SHA-256 its signed metadata names: the bundle was changed after it was signed"
            )),
            Err(e) => Err(format!("cannot copy its {PAYLOAD} to {}: {e}", to.display())),
        };
        if result.is_err() {
            let _ = std::fs::remove_file(to);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_number_by_number() {
        let v = |t: &str| Version::parse(t).unwrap();
        assert!(v("2.10") > v("2.9"));
        assert_eq!(v("2.1"), v("2.1.0"));
        assert!(v("1.0.1") > v("1"));
        assert_eq!(v("02.1").to_string(), "2.1");
        for bad in ["", "2.", ".1", "2.x", "-1", "1..2", "1 .2"] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn meta() -> Metadata {
        Metadata::parse(&format!(
            "name = \"acme\"\nversion = \"2.1.0\"\narchitectures = [\"x86_64\"]\nmin_zshield = \"0.1\"\npayload_size = 10240\npayload_sha256 = \"{}\"\n",
            "ab".repeat(32)
        ))
        .unwrap()
    }

    #[test]
    fn metadata_is_checked_when_read() {
        let m = meta();
        assert_eq!(m.point_name(), "upgrade-acme-2.1.0");
        let text = toml::to_string(&m).unwrap();
        assert_eq!(Metadata::parse(&text).unwrap(), m);
        for (from, to) in [
            ("name = \"acme\"", "name = \"daily-x\""),
            ("name = \"acme\"", "name = \"a b\""),
            ("version = \"2.1.0\"", "version = \"2.1-rc1\""),
            ("payload_sha256 = \"ab", "payload_sha256 = \"zz"),
            ("min_zshield", "oldest_zshield"),
        ] {
            assert!(Metadata::parse(&text.replace(from, to)).is_err(), "{to}");
        }
    }

    #[test]
    fn a_bundle_applies_to_its_architecture_and_newer_versions_only() {
        let m = meta();
        let v = |t: &str| Version::parse(t).unwrap();
        let here = v("0.1.0");
        assert_eq!(applicable(&m, "x86_64", &here, None, false), Ok(()));
        assert_eq!(
            applicable(&m, "x86_64", &here, Some(&v("2.0.9")), false),
            Ok(())
        );
        let arch = applicable(&m, "aarch64", &here, None, false).unwrap_err();
        assert!(arch.contains("not for this machine (aarch64)"), "{arch}");
        let old = applicable(&m, "x86_64", &v("0.0.9"), None, false).unwrap_err();
        assert!(old.contains("needs zshield 0.1 or newer"), "{old}");
        let down = applicable(&m, "x86_64", &here, Some(&v("2.2")), false).unwrap_err();
        assert!(down.contains("--allow-downgrade"), "{down}");
        assert!(applicable(&m, "x86_64", &here, Some(&v("2.1")), false).is_err());
        assert_eq!(
            applicable(&m, "x86_64", &here, Some(&v("2.2")), true),
            Ok(())
        );
    }

    #[test]
    fn members_are_read_from_ustar_headers() {
        fn header(name: &str, size: u64) -> Vec<u8> {
            let mut h = vec![0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            h
        }
        let mut archive = header("a", 3);
        archive.extend(b"abc");
        archive.resize(1024, 0);
        archive.extend(header("b", 0));
        archive.extend(vec![0u8; 1024]);
        let found = members(&mut std::io::Cursor::new(&archive)).unwrap();
        assert_eq!(
            found,
            [
                Member {
                    name: "a".into(),
                    offset: 512,
                    size: 3
                },
                Member {
                    name: "b".into(),
                    offset: 1536,
                    size: 0
                }
            ]
        );
        let mut damaged = archive.clone();
        damaged[1] = b'x';
        assert!(members(&mut std::io::Cursor::new(&damaged)).is_err());
        assert!(members(&mut std::io::Cursor::new(&archive[..1024])).is_err());
    }
}
