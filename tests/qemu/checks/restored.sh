# ---- tests/qemu/checks/restored.sh: a disk provisioned by zshield_recovery=default or auto ----
# Runs on the provisioned disk booted alone through its own GRUB. GOLDEN_* come
# from the golden's golden.env.

fstab_is_not_golden() {
    local hits
    hits=$(grep -v '^[[:space:]]*#' /etc/fstab | grep -E "LABEL=golden|$GOLDEN_ROOT_UUID|$GOLDEN_BOOT_UUID") || return 0
    echo "fstab still names the golden: $hits"
    return 1
}

lv_exists() { lvs --noheadings -o lv_name "vgroup/$1"; }

# The thin layout: lv-root in the pool, the factory's restore point of it,
# the GRUB submenu that offers it; the classic one (zshield.layout=classic):
# snap0 of lv-root.
first_restore_point() {
    if [ "$(lvs --noheadings -o lv_name vgroup/snap0 2>/dev/null | tr -d ' ')" = snap0 ]; then
        expect_eq "origin of vgroup/snap0" "$(lvs --noheadings -o origin vgroup/snap0 | tr -d ' ')" lv-root
        return
    fi
    expect_eq "pool of vgroup/lv-root" "$(lvs --noheadings -o pool_lv vgroup/lv-root | tr -d ' ')" lv-pool || return 1
    expect_eq "origin of vgroup/rp-factory" "$(lvs --noheadings -o origin vgroup/rp-factory | tr -d ' ')" lv-root || return 1
    grep -qx $'\tzshield_restore_point factory' /boot/grub/zshield-points.cfg ||
        { echo "restore menu: $(cat /boot/grub/zshield-points.cfg 2>&1)"; return 1; }
    grep -q "^submenu 'Roll back to a restore point'" /boot/grub/grub.cfg
}

boot_is_mounted() {
    expect_eq "/boot file system" "$(findmnt -no FSTYPE /boot)" ext4 &&
        test -e "/boot/vmlinuz-$(uname -r)"
}

fills_its_device() { # MOUNT_POINT: its ext4 was grown to all of its partition or volume
    local dev blocks block_size
    dev=$(findmnt -no SOURCE "$1")
    read -r blocks block_size < <(dumpe2fs -h "$dev" 2>/dev/null |
        awk -F: '/^Block count:/ { c = $2 + 0 } /^Block size:/ { s = $2 + 0 } END { print c, s }')
    expect_eq "$1 file system bytes" "$((blocks * block_size))" "$(blockdev --getsize64 "$dev")"
}

own_identity() { # MOUNT_POINT LABEL GOLDEN_UUID: a copy never carries the golden's names
    local dev uuid
    dev=$(findmnt -no SOURCE "$1")
    uuid=$(blkid -s UUID -o value "$dev")
    expect_eq "$1 label" "$(blkid -s LABEL -o value "$dev")" "$2" || return 1
    if [ -z "$uuid" ] || [ "$uuid" = "$3" ]; then
        echo "$1 UUID '$uuid' (golden's: $3)"
        return 1
    fi
}

EVENTS=/var/log/audit/zshield/events.jsonl

reset_in_event_log() { # the event log (on lv-audit) has the reset, and status shows it
    grep -q '"event":"factory-reset","status":"done"' "$EVENTS" || { echo "events: $(cat "$EVENTS" 2>&1)"; return 1; }
    zshield status 2>&1 | grep -q "^event: .* factory-reset done" || { echo "status: $(zshield status 2>&1)"; return 1; }
}

json_report() {
    local f
    for f in /var/log/zshield/*.json; do
        [ -s "$f" ] && [ "$(head -c1 "$f")" = "{" ] && return 0
    done
    echo "no JSON report in /var/log/zshield: $(ls -la /var/log/zshield 2>&1)"
    return 1
}

no_suid_no_dev() { # MOUNT_POINT
    local options
    options=$(findmnt -no OPTIONS "$1")
    [[ ",$options," == *,nosuid,* && ",$options," == *,nodev,* ]] || { echo "$1 options: $options"; return 1; }
}

reports_private() { # every report and log copy, and the event log: 0640 root:adm
    local f bad=""
    for f in /var/log/zshield/*.json /var/log/zshield/*.log "$EVENTS"; do
        [ -e "$f" ] || continue
        [ "$(stat -c %a:%U:%G "$f")" = 640:root:adm ] || bad="$bad $f=$(stat -c %a:%U:%G "$f")"
    done
    [ -z "$bad" ] || { echo "not 0640 root:adm:$bad"; return 1; }
}

cmdline_root() {
    tr ' ' '\n' </proc/cmdline | grep -qx 'root=/dev/mapper/vgroup-lv--root' ||
        { echo "cmdline: $(cat /proc/cmdline)"; return 1; }
}

capability_kept() { getcap "$CAP_FIXTURE" | grep -q 'cap_net_raw[=+]ep'; }
acl_kept() { getfacl -np "$FIXTURES/acl-file" | grep -qx 'user:1234:r--'; }
hardlink_kept() {
    expect_eq "inode of hardlink-b" "$(stat -c %i "$FIXTURES/hardlink-b")" "$(stat -c %i "$FIXTURES/hardlink-a")" &&
        expect_eq "links of hardlink-a" "$(stat -c %h "$FIXTURES/hardlink-a")" 2
}
sparse_kept() {
    expect_eq "size of sparse-64M" "$(stat -c %s "$FIXTURES/sparse-64M")" 67108864 || return 1
    local kib
    kib=$(du -k "$FIXTURES/sparse-64M" | cut -f1)
    [ "$kib" -lt 1024 ] || { echo "sparse-64M uses $kib KiB: its holes were filled"; return 1; }
}
owner_kept() { expect_eq "owner of orphan-uid" "$(stat -c %u:%g "$FIXTURES/orphan-uid")" 4321:4321; }

check root-is-lv-root expect_eq "root source" "$(findmnt -no SOURCE /)" /dev/mapper/vgroup-lv--root
check cmdline-root cmdline_root
check fstab-not-golden fstab_is_not_golden
check fstab-keeps-tmpfs grep -qE '^tmpfs[[:space:]]+/tmp[[:space:]]+tmpfs' /etc/fstab
check lv-root lv_exists lv-root
check first-restore-point first_restore_point
check lv-user lv_exists lv-user
check lv-audit lv_exists lv-audit
check home-on-lv-user expect_eq "/home source" "$(findmnt -no SOURCE /home)" /dev/mapper/vgroup-lv--user
check audit-on-lv-audit expect_eq "/var/log/audit source" "$(findmnt -no SOURCE /var/log/audit)" /dev/mapper/vgroup-lv--audit
check boot-mounted boot_is_mounted
check card-hands-over-to-it test -f /boot/zshield/complete
check root-fills-lv fills_its_device /
check boot-fills-partition fills_its_device /boot
check root-own-identity own_identity / lv-root "$GOLDEN_ROOT_UUID"
check boot-own-identity own_identity /boot boot "$GOLDEN_BOOT_UUID"
# The GRUB password hash (the test golden has one) is root's alone.
check password-defaults-private expect_eq "mode of the password defaults" "$(stat -c %a /etc/default/grub.d/zshield-password.cfg)" 600
check password-menu-private expect_eq "mode of grub.cfg" "$(stat -c %a /boot/grub/grub.cfg)" 600
# The menu zshield made (beside the old one, then renamed) restarts an entry
# that does not start (grub/40_zshield).
check menu-restarts-an-entry-that-fails bash -c "grep -q -- '--id zshield-restart' /boot/grub/grub.cfg && grep -qE '^\s*set fallback=[0-9]+' /boot/grub/grub.cfg"
check json-report json_report
check reset-in-event-log reset_in_event_log
check reports-private reports_private
check home-nosuid-nodev no_suid_no_dev /home
check audit-nosuid-nodev no_suid_no_dev /var/log/audit
check fixture-capability capability_kept
check fixture-acl acl_kept
check fixture-hardlink hardlink_kept
check fixture-sparse sparse_kept
check fixture-uid-4321 owner_kept

# For the record in make test's output: how long the golden copy took, from the
# newest factory reset's report.
shopt -s nullglob
reset_reports=(/var/log/zshield/*-default.json /var/log/zshield/*-auto.json)
shopt -u nullglob
mapfile -t reset_reports < <(printf '%s\n' "${reset_reports[@]}" | LC_ALL=C sort)
for step in verify-golden copy-root-blocks copy-root copy-boot-blocks copy-boot keep-boot-copy; do
    echo "ZTEST $step-seconds=$(awk -v name="\"name\": \"$step\"" \
        'index($0, name) { found = 1 } found && /"seconds"/ { gsub(/[^0-9.]/, ""); printf "%.1f", $0; exit }' \
        "${reset_reports[-1]}" 2>/dev/null)"
done
# Every step's time, in the order run ("number" starts a step's record).
echo "ZTEST reset-step-seconds=$(awk '
    /^    "number": / || /^      "number": / { step = 1; name = ""; next }
    step && name == "" && /"name": / { name = $0; sub(/.*"name": "/, "", name); sub(/".*/, "", name) }
    step && /^ *"seconds": / { s = $0; gsub(/[^0-9.]/, "", s); printf "%s%s %.1f", sep, name, s; sep = ", "; step = 0 }' \
    "${reset_reports[-1]}" 2>/dev/null)"
for part in copy_seconds resize_seconds check_seconds; do
    echo "ZTEST $part=$(awk -v name="\"$part\"" \
        'index($0, name) { gsub(/[^0-9.]/, ""); printf "%.1f", $0; exit }' "${reset_reports[-1]}" 2>/dev/null)"
done
