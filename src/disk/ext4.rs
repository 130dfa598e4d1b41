//! The ext2/3/4 superblock fields a block copy changes: a copy of the golden
//! must never be found under the golden's UUID or label, so its primary
//! superblock gets its own before it is written.

use anyhow::{ensure, Context, Result};

/// Where the primary superblock is, from the start of the file system.
pub const SUPERBLOCK_OFFSET: usize = 1024;
const SUPERBLOCK_SIZE: usize = 1024;

const MAGIC: usize = 0x38;
const FEATURE_INCOMPAT: usize = 0x60;
const FEATURE_RO_COMPAT: usize = 0x64;
const UUID: usize = 0x68;
const VOLUME_NAME: usize = 0x78;
const CHECKSUM: usize = 0x3fc;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;

fn le32(sb: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(sb[at..at + 4].try_into().expect("4 bytes"))
}

/// Whether a file system with this superblock can take a new UUID by its
/// superblock alone: without metadata checksums, or with their seed stored
/// (`metadata_csum_seed`); otherwise every checksum depends on the UUID.
pub fn can_take_new_uuid(sb: &[u8]) -> bool {
    le32(sb, FEATURE_RO_COMPAT) & RO_COMPAT_METADATA_CSUM == 0
        || le32(sb, FEATURE_INCOMPAT) & INCOMPAT_CSUM_SEED != 0
}

/// Gives the superblock `sb` (its 1 KiB) the UUID `uuid` and the label
/// `label`, and its checksum again when it has one.
pub fn rename(sb: &mut [u8], uuid: &str, label: &str) -> Result<()> {
    ensure!(
        sb.len() == SUPERBLOCK_SIZE && sb[MAGIC..MAGIC + 2] == [0x53, 0xef],
        "not an ext2/3/4 superblock"
    );
    ensure!(
        can_take_new_uuid(sb),
        "the file system has metadata checksums without metadata_csum_seed: its UUID cannot change in its superblock alone"
    );
    ensure!(label.len() <= 16, "label {label} is longer than 16 bytes");
    let uuid = uuid::Uuid::parse_str(uuid).with_context(|| format!("bad UUID {uuid}"))?;
    sb[UUID..UUID + 16].copy_from_slice(uuid.as_bytes());
    sb[VOLUME_NAME..VOLUME_NAME + 16].fill(0);
    sb[VOLUME_NAME..VOLUME_NAME + label.len()].copy_from_slice(label.as_bytes());
    if le32(sb, FEATURE_RO_COMPAT) & RO_COMPAT_METADATA_CSUM != 0 {
        let checksum = checksum(&sb[..CHECKSUM]);
        sb[CHECKSUM..].copy_from_slice(&checksum.to_le_bytes());
    }
    Ok(())
}

/// ext4's superblock checksum: CRC-32C from all ones, without the final
/// inversion of the standard CRC-32C.
fn checksum(bytes: &[u8]) -> u32 {
    !crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn superblock(ro_compat: u32, incompat: u32) -> Vec<u8> {
        let mut sb = vec![0u8; SUPERBLOCK_SIZE];
        sb[MAGIC..MAGIC + 2].copy_from_slice(&[0x53, 0xef]);
        sb[FEATURE_RO_COMPAT..FEATURE_RO_COMPAT + 4].copy_from_slice(&ro_compat.to_le_bytes());
        sb[FEATURE_INCOMPAT..FEATURE_INCOMPAT + 4].copy_from_slice(&incompat.to_le_bytes());
        sb[VOLUME_NAME..VOLUME_NAME + 11].copy_from_slice(b"golden-root");
        sb
    }

    #[test]
    fn a_copy_takes_its_own_uuid_label_and_checksum() {
        let mut sb = superblock(RO_COMPAT_METADATA_CSUM, INCOMPAT_CSUM_SEED);
        rename(&mut sb, "0b5e8c41-6f0a-4f3e-9d7a-0123456789ab", "lv-root").unwrap();
        assert_eq!(sb[UUID], 0x0b);
        assert_eq!(sb[UUID + 15], 0xab);
        assert_eq!(&sb[VOLUME_NAME..VOLUME_NAME + 8], b"lv-root\0");
        assert_eq!(le32(&sb, CHECKSUM), checksum(&sb[..CHECKSUM]));
        // The standard CRC-32C check value, inverted as ext4 stores it.
        assert_eq!(checksum(b"123456789"), !0xe306_9283);
    }

    #[test]
    fn checksums_tied_to_the_uuid_cannot_follow_it() {
        let mut sb = superblock(RO_COMPAT_METADATA_CSUM, 0);
        assert!(!can_take_new_uuid(&sb));
        assert!(rename(&mut sb, "0b5e8c41-6f0a-4f3e-9d7a-0123456789ab", "lv-root").is_err());
        let mut plain = superblock(0, 0);
        rename(
            &mut plain,
            "0b5e8c41-6f0a-4f3e-9d7a-0123456789ab",
            "lv-root",
        )
        .unwrap();
        assert_eq!(
            le32(&plain, CHECKSUM),
            0,
            "no checksum where there was none"
        );
        assert!(rename(
            &mut vec![0; SUPERBLOCK_SIZE],
            "0b5e8c41-6f0a-4f3e-9d7a-0123456789ab",
            "x"
        )
        .is_err());
    }
}
