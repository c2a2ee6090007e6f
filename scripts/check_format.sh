#!/usr/bin/env bash
# scripts/check_format.sh -- the format rules of the C sources, checked (run
# by scripts/test.sh as the "format" suite, so CI fails on a violation).
#
# The code follows PostgreSQL's pgindent style (tabs 4 wide, declarations
# aligned with tabs, braces on their own lines). pgindent itself needs
# pg_bsd_indent, which Debian does not package, and clang-format cannot
# express pgindent's declaration alignment, so this checks the rules that
# pgindent's output satisfies and that a reviewer would otherwise catch:
#   - indentation is tabs (no line starts with a space, except the " *"
#     of a block comment; spaces after the tabs align continuations), and
#     no tab follows a space in the indentation;
#   - no trailing whitespace, no carriage return, a newline at the end;
#   - every file starts with a block comment that names it;
#   - no line of src/ is longer than 160 columns (tabs as 4; tests may hold
#     long literal data).
# Prints one line per violation (file:line: rule) and TAP-like totals;
# exits non-zero on any violation.
# Usage: scripts/check_format.sh [FILE...]   (default: every tracked C file)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ $# -eq 0 ]; then
    mapfile -t files < <(git ls-files 'src/*.c' 'src/*.h' 'test/unit/*.c' 'test/unit/*.h' 'test/bench/*.c' \
                                      'test/bench/*.h' 'test/graph_render/*.c' 2>/dev/null \
                         || find src test/unit test/bench test/graph_render -name '*.[ch]')
else
    files=("$@")
fi

exec python3 - "${files[@]}" <<'PY'
import os, re, sys

errors = []
for path in sys.argv[1:]:
    with open(path, 'rb') as f:
        data = f.read()
    text = data.decode('utf-8', errors='replace')
    if b'\r' in data:
        errors.append(f'{path}:1: carriage return in the file')
    if data and not data.endswith(b'\n'):
        errors.append(f'{path}:{text.count(chr(10)) + 1}: no newline at the end of the file')
    lines = text.split('\n')
    head = '\n'.join(lines[:6])
    if not lines or not lines[0].startswith('/*') or os.path.basename(path) not in head:
        errors.append(f'{path}:1: the file does not start with a block comment naming it')
    in_comment = False
    for n, line in enumerate(lines, 1):
        if line.rstrip() != line:
            errors.append(f'{path}:{n}: trailing whitespace')
        lead = line[:len(line) - len(line.lstrip(' \t'))]
        if ' \t' in lead:
            errors.append(f'{path}:{n}: a tab after a space in the indentation')
        if line.startswith(' ') and not re.match(r'^ +\*', line) and line.strip():
            if not in_comment:
                errors.append(f'{path}:{n}: indented with spaces (use tabs)')
        if path.startswith('src/') and len(line.expandtabs(4)) > 160:
            errors.append(f'{path}:{n}: longer than 160 columns ({len(line.expandtabs(4))})')
        # track block comments (continuation lines of comments may align with spaces)
        code = re.sub(r'"(\\.|[^"\\])*"', '""', line)
        if in_comment:
            if '*/' in code:
                in_comment = False
        else:
            i = code.find('/*')
            if i >= 0 and code.find('*/', i + 2) < 0:
                in_comment = True

for e in errors:
    print(e)
print(f'# {len(sys.argv) - 1} files checked, {len(errors)} violations')
print('1..1')
print(('ok' if not errors else 'not ok') + ' 1 - format: tabs, no trailing whitespace, file header, line length')
sys.exit(1 if errors else 0)
PY
