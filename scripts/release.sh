#!/usr/bin/env bash
# Release archives of natcheck for every system it ships for, with the
# version stamped into the binary and SHA256SUMS beside them.
#
#   scripts/release.sh                    # version from the tag at HEAD, into dist/
#   VERSION=v1.2.0 scripts/release.sh     # that version
#   ALLOW_DIRTY=1 VERSION=... scripts/release.sh   # a trial from uncommitted changes
#   scripts/release.sh --dry-run          # into a temporary directory, then check it all
#   scripts/release.sh --binary linux/arm64 OUT   # one binary, built as a release builds it
#
# Reproducible: the same source tree, version and Go release give the same
# bytes (-trimpath, no build ID, no VCS stamp, CGO off; archive entries
# sorted, owned by 0:0 and dated SOURCE_DATE_EPOCH, the commit's time by
# default). Needs GNU tar, gzip, zip, unzip and sha256sum (Linux).
set -euo pipefail

# Paths given on the command line are relative to where it was run.
invoked_in=$PWD
cd "$(dirname "$0")/.."

targets=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64)
stamp_var=github.com/natcheck/natcheck/cmd.stampedVersion

log() { printf '== %s\n' "$*" >&2; }
die() {
	printf 'release.sh: %s\n' "$*" >&2
	exit 1
}

# build GOOS/GOARCH OUT: the one place that says how a release binary is
# built (the Dockerfile's builder stage uses the same flags; a test in
# contrib/ checks both give the same bytes).
build() {
	local target=$1 out=$2
	CGO_ENABLED=0 GOOS=${target%/*} GOARCH=${target#*/} \
		go build -trimpath -buildvcs=false \
		-ldflags="-s -w -buildid= -X ${stamp_var}=${VERSION}" \
		-o "$out" .
}

# version_from_git prints the tag at HEAD (v1.2.0), or git describe's
# v1.2.0-3-gabcdef1 after it, with -dirty for uncommitted changes; nothing
# when there is no tag.
version_from_git() {
	git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || true
}

check_version() {
	[[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] ||
		die "VERSION \"$VERSION\" is not a version like v1.2.0 or v1.2.0-rc.1"
}

# archive TARGET DIST WORK: one target's archive in DIST, staged in WORK.
archive() {
	local target=$1 dist=$2 work=$3
	local goos=${target%/*} goarch=${target#*/}
	# zip and tar run in WORK: DIST must not be relative.
	[[ $dist == /* ]] || dist="$PWD/$dist"
	local name="natcheck_${VERSION#v}_${goos}_${goarch}"
	local stage="$work/$name" exe=natcheck
	[ "$goos" = windows ] && exe=natcheck.exe
	rm -rf "$stage"
	mkdir -p "$stage"
	build "$target" "$stage/$exe"
	cp README.md "$stage/"
	if [ -e LICENSE ]; then cp LICENSE "$stage/"; fi
	if [ "$goos" != windows ]; then
		# The man pages (natcheck(1), natcheck-serve(1), ...) for MANPATH.
		mkdir -p "$stage/man/man1"
		cp docs/man/*.1 "$stage/man/man1/"
	fi
	if [ "$goos" = linux ]; then
		# The unit, its environment file and drop-in: docs/serve.md.
		mkdir -p "$stage/systemd"
		cp contrib/systemd/* "$stage/systemd/"
	fi
	# Modes and times are part of the archive's bytes: fix them.
	find "$stage" -type d -exec chmod 0755 {} +
	find "$stage" -type f -exec chmod 0644 {} +
	chmod 0755 "$stage/$exe"
	find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	if [ "$goos" = windows ]; then
		rm -f "$dist/$name.zip"
		# zip stores local time: UTC makes it the same everywhere; -X drops
		# owner and extra time fields, -D directory entries.
		(cd "$work" && find "$name" -type f | LC_ALL=C sort |
			TZ=UTC zip -q -X -D "$dist/$name.zip" -@)
	else
		tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
			--mtime="@$SOURCE_DATE_EPOCH" -C "$work" -cf - "$name" |
			gzip -9 -n >"$dist/$name.tar.gz"
	fi
	echo "$name"
}

# release DIST: every archive and SHA256SUMS into DIST.
release() {
	local dist=$1 work="$scratch/work"
	mkdir -p "$dist" "$work"
	rm -f "$dist"/natcheck_* "$dist/SHA256SUMS"
	for target in "${targets[@]}"; do
		log "build $target $VERSION"
		archive "$target" "$dist" "$work" >/dev/null
	done
	(cd "$dist" && LC_ALL=C sha256sum natcheck_* >SHA256SUMS)
}

# listing ARCHIVE: the paths in a .tar.gz or .zip, one a line.
listing() {
	case $1 in
	*.zip) unzip -Z1 "$1" ;;
	*) tar -tzf "$1" ;;
	esac
}

# dry_run: a whole release into a temporary directory, then the checks CI
# relies on. Nothing is kept.
dry_run() {
	local tmp="$scratch" dist="$scratch/dist" name exe host out want
	release "$dist"

	log "check: every archive holds the binary and the README"
	for target in "${targets[@]}"; do
		name="natcheck_${VERSION#v}_${target%/*}_${target#*/}"
		exe=natcheck
		[ "${target%/*}" = windows ] && exe=natcheck.exe
		local file="$dist/$name.tar.gz"
		[ "${target%/*}" = windows ] && file="$dist/$name.zip"
		[ -f "$file" ] || die "dry run: $file missing"
		listing "$file" >"$tmp/list"
		grep -qx "$name/$exe" "$tmp/list" || die "dry run: $file has no $name/$exe"
		grep -qx "$name/README.md" "$tmp/list" || die "dry run: $file has no README.md"
		printf '   %-46s %8s bytes, %s entries\n' "${file##*/}" "$(wc -c <"$file")" "$(wc -l <"$tmp/list")" >&2
	done

	log "check: sha256sum -c SHA256SUMS"
	(cd "$dist" && sha256sum --quiet -c SHA256SUMS) || die "dry run: checksums do not match"
	[ "$(wc -l <"$dist/SHA256SUMS")" -eq "${#targets[@]}" ] || die "dry run: SHA256SUMS should list ${#targets[@]} archives"

	host="$(go env GOOS)/$(go env GOARCH)"
	name="natcheck_${VERSION#v}_${host%/*}_${host#*/}"
	if [ -f "$dist/$name.tar.gz" ]; then
		log "check: the $host binary says $VERSION"
		tar -xzf "$dist/$name.tar.gz" -C "$tmp"
		out=$("$tmp/$name/natcheck" version)
		want="natcheck $VERSION $(go env GOVERSION)"
		[ "$out" = "$want" ] || die "dry run: natcheck version printed \"$out\", want \"$want\""
		printf '   %s\n' "$out" >&2

		log "check: a second build of $host gives the same archive"
		mkdir -p "$tmp/again" "$tmp/work2"
		archive "$host" "$tmp/again" "$tmp/work2" >/dev/null
		cmp "$dist/$name.tar.gz" "$tmp/again/$name.tar.gz" || die "dry run: $name.tar.gz is not reproducible"
	else
		log "no archive for this host ($host): the version check needs one"
		die "dry run: cannot run a binary here"
	fi
	log "dry run passed: ${#targets[@]} archives, checksums, version $VERSION, reproducible"
}

main() {
	local mode=release out=""
	case ${1:-} in
	--dry-run) mode=dry ;;
	--binary)
		mode=binary
		[ $# -eq 3 ] || die "usage: release.sh --binary GOOS/GOARCH OUT"
		out=$3
		[[ $out == /* ]] || out="$invoked_in/$out"
		;;
	"") ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		return
		;;
	*) die "unknown argument \"$1\" (see --help)" ;;
	esac

	if [ -z "${VERSION:-}" ]; then
		VERSION=$(version_from_git)
		if [ -z "$VERSION" ]; then
			[ "$mode" = release ] && die "no tag at HEAD: tag the release (git tag v1.2.0) or set VERSION"
			VERSION="v0.0.0-dev+$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
		fi
	fi
	check_version
	# A release is built from a clean tree, so that its commit names its
	# source (untracked .go files would be compiled in too).
	if [ "$mode" = release ] && [ -z "${ALLOW_DIRTY:-}" ] &&
		[ -n "$(git status --porcelain 2>/dev/null)" ]; then
		die "uncommitted or untracked files (git status): commit them, or ALLOW_DIRTY=1 for a trial"
	fi
	if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
		SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) ||
			die "set SOURCE_DATE_EPOCH (no git history to take the commit time from)"
	fi
	export SOURCE_DATE_EPOCH
	# Staging directories, and the whole dry run, live here.
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' EXIT

	case $mode in
	dry) dry_run ;;
	binary) build "$2" "$out" ;;
	release)
		release "$PWD/dist"
		log "dist/: $(cd dist && ls natcheck_* SHA256SUMS | tr '\n' ' ')"
		;;
	esac
}

main "$@"
