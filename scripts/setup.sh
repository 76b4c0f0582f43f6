#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test skyplan. Idempotent and quick when
# everything is present. Needs root (or sudo) for apt.
#   apt:  cmake, libclang-dev (HiGHS via good_lp), kubernetes-client (kubectl, for kubesim tests),
#         openssh-client, openssh-server, rsync (clusters you reach over SSH)
#   pip:  moto[server] (local EC2 API for the AWS backend tests)
set -euo pipefail

sudo_cmd=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi

missing=()
for pkg in cmake libclang-dev openssh-client openssh-server rsync; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Any working kubectl will do (a machine may already have one from another package).
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v moto_server >/dev/null 2>&1; then
  echo "setup: installing moto[server]"
  python3 -m pip install -q 'moto[server]'
fi
echo "setup: ok (cmake, libclang, kubectl, ssh, sshd, rsync, moto_server present)"
