#!/bin/sh
# Called by vrrp-agent (or keepalived) on REDIS state changes.
#   redis-notify.sh master          -> this node's Redis becomes the master
#   redis-notify.sh backup PEER     -> this node's Redis replicates from PEER
set -eu
case "$1" in
    master) exec redis-cli -p 6379 REPLICAOF NO ONE ;;
    backup) exec redis-cli -p 6379 REPLICAOF "$2" 6379 ;;
    *) echo "usage: $0 master | backup PEER" >&2; exit 2 ;;
esac
