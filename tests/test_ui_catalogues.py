"""Every string a traveller or officer can read is in every catalogue, translated.

No Kivy here: the sources are read, not imported.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from kiosk.ui.catalogues import compile_catalogues, po_path
from kiosk.ui.languages import LANGUAGES

UI = Path(__file__).resolve().parent.parent / "kiosk" / "ui"
KV_MESSAGE = re.compile(r"""tr\._\(\s*"((?:[^"\\]|\\.)*)"\s*\)""")
KV_TEXT_LITERAL = re.compile(r"""^\s*text:\s*.*["'][^"']*[A-Za-z][^"']*["']""")


def _python_messages(path: Path) -> dict[str, str]:
    """Literal arguments of ``_``/``tr._``/``N_`` calls; anything else is an error."""
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name not in ("_", "N_"):
            continue
        arg = node.args[0] if node.args else None
        where = f"{path.relative_to(UI.parent.parent)}:{node.lineno}"
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            raise AssertionError(f"{where}: {name}() needs a literal string (tr.gettext for looked-up text)")
        found[arg.value] = where
    return found


def _kv_messages(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for match in KV_MESSAGE.finditer(line):
            found[match.group(1).encode().decode("unicode_escape")] = f"{path.name}:{number}"
    return found


def extract() -> dict[str, str]:
    """msgid -> where it is used, over every module and kv file of the UI."""
    messages: dict[str, str] = {}
    for path in sorted(UI.rglob("*.py")):
        messages.update(_python_messages(path))
    for path in sorted(UI.rglob("*.kv")):
        messages.update(_kv_messages(path))
    return messages


def test_kv_text_goes_through_the_catalogue():
    offenders = []
    for path in sorted(UI.rglob("*.kv")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if KV_TEXT_LITERAL.match(line) and "tr._(" not in line:
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, "literal text outside tr._():\n" + "\n".join(offenders)


def test_extraction_finds_the_screens_words():
    messages = extract()
    assert "Call an officer" in messages  # kv
    assert "Please come a little closer" in messages  # N_ in Python
    assert len(messages) > 60


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_catalogue_is_complete(language):
    with po_path(language).open("rb") as handle:
        catalogue = read_po(handle, locale=language)
    translated = {m.id: m.string for m in catalogue if m.id}
    wanted = extract()
    missing = sorted(f"{msgid!r} ({where})" for msgid, where in wanted.items() if msgid not in translated)
    empty = sorted(repr(m.id) for m in catalogue if m.id and not m.string)
    fuzzy = sorted(repr(m.id) for m in catalogue if m.id and m.fuzzy)
    stale = sorted(repr(msgid) for msgid in translated if msgid not in wanted)
    assert not missing, f"{language}: missing " + ", ".join(missing)
    assert not empty, f"{language}: empty msgstr for " + ", ".join(empty)
    assert not fuzzy, f"{language}: fuzzy " + ", ".join(fuzzy)
    assert not stale, f"{language}: no longer used " + ", ".join(stale)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_placeholders_survive_translation(language):
    with po_path(language).open("rb") as handle:
        catalogue = read_po(handle, locale=language)
    for message in catalogue:
        if message.id:
            assert set(re.findall(r"\{\w+\}", message.id)) == set(re.findall(r"\{\w+\}", message.string)), (
                f"{language}: {message.id!r}"
            )


def test_catalogues_compile_and_recompile_when_stale(tmp_path):
    import gettext
    import os

    out = compile_catalogues(tmp_path, tuple(LANGUAGES))
    mo = out / "id" / "LC_MESSAGES" / "gerbang.mo"
    assert gettext.translation("gerbang", str(out), ["id"]).gettext("Call an officer") != "Call an officer"
    os.utime(mo, (0, 0))  # older than its source
    compile_catalogues(tmp_path, tuple(LANGUAGES))
    assert mo.stat().st_mtime > 0
