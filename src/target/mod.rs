//! The system zshield puts on the target: the golden copied onto it, its
//! bootloader, and the vendor's per-unit provisioning.

pub mod bootentry;
pub mod bootloader;
pub mod copy;
pub mod provision;
