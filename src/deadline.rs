//! `zshield boot-deadline` (zshield-boot-deadline.service, from early boot):
//! a disk system's boot that is not marked good in time reboots, so that
//! GRUB's count of boot tries moves on and its automatic rollback comes
//! without a person. It covers what neither a panic nor a failed health
//! check ends: systemd's emergency or rescue mode (waiting for a root
//! password nobody gives) and a start-up that hangs.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::events::Event;
use crate::health;
use crate::runner::Cmd;

/// The unit, named in what the console says (a person can stop it).
pub const UNIT: &str = "zshield-boot-deadline.service";

/// systemd's targets of a boot that stopped for a person.
const STOP_TARGETS: [(&str, &str); 2] = [
    ("emergency.target", "emergency mode"),
    ("rescue.target", "rescue mode"),
];

/// What the watch sees at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Since power-on (the kernel's uptime).
    pub uptime: Duration,
    pub good: bool,
    /// The stop mode this boot is in and the uptime when it was first seen.
    pub stopped: Option<(&'static str, Duration)>,
    /// What the deadline counts from, and its uptime: the start of the watch
    /// (the switch to the disk's root: a check of the root in the initramfs
    /// is not seen from here), or the end of a stop mode.
    pub since: (String, Duration),
    /// What holds the deadline off: a file system check or the health checks
    /// that are running.
    pub held_by: Option<String>,
}

/// What to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Marked good: nothing more to watch.
    Good,
    /// Left to a person: nothing more to watch (why).
    Leave(String),
    Wait,
    /// Reboot as a failed try, for this reason.
    Reboot(String),
}

/// The pure rule: a stop mode past `emergency_timeout` or a boot past its
/// deadline reboots. Work that may take longer than any deadline and ends on
/// its own (a file system check of a large volume, the health checks) holds
/// the deadline off, not a stop mode; a boot that leaves a stop mode (a person
/// got it going) has its deadline from then.
pub fn judge(seen: &Seen, deadline: u64, emergency_timeout: u64) -> Verdict {
    if seen.good {
        return Verdict::Good;
    }
    if let Some((mode, since)) = seen.stopped {
        if emergency_timeout == 0 {
            return Verdict::Leave(format!(
                "this boot stopped in systemd's {mode}, where it waits for a person ([boot] emergency_timeout = 0)"
            ));
        }
        let waited = seen.uptime.saturating_sub(since).as_secs();
        if waited >= emergency_timeout {
            return Verdict::Reboot(format!(
                "it stopped in systemd's {mode} and waited {waited} s for a person"
            ));
        }
        return Verdict::Wait;
    }
    if deadline == 0
        || seen.uptime.saturating_sub(seen.since.1).as_secs() < deadline
        || seen.held_by.is_some()
    {
        return Verdict::Wait;
    }
    Verdict::Reboot(format!(
        "it was not marked good within {deadline} s of {}",
        seen.since.0
    ))
}

/// The kernel's uptime, from /proc/uptime.
fn uptime() -> Result<Duration> {
    let text = std::fs::read_to_string("/proc/uptime").context("cannot read /proc/uptime")?;
    let seconds: f64 = text
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("cannot read the uptime in /proc/uptime: {text:?}"))?;
    Ok(Duration::from_secs_f64(seconds))
}

/// The stop mode systemd is in, if any (systemd not answering is none).
fn stop_mode() -> Option<&'static str> {
    let mut states = Vec::new();
    Cmd::new("systemctl")
        .arg("is-active")
        .args(STOP_TARGETS.map(|(unit, _)| unit))
        .run_limited(Duration::from_secs(10), |line| {
            states.push(line.to_string())
        })
        .ok()?;
    STOP_TARGETS
        .iter()
        .zip(&states)
        .find(|(_, state)| *state == "active")
        .map(|((_, mode), _)| *mode)
}

/// What holds the deadline off, if anything: a file system check that runs
/// (by its program's name), or the health checks.
fn holding() -> Option<String> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let fsck = entries.filter_map(|e| e.ok()).find_map(|entry| {
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        let comm = comm.trim();
        (comm.starts_with("fsck") || comm.starts_with("e2fsck"))
            .then(|| format!("the file system check that runs ({comm})"))
    });
    fsck.or_else(|| {
        let mut state = String::new();
        Cmd::new("systemctl")
            .args(["is-active", health::BOOT_OK_UNIT])
            .run_limited(Duration::from_secs(10), |line| state = line.to_string())
            .ok()?;
        (state == "activating").then(|| format!("the health checks ({})", health::BOOT_OK_UNIT))
    })
}

/// How the watch of a boot ended, when it did not reboot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// Marked good, or not a boot GRUB counts (why).
    Done(String),
    /// Not marked good, but a reboot would lead to the same boot: the
    /// disk's menu does not count tries.
    NotRebooted(String),
}

/// `zshield boot-deadline`: watches this boot until it is marked good, and
/// reboots it when it stops in emergency or rescue mode for longer than
/// `[boot] emergency_timeout` or is not marked good by `[boot] deadline`.
/// Logging starts when there is something to say (`start_logging`): at
/// sysinit the root may still be read-only.
pub fn watch(config: &Config, start_logging: impl FnOnce()) -> Result<Watched> {
    if let Some(why) = health::not_counted(config)? {
        return Ok(Watched::Done(why));
    }
    let boot = &config.boot;
    if boot.deadline == 0 && boot.emergency_timeout == 0 {
        return Ok(Watched::Done(
            "no deadline ([boot] deadline = 0, emergency_timeout = 0)".into(),
        ));
    }
    let mut start_logging = Some(start_logging);
    let mut say = move || {
        if let Some(start) = start_logging.take() {
            start();
        }
    };
    let mut stopped: Option<(&'static str, Duration)> = None;
    let mut since = ("the switch to the disk's root".to_string(), uptime()?);
    let mut told_of_hold = false;
    let mut tick = 0u64;
    loop {
        let now = uptime()?;
        // systemctl every 5 s; the file every second.
        if tick.is_multiple_of(5) {
            match (stop_mode(), stopped) {
                (Some(mode), None) => {
                    say();
                    stopped = Some((mode, now));
                    if boot.emergency_timeout != 0 {
                        log::warn!(
                            "this boot stopped in systemd's {mode}: it reboots for the next boot try in {} s (a person who wants to stay: systemctl stop {UNIT})",
                            boot.emergency_timeout
                        );
                    }
                }
                (None, Some((mode, _))) => {
                    say();
                    log::info!(
                        "this boot left systemd's {mode}: the boot deadline counts from now"
                    );
                    stopped = None;
                    since = (format!("leaving systemd's {mode}"), now);
                }
                _ => {}
            }
        }
        let past_deadline =
            boot.deadline != 0 && now.saturating_sub(since.1).as_secs() >= boot.deadline;
        let seen = Seen {
            uptime: now,
            good: health::marked_good(),
            stopped,
            since: since.clone(),
            held_by: if past_deadline && stopped.is_none() {
                holding()
            } else {
                None
            },
        };
        if let (Some(what), false) = (&seen.held_by, told_of_hold) {
            say();
            log::info!("the boot deadline ({} s) waits for {what}", boot.deadline);
            told_of_hold = true;
        }
        match judge(&seen, boot.deadline, boot.emergency_timeout) {
            Verdict::Good => return Ok(Watched::Done("this boot was marked good".into())),
            Verdict::Leave(why) => {
                say();
                log::warn!("{why}: the boot deadline no longer watches it");
                return Ok(Watched::Done(why));
            }
            Verdict::Wait => {
                std::thread::sleep(Duration::from_secs(1));
                tick += 1;
            }
            Verdict::Reboot(why) => {
                say();
                return reboot(config, &why);
            }
        }
    }
}

/// Records the failed try and reboots; returns only when the disk's menu
/// does not count tries (a reboot would only repeat this boot).
fn reboot(config: &Config, why: &str) -> Result<Watched> {
    // With /boot not mounted (the boot may have stopped for that) the count
    // cannot be read here, but GRUB keeps it.
    let grub_cfg = health::disk_grub_cfg();
    let tries = health::boot_tries().ok().flatten();
    let no_reboot = if grub_cfg.exists() && (!health::menu_counts(&grub_cfg) || tries.is_none()) {
        Some("the disk's GRUB does not count boot tries (no counting in its menu or no grubenv: run update-grub, or grub-install)")
    } else if tries
        .as_ref()
        .is_some_and(|t| t.fallback_started && t.tries >= config.boot.tries)
    {
        Some("the tries are used up after GRUB's automatic rollback, and its menu waits for a person")
    } else {
        None
    };
    if let Some(reason) = no_reboot {
        let detail = format!("{why}; {reason}: no reboot");
        health::record(config, &Event::now("boot", "failed", detail.clone()));
        return Ok(Watched::NotRebooted(detail));
    }
    let try_of = tries.map_or(String::new(), |state| {
        format!("; boot try {} of {}", state.tries.max(1), config.boot.tries)
    });
    let detail = format!("{why}{try_of}");
    health::record(config, &Event::now("boot", "failed", detail.clone()));
    log::error!(
        "this boot is not marked good: {detail}; no disk was changed; rebooting for the next try (GRUB rolls back when the tries are used up)"
    );
    log::logger().flush();
    let asked = Cmd::new("systemctl")
        .arg("reboot")
        .run_limited(Duration::from_secs(30), |line| {
            log::info!("systemctl: {line}")
        });
    if matches!(asked, Ok(f) if f.code == Some(0)) {
        // systemd stops this service on its way down.
        std::thread::sleep(Duration::from_secs(120));
    }
    log::error!("systemd did not reboot: the kernel reboots at once");
    log::logger().flush();
    nix::unistd::sync();
    nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT).context("cannot reboot")?;
    unreachable!("reboot(2) returned")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(uptime: u64) -> Seen {
        Seen {
            uptime: Duration::from_secs(uptime),
            good: false,
            stopped: None,
            since: (
                "the switch to the disk's root".into(),
                Duration::from_secs(30),
            ),
            held_by: None,
        }
    }

    #[test]
    fn a_boot_past_its_deadline_reboots_unless_good_or_held_off() {
        assert_eq!(judge(&seen(929), 900, 120), Verdict::Wait);
        assert_eq!(
            judge(&seen(930), 900, 120),
            Verdict::Reboot(
                "it was not marked good within 900 s of the switch to the disk's root".into()
            )
        );
        let good = Seen {
            good: true,
            ..seen(5000)
        };
        assert_eq!(judge(&good, 900, 120), Verdict::Good);
        let checking = Seen {
            held_by: Some("the file system check that runs (e2fsck)".into()),
            ..seen(5000)
        };
        assert_eq!(judge(&checking, 900, 120), Verdict::Wait);
        assert_eq!(judge(&seen(5000), 0, 120), Verdict::Wait);
    }

    #[test]
    fn a_stop_mode_reboots_after_its_own_timeout_even_while_held() {
        let stopped = |since, uptime| Seen {
            stopped: Some(("emergency mode", Duration::from_secs(since))),
            held_by: Some("the file system check that runs (fsck.ext4)".into()),
            ..seen(uptime)
        };
        assert_eq!(judge(&stopped(40, 159), 900, 120), Verdict::Wait);
        assert_eq!(
            judge(&stopped(40, 160), 900, 120),
            Verdict::Reboot(
                "it stopped in systemd's emergency mode and waited 120 s for a person".into()
            )
        );
        // 0 leaves a stopped boot to a person: not even the deadline reboots it.
        assert!(matches!(
            judge(&stopped(40, 5000), 900, 0),
            Verdict::Leave(_)
        ));
    }

    #[test]
    fn a_boot_that_left_a_stop_mode_has_its_deadline_from_then() {
        let left = |at, uptime| Seen {
            since: (
                "leaving systemd's emergency mode".into(),
                Duration::from_secs(at),
            ),
            ..seen(uptime)
        };
        assert_eq!(judge(&left(100, 999), 900, 120), Verdict::Wait);
        assert_eq!(
            judge(&left(100, 1000), 900, 120),
            Verdict::Reboot(
                "it was not marked good within 900 s of leaving systemd's emergency mode".into()
            )
        );
    }
}
