# ---- tests/qemu/checks/provisioned.sh: the golden's provisioning ----
# The test golden's /etc/zshield/provision (qemu/test-overlay): the manifest's
# files for x86_64 with their modes and owners, and both hooks' effects in order.

file_is() { # PATH MODE OWNER:GROUP
    expect_eq "mode and owner of $1" "$(stat -c '%a %U:%G' "$1")" "$2 $3"
}

factory_test_reported() {
    local reports report
    # The names start with the UTC time: the last one is the newest.
    shopt -s nullglob
    reports=(/var/log/zshield/*-default.json /var/log/zshield/*-auto.json)
    shopt -u nullglob
    report=$(printf '%s\n' "${reports[@]}" | LC_ALL=C sort | tail -n 1)
    if grep -A1 '"name": "90_factory_test.sh"' "$report" | grep -q '"exit_code": 0' &&
        grep -q '"factory_test": true' "$report"; then
        return 0
    fi
    echo "no passed factory test in $report"
    return 1
}

check manifest-generic-file file_is /etc/sysctl.d/90-ztest.conf 640 root:adm
check manifest-generic-content grep -qx "net.ipv4.ip_forward = 1" /etc/sysctl.d/90-ztest.conf
check manifest-x86-file file_is /etc/modules 600 root:root
check manifest-x86-content grep -qx loop /etc/modules
check manifest-setuid-in-new-dir file_is /usr/local/lib/ztest/tool 4755 daemon:daemon
check manifest-no-temporary-left bash -c '! ls -a /etc /usr/local/lib/ztest | grep -q zshield-new'
check manifest-other-arch-skipped test ! -e /usr/sbin/keepalived
check hooks-ran-in-order expect_eq "hook marks" "$(paste -sd, /var/lib/ztest-hooks)" "10 first,90 factory test"
check factory-test-in-report factory_test_reported

# The test golden's image-time bundle (qemu/test-bundle, applied by
# build-golden.sh with zshield upgrade --image): its manifest's file for
# x86_64 and its package went into the golden and so onto every disk; its hook
# did not run (hooks are for running systems).
check image-bundle-file file_is /etc/ztest-image-bundle 644 root:root
check image-bundle-content grep -qx "ztest image bundle 1.0" /etc/ztest-image-bundle
check image-bundle-package expect_eq ztest-image-bundle "$(dpkg-query -W -f '${Version} ${Status}' ztest-image-bundle)" "1.0 install ok installed"
check image-bundle-recorded grep -qx 'version = "1.0"' /var/lib/zshield/bundles/ztest-image.toml
check image-bundle-not-arm test ! -e /etc/ztest-image-bundle-arm
check image-bundle-hook-not-run test ! -e /etc/ztest-image-bundle-hook
check image-bundle-staging-gone test ! -e /var/lib/zshield/upgrade
