//! Disks: block devices and their partition tables, what a disk holds,
//! mounts, and the golden card.

pub mod blockdev;
pub mod blockmap;
pub mod content;
pub mod ext4;
pub mod golden;
pub mod gpt_copies;
pub mod identity;
pub mod mounts;
pub mod partition;
pub mod signatures;
