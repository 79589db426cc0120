#!/bin/bash
# The table "XDP attach modes by interface kind" in packages/filter-xdp/BENCHMARKS.md, one cell:
#   sudo sh packages/filter-xdp/src/internal/probeModes.sh KIND MODE
#   KIND: veth tap bridge bridgeport vxlan macvlan macvlanpt ipvlan bond dummy
#   MODE: drv | skb | off (no program: the baseline, never delivered)
# Builds the interface in a server namespace (198.18.1.1/24, VIP 198.18.0.1 on lo) with a
# client namespace (198.18.1.2) that believes the server's MAC is the farm's virtual MAC,
# attaches the filter (nsAttach.ts), and reports whether a TCP connect to the VIP is answered.
# Needs root, python3, and the checkout's node_modules; removes its namespaces.
set -u
KIND=$1; MODE=$2
S=xdpps$$; C=xdppc$$
ROOT=$(cd "$(dirname "$0")/../../../.." && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
VMAC=02:fa:8e:cf:2a:8f
ip netns del $S 2>/dev/null; ip netns del $C 2>/dev/null
ip netns add $S; ip netns add $C
ip -n $S link set lo up; ip -n $C link set lo up
X=x0
case $KIND in
veth) ip link add x0 netns $S type veth peer name c0 netns $C ;;
macvlan|macvlanpt|ipvlan|bond|bridge|bridgeport)
  ip link add p0 netns $S type veth peer name c0 netns $C
  ip -n $S link set p0 up
  case $KIND in
  macvlan) ip -n $S link add x0 link p0 type macvlan mode bridge ;;
  macvlanpt) ip -n $S link add x0 link p0 type macvlan mode passthru ;;
  ipvlan) ip -n $S link add x0 link p0 type ipvlan mode l2 ;;
  bond) ip -n $S link set p0 down; ip -n $S link add x0 type bond mode active-backup; ip -n $S link set p0 master x0 ;;
  bridge) ip -n $S link add x0 type bridge; ip -n $S link set p0 master x0; ip -n $S link set x0 up ;;
  bridgeport) ip -n $S link add br0 type bridge; ip -n $S link set p0 master br0; ip -n $S link set br0 up; X=p0 ;;
  esac ;;
vxlan)
  ip link add u0 netns $S type veth peer name u1 netns $C
  ip -n $S addr add 198.19.0.1/24 dev u0; ip -n $S link set u0 up
  ip -n $C addr add 198.19.0.2/24 dev u1; ip -n $C link set u1 up
  ip -n $S link add x0 type vxlan id 42 remote 198.19.0.2 local 198.19.0.1 dstport 4789 dev u0
  ip -n $C link add c0 type vxlan id 42 remote 198.19.0.1 local 198.19.0.2 dstport 4789 dev u1 ;;
dummy) ip -n $S link add x0 type dummy ;;
tap) ip -n $S tuntap add dev x0 mode tap ;;
esac
ADDRDEV=$X; [ $KIND = bridgeport ] && ADDRDEV=br0
ip -n $S addr add 198.18.1.1/24 dev $ADDRDEV; ip -n $S link set $X up; ip -n $S link set $ADDRDEV up
ip -n $S addr add 198.18.0.1/32 dev lo
ip netns exec $S sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
if [ $KIND = tap ]; then ip -n $S neigh replace 198.18.1.2 lladdr 02:00:00:00:00:02 dev x0 nud permanent; fi
if [ $KIND != dummy ] && [ $KIND != tap ]; then
ip -n $C addr add 198.18.1.2/24 dev c0; ip -n $C link set c0 up
ip -n $C route add 198.18.0.1/32 via 198.18.1.1 2>/dev/null || true
ip -n $C neigh replace 198.18.1.1 lladdr $VMAC dev c0 nud permanent
fi
# receive VMAC as the daemon does
ip netns exec $S bridge fdb add $VMAC dev $ADDRDEV self permanent 2>/dev/null && RECV=fdb || { ip -n $S link set $ADDRDEV promisc on; RECV=promisc; }
MAC=$(ip -n $S -j link show $ADDRDEV | python3 -c 'import json,sys;print(json.load(sys.stdin)[0]["address"])')
[ $MODE = off ] && OUT=off || OUT=$(cd $ROOT && ip netns exec $S node --import tsx packages/filter-xdp/src/internal/nsAttach.ts filter $X $MAC - $MODE 2>&1 | grep -E "^(drv|skb) |message|Error" | head -3 | tr "\n" " ")
ip netns exec $S python3 -c '
import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("198.18.0.1",8080)); s.listen(); 
s.settimeout(6)
try:
  c,_=s.accept(); c.send(b"ok"); c.close()
except Exception: pass' &
sleep 0.5
RES=none
if [ $KIND = tap ]; then RES=$(ip netns exec $S python3 $HERE/tapWire.py x0); fi
if [ $KIND != dummy ] && [ $KIND != tap ]; then
RES=$(ip netns exec $C python3 -c '
import socket
try:
  s=socket.create_connection(("198.18.0.1",8080),timeout=3); print("delivered", s.recv(2).decode())
except Exception as e: print("no:",e)')
fi
wait
echo "KIND=$KIND MODE=$MODE recv=$RECV attach=[$OUT] tcp=[$RES] prog=$(ip -n $S link show $X | grep -o 'prog/xdp[a-z]* id [0-9]*')"
ip netns del $S; ip netns del $C
