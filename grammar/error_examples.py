"""Labelled broken snippets: the message shown when a parse fails in the same parser state as a snippet.

Used with `UnexpectedInput.match_examples` (dsl/syntax/diagnostics.py). Each label is a sentence in the words of
the language; each snippet is a complete small file that fails exactly where the label describes. A test parses
every snippet and checks it fails and gets its own label back, so the table cannot rot.
"""

ERROR_EXAMPLES: dict[str, list[str]] = {
    "a scenario title must be a quoted string": [
        "scenario INT3:\n",
        "scenario outline INT3:\n",
    ],
    "a quoted string ends with '\"' on the same line": [
        'scenario "t:\n',
        'scenario "t":\n  source "EX-01\n',
        'include "common.svm\n',
    ],
    "a scenario header ends with ':'": [
        'scenario "t"\n',
        'scenario outline "t"\n',
        'scenario "t" rip 0x1000\n',
    ],
    "this is not a sentence the language knows": [
        'scenario "t":\n  hello\n',
        'scenario "t":\n  rip 0x1000; hello\n',
        'scenario "t":\n  0x1000\n',
    ],
    "only set-up sentences may appear in a background": [
        "background:\n  guest executes int3\n",
        "background:\n  expect retry\n",
    ],
    'a sentence outside any scenario; start one with scenario "title":': [
        "rip 0x1000\n",
        "guest executes int3\n",
        "expect retry\n",
        "// a comment first\nrip 0x1000\n",
        "// a comment first\nguest executes int3\n",
    ],
    "this sentence ended too early": [
        'scenario "t":\n  rip\n',
        'scenario "t":\n  mode\n',
        'scenario "t":\n  profile\n',
        'scenario "t":\n  code at 0x1000:\n',
    ],
    "expected a number": [
        'scenario "t":\n  rip x\n',
        'scenario "t":\n  cs base x\n',
        'scenario "t":\n  code at x: int3\n',
    ],
    "a vectoring fault is written as a vector such as #PF": [
        'scenario "t":\n  vectoring hits 0x0e\n',
    ],
    "vectoring hits needs a fault": [
        'scenario "t":\n  vectoring hits\n',
    ],
    "an injection names where the event comes from": [
        'scenario "t":\n  inject #BP\n',
        'scenario "t":\n  inject #BP from\n',
        'scenario "t":\n  inject #BP from kvm\n',
        'scenario "t":\n  inject #BP frm userspace\n',
        'scenario "t":\n  inject int 0x80 frm userspace\n',
    ],
    "an event is a vector (#BP), int <n>, irq <n>, nmi or event <value>": [
        'scenario "t":\n  inject from userspace\n',
        'scenario "t":\n  inject 3 from userspace\n',
    ],
    "an expectation is an outcome (reinject, retry, dropped, lost…), delivered <event>, or <observable> == <value>": [
        'scenario "t":\n  expect\n',
        'scenario "t":\n  expect 0x1000\n',
        'scenario "t":\n  expect next_rip 0x1001\n',
        'scenario "t":\n  expect next_rip = 0x1001\n',
    ],
    "a raw check compares with == or != and a value": [
        'scenario "t":\n  expect next_rip ==\n',
    ],
    "under <policies>: takes expectations only": [
        'scenario "t":\n  under kvm-6.0: rip 0x1000\n',
        'scenario "t":\n  under kvm-6.0: guest executes int3\n',
    ],
    "under <policies>: takes its expectations on the same line": [
        'scenario "t":\n  under kvm-6.0:\n    expect retry\n',
    ],
    "under names policies, then ':'": [
        'scenario "t":\n  under kvm-6.0 expect retry\n',
        'scenario "t":\n  under: expect retry\n',
    ],
    "a fault is intercepted [by L0 | by L1] or handled by guest": [
        'scenario "t":\n  vectoring hits #PF intercepted by L2\n',
        'scenario "t":\n  vectoring hits #PF handled by L0\n',
        'scenario "t":\n  vectoring hits #PF caught\n',
    ],
    "nrips takes 0 or 1": [
        'scenario "t":\n  nrips 2\n',
        'scenario "t":\n  nrips on\n',
    ],
    "an examples table row starts with '|'": [
        'scenario outline "t":\n  rip <a>\n  examples:\n  a\n',
    ],
    "a scenario outline needs an examples: table": [
        'scenario outline "t":\n  rip <a>\n',
    ],
    "tags go on their own line before scenario": [
        "@seed\nrip 0x1000\n",
        '@seed scenario "t":\n',
    ],
    "sentences on one line are separated by ';'": [
        'scenario "t":\n  mode long64 paging npt\n',
        'scenario "t":\n  rip 0x1000 run\n',
        'scenario "t":\n  guest executes int3 vectoring hits #PF\n',
        'scenario "t":\n  host re-enters run\n',
    ],
    "names in a list are separated by ',' (and sentences by ';')": [
        'scenario "t":\n  policies kvm-6.0 kvm-6.2\n',
        'scenario "t":\n  l1 intercepts #PF #UD\n',
    ],
    "a description is written between triple quotes and never closed": [
        'scenario "t":\n  """\n  text\n',
    ],
}
