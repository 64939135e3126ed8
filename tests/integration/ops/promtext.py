"""promtext: a strict parser of the Prometheus text exposition format
(version 0.0.4), for checking the relay's /metrics. Stricter than Prometheus
itself where that catches our mistakes: every family has HELP then TYPE
before its samples, families are not split, no series appears twice, counter
names end in _total, every name starts with ptth_."""

import math
import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class Family:
    def __init__(self, name):
        self.name = name
        self.help = None
        self.type = None
        self.samples = {}  # frozenset(labels.items()) -> value


def _labels(text, pos, lineno):
    """Parses {a="x",b="y"} starting at text[pos] == '{'; returns (dict, next pos)."""
    labels = {}
    pos += 1
    while True:
        if text[pos] == "}":
            return labels, pos + 1
        m = LABEL.match(text, pos)
        if not m:
            raise ValueError("line %d: bad label name at %r" % (lineno, text[pos:pos + 20]))
        name = m.group(0)
        pos = m.end()
        if text[pos:pos + 2] != '="':
            raise ValueError("line %d: expected =\" after label %s" % (lineno, name))
        pos += 2
        value = []
        while True:
            if pos >= len(text):
                raise ValueError("line %d: unterminated label value" % lineno)
            c = text[pos]
            if c == "\\":
                e = text[pos + 1:pos + 2]
                if e == "\\":
                    value.append("\\")
                elif e == '"':
                    value.append('"')
                elif e == "n":
                    value.append("\n")
                else:
                    raise ValueError("line %d: bad escape \\%s in label value" % (lineno, e))
                pos += 2
            elif c == '"':
                pos += 1
                break
            elif c == "\n":
                raise ValueError("line %d: raw newline in label value" % lineno)
            else:
                value.append(c)
                pos += 1
        if name in labels:
            raise ValueError("line %d: label %s twice" % (lineno, name))
        labels[name] = "".join(value)
        if text[pos] == ",":
            pos += 1
        elif text[pos] != "}":
            raise ValueError("line %d: expected , or } after a label" % lineno)


def parse(text, prefix="ptth_"):
    """Returns {family name: Family}; raises ValueError naming the line."""
    if not text.endswith("\n"):
        raise ValueError("the text does not end with a newline")
    families = {}
    order = []
    current = None
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            raise ValueError("line %d: empty line" % lineno)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
                raise ValueError("line %d: a comment that is not HELP or TYPE: %r" % (lineno, line))
            name = parts[2]
            if not NAME.fullmatch(name) or not name.startswith(prefix):
                raise ValueError("line %d: bad metric name %r" % (lineno, name))
            fam = families.get(name)
            if fam is None:
                fam = families[name] = Family(name)
                order.append(name)
                current = name
            elif current != name:
                raise ValueError("line %d: family %s split" % (lineno, name))
            if parts[1] == "HELP":
                if fam.help is not None or fam.type is not None or len(parts) < 4 or not parts[3].strip():
                    raise ValueError("line %d: HELP twice, after TYPE, or empty" % lineno)
                fam.help = parts[3]
            else:
                if fam.help is None or fam.type is not None or len(parts) != 4 or parts[3] not in TYPES:
                    raise ValueError("line %d: TYPE without HELP before, twice, or bad: %r" % (lineno, line))
                fam.type = parts[3]
                if fam.type == "counter" and not name.endswith("_total"):
                    raise ValueError("line %d: counter %s does not end in _total" % (lineno, name))
            if fam.samples:
                raise ValueError("line %d: HELP/TYPE after samples of %s" % (lineno, name))
            continue
        m = NAME.match(line)
        if not m:
            raise ValueError("line %d: bad sample %r" % (lineno, line))
        name = m.group(0)
        if name != current or families[name].type is None:
            raise ValueError("line %d: sample of %s outside its family (HELP/TYPE first)" % (lineno, name))
        pos = m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = _labels(line, pos, lineno)
        if line[pos:pos + 1] != " ":
            raise ValueError("line %d: expected one space before the value" % lineno)
        fields = line[pos + 1:].split(" ")
        if len(fields) not in (1, 2):
            raise ValueError("line %d: value and at most a timestamp" % lineno)
        value = float(fields[0])
        if math.isnan(value):
            raise ValueError("line %d: NaN" % lineno)
        key = frozenset(labels.items())
        fam = families[name]
        if key in fam.samples:
            raise ValueError("line %d: series %s%s twice" % (lineno, name, labels))
        fam.samples[key] = value
    for name, fam in families.items():
        if fam.type is None:
            raise ValueError("family %s has no TYPE" % name)
    return families


def value(families, name, **labels):
    """The value of one series; KeyError when absent."""
    return families[name].samples[frozenset(labels.items())]


def series(families, name):
    """[(labels dict, value)] of a family."""
    return [(dict(k), v) for k, v in families[name].samples.items()]
