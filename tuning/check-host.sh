#!/usr/bin/env bash
# Compare this host with ringside's recommendations. Only reads; changes nothing.
#
#   check-host.sh [--strict]
#
# Recommendations come from the files beside this script, so they cannot
# drift apart: sysctl values and comparison rules from sysctl.conf
# ("# @check RULE" tags), and LimitNOFILE / LimitMEMLOCK from ringside.service.
#
# Exit: 0, or with --strict 1 when any checked item is short of its
# recommendation (LOW / HIGH / DIFF). NOTE rows are advice and never fail.

set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF=$HERE/sysctl.conf
UNIT=$HERE/ringside.service
STRICT=0

case ${1:-} in
    --strict) STRICT=1 ;;
    "") ;;
    -h|--help) echo "usage: $PROG [--strict]"; exit 0 ;;
    *) echo "usage: $PROG [--strict]" >&2; exit 2 ;;
esac
[[ -r $CONF ]] || { echo "$PROG: cannot read $CONF" >&2; exit 2; }

SHORT=0          # rows below recommendation
LOWER_RISK=0     # rows where `sysctl -p sysctl.conf` would make things worse
FIXES=()         # sysctl -w commands for short rows

row() { printf '%-40s %-22s %-22s %s\n' "$1" "$2" "$3" "$4"; }
section() { printf '\n%s\n' "$1"; row ITEM CURRENT RECOMMENDED STATUS; }
squash() { tr -s ' \t' '  ' <<<"$1" | sed 's/^ //; s/ $//'; }
is_int() { [[ $1 =~ ^-?[0-9]+$ ]]; }

# compare RULE CURRENT RECOMMENDED APPLIED -> prints OK, OK*, LOW, HIGH or DIFF
#   ge: every field >=     le: every field <=     eq: identical
#   range: first field <=, second >=              mask: all recommended bits set
# OK* = fine now, but applying sysctl.conf as-is would move it to the
# (less generous) recommended value.
compare() {
    local rule=$1 cur=$2 rec=$3 applied=$4 i better=0
    local -a c r
    read -r -a c <<<"$cur"
    read -r -a r <<<"$rec"
    if [[ $cur == "$rec" ]]; then echo OK; return; fi
    if ((${#c[@]} != ${#r[@]})); then echo DIFF; return; fi
    for i in "${!c[@]}"; do
        if ! is_int "${c[i]}" || ! is_int "${r[i]}"; then echo DIFF; return; fi
    done
    case $rule in
        ge|le)
            for i in "${!c[@]}"; do
                if [[ $rule == ge ]] && ((c[i] < r[i])); then echo LOW; return; fi
                if [[ $rule == le ]] && ((c[i] > r[i])); then echo HIGH; return; fi
                ((c[i] == r[i])) || better=1
            done ;;
        range)
            if ((${#c[@]} != 2)); then echo DIFF; return; fi
            if ((c[0] > r[0] || c[1] < r[1])); then echo LOW; return; fi
            better=1 ;;
        mask)
            if (((c[0] & r[0]) != r[0])); then echo LOW; return; fi
            better=1 ;;
        *)  echo DIFF; return ;;
    esac
    if ((better && applied)); then echo 'OK*'; else echo OK; fi
}

tally() {   # tally STATUS [FIX-COMMAND]
    case $1 in
        LOW|HIGH|DIFF) SHORT=$((SHORT + 1)); [[ -z ${2:-} ]] || FIXES+=("$2") ;;
        'OK*') LOWER_RISK=$((LOWER_RISK + 1)) ;;
    esac
}

# ---- sysctl ---------------------------------------------------------------

section "sysctl (from ${CONF#"$PWD"/})"
rule="" only=0
while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ ^#[[:space:]]*@check(-only)?[[:space:]]+([a-z]+) ]]; then
        rule=${BASH_REMATCH[2]}
        only=$([[ -n ${BASH_REMATCH[1]} ]] && echo 1 || echo 0)
        continue
    fi
    key="" rec=""
    if ((only)) && [[ $line =~ ^#[[:space:]]*([a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
        key=${BASH_REMATCH[1]} rec=${BASH_REMATCH[3]}
    elif ((!only)) && [[ $line =~ ^-?([a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
        key=${BASH_REMATCH[1]} rec=${BASH_REMATCH[3]}
    fi
    [[ -n $key ]] || continue
    rec=$(squash "$rec")
    applied=$((only ? 0 : 1))
    label=$key
    ((applied)) || label="$key (check only)"
    file=/proc/sys/${key//.//}
    if [[ ! -r $file ]]; then
        row "$label" "absent" "$rec" "n/a"
    else
        cur=$(squash "$(cat "$file")")
        status=$(compare "${rule:-ge}" "$cur" "$rec" "$applied")
        row "$label" "$cur" "$rec" "$status"
        tally "$status" "sysctl -w $key=\"$rec\""
    fi
    rule="" only=0
done <"$CONF"

# ---- limits -----------------------------------------------------------------

unit_value() {  # unit_value Key -> value from ringside.service, or empty
    [[ -r $UNIT ]] || return 0
    sed -n "s/^$1=//p" "$UNIT" | tail -1
}
REC_NOFILE=$(unit_value LimitNOFILE); REC_NOFILE=${REC_NOFILE:-1048576}
REC_MEMLOCK=$(unit_value LimitMEMLOCK); REC_MEMLOCK=${REC_MEMLOCK:-infinity}

# limit_status CURRENT RECOMMENDED (numbers, "unlimited" or "infinity")
limit_status() {
    local cur=$1 rec=$2
    [[ $cur == unlimited || $cur == infinity ]] && { echo OK; return; }
    [[ $rec == unlimited || $rec == infinity ]] && { echo LOW; return; }
    ((cur >= rec)) && echo OK || echo LOW
}

pid=""
for c in /proc/[0-9]*/comm; do
    if [[ $(cat "$c" 2>/dev/null) == ringside ]]; then pid=${c#/proc/}; pid=${pid%/comm}; break; fi
done

if [[ -n $pid && -r /proc/$pid/limits ]]; then
    section "limits of the running ringside (pid $pid; recommended from ${UNIT##*/})"
    read -r nsoft nhard < <(awk '/^Max open files/ {print $4, $5}' "/proc/$pid/limits")
    read -r lsoft lhard < <(awk '/^Max locked memory/ {print $4, $5}' "/proc/$pid/limits")
    unit_l=bytes
else
    section "limits of this shell (ringside not running; recommended from ${UNIT##*/})"
    nsoft=$(ulimit -Sn); nhard=$(ulimit -Hn)
    lsoft=$(ulimit -Sl); lhard=$(ulimit -Hl)
    unit_l=KiB
fi
for r in "nofile soft|$nsoft|$REC_NOFILE" "nofile hard|$nhard|$REC_NOFILE" \
         "memlock soft ($unit_l)|$lsoft|$REC_MEMLOCK" "memlock hard ($unit_l)|$lhard|$REC_MEMLOCK"; do
    IFS='|' read -r name cur rec <<<"$r"
    status=$(limit_status "$cur" "$rec")
    row "$name" "$cur" "$rec" "$status"
    tally "$status"
done

# ---- io_uring ---------------------------------------------------------------

section "io_uring"
kver=$(uname -r)
if [[ $kver =~ ^([0-9]+)\.([0-9]+) ]] &&
   ((BASH_REMATCH[1] > 5 || (BASH_REMATCH[1] == 5 && BASH_REMATCH[2] >= 8))); then
    status=OK
else
    status=LOW
fi
row "kernel (glommio needs >= 5.8)" "$kver" ">= 5.8" "$status"
tally "$status"

# kernel.io_uring_disabled itself is a row in the sysctl table. With 1,
# only members of kernel.io_uring_group (and CAP_SYS_ADMIN) may use io_uring.
if [[ $(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null) == 1 ]]; then
    row "kernel.io_uring_group" "$(cat /proc/sys/kernel/io_uring_group)" "ringside user in it" "NOTE"
fi

# Try io_uring_setup(4 entries) for real: seccomp profiles in containers
# commonly block it. Syscall 425 on every architecture except alpha and mips.
case $(uname -m) in
    x86_64|i?86|aarch64|arm*|riscv64|ppc64*|s390x|loongarch64) nr=425 ;;
    *) nr="" ;;
esac
if [[ -n $nr ]] && command -v perl >/dev/null; then
    probe=$(perl -e 'my $p = "\0" x 120; my $fd = syscall('"$nr"', 4, $p);
                     print $fd >= 0 ? "works" : "fails: $!"' 2>/dev/null || echo "probe error")
    if [[ $probe == works ]]; then status=OK; else status=LOW; fi
    row "io_uring_setup as $(id -un)" "$probe" "works" "$status"
    tally "$status"
else
    row "io_uring_setup" "not probed (no perl)" "works" "n/a"
fi

# ---- CPU and memory ---------------------------------------------------------

section "CPU and memory (NOTE = advice, never fails --strict)"
online=$(cat /sys/devices/system/cpu/online)
ncpu=$(getconf _NPROCESSORS_ONLN)
row "online CPUs" "$ncpu ($online)" "shards < CPUs" "info"

govs=$(cat /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor 2>/dev/null | sort -u | tr '\n' ' ' || true)
govs=$(squash "$govs")
if [[ -z $govs ]]; then
    row "CPU frequency governor" "not readable" "performance" "n/a"
elif [[ $govs == performance ]]; then
    row "CPU frequency governor" "$govs" "performance" "OK"
else
    row "CPU frequency governor" "$govs" "performance" "NOTE"
fi

thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || true)
case $thp in
    "") row "transparent hugepages" "not readable" "madvise or never" "n/a" ;;
    always) row "transparent hugepages" "$thp" "madvise or never" "NOTE" ;;
    *) row "transparent hugepages" "$thp" "madvise or never" "OK" ;;
esac

irqb=no
for c in /proc/[0-9]*/comm; do
    [[ $(cat "$c" 2>/dev/null) == irqbalance ]] && { irqb=yes; break; }
done
if [[ $irqb == yes ]]; then
    row "irqbalance running" "yes" "no, or banned CPUs" "NOTE"
else
    row "irqbalance running" "no" "no, or banned CPUs" "OK"
fi

# ---- summary ----------------------------------------------------------------

echo
if ((SHORT == 0)); then
    echo "All checked items meet the recommendations."
else
    echo "$SHORT item(s) short of the recommendations."
fi
if ((LOWER_RISK > 0)); then
    echo "OK* = this host is already better than the recommendation; 'sysctl -p ${CONF##*/}' would undo that."
    echo "      Delete those lines from your copy before applying the file."
fi
if ((${#FIXES[@]} > 0)); then
    echo "To fix only the short sysctls (as root; lost at reboot):"
    printf '  %s\n' "${FIXES[@]}"
fi
if [[ $irqb == yes ]]; then
    echo "irqbalance moves NIC IRQs onto shard cores; see irq-affinity.sh."
fi
if ((STRICT && SHORT > 0)); then exit 1; fi
exit 0
