"""Languages of the screens: gettext lookups that kv rules re-evaluate when the language changes.

kv rules write ``text: tr._("...")``; Kivy's rule engine binds the ``_`` attribute of ``tr``, and
:meth:`Translator.switch` re-runs every such rule. Python code that sets text itself registers
with :meth:`Translator.on_switch`. Only literal strings go through ``_`` (so that the catalogue
test can find them); text chosen at run time is marked with :func:`N_` where it is written and
looked up with :meth:`Translator.gettext`.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from kivy.event import Observable

from kiosk.ui.catalogues import DOMAIN
from kiosk.ui.languages import LANGUAGES


class Translator(Observable):
    def __init__(self) -> None:
        super().__init__()
        self.language = "en"
        self._catalogue: gettext.NullTranslations = gettext.NullTranslations()
        self._catalogues: dict[str, gettext.NullTranslations] = {}
        self._rules: list[tuple[Callable[..., Any], Any]] = []
        self._listeners: list[Callable[[str], None]] = []

    def load(self, mo_dir: Path) -> None:
        # fallback=False: a missing compiled catalogue is a broken build, not a reason for English.
        self._catalogues = {
            code: gettext.translation(DOMAIN, localedir=str(mo_dir), languages=[code]) for code in LANGUAGES
        }

    def _(self, message: str) -> str:
        return self._catalogue.gettext(message)

    def gettext(self, message: str) -> str:
        return self._catalogue.gettext(message)

    def switch(self, language: str) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}")
        self.language = language
        self._catalogue = self._catalogues.get(language, gettext.NullTranslations())
        for rule, args in list(self._rules):
            rule(args, None, None)
        for listener in list(self._listeners):
            listener(language)

    def on_switch(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    # Kivy's rule engine calls these for ``tr._``; the screens live as long as the app, so the
    # bindings are never dropped.
    def fbind(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
        if name == "_":
            self._rules.append((func, args[0] if len(args) == 1 else args))
            return 0
        return super().fbind(name, func, *args, **kwargs)

    # Dates and numbers in the traveller's language (Babel, CLDR data).
    @property
    def _locale(self) -> str:
        return self.language

    def date(self, value: date) -> str:
        return format_date(value, format="full", locale=self._locale)

    def datetime(self, value: datetime) -> str:
        return format_datetime(value, format="medium", locale=self._locale)

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self._locale)


tr = Translator()
