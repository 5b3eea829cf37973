# Shared by the benchmark scripts (sourced from the repository root): a scratch directory
# removed on exit together with every process whose pid is added to `pids`, free loopback
# ports, and waiting for a server to answer.
work=$(mktemp -d)
pids=()
# Also whatever names the scratch directory on its command line: launchers such as the pip
# SeaweedFS wrapper leave their child running when killed.
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -9 -f -- "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 300); do curl -s --max-time 2 -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "no answer at $1" >&2; exit 1
}
# start_distribution NAME PORT: the reference, CNCF Distribution (Debian's docker-registry),
# with filesystem storage in $work/NAME (deletes enabled) on PORT; its pid joins `pids`.
start_distribution() {
  cat > "$work/$1.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/$1}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$2}
YAML
  docker-registry serve "$work/$1.yml" >"$work/$1.log" 2>&1 &
  pids+=($!)
}
# start_oci_storage PORT PASSWORD [BINARY] [NAME] [SERVER_SETTINGS]: the release oci-storage
# (or BINARY) with fs storage in $work/NAME (default oci-storage) and SERVER_SETTINGS added to
# `server` (e.g. "sendfile: always"), user admin/PASSWORD, anonymous pull; its pid joins
# `pids`.
start_oci_storage() {
  local name=${4:-oci-storage}
  cat > "$work/$name.yml" <<YAML
server: {host: 127.0.0.1, port: $1${5:+, $5}}
storage: {type: fs, fs: {path: $work/$name}}
auth: {anonymousPull: true, users: [{username: admin, password: "$2"}]}
logging: {level: warn}
YAML
  "${3:-target/release/oci-storage}" serve --config "$work/$name.yml" >"$work/$name.log" 2>&1 &
  pids+=($!)
}
# start_seaweedfs KEY SECRET BUCKET…: SeaweedFS (`weed mini`) with every port on loopback (its
# defaults are fixed numbers), one identity KEY/SECRET, and the buckets created; sets `s3` to
# its endpoint; its pid joins `pids`.
start_seaweedfs() {
  local key=$1 secret=$2; shift 2
  cat > "$work/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"$key","secretKey":"$secret"}],
  "actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  mkdir -p "$work/weed"
  local s3_port weed_ports=() flag bucket code
  s3_port=$(free_port)
  for flag in master.port master.port.grpc volume.port volume.port.grpc filer.port filer.port.grpc \
              s3.port.grpc admin.port admin.port.grpc; do
    weed_ports+=("-$flag=$(free_port)")
  done
  weed mini -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$s3_port" \
    -s3.config="$work/s3.json" -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -debug.port=0 -metricsPort=0 -s3.metricsPort=0 -s3.debug.port=0 "${weed_ports[@]}" \
    >"$work/weed.log" 2>&1 &
  pids+=($!)
  s3="http://127.0.0.1:$s3_port"
  for bucket in "$@"; do
    for _ in $(seq 300); do
      code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --aws-sigv4 aws:amz:us-east-1:s3 \
        --user "$key:$secret" "$s3/$bucket" || true)
      [ "$code" = 200 ] && break
      sleep 0.2
    done
  done
}
