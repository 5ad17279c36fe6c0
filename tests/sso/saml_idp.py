"""A real SAML 2.0 IdP on loopback: pysaml2's ``saml2.server.Server`` behind a small WSGI
app in a thread. Its keys and certificates are generated at test time.

``GET /sso`` takes an HTTP-Redirect AuthnRequest and answers with the auto-post form
(HTTP-POST binding) carrying a signed response. Knobs on :class:`SamlIdp` make it misbehave
the way attackers and broken IdPs do (sign with the other key, SHA-1, no signature, another
audience, an expired assertion, a foreign ``InResponseTo``, or any rewrite of the XML).
"""

from __future__ import annotations

import base64
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_REDIRECT
from saml2.saml import NAME_FORMAT_BASIC, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

with warnings.catch_warnings():  # pysaml2 7.5.5 touches cryptography's moved CFB mode
    warnings.filterwarnings("ignore", "CFB has been moved", CryptographyDeprecationWarning)
    from saml2.server import Server

PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
__all__ = ["KeyPair", "SamlIdp", "key_pair", "saml_idp", "self_signed"]


@dataclass(frozen=True)
class KeyPair:
    key_file: Path
    cert_file: Path

    @property
    def cert_pem(self) -> str:
        return self.cert_file.read_text()


def self_signed(name: str) -> tuple[bytes, bytes]:
    """(private key PEM, certificate PEM) of a new RSA-2048 key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test-idp-{name}")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def key_pair(directory: Path, name: str) -> KeyPair:
    """A new key and certificate in files (pysaml2 reads them from files)."""
    pair = KeyPair(directory / f"{name}.key", directory / f"{name}.crt")
    key_pem, cert_pem = self_signed(name)
    pair.key_file.write_bytes(key_pem)
    pair.cert_file.write_bytes(cert_pem)
    return pair


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class SamlIdp:
    base_url: str
    keys: list[KeyPair]
    sp_metadata: str
    users: dict[str, dict[str, list[str]]]
    user: str = "alice"
    key_index: int = 0
    sign: bool = True
    sign_response: bool = False
    sign_alg: str = SIG_RSA_SHA256
    digest_alg: str = DIGEST_SHA256
    audience: str | None = None
    lifetime_minutes: int = 5
    in_response_to: str | None = None
    transform: Callable[[str], str] | None = None
    last_xml: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/metadata"

    @property
    def sso_url(self) -> str:
        return f"{self.base_url}/sso"

    def server(self) -> Server:
        pair = self.keys[self.key_index]
        policy = {
            "default": {
                "lifetime": {"minutes": self.lifetime_minutes},
                "attribute_restrictions": None,
                "name_form": NAME_FORMAT_BASIC,
            }
        }
        config = {
            "entityid": self.entity_id,
            "key_file": str(pair.key_file),
            "cert_file": str(pair.cert_file),
            "metadata": {"inline": [self.sp_metadata]},
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [(self.sso_url, BINDING_HTTP_REDIRECT)]
                    },
                    "policy": policy,
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                }
            },
        }
        return Server(config=_load(config))

    def respond(self, saml_request: str, relay_state: str) -> str:
        """The auto-post HTML form answering ``saml_request``."""
        server = self.server()
        request = server.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT).message
        acs = request.assertion_consumer_service_url
        response = server.create_authn_response(
            self.users[self.user],
            in_response_to=self.in_response_to or request.id,
            destination=acs,
            sp_entity_id=self.audience or request.issuer.text,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=f"{self.user}-pid"),
            authn={"class_ref": PASSWORD, "authn_auth": self.entity_id},
            sign_assertion=self.sign,
            sign_response=self.sign_response,
            sign_alg=self.sign_alg,
            digest_alg=self.digest_alg,
        )
        xml = str(response)
        if self.transform is not None:
            xml = self.transform(xml)
        self.last_xml = xml
        encoded = base64.b64encode(xml.encode()).decode()
        return _form(acs, encoded, relay_state)  # the HTTP-POST binding's form

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if environ["PATH_INFO"] != "/sso" or "SAMLRequest" not in query:
            start("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        try:
            html = self.respond(query["SAMLRequest"], query.get("RelayState", ""))
        except Exception as exc:  # the test IdP reports, the test then fails on the 500
            self.errors.append(repr(exc))
            start("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [repr(exc).encode()]
        start("200 OK", [("Content-Type", "text/html")])
        return [html.encode()]


def _form(action: str, saml_response: str, relay_state: str) -> str:
    from html import escape

    return (
        f'<html><body onload="document.forms[0].submit()"><form method="post" '
        f'action="{escape(action)}"><input type="hidden" name="SAMLResponse" '
        f'value="{escape(saml_response)}"/><input type="hidden" name="RelayState" '
        f'value="{escape(relay_state)}"/></form></body></html>'
    )


def _load(config: dict[str, Any]) -> Any:
    from saml2.config import IdPConfig

    conf = IdPConfig()
    conf.load(config)
    return conf


@contextmanager
def saml_idp(
    keys: list[KeyPair], users: dict[str, dict[str, list[str]]]
) -> Iterator[Callable[[str], SamlIdp]]:
    """Start the IdP on a free loopback port. Yields ``configure(sp_metadata)``, which
    hands the SP's metadata to the IdP and returns it (the IdP answers 404 until then)."""
    holder: dict[str, SamlIdp] = {}

    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        return holder["idp"](environ, start)

    httpd: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    base = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def configure(sp_metadata: str) -> SamlIdp:
        holder["idp"] = SamlIdp(base, keys, sp_metadata, users)
        return holder["idp"]

    try:
        yield configure
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
