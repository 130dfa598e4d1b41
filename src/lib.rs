//! zshield: factory reset, rollback and backup of an appliance's disk.
//!
//! Pure parts (command line, config, planning, fstab, LVM reports) are kept
//! apart from the effectful ones (commands, block devices, LVM, mounts, copy,
//! bootloader), so that a plan can be printed and tested without a disk.

pub mod cmdline;
pub mod config;
pub mod content;
pub mod fstab;
pub mod lvm_report;
pub mod plan;
pub mod units;
