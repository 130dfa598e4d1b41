//! Reading an fstab, and rewriting the copied golden `/etc/fstab` for the
//! disk it now lives on. Pure.

use std::collections::BTreeSet;

/// One fstab entry zshield owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub spec: String,
    pub mount_point: String,
    pub fstype: String,
    pub options: String,
    pub passno: u8,
}

impl Entry {
    fn line(&self) -> String {
        format!(
            "{} {} {} {} 0 {}",
            self.spec, self.mount_point, self.fstype, self.options, self.passno
        )
    }
}

/// The ways the golden disk's filesystems may be named in an fstab
/// (`LABEL=golden-root`, `UUID=…`, `/dev/sda2`, `/dev/disk/by-…/…`).
#[derive(Debug, Clone, Default)]
pub struct GoldenNames(BTreeSet<String>);

impl GoldenNames {
    pub fn new<I: IntoIterator<Item = String>>(names: I) -> GoldenNames {
        GoldenNames(names.into_iter().map(|n| normalise(&n)).collect())
    }

    fn names(&self, spec: &str) -> bool {
        self.0.contains(&normalise(spec))
    }
}

/// UUIDs are compared without regard to case, as blkid does.
fn normalise(spec: &str) -> String {
    match spec.split_once('=') {
        Some((k, v)) if k.eq_ignore_ascii_case("UUID") || k.eq_ignore_ascii_case("PARTUUID") => {
            format!("{}={}", k.to_ascii_uppercase(), v.to_ascii_lowercase())
        }
        _ => spec.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub text: String,
    /// Lines that were turned into comments because they name the golden disk.
    pub disabled: Vec<String>,
}

/// Puts zshield's entries in place of the lines for the same mount points
/// (or appends them), keeps every unrelated line and comment, and comments out
/// what still names the golden disk: the disk must never depend on the CF.
pub fn rewrite(golden_fstab: &str, entries: &[Entry], golden: &GoldenNames) -> Rewritten {
    let mut out = Vec::new();
    let mut disabled = Vec::new();
    let mut placed = BTreeSet::new();
    for line in golden_fstab.lines() {
        let Some((spec, mount_point)) = spec_and_mount_point(line) else {
            out.push(line.to_string());
            continue;
        };
        if let Some(entry) = entries.iter().find(|e| e.mount_point == mount_point) {
            if placed.insert(entry.mount_point.clone()) {
                out.push(entry.line());
            }
        } else if golden.names(&spec) {
            out.push(format!(
                "# zshield: disabled, names the golden disk: {line}"
            ));
            disabled.push(line.to_string());
        } else {
            out.push(line.to_string());
        }
    }
    let missing: Vec<&Entry> = entries
        .iter()
        .filter(|e| !placed.contains(&e.mount_point))
        .collect();
    if !missing.is_empty() {
        out.push("# zshield: volumes of this disk".to_string());
        out.extend(missing.iter().map(|e| e.line()));
    }
    let mut text = out.join("\n");
    text.push('\n');
    Rewritten { text, disabled }
}

/// The device and mount point of an fstab line; `None` for comments and
/// blank or short lines.
pub fn spec_and_mount_point(line: &str) -> Option<(String, String)> {
    let mut fields = line.split_whitespace();
    let spec = fields.next().filter(|f| !f.starts_with('#'))?;
    let mount_point = fields.next()?;
    Some((unescape(spec), unescape(mount_point)))
}

/// The device an fstab mounts on `mount_point`, if any.
pub fn device_of(fstab: &str, mount_point: &str) -> Option<String> {
    fstab
        .lines()
        .filter_map(spec_and_mount_point)
        .find(|(_, mp)| mp == mount_point)
        .map(|(spec, _)| spec)
}

/// fstab and /proc/self/mountinfo write a space as `\040`, a tab as `\011`,
/// a newline as `\012` and a backslash as `\134`: any octal `\NNN`.
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal.and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_devices_and_unescapes() {
        let fstab = "# comment /boot\nLABEL=golden-root / ext4 ro 0 0\nLABEL=golden-boot /boot ext4 ro 0 0\n/dev/sdc1 /srv/my\\040data ext4 ro 0 0\n";
        assert_eq!(
            device_of(fstab, "/boot").as_deref(),
            Some("LABEL=golden-boot")
        );
        assert_eq!(
            device_of(fstab, "/srv/my data").as_deref(),
            Some("/dev/sdc1")
        );
        assert_eq!(device_of(fstab, "/home"), None);
        assert_eq!(unescape("a\\011b\\134c\\0"), "a\tb\\c\\0");
    }

    const GOLDEN: &str = "\
# /etc/fstab of the golden image
LABEL=golden-root / ext4 ro 0 0
UUID=0A1B-2C3D /boot ext4 ro 0 0
tmpfs /tmp tmpfs defaults 0 0

/dev/sda3 /reserved ext4 noauto 0 0
proc /proc proc defaults 0 0
";

    fn entries() -> Vec<Entry> {
        let e = |spec: &str, mp: &str, passno| Entry {
            spec: spec.into(),
            mount_point: mp.into(),
            fstype: "ext4".into(),
            options: "defaults".into(),
            passno,
        };
        vec![
            e("/dev/mapper/vgroup-lv--root", "/", 1),
            e("UUID=11111111-2222-3333-4444-555555555555", "/boot", 2),
            e("/dev/mapper/vgroup-lv--user", "/home", 2),
        ]
    }

    fn golden() -> GoldenNames {
        GoldenNames::new(
            [
                "LABEL=golden-root",
                "UUID=0a1b-2c3d",
                "/dev/sda3",
                "/dev/sda2",
            ]
            .map(String::from),
        )
    }

    #[test]
    fn replaces_managed_lines_in_place_and_keeps_the_rest() {
        let r = rewrite(GOLDEN, &entries(), &golden());
        let lines: Vec<&str> = r.text.lines().collect();
        assert_eq!(lines[0], "# /etc/fstab of the golden image");
        assert_eq!(lines[1], "/dev/mapper/vgroup-lv--root / ext4 defaults 0 1");
        assert_eq!(
            lines[2],
            "UUID=11111111-2222-3333-4444-555555555555 /boot ext4 defaults 0 2"
        );
        assert_eq!(lines[3], "tmpfs /tmp tmpfs defaults 0 0");
        assert_eq!(lines[4], "");
        assert!(lines.contains(&"proc /proc proc defaults 0 0"));
        assert!(lines.contains(&"/dev/mapper/vgroup-lv--user /home ext4 defaults 0 2"));
    }

    #[test]
    fn no_line_names_the_golden_disk_any_more() {
        let r = rewrite(GOLDEN, &entries(), &golden());
        for line in r.text.lines().filter(|l| !l.starts_with('#')) {
            for name in ["golden-root", "0A1B-2C3D", "/dev/sda3"] {
                assert!(!line.contains(name), "{line}");
            }
        }
        assert_eq!(
            r.disabled,
            vec!["/dev/sda3 /reserved ext4 noauto 0 0".to_string()]
        );
    }

    #[test]
    fn appends_entries_with_no_line_yet() {
        let r = rewrite("proc /proc proc defaults 0 0", &entries(), &golden());
        assert_eq!(
            r.text,
            "proc /proc proc defaults 0 0\n# zshield: volumes of this disk\n\
             /dev/mapper/vgroup-lv--root / ext4 defaults 0 1\n\
             UUID=11111111-2222-3333-4444-555555555555 /boot ext4 defaults 0 2\n\
             /dev/mapper/vgroup-lv--user /home ext4 defaults 0 2\n"
        );
    }

    #[test]
    fn is_idempotent() {
        let once = rewrite(GOLDEN, &entries(), &golden());
        let twice = rewrite(&once.text, &entries(), &golden());
        assert_eq!(once.text, twice.text);
        assert!(twice.disabled.is_empty());
    }

    #[test]
    fn a_duplicated_mount_point_is_written_once() {
        let r = rewrite(
            "LABEL=a / ext4 ro 0 0\nLABEL=b / ext4 ro 0 0\n",
            &entries()[..1],
            &golden(),
        );
        assert_eq!(r.text.matches(" / ").count(), 1);
    }
}
