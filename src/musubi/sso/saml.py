"""SAML 2.0 service provider: pysaml2 with the ``xmlsec1`` program (Debian: ``xmlsec1``).

One SP per tenant (entity id ``<public URL>/v1/sso/<tenant id>/saml/metadata``, assertion
consumer ``.../saml/acs``); each SAML IdP of the tenant is given to pysaml2 as inline
metadata built from its entity id, SSO URL and one or two signing certificates (both are
tried, so an IdP can roll its key over).

Before pysaml2 sees a response, :func:`precheck` refuses what it would let through or
explain badly: more than one assertion (signature wrapping), encrypted assertions, an
assertion without its own signature, a signature reference that is not the assertion,
and SHA-1 (only RSA-SHA256/384/512 with SHA-256/384/512 digests). pysaml2 then verifies
the signatures with xmlsec1 against the configured certificates and checks audience,
``InResponseTo``, destination/recipient and ``NotBefore``/``NotOnOrAfter`` with a small
clock skew. pysaml2 is synchronous and runs xmlsec1 as a subprocess: call
:func:`authn_request`, :func:`sp_metadata` and :func:`validate` in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import quoteattr

from pydantic import BaseModel, ConfigDict, Field, field_validator

from musubi.sso.errors import LoginRejected, MissingExtra

__all__ = [
    "SKEW_SECONDS",
    "Precheck",
    "SamlAssertion",
    "SamlSettings",
    "SpEndpoints",
    "authn_request",
    "idp_metadata",
    "precheck",
    "sp_endpoints",
    "sp_metadata",
    "validate",
]

SKEW_SECONDS = 60
NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
SIGNATURE_METHODS = frozenset(
    f"http://www.w3.org/2001/04/xmldsig-more#rsa-{h}" for h in ("sha256", "sha384", "sha512")
)
DIGEST_METHODS = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)


class SamlSettings(BaseModel):
    """A SAML IdP's settings (its entity id is the IdP's ``issuer``)."""

    model_config = ConfigDict(extra="forbid")
    sso_url: str = Field(min_length=1, max_length=1000, description="HTTP-Redirect SSO URL")
    certificates: list[str] = Field(
        min_length=1, max_length=2, description="PEM signing certificates (two for rollover)"
    )

    @field_validator("sso_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("sso_url must be an https:// URL")
        return value

    @field_validator("certificates")
    @classmethod
    def _pem(cls, value: list[str]) -> list[str]:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

        out = []
        for pem in value:
            try:
                cert = x509.load_pem_x509_certificate(pem.strip().encode())
            except ValueError as exc:
                raise ValueError(f"not a PEM certificate: {exc}") from exc
            if not isinstance(cert.public_key(), RSAPublicKey):
                raise ValueError("the IdP signing certificate must hold an RSA key")
            out.append(pem.strip() + "\n")
        return out


@dataclass(frozen=True)
class SpEndpoints:
    entity_id: str
    acs_url: str


def sp_endpoints(base_url: str, tenant_id: str) -> SpEndpoints:
    base = f"{base_url.rstrip('/')}/v1/sso/{tenant_id}/saml"
    return SpEndpoints(entity_id=f"{base}/metadata", acs_url=f"{base}/acs")


def _cert_body(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if "-----" not in line)


def idp_metadata(entity_id: str, settings: SamlSettings) -> str:
    """SAML metadata of the IdP, for pysaml2 (one signing KeyDescriptor per certificate)."""
    keys = "".join(
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{_cert_body(pem)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        for pem in settings.certificates
    )
    redirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'xmlns:ds="{NS["ds"]}" entityID={quoteattr(entity_id)}>'
        '<md:IDPSSODescriptor WantAuthnRequestsSigned="false" '
        f'protocolSupportEnumeration="{NS["samlp"]}">{keys}'
        f"<md:SingleSignOnService Binding={quoteattr(redirect)} "
        f"Location={quoteattr(settings.sso_url)}/>"
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


def _xmlsec() -> str:
    found = shutil.which("xmlsec1")
    if found is None:
        raise RuntimeError("SAML needs the xmlsec1 program: apt-get install -y xmlsec1")
    return found


def _client(sp: SpEndpoints, idp: tuple[str, SamlSettings] | None) -> Any:
    try:
        from saml2 import BINDING_HTTP_POST
        from saml2.client import Saml2Client
        from saml2.config import SPConfig
    except ImportError as exc:
        raise MissingExtra("pysaml2") from exc
    config: dict[str, Any] = {
        "entityid": sp.entity_id,
        "xmlsec_binary": _xmlsec(),
        "accepted_time_diff": SKEW_SECONDS,
        "allow_unknown_attributes": True,
        "service": {
            "sp": {
                "endpoints": {"assertion_consumer_service": [(sp.acs_url, BINDING_HTTP_POST)]},
                "want_assertions_signed": True,
                "want_response_signed": False,
                "authn_requests_signed": False,
                "allow_unsolicited": False,
            }
        },
    }
    if idp is not None:
        config["metadata"] = {"inline": [idp_metadata(*idp)]}
    conf = SPConfig()
    conf.load(config)
    return Saml2Client(config=conf)


def sp_metadata(sp: SpEndpoints) -> str:
    from saml2.metadata import entity_descriptor

    return str(entity_descriptor(_client(sp, None).config))


def authn_request(
    sp: SpEndpoints, entity_id: str, settings: SamlSettings, relay_state: str
) -> tuple[str, str]:
    """(request id, IdP URL carrying the HTTP-Redirect AuthnRequest)."""
    from saml2 import BINDING_HTTP_REDIRECT

    client = _client(sp, (entity_id, settings))
    request_id, info = client.prepare_for_authenticate(
        entityid=entity_id, relay_state=relay_state, binding=BINDING_HTTP_REDIRECT
    )
    return str(request_id), str(dict(info["headers"])["Location"])


@dataclass(frozen=True)
class Precheck:
    in_response_to: str
    assertion_id: str
    issuer: str


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def precheck(saml_response: str) -> Precheck:
    """Structural checks on the (untrusted) response before any signature is verified."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    try:
        root = fromstring(base64.b64decode(saml_response, validate=False))
    except (binascii.Error, ValueError, ParseError, DefusedXmlException) as exc:
        raise LoginRejected("malformed", f"SAMLResponse is not SAML XML ({exc})") from exc
    if root.tag != _q("samlp", "Response"):
        raise LoginRejected("malformed", "SAMLResponse is not a samlp:Response")
    if root.findall(f".//{_q('saml', 'EncryptedAssertion')}"):
        raise LoginRejected("encrypted", "encrypted assertions are not supported")
    assertions = root.findall(f".//{_q('saml', 'Assertion')}")
    if len(assertions) != 1:
        raise LoginRejected(
            "wrapping", f"the response must hold exactly one assertion, not {len(assertions)}"
        )
    assertion = assertions[0]
    for sig in root.iter(_q("ds", "Signature")):
        methods = [m.get("Algorithm", "") for m in sig.iter(_q("ds", "SignatureMethod"))]
        digests = [d.get("Algorithm", "") for d in sig.iter(_q("ds", "DigestMethod"))]
        if not methods or any(m not in SIGNATURE_METHODS for m in methods):
            raise LoginRejected(
                "weak_signature", f"signature algorithm {methods} refused: RSA-SHA256 required"
            )
        if not digests or any(d not in DIGEST_METHODS for d in digests):
            raise LoginRejected("weak_signature", f"digest {digests} refused: SHA-256 required")
    own = assertion.find(_q("ds", "Signature"))
    assertion_id = assertion.get("ID", "")
    if own is None:
        raise LoginRejected("unsigned", "the assertion is not signed")
    refs = [r.get("URI") for r in own.iter(_q("ds", "Reference"))]
    if refs != [f"#{assertion_id}"]:
        raise LoginRejected("wrapping", "the assertion's signature does not cover the assertion")
    _check_times(assertion)
    issuer = assertion.find(_q("saml", "Issuer"))
    return Precheck(
        in_response_to=root.get("InResponseTo", ""),
        assertion_id=assertion_id,
        issuer=(issuer.text or "").strip() if issuer is not None else "",
    )


def _check_times(assertion: Any) -> None:
    """A clear ``expired`` refusal (pysaml2 checks the same times again after the
    signature, but reports only "Condition not OK")."""
    now = datetime.now(UTC)
    skew = timedelta(seconds=SKEW_SECONDS)
    for node in (
        assertion.find(_q("saml", "Conditions")),
        *assertion.iter(_q("saml", "SubjectConfirmationData")),
    ):
        if node is None:
            continue
        try:
            after = _time(node.get("NotOnOrAfter"))
            before = _time(node.get("NotBefore"))
        except ValueError as exc:
            raise LoginRejected("malformed", f"bad time in the assertion ({exc})") from exc
        if after is not None and now >= after + skew:
            raise LoginRejected("expired", f"the assertion expired at {after.isoformat()}")
        if before is not None and now < before - skew:
            raise LoginRejected("expired", f"the assertion is not valid before {before}")


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class SamlAssertion:
    issuer: str
    name_id: str
    assertion_id: str
    attributes: dict[str, list[str]] = field(default_factory=dict)


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def validate(
    sp: SpEndpoints, entity_id: str, settings: SamlSettings, saml_response: str, request_id: str
) -> SamlAssertion:
    """The verified assertion of ``saml_response``, answering ``request_id``."""
    from saml2 import BINDING_HTTP_POST, SAMLError
    from saml2.response import StatusError, UnsolicitedResponse
    from saml2.sigver import SigverError
    from saml2.validate import ResponseLifetimeExceed, ToEarly

    client = _client(sp, (entity_id, settings))
    try:
        resp = client.parse_authn_request_response(
            saml_response, BINDING_HTTP_POST, outstanding={request_id: "/"}
        )
    except UnsolicitedResponse as exc:
        raise LoginRejected("in_response_to", "the response answers no request of ours") from exc
    except (ResponseLifetimeExceed, ToEarly) as exc:
        raise LoginRejected("expired", f"assertion expired or not yet valid ({exc})") from exc
    except StatusError as exc:
        raise LoginRejected("idp_error", f"the IdP refused the login ({exc})") from exc
    except SigverError as exc:
        raise LoginRejected("signature", f"invalid signature ({_why(exc)})") from exc
    except (SAMLError, ValueError) as exc:
        raise LoginRejected("assertion", f"invalid response ({_why(exc)})") from exc
    except Exception as exc:  # pysaml2 raises bare Exception for failed conditions
        reason = "audience" if "Audience" in str(exc) else "assertion"
        raise LoginRejected(reason, f"assertion conditions not met ({exc})") from exc
    if resp is None or resp.assertion is None or resp.name_id is None:
        raise LoginRejected("assertion", "the response holds no usable assertion")
    attributes = {str(k): [str(v) for v in vs] for k, vs in (resp.ava or {}).items()}
    return SamlAssertion(
        issuer=str(resp.issuer()),
        name_id=str(resp.name_id.text).strip(),
        assertion_id=str(resp.assertion.id),
        attributes=attributes,
    )
