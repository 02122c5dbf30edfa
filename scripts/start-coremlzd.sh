# Sourced by load.sh and leakcheck.sh: start_coremlzd BINARY LOG [FLAGS...]
# starts coremlzd on 127.0.0.1 with a free port, logging to LOG, and sets
# server_pid and server_port once it serves (exits the script if it does not).
start_coremlzd() {
  local binary="$1" log="$2"
  shift 2
  "$binary" --address 127.0.0.1:0 "$@" >"$log" 2>&1 &
  server_pid=$!
  server_port=""
  for _ in $(seq 300); do
    server_port="$(grep -o 'serving gRPC on port [0-9]*' "$log" | grep -o '[0-9]*$' || true)"
    [ -n "$server_port" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log"
  echo "coremlzd did not start" >&2
  exit 1
}
