#!/bin/bash
# Container health check of rum-bridge: GET /healthz on the admin listener, healthy on 200.
#
# The runtime image has no curl or wget; bash's /dev/tcp is enough for one HTTP/1.1 request on
# loopback, so the image needs no extra package and the daemon no extra code.
#   rum-bridge-healthcheck [PORT]    (default: $RUM_BRIDGE_ADMIN_PORT, else 4381)
set -eu
port="${1:-${RUM_BRIDGE_ADMIN_PORT:-4381}}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 2 status <&3
[[ "${status}" == "HTTP/1."?" 200 "* ]]
