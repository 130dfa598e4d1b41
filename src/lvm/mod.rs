//! LVM through its own command line tool, with JSON reports.

pub mod report;

use std::time::Duration;

use anyhow::{Context, Result};

use crate::disk::blockdev::{settle_udev, wait_for_nodes};
use crate::layout::{mapper_path, EXTENT, PE_START};
use crate::runner::Cmd;
use report::{Lv, Pv, Vg, LV_FIELDS, PV_FIELDS, VG_FIELDS};

/// Ignore a devices file naming the build machine's disks (DESIGN: golden images
/// may carry one); no dmeventd or lvmpolld is running in an initramfs. Report
/// times as seconds since the epoch.
const CONFIG: &str = "devices { use_devicesfile = 0 } global { use_lvmpolld = 0 } \
     activation { monitoring = 0 } report { time_format = \"%s\" }";

#[derive(Debug, Default)]
pub struct Lvm;

impl Lvm {
    fn cmd(&self, sub: &str) -> Cmd {
        Cmd::new("lvm")
            .arg(sub)
            .args(["--config", CONFIG])
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
    }

    fn report(&self, sub: &str, fields: &str) -> Result<String> {
        let cmd = self.cmd(sub);
        let cmd = if sub == "lvs" { cmd.arg("--all") } else { cmd };
        // --binary: flags as 1/0, whatever the locale and the lvm version say.
        cmd.args([
            "--reportformat",
            "json",
            "--binary",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            fields,
        ])
        .run()
    }

    pub fn pvs(&self) -> Result<Vec<Pv>> {
        Ok(report::parse_pvs(&self.report("pvs", PV_FIELDS)?)?)
    }

    pub fn vgs(&self) -> Result<Vec<Vg>> {
        Ok(report::parse_vgs(&self.report("vgs", VG_FIELDS)?)?)
    }

    /// Every LV, hidden ones included: a merging snapshot is hidden.
    pub fn lvs(&self) -> Result<Vec<Lv>> {
        Ok(report::parse_lvs(&self.report("lvs", LV_FIELDS)?)?)
    }

    pub fn pvcreate(&self, dev: &str) -> Result<()> {
        let align = format!("{}b", PE_START);
        self.cmd("pvcreate")
            .args(["--yes", "--dataalignment", &align, dev])
            .run()?;
        Ok(())
    }

    pub fn vgcreate(&self, vg: &str, pv: &str, tag: &str) -> Result<()> {
        let extent = format!("{}b", EXTENT);
        self.cmd("vgcreate")
            .args([
                "--yes",
                "--physicalextentsize",
                &extent,
                "--addtag",
                tag,
                vg,
                pv,
            ])
            .run()?;
        Ok(())
    }

    pub fn vg_tag(&self, vg: &str, tag: &str, add: bool) -> Result<()> {
        self.cmd("vgchange")
            .args([if add { "--addtag" } else { "--deltag" }, tag, vg])
            .run()?;
        Ok(())
    }

    /// Adds and removes tags of `vg/lv` in one change of the VG's metadata.
    pub fn lv_tags(&self, vg: &str, lv: &str, add: &[&str], del: &[&str]) -> Result<()> {
        let mut cmd = self.cmd("lvchange");
        for tag in add {
            cmd = cmd.args(["--addtag", tag]);
        }
        for tag in del {
            cmd = cmd.args(["--deltag", tag]);
        }
        cmd.arg(format!("{vg}/{lv}")).run()?;
        Ok(())
    }

    pub fn lv_add_tag(&self, vg: &str, lv: &str, tag: &str) -> Result<()> {
        self.cmd("lvchange")
            .args(["--addtag", tag, &format!("{vg}/{lv}")])
            .run()?;
        Ok(())
    }

    pub fn lv_del_tag(&self, vg: &str, lv: &str, tag: &str) -> Result<()> {
        self.cmd("lvchange")
            .args(["--deltag", tag, &format!("{vg}/{lv}")])
            .run()?;
        Ok(())
    }

    /// Activates every LV of `vg` (resuming in the kernel a merge that a
    /// power loss cut off) without starting background polling.
    pub fn activate(&self, vg: &str) -> Result<()> {
        self.cmd("vgchange")
            .args(["--activate", "y", "--poll", "n", vg])
            .run()?;
        settle_udev();
        Ok(())
    }

    pub fn activate_lv(&self, vg: &str, lv: &str) -> Result<()> {
        self.cmd("lvchange")
            .args(["--activate", "y", &format!("{vg}/{lv}")])
            .run()?;
        settle_udev();
        Ok(())
    }

    pub fn lvrename(&self, vg: &str, from: &str, to: &str) -> Result<()> {
        self.cmd("lvrename").args([vg, from, to]).run()?;
        Ok(())
    }

    /// Merges `snapshot` into its origin and waits until the merge has
    /// finished, passing the percentage done to `progress` as LVM reports it.
    pub fn merge(&self, vg: &str, snapshot: &str, progress: impl FnMut(f64)) -> Result<()> {
        let cmd = self.cmd("lvconvert").arg("--merge");
        poll_merge(cmd, &format!("{vg}/{snapshot}"), progress)
    }

    /// Polls to its end a merge into `origin` that was started earlier (and
    /// resumed in the kernel when the VG was activated).
    pub fn resume_merge(&self, vg: &str, origin: &str, progress: impl FnMut(f64)) -> Result<()> {
        let cmd = self.cmd("lvpoll").args(["--polloperation", "merge"]);
        poll_merge(cmd, &format!("{vg}/{origin}"), progress)
    }

    pub fn deactivate(&self, vg: &str) -> Result<()> {
        self.cmd("vgchange").args(["--activate", "n", vg]).run()?;
        Ok(())
    }

    pub fn lvremove(&self, vg: &str, lv: &str) -> Result<()> {
        self.cmd("lvremove")
            .args(["--yes", &format!("{vg}/{lv}")])
            .run()?;
        Ok(())
    }

    /// Creates an active LV, wiping old signatures in it, and waits for its node.
    pub fn lvcreate(&self, vg: &str, lv: &str, extents: u64) -> Result<String> {
        self.cmd("lvcreate")
            .args([
                "--yes",
                "--wipesignatures",
                "y",
                "--zero",
                "y",
                "--activate",
                "y",
            ])
            .args(["--extents", &extents.to_string(), "--name", lv, vg])
            .run()?;
        self.wait_for(vg, lv)
    }

    /// A thin pool of `extents` for data and `metadata` bytes of metadata
    /// (LVM adds a spare of that size), allocating `chunk` bytes at a time.
    /// Provisioned chunks are not zeroed first: everything in the pool is
    /// the root and its restore points, and zeroing costs every first write.
    pub fn create_thin_pool(
        &self,
        vg: &str,
        pool: &str,
        extents: u64,
        metadata: u64,
        chunk: u64,
    ) -> Result<()> {
        self.cmd("lvcreate")
            .args(["--yes", "--type", "thin-pool", "--zero", "n"])
            .args(["--extents", &extents.to_string()])
            .args(["--poolmetadatasize", &format!("{metadata}b")])
            .args(["--chunksize", &format!("{chunk}b")])
            .args(["--name", pool, vg])
            .run()?;
        Ok(())
    }

    /// A thin volume of `bytes` (virtual) in `vg/pool`, active, and its node.
    pub fn create_thin(&self, vg: &str, pool: &str, lv: &str, bytes: u64) -> Result<String> {
        self.cmd("lvcreate")
            .args(["--yes", "--wipesignatures", "y"])
            .args(["--virtualsize", &format!("{bytes}b")])
            .args(["--thin", &format!("{vg}/{pool}")])
            .args(["--name", lv])
            .run()?;
        self.wait_for(vg, lv)
    }

    /// A thin snapshot `name` of `vg/origin`. Left inactive, as LVM leaves
    /// thin snapshots (skipped at activation), unless `active`: then it
    /// is activated and activated at every boot, and its node is returned.
    pub fn thin_snapshot(
        &self,
        vg: &str,
        origin: &str,
        name: &str,
        active: bool,
    ) -> Result<Option<String>> {
        let cmd = self
            .cmd("lvcreate")
            .args(["--yes", "--snapshot", "--name", name]);
        let cmd = if active {
            cmd.args(["--setactivationskip", "n", "--activate", "y"])
        } else {
            cmd
        };
        cmd.arg(format!("{vg}/{origin}")).run()?;
        if active {
            self.wait_for(vg, name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Has LVM skip `vg/lv` at activation from now on, as it does thin
    /// snapshots (it stays active until the VG is deactivated or the machine
    /// restarts: deactivating it here costs seconds under TCG for nothing).
    pub fn set_aside(&self, vg: &str, lv: &str) -> Result<()> {
        self.cmd("lvchange")
            .args(["--setactivationskip", "y"])
            .arg(format!("{vg}/{lv}"))
            .run()?;
        Ok(())
    }

    pub fn snapshot(&self, vg: &str, origin: &str, snapshot: &str, extents: u64) -> Result<String> {
        self.cmd("lvcreate")
            .args([
                "--yes",
                "--snapshot",
                "--extents",
                &extents.to_string(),
                "--name",
                snapshot,
            ])
            .arg(format!("{vg}/{origin}"))
            .run()?;
        self.wait_for(vg, snapshot)
    }

    fn wait_for(&self, vg: &str, lv: &str) -> Result<String> {
        settle_udev();
        let path = mapper_path(vg, lv);
        wait_for_nodes(std::slice::from_ref(&path), Duration::from_secs(30))
            .with_context(|| format!("LVM created {vg}/{lv} but its device node"))?;
        Ok(path)
    }
}

fn poll_merge(cmd: Cmd, lv: &str, mut progress: impl FnMut(f64)) -> Result<()> {
    cmd.args(["--interval", "1", lv]).run_streaming(|line| {
        if let Some(p) = merged_percent(line) {
            progress(p);
        }
    })
}

/// `  vgroup/snap0: Merged: 37.52%` → 37.52
fn merged_percent(line: &str) -> Option<f64> {
    let (_, rest) = line.split_once("Merged:")?;
    rest.trim().strip_suffix('%')?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_merge_progress() {
        assert_eq!(
            merged_percent("  vgroup/snap0: Merged: 37.52%"),
            Some(37.52)
        );
        assert_eq!(
            merged_percent("  vgroup/snap0: Merged: 100.00%"),
            Some(100.0)
        );
        assert_eq!(
            merged_percent("  Merging of volume vgroup/snap0 started."),
            None
        );
    }
}
