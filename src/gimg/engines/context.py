"""Where and how a search is asked: the market, the language and safe search, checked and normalised."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import GimgError
from ..options import SAFE_SEARCH, market_code

_LANGUAGE = re.compile(r"([a-z]{2,3})(?:-([a-z]{2}))?", re.IGNORECASE)


@dataclass(frozen=True)
class SearchContext:
    """Where and how a search is asked: a market (language-COUNTRY, e.g. en-US), a language, and safe search.

    None leaves the setting to the engine, which then follows the machine's IP address and its own defaults.
    The language (e.g. en, pt-BR) defaults to the market's. Each engine maps the context to its own parameters,
    cookies and headers; the requests it records show exactly what was sent.
    """

    market: str | None = None
    language: str | None = None
    safe_search: str = "moderate"

    def __post_init__(self) -> None:
        if self.market is not None:
            object.__setattr__(self, "market", market_code(self.market))
        if self.language is not None:
            match = _LANGUAGE.fullmatch(self.language.strip())
            if not match:
                raise GimgError(f"language {self.language!r} is not a language code: write e.g. en, de or pt-BR")
            region = f"-{match[2].upper()}" if match[2] else ""
            object.__setattr__(self, "language", f"{match[1].lower()}{region}")
        if self.safe_search not in SAFE_SEARCH:
            raise GimgError(f"unknown safe search {self.safe_search!r}: choose one of {', '.join(SAFE_SEARCH)}")

    @property
    def country(self) -> str | None:
        """The market's two-letter country (US for en-US), None without a market."""
        return self.market.split("-")[1] if self.market else None

    @property
    def interface_language(self) -> str | None:
        """The language asked for, else the market's (en for en-US), None when neither is set."""
        if self.language:
            return self.language
        return self.market.split("-")[0] if self.market else None

    @property
    def accept_language(self) -> str | None:
        """An Accept-Language header for the context (en-US,en;q=0.9 for the market en-US), None when unset."""
        tags = [self.language, self.market, self.market.split("-")[0] if self.market else None]
        unique = list(dict.fromkeys(tag for tag in tags if tag))
        return ",".join(tag if i == 0 else f"{tag};q={1 - i / 10:.1f}" for i, tag in enumerate(unique)) or None

    def to_json(self) -> dict[str, str | None]:
        """The context as a JSON object."""
        return {"market": self.market, "language": self.language, "safe_search": self.safe_search}
