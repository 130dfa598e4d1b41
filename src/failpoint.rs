//! The test failpoints `zshield.test.cut_after=NAME`, a power loss after the
//! first step of that name, and
//! `zshield.test.crash_after=NAME`, zshield's process dying there (as killed
//! or out of memory), so that the QEMU scenarios can prove a cut-off
//! recovery is finished later and a dead one never boots on. Only a binary
//! built with the `failpoints` feature (the tests' golden) has them:
//! elsewhere these calls do nothing, and the arguments are refused as
//! unknown (`cmdline`).

/// The steps after which a test cuts the power or kills zshield.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failpoints {
    pub cut_after: Option<String>,
    pub crash_after: Option<String>,
}

impl Failpoints {
    /// After `step`, the step just finished: the power cut or the crash asked for.
    pub fn after_step(&self, step: &str, number: usize) {
        if self.cut_after.as_deref() == Some(step) {
            power_loss(&format!("after step {number}"));
        }
        if self.crash_after.as_deref() == Some(step) {
            crash(&format!("after step {number}"));
        }
    }
}

/// zshield's process ends here, nothing unwound, nothing synced.
#[cfg(feature = "failpoints")]
fn crash(when: &str) {
    log::warn!("test failpoint zshield.test.crash_after: zshield dies {when}");
    log::logger().flush();
    std::process::abort();
}

#[cfg(not(feature = "failpoints"))]
fn crash(_when: &str) {}

/// Off at once, with what is not yet on the disks lost.
#[cfg(feature = "failpoints")]
pub fn power_loss(when: &str) {
    let line = format!("test failpoint zshield.test.cut_after: cutting the power {when}");
    log::warn!("{line}");
    log::logger().flush();
    let Err(e) = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    log::error!("cannot cut the power: {e}");
}

#[cfg(not(feature = "failpoints"))]
pub fn power_loss(_when: &str) {}
