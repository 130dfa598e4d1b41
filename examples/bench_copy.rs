//! The block copy that `scripts/bench-copy.sh` times: zshield's whole path
//! from the golden root file system to a usable copy (the ranges, a UUID of
//! its own, resize2fs, e2fsck -fn), with or without checking each range.
//!
//! usage: bench_copy CARD FROM TO check|skip
//!   CARD  the card image whose block map lists the golden root
//!   FROM  the golden root file system (a loop device on CARD's partition)
//!   TO    the device to copy it onto

use std::path::Path;

use anyhow::{bail, Context, Result};

use zshield::disk::blockmap::{self, Digests};
use zshield::target::copy::copy_blocks;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, card, from, to, digests] = &args[..] else {
        bail!("usage: bench_copy CARD FROM TO check|skip");
    };
    let digests = match digests.as_str() {
        "check" => Digests::Check,
        "skip" => Digests::Skip,
        other => bail!("{other}: check or skip"),
    };
    let map = blockmap::load(Path::new(card))?
        .filesystems
        .into_iter()
        .find(|fs| fs.label == "golden-root")
        .context("the card's block map has no golden-root")?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let stats = copy_blocks(from, to, &map, &uuid, "lv-root", digests)?;
    println!("{}", serde_json::to_string(&stats)?);
    Ok(())
}
