//! Parsing `lvm … --reportformat json|json_std` output.
//!
//! `json` quotes every value; `json_std` (lvm2 >= 2.03.17) writes numbers as
//! numbers and string lists as arrays. Both are accepted.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pv {
    pub name: String,
    /// Empty when the PV belongs to no VG.
    pub vg: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vg {
    pub name: String,
    pub size: u64,
    pub extent_size: u64,
    pub extent_count: u64,
    pub free_count: u64,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Lv {
    pub name: String,
    pub vg: String,
    pub attr: String,
    pub size: u64,
    pub origin: String,
    pub tags: Vec<String>,
    /// Creation time, seconds since the epoch (asked for with `time_format = "%s"`).
    pub created: u64,
    /// A snapshot's COW use in percent; `None` for other LVs and inactive snapshots.
    pub snap_percent: Option<f64>,
}

impl Lv {
    /// `lv_attr` 1st char: `s` snapshot, `S` merging snapshot.
    pub fn is_snapshot(&self) -> bool {
        matches!(self.attr.chars().next(), Some('s' | 'S'))
    }

    /// 1st char `S` (a snapshot merging into its origin) or `O` (an origin
    /// with a merging snapshot).
    pub fn is_merging(&self) -> bool {
        matches!(self.attr.chars().next(), Some('S' | 'O'))
    }

    /// 5th char `I` or `S` (suspended): an overflowed snapshot that LVM will
    /// not merge; `m`/`M`: a merge that failed. Only known while active.
    pub fn is_invalid_snapshot(&self) -> bool {
        matches!(self.attr.chars().nth(4), Some('I' | 'S' | 'm' | 'M'))
    }

    /// 5th char `a`: active.
    pub fn is_active(&self) -> bool {
        self.attr.chars().nth(4) == Some('a')
    }

    /// 6th char `o`: open (mounted or held by a process).
    pub fn is_open(&self) -> bool {
        self.attr.chars().nth(5) == Some('o')
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        has_tag(&self.tags, tag)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unexpected LVM report ({0}); is this lvm2 >= 2.02.158 with JSON reports?")]
pub struct ReportError(String);

/// The rows of the report section `section` ("pv", "vg" or "lv").
fn rows(json: &str, section: &str) -> Result<Vec<serde_json::Map<String, Value>>, ReportError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| ReportError(e.to_string()))?;
    let reports = doc
        .get("report")
        .and_then(Value::as_array)
        .ok_or_else(|| ReportError("no \"report\" array".into()))?;
    let mut out = Vec::new();
    for report in reports {
        if let Some(list) = report.get(section).and_then(Value::as_array) {
            for row in list {
                let obj = row
                    .as_object()
                    .ok_or_else(|| ReportError(format!("a {section} row is not an object")))?;
                out.push(obj.clone());
            }
        }
    }
    Ok(out)
}

fn text(row: &serde_json::Map<String, Value>, key: &str) -> Result<String, ReportError> {
    match row.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Array(a)) => Ok(a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")),
        Some(Value::Null) | None => Err(ReportError(format!("field {key} missing"))),
        Some(other) => Err(ReportError(format!("field {key} is {other}"))),
    }
}

/// Sizes are asked for with `--units b --nosuffix`; tolerate a trailing `B`.
fn number(row: &serde_json::Map<String, Value>, key: &str) -> Result<u64, ReportError> {
    let t = text(row, key)?;
    let digits = t.trim().trim_end_matches(['B', 'b']);
    if digits.is_empty() {
        return Ok(0);
    }
    digits
        .parse()
        .map_err(|_| ReportError(format!("field {key} = {t:?} is not a number")))
}

/// `"12.50"`, or empty where LVM has no figure.
fn percent(row: &serde_json::Map<String, Value>, key: &str) -> Result<Option<f64>, ReportError> {
    let t = text(row, key)?;
    if t.trim().is_empty() {
        return Ok(None);
    }
    t.trim()
        .parse()
        .map(Some)
        .map_err(|_| ReportError(format!("field {key} = {t:?} is not a percentage")))
}

fn tags(row: &serde_json::Map<String, Value>, key: &str) -> Result<Vec<String>, ReportError> {
    Ok(text(row, key)?
        .split(',')
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect())
}

pub const PV_FIELDS: &str = "pv_name,vg_name";
pub const VG_FIELDS: &str = "vg_name,vg_size,vg_extent_size,vg_extent_count,vg_free_count,vg_tags";
pub const LV_FIELDS: &str = "lv_name,vg_name,lv_attr,lv_size,origin,lv_tags,lv_time,snap_percent";

pub fn parse_pvs(json: &str) -> Result<Vec<Pv>, ReportError> {
    rows(json, "pv")?
        .iter()
        .map(|r| {
            Ok(Pv {
                name: text(r, "pv_name")?,
                vg: text(r, "vg_name")?,
            })
        })
        .collect()
}

pub fn parse_vgs(json: &str) -> Result<Vec<Vg>, ReportError> {
    rows(json, "vg")?
        .iter()
        .map(|r| {
            Ok(Vg {
                name: text(r, "vg_name")?,
                size: number(r, "vg_size")?,
                extent_size: number(r, "vg_extent_size")?,
                extent_count: number(r, "vg_extent_count")?,
                free_count: number(r, "vg_free_count")?,
                tags: tags(r, "vg_tags")?,
            })
        })
        .collect()
}

pub fn parse_lvs(json: &str) -> Result<Vec<Lv>, ReportError> {
    rows(json, "lv")?
        .iter()
        .map(|r| {
            Ok(Lv {
                // `lvs --all` shows hidden LVs, a merging snapshot among them, as `[name]`.
                name: text(r, "lv_name")?
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                vg: text(r, "vg_name")?,
                attr: text(r, "lv_attr")?,
                size: number(r, "lv_size")?,
                origin: text(r, "origin")?,
                tags: tags(r, "lv_tags")?,
                created: number(r, "lv_time")?,
                snap_percent: percent(r, "snap_percent")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // As lvm2 2.03.16 (Debian 12) prints `lvs --reportformat json --units b --nosuffix`.
    const LVS_JSON: &str = r#"  {
      "report": [
          {
              "lv": [
                  {"lv_name":"lv-audit", "vg_name":"vgroup", "lv_attr":"-wi-a-----", "lv_size":"268435456", "origin":"", "lv_tags":"zshield_fs_ready", "lv_time":"1795316645", "snap_percent":""},
                  {"lv_name":"lv-root", "vg_name":"vgroup", "lv_attr":"owi-aos---", "lv_size":"1342177280", "origin":"", "lv_tags":"", "lv_time":"1795316645", "snap_percent":""},
                  {"lv_name":"snap0", "vg_name":"vgroup", "lv_attr":"swi-a-s---", "lv_size":"536870912", "origin":"lv-root", "lv_tags":"a,b", "lv_time":"1795316700", "snap_percent":"12.50"}
              ]
          }
      ]
  }
"#;

    // The same as json_std prints it.
    const LVS_JSON_STD: &str = r#"{
      "report": [
          {
              "lv": [
                  {"lv_name":"snap0", "vg_name":"vgroup", "lv_attr":"swi-I-s---", "lv_size":536870912, "origin":"lv-root", "lv_tags":["a","b"], "lv_time":1795316700, "snap_percent":100.0}
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
        let mut lvs = parse_lvs(LVS_JSON).unwrap();
        assert!(!lvs[1].is_merging() && !lvs[2].is_merging());
        lvs[1].attr = "Owi-a-s---".into();
        lvs[2].attr = "Swi-a-s---".into();
        assert!(lvs[1].is_merging() && lvs[2].is_merging() && lvs[2].is_snapshot());
        let hidden = LVS_JSON.replace(r#""lv_name":"snap0""#, r#""lv_name":"[snap0]""#);
        assert_eq!(parse_lvs(&hidden).unwrap()[2].name, "snap0");
        lvs[2].attr = "Swi-M-s---".into();
        assert!(lvs[2].is_invalid_snapshot());
    }

    #[test]
    fn parses_json_std() {
        let lv = &parse_lvs(LVS_JSON_STD).unwrap()[0];
        assert_eq!(lv.size, 536_870_912);
        assert_eq!(lv.tags, vec!["a", "b"]);
        assert!(lv.is_invalid_snapshot());
        assert_eq!(lv.snap_percent, Some(100.0));
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
