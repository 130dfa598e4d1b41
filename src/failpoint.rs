//! The test failpoint `zshield.test.cut_after=NAME`: a power loss after the
//! first step of that name (or, for `merge-started`, during a merge), so
//! that the QEMU scenarios can prove a cut-off recovery is finished later.
//! Only a binary built with the `failpoints` feature (the tests' golden) has
//! it: elsewhere these calls do nothing, and the argument is refused as
//! unknown (`cmdline`).

/// Cuts the power when `cut_after` names `step`, the step just finished.
pub fn after_step(cut_after: Option<&str>, step: &str, number: usize) {
    if cut_after == Some(step) {
        power_loss(&format!("after step {number}"));
    }
}

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
