//! zshield: factory reset, rollback and backup of an appliance's disk.
//!
//! Pure parts (command line, config, planning, fstab, LVM reports, disk
//! content) are kept apart from the effectful ones (commands, block devices,
//! LVM, mounts, copy, bootloader), so that a plan can be printed and tested
//! without a disk.

pub mod backup;
pub mod blockdev;
pub mod bootloader;
pub mod cmdline;
pub mod config;
pub mod content;
pub mod copy;
pub mod fstab;
pub mod golden;
pub mod lvm;
pub mod lvm_report;
pub mod mounts;
pub mod plan;
pub mod probe;
pub mod provision;
pub mod recover;
pub mod report;
pub mod rollback;
pub mod runner;
pub mod status;
pub mod units;
