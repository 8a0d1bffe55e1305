"""Documents a customer agrees to (member terms, service terms, privacy policy)."""

from __future__ import annotations

from pydantic import BaseModel


class TermsDocument(BaseModel):
    """A document a customer agrees to; a new version needs a new consent."""

    document: str
    version: str
    content_sha256: str
    url: str
