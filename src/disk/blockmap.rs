//! The golden card's block map: for each golden file system, the ranges of
//! blocks it uses and their SHA-256, made when the image is built and stored
//! on the card's reserved partition. A card is checked (and later copied)
//! range by range against it, as bmaptool does with its `.bmap` files.
//!
//! On the card the map is one header line and its JSON:
//! `ZSHIELD-BLOCKMAP 1 <JSON length> <SHA-256 of the JSON>\n{...}`, at the
//! start of the reserved partition (msdos type 0xda); right after it, when
//! the vendor signed it, `ZSHIELD-BLOCKMAP-SIGNATURE <length>\n` and the
//! minisign signature of those bytes; zeros after that.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::disk::blockdev::ext_identity;
use crate::disk::content::{read_msdos, Table};
use crate::disk::partition::TablePartition;
use crate::logging::Meter;
use crate::runner::Cmd;
use crate::units::{human, MIB};

const MAGIC: &str = "ZSHIELD-BLOCKMAP";
const SIGNATURE_MAGIC: &str = "ZSHIELD-BLOCKMAP-SIGNATURE";
const VERSION: u32 = 1;
/// The msdos type of the card's reserved partition, which holds the map.
const RESERVED_TYPE: &str = "0xda";
/// The longest range hashed as one: short enough to say where a card is
/// damaged, long enough for large sequential reads.
const MAX_RANGE_BYTES: u64 = 4 * MIB;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BlockMap {
    pub filesystems: Vec<FsMap>,
}

/// One ext2/3/4 file system of the card and the blocks it uses.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FsMap {
    pub label: String,
    pub uuid: String,
    /// Its partition on the card, and where that starts, in bytes.
    pub partition: u32,
    pub offset: u64,
    pub block_size: u64,
    /// Its size in blocks.
    pub blocks: u64,
    pub features: Vec<String>,
    pub ranges: Vec<Range>,
}

/// `blocks` blocks from block `block` of a file system, and their SHA-256.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub block: u64,
    pub blocks: u64,
    pub sha256: String,
    /// Every byte of it is zero (a fresh journal, zeroed tables): a copy
    /// writes zeros without reading them from the card.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub zero: bool,
}

impl FsMap {
    pub fn used_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.blocks).sum::<u64>() * self.block_size
    }
}

impl BlockMap {
    pub fn used_bytes(&self) -> u64 {
        self.filesystems.iter().map(FsMap::used_bytes).sum()
    }

    /// The header line and the JSON, as stored on the card.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec_pretty(self).expect("a block map serialises");
        let mut out =
            format!("{MAGIC} {VERSION} {} {}\n", json.len(), sha256_hex(&json)).into_bytes();
        out.extend_from_slice(&json);
        out
    }

    /// Reads a map as [`BlockMap::encode`] wrote it; `bytes` may go on past it.
    pub fn decode(bytes: &[u8]) -> Result<BlockMap> {
        Stored::decode(bytes).map(|stored| stored.map)
    }
}

/// A map as the card stores it: its bytes, and the signature after them.
#[derive(Debug, Clone)]
pub struct Stored {
    pub map: BlockMap,
    /// What the signature covers: the header line and the JSON.
    pub encoded: Vec<u8>,
    /// The minisign signature (a `.minisig` file's text), when signed.
    pub signature: Option<String>,
}

impl Stored {
    fn decode(bytes: &[u8]) -> Result<Stored> {
        let end = bytes
            .iter()
            .take(200)
            .position(|&b| b == b'\n')
            .context("no block map header")?;
        let header = std::str::from_utf8(&bytes[..end]).context("no block map header")?;
        let fields: Vec<&str> = header.split(' ').collect();
        let [magic, version, len, digest] = fields[..] else {
            bail!("no block map header");
        };
        ensure!(magic == MAGIC, "no block map header");
        ensure!(
            version == VERSION.to_string(),
            "block map version {version}, this zshield reads version {VERSION}"
        );
        let len: usize = len.parse().context("bad block map length")?;
        let json = bytes
            .get(end + 1..end + 1 + len)
            .context("the block map is cut short")?;
        ensure!(
            sha256_hex(json) == digest,
            "the block map itself is damaged (its SHA-256 does not match)"
        );
        let map = serde_json::from_slice(json).context("the block map does not parse")?;
        let encoded = bytes[..end + 1 + len].to_vec();
        let signature = signature_after(&bytes[encoded.len()..])?;
        Ok(Stored {
            map,
            encoded,
            signature,
        })
    }
}

impl Stored {
    /// Which of the vendor's `keys` signed this map, or why none did.
    pub fn signed_by(&self, keys: &crate::signing::Keys) -> Result<PathBuf, String> {
        let signature = self.signature.as_deref().ok_or("is not signed")?;
        crate::signing::verify(&self.encoded, signature, keys)
            .map(|(key, _)| key)
            .map_err(|e| format!("is {e}"))
    }
}

/// The signature stored right after a map (`rest` starts there), if any.
fn signature_after(rest: &[u8]) -> Result<Option<String>> {
    if !rest.starts_with(SIGNATURE_MAGIC.as_bytes()) {
        return Ok(None);
    }
    let end = rest
        .iter()
        .take(100)
        .position(|&b| b == b'\n')
        .context("the block map's signature has no header")?;
    let header =
        std::str::from_utf8(&rest[..end]).context("the block map's signature has no header")?;
    let len: usize = header
        .strip_prefix(SIGNATURE_MAGIC)
        .and_then(|l| l.trim().parse().ok())
        .context("the block map's signature has a bad header")?;
    let text = rest
        .get(end + 1..end + 1 + len)
        .context("the block map's signature is cut short")?;
    String::from_utf8(text.to_vec())
        .map(Some)
        .context("the block map's signature is not text")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What `dumpe2fs` says of a file system: its identity and the blocks in use.
#[derive(Debug, PartialEq, Eq)]
pub struct Ext4Usage {
    pub label: String,
    pub uuid: String,
    pub features: Vec<String>,
    pub block_size: u64,
    pub blocks: u64,
    /// `(first block, count)`, sorted, adjacent ones merged.
    pub used: Vec<(u64, u64)>,
}

/// Reads `dumpe2fs` output: the header fields, then each group's block range
/// and its free blocks; everything in a group that is not free is used, and so
/// are the blocks before the first group (the boot block of 1 KiB file systems).
/// e2fsprogs computes the bitmaps of groups never initialised (BLOCK_UNINIT).
pub fn parse_dumpe2fs(text: &str) -> Result<Ext4Usage> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(str::trim))
            .with_context(|| format!("dumpe2fs printed no '{key}'"))
    };
    let number = |key: &str| -> Result<u64> {
        field(key)?
            .parse()
            .with_context(|| format!("dumpe2fs: '{key}' is not a number"))
    };
    let label = match field("Filesystem volume name:")? {
        "<none>" => String::new(),
        l => l.to_string(),
    };
    let mut used: Vec<(u64, u64)> = Vec::new();
    let mut group: Option<(u64, u64)> = None;
    let mut next = 0;
    for line in text.lines() {
        // `Group 3: (Blocks 24577-32768) csum 0x18b9 [ITABLE_ZEROED]`
        if let Some((_, rest)) = line
            .strip_prefix("Group ")
            .and_then(|l| l.split_once(": (Blocks "))
        {
            let range = rest
                .split_once(')')
                .with_context(|| format!("dumpe2fs: unexpected group line '{line}'"))?
                .0;
            group = Some(block_range(range)?);
        } else if let Some(free) = line.trim_start().strip_prefix("Free blocks:") {
            let Some((first, last)) = group.take() else {
                continue; // the header's count of free blocks
            };
            add(&mut used, next, first);
            next = first;
            for part in free.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (start, end) = block_range(part)?;
                ensure!(
                    start >= next && end <= last,
                    "dumpe2fs: free blocks {part} outside their group or out of order"
                );
                add(&mut used, next, start);
                next = end + 1;
            }
            add(&mut used, next, last + 1);
            next = last + 1;
        }
    }
    let blocks = number("Block count:")?;
    ensure!(
        next == blocks,
        "dumpe2fs: the groups end at block {next}, the file system at {blocks}"
    );
    Ok(Ext4Usage {
        label,
        uuid: field("Filesystem UUID:")?.to_string(),
        features: field("Filesystem features:")?
            .split_whitespace()
            .map(String::from)
            .collect(),
        block_size: number("Block size:")?,
        blocks,
        used,
    })
}

/// `12-34` or `12` → `(first, last)`.
fn block_range(text: &str) -> Result<(u64, u64)> {
    let parse = |s: &str| -> Result<u64> {
        s.trim()
            .parse()
            .with_context(|| format!("dumpe2fs: '{text}' is not a block range"))
    };
    match text.split_once('-') {
        Some((a, b)) => Ok((parse(a)?, parse(b)?)),
        None => parse(text).map(|a| (a, a)),
    }
}

/// Adds blocks `[from, to)` to `used`, merged with the last range if they touch.
fn add(used: &mut Vec<(u64, u64)>, from: u64, to: u64) {
    if to <= from {
        return;
    }
    match used.last_mut() {
        Some((start, count)) if *start + *count == from => *count += to - from,
        _ => used.push((from, to - from)),
    }
}

/// `used` cut into pieces of at most `max` blocks.
pub fn split(used: &[(u64, u64)], max: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut start, mut count) in used {
        while count > 0 {
            let n = count.min(max);
            out.push((start, n));
            start += n;
            count -= n;
        }
    }
    out
}

/// A card: a block device or an image file, read with positioned reads.
struct Card {
    name: String,
    file: File,
    partitions: Vec<TablePartition>,
}

impl Card {
    fn open(path: &Path, write: bool) -> Result<Card> {
        let name = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .with_context(|| format!("cannot open {name}"))?;
        let mut head = vec![0; 512];
        file.read_exact_at(&mut head, 0)
            .with_context(|| format!("cannot read {name}"))?;
        let Some(Table::Msdos { partitions, .. }) = read_msdos(&head, 512) else {
            bail!("{name} has no msdos partition table: it is not a golden card");
        };
        Ok(Card {
            name,
            file,
            partitions,
        })
    }

    fn reserved(&self) -> Result<&TablePartition> {
        self.partitions
            .iter()
            .find(|p| p.kind == RESERVED_TYPE)
            .with_context(|| {
                format!(
                    "{} has no reserved partition (type {RESERVED_TYPE}) to hold a block map",
                    self.name
                )
            })
    }

    fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0; len as usize];
        self.file.read_exact_at(&mut buf, offset).with_context(|| {
            format!("cannot read {len} bytes at byte {offset} of {}", self.name)
        })?;
        Ok(buf)
    }
}

/// Maps every ext2/3/4 file system of the card image `path` (from
/// `dumpe2fs`) and stores the map on its reserved partition.
pub fn make(path: &Path) -> Result<BlockMap> {
    ensure!(
        path.metadata()
            .with_context(|| format!("cannot open {}", path.display()))?
            .is_file(),
        "{} is not an image file: a block map is made when the image is built",
        path.display()
    );
    let card = Card::open(path, true)?;
    let mut filesystems = Vec::new();
    for part in &card.partitions {
        if ext_identity(&card.read(part.start + 1024, 1024)?).is_none() {
            continue;
        }
        let text = Cmd::new("dumpe2fs")
            .arg(format!("{}?offset={}", card.name, part.start))
            .run()?;
        let usage = parse_dumpe2fs(&text)
            .with_context(|| format!("partition {} of {}", part.number, card.name))?;
        let max = MAX_RANGE_BYTES / usage.block_size;
        let mut ranges = Vec::new();
        for (block, blocks) in split(&usage.used, max) {
            let bytes = card.read(
                part.start + block * usage.block_size,
                blocks * usage.block_size,
            )?;
            ranges.push(Range {
                block,
                blocks,
                sha256: sha256_hex(&bytes),
                zero: bytes.iter().all(|&b| b == 0),
            });
        }
        let fs = FsMap {
            label: usage.label,
            uuid: usage.uuid,
            partition: part.number,
            offset: part.start,
            block_size: usage.block_size,
            blocks: usage.blocks,
            features: usage.features,
            ranges,
        };
        log::info!(
            "partition {} ({}): {} of {} used, in {} ranges",
            fs.partition,
            fs.label,
            human(fs.used_bytes()),
            human(fs.blocks * fs.block_size),
            fs.ranges.len()
        );
        filesystems.push(fs);
    }
    ensure!(
        !filesystems.is_empty(),
        "{} holds no ext2/3/4 file system to map",
        card.name
    );
    let map = BlockMap { filesystems };
    let encoded = map.encode();
    let reserved = card.reserved()?;
    ensure!(
        encoded.len() as u64 <= reserved.size,
        "the block map ({}) does not fit on the reserved partition ({})",
        human(encoded.len() as u64),
        human(reserved.size)
    );
    // Zeros after the map: nothing of an older, longer one stays behind it.
    let mut area = encoded;
    area.resize(area.len().max(reserved.size.min(MIB) as usize), 0);
    card.file
        .write_all_at(&area, reserved.start)
        .and_then(|()| card.file.sync_all())
        .with_context(|| format!("cannot write the block map onto {}", card.name))?;
    Ok(map)
}

/// The block map stored on the card (or image) at `path`.
pub fn load(path: &Path) -> Result<BlockMap> {
    let card = Card::open(path, false)?;
    load_from(&card).map(|stored| stored.map)
}

/// Stores `signature` (a minisign signature of the map's bytes) after the
/// map on the card image at `path`.
pub fn store_signature(path: &Path, signature: &str) -> Result<()> {
    let card = Card::open(path, true)?;
    let stored = load_from(&card)?;
    let reserved = card.reserved()?;
    let mut bytes = format!("{SIGNATURE_MAGIC} {}\n", signature.len()).into_bytes();
    bytes.extend_from_slice(signature.as_bytes());
    ensure!(
        (stored.encoded.len() + bytes.len()) as u64 <= reserved.size.min(MIB),
        "the block map and its signature do not fit on the reserved partition"
    );
    card.file
        .write_all_at(&bytes, reserved.start + stored.encoded.len() as u64)
        .and_then(|()| card.file.sync_all())
        .with_context(|| format!("cannot write the block map's signature onto {}", card.name))
}

/// The block map of the card at `path` when it carries one: `None` when it
/// has no reserved partition or that partition starts with zeros only (a
/// card made without a map); an error when anything else is there that does
/// not check out as a map (its magic damaged too), or the card cannot be
/// read: a damaged or altered card, never a card without a map.
pub fn load_if_present(path: &Path) -> Result<Option<Stored>> {
    let mut head = vec![0; 512];
    File::open(path)
        .and_then(|f| f.read_exact_at(&mut head, 0))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if read_msdos(&head, 512).is_none() {
        return Ok(None);
    }
    let card = Card::open(path, false)?;
    let Ok(reserved) = card.reserved() else {
        return Ok(None);
    };
    if card
        .read(reserved.start, reserved.size.min(MIB))?
        .iter()
        .all(|&b| b == 0)
    {
        return Ok(None);
    }
    load_from(&card).map(Some)
}

fn load_from(card: &Card) -> Result<Stored> {
    let reserved = card.reserved()?;
    let area = card.read(reserved.start, reserved.size.min(16 * MIB))?;
    Stored::decode(&area).with_context(|| {
        format!(
            "{}: no readable block map on partition {}",
            card.name, reserved.number
        )
    })
}

/// Whether reading a range checks it against its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digests {
    Check,
    /// Only to measure what checking costs (the copy benchmark, and a test
    /// golden's `zshield.test.digests=skip`).
    Skip,
}

/// How many ranges may be on their way between reading, checking and the
/// caller at once (each up to 4 MiB).
const IN_FLIGHT: usize = 6;
/// Threads that check ranges: SHA-256 is most of a copy's CPU time, and the
/// appliances (and the test VMs) have two cores at least.
const CHECKERS: usize = 2;

/// Ranges of one file system read from a card (or any copy of it).
pub struct RangeReader<'a> {
    pub file: &'a File,
    pub name: &'a str,
    pub fs: &'a FsMap,
    /// Where the file system starts in `file`.
    pub start: u64,
    pub digests: Digests,
    /// Takes the ranges the map says are zeros from the map instead of the
    /// card: a copy needs their content, not proof of the card's health.
    pub zeros_from_map: bool,
}

/// A range read (or not) from the card: its place in the stream, and where
/// it starts with its bytes.
type Read = (usize, Result<(u64, Vec<u8>)>);

impl RangeReader<'_> {
    /// Reads `ranges` in this order on one thread, checks them against their
    /// SHA-256 on others, and hands each checked range, with where it starts
    /// in `file`, to `each` on the caller's thread, in order: reading,
    /// checking and (for a copy) writing overlap. The stream stops at the
    /// first range that cannot be read or does not match, before `each` sees
    /// it or any range after it.
    pub fn stream(
        &self,
        ranges: &[&Range],
        mut each: impl FnMut(&Range, u64, &mut [u8]) -> Result<()>,
    ) -> Result<()> {
        std::thread::scope(|scope| {
            let (free_tx, free_rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
            let (read_tx, read_rx) = sync_channel::<Read>(IN_FLIGHT);
            let (checked_tx, checked_rx) = sync_channel::<Read>(IN_FLIGHT);
            for _ in 0..IN_FLIGHT {
                free_tx.send(Vec::new()).expect("the pool has room");
            }
            scope.spawn(move || {
                for (i, range) in ranges.iter().enumerate() {
                    // A closed channel means the stream has stopped.
                    let Ok(mut buf) = free_rx.recv() else {
                        return;
                    };
                    let read = self.read(range, &mut buf).map(|at| (at, buf));
                    let failed = read.is_err();
                    if read_tx.send((i, read)).is_err() || failed {
                        return;
                    }
                }
            });
            // Shared by the checkers, and gone with the last of them: a reader
            // blocked on a full channel then sees it closed.
            let read_rx = Arc::new(Mutex::new(read_rx));
            for _ in 0..CHECKERS {
                let (read_rx, checked_tx) = (Arc::clone(&read_rx), checked_tx.clone());
                scope.spawn(move || loop {
                    let next = read_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((i, read))) = next else {
                        return;
                    };
                    let checked = read.and_then(|(at, buf)| {
                        self.check(ranges[i], at, &buf)?;
                        Ok((at, buf))
                    });
                    if checked_tx.send((i, checked)).is_err() {
                        return;
                    }
                });
            }
            drop((read_rx, checked_tx));
            // The checkers finish out of order: ranges wait here for their turn.
            let mut waiting = BTreeMap::new();
            let mut next = 0;
            let result = (|| {
                while next < ranges.len() {
                    let Some(checked) = waiting.remove(&next) else {
                        let (i, checked) = checked_rx.recv().map_err(|_| {
                            anyhow!(
                                "{}: the stream of {} stopped after {next} of {} ranges",
                                self.name,
                                self.fs.label,
                                ranges.len()
                            )
                        })?;
                        waiting.insert(i, checked);
                        continue;
                    };
                    let (at, mut buf) = checked?;
                    each(ranges[next], at, &mut buf)?;
                    next += 1;
                    // The reader stops once it has read the last range.
                    let _ = free_tx.send(buf);
                }
                Ok(())
            })();
            // Whatever is still on its way is dropped: the threads see their
            // channels closed and end.
            drop(free_tx);
            drop(checked_rx);
            result
        })
    }

    /// Reads `range` into `buf`; returns where it starts in `file`.
    fn read(&self, range: &Range, buf: &mut Vec<u8>) -> Result<u64> {
        let at = self.start + range.block * self.fs.block_size;
        let len = (range.blocks * self.fs.block_size) as usize;
        if range.zero && self.zeros_from_map {
            buf.clear();
            buf.resize(len, 0);
            return Ok(at);
        }
        buf.resize(len, 0);
        self.file
            .read_exact_at(buf, at)
            .with_context(|| format!("cannot read {len} bytes at byte {at} of {}", self.name))?;
        Ok(at)
    }

    fn check(&self, range: &Range, at: u64, buf: &[u8]) -> Result<()> {
        let matches = match self.digests {
            Digests::Skip => true,
            // The map's own digest covers the flag: all zeros is that range's SHA-256.
            Digests::Check if range.zero => buf.iter().all(|&b| b == 0),
            Digests::Check => sha256_hex(buf) == range.sha256,
        };
        ensure!(
            matches,
            "{name}: {} blocks {}-{} (bytes {at}-{} of {name}) do not match the card's block map: \
             the card is damaged; replace the CompactFlash card",
            self.fs.label,
            range.block,
            range.block + range.blocks - 1,
            at + buf.len() as u64 - 1,
            name = self.name,
        );
        Ok(())
    }
}

/// Reads every range of the file system `fs` on `dev` (its partition) and
/// checks it against the map; writes nothing.
pub fn verify_fs(dev: &str, fs: &FsMap) -> Result<Verified> {
    let started = Instant::now();
    let file = File::open(dev).with_context(|| format!("cannot open {dev}"))?;
    let reader = RangeReader {
        file: &file,
        name: dev,
        fs,
        start: 0,
        digests: Digests::Check,
        zeros_from_map: false,
    };
    let what = format!("checking {} against the block map", fs.label);
    let mut meter = Meter::new(&what);
    let total = fs.used_bytes();
    let mut done = 0;
    reader.stream(&fs.ranges.iter().collect::<Vec<_>>(), |_, _, buf| {
        done += buf.len() as u64;
        meter.update_rate(done, total, started);
        Ok(())
    })?;
    Ok(Verified {
        bytes: done,
        ranges: fs.ranges.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What checking a card read.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub bytes: u64,
    pub ranges: usize,
    pub seconds: f64,
}

/// Reads every range of the card's map and checks its SHA-256; writes nothing.
pub fn verify(path: &Path) -> Result<Verified> {
    let started = Instant::now();
    let card = Card::open(path, false)?;
    let map = load_from(&card)?.map;
    let total = map.used_bytes().max(1);
    let mut done = 0;
    let mut ranges = 0;
    let mut meter = Meter::new("verifying the golden card");
    for fs in &map.filesystems {
        let sb = card.read(fs.offset + 1024, 1024)?;
        let uuid = ext_identity(&sb).map(|(uuid, _)| uuid);
        ensure!(
            uuid.as_deref() == Some(fs.uuid.as_str()),
            "{}: partition {} is not the file system of its block map ({} expected): \
             the card was not written from this image; write it again",
            card.name,
            fs.partition,
            fs.uuid
        );
        let reader = RangeReader {
            file: &card.file,
            name: &card.name,
            fs,
            start: fs.offset,
            digests: Digests::Check,
            zeros_from_map: false,
        };
        reader.stream(&fs.ranges.iter().collect::<Vec<_>>(), |_, _, buf| {
            done += buf.len() as u64;
            ranges += 1;
            meter.update_rate(done, total, started);
            Ok(())
        })?;
    }
    Ok(Verified {
        bytes: done,
        ranges,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMPE2FS: &str = "\
Filesystem volume name:   golden-root
Filesystem UUID:          b534b0ee-0bfa-497c-b356-0be0f683aaf1
Filesystem features:      has_journal ext_attr resize_inode dir_index filetype extent 64bit flex_bg sparse_super metadata_csum
Block count:              40
Free blocks:              17
First block:              1
Block size:               1024
Group descriptor size:    64

Group 0: (Blocks 1-16) csum 0xe908 [ITABLE_ZEROED]
  Primary superblock at 1, Group descriptors at 2-2
  16 free blocks, 0 free inodes, 2 directories
  Free blocks: 5-8, 10
  Free inodes: 
Group 1: (Blocks 17-32) csum 0x3d31 [INODE_UNINIT, BLOCK_UNINIT, ITABLE_ZEROED]
  Free blocks: 20-32
  Free inodes: 
Group 2: (Blocks 33-39) csum 0x3d31 [ITABLE_ZEROED]
  Free blocks: 
  Free inodes: 
";

    #[test]
    fn used_blocks_are_what_each_group_does_not_list_as_free() {
        let usage = parse_dumpe2fs(DUMPE2FS).unwrap();
        assert_eq!(usage.label, "golden-root");
        assert_eq!(usage.uuid, "b534b0ee-0bfa-497c-b356-0be0f683aaf1");
        assert_eq!(usage.block_size, 1024);
        assert_eq!(usage.blocks, 40);
        assert!(usage.features.contains(&"metadata_csum".to_string()));
        // Block 0 (before the first group) to 4, 9, 11 to 19, 33 to 39.
        assert_eq!(usage.used, vec![(0, 5), (9, 1), (11, 9), (33, 7)]);
        assert_eq!(
            split(&usage.used, 4),
            vec![
                (0, 4),
                (4, 1),
                (9, 1),
                (11, 4),
                (15, 4),
                (19, 1),
                (33, 4),
                (37, 3)
            ]
        );
    }

    #[test]
    fn a_dumpe2fs_that_does_not_add_up_is_refused() {
        let short = DUMPE2FS.replace(
            "Block count:              40",
            "Block count:              41",
        );
        let err = parse_dumpe2fs(&short).unwrap_err().to_string();
        assert!(err.contains("the groups end at block 40"), "{err}");
        let outside = DUMPE2FS.replace("Free blocks: 20-32", "Free blocks: 20-33");
        assert!(parse_dumpe2fs(&outside).is_err());
        let no_label = DUMPE2FS.replace("golden-root", "<none>");
        assert_eq!(parse_dumpe2fs(&no_label).unwrap().label, "");
    }

    fn map() -> BlockMap {
        BlockMap {
            filesystems: vec![FsMap {
                label: "golden-boot".into(),
                uuid: "da3ff23a-ac16-4140-a562-8c4120d05841".into(),
                partition: 1,
                offset: MIB,
                block_size: 4096,
                blocks: 16384,
                features: vec!["has_journal".into()],
                ranges: vec![Range {
                    block: 0,
                    blocks: 3,
                    sha256: sha256_hex(b"x"),
                    zero: false,
                }],
            }],
        }
    }

    #[test]
    fn the_stored_map_reads_back_and_damage_to_it_is_found() {
        let mut stored = map().encode();
        assert!(stored.starts_with(b"ZSHIELD-BLOCKMAP 1 "));
        assert_eq!(map().used_bytes(), 3 * 4096);
        stored.extend_from_slice(&[0; 100]);
        assert_eq!(BlockMap::decode(&stored).unwrap(), map());

        let at = stored.iter().position(|&b| b == b'{').unwrap() + 10;
        stored[at] ^= 1;
        let err = BlockMap::decode(&stored).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
        assert!(BlockMap::decode(&[0; 512]).is_err());
        let cut = map().encode();
        assert!(BlockMap::decode(&cut[..cut.len() - 1]).is_err());
    }

    #[test]
    fn sha256_is_the_standard_one() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_stream_stops_before_a_damaged_range_and_takes_zeros_from_the_map_only_for_a_copy() {
        let mut card = tempfile::tempfile().unwrap();
        let good = vec![7u8; 8192];
        let mut data = good.clone();
        data.extend_from_slice(&[0; 4096]);
        data.extend_from_slice(&[1; 4096]); // the map says zeros
        data.extend_from_slice(&good);
        std::io::Write::write_all(&mut card, &data).unwrap();
        let range = |block, blocks, bytes: &[u8], zero| Range {
            block,
            blocks,
            sha256: sha256_hex(bytes),
            zero,
        };
        let mut fs = map().filesystems.remove(0);
        fs.ranges = vec![
            range(0, 2, &good, false),
            range(2, 1, &[0; 4096], true),
            range(3, 1, &[0; 4096], true),
            range(4, 2, &good, false),
        ];
        let mut reader = RangeReader {
            file: &card,
            name: "card.img",
            fs: &fs,
            start: 0,
            digests: Digests::Check,
            zeros_from_map: true,
        };
        let all: Vec<&Range> = fs.ranges.iter().collect();
        let mut seen = Vec::new();
        reader
            .stream(&all, |r, at, buf| {
                assert_eq!(at, r.block * 4096);
                seen.push((r.block, buf.iter().all(|&b| b == 0)));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, [(0, false), (2, true), (3, true), (4, false)]);

        // Read from the card, the damaged zero range stops the stream there.
        reader.zeros_from_map = false;
        seen.clear();
        let err = reader
            .stream(&all, |r, _, _| {
                seen.push((r.block, true));
                Ok(())
            })
            .unwrap_err()
            .to_string();
        assert_eq!(seen, [(0, true), (2, true)]);
        assert!(
            err.contains("golden-boot blocks 3-3 (bytes 12288-16383 of card.img)")
                && err.contains("replace the CompactFlash card"),
            "{err}"
        );
        // So does a range the card cannot give.
        let beyond = range(40, 2, &good, false);
        let cut = [all[0], all[1], all[2], &beyond];
        reader.zeros_from_map = true;
        seen.clear();
        let err = reader
            .stream(&cut, |r, _, _| {
                seen.push((r.block, true));
                Ok(())
            })
            .unwrap_err()
            .to_string();
        assert_eq!(seen, [(0, true), (2, true), (3, true)]);
        assert!(
            err.starts_with("cannot read 8192 bytes at byte 163840 of card.img"),
            "{err}"
        );
        // The caller's own failure stops it too, and is what the stream returns.
        let err = reader
            .stream(&all, |r, _, _| {
                anyhow::ensure!(r.block == 0, "cannot write");
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot write");
    }
}
