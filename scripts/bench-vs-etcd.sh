#!/usr/bin/env bash
# Runs stead-bench against a 3-member etcd 3.4 and then a 3-member stead on this machine, the
# same ports and flags for both, and prints each workload's throughput and p99 side by side
# with the ratio stead/etcd. Needs `etcd` (apt-get install etcd-server) and a release build:
#   cargo build --release -p stead-net && scripts/bench-vs-etcd.sh
# TOTAL, CLIENTS and CONNS override the load (defaults: 20000 requests, 64 clients, 8 conns).
# WORKLOADS (';'-separated) picks workloads. TLS=1 runs both clusters with mutual TLS on the
# client and peer ports (certificates made here with openssl) and benches over TLS.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release
total=${TOTAL:-20000}
clients=${CLIENTS:-64}
conns=${CONNS:-8}
root=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$root"' EXIT

scheme=http
tls_flags=()
client_tls=()
if [ "${TLS:-0}" = 1 ]; then
  scheme=https
  certs="$root/certs"; mkdir -p "$certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$certs/ca-key.pem" -out "$certs/ca.pem" 2>/dev/null
  issue() { # $1: name, $2: extensions
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
      -keyout "$certs/$1-key.pem" -out "$certs/$1.csr" 2>/dev/null
    openssl x509 -req -in "$certs/$1.csr" -CA "$certs/ca.pem" -CAkey "$certs/ca-key.pem" \
      -CAcreateserial -days 2 -extfile <(printf '%s' "$2") -out "$certs/$1.pem" 2>/dev/null
  }
  issue member "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth"
  issue client "extendedKeyUsage=clientAuth"
  tls_flags=(--cert-file "$certs/member.pem" --key-file "$certs/member-key.pem"
    --trusted-ca-file "$certs/ca.pem" --client-cert-auth
    --peer-cert-file "$certs/member.pem" --peer-key-file "$certs/member-key.pem"
    --peer-trusted-ca-file "$certs/ca.pem" --peer-client-cert-auth)
  client_tls=(--cacert "$certs/ca.pem" --cert "$certs/client.pem" --key "$certs/client-key.pem")
fi
cluster="a=$scheme://127.0.0.1:32380,b=$scheme://127.0.0.1:32381,c=$scheme://127.0.0.1:32382"
endpoints="127.0.0.1:32370,127.0.0.1:32371,127.0.0.1:32372"
start() { # $1: the binary
  local i=0
  for name in a b c; do
    "$1" --name $name --data-dir "$root/$1-$name" --initial-cluster "$cluster" \
      --listen-client-urls "$scheme://127.0.0.1:3237$i" --advertise-client-urls "$scheme://127.0.0.1:3237$i" \
      --listen-peer-urls "$scheme://127.0.0.1:3238$i" --initial-advertise-peer-urls "$scheme://127.0.0.1:3238$i" \
      "${tls_flags[@]}" >"$root/$name.log" 2>&1 &
    i=$((i + 1))
  done
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints="$endpoints" "${client_tls[@]}" endpoint health >/dev/null 2>&1 && return
    sleep 0.2
  done
  echo "the cluster of $1 did not start" >&2; exit 1
}
stop() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; }

workloads=(
  "put --key-size 8 --val-size 256 --key-space-size 100000"
  "range --consistency l"
  "range --consistency s"
  "txn-put --key-size 8 --val-size 256 --key-space-size 100000"
  "lease-keepalive"
)
if [ -n "${WORKLOADS:-}" ]; then IFS=';' read -r -a workloads <<<"$WORKLOADS"; fi
declare -A results
for system in etcd stead; do
  binary=etcd; [ $system = stead ] && binary=$bin/stead
  start "$binary"
  for w in "${workloads[@]}"; do
    line=$($bin/stead-bench $w --endpoints "$endpoints" "${client_tls[@]}" --conns "$conns" --clients "$clients" --total "$total" | grep '^RESULT')
    results["$system|$w"]=$line
    echo "$system: $w -> ${line#RESULT }"
  done
  stop
done

printf '\n%-55s %12s %12s %8s %10s %10s\n' workload "etcd rps" "stead rps" ratio "etcd p99" "stead p99"
for w in "${workloads[@]}"; do
  e=${results["etcd|$w"]}; s=${results["stead|$w"]}
  er=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$e"); sr=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$s")
  ep=$(sed -E 's/.* p99_ms=([0-9.]+).*/\1/' <<<"$e"); sp=$(sed -E 's/.* p99_ms=([0-9.]+).*/\1/' <<<"$s")
  printf '%-55s %12s %12s %8s %8sms %8sms\n' "$w" "$er" "$sr" "$(awk "BEGIN {printf \"%.2f\", $sr / $er}")" "$ep" "$sp"
done
