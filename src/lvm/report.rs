//! Parsing `lvm … --reportformat json|json_std --binary` output into typed rows.
//!
//! `json` quotes every value; `json_std` (lvm2 >= 2.03.17) writes numbers as
//! numbers and string lists as arrays. Both are accepted. States come from
//! lvm2's named binary fields (`lv_merging`, `lv_snapshot_invalid`, …), not
//! from positions in `lv_attr`, which is kept for display only.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pv {
    #[serde(rename = "pv_name", deserialize_with = "text")]
    pub name: String,
    /// Empty when the PV belongs to no VG.
    #[serde(rename = "vg_name", deserialize_with = "text")]
    pub vg: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Vg {
    #[serde(rename = "vg_name", deserialize_with = "text")]
    pub name: String,
    #[serde(rename = "vg_size", deserialize_with = "number")]
    pub size: u64,
    #[serde(rename = "vg_extent_size", deserialize_with = "number")]
    pub extent_size: u64,
    #[serde(rename = "vg_extent_count", deserialize_with = "number")]
    pub extent_count: u64,
    #[serde(rename = "vg_free_count", deserialize_with = "number")]
    pub free_count: u64,
    #[serde(rename = "vg_tags", deserialize_with = "tags")]
    pub tags: Vec<String>,
}

/// Whether an LVM tag list holds `tag`.
fn has_tag(tags: &[String], tag: &str) -> bool {
    tags.iter().any(|t| t == tag)
}

impl Vg {
    pub fn has_tag(&self, tag: &str) -> bool {
        has_tag(&self.tags, tag)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Lv {
    /// `lvs --all` shows hidden LVs, a merging snapshot among them, as `[name]`.
    #[serde(rename = "lv_name", deserialize_with = "lv_name")]
    pub name: String,
    #[serde(rename = "vg_name", deserialize_with = "text")]
    pub vg: String,
    /// `owi-aos---`, for people to read.
    #[serde(rename = "lv_attr", deserialize_with = "text")]
    pub attr: String,
    #[serde(rename = "lv_size", deserialize_with = "number")]
    pub size: u64,
    /// The origin of a snapshot; empty for other LVs.
    #[serde(deserialize_with = "text")]
    pub origin: String,
    #[serde(rename = "lv_tags", deserialize_with = "tags")]
    pub tags: Vec<String>,
    /// Creation time, seconds since the epoch (asked for with `time_format = "%s"`).
    #[serde(rename = "lv_time", deserialize_with = "number")]
    pub created: u64,
    /// A snapshot's COW use in percent; `None` for other LVs and inactive snapshots.
    #[serde(rename = "snap_percent", deserialize_with = "percent")]
    pub snap_percent: Option<f64>,
    /// The thin pool of a thin volume; empty for other LVs.
    #[serde(deserialize_with = "text")]
    pub pool_lv: String,
    /// A thin pool's data use in percent (a thin volume's share of its
    /// virtual size); `None` where LVM has no figure (inactive).
    #[serde(rename = "data_percent", deserialize_with = "percent")]
    pub data_percent: Option<f64>,
    /// A thin pool's metadata size; 0 for other LVs.
    #[serde(rename = "lv_metadata_size", deserialize_with = "number")]
    pub metadata_size: u64,
    /// A thin pool's metadata use in percent.
    #[serde(rename = "metadata_percent", deserialize_with = "percent")]
    pub metadata_percent: Option<f64>,
    /// `public,snapshot,thicksnapshot`, `public,origin,thickorigin`, …
    #[serde(rename = "lv_role", deserialize_with = "tags")]
    pub roles: Vec<String>,
    /// A snapshot merging into its origin, or an origin a snapshot merges into.
    #[serde(rename = "lv_merging", deserialize_with = "flag")]
    pub merging: bool,
    /// An overflowed snapshot, which LVM will not merge. Known only while active.
    #[serde(rename = "lv_snapshot_invalid", deserialize_with = "flag")]
    pub snapshot_invalid: bool,
    #[serde(rename = "lv_merge_failed", deserialize_with = "flag")]
    pub merge_failed: bool,
    #[serde(rename = "lv_suspended", deserialize_with = "flag")]
    pub suspended: bool,
    #[serde(rename = "lv_active_locally", deserialize_with = "flag")]
    pub active: bool,
    /// Open: mounted or held by a process.
    #[serde(rename = "lv_device_open", deserialize_with = "flag")]
    pub open: bool,
}

impl Lv {
    pub fn is_snapshot(&self) -> bool {
        self.roles.iter().any(|r| r == "snapshot")
    }

    /// A thin volume (of the pool `pool_lv`), snapshot or not.
    pub fn is_thin(&self) -> bool {
        !self.pool_lv.is_empty()
    }

    pub fn is_merging(&self) -> bool {
        self.merging
    }

    /// A snapshot that cannot be restored: overflowed, suspended as invalid
    /// (LVM's `S`), or whose merge failed.
    pub fn is_invalid_snapshot(&self) -> bool {
        self.is_snapshot() && (self.snapshot_invalid || self.merge_failed || self.suspended)
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        has_tag(&self.tags, tag)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unexpected LVM report ({0}); is this lvm2 >= 2.02.158 with JSON reports?")]
pub struct ReportError(String);

/// A report value as either format writes it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Field {
    Text(String),
    Number(serde_json::Number),
    List(Vec<String>),
}

impl Field {
    fn into_text(self) -> String {
        match self {
            Field::Text(s) => s,
            Field::Number(n) => n.to_string(),
            Field::List(items) => items.join(","),
        }
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Field::deserialize(d)?.into_text())
}

fn lv_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = text(d)?;
    Ok(name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string())
}

/// Sizes are asked for with `--units b --nosuffix`; tolerate a trailing `B`.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let t = text(d)?;
    let digits = t.trim().trim_end_matches(['B', 'b']);
    if digits.is_empty() {
        return Ok(0);
    }
    digits
        .parse()
        .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a number")))
}

/// `"12.50"`, or empty where LVM has no figure.
fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let t = text(d)?;
    if t.trim().is_empty() {
        return Ok(None);
    }
    t.trim()
        .parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a percentage")))
}

fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(text(d)?
        .split(',')
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect())
}

/// A binary field under `--binary`: 1 when set; 0, or -1 where LVM cannot
/// tell (an inactive LV), when not.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(text(d)?.trim() == "1")
}

/// The rows of the report section `section` ("pv", "vg" or "lv").
fn rows<T: DeserializeOwned>(json: &str, section: &str) -> Result<Vec<T>, ReportError> {
    #[derive(Deserialize)]
    struct Document {
        report: Vec<BTreeMap<String, Value>>,
    }
    let doc: Document = serde_json::from_str(json).map_err(|e| ReportError(e.to_string()))?;
    let mut out = Vec::new();
    for mut report in doc.report {
        if let Some(list) = report.remove(section) {
            let list: Vec<T> = serde_json::from_value(list)
                .map_err(|e| ReportError(format!("a {section} row: {e}")))?;
            out.extend(list);
        }
    }
    Ok(out)
}

pub const PV_FIELDS: &str = "pv_name,vg_name";
pub const VG_FIELDS: &str = "vg_name,vg_size,vg_extent_size,vg_extent_count,vg_free_count,vg_tags";
pub const LV_FIELDS: &str = "lv_name,vg_name,lv_attr,lv_size,origin,lv_tags,lv_time,snap_percent,\
     pool_lv,data_percent,lv_metadata_size,metadata_percent,lv_role,lv_merging,lv_snapshot_invalid,lv_merge_failed,lv_suspended,lv_active_locally,lv_device_open";

pub fn parse_pvs(json: &str) -> Result<Vec<Pv>, ReportError> {
    rows(json, "pv")
}

pub fn parse_vgs(json: &str) -> Result<Vec<Vg>, ReportError> {
    rows(json, "vg")
}

pub fn parse_lvs(json: &str) -> Result<Vec<Lv>, ReportError> {
    rows(json, "lv")
}

#[cfg(test)]
mod tests {
    use super::*;

    // As lvm2 2.03.16 (Debian 12) prints `lvs --all --reportformat json --binary --units b --nosuffix`.
    const LVS_JSON: &str = r#"  {
      "report": [
          {
              "lv": [
                  {"lv_name":"lv-audit", "vg_name":"vgroup", "lv_attr":"-wi-a-----", "lv_size":"268435456", "origin":"", "lv_tags":"zshield_fs_ready", "lv_time":"1795316645", "snap_percent":"", "pool_lv":"", "data_percent":"", "lv_metadata_size":"", "metadata_percent":"", "lv_role":"public", "lv_merging":"0", "lv_snapshot_invalid":"0", "lv_merge_failed":"0", "lv_suspended":"0", "lv_active_locally":"1", "lv_device_open":"0"},
                  {"lv_name":"lv-root", "vg_name":"vgroup", "lv_attr":"owi-aos---", "lv_size":"1342177280", "origin":"", "lv_tags":"", "lv_time":"1795316645", "snap_percent":"", "pool_lv":"", "data_percent":"", "lv_metadata_size":"", "metadata_percent":"", "lv_role":"public,origin,thickorigin", "lv_merging":"0", "lv_snapshot_invalid":"0", "lv_merge_failed":"0", "lv_suspended":"0", "lv_active_locally":"1", "lv_device_open":"1"},
                  {"lv_name":"snap0", "vg_name":"vgroup", "lv_attr":"swi-a-s---", "lv_size":"536870912", "origin":"lv-root", "lv_tags":"a,b", "lv_time":"1795316700", "snap_percent":"12.50", "pool_lv":"", "data_percent":"12.50", "lv_metadata_size":"", "metadata_percent":"", "lv_role":"public,snapshot,thicksnapshot", "lv_merging":"0", "lv_snapshot_invalid":"0", "lv_merge_failed":"0", "lv_suspended":"0", "lv_active_locally":"1", "lv_device_open":"0"}
              ]
          }
      ]
  }
"#;

    // An overflowed snapshot as json_std prints it: numbers, arrays.
    const LVS_JSON_STD: &str = r#"{
      "report": [
          {
              "lv": [
                  {"lv_name":"snap0", "vg_name":"vgroup", "lv_attr":"swi-I-s---", "lv_size":536870912, "origin":"lv-root", "lv_tags":["a","b"], "lv_time":1795316700, "snap_percent":100.0, "pool_lv":"", "data_percent":100.0, "lv_metadata_size":"", "metadata_percent":"", "lv_role":["public","snapshot","thicksnapshot"], "lv_merging":0, "lv_snapshot_invalid":1, "lv_merge_failed":0, "lv_suspended":0, "lv_active_locally":1, "lv_device_open":0}
              ]
          }
      ]
  }"#;

    #[test]
    fn parses_quoted_json() {
        let lvs = parse_lvs(LVS_JSON).unwrap();
        assert_eq!(lvs.len(), 3);
        assert_eq!(lvs[1].size, 1_342_177_280);
        assert!(lvs[0].has_tag("zshield_fs_ready"));
        assert!(!lvs[1].is_snapshot());
        assert!(lvs[2].is_snapshot() && lvs[2].is_active() && !lvs[2].is_invalid_snapshot());
        assert_eq!(lvs[2].origin, "lv-root");
        assert_eq!(lvs[2].tags, vec!["a", "b"]);
        assert_eq!(lvs[2].created, 1_795_316_700);
        assert_eq!(lvs[2].snap_percent, Some(12.5));
        assert_eq!(lvs[1].snap_percent, None);
        assert!(lvs[1].is_open() && !lvs[2].is_open());
    }

    #[test]
    fn tells_merging_volumes() {
        let lvs = parse_lvs(LVS_JSON).unwrap();
        assert!(!lvs[1].is_merging() && !lvs[2].is_merging());
        // A merge under way: the snapshot is hidden, both are flagged.
        let merging = LVS_JSON
            .replace(r#""lv_name":"snap0""#, r#""lv_name":"[snap0]""#)
            .replace(r#""lv_merging":"0""#, r#""lv_merging":"1""#);
        let lvs = parse_lvs(&merging).unwrap();
        assert_eq!(lvs[2].name, "snap0");
        assert!(lvs[1].is_merging() && lvs[2].is_merging() && lvs[2].is_snapshot());
        // A failed merge makes the snapshot unusable; an inactive LV's -1 is not set.
        let failed = LVS_JSON.replace(r#""lv_merge_failed":"0""#, r#""lv_merge_failed":"1""#);
        assert!(parse_lvs(&failed).unwrap()[2].is_invalid_snapshot());
        let unknown = LVS_JSON.replace(r#""lv_device_open":"1""#, r#""lv_device_open":"-1""#);
        assert!(!parse_lvs(&unknown).unwrap()[1].is_open());
    }

    #[test]
    fn parses_json_std() {
        let lv = &parse_lvs(LVS_JSON_STD).unwrap()[0];
        assert_eq!(lv.size, 536_870_912);
        assert_eq!(lv.tags, vec!["a", "b"]);
        assert!(lv.is_invalid_snapshot());
        assert_eq!(lv.snap_percent, Some(100.0));
    }

    // A thin pool and a thin snapshot of its volume, as lvm2 2.03.16 prints them.
    const THIN_JSON: &str = r#"{"report":[{"lv":[
        {"lv_name":"lv-pool", "vg_name":"vgroup", "lv_attr":"twi-aot---", "lv_size":"1879048192", "origin":"", "lv_tags":"", "lv_time":"1795316645", "snap_percent":"", "pool_lv":"", "data_percent":"29.46", "lv_metadata_size":"16777216", "metadata_percent":"10.94", "lv_role":"private", "lv_merging":"0", "lv_snapshot_invalid":"0", "lv_merge_failed":"0", "lv_suspended":"0", "lv_active_locally":"1", "lv_device_open":"1"},
        {"lv_name":"rp-factory", "vg_name":"vgroup", "lv_attr":"Vwi---t--k", "lv_size":"1342177280", "origin":"lv-root", "lv_tags":"", "lv_time":"1795316700", "snap_percent":"", "pool_lv":"lv-pool", "data_percent":"", "lv_metadata_size":"", "metadata_percent":"", "lv_role":"public,snapshot,thinsnapshot", "lv_merging":"0", "lv_snapshot_invalid":"-1", "lv_merge_failed":"-1", "lv_suspended":"-1", "lv_active_locally":"0", "lv_device_open":"-1"}
    ]}]}"#;

    #[test]
    fn parses_thin_pools_and_thin_snapshots() {
        let lvs = parse_lvs(THIN_JSON).unwrap();
        let (pool, point) = (&lvs[0], &lvs[1]);
        assert!(!pool.is_thin() && point.is_thin());
        assert_eq!(
            (pool.data_percent, pool.metadata_percent, pool.metadata_size),
            (Some(29.46), Some(10.94), 16 << 20)
        );
        assert_eq!(
            (point.pool_lv.as_str(), point.origin.as_str()),
            ("lv-pool", "lv-root")
        );
        assert!(point.is_snapshot() && !point.is_invalid_snapshot() && !point.is_active());
        assert_eq!(point.data_percent, None);
    }

    #[test]
    fn parses_vgs_and_pvs() {
        let vgs = parse_vgs(
            r#"{"report":[{"vg":[{"vg_name":"vgroup","vg_size":"3753902080","vg_extent_size":"4194304",
            "vg_extent_count":"895","vg_free_count":"0","vg_tags":"zshield,zshield_complete"}]}]}"#,
        )
        .unwrap();
        assert_eq!(vgs[0].extent_count, 895);
        assert_eq!(vgs[0].tags, vec!["zshield", "zshield_complete"]);
        let pvs = parse_pvs(
            r#"{"report":[{"pv":[{"pv_name":"/dev/sdb3","vg_name":"vgroup"},{"pv_name":"/dev/sdc","vg_name":""}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            pvs[1],
            Pv {
                name: "/dev/sdc".into(),
                vg: "".into()
            }
        );
    }

    #[test]
    fn empty_report_has_no_rows() {
        assert!(parse_lvs(r#"{"report":[{"lv":[]}]}"#).unwrap().is_empty());
    }

    #[test]
    fn rejects_what_is_not_a_report() {
        assert!(parse_lvs("  No volume groups found").is_err());
        assert!(parse_lvs(r#"{"report":[{"lv":[{"lv_name":"x"}]}]}"#).is_err());
    }
}
