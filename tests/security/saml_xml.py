"""String surgery on a signed SAML response, for signature-wrapping attacks."""

from __future__ import annotations

import re

__all__ = ["assertion_span", "prefix_of", "without_signature"]


def assertion_span(xml: str) -> tuple[int, int]:
    """(start, end) of the first saml:Assertion element."""
    found = re.search(r"<(\w+:)?Assertion\b.*?</\1Assertion>", xml, flags=re.S)
    assert found is not None, xml
    return found.start(), found.end()


def prefix_of(xml: str, tag: str) -> str:
    """The namespace prefix (with its colon, or "") the first ``tag`` element uses."""
    found = re.search(rf"<(\w+:)?{tag}\b", xml)
    assert found is not None, xml
    return found.group(1) or ""


def without_signature(element: str) -> str:
    return re.sub(r"<(\w+:)?Signature\b.*?</\1Signature>", "", element, flags=re.S)
