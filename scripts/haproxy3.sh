#!/usr/bin/env bash
# HAProxy 3.x (3.1 or later, today the 3.2 LTS) for the integration tests, from Debian's
# unstable suite, without installing it as a package:
#   export HAPROXY3="$(bash scripts/haproxy3.sh)"
# prints the path of a runnable `haproxy` on stdout (everything else goes to stderr) and exits
# non-zero, with the reason, when it cannot get one.
#
# Debian unstable's `haproxy` needs a newer glibc, OpenSSL, PCRE2 and Lua than the system has,
# so it is not installed: a private apt configuration that lists only unstable (main, binary
# packages) downloads it and the shared libraries it depends on, `dpkg -x` unpacks them into
# one directory, and patchelf points a copy of usr/sbin/haproxy at that directory's dynamic
# loader and libraries. The system's apt sources, lists, cache and packages are not touched.
#
# Usage: bash scripts/haproxy3.sh [--refresh] [DIR]
#   DIR        where to keep it (default: $HAPROXY3_DIR, else target/haproxy3 in the repo).
#   --refresh  download again even when DIR already holds a working binary.
# Env:
#   HAPROXY3_MIRROR  the Debian mirror URI; default: the first Debian archive URI of the
#                    system's own apt sources (/etc/apt/sources.list and sources.list.d/).
# Needs: apt-get, dpkg, patchelf (`apt-get install patchelf`); network access to the mirror on
# the first run only (later runs reuse DIR). No root needed when DIR is writable.
# Takes whatever version the suite offers (no Debian revision is pinned) and refuses anything
# below 3.1.
set -euo pipefail

die() { echo "haproxy3.sh: $*" >&2; exit 1; }
say() { echo "haproxy3.sh: $*" >&2; }

refresh=0
dir=""
for arg in "$@"; do
    case "$arg" in
        --refresh) refresh=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
        -*) die "unknown option $arg" ;;
        *) dir="$arg" ;;
    esac
done
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${dir:-${HAPROXY3_DIR:-$repo/target/haproxy3}}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
bin="$dir/bin/haproxy"

# "HAProxy version 3.2.26-1 2025/..." -> 0 when it is 3.1 or later.
version_ok() {
    local major minor
    IFS=. read -r major minor _ <<<"$(sed -n '1s/^HA-\{0,1\}Proxy version \([0-9.]*\).*/\1/p' <<<"$1")"
    [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
    (( major > 3 || (major == 3 && minor >= 1) ))
}

if [[ $refresh == 0 && -x "$bin" ]]; then
    version="$("$bin" -v 2>/dev/null | head -n1 || true)"
    if version_ok "$version"; then
        say "cached: $version"
        echo "$bin"
        exit 0
    fi
    say "cached $bin unusable (${version:-does not run}), fetching again"
fi

for tool in apt-get apt-cache dpkg dpkg-deb patchelf; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found (patchelf: apt-get install patchelf; the rest come with Debian's apt and dpkg)"
done

# The mirror: the system's own Debian archive (not its -security archive), from one-line
# `deb URI suite ...` entries or deb822 `URIs:` fields.
mirror="${HAPROXY3_MIRROR:-}"
if [[ -z "$mirror" ]]; then
    shopt -s nullglob
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        mirror="$(awk '
            /^[[:space:]]*deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; break } }
            /^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f" |
            grep -E '/debian/?$' | head -n1 || true)"
        [[ -n "$mirror" ]] && break
    done
    shopt -u nullglob
    [[ -n "$mirror" ]] ||
        die "no Debian archive URI in /etc/apt/sources.list(.d); set HAPROXY3_MIRROR"
fi
# Debian's archive keyring (bookworm's debian-archive-keyring holds the keys that sign
# unstable too): apt refuses the lists unless the signature verifies.
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f "$keyring" ]] || die "$keyring missing (apt-get install debian-archive-keyring)"

aptdir="$dir/apt"
mkdir -p "$aptdir/sources" "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
: >"$aptdir/status"
cat >"$aptdir/sources/unstable.sources" <<EOF
Types: deb
URIs: $mirror
Suites: unstable
Components: main
Signed-By: $keyring
EOF
apt_opts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$aptdir/sources"
    -o "Dir::State::Lists=$aptdir/lists"
    # An empty dpkg status: the system's installed packages (haproxy 2.x among them) are
    # neither candidates nor consulted.
    -o "Dir::State::status=$aptdir/status"
    -o "Dir::Cache=$aptdir/cache"
    # A binary cache of the lists in there, even where apt.conf.d turns it off (container
    # images do): without it each apt-cache call below parses the whole list again.
    -o "Dir::Cache::pkgcache=pkgcache.bin"
    -o "Dir::Cache::srcpkgcache=srcpkgcache.bin"
    # Only the Packages index: no translations, no AppStream metadata.
    -o "Acquire::Languages=none"
    -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
    -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
    # Downloads land in a directory of ours; no need to hand them to the _apt user.
    -o "APT::Sandbox::User=$(id -un)"
)

say "updating the package list of $mirror unstable (private to $aptdir)"
apt-get "${apt_opts[@]}" -q --error-on=any update >&2 || die "apt-get update of $mirror unstable failed"

# The candidate is unstable's: nothing else is listed.
candidate="$(apt-cache "${apt_opts[@]}" policy haproxy | sed -n 's/^ *Candidate: //p')"
[[ -n "$candidate" && "$candidate" != "(none)" ]] || die "no haproxy package in $mirror unstable"
say "haproxy candidate in unstable: $candidate"

# haproxy and, recursively, every dependency in section libs (the shared libraries it links
# and theirs); admin tools it depends on (adduser, ...) are not needed to run the binary.
declare -A seen=([haproxy]=1)
queue=(haproxy)
pkgs=()
while ((${#queue[@]})); do
    pkg="${queue[0]}"
    queue=("${queue[@]:1}")
    pkgs+=("$pkg")
    while read -r dep; do
        [[ -n "$dep" && -z "${seen[$dep]:-}" ]] || continue
        seen[$dep]=1
        section="$(apt-cache "${apt_opts[@]}" show --no-all-versions "$dep" 2>/dev/null |
            sed -n 's/^Section: //p' | head -n1)"
        [[ -n "$section" ]] || die "package $dep (needed by $pkg) not found in $mirror unstable"
        [[ "$section" == libs || "$section" == */libs ]] && queue+=("$dep")
    done < <(apt-cache "${apt_opts[@]}" depends --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "$pkg" |
        sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: \([^<][^ ]*\)$/\2/p')
done
say "packages: ${pkgs[*]}"

work="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/root" "$work/bin"
(cd "$work/debs" && apt-get "${apt_opts[@]}" -q download "${pkgs[@]}" >&2) ||
    die "apt-get download failed for some of: ${pkgs[*]}"
for deb in "$work"/debs/*.deb; do
    dpkg-deb -x "$deb" "$work/root"
done

root="$dir/root"
libdir="$(dirname "$(find "$work/root/usr/lib" -maxdepth 2 -name 'ld-linux*.so.*' | head -n1)")"
[[ "$libdir" != . ]] || die "no dynamic loader (ld-linux*.so.*) in the unpacked libc6"
loader="$(find "$libdir" -maxdepth 1 -name 'ld-linux*.so.*' | head -n1)"
[[ -x "$work/root/usr/sbin/haproxy" ]] || die "the haproxy package has no usr/sbin/haproxy"
# Paths as they will be once $work/root is moved to $root.
final_libdir="$root${libdir#"$work/root"}"
final_loader="$root${loader#"$work/root"}"
cp "$work/root/usr/sbin/haproxy" "$work/bin/haproxy"
# --force-rpath writes DT_RPATH (not RUNPATH), which also applies to the libraries' own
# dependencies (libssl3t64 -> libzstd1, ...).
patchelf --set-interpreter "$final_loader" --force-rpath --set-rpath "$final_libdir" "$work/bin/haproxy"

rm -rf "$root" "$dir/bin"
mv "$work/root" "$root"
mv "$work/bin" "$dir/bin"

missing="$("$final_loader" --list "$bin" 2>&1 | grep 'not found' || true)"
[[ -z "$missing" ]] || die "libraries not found for $bin:"$'\n'"$missing"
version="$("$bin" -v 2>/dev/null | head -n1 || true)"
[[ -n "$version" ]] || die "$bin does not run"
version_ok "$version" || die "$bin is $version; the tests need 3.1 or later"
say "$version"
echo "$bin"
