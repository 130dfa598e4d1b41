//! The firmware the disk's GRUB serves: what the configuration asks for,
//! what the golden can install, whether the layout has an EFI system
//! partition, and what this machine booted through.

use crate::config::{Config, Firmware};
use crate::recovery::probe::Probe;
use crate::recovery::step::Refusal;

use super::refuse;

/// The firmware a disk is made to boot through, and why not UEFI when it
/// does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub bios: bool,
    pub uefi: bool,
    pub no_uefi: Option<String>,
}

/// What the disk will boot through; `esp` says whether its layout has (or
/// gets) an EFI system partition. BIOS costs nothing where it is not used
/// (GPT's BIOS boot partition, the MBR's boot code), so `auto` always
/// serves it; it refuses a new layout that this machine, started through
/// UEFI, could not boot.
pub fn served(probe: &Probe, config: &Config, esp: bool) -> Result<Served, Refusal> {
    let no_uefi = match (&probe.golden.efi, esp) {
        (Err(why), _) => Some(why.clone()),
        (Ok(()), false) => Some(
            "the disk's zshield layout has no EFI system partition (made before zshield made them, or with boot.firmware = \"bios\"), and its data volumes leave no room for one"
                .to_string(),
        ),
        (Ok(()), true) => None,
    };
    let bios_only = |no_uefi: Option<String>| Served {
        bios: true,
        uefi: false,
        no_uefi,
    };
    match (config.boot.firmware, no_uefi) {
        (Firmware::Bios, no_uefi) => {
            if probe.booted_uefi {
                log::warn!("this machine started through UEFI, but boot.firmware = \"bios\": keep the board's legacy (CSM) boot on");
            }
            Ok(bios_only(no_uefi))
        }
        (Firmware::Uefi, Some(why)) => refuse(format!(
            "boot.firmware = \"uefi\", but the disk could not boot through UEFI: {why}"
        )),
        (Firmware::Uefi, None) => Ok(Served {
            bios: false,
            uefi: true,
            no_uefi: None,
        }),
        (Firmware::Auto, Some(why)) if probe.booted_uefi && esp => refuse(format!(
            "this machine started through UEFI, but the disk could boot through BIOS only: {why}"
        )),
        (Firmware::Auto, Some(why)) => {
            if probe.booted_uefi {
                log::warn!("this machine started through UEFI, but the disk boots through BIOS only ({why}): keep the board's legacy (CSM) boot on");
            }
            Ok(bios_only(Some(why)))
        }
        (Firmware::Auto, None) => Ok(Served {
            bios: true,
            uefi: true,
            no_uefi: None,
        }),
    }
}

/// The plan's line about it: what, the setting, how this machine started
/// and, under `auto`, why not UEFI.
pub fn describe(served: &Served, config: &Config, booted_uefi: bool) -> String {
    let what = match (served.bios, served.uefi) {
        (true, true) => "BIOS and UEFI with Secure Boot",
        (false, true) => "UEFI with Secure Boot only",
        _ => "BIOS only",
    };
    let booted = if booted_uefi { "UEFI" } else { "BIOS" };
    let why = match (config.boot.firmware, &served.no_uefi) {
        (Firmware::Auto, Some(why)) => format!("; not UEFI: {why}"),
        _ => String::new(),
    };
    format!(
        "the disk boots through {what} (boot.firmware = {}; this machine started through {booted}{why})",
        config.boot.firmware
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::blank_probe;

    fn config(firmware: Firmware) -> Config {
        let mut c = Config::default();
        c.boot.firmware = firmware;
        c
    }

    fn firmwares(s: Result<Served, Refusal>) -> (bool, bool) {
        let s = s.unwrap();
        (s.bios, s.uefi)
    }

    #[test]
    fn auto_serves_bios_and_uefi_where_it_can() {
        let mut probe = blank_probe();
        let auto = config(Firmware::Auto);
        assert_eq!(firmwares(served(&probe, &auto, true)), (true, true));
        let old_layout = served(&probe, &auto, false).unwrap();
        assert_eq!((old_layout.bios, old_layout.uefi), (true, false));
        assert!(describe(&old_layout, &auto, false).ends_with("this machine started through BIOS; not UEFI: the disk's zshield layout has no EFI system partition (made before zshield made them, or with boot.firmware = \"bios\"), and its data volumes leave no room for one)"));
        probe.booted_uefi = true;
        // An old layout on a UEFI machine is finished as it is (BIOS, with
        // a warning): its data volumes are on it.
        assert_eq!(firmwares(served(&probe, &auto, false)), (true, false));
        probe.golden.efi = Err("the golden has no shim".into());
        let refusal = served(&probe, &auto, true).unwrap_err().0;
        assert!(
            refusal.contains("started through UEFI") && refusal.contains("the golden has no shim"),
            "{refusal}"
        );
        probe.booted_uefi = false;
        let no_shim = served(&probe, &auto, true).unwrap();
        assert_eq!(
            describe(&no_shim, &auto, false),
            "the disk boots through BIOS only (boot.firmware = auto; this machine started through BIOS; not UEFI: the golden has no shim)"
        );
    }

    #[test]
    fn bios_and_uefi_serve_one_firmware_or_refuse() {
        let mut probe = blank_probe();
        let bios = config(Firmware::Bios);
        let uefi = config(Firmware::Uefi);
        assert_eq!(firmwares(served(&probe, &bios, true)), (true, false));
        assert_eq!(
            describe(&served(&probe, &bios, true).unwrap(), &bios, false),
            "the disk boots through BIOS only (boot.firmware = bios; this machine started through BIOS)"
        );
        assert_eq!(firmwares(served(&probe, &uefi, true)), (false, true));
        let refusal = served(&probe, &uefi, false).unwrap_err().0;
        assert!(refusal.contains("no EFI system partition"), "{refusal}");
        probe.golden.efi = Err("no mkfs.fat".into());
        assert!(served(&probe, &uefi, true).is_err());
        assert!(served(&probe, &bios, true).is_ok());
    }
}
