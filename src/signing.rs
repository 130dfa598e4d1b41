//! The vendor's signatures: minisign (Ed25519) signatures made with the
//! vendor's secret key, checked against the public keys the image carries.
//! Upgrade bundles and the golden card's block map are signed so.

use std::fmt;
use std::path::{Path, PathBuf};

/// The vendor's minisign public keys (`*.pub`), put there by the image
/// builder (`make image VENDOR_KEYS=DIR`), copied into the initramfs.
pub const KEYS_DIR: &str = "/etc/zshield/keys";

/// Public keys and the files they came from.
pub type Keys = Vec<(PathBuf, minisign_verify::PublicKey)>;

/// The public keys in `dir`: every `*.pub`, in name order; at least one.
pub fn keys(dir: &Path) -> Result<Keys, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the vendor's keys in {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    paths.sort();
    let mut keys = Vec::new();
    for path in paths {
        let key = minisign_verify::PublicKey::from_file(&path)
            .map_err(|e| format!("{} is not a minisign public key: {e}", path.display()))?;
        keys.push((path, key));
    }
    if keys.is_empty() {
        return Err(format!(
            "there is no vendor key (*.pub) in {}: nothing signed can be trusted",
            dir.display()
        ));
    }
    Ok(keys)
}

/// Why a signature does not check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Not a minisign signature (or a legacy, not prehashed, one).
    Unreadable(String),
    /// Made with none of the keys (which are named).
    UnknownKey(String),
    /// Made with one of the keys, over other bytes.
    Bad,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Unreadable(e) => write!(f, "not a minisign signature: {e}"),
            Mismatch::UnknownKey(keys) => {
                write!(
                    f,
                    "signed with a key that is not among the vendor's keys ({keys})"
                )
            }
            Mismatch::Bad => f.write_str("signed, but changed after it was signed (bad signature)"),
        }
    }
}

/// Which of `keys` signed `bytes` with `signature` (a `.minisig` file's
/// text), and the signature's signed comment.
pub fn verify(bytes: &[u8], signature: &str, keys: &Keys) -> Result<(PathBuf, String), Mismatch> {
    let signature = minisign_verify::Signature::decode(signature)
        .map_err(|e| Mismatch::Unreadable(e.to_string()))?;
    let mut key_matched = false;
    for (path, key) in keys {
        match key.verify(bytes, &signature, false) {
            Ok(()) => return Ok((path.clone(), signature.trusted_comment().to_string())),
            Err(minisign_verify::Error::UnexpectedKeyId) => {}
            Err(minisign_verify::Error::UnexpectedAlgorithm) => {
                return Err(Mismatch::Unreadable(
                    "a legacy signature: sign with minisign 0.8 or newer".into(),
                ))
            }
            Err(_) => key_matched = true,
        }
    }
    if key_matched {
        return Err(Mismatch::Bad);
    }
    let names: Vec<String> = keys.iter().map(|(p, _)| p.display().to_string()).collect();
    Err(Mismatch::UnknownKey(names.join(", ")))
}

/// Signs `bytes` with the minisign secret key at `key` (Debian's `minisign`;
/// a key without a password, as `minisign -G -W` makes, since nobody types
/// one in a build); returns the signature's text.
pub fn sign(bytes: &[u8], key: &Path, comment: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let dir = tempfile_dir()?;
    let message = dir.join("signed");
    let signature = dir.join("signed.minisig");
    let result = (|| {
        std::fs::write(&message, bytes)?;
        crate::runner::Cmd::new("minisign")
            .arg("-S")
            .arg("-s")
            .arg(key.as_os_str())
            .arg("-m")
            .arg(message.as_os_str())
            .arg("-x")
            .arg(signature.as_os_str())
            .args(["-t", comment])
            .run()?;
        std::fs::read_to_string(&signature).context("minisign wrote no signature")
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A private directory for the files minisign reads and writes.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("zshield-sign-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}
