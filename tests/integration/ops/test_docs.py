#!/usr/bin/env python3
"""Each program's page in docs/ against its --help (SPEC §2: --help prints
every option): every option of --help is in the page's Options table with
the same value name and default, every option of the table is in --help,
the built-in options are documented, the page has examples that use only
real options and an exit-code table with the codes --help names. And the
man pages made from the same Markdown by pandoc (docs/meson.build) render
cleanly with every option in them."""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import opskit as kit  # noqa: E402
from opskit import pt  # noqa: E402

t = pt.Tap()

PAGES = [
    ("ptth_relay", "ptth_relay.md"),
    ("ptth_server", "ptth_server.md"),
    ("ptth_proxy", "ptth_proxy.md"),
    ("ptth_key", "ptth_key.md"),
    ("ptth_cc_agent", "ptth_cc_agent.md"),
    ("ptth_csd_emu", "csd-emulator.md"),
]
BUILTINS = {"--config", "--check-config", "--log-level", "--help", "--version"}


def help_options(prog):
    """{option: (value name or None, default or None)} from PROG --help."""
    r = pt.run([pt.program(prog), "--help"])
    assert r.returncode == 0 and r.stdout.startswith("Usage: " + prog), (prog, r.returncode, r.stdout[:200])
    opts = {}
    lines = r.stdout.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^  (--[a-z][a-z0-9-]*)(?: (\S+))?(?:\s{2,}(.*)|$)", line)
        if not m:
            continue
        desc = m.group(3) or ""
        if not desc and i + 1 < len(lines) and lines[i + 1].startswith(" " * 20):
            desc = lines[i + 1].strip()  # a long option line: the help is on the next line
        d = re.search(r"\(default: ([^)]*)\)\s*$", desc)
        assert m.group(1) not in opts, (prog, "option listed twice", m.group(1))
        opts[m.group(1)] = (m.group(2), d.group(1) if d else None)
    assert opts, (prog, r.stdout)
    return opts, r.stdout


def read_page(name):
    with open(os.path.join(kit.DOCS, name)) as f:
        return f.read()


def section(text, title_rx):
    """The text of the first '## ' section whose title matches title_rx."""
    m = re.search(r"^## (%s)[^\n]*\n(.*?)(?=^## |\Z)" % title_rx, text, re.S | re.M | re.I)
    return m.group(2) if m else None


def table_options(sec):
    """{option: [(value name or None, row text)]} from the first cells of the
    table rows of a section."""
    out = {}
    for line in sec.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if not cells:
            continue
        for m in re.finditer(r"`(--[a-z][a-z0-9-]*)(?: ([^`]+))?`", cells[0]):
            # a | inside a table cell is written \| in Markdown
            value = m.group(2).replace("\\|", "|") if m.group(2) is not None else None
            out.setdefault(m.group(1), []).append((value, line))
    return out


def code_blocks(text):
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)


def check_page(prog, page):
    """The list of problems of one page (empty when it agrees with --help)."""
    problems = []
    opts, help_text = help_options(prog)
    text = read_page(page)
    sec = section(text, r"Options")
    if sec is None:
        return ["%s: no '## Options' section" % page]
    table = table_options(sec)
    for opt, (metavar, default) in opts.items():
        rows = table.get(opt)
        if opt in BUILTINS:
            if rows is None and opt not in text and "configuration.md" not in text:
                problems.append("%s: built-in %s neither listed nor linked (configuration.md)" % (page, opt))
            continue
        if rows is None:
            problems.append("%s: %s (in --help) is not in the Options table" % (page, opt))
            continue
        doc_metavars = [mv for mv, _ in rows]
        if metavar is None:
            if any(doc_metavars):
                problems.append("%s: %s is a flag in --help but has a value %s in the page" % (page, opt, doc_metavars))
        else:
            alternatives = metavar.split("|")
            for mv in doc_metavars:
                if mv != metavar and mv not in alternatives:
                    problems.append("%s: %s takes %s in --help but %s in the page" % (page, opt, metavar, mv))
        if default is not None and not any(default in row for _, row in rows):
            problems.append("%s: %s has default %s in --help, not in its row" % (page, opt, default))
    for opt in table:
        if opt not in opts:
            problems.append("%s: %s is in the Options table but not in --help" % (page, opt))

    # exit codes: the codes --help names, each a row of the page's table
    m = re.search(r"Exit (?:codes?|status):(.*)", help_text, re.S)
    codes = sorted(set(int(c) for c in re.findall(r"(?:^|[\s,;(])([0-2])(?= )", m.group(1)))) if m else []
    ex = section(text, r"Exit codes")
    if ex is None:
        problems.append("%s: no '## Exit codes' section" % page)
    else:
        for c in codes or [0, 1, 2]:
            if not re.search(r"^\|\s*`?%d`?\s*\|" % c, ex, re.M):
                problems.append("%s: exit code %d (in --help) is not a row of the Exit codes table" % (page, c))

    # examples: command lines of this program in code blocks use real options
    examples = 0
    for block in code_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            words = line.strip().split()
            if not words or os.path.basename(words[0]) != prog:
                continue
            examples += 1
            for w in words[1:]:
                o = re.match(r"(--[a-z][a-z0-9-]*)", w.strip("'\""))
                if o and o.group(1) not in opts:
                    problems.append("%s: example uses %s, which --help does not list: %s" % (page, o.group(1), line.strip()))
    if examples == 0:
        problems.append("%s: no example command line of %s in a code block" % (page, prog))
    return problems


def make_test(prog, page):
    def fn(ctx):
        problems = check_page(prog, page)
        assert not problems, "\n".join(problems)
    fn.__name__ = "%s_page_agrees_with_help" % prog
    return fn


for _prog, _page in PAGES:
    t.test(make_test(_prog, _page))


@t.test
def configuration_md_documents_the_builtins(ctx):
    text = read_page("configuration.md")
    sec = section(text, r"Built-in options")
    assert sec, "configuration.md has no Built-in options section"
    table = table_options(sec)
    for opt in BUILTINS:
        assert opt in table, opt
    # and every program's --help has them
    for prog, _ in PAGES:
        opts, _ = help_options(prog)
        assert BUILTINS <= set(opts), (prog, BUILTINS - set(opts))


@t.test
def the_check_can_fail(ctx):
    """check_page finds a missing option, a wrong value name, a stray option
    and a wrong default in a doctored copy of a page."""
    text = read_page("ptth_server.md")
    doctored = (text.replace("| `--listens N` |", "| `--listenz N` |")
                .replace("`--ca-file FILE`", "`--ca-file PATH`")
                .replace("| 262144 |", "| 131072 |"))
    assert doctored != text
    name = "doctored-server.md"
    path = os.path.join(kit.DOCS, name)
    saved = kit.DOCS
    kit.DOCS = ctx.dir
    try:
        with open(os.path.join(ctx.dir, name), "w") as f:
            f.write(doctored)
        problems = check_page("ptth_server", name)
    finally:
        kit.DOCS = saved
    assert not os.path.exists(path)
    joined = "\n".join(problems)
    for want in ("--listens (in --help) is not in the Options table", "--listenz is in the Options table but not in --help",
                 "--ca-file takes FILE in --help but PATH", "--max-chunk has default 262144"):
        assert want in joined, (want, joined)


@t.test
def man_pages_render_with_every_option(ctx):
    pandoc = shutil.which("pandoc")
    if pandoc is None:
        raise pt.Skip("no pandoc")
    if shutil.which("groff") is None:
        raise pt.Skip("no groff")
    out = os.path.join(kit.artifacts_dir(), "man")
    os.makedirs(out, exist_ok=True)
    script = os.path.join(kit.DOCS, "man.sh")
    for prog, page in PAGES:
        man = os.path.join(out, prog + ".1")
        r = pt.run(["sh", script, os.path.join(kit.DOCS, page), man, prog, "0"], timeout=60)
        assert r.returncode == 0 and os.path.exists(man), (prog, r.stderr)
        with open(man) as f:
            head = f.read(2000)
        assert re.search(r'^\.TH "%s" "1"' % prog, head, re.M), head
        r = subprocess.run(["groff", "-man", "-t", "-Tutf8", "-ww", man], capture_output=True, timeout=60,
                           env=dict(os.environ, LC_ALL="C.UTF-8"))
        # groff warns about lines it cannot adjust in narrow table cells and
        # about a table cell longer than its fixed page: harmless for man,
        # which renders one long page
        errors = [line for line in r.stderr.decode("utf-8", "replace").splitlines()
                  if "cannot adjust" not in line and "will not fit on one page" not in line]
        assert r.returncode == 0 and not errors, (prog, errors[:10])
        rendered = re.sub(r".\x08", "", r.stdout.decode("utf-8", "replace"))
        rendered = re.sub(r"\u2010\s*\n\s*", "", rendered)  # hyphenation at line ends
        # a long option name may also break after one of its own hyphens
        # (--http-proxy-user-\nfile): the line goes on with the name
        rendered = re.sub(r"(--[a-z-]*-)\n\s*", r"\1", rendered)
        rendered = re.sub(r"\s+", " ", rendered).replace("\u2010", "-").replace("\u2212", "-")
        opts, _ = help_options(prog)
        missing = [o for o in opts if o not in BUILTINS and o not in rendered]
        assert not missing, (prog, missing)


t.run()
