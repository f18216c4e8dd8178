#!/usr/bin/env bash
# Inside a clean Debian container (scripts/test-packages.sh starts it, with the
# release's packages in /debs): installs rlm-mfa as README.md's "Debian package"
# section says, enables it as it says, checks the configuration, logs in once
# with radtest, then disables, removes and purges it, checking what is left at
# each step. It refuses to run outside a container: it installs and purges packages.
set -euo pipefail
[ -f /.dockerenv ] || { echo "package-check: runs only inside a container (scripts/test-packages.sh)" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive
fail() { echo "package-check: FAILED: $*" >&2; exit 1; }
step() { echo "== package-check: $*"; }

step "apt install ./rlm-mfa_*.deb"
# The package makes /var/lib/freeradius for the journal when it is missing; the purge removes it then.
var_lib_was_there=no
[ -d /var/lib/freeradius ] && var_lib_was_there=yes
# The test's cache (/var/cache/apt/archives is kept by scripts/test-packages.sh): apt keeps what it downloads.
echo 'APT::Keep-Downloaded-Packages "true";' > /etc/apt/apt.conf.d/99keep-downloads
apt-get update -qq
cd /debs
apt install -y -q ./rlm-mfa_*.deb > /tmp/install.log 2>&1 || { cat /tmp/install.log; fail "apt install"; }
# radtest, to log in (not part of the install).
apt-get install -y -q --no-install-recommends freeradius-utils > /tmp/utils.log 2>&1 || { cat /tmp/utils.log; fail "freeradius-utils"; }
dpkg-query -W -f='${Package} ${Version}\n  Depends: ${Depends}\n' rlm-mfa freeradius

step "what the package installed"
conf=/etc/freeradius/3.0
shipped="$conf/mods-available/eap-mfa $conf/mods-available/mfa $conf/sites-available/mfa \
$conf/sites-available/mfa-inner-tunnel $conf/sites-available/mfa-privacyidea"
for f in /usr/lib/freeradius/rlm_mfa.so /usr/sbin/mfa-admin $shipped; do
    [ -f "$f" ] || fail "$f is missing"
done
conffiles=$(dpkg-query -W -f='${Conffiles}\n' rlm-mfa | awk 'NF { print $1 }' | sort | tr '\n' ' ')
[ "$conffiles" = "$shipped " ] || fail "conffiles: $conffiles"
[ "$(stat -c '%U:%G %a' $conf/mods-config/mfa)" = "root:freerad 750" ] ||
    fail "mods-config/mfa is $(stat -c '%U:%G %a' $conf/mods-config/mfa)"
[ "$(stat -c '%U:%G' /var/lib/freeradius/mfa)" = "freerad:freerad" ] ||
    fail "/var/lib/freeradius/mfa is $(stat -c '%U:%G' /var/lib/freeradius/mfa)"
[ ! -e $conf/mods-enabled/mfa ] && [ ! -e $conf/sites-enabled/mfa ] || fail "something is enabled by default"
version=$(dpkg-query -W -f='${Version}' freeradius)
dpkg-query -W -f='${Depends}' rlm-mfa | grep -F "freeradius (>= $version)" > /dev/null ||
    fail "rlm-mfa does not depend on the FreeRADIUS it was built against ($version)"
echo "conffiles: $conffiles; mods-config/mfa root:freerad 0750; /var/lib/freeradius/mfa freerad; nothing enabled"

step "enable as README.md says"
cd $conf
ln -s ../mods-available/mfa mods-enabled/mfa
rm sites-enabled/default && ln -s ../sites-available/mfa sites-enabled/mfa
# The first factor of the shipped virtual server: the users file.
printf 'alice\tCleartext-Password := "alice-password"\n' >> mods-config/files/authorize
mfa-admin enroll alice
freeradius -XC > /tmp/xc.log 2>&1 || { tail -n 40 /tmp/xc.log; fail "freeradius -XC"; }
grep -q "Configuration appears to be OK" /tmp/xc.log || fail "freeradius -XC said nothing"
echo "freeradius -XC: Configuration appears to be OK"

step "start FreeRADIUS (as its service does; no systemd in a container) and log in"
freeradius
trap 'kill "$(cat /run/freeradius/freeradius.pid 2>/dev/null)" 2>/dev/null || true' EXIT
code=$(mfa-admin code alice)
ok=0
for _ in $(seq 50); do
    if radtest alice "alice-password,$code" 127.0.0.1 0 testing123 > /tmp/radtest.out 2>&1; then ok=1; break; fi
    grep -q "Received Access-Reject" /tmp/radtest.out && break
    sleep 0.2
done
cat /tmp/radtest.out
[ $ok = 1 ] && grep -q "Received Access-Accept" /tmp/radtest.out || fail "radtest was not accepted"
[ "$(stat -c '%U' /var/lib/freeradius/mfa/state.jsonl)" = freerad ] || fail "the state journal is not freerad's"
kill "$(cat /run/freeradius/freeradius.pid)"
trap - EXIT

step "disable, remove, purge"
rm mods-enabled/mfa sites-enabled/mfa && ln -s ../sites-available/default sites-enabled/default
apt remove -y -q rlm-mfa > /tmp/remove.log 2>&1 || { cat /tmp/remove.log; fail "apt remove"; }
[ ! -e /usr/lib/freeradius/rlm_mfa.so ] && [ ! -e /usr/sbin/mfa-admin ] || fail "apt remove left the programs"
[ -f $conf/mods-available/mfa ] || fail "apt remove took a conffile (only purge should)"
apt purge -y -q rlm-mfa > /tmp/purge.log 2>&1 || { cat /tmp/purge.log; fail "apt purge"; }
left=$(ls -d $conf/mods-available/mfa $conf/mods-available/eap-mfa $conf/sites-available/mfa* $conf/mods-config/mfa /var/lib/freeradius/mfa \
    /usr/share/doc/rlm-mfa 2>/dev/null || true)
[ -z "$left" ] || fail "apt purge left: $left"
[ $var_lib_was_there = yes ] || [ ! -e /var/lib/freeradius ] || fail "apt purge left /var/lib/freeradius"
dpkg-query -W rlm-mfa > /dev/null 2>&1 && [ "$(dpkg-query -W -f='${Status}' rlm-mfa)" != "unknown ok not-installed" ] &&
    fail "rlm-mfa is still known to dpkg: $(dpkg-query -W -f='${Status}' rlm-mfa)"
freeradius -XC > /tmp/xc2.log 2>&1 || { tail -n 20 /tmp/xc2.log; fail "FreeRADIUS is broken after the purge"; }
echo "removed and purged: nothing of rlm-mfa left; FreeRADIUS's configuration is still OK"
echo "package-check: passed ($(. /etc/os-release && echo "$PRETTY_NAME"), FreeRADIUS $version)"
