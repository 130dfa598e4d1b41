# upgrade: vendor-signed upgrade bundles (zshield upgrade), through SeaBIOS in
# the product's boot order (card first), QEMU started once, nobody at the
# console; each reset the unit asks for powers it off and on (vm.sh --reboot
# cold). Bundles made on the host with scripts/zshield-bundle and the test
# vendor's key (the test golden trusts its public key, as the product trusts
# the vendor's from make image VENDOR_KEYS=).
# 1. A tampered bundle (one byte of its payload) is refused with one line and
#    nothing changed, a good one while dpkg holds its lock too; then the good one (acme 2.0: a file of its manifest, a .deb of
#    repos/, an upgrade.sh, a hook) is applied under the named restore point
#    upgrade-acme-2.0; zshield status shows it on trial; restart.
# 2. The trial boot's health checks pass: committed. Then acme 3.0, whose
#    hook adds a required health check that fails; restart.
# 3. Its trial boot fails the check: boot-ok uses the tries up and restarts,
#    GRUB rolls back to upgrade-acme-3.0 on its own; the restored system is
#    acme 2.0, the event log tells the story, the data volumes keep their
#    files. Then acme 3.1, whose hook cuts the power (sysrq b, after a sync)
#    halfway through.
# 4. The next power-on rolls back to upgrade-acme-3.1: nothing of 3.1 is left.
target=$ZT_DIR/target.img
zt_provisioned "$target"

key=$ZT_REPO/tests/qemu/keys/ztest-vendor.key
bundles=$ZT_DIR/bundles
rm -rf "$bundles"
mkdir -p "$bundles"

# tree NAME VERSION: a data/ tree with a manifest that installs
# /etc/acme/release ("acme VERSION") on every architecture and a file for ARM
# machines only.
tree() {
    local d=$bundles/$1/data
    mkdir -p "$d/files" "$d/hooks"
    echo "acme $2" >"$d/files/release"
    echo "for ARM" >"$d/files/arm-only"
    printf '%s\n' '[[GENERIC]]' 'release /etc/acme/release 0644 root:root' \
        '[[ARM]]' 'arm-only /etc/acme/arm-only 0644 root:root' >"$d/files.install"
    echo "$d"
}
script() { # PATH BODY
    mkdir -p "$(dirname "$1")"
    printf '#!/bin/sh\nset -e\n%s\n' "$2" >"$1"
    chmod 755 "$1"
}
bundle() { # NAME VERSION
    "$ZT_REPO/scripts/zshield-bundle" --key "$key" --name acme --version "$2" \
        "$bundles/$1/data" "$bundles/$1.zsb" | sed -e "s/^/  [$ZT_NAME] /"
}

d=$(tree good 2.0)
pkg=$bundles/pkg
mkdir -p "$pkg/DEBIAN" "$pkg/usr/share/ztest-acme"
printf '%s\n' 'Package: ztest-acme' 'Version: 2.0' 'Architecture: all' \
    'Maintainer: zshield tests <tests@invalid>' 'Description: zshield test package of the acme bundle' >"$pkg/DEBIAN/control"
echo "2.0" >"$pkg/usr/share/ztest-acme/version"
mkdir -p "$d/repos"
dpkg-deb --root-owner-group -b "$pkg" "$d/repos/ztest-acme_2.0_all.deb" >/dev/null
script "$d/upgrade/web/2.0/upgrade.sh" 'mkdir -p /var/lib/ztest-acme
cp web.conf /var/lib/ztest-acme/web.conf
echo "ztest: upgrade.sh of web 2.0 ran"'
echo "listen 8080" >"$d/upgrade/web/2.0/web.conf"
# The component's way back to its first version: not run by an upgrade.
script "$d/upgrade/web/origin/upgrade.sh" 'echo "ztest: origin ran"; exit 1'
# The hook also tries dpkg's front-end lock, which the upgrade holds.
cat >"$d/hooks/10_note.sh" <<'HOOK'
#!/bin/sh
set -e
echo "acme 2.0" >/var/lib/ztest-acme/hook
if perl -MFcntl -e 'open(my $f, ">>", $ARGV[0]) or die; fcntl($f, F_SETLK, pack("s s x4 q q l x4", F_WRLCK, 0, 0, 0, 0)) or exit 1' /var/lib/dpkg/lock-frontend
then echo free; else echo held; fi >/var/lib/ztest-acme/dpkg-lock
echo "ztest: hook of acme 2.0 ran"
HOOK
chmod 755 "$d/hooks/10_note.sh"
bundle good 2.0
cp "$bundles/good.zsb" "$bundles/tampered.zsb"
offset=$(grep -abo 'listen 8080' "$bundles/tampered.zsb" | cut -d: -f1)
printf 'L' | dd of="$bundles/tampered.zsb" bs=1 seek="$offset" conv=notrunc status=none

d=$(tree bad 3.0)
script "$d/hooks/10_breaks.sh" 'mkdir -p /etc/zshield/health.d/required
printf "#!/bin/sh\necho \"ztest: acme 3.0 does not start\"\nexit 1\n" >/etc/zshield/health.d/required/60-ztest-acme
chmod 755 /etc/zshield/health.d/required/60-ztest-acme'
bundle bad 3.0

d=$(tree cut 3.1)
script "$d/hooks/10_power_cut.sh" 'echo half >/etc/acme/half-applied
sync
echo "ztest: the power fails now"
echo b >/proc/sysrq-trigger
sleep 60'
bundle cut 3.1

{
    for b in tampered good bad cut; do
        echo "base64 -d >/run/ztest-$b.zsb <<'B64'"
        base64 "$bundles/$b.zsb"
        echo "B64"
    done
} >"$bundles/embedded.sh"

zt_cmd "$ZT_DIR/upgrade.cmd" "$bundles/embedded.sh" - <<'SCRIPT'
stage_file=/home/ztest-upgrade-stage
stage=$(cat "$stage_file" 2>/dev/null || echo start)
events=/var/log/audit/zshield/events.jsonl
points() { lvs --noheadings -o lv_name vgroup | tr -d ' ' | grep '^rp-' | sort | paste -sd' '; }
tags_of() { lvs --noheadings -o lv_tags "vgroup/$1" | tr -d ' '; }
upgrade_events() {
    grep -oE '"event":"(upgrade|automatic-rollback)","status":"[a-z-]*"' "$events" | cut -d'"' -f4,8 | tr '"' ' ' | paste -sd,
}
next_stage() { echo "$1" >"$stage_file"; sync; }
echo "ZTEST upgrade-stage=$stage"
case $stage in
start)
    check boot-marked-good bash -c 'zshield status | grep -q "^boot: this boot is marked good"'
    before=$(points)
    check tampered-refused bash -c '! zshield upgrade /run/ztest-tampered.zsb 2>/run/ztest-tampered.err'
    check tampered-says-why grep -q "^zshield: error: /run/ztest-tampered.zsb is refused: its data.tar does not match the SHA-256 its signed metadata names: the bundle was changed after it was signed; nothing was changed$" /run/ztest-tampered.err
    check tampered-changes-nothing bash -c "[ '$(points)' = '$before' ] && [ ! -e /etc/acme ] && [ ! -e /var/lib/zshield/upgrade ]"
    # dpkg at work (its front-end lock held, as apt holds it): refused.
    perl -MFcntl -e 'open(my $f, ">>", $ARGV[0]) or die "$!"; my $lock = pack("s s x4 q q l x4", F_WRLCK, 0, 0, 0, 0);
        fcntl($f, F_SETLKW, $lock) or die "lock: $!"; $| = 1; print "locked\n"; sleep 120;' /var/lib/dpkg/lock-frontend >/run/ztest-dpkg.out &
    dpkg_holder=$!
    for _ in $(seq 50); do grep -q locked /run/ztest-dpkg.out && break; sleep 0.2; done
    check refused-during-dpkg bash -c 'out=$(zshield upgrade /run/ztest-good.zsb 2>&1); [ $? = 1 ] && grep -q "dpkg.s lock /var/lib/dpkg/lock-frontend is held (process [0-9]*): packages are being changed" <<<"$out"'
    kill "$dpkg_holder"
    check dry-run-plans bash -c 'zshield upgrade --dry-run /run/ztest-good.zsb 2>&1 | grep -Eq "plan: +5\. install 1 file: /etc/acme/release \(0644 root:root\)"'
    check dry-run-changes-nothing bash -c "[ '$(points)' = '$before' ] && [ ! -e /etc/acme ]"
    next_stage good
    start=$(date +%s%N)
    check good-applied zshield upgrade --no-reboot /run/ztest-good.zsb
    ms=$((($(date +%s%N) - start) / 1000000))
    echo "ZTEST upgrade-apply-s=$((ms / 1000)).$(printf %03d $((ms % 1000)))"
    check upgrade-sh-logged grep -q "upgrade upgrade/web/2.0/upgrade.sh: ztest: upgrade.sh of web 2.0 ran" /var/log/zshield/upgrade.log
    check hook-logged grep -q "hook hooks/10_note.sh: ztest: hook of acme 2.0 ran" /var/log/zshield/upgrade.log
    check point-tagged-for-trial bash -c "[ '$(tags_of rp-upgrade-acme-2.0)' = zshield_upgrade_trial ]"
    check status-shows-trial bash -c 'zshield status | grep -q "^upgrade: under the restore point rp-upgrade-acme-2.0, on trial"'
    check backup-refused-on-trial bash -c 'out=$(zshield_backup 2>&1); [ $? != 0 ] && grep -q "an upgrade is being applied or on trial" <<<"$out"'
    check origin-not-run bash -c '! grep -q "ztest: origin ran" /var/log/zshield/upgrade.log'
    systemctl reboot
    sleep 600
    ;;
good)
    check good-committed bash -c "grep -q '\"event\":\"upgrade\",\"status\":\"committed\"' $events"
    check trial-tag-gone bash -c "[ -z '$(tags_of rp-upgrade-acme-2.0)' ]"
    check manifest-file expect_eq /etc/acme/release "$(cat /etc/acme/release)" "acme 2.0"
    check other-arch-file-skipped test ! -e /etc/acme/arm-only
    check deb-installed expect_eq "ztest-acme" "$(dpkg-query -W -f '${Version} ${Status}' ztest-acme)" "2.0 install ok installed"
    check upgrade-sh-ran grep -qx "listen 8080" /var/lib/ztest-acme/web.conf
    check hook-ran grep -qx "acme 2.0" /var/lib/ztest-acme/hook
    check dpkg-locked-throughout grep -qx held /var/lib/ztest-acme/dpkg-lock
    check version-recorded grep -qx 'version = "2.0"' /var/lib/zshield/bundles/acme.toml
    check staging-removed test ! -e /var/lib/zshield/upgrade
    check same-again-refused bash -c 'out=$(zshield upgrade --dry-run /run/ztest-good.zsb 2>&1); [ $? = 1 ] && grep -q "acme 2.0 is installed, and 2.0 is not newer: pass --allow-downgrade" <<<"$out"'
    echo "user data before acme 3.0" >/home/ztest-user-file
    next_stage bad
    zshield upgrade /run/ztest-bad.zsb
    sleep 600
    ;;
bad)
    if [ -e /etc/zshield/health.d/required/60-ztest-acme ]; then
        # acme 3.0's trial boot: boot-ok failed and restarts the unit.
        sleep 600
    fi
    check rolled-back-to-2.0 expect_eq /etc/acme/release "$(cat /etc/acme/release)" "acme 2.0"
    check rolled-back-event grep -q '"event":"upgrade","status":"rolled-back","detail":"to the restore point rp-upgrade-acme-3.0: its trial boot was not marked good' "$events"
    check failed-check-named grep -q 'required/60-ztest-acme (exit status 1); boot try 1 of 3; the upgrade on trial is rolled back to its restore point rp-upgrade-acme-3.0 at the next start' "$events"
    check bad-point-untagged bash -c "[ -z '$(tags_of rp-upgrade-acme-3.0)' ]"
    check user-file-kept grep -qx "user data before acme 3.0" /home/ztest-user-file
    check version-back-to-2.0 grep -qx 'version = "2.0"' /var/lib/zshield/bundles/acme.toml
    check no-upgrade-in-status bash -c '! zshield status | grep -q "^upgrade:"'
    # The point held the unpacked bundle; the boot marked good removed it.
    check leftover-staging-removed test ! -e /var/lib/zshield/upgrade
    next_stage cut
    zshield upgrade /run/ztest-cut.zsb
    sleep 600
    ;;
cut)
    check cut-rolled-back expect_eq /etc/acme/release "$(cat /etc/acme/release)" "acme 2.0"
    check nothing-half-applied test ! -e /etc/acme/half-applied
    check cut-event grep -q '"event":"upgrade","status":"rolled-back","detail":"to the restore point rp-upgrade-acme-3.1: it was stopped while it was being applied' "$events"
    check cut-point-untagged bash -c "[ -z '$(tags_of rp-upgrade-acme-3.1)' ]"
    check user-file-kept-again grep -qx "user data before acme 3.0" /home/ztest-user-file
    check events-tell-the-story expect_eq "upgrade events" "$(upgrade_events)" \
        "upgrade applying,upgrade applied,upgrade committed,upgrade applying,upgrade applied,automatic-rollback done,upgrade rolled-back,upgrade applying,automatic-rollback done,upgrade rolled-back"
    # A boot that finds an upgrade still being applied (its used-up tries
    # never reached the disk, or a person chose the entry) is not kept:
    # not marked good, the tries used up for GRUB's rollback.
    lvchange --addtag zshield_upgrade_applying vgroup/rp-upgrade-acme-3.1
    check applying-not-kept bash -c 'out=$(zshield boot-ok --no-reboot 2>&1); [ $? != 0 ] && grep -q "an upgrade was being applied when the unit stopped: this boot is not marked good, and the next start rolls back to its restore point rp-upgrade-acme-3.1" <<<"$out"'
    check applying-uses-tries-up bash -c '[ "$(grub-editenv /boot/grub/grubenv list | grep zshield_boot_tries=)" = zshield_boot_tries=3 ]'
    lvchange --deltag zshield_upgrade_applying vgroup/rp-upgrade-acme-3.1
    grub-editenv /boot/grub/grubenv set zshield_boot_tries=0
    ;;
esac
SCRIPT
zt_vm upgrade --cf "$ZT_CF" --disk "$target" --reboot cold --cmd "$ZT_DIR/upgrade.cmd" --timeout 2400
zt_info "the unit reset itself $(grep -ac '^vm: the guest reset the board' "$ZT_LOG") times"
zt_assert_line "ztest: acme 3.0 does not start"
zt_assert_line "Roll back the hard disk system: its boots failed"
zt_assert_count_min "zshield.fallback=boot-tries" 2
zt_assert_line "end the upgrade whose restore point is vgroup/rp-upgrade-acme-3.1"
zt_assert_value upgrade-stage cut
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/upgrade.cmd"
zt_info "acme 2.0 applied in $(zt_value upgrade-apply-s) s in the VM"
zt_info "rollback phases: $(grep -a 'zshield: phase ' "$ZT_LOG" | sed 's/.*phase //' | tr -d '\r' | paste -sd' ')"
