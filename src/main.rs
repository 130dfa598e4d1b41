//! The zshield command line. Invoked as `zshield_backup` it takes a backup.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use zshield::cmdline::{After, BootArgs, Mode, Wipe};
use zshield::config::DEFAULT_PATH;
use zshield::deadline::Watched;
use zshield::disk::blockmap;
use zshield::failpoint::Failpoints;
use zshield::health::BootOk;
use zshield::logging::{self, init_logging, Console, RUN_DIR};
use zshield::recovery::{self, Failure, Outcome, Request};

/// The backup's own log, beside the recoveries' reports.
const BACKUP_LOG: &str = "/var/log/zshield/backup.log";
/// `zshield upgrade`'s.
const UPGRADE_LOG: &str = "/var/log/zshield/upgrade.log";
/// `zshield boot-ok`'s: the health checks of each boot.
const BOOT_LOG: &str = "/var/log/zshield/boot.log";

#[derive(Parser)]
#[command(
    name = "zshield",
    version,
    about = "Factory reset, rollback and backup of the appliance's disk"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Where {
    /// Configuration file.
    #[arg(long, default_value = DEFAULT_PATH)]
    config: PathBuf,
    /// Target disk (overrides the configuration and zshield.target=).
    #[arg(long)]
    target: Option<String>,
    /// Golden root (overrides the configuration, zshield.golden= and root=).
    #[arg(long)]
    golden: Option<String>,
    /// Allow erasing a disk that holds something zshield did not make:
    /// `--wipe=SERIAL` that disk only, a bare `--wipe` the target when it is
    /// the one disk that could be (as zshield.wipe= on the kernel line).
    #[arg(long, num_args = 0..=1, default_missing_value = "yes", value_name = "SERIAL")]
    wipe: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the recovery the kernel command line asks for (zshield_recovery=),
    /// or the one given by --mode. Without either, do nothing.
    Recover {
        #[arg(long, value_enum)]
        mode: Option<Mode>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        place: Where,
    },
    /// Stop the boot at the failure screen when a recovery began to write a
    /// disk and its process died (the initramfs glue runs it after
    /// `recover`); nothing to do otherwise.
    Interrupted,
    /// Print what `recover --mode default` would do here, touching nothing.
    Plan {
        #[command(flatten)]
        place: Where,
    },
    /// Add a restore point of the running root, removing the oldest
    /// automatic ones beyond [restore_points] keep (on a classic-layout disk:
    /// replace its one backup); also run as `zshield_backup`, and daily by
    /// zshield-backup.timer.
    Backup {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// A restore point that rotation never removes.
        #[arg(long, value_name = "NAME", conflicts_with = "remove")]
        name: Option<String>,
        /// Remove the restore point NAME instead.
        #[arg(long, value_name = "NAME")]
        remove: Option<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply a vendor-signed upgrade bundle: check it (signature, metadata,
    /// this system), take a named restore point, apply it, restart into its
    /// trial boot, whose health checks commit it; a failure, a power cut or
    /// a failed trial ends in the rollback to that point.
    Upgrade {
        /// The bundle file (see `scripts/zshield-bundle`).
        bundle: PathBuf,
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// The vendor's public keys (minisign, *.pub).
        #[arg(long, default_value = zshield::signing::KEYS_DIR)]
        keys: PathBuf,
        /// Apply a version older than the installed one, or the same again.
        #[arg(long)]
        allow_downgrade: bool,
        /// Check the bundle and this system, print the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not restart at the end (the next restart is the trial boot, or
        /// after a failure the rollback).
        #[arg(long)]
        no_reboot: bool,
        /// Apply the bundle's manifest and packages to the root tree ROOT of
        /// an image being built, not to this system (the image builder).
        #[arg(long, value_name = "ROOT", conflicts_with_all = ["dry_run", "allow_downgrade", "no_reboot"])]
        image: Option<PathBuf>,
    },
    /// Run the health checks of this boot (/etc/zshield/health.d) and mark it
    /// good for GRUB's boot counting; reboot when a required check fails
    /// (zshield-boot-ok.service runs it once the system is up).
    BootOk {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Only record a failed check; do not reboot.
        #[arg(long)]
        no_reboot: bool,
    },
    /// Watch this boot until its health checks mark it good, and reboot it
    /// as a failed try when it sits in emergency or rescue mode or is not
    /// marked good in time ([boot] deadline; zshield-boot-deadline.service).
    BootDeadline {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Check a golden card (a device or an image file) against the block map
    /// it carries, range by range; writes nothing. Exit 1 when it does not match.
    VerifyGolden {
        /// The card, e.g. /dev/sdX just written with dd, or cf.img.
        card: PathBuf,
        /// Also check that one of these public keys (minisign, *.pub)
        /// signed the map; exit 1 when none did.
        #[arg(long, value_name = "DIR")]
        keys: Option<PathBuf>,
    },
    /// Make the block map of a golden card image (its file systems' used
    /// ranges and their SHA-256), store it on the image's reserved partition
    /// and print it (JSON). Run by the image builder.
    GoldenMap {
        /// The card image, e.g. build/image/cf.img.
        image: PathBuf,
        /// Sign the map with this minisign secret key (without a password),
        /// the vendor's: a unit with require_signed_map takes only such cards.
        #[arg(long, value_name = "SECRET_KEY")]
        sign_with: Option<PathBuf>,
    },
    /// Show the layout and the backup; exit 1 when there is no valid backup
    /// younger than two days.
    Status {
        #[arg(long, default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// The arguments as clap should see them: `zshield_backup ARGS` is
/// `zshield backup ARGS`, so that `zshield_backup --help` helps and takes no backup.
fn command_line(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut args: Vec<String> = args.into_iter().collect();
    let invoked_as = args.first().map(|a| a.rsplit('/').next().unwrap_or(a));
    if invoked_as == Some("zshield_backup") {
        args.splice(0..1, ["zshield".to_string(), "backup".to_string()]);
    }
    args
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(command_line(std::env::args()));
    let (boot, unread) = match BootArgs::read(std::path::Path::new("/")) {
        Ok(boot) => (boot, None),
        Err(e) => (BootArgs::default(), Some(e)),
    };
    // Whether the boot entry asks for a recovery is unknown: say so, never
    // take it for a normal boot.
    if let (Command::Recover { mode: None, .. }, Some(e)) = (&cli.command, &unread) {
        init_logging(None, Console::Every);
        log::error!(
            "cannot read {}: {e}; no disk was changed, no recovery runs",
            zshield::cmdline::PROC_CMDLINE
        );
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::Recover {
            mode,
            dry_run,
            place,
        } => recover_command(mode, dry_run, place, &boot),
        Command::Backup {
            config,
            name,
            remove,
            dry_run,
        } => {
            let request = match (name, remove) {
                (Some(name), _) => zshield::backup::Request::Named(name),
                (None, Some(name)) => zshield::backup::Request::Remove(name),
                (None, None) => zshield::backup::Request::Daily,
            };
            backup_command(&config, &request, dry_run)
        }
        Command::Interrupted => interrupted_command(&boot),
        Command::Upgrade {
            bundle,
            keys,
            image: Some(root),
            ..
        } => {
            init_logging(None, Console::Stderr);
            match zshield::upgrade::apply_to_image(&root, &bundle, &keys) {
                Ok(meta) => {
                    log::info!("{meta} applied to {}", root.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    log::error!("{}: {e:#}", bundle.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Upgrade {
            bundle,
            config,
            keys,
            allow_downgrade,
            dry_run,
            no_reboot,
            image: None,
        } => {
            let options = zshield::upgrade::Options {
                keys,
                allow_downgrade,
                dry_run,
            };
            upgrade_command(&config, &bundle, &options, no_reboot)
        }
        Command::BootOk { config, no_reboot } => boot_ok_command(&config, no_reboot),
        Command::BootDeadline { config } => boot_deadline_command(&config),
        Command::Status { config, json } => status_command(&config, json),
        Command::VerifyGolden { card, keys } => verify_golden_command(&card, keys.as_deref()),
        Command::GoldenMap { image, sign_with } => {
            init_logging(None, Console::Stderr);
            let made = blockmap::make(&image).and_then(|map| {
                if let Some(key) = &sign_with {
                    let signature = zshield::signing::sign(
                        &map.encode(),
                        key,
                        "zshield golden card block map",
                    )?;
                    blockmap::store_signature(&image, &signature)?;
                    log::info!("block map signed with {}", key.display());
                }
                Ok(map)
            });
            match made {
                Ok(map) => match std::io::stdout().write_all(&map.encode()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        log::error!("cannot print the block map: {e}");
                        ExitCode::FAILURE
                    }
                },
                Err(e) => {
                    log::error!("{e:#}; the image has no block map");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Plan { place } => {
            init_logging(None, Console::Stderr);
            let req = request(Mode::Default, place, &boot, true, After::Continue);
            match recovery::print_plan(&req) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn request(mode: Mode, place: Where, boot: &BootArgs, dry_run: bool, after: After) -> Request {
    Request {
        mode,
        config: place.config,
        target: place.target.or_else(|| boot.target.clone()),
        golden: place.golden.or_else(|| boot.golden.clone()),
        root: boot.root.clone(),
        wipe: match &place.wipe {
            Some(value) => Wipe::from_value(Some(value)),
            None => boot.wipe.clone(),
        },
        dry_run,
        after,
        failpoints: Failpoints {
            cut_after: boot.cut_after.clone(),
            crash_after: boot.crash_after.clone(),
        },
        skip_digests: boot.skip_digests,
        provision: boot.provision.clone(),
        copy: boot.copy.clone(),
        layout: boot.layout.clone(),
        backup: boot.backup.clone(),
        fallback: boot.fallback,
    }
}

fn recover_command(mode: Option<Mode>, dry_run: bool, place: Where, boot: &BootArgs) -> ExitCode {
    let in_initramfs = std::path::Path::new("/etc/initrd-release").exists();
    let continues = if in_initramfs {
        "; the normal boot continues"
    } else {
        ""
    };
    let console = if in_initramfs {
        Console::Every
    } else {
        Console::Stderr
    };
    let mode = match mode {
        Some(mode) => mode,
        None => match boot.mode() {
            // Every normal boot: nothing asked, nothing done, nothing printed,
            // unless the initramfs itself asks for a recovery.
            Ok(None) => {
                if !boot.ignored.is_empty() {
                    init_logging(None, console);
                    log::warn!(
                        "ignoring {}: only the boot entry can ask for a recovery, consent to a wipe or name the target; remove it from the image",
                        boot.ignored.join(", ")
                    );
                }
                return ExitCode::SUCCESS;
            }
            Ok(Some(mode)) => mode,
            Err(e) => {
                init_logging(None, console);
                log::error!("{e}; no disk was changed{continues}");
                log::logger().flush();
                return ExitCode::FAILURE;
            }
        },
    };
    init_logging(Some(&PathBuf::from(RUN_DIR).join("zshield.log")), console);
    let dry_run = dry_run || boot.dry_run;
    // A rollback cut off by a power loss took the card's hand-over marker
    // off the disk: the card's automatic mode finishes it, as `latest` would.
    let mode = if mode == Mode::Auto && recovery::rollback_cut_off(&place.config) {
        log::info!("the disk's last rollback was cut off: the automatic mode finishes it");
        Mode::Latest
    } else {
        mode
    };
    let after = match boot.after() {
        Ok(after) => after,
        Err(e) => {
            log::error!("{e}; no disk was changed{continues}");
            return ExitCode::FAILURE;
        }
    };
    // A dry run only shows the plan: go on booting unless told otherwise.
    // The automatic mode is the factory line's: a provisioned unit powers off.
    let after = match (boot.after.is_none(), dry_run, mode) {
        (true, true, _) => After::Continue,
        (true, false, Mode::Auto) => After::Poweroff,
        _ => after,
    };
    if !in_initramfs && !dry_run {
        log::error!("zshield recover changes disks and runs only in the initramfs; use `zshield plan` or --dry-run to see what it would do");
        return ExitCode::FAILURE;
    }
    let req = request(mode, place, boot, dry_run, after);
    let quiet = in_initramfs.then(logging::QuietConsole::begin);
    let result = recovery::recover(&req);
    drop(quiet);
    match result {
        Ok(Outcome::LeftAlone) => {
            log::info!("the target holds a complete system: nothing done{continues}");
            ExitCode::SUCCESS
        }
        Ok(outcome) => {
            // From here zshield's own rules decide what follows a write; on
            // a stop the mark stays, whatever ends the process before it.
            recovery::unfinished::end();
            if outcome == Outcome::Done {
                log::info!("done: {mode} recovery finished; {}", after_words(after));
            }
            if in_initramfs {
                recovery::after(after);
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            // The automatic mode's FAIL stays on the screen for the factory
            // line, unless zshield.after says otherwise.
            let auto_failed = mode == Mode::Auto && matches!(failure, Failure::Failed { .. });
            let stops = in_initramfs && recovery::failure_stops(&failure, req.root.as_deref());
            log::error!("{failure}{}", if stops { "" } else { continues });
            if stops {
                let after = if auto_failed && boot.after.is_none() {
                    After::Continue
                } else {
                    after
                };
                recovery::stop_after_failure(&failure, after);
            } else {
                recovery::unfinished::end();
            }
            log::logger().flush();
            ExitCode::FAILURE
        }
    }
}

/// The same rules as a failure zshield saw itself, for one it did not live
/// to see: its mark says which recovery and which disk.
fn interrupted_command(boot: &BootArgs) -> ExitCode {
    let Some(failure) = recovery::unfinished::left_behind() else {
        return ExitCode::SUCCESS;
    };
    init_logging(
        Some(&PathBuf::from(RUN_DIR).join("zshield.log")),
        Console::Every,
    );
    if recovery::failure_stops(&failure, boot.root.as_deref()) {
        log::error!("{failure}");
        recovery::stop_after_failure(&failure, boot.after().unwrap_or(After::Continue));
    } else {
        log::error!("{failure}; the normal boot continues");
        recovery::unfinished::end();
    }
    log::logger().flush();
    ExitCode::FAILURE
}

fn after_words(after: After) -> &'static str {
    match after {
        After::Reboot => "rebooting",
        After::Poweroff => "powering off",
        After::Continue => "the boot continues",
    }
}

fn backup_command(
    config: &std::path::Path,
    request: &zshield::backup::Request,
    dry_run: bool,
) -> ExitCode {
    let log = (!dry_run).then(|| PathBuf::from(BACKUP_LOG));
    init_logging(log.as_deref(), Console::Stderr);
    let start = std::time::Instant::now();
    log::info!(
        "backup starting at {} (zshield {})",
        logging::now_utc(),
        env!("CARGO_PKG_VERSION")
    );
    match zshield::backup::backup(config, request, dry_run) {
        Ok(()) => {
            let (total, tools) = (start.elapsed(), zshield::runner::time_in_tools());
            log::info!(
                "backup done in {:.1} s, {:.1} s of it in the tools it ran (lvm, rsync): {:.2} s of zshield's own",
                total.as_secs_f64(),
                tools.as_secs_f64(),
                total.saturating_sub(tools).as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("backup failed: {e:#}");
            if e.downcast_ref::<zshield::backup::TryLater>().is_some() {
                ExitCode::from(zshield::backup::TryLater::EXIT_CODE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn upgrade_command(
    config_path: &std::path::Path,
    bundle: &std::path::Path,
    options: &zshield::upgrade::Options,
    no_reboot: bool,
) -> ExitCode {
    use zshield::upgrade::{Applied, Failed, Refused, Stopped};
    let log = (!options.dry_run).then(|| PathBuf::from(UPGRADE_LOG));
    init_logging(log.as_deref(), Console::Stderr);
    log::info!(
        "upgrade with {} starting at {} (zshield {})",
        bundle.display(),
        logging::now_utc(),
        env!("CARGO_PKG_VERSION")
    );
    let result = zshield::config::Config::load(config_path)
        .map_err(anyhow::Error::from)
        .and_then(|config| zshield::upgrade::upgrade(&config, bundle, options));
    let restart = match result {
        Ok(Applied::DryRun) => return ExitCode::SUCCESS,
        Ok(Applied::OnTrial { point }) => {
            log::info!(
                "upgrade applied under the restore point {point}: {}",
                if no_reboot {
                    "the next restart is its trial boot"
                } else {
                    "restarting into its trial boot"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            log::error!(
                "{} is refused: {e:#}; nothing was changed",
                bundle.display()
            );
            return ExitCode::FAILURE;
        }
        Err(e) if e.downcast_ref::<Failed>().is_some() => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
        Err(e) if e.downcast_ref::<Stopped>().is_some() => {
            log::error!("{e:#}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            log::error!("{e:#}; nothing was changed");
            return ExitCode::FAILURE;
        }
    };
    if !no_reboot {
        if let Err(e) = zshield::runner::Cmd::new("systemctl").arg("reboot").run() {
            log::error!("cannot restart: {e:#}; restart by hand");
            return ExitCode::FAILURE;
        }
    }
    restart
}

fn boot_ok_command(config_path: &std::path::Path, no_reboot: bool) -> ExitCode {
    init_logging(Some(&PathBuf::from(BOOT_LOG)), Console::Stderr);
    let result = zshield::config::Config::load(config_path)
        .map_err(anyhow::Error::from)
        .and_then(|config| zshield::health::boot_ok(&config));
    match result {
        Ok(BootOk::NotCounted(why)) => {
            // The golden card's boots stay silent: nothing is counted there.
            log::debug!("nothing to mark: {why}");
            ExitCode::SUCCESS
        }
        Ok(BootOk::Good(detail)) => {
            log::info!("boot marked good: {detail}");
            ExitCode::SUCCESS
        }
        Ok(BootOk::Failed { detail, reboot }) => {
            let reboot = reboot && !no_reboot;
            let next = if reboot {
                "not marked good; rebooting for the next try (GRUB rolls back when the tries are used up)"
            } else {
                "not marked good"
            };
            log::error!("this boot failed: {detail}; {next}");
            log::logger().flush();
            if reboot {
                if let Err(e) = zshield::runner::Cmd::new("systemctl").arg("reboot").run() {
                    log::error!("cannot reboot: {e:#}; reboot by hand");
                }
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            log::error!("cannot mark this boot: {e:#}; the boot is not marked good (no backup is taken of it)");
            ExitCode::FAILURE
        }
    }
}

fn boot_deadline_command(config_path: &std::path::Path) -> ExitCode {
    // Not before there is something to say: at sysinit the root may still be
    // read-only, and the log file could not be opened.
    static LOGGING: std::sync::Once = std::sync::Once::new();
    let start_logging =
        || LOGGING.call_once(|| init_logging(Some(&PathBuf::from(BOOT_LOG)), Console::Stderr));
    let config = match zshield::config::Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            start_logging();
            log::error!("cannot watch this boot: {e:#}; a boot that stops is not rebooted");
            return ExitCode::FAILURE;
        }
    };
    match zshield::deadline::watch(&config, start_logging) {
        Ok(Watched::Done(why)) => {
            log::debug!("{why}");
            ExitCode::SUCCESS
        }
        Ok(Watched::NotRebooted(detail)) => {
            log::error!("this boot is not marked good: {detail}");
            ExitCode::FAILURE
        }
        Err(e) => {
            start_logging();
            log::error!("cannot watch this boot: {e:#}; a boot that stops is not rebooted");
            ExitCode::FAILURE
        }
    }
}

fn verify_golden_command(card: &std::path::Path, keys: Option<&std::path::Path>) -> ExitCode {
    init_logging(None, Console::Stderr);
    if let Some(dir) = keys {
        let signed = zshield::signing::keys(dir).and_then(|keys| {
            let stored = blockmap::load_if_present(card)
                .map_err(|e| format!("{e:#}"))?
                .ok_or("carries no block map")?;
            stored
                .signed_by(&keys)
                .map_err(|why| format!("its block map {why}"))
        });
        match signed {
            Ok(key) => log::info!(
                "{}: its block map is signed with {}",
                card.display(),
                key.display()
            ),
            Err(why) => {
                log::error!(
                    "{}: {why}; nothing was written; use a card written from the vendor's image",
                    card.display()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    match blockmap::verify(card) {
        Ok(v) => {
            log::info!(
                "{}: the golden card matches its block map: {} in {} ranges read in {:.1} s ({:.1} MB/s)",
                card.display(),
                zshield::units::human(v.bytes),
                v.ranges,
                v.seconds,
                v.bytes as f64 / v.seconds.max(0.001) / 1e6
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e:#}; nothing was written");
            ExitCode::FAILURE
        }
    }
}

fn status_command(config: &std::path::Path, json: bool) -> ExitCode {
    match zshield::status::read(config) {
        Ok(status) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
            } else {
                print!("{}", zshield::status::render(&status));
            }
            if status.healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("zshield: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(command_line(args.iter().map(|a| a.to_string())))
    }

    #[test]
    fn zshield_backup_is_the_backup_command_with_its_options() {
        let cli = parse(&["/usr/sbin/zshield_backup"]).unwrap();
        assert!(matches!(cli.command, Command::Backup { .. }));
        let cli = parse(&["zshield_backup", "--config", "/tmp/z.conf"]).unwrap();
        assert!(
            matches!(cli.command, Command::Backup { config, .. } if config == std::path::Path::new("/tmp/z.conf"))
        );
        let help = parse(&["zshield_backup", "--help"]).err().map(|e| e.kind());
        assert_eq!(help, Some(clap::error::ErrorKind::DisplayHelp));
        let cli = parse(&["/usr/sbin/zshield", "status"]).unwrap();
        assert!(matches!(cli.command, Command::Status { .. }));
    }
}
