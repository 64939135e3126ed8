#!/usr/bin/env python3
"""The version lives in one place, meson.build's project version (meson
passes it to the build as PTTH_VERSION and to this test as its argument):
every program's --version prints it, debian/changelog's newest entry
carries it, and the man pages built from docs/ say it in their footer."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from opskit import pt  # noqa: E402

VERSION = sys.argv[1]
t = pt.Tap()


@t.test
def every_program_prints_the_meson_version(ctx):
    for prog in pt.PROGRAM_DIRS:
        r = pt.run([pt.program(prog), "--version"], timeout=10)
        assert r.returncode == 0, (prog, r.returncode, r.stderr)
        assert r.stdout == "%s %s\n" % (prog, VERSION), (prog, r.stdout)


@t.test
def debian_changelog_carries_it(ctx):
    with open(os.path.join(pt.SOURCE_DIR, "debian", "changelog")) as f:
        first = f.readline()
    m = re.match(r"^ptth \(([^)\s]+)\) \S+; urgency=\S+$", first)
    assert m, first
    # a native package (debian/source/format) has no Debian revision; a later
    # non-native one would add -N after the same upstream version
    upstream = re.sub(r"-[^-]+$", "", m.group(1))
    assert upstream == VERSION, (m.group(1), VERSION)


@t.test
def man_pages_carry_it(ctx):
    docs = os.path.join(pt.BUILD_DIR, "docs")
    pages = [p for p in os.listdir(docs) if p.endswith(".1")] if os.path.isdir(docs) else []
    if not pages:
        raise pt.Skip("no man pages built (pandoc not installed)")
    assert len(pages) == len(pt.PROGRAM_DIRS), pages
    for page in pages:
        with open(os.path.join(docs, page)) as f:
            th = [line for line in f if line.startswith(".TH ")]
        assert th and '"ptth %s"' % VERSION in th[0], (page, th)


t.run()
