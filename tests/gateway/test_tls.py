"""Upstream TLS: certificates are verified against certifi's CA bundle, which is loaded
only when a provider is reached over https."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from musubi.egress import EgressRules
from musubi.errors import UpstreamError
from musubi.gateway.providers.base import ClientPool, Credential
from musubi.gateway.providers.registry import ProviderRegistry
from tests.conftest import LOOPBACK_FAKES


def test_the_ca_bundle_is_loaded_on_the_first_https_upstream_only() -> None:
    pool = ClientPool()
    assert pool.tls("http://127.0.0.1:11434/v1/chat/completions") is True
    assert pool._tls is None  # nothing loaded for plain http
    tls = pool.tls("https://api.openai.com/v1/chat/completions")
    assert isinstance(tls, ssl.SSLContext)
    assert tls.verify_mode == ssl.CERT_REQUIRED and tls.check_hostname
    assert tls.cert_store_stats()["x509_ca"] > 100  # certifi's roots
    assert pool.tls("https://api.anthropic.com/v1/messages") is tls  # loaded once


@pytest.fixture
async def untrusted_https(tmp_path: Path) -> AsyncIterator[str]:
    """A TLS server on loopback with a self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}/v1"
    server.close()
    await server.wait_closed()


async def test_an_untrusted_certificate_is_refused_naming_the_provider(
    untrusted_https: str,
) -> None:
    pool = ClientPool(egress=EgressRules.parse(LOOPBACK_FAKES).everyone)
    cred = Credential(name="corp-vllm", provider="openai", api_key="sk-x", base_url=untrusted_https)
    provider = ProviderRegistry().build(cred, pool)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    try:
        with pytest.raises(UpstreamError) as err:
            await provider.send("chat", body, "gpt-4o-mini")
    finally:
        await pool.close()
    assert err.value.provider == "corp-vllm"
    assert "certificate" in str(err.value).lower()
