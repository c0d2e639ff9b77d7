#!/usr/bin/env bash
# generate.sh writes the upgrade fixtures: for every schema version N of
# the SQLite store, vN.db.gz is a store written by the routines binary of
# the newest commit (on the first-parent history of HEAD) whose schema was
# N (else, for a version only a merged branch had, the newest ancestor)
# — the real code of that time, not today's code against an old schema —
# holding a few runs, steps, logs, state (N >= 2), secrets and their audit
# (N >= 5). TestUpgradeFixtures (upgrade_test.go) migrates each one with
# the current code and checks that its data is intact.
#
# It writes only the fixtures that are missing: after a new migration
# lands, run it again to add the fixture of the version before it.
#
#   internal/store/sqlite/testdata/upgrade/generate.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
migrations=internal/store/sqlite/migrations
# A key for these fixtures only: it seals nothing but FIXTURE_TOKEN below.
export ROUTINES_MASTER_KEY=AGE-SECRET-KEY-1054T0SUYLVKLYFNDYL8WZP5DV4PF3P5DCW369SPA3FYMM4DTDSJSJXARWX
token=fixture-token-value-7f3a

work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT

# version COMMIT: the newest migration number in that commit's tree.
version() {
	git -C "$repo" ls-tree --name-only "$1" "$migrations/" |
		sed -n 's|.*/\([0-9]\{4\}\)_[^/]*\.sql$|\1|p' | sort | tail -1 | sed 's/^0*//'
}

latest=$(version HEAD)
declare -A commit_of
for c in $(git -C "$repo" rev-list --first-parent HEAD) $(git -C "$repo" rev-list HEAD); do
	v=$(version "$c")
	[ -n "$v" ] || continue
	[ -n "${commit_of[$v]:-}" ] || commit_of[$v]=$c
done

for v in $(seq 1 "$latest"); do
	out="$here/v$v.db.gz"
	[ -e "$out" ] && continue
	c=${commit_of[$v]:-}
	if [ -z "$c" ]; then
		echo "no commit of schema $v in the history of HEAD: skipped" >&2
		continue
	fi
	echo "schema $v: building $(git -C "$repo" log -1 --format='%h %s' "$c" | cut -c1-80)" >&2
	src=$work/src$v
	mkdir -p "$src"
	git -C "$repo" archive "$c" | tar -x -C "$src"
	(cd "$src" && go build -o "$work/routines$v" ./cmd/routines)
	bin=$work/routines$v

	p=$work/p$v
	mkdir -p "$p/fixture" "$p/broken"
	{
		echo "name: fixture"
		[ "$v" -ge 5 ] && echo "secrets: [FIXTURE_TOKEN]"
		echo "steps:"
		echo "  - id: greet"
		echo "    run: echo \"hello from schema $v, {{ input.who }}\""
		if [ "$v" -ge 2 ]; then
			echo "  - id: remember"
			echo "    state: { put: greeting, value: \"hello {{ input.who }}\" }"
		fi
		if [ "$v" -ge 5 ]; then
			echo "  - id: token"
			echo "    run: echo \"token=\$FIXTURE_TOKEN\""
		fi
	} >"$p/fixture/routine.yaml"
	cat >"$p/broken/routine.yaml" <<-'YAML'
	name: broken
	steps:
	  - id: fail
	    run: echo "about to fail" >&2; exit 3
	YAML
	if [ "$v" -ge 5 ]; then
		printf %s "$token" | "$bin" --project "$p" secrets set FIXTURE_TOKEN
	fi
	"$bin" --project "$p" run-once "$p/fixture" -i who=ada
	"$bin" --project "$p" run-once "$p/fixture" -i who=grace
	if "$bin" --project "$p" run-once "$p/broken"; then
		echo "broken succeeded" >&2
		exit 1
	fi
	db=$p/.routines/state.db
	# The binary closed the store (its log folded in): one file. VACUUM
	# drops free pages, gzip the empty space of each table's own page.
	sqlite3 "$db" 'VACUUM'
	gzip -9 -n -c "$db" >"$out"
	echo "wrote $out ($(stat -c %s "$out") bytes)" >&2
done
