//! Sizes as the configuration writes them, and as the logs print them.

use std::fmt;
use std::str::FromStr;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;
/// No disk is larger; a size above it is a typo, and would overflow the
/// layout's arithmetic.
pub const MAX_SIZE: u64 = 1 << 60;

/// A size from the configuration: a number of bytes, or a share of the volume
/// group (`20%VG`), resolved once the VG's size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Bytes(u64),
    PercentOfVg(u8),
}

impl Size {
    /// Bytes this size stands for in a VG of `vg_bytes`.
    pub fn resolve(self, vg_bytes: u64) -> u64 {
        match self {
            Size::Bytes(b) => b,
            Size::PercentOfVg(p) => vg_bytes / 100 * u64::from(p),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid size {0:?}: write bytes (1073741824), units (512M, 100G, 1GiB, 500GB) or a share of the volume group (20%VG), from 1 byte to 1 EiB")]
pub struct SizeError(pub String);

impl FromStr for Size {
    type Err = SizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || SizeError(text.to_string());
        let s = text.trim();
        if let Some(pct) = s.strip_suffix("%VG") {
            let p: u8 = pct.trim().parse().map_err(|_| err())?;
            if p == 0 || p > 100 {
                return Err(err());
            }
            return Ok(Size::PercentOfVg(p));
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().map_err(|_| err())?;
        // LVM's own convention: a bare K/M/G/T is a power of 1024.
        let factor: u64 = match unit.trim() {
            "" | "B" | "b" => 1,
            "K" | "k" | "KiB" => KIB,
            "M" | "m" | "MiB" => MIB,
            "G" | "g" | "GiB" => GIB,
            "T" | "t" | "TiB" => 1024 * GIB,
            "KB" | "kB" => 1000,
            "MB" => 1000_u64.pow(2),
            "GB" => 1000_u64.pow(3),
            "TB" => 1000_u64.pow(4),
            _ => return Err(err()),
        };
        let bytes = n.checked_mul(factor).ok_or_else(err)?;
        Size::bytes(bytes).map_err(|_| err())
    }
}

impl Size {
    /// A size in bytes, from 1 byte to `MAX_SIZE`.
    pub fn bytes(n: u64) -> Result<Size, SizeError> {
        if n == 0 || n > MAX_SIZE {
            return Err(SizeError(n.to_string()));
        }
        Ok(Size::Bytes(n))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Bytes(b) => write!(f, "{}", human(*b)),
            Size::PercentOfVg(p) => write!(f, "{p}%VG"),
        }
    }
}

/// `1.5 GiB`, `512 MiB`, `4096 B`: for logs and plans.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1024 * GIB),
        ("GiB", GIB),
        ("MiB", MIB),
        ("KiB", KIB),
    ];
    for (name, factor) in UNITS {
        if bytes >= factor {
            let whole = bytes / factor;
            let tenths = (bytes % factor) * 10 / factor;
            return if tenths == 0 {
                format!("{whole} {name}")
            } else {
                format!("{whole}.{tenths} {name}")
            };
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_like_lvm() {
        assert_eq!("1073741824".parse(), Ok(Size::Bytes(GIB)));
        assert_eq!("512M".parse(), Ok(Size::Bytes(512 * MIB)));
        assert_eq!("100G".parse(), Ok(Size::Bytes(100 * GIB)));
        assert_eq!("1GiB".parse(), Ok(Size::Bytes(GIB)));
        assert_eq!("500GB".parse(), Ok(Size::Bytes(500_000_000_000)));
        assert_eq!("2T".parse(), Ok(Size::Bytes(2048 * GIB)));
        assert_eq!("20%VG".parse(), Ok(Size::PercentOfVg(20)));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "G",
            "12X",
            "-5M",
            "0",
            "0%VG",
            "101%VG",
            "1.5G",
            "99999999999999T",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn resolves_percent_of_vg() {
        assert_eq!(Size::PercentOfVg(25).resolve(400 * GIB), 100 * GIB);
        assert_eq!(Size::Bytes(7).resolve(400 * GIB), 7);
    }

    #[test]
    fn prints_human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(256 * MIB), "256 MiB");
        assert_eq!(human(3 * GIB / 2), "1.5 GiB");
    }
}
