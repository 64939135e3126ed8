#!/bin/sh
# man.sh SOURCE.md OUTPUT PROGRAM VERSION: the man page (section 1) of
# PROGRAM from its docs page, with pandoc. The page's "# title" becomes the
# NAME section, its "## " sections the man sections. Used by docs/meson.build
# (man pages are built only where pandoc is installed) and by
# tests/integration/ops/test_docs.py.
set -eu
src=$1 out=$2 prog=$3 version=$4
# the first sentence of the first paragraph after the title describes it
desc=$(awk 'NR > 1 && NF && !/^(#|```|\|)/ { print; n++; next } n { exit }' "$src" | tr '\n' ' ' |
    sed 's/`//g; s/\([.:]\) .*/\1/; s/ *$//; s/[.:]$//')
{
    printf '# NAME\n\n%s - %s\n\n' "$prog" "$desc"
    # drop the title line, raise every heading one level
    sed '1{/^# /d}' "$src" | sed 's/^##\(#*\) /#\1 /'
} | pandoc -s -f gfm -t man -M title="$prog" -M section=1 -M header="ptth manual" -M footer="ptth $version" -o "$out"
