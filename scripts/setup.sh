#!/usr/bin/env bash
# Create .venv and install vision-qc into it. With "test": also the test extras and the
# Debian packages the tests drive for real (Xvfb, xdotool and xwininfo for the live window,
# Chromium for the report).
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=${1:-}
if [ "$want_test" = "test" ]; then
  need=()
  command -v Xvfb >/dev/null 2>&1 || need+=(xvfb)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v xdotool >/dev/null 2>&1 || need+=(xdotool)
  command -v xwininfo >/dev/null 2>&1 || need+=(x11-utils)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = "0" ]; then
      echo "installing Debian packages: ${need[*]}"
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
      echo "please install the Debian packages: ${need[*]} (sudo apt-get install ${need[*]})" >&2
      exit 2
    fi
  fi
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "$want_test" = "test" ]; then
  .venv/bin/python -m pip install -q -e '.[test,dask]'
else
  .venv/bin/python -m pip install -q -e .
fi
# compile the per-frame kernels now (Numba caches them beside the code): the first inspection
# then starts in ~0.1 s instead of compiling for half a minute
echo "compiling the inspection kernels (once per install) ..."
.venv/bin/python -c "import vision_qc.shell.batch_warmup" >/dev/null
