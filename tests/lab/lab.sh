#!/usr/bin/env bash
# NAT lab: network namespaces with nftables routers giving real kernel NATs of every class (DESIGN §10).
#
#   lab.sh check                      exit 0 if this host can create namespaces, else 2 with the reason
#   lab.sh up [--udp-timeout S]       build the lab (idempotent: a complete lab is kept, only timeouts applied)
#   lab.sh down                       remove the lab (idempotent)
#   lab.sh status                     print what exists; exit 0 when complete, 1 otherwise
#
# up, down and status take the lock $FL_NATLAB_LOCK_FILE (default /tmp/fl-natlab.lock); lab test files
# hold it for their whole run, so a second test run waits for them, and a hand-run `lab.sh down` waits
# (up to 60 s) or gives up instead of tearing the lab down under them.
#
# Topology (all names start with "fl-"; addresses only from 203.0.113.0/24, 198.51.100.0/24, 10.99.N.0/24;
# nothing is routed out of the lab, so traffic never leaves the machine):
#
#   fl-inet    "the internet": bridge br0, 203.0.113.254/24 (forwards; no default route, no uplink)
#   fl-s1      server  203.0.113.1 + 203.0.113.11
#   fl-s2      server  203.0.113.2 + 203.0.113.12
#   fl-s3      server  203.0.113.3
#   fl-c-public            client 203.0.113.100 directly on the bridge
#   fl-r-<cls> / fl-c-<cls> router WAN "wan" 203.0.113.10N, LAN "lan" 10.99.N.1; client 10.99.N.2
#       N=1 fullc  full cone              masquerade + prerouting dnat of all UDP 1024-65535 to the client
#       N=2 rc     restricted cone        as fullc, dnat only from sources in @seen (filled by the client's sends)
#       N=3 prc    port-restricted cone   masquerade (Linux keeps the source port when it can)
#       N=4 sym    symmetric              masquerade random,fully-random
#       N=5 udpfw  UDP firewall           no NAT; LAN 198.51.100.1/24, client 198.51.100.2 (routed public);
#                                         forward: from wan only established/related
#       N=6 udpblk UDP blocked            masquerade; forward drops all UDP (TCP still works)
#   Firewalled home routers (the same classes, plus an input chain that drops unsolicited packets from the WAN
#   the way OpenWrt's WAN zone does, so they leave no conntrack entry; the routers above are "bare": such a
#   packet is delivered to the router itself, and its conntrack entry re-maps the next outbound flow to that peer):
#       N=7 fullc-fw, N=8 rc-fw, N=9 prc-fw, N=10 sym-fw    as fullc, rc, prc, sym
#       N=11 quic-fw  QUIC only               as prc, and forward drops UDP whose first byte lacks QUIC's fixed bit
#       N=12 prc-fw2                          as prc-fw: two homes behind port-restricted cones, the commonest pair
#
# IPv6 (2001:db8::/32 only): bridge 2001:db8:113::/64 (fl-inet ::fe), servers 2001:db8:113::1/::11, ::2/::12,
# ::3, fl-c-public ::100 (public v6). The homes prc-fw and prc-fw2 are dual stack: router WAN 2001:db8:113::1NN,
# LAN 2001:db8:1NN::/64 routed to the client (2001:db8:1NN::2) through a stateful firewall (table ip6 fl_lab: from
# the WAN only established/related and ICMPv6), i.e. homes whose IPv4 is a port-restricted cone and whose IPv6 is
# udp-firewall (NN = 09, 12). Other namespaces keep IPv6 disabled.
#
# Every bridge member routes 198.51.100.0/24 via 203.0.113.105 and defaults to 203.0.113.254 (which has no
# route out); v6 members route each home's /64 via its router and default to 2001:db8:113::fe. `--udp-timeout S` sets nf_conntrack_udp_timeout and _stream in every router (mapping lifetime).
# `down` sends SIGTERM to processes still inside the lab's namespaces (they belong to lab users), then deletes.

set -euo pipefail

LOCK_FILE=${FL_NATLAB_LOCK_FILE:-/tmp/fl-natlab.lock}
INET=fl-inet
SERVERS=(fl-s1 fl-s2 fl-s3)
declare -A SERVER_IPS=([fl-s1]="203.0.113.1 203.0.113.11" [fl-s2]="203.0.113.2 203.0.113.12" [fl-s3]="203.0.113.3")
PUBLIC_NS=fl-c-public
PUBLIC_IP=203.0.113.100
CLASSES=(fullc rc prc sym udpfw udpblk fullc-fw rc-fw prc-fw sym-fw quic-fw prc-fw2)
declare -A CLASS_N=([fullc]=1 [rc]=2 [prc]=3 [sym]=4 [udpfw]=5 [udpblk]=6 [fullc-fw]=7 [rc-fw]=8 [prc-fw]=9 [sym-fw]=10 [quic-fw]=11 [prc-fw2]=12)
# IPv6: the bridge's /64, the addresses of its members, and the one dual-stack home (router, LAN /64, client).
NET6=2001:db8:113
GATEWAY6=$NET6::fe
declare -A SERVER_IPS6=([fl-s1]="$NET6::1 $NET6::11" [fl-s2]="$NET6::2 $NET6::12" [fl-s3]="$NET6::3")
PUBLIC_IP6=$NET6::100
HOMES6=(prc-fw prc-fw2) # dual-stack homes; home c has WAN $NET6::$((100 + N)) and LAN 2001:db8:$((100 + N))::/64
home6_wan() { echo "$NET6::$((100 + CLASS_N[$1]))"; }
home6_net() { echo "2001:db8:$((100 + CLASS_N[$1]))"; }
GATEWAY_IP=203.0.113.254
FW_NET=198.51.100.0/24
FW_ROUTER_WAN=203.0.113.105
SEEN_TIMEOUT_S=120 # how long a restricted-cone permission lasts without traffic (conntrack's UDP stream default)

all_namespaces() {
  echo "$INET" "${SERVERS[@]}" "$PUBLIC_NS"
  for c in "${CLASSES[@]}"; do echo "fl-r-$c" "fl-c-$c"; done
}

die() { echo "lab.sh: $*" >&2; exit 1; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
sysctl_in() { inns "$1" sysctl -qw "$2" >/dev/null; }
is_firewalled() { [[ $1 == *-fw* ]]; }

enable_ipv6() { # static addresses only: no DAD (tests start at once), no router advertisements
  local ns=$1 k
  for k in all default; do
    sysctl_in "$ns" "net.ipv6.conf.$k.disable_ipv6=0"
    sysctl_in "$ns" "net.ipv6.conf.$k.accept_dad=0"
    sysctl_in "$ns" "net.ipv6.conf.$k.accept_ra=0"
  done
}
addr6() { ip -n "$1" -6 addr add "$2/64" dev "$3" nodad; }
member_routes6() { # routes to the dual-stack homes' LANs, default to the lab gateway
  local ns=$1 dev=$2 h
  for h in "${HOMES6[@]}"; do ip -n "$ns" -6 route add "$(home6_net "$h")::/64" via "$(home6_wan "$h")" dev "$dev"; done
  ip -n "$ns" -6 route add default via "$GATEWAY6" dev "$dev"
}

lan_net() { # class → LAN prefix (without host part)
  if [[ $1 == udpfw ]]; then echo 198.51.100; else echo "10.99.${CLASS_N[$1]}"; fi
}

cmd_check() {
  [[ $(id -u) -eq 0 ]] || { echo "not root: network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN" >&2; exit 2; }
  command -v ip >/dev/null || { echo "iproute2 (ip) is not installed" >&2; exit 2; }
  command -v nft >/dev/null || { echo "nftables (nft) is not installed" >&2; exit 2; }
  local probe=fl-capcheck-$$
  if ! ip netns add "$probe" 2>/dev/null; then echo "cannot create a network namespace (ip netns add failed)" >&2; exit 2; fi
  local ok=1
  inns "$probe" nft add table ip fl_capcheck 2>/dev/null || ok=0
  ip netns del "$probe" 2>/dev/null || true
  [[ $ok -eq 1 ]] || { echo "nftables does not work inside a namespace (no nf_tables in this kernel?)" >&2; exit 2; }
}

# Connects namespace $1 to the bridge; its interface is named $2, the bridge side p-<ns without fl->.
attach_to_bridge() {
  local ns=$1 ifname=$2 peer="p-${1#fl-}"
  ip -n "$INET" link add "$peer" type veth peer name "$ifname" netns "$ns"
  ip -n "$INET" link set "$peer" master br0 up
  ip -n "$ns" link set "$ifname" up
}

member_routes() { # on-link route to the firewall net, default to the lab gateway
  local ns=$1 dev=$2
  ip -n "$ns" route add "$FW_NET" via "$FW_ROUTER_WAN" dev "$dev"
  ip -n "$ns" route add default via "$GATEWAY_IP" dev "$dev"
}

router_rules() { # nftables ruleset of one class (DESIGN §10); table "fl_lab", WAN "wan", LAN "lan"
  local cls=$1 client=$2
  case ${cls%%-*} in
    fullc) cat <<EOF
table ip fl_lab {
  chain prerouting { type nat hook prerouting priority dstnat; policy accept;
    iifname "wan" udp dport 1024-65535 dnat to $client
  }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}
EOF
    ;;
    rc) cat <<EOF
table ip fl_lab {
  set seen { type ipv4_addr; flags dynamic,timeout; timeout ${SEEN_TIMEOUT_S}s; }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept;
    iifname "wan" ip saddr @seen udp dport 1024-65535 dnat to $client
  }
  chain forward { type filter hook forward priority filter; policy accept;
    iifname "lan" meta l4proto udp update @seen { ip daddr }
  }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}
EOF
    ;;
    prc) cat <<EOF
table ip fl_lab {
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}
EOF
    ;;
    quic) cat <<EOF
table ip fl_lab {
  chain forward { type filter hook forward priority filter; policy accept;
    meta l4proto udp @th,64,2 0 drop
  }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}
EOF
    ;;
    sym) cat <<EOF
table ip fl_lab {
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade random,fully-random
  }
}
EOF
    ;;
    udpfw) cat <<EOF
table ip fl_lab {
  chain forward { type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
}
EOF
    ;;
    udpblk) cat <<EOF
table ip fl_lab {
  chain forward { type filter hook forward priority filter; policy accept;
    meta l4proto udp drop
  }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}
EOF
    ;;
  esac
  # A home router's WAN zone: unsolicited packets to the router itself are dropped in the input chain, before
  # conntrack confirms them, so they leave no entry behind (a bare router delivers them to itself and keeps one).
  if is_firewalled "$cls"; then cat <<EOF
table ip fl_lab {
  chain input { type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" icmp type echo-request accept
    iifname "wan" drop
  }
}
EOF
  fi
}

home6_rules() { # the dual-stack home's IPv6: routed, a stateful firewall in forward and input (OpenWrt's WAN zone)
  cat <<EOF
table ip6 fl_lab {
  chain input { type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" meta l4proto ipv6-icmp accept
    iifname "wan" drop
  }
  chain forward { type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" meta l4proto ipv6-icmp accept
    iifname "wan" drop
  }
}
EOF
}

apply_udp_timeout() {
  local secs=$1
  for c in "${CLASSES[@]}"; do
    sysctl_in "fl-r-$c" "net.netfilter.nf_conntrack_udp_timeout=$secs"
    sysctl_in "fl-r-$c" "net.netfilter.nf_conntrack_udp_timeout_stream=$secs"
  done
}

build() {
  for ns in $(all_namespaces); do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    sysctl_in "$ns" net.ipv6.conf.all.disable_ipv6=1 # keep the lab IPv4-only: no DAD, no router solicitations
  done

  ip -n "$INET" link add br0 type bridge
  ip -n "$INET" link set br0 up
  ip -n "$INET" addr add "$GATEWAY_IP/24" dev br0
  sysctl_in "$INET" net.ipv4.ip_forward=1
  ip -n "$INET" route add "$FW_NET" via "$FW_ROUTER_WAN" dev br0
  for ns in "$INET" "${SERVERS[@]}" "$PUBLIC_NS"; do enable_ipv6 "$ns"; done
  for h in "${HOMES6[@]}"; do enable_ipv6 "fl-r-$h"; enable_ipv6 "fl-c-$h"; done
  addr6 "$INET" "$GATEWAY6" br0
  sysctl_in "$INET" net.ipv6.conf.all.forwarding=1
  for h in "${HOMES6[@]}"; do ip -n "$INET" -6 route add "$(home6_net "$h")::/64" via "$(home6_wan "$h")" dev br0; done

  for s in "${SERVERS[@]}"; do
    attach_to_bridge "$s" eth0
    for ipaddr in ${SERVER_IPS[$s]}; do ip -n "$s" addr add "$ipaddr/24" dev eth0; done
    for ipaddr in ${SERVER_IPS6[$s]}; do addr6 "$s" "$ipaddr" eth0; done
    member_routes "$s" eth0
    member_routes6 "$s" eth0
  done

  attach_to_bridge "$PUBLIC_NS" eth0
  ip -n "$PUBLIC_NS" addr add "$PUBLIC_IP/24" dev eth0
  addr6 "$PUBLIC_NS" "$PUBLIC_IP6" eth0
  member_routes "$PUBLIC_NS" eth0
  member_routes6 "$PUBLIC_NS" eth0

  for c in "${CLASSES[@]}"; do
    local n=${CLASS_N[$c]} r="fl-r-$c" cl="fl-c-$c" lan
    lan=$(lan_net "$c")
    attach_to_bridge "$r" wan
    ip -n "$r" addr add "203.0.113.$((100 + n))/24" dev wan
    [[ $c == udpfw ]] || ip -n "$r" route add "$FW_NET" via "$FW_ROUTER_WAN" dev wan
    ip -n "$r" route add default via "$GATEWAY_IP" dev wan
    ip -n "$r" link add lan type veth peer name eth0 netns "$cl"
    ip -n "$r" addr add "$lan.1/24" dev lan
    ip -n "$r" link set lan up
    ip -n "$cl" addr add "$lan.2/24" dev eth0
    ip -n "$cl" link set eth0 up
    ip -n "$cl" route add default via "$lan.1" dev eth0
    sysctl_in "$r" net.ipv4.ip_forward=1
    router_rules "$c" "$lan.2" | inns "$r" nft -f -
  done

  local h r6 c6 net
  for h in "${HOMES6[@]}"; do
    r6="fl-r-$h" c6="fl-c-$h" net=$(home6_net "$h")
    addr6 "$r6" "$(home6_wan "$h")" wan
    ip -n "$r6" -6 route add default via "$GATEWAY6" dev wan
    addr6 "$r6" "$net::1" lan
    addr6 "$c6" "$net::2" eth0
    ip -n "$c6" -6 route add default via "$net::1" dev eth0
    sysctl_in "$r6" net.ipv6.conf.all.forwarding=1
    home6_rules | inns "$r6" nft -f -
  done
}

is_complete() {
  for ns in $(all_namespaces); do ns_exists "$ns" || return 1; done
  for c in "${CLASSES[@]}"; do inns "fl-r-$c" nft list table ip fl_lab >/dev/null 2>&1 || return 1; done
  ip -n "$INET" link show br0 >/dev/null 2>&1 || return 1
  for h in "${HOMES6[@]}"; do inns "fl-r-$h" nft list table ip6 fl_lab >/dev/null 2>&1 || return 1; done
  [[ $(ip -n fl-s1 -6 addr show dev eth0 2>/dev/null) == *"$NET6::1/"* ]] || return 1
}

cmd_down() {
  for ns in $(all_namespaces); do
    ns_exists "$ns" || continue
    local pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $pids ]]; then
      for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
      sleep 0.2
      for p in $(ip netns pids "$ns" 2>/dev/null || true); do kill -KILL "$p" 2>/dev/null || true; done
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
}

cmd_up() {
  local timeout=""
  while [[ $# -gt 0 ]]; do
    case $1 in
      --udp-timeout) [[ $# -ge 2 ]] || die "--udp-timeout needs a value"; timeout=$2; shift 2 ;;
      --udp-timeout=*) timeout=${1#*=}; shift ;;
      *) die "unknown option '$1' for up" ;;
    esac
  done
  [[ -z $timeout || ( $timeout =~ ^[0-9]+$ && $timeout -ge 1 ) ]] || die "--udp-timeout needs whole seconds ≥ 1, got '$timeout'"
  cmd_check
  if ! is_complete; then
    cmd_down
    # A subshell outside any condition, so `set -e` stops the build at the first failing step.
    set +e; (set -e; build); local rc=$?; set -e
    if [[ $rc -ne 0 ]]; then cmd_down; die "building the lab failed (step exit $rc); removed what was built"; fi
  fi
  [[ -z $timeout ]] || apply_udp_timeout "$timeout"
  echo "lab up"
}

cmd_status() {
  local complete=1
  for ns in $(all_namespaces); do
    if ns_exists "$ns"; then
      printf '%-14s %s\n' "$ns" "$(ip -n "$ns" -o addr show scope global 2>/dev/null | awk '{printf "%s:%s ", $2, $4}')"
    else
      printf '%-14s %s\n' "$ns" "(missing)"; complete=0
    fi
  done
  if [[ $complete -eq 1 ]] && is_complete; then
    echo "udp timeout (fl-r-prc): $(inns fl-r-prc sysctl -n net.netfilter.nf_conntrack_udp_timeout 2>/dev/null || echo ?) s"
    echo "lab: complete"; return 0
  fi
  echo "lab: not complete"; return 1
}

main() {
  local cmd=${1:-}
  [[ -n $cmd ]] || die "usage: lab.sh check | up [--udp-timeout S] | down | status"
  shift
  case $cmd in
    check) cmd_check ;;
    up|down|status)
      # A lab test file holds this lock for its whole run (tests/lab/lab-lock.ts) and names it in
      # FL_NATLAB_LOCK_HELD for the commands it runs; anyone else waits here.
      if [[ ":${FL_NATLAB_LOCK_HELD:-}:" != *":$LOCK_FILE:"* ]]; then
        exec 9>"$LOCK_FILE"
        flock -w 60 9 || die "another lab.sh holds $LOCK_FILE"
      fi
      "cmd_$cmd" "$@" ;;
    *) die "unknown command '$cmd' (check | up | down | status)" ;;
  esac
}

main "$@"
