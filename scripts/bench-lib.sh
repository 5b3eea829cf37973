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
# start_oci_storage PORT PASSWORD [BINARY]: the release oci-storage (or BINARY) with fs storage
# in $work/oci-storage, user admin/PASSWORD, anonymous pull; its pid joins `pids`.
start_oci_storage() {
  cat > "$work/oci-storage.yml" <<YAML
server: {host: 127.0.0.1, port: $1}
storage: {type: fs, fs: {path: $work/oci-storage}}
auth: {anonymousPull: true, users: [{username: admin, password: "$2"}]}
logging: {level: warn}
YAML
  "${3:-target/release/oci-storage}" serve --config "$work/oci-storage.yml" >"$work/oci-storage.log" 2>&1 &
  pids+=($!)
}
