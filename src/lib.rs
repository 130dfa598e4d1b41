//! zshield: factory reset, rollback and backup of an appliance's disk.
//!
//! The folders are the layers, and every import points down:
//! - `recovery/`: the engine of both recoveries (request, probe, plan, steps,
//!   one executor, report); the factory reset and the rollback on top of it;
//! - `upgrade`, `backup`, `status`: the commands of the running system
//!   (`upgrade` on top of `backup`; `bundle`, the signed bundles, below);
//! - `target/`: what is put on the target (copy, bootloader, provisioning);
//! - `lvm/`: LVM's command line and its typed reports;
//! - `disk/`: block devices, what a disk holds, mounts, the golden;
//! - `layout`: the on-disk contract every mode shares;
//! - at the bottom, pure parts and plumbing: `cmdline`, `config`, `fstab`,
//!   `units`, `accounts`, `runner` (the one command runner), `logging`,
//!   `events` (the log that outlives resets), `failpoint`, `inroot` (paths
//!   of a root tree as that system sees them).

pub mod accounts;
pub mod backup;
pub mod bundle;
pub mod cmdline;
pub mod config;
pub mod deadline;
pub mod disk;
pub mod events;
pub mod failpoint;
#[cfg(test)]
mod fixtures;
pub mod fstab;
pub mod health;
pub mod inroot;
pub mod layout;
pub mod logging;
pub mod lvm;
pub mod points;
pub mod recovery;
pub mod runner;
pub mod signing;
pub mod status;
pub mod target;
pub mod units;
pub mod upgrade;
