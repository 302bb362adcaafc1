# Shared helpers of scripts/dev and scripts/test: install what a fresh Debian machine with
# only the Rust toolchain lacks (when root with apt), or say exactly what to install.

APT_UPDATED=0

# apt_install PKG…: installs Debian packages, or prints the exact command and fails.
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$APT_UPDATED" = 0 ]; then
      echo "==> apt-get update"
      apt-get update -qq
      APT_UPDATED=1
    fi
    echo "==> apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    echo "Missing packages. Install them with:" >&2
    echo "    sudo apt-get install -y $*" >&2
    exit 1
  fi
}

# The directory with initdb/pg_ctl/postgres, or nothing.
pg_bindir() {
  if [ -n "${PHOENIX_PG_BINDIR:-}" ]; then echo "$PHOENIX_PG_BINDIR"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; fi
}

# PostgreSQL server binaries, for the private clusters of `phoenix dev` and the tests.
ensure_postgres() {
  if [ -z "$(pg_bindir)" ]; then
    apt_install postgresql
  fi
}

# A C toolchain: rustc links through `cc`.
ensure_cc() {
  if ! command -v cc >/dev/null 2>&1; then
    apt_install gcc libc6-dev
  fi
}

ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-nextest"
    cargo install cargo-nextest --locked
  fi
}

# Node.js + npm, for `buf lint` of proto/ (buf ships through the npm registry).
ensure_npm() {
  if ! command -v npx >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
}

# python3 with grpcio + grpcio-tools, for the Python end-to-end test (tests/e2e/).
ensure_python_grpc() {
  if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3 python3-pip
  fi
  if ! python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
    echo "==> pip install grpcio grpcio-tools"
    python3 -m pip install --user --quiet grpcio grpcio-tools \
      || python3 -m pip install --user --quiet --break-system-packages grpcio grpcio-tools
  fi
}
