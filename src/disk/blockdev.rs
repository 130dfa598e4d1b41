//! Block devices: what sysfs says of a disk, what its ends hold, writing its
//! partition table natively, and making the kernel see the new partitions.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config::Label;
use crate::disk::content::{
    classify, read_msdos, zshield_layout, Content, Evidence, Table, HEAD_BYTES,
    PARTITION_HEAD_BYTES, SAMPLE_BYTES, SAMPLE_EVERY, TAIL_BYTES,
};
use crate::disk::gpt_copies;
use crate::layout::{partition_dev, NewPartition, PartKind, MSDOS_ESP, MSDOS_LINUX, MSDOS_LVM};
use crate::runner::Cmd;
use crate::units::{human, MIB};

mod ioctl {
    use nix::libc::{c_char, c_int, c_void};

    #[repr(C)]
    pub struct BlkpgPartition {
        pub start: i64,
        pub length: i64,
        pub pno: c_int,
        pub devname: [c_char; 64],
        pub volname: [c_char; 64],
    }

    #[repr(C)]
    pub struct BlkpgIoctlArg {
        pub op: c_int,
        pub flags: c_int,
        pub datalen: c_int,
        pub data: *mut c_void,
    }

    pub const BLKPG_ADD_PARTITION: c_int = 1;
    pub const BLKPG_DEL_PARTITION: c_int = 2;

    nix::ioctl_none!(blkrrpart, 0x12, 95);
    nix::ioctl_write_ptr_bad!(blkpg, nix::request_code_none!(0x12, 105), BlkpgIoctlArg);
    nix::ioctl_write_ptr_bad!(
        blkroset,
        nix::request_code_none!(0x12, 93),
        nix::libc::c_int
    );
    nix::ioctl_read_bad!(
        blkroget,
        nix::request_code_none!(0x12, 94),
        nix::libc::c_int
    );
    nix::ioctl_none!(blkflsbuf, 0x12, 97);
    nix::ioctl_write_ptr_bad!(blkzeroout, nix::request_code_none!(0x12, 127), [u64; 2]);
}

/// A kernel device stacked on a disk or one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `sdb3`
    pub held: String,
    /// `dm-0`
    pub holder: String,
    /// The device-mapper name, `vgroup-lv--root`, when the holder is dm.
    pub dm_name: Option<String>,
}

/// A block device as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDev {
    /// `/dev/sdb`
    pub dev: String,
    /// `/sys/class/block/sdb`
    pub sys: PathBuf,
    pub name: String,
    pub devno: u64,
}

impl BlockDev {
    /// Resolves a path (following `/dev/disk/by-*` links) to its kernel device.
    pub fn open(path: &str) -> Result<BlockDev> {
        let meta = std::fs::metadata(path).with_context(|| format!("{path} does not exist"))?;
        if !meta.file_type().is_block_device() {
            bail!("{path} is not a block device");
        }
        let devno = meta.rdev();
        let (major, minor) = (nix::sys::stat::major(devno), nix::sys::stat::minor(devno));
        let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}"))
            .with_context(|| format!("no sysfs entry for {path} ({major}:{minor})"))?;
        let name = sys
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        Ok(BlockDev {
            dev: format!("/dev/{name}"),
            sys,
            name,
            devno,
        })
    }

    fn read_attr(&self, attr: &str) -> Option<String> {
        std::fs::read_to_string(self.sys.join(attr))
            .ok()
            .map(|s| s.trim().to_string())
    }

    pub fn is_partition(&self) -> bool {
        self.sys.join("partition").exists()
    }

    /// Bytes (sysfs counts 512-byte sectors whatever the disk's own size).
    pub fn size(&self) -> u64 {
        self.read_attr("size")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            * 512
    }

    pub fn start(&self) -> u64 {
        self.read_attr("start")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            * 512
    }

    pub fn read_only(&self) -> bool {
        self.read_attr("ro").as_deref() == Some("1")
    }

    /// The disk a partition is on (the device itself when it is a disk).
    pub fn whole_disk(&self) -> Result<BlockDev> {
        if !self.is_partition() {
            return Ok(self.clone());
        }
        let name = self
            .sys
            .parent()
            .and_then(Path::file_name)
            .with_context(|| format!("no parent disk for {} in sysfs", self.dev))?;
        BlockDev::open(&format!("/dev/{}", name.to_string_lossy()))
    }

    pub fn logical_sector_size(&self) -> u64 {
        let disk = if self.is_partition() {
            self.sys.parent().map(Path::to_path_buf)
        } else {
            Some(self.sys.clone())
        };
        disk.and_then(|d| std::fs::read_to_string(d.join("queue/logical_block_size")).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(512)
    }

    /// The partitions the kernel knows on this disk, by number.
    pub fn partitions(&self) -> Vec<(u32, BlockDev)> {
        let mut parts = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.sys) else {
            return parts;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(number) = std::fs::read_to_string(path.join("partition")) else {
                continue;
            };
            let Ok(number) = number.trim().parse::<u32>() else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let devno = std::fs::read_to_string(path.join("dev"))
                .ok()
                .and_then(|s| parse_devno(&s))
                .unwrap_or(0);
            parts.push((
                number,
                BlockDev {
                    dev: format!("/dev/{name}"),
                    sys: path,
                    name,
                    devno,
                },
            ));
        }
        parts.sort_by_key(|p| p.0);
        parts
    }

    /// Devices stacked on this one (device-mapper, md), with their dm names.
    pub fn holders(&self) -> Vec<Holder> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.sys.join("holders")) else {
            return out;
        };
        for entry in entries.flatten() {
            let holder = entry.file_name().to_string_lossy().into_owned();
            let dm_name = std::fs::read_to_string(format!("/sys/class/block/{holder}/dm/name"))
                .ok()
                .map(|s| s.trim().to_string());
            out.push(Holder {
                held: self.name.clone(),
                holder,
                dm_name,
            });
        }
        out
    }

    /// The whole disks under this device: itself, its parent disk if it is a
    /// partition, and for a device-mapper device the disks under its slaves.
    pub fn underlying_disks(&self) -> BTreeSet<String> {
        let mut disks = BTreeSet::new();
        let mut todo = vec![self.sys.clone()];
        let mut seen = BTreeSet::new();
        while let Some(sys) = todo.pop() {
            if !seen.insert(sys.clone()) {
                continue;
            }
            if sys.join("partition").exists() {
                if let Some(parent) = sys.parent() {
                    todo.push(parent.to_path_buf());
                }
                continue;
            }
            let slaves: Vec<PathBuf> = std::fs::read_dir(sys.join("slaves"))
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| std::fs::canonicalize(e.path()).ok())
                        .collect()
                })
                .unwrap_or_default();
            if slaves.is_empty() {
                if let Some(name) = sys.file_name() {
                    disks.insert(format!("/dev/{}", name.to_string_lossy()));
                }
            }
            todo.extend(slaves);
        }
        disks
    }
}

/// `8:17` (sysfs `dev`, mountinfo) as a device number.
pub fn parse_devno(text: &str) -> Option<u64> {
    let (major, minor) = text.trim().split_once(':')?;
    Some(nix::sys::stat::makedev(
        major.parse().ok()?,
        minor.parse().ok()?,
    ))
}

/// How much of a disk `read_evidence` reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reach {
    /// Its first and last MiB and its partition table: enough to recognise
    /// zshield's own layout, which is judged by its table alone.
    Table,
    /// Also its first 64 MiB, its last 16 MiB and 64 KiB at every GiB (80 MiB
    /// and more, seconds under emulation): what is needed to call a disk
    /// blank, and to find every signature start a wipe must erase.
    Whole,
}

/// Reads what zshield judges a disk by (`content::Evidence`).
fn read_evidence(disk: &BlockDev, reach: Reach) -> Result<Evidence> {
    let file =
        File::open(&disk.dev).with_context(|| format!("cannot open {} to read it", disk.dev))?;
    let size = disk.size();
    let read = |offset: u64, len: u64| -> Result<Vec<u8>> {
        let mut buf = vec![0; len as usize];
        file.read_exact_at(&mut buf, offset)
            .with_context(|| format!("cannot read {len} bytes at {offset} of {}", disk.dev))?;
        Ok(buf)
    };
    let sector = disk.logical_sector_size();
    let (head_len, tail_len) = match reach {
        Reach::Table => (MIB.min(size), MIB.min(size)),
        Reach::Whole => (HEAD_BYTES.min(size), TAIL_BYTES.min(size)),
    };
    let mut evidence = Evidence {
        size,
        sector,
        head: read(0, head_len)?,
        tail: read(size - tail_len, tail_len)?,
        samples: Vec::new(),
        partition_heads: Vec::new(),
        table: None,
        table_error: None,
        zshield_gpt_sector: None,
    };
    match gpt_copies::read(&evidence.head, &evidence.tail, size, sector) {
        Ok(Some(found)) => {
            evidence.table = Some(Table::Gpt {
                partitions: found.partitions,
                damage: found.damage,
            })
        }
        Ok(None) => evidence.table = read_msdos(&evidence.head, sector),
        Err(e) => evidence.table_error = Some(format!("GPT: {e}")),
    }
    if evidence.table.is_none() {
        // A disk moved between a 512-byte and a 4096-byte controller.
        let other = if sector == 512 { 4096 } else { 512 };
        if let Ok(Some(found)) = gpt_copies::read(&evidence.head, &evidence.tail, size, other) {
            let table = Table::Gpt {
                partitions: found.partitions,
                damage: found.damage,
            };
            if zshield_layout(&table).is_some() {
                evidence.zshield_gpt_sector = Some(other);
            }
        }
    }
    if let Some(table) = &evidence.table {
        for p in table.partitions() {
            let len = PARTITION_HEAD_BYTES.min(p.size);
            if p.start + len <= size {
                evidence
                    .partition_heads
                    .push((p.start, read(p.start, len)?));
            }
        }
    }
    if reach == Reach::Whole {
        let mut at = SAMPLE_EVERY;
        while at + SAMPLE_BYTES <= size - tail_len {
            evidence.samples.push((at, read(at, SAMPLE_BYTES)?));
            at += SAMPLE_EVERY;
        }
    }
    Ok(evidence)
}

/// What `disk` holds, with the evidence it was judged by. zshield's own disk
/// is judged by its table; any other may be called blank or wiped, and both
/// need all of the evidence.
pub fn examine(disk: &BlockDev) -> Result<(Evidence, Content)> {
    let evidence = read_evidence(disk, Reach::Table)?;
    let content = classify(&evidence);
    // A damaged zshield GPT is judged on all of the evidence: what else the
    // disk holds may show that it was put to another use since.
    if matches!(&content, Content::Zshield(layout) if layout.repair.is_none()) {
        return Ok((evidence, content));
    }
    let started = Instant::now();
    let evidence = read_evidence(disk, Reach::Whole)?;
    let read: usize = evidence.head.len()
        + evidence.tail.len()
        + evidence.samples.iter().map(|(_, b)| b.len()).sum::<usize>();
    log::info!(
        "read {} across all of its {}: {} in {} places, {:.1} s",
        disk.dev,
        human(evidence.size),
        human(read as u64),
        evidence.samples.len() + 2,
        started.elapsed().as_secs_f64()
    );
    let content = classify(&evidence);
    Ok((evidence, content))
}

fn lb_size(sector: u64) -> Result<gpt::disk::LogicalBlockSize> {
    match sector {
        512 => Ok(gpt::disk::LogicalBlockSize::Lb512),
        4096 => Ok(gpt::disk::LogicalBlockSize::Lb4096),
        other => bail!("unsupported logical sector size {other}"),
    }
}

fn open_for_writing(dev: &str) -> Result<File> {
    // O_EXCL on a block device fails while anything (a mount, a dm table) holds it.
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_EXCL)
        .open(dev)
        .with_context(|| format!("cannot open {dev} for writing (is it in use?)"))
}

/// Zeroes `(offset, length)` ranges: old tables, labels and superblocks.
pub fn wipe(disk: &BlockDev, ranges: &[(u64, u64)]) -> Result<()> {
    let file = open_for_writing(&disk.dev)?;
    for &(offset, len) in ranges {
        let zeros = vec![0u8; len as usize];
        file.write_all_at(&zeros, offset)
            .with_context(|| format!("cannot zero {len} bytes at {offset} of {}", disk.dev))?;
    }
    file.sync_all()?;
    Ok(())
}

/// Makes `len` bytes at `offset` of the block device open as `file` zeros
/// the cheapest way it has: a write-zeroes command (a loop device's file, a
/// virtual disk), else the kernel writes the zeros itself.
pub fn zero_out(file: &File, offset: u64, len: u64) -> Result<()> {
    let range = [offset, len];
    // SAFETY: BLKZEROOUT reads two u64 (start, length) from the pointer.
    unsafe { ioctl::blkzeroout(file.as_raw_fd(), &range) }
        .with_context(|| format!("cannot zero {len} bytes at byte {offset}"))?;
    Ok(())
}

/// Makes a GPT whole again from its `intact` copy (and its protective MBR),
/// then has the kernel read it: with the primary copy damaged, the kernel
/// saw no partitions.
pub fn repair_gpt(disk: &BlockDev, intact: gpt_copies::Copy) -> Result<()> {
    let e = read_evidence(disk, Reach::Table)?;
    let writes = gpt_copies::repair(&e.head, &e.tail, e.size, e.sector, intact)
        .map_err(|why| anyhow::anyhow!("cannot repair the GPT of {}: {why}", disk.dev))?;
    let file = open_for_writing(&disk.dev)?;
    for (offset, bytes) in &writes {
        file.write_all_at(bytes, *offset).with_context(|| {
            format!(
                "cannot write {} bytes at {offset} of {}",
                bytes.len(),
                disk.dev
            )
        })?;
    }
    file.sync_all()?;
    drop(file);
    let Some(Table::Gpt { partitions, .. }) = read_evidence(disk, Reach::Table)?.table else {
        bail!(
            "the GPT of {} does not read back after its repair",
            disk.dev
        );
    };
    let expected: Vec<(u32, u64, u64)> = partitions
        .iter()
        .map(|p| (p.number, p.start, p.size))
        .collect();
    reread_partitions(disk, &expected)
}

/// Writes a new partition table (protective MBR + both GPT headers, or an
/// msdos table with the disk signature `msdos_signature`) and syncs it.
pub fn write_table(
    disk: &BlockDev,
    label: Label,
    partitions: &[NewPartition],
    msdos_signature: u32,
) -> Result<()> {
    let sector = disk.logical_sector_size();
    let mut file = open_for_writing(&disk.dev)?;
    match label {
        Label::Gpt => {
            let sectors = disk.size() / sector;
            let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(
                u32::try_from(sectors - 1).unwrap_or(u32::MAX),
            );
            mbr.overwrite_lba0(&mut file)
                .context("cannot write the protective MBR")?;
            let mut table = gpt::GptConfig::new()
                .writable(true)
                .logical_block_size(lb_size(sector)?)
                .create_from_device(file, None)
                .context("cannot prepare the GPT")?;
            for p in partitions {
                let kind = match p.kind {
                    PartKind::BiosBoot => gpt::partition_types::BIOS,
                    PartKind::Boot => gpt::partition_types::LINUX_FS,
                    PartKind::Lvm => gpt::partition_types::LINUX_LVM,
                    PartKind::Esp => gpt::partition_types::EFI,
                };
                table
                    .add_partition_at(p.name, p.number, p.start / sector, p.size / sector, kind, 0)
                    .with_context(|| format!("cannot add partition {} ({})", p.number, p.name))?;
            }
            let file = table.write().context("cannot write the GPT")?;
            file.sync_all()?;
        }
        Label::Msdos => {
            let signature = msdos_signature.to_le_bytes();
            let mut mbr = mbrman::MBR::new_from(&mut file, sector as u32, signature)
                .context("cannot prepare the msdos table")?;
            for (i, p) in partitions.iter().enumerate() {
                mbr[i + 1] = mbrman::MBRPartitionEntry {
                    boot: if p.kind == PartKind::Boot {
                        mbrman::BOOT_ACTIVE
                    } else {
                        mbrman::BOOT_INACTIVE
                    },
                    first_chs: mbrman::CHS::empty(),
                    sys: match p.kind {
                        PartKind::Lvm => MSDOS_LVM,
                        PartKind::Esp => MSDOS_ESP,
                        _ => MSDOS_LINUX,
                    },
                    last_chs: mbrman::CHS::empty(),
                    starting_lba: u32::try_from(p.start / sector)?,
                    sectors: u32::try_from(p.size / sector)?,
                };
            }
            mbr.write_into(&mut file)
                .context("cannot write the msdos table")?;
            file.sync_all()?;
        }
    }
    Ok(())
}

/// Makes the kernel read the new table (BLKRRPART, retried while the disk is
/// busy for a moment, e.g. udev still probing it). A kernel built without a
/// parser for the label reads nothing: it is then told the partitions one by
/// one (BLKPG), as `partx` does. Then waits until every partition has its
/// device node. `expected` holds `(number, start, size)` in bytes.
pub fn reread_partitions(disk: &BlockDev, expected: &[(u32, u64, u64)]) -> Result<()> {
    let file = File::open(&disk.dev)?;
    // SAFETY: BLKFLSBUF and BLKRRPART take no argument; the fd is a block device.
    let _ = unsafe { ioctl::blkflsbuf(file.as_raw_fd()) };
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match unsafe { ioctl::blkrrpart(file.as_raw_fd()) } {
            Ok(_) => break,
            Err(nix::errno::Errno::EBUSY) if attempt < 20 => {
                log::debug!(
                    "{} busy re-reading its partition table (attempt {attempt}), retrying",
                    disk.dev
                );
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(1));
                attempt += 1;
            }
            Err(e) => bail!(
                "the kernel cannot re-read the partition table of {}: {e}",
                disk.dev
            ),
        }
    }
    settle_udev();
    let seen: Vec<(u32, u64, u64)> = disk
        .partitions()
        .iter()
        .map(|(n, p)| (*n, p.start(), p.size()))
        .collect();
    if seen != expected {
        log::info!(
            "the kernel did not read the new table of {} (no parser for it?): adding its partitions one by one",
            disk.dev
        );
        for (number, _, _) in &seen {
            blkpg(&file, ioctl::BLKPG_DEL_PARTITION, *number, 0, 0).with_context(|| {
                format!("cannot remove the old partition {number} of {}", disk.dev)
            })?;
        }
        for &(number, start, size) in expected {
            blkpg(&file, ioctl::BLKPG_ADD_PARTITION, number, start, size)
                .with_context(|| format!("cannot add partition {number} of {}", disk.dev))?;
        }
        settle_udev();
    }
    let nodes: Vec<String> = expected
        .iter()
        .map(|p| partition_dev(&disk.dev, p.0))
        .collect();
    wait_for_nodes(&nodes, Duration::from_secs(30))
}

fn blkpg(file: &File, op: nix::libc::c_int, number: u32, start: u64, size: u64) -> Result<()> {
    let mut part = ioctl::BlkpgPartition {
        start: i64::try_from(start)?,
        length: i64::try_from(size)?,
        pno: nix::libc::c_int::try_from(number)?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = ioctl::BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<ioctl::BlkpgPartition>() as nix::libc::c_int,
        data: (&mut part as *mut ioctl::BlkpgPartition).cast(),
    };
    // SAFETY: `arg` points at a live, correctly laid out blkpg_partition.
    unsafe { ioctl::blkpg(file.as_raw_fd(), &arg) }?;
    Ok(())
}

/// `udevadm settle`, when there is a udev to wait for.
pub fn settle_udev() {
    if Path::new("/run/udev/control").exists() {
        if let Err(e) = Cmd::new("udevadm").args(["settle", "--timeout=30"]).run() {
            log::warn!("{e:#}");
        }
    }
}

/// Waits until every path exists as a block device, or fails naming the missing.
pub fn wait_for_nodes(paths: &[String], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing: Vec<&String> = paths
            .iter()
            .filter(|p| !std::fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            bail!(
                "{} did not appear within {}s",
                list.join(", "),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Keeps a block device read-only at the kernel's level while it lives:
/// whatever zshield or a tool it runs might do, the golden disk is not written.
pub struct ReadOnlyGuard {
    file: File,
    dev: String,
    was_read_only: bool,
}

impl ReadOnlyGuard {
    pub fn new(dev: &str) -> Result<ReadOnlyGuard> {
        let file = File::open(dev).with_context(|| format!("cannot open {dev}"))?;
        let mut was: nix::libc::c_int = 0;
        // SAFETY: BLKROGET writes one int; BLKROSET reads one.
        unsafe { ioctl::blkroget(file.as_raw_fd(), &mut was) }?;
        let on: nix::libc::c_int = 1;
        unsafe { ioctl::blkroset(file.as_raw_fd(), &on) }
            .with_context(|| format!("cannot set {dev} read-only"))?;
        log::debug!("{dev} set read-only for the recovery");
        Ok(ReadOnlyGuard {
            file,
            dev: dev.to_string(),
            was_read_only: was != 0,
        })
    }
}

impl Drop for ReadOnlyGuard {
    fn drop(&mut self) {
        if !self.was_read_only {
            let off: nix::libc::c_int = 0;
            // SAFETY: as above.
            if let Err(e) = unsafe { ioctl::blkroset(self.file.as_raw_fd(), &off) } {
                log::warn!("cannot make {} writable again: {e}", self.dev);
            }
        }
    }
}

/// The UUID and label of an ext2/3/4 filesystem, read from its superblock.
pub fn ext_superblock(dev: &str) -> Option<(String, String)> {
    let file = File::open(dev).ok()?;
    let mut sb = [0u8; 1024];
    file.read_exact_at(&mut sb, 1024).ok()?;
    ext_identity(&sb)
}

/// The UUID and label of an ext2/3/4 superblock (the 1 KiB at byte 1024).
pub fn ext_identity(sb: &[u8]) -> Option<(String, String)> {
    if sb.get(56..58)? != [0x53, 0xEF] {
        return None;
    }
    let u = &sb[104..120];
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        hex(&u[0..4]),
        hex(&u[4..6]),
        hex(&u[6..8]),
        hex(&u[8..10]),
        hex(&u[10..16])
    );
    let label = String::from_utf8_lossy(&sb[120..136])
        .trim_end_matches('\0')
        .to_string();
    Some((uuid, label))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every block device the kernel knows, as `/dev/NAME`.
pub fn all_devices() -> Vec<String> {
    let mut devs: Vec<String> = std::fs::read_dir("/sys/class/block")
        .map(|rd| {
            rd.flatten()
                .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    devs.sort();
    devs
}
