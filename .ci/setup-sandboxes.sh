#!/usr/bin/env bash
# Prepare a fresh Debian machine (as root) for itemloop's sandbox tests:
# bubblewrap, a running Docker engine, and the local test images.
# Idempotent: safe to run again. No registry is needed: the images are built
# with `docker import` from files already on this machine.
#
#   itemloop-test:busybox  busybox-static and its applet links, nothing else
#                          (an image with "nothing but /bin/sh": the exec path)
#   itemloop-test:python   the same plus this machine's python3 and the
#                          libraries it needs
#   itemloop-test:noshell  no shell at all: one static binary (.ci/probe.c,
#                          built with musl-gcc -static) and its tool links
#   itemloop-test:musl     musl, no glibc: musl's loader and libc, the probe
#                          linked against them, busybox-static as /bin/sh
set -euo pipefail

log() { printf 'setup-sandboxes: %s\n' "$*" >&2; }

need_pkgs=()
command -v bwrap >/dev/null 2>&1 || need_pkgs+=(bubblewrap)
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc)
command -v musl-gcc >/dev/null 2>&1 || need_pkgs+=(musl-tools)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# --- dockerd ------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    (setsid dockerd >/tmp/itemloop-dockerd.log 2>&1 &)
    for _ in $(seq 1 150); do            # poll for up to ~30 s
        docker info >/dev/null 2>&1 && break
        sleep 0.2
    done
    if ! docker info >/dev/null 2>&1; then
        log "dockerd did not come up; its log:"
        tail -n 50 /tmp/itemloop-dockerd.log >&2 || true
        exit 1
    fi
fi

# --- images -------------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

busybox_rootfs() {   # $1: target dir
    local root=$1
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,workspace,root}
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list-full); do
        [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

if ! docker image inspect itemloop-test:busybox >/dev/null 2>&1; then
    log "building itemloop-test:busybox"
    busybox_rootfs "$work/busybox"
    tar -C "$work/busybox" -c . | docker import -c 'CMD ["/bin/sh"]' - itemloop-test:busybox >/dev/null
fi

if ! docker image inspect itemloop-test:python >/dev/null 2>&1; then
    log "building itemloop-test:python"
    root="$work/python"
    busybox_rootfs "$root"
    # The system interpreter (a version manager's shim would be a shell script).
    py=$(readlink -f /usr/bin/python3 2>/dev/null || readlink -f "$(command -v python3)")
    pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    pylib=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    platlib=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("DESTSHARED"))')
    files=("$py")
    # The interpreter, its extension modules and every shared library they load.
    for f in "$py" "$platlib"/*.so; do
        files+=("$f")
        while read -r lib; do files+=("$lib"); done < <(ldd "$f" 2>/dev/null | awk '/=>/ {print $3} /^\t\// {print $1}' | grep '^/')
    done
    for f in "${files[@]}"; do
        [ -e "$f" ] || continue
        mkdir -p "$root/$(dirname "$f")"
        cp -L "$f" "$root/$f"
    done
    # The standard library (without tests), and python3 on PATH.
    mkdir -p "$root/$pylib"
    tar -C "$pylib" --exclude=test --exclude=__pycache__ --exclude=idlelib --exclude=tkinter \
        --exclude=site-packages --exclude=dist-packages -c . | tar -C "$root/$pylib" -x
    rm -f "$root/usr/bin/python3"
    ln -sf "$py" "$root/usr/bin/python3"
    [ -e "$root/usr/bin/python$pyver" ] || ln -sf "$py" "$root/usr/bin/python$pyver"
    tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - itemloop-test:python >/dev/null
fi

probe_tools="true false echo sleep cat spew bg tree alive write exists id"
probe_rootfs() {   # $1: target dir, $2: the probe binary
    mkdir -p "$1/bin"
    cp "$2" "$1/bin/probe"
    for t in $probe_tools; do ln -s probe "$1/bin/$t"; done
}
probe_src=$(dirname "$0")/probe.c

if ! docker image inspect itemloop-test:noshell >/dev/null 2>&1; then
    log "building itemloop-test:noshell"
    musl-gcc -static -O2 -Wall -o "$work/probe-static" "$probe_src"
    probe_rootfs "$work/noshell" "$work/probe-static"
    tar -C "$work/noshell" -c . | docker import -c 'CMD ["/bin/probe", "true"]' - itemloop-test:noshell >/dev/null
fi

if ! docker image inspect itemloop-test:musl >/dev/null 2>&1; then
    log "building itemloop-test:musl"
    musl-gcc -O2 -Wall -o "$work/probe-musl" "$probe_src"
    root="$work/musl"
    probe_rootfs "$root" "$work/probe-musl"
    # musl's libc is its own loader: the probe asks for /lib/ld-musl-<arch>.so.1.
    interp=$(readelf -l "$work/probe-musl" | sed -n 's/.*program interpreter: \(.*\)]/\1/p')
    mkdir -p "$root/$(dirname "$interp")" "$root/etc" "$root/tmp"
    chmod 1777 "$root/tmp"
    cp -L "$interp" "$root/$interp"
    cp /bin/busybox "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$root/etc/passwd"
    if find "$root" \( -name 'ld-linux*' -o -name 'libc.so.6' \) | grep -q .; then
        log "itemloop-test:musl would contain glibc"
        exit 1
    fi
    tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - itemloop-test:musl >/dev/null
fi

log "ready: bwrap $(bwrap --version | awk '{print $2}'), docker $(docker version --format '{{.Server.Version}}'), images itemloop-test:busybox itemloop-test:python itemloop-test:noshell itemloop-test:musl"
