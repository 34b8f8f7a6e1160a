"""TLS for both planes: one ``ssl.SSLContext`` per setting, and certificate errors that say what to do.

The control plane (httpx) and the data plane (aiohttp) take the same context from
``ssl_context``, so the API and the presigned S3 URLs trust the same certificates: the system's
and certifi's CAs, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, and the archive's own CA given as
``ca_bundle`` (a PEM file). A certificate that fails verification is not a transient failure:
``certificate_problem`` finds it under a transport error, ``certificate_error`` says which host,
what is wrong with its certificate and which setting fixes it.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

import httpx

from .errors import CertificateError

CA_BUNDLE_SETTING = "ca_bundle (HCP_CA_BUNDLE in the environment)"
"""How the error messages name the setting that adds a CA."""


def ssl_context(verify_ssl: bool, ca_bundle: str | None) -> ssl.SSLContext:
    """The context of every client with these settings, built once per process (loading the CA
    stores costs about 18 ms, which a client opened per call would pay each time).

    A ``ca_bundle`` that cannot be read as PEM certificates raises ``ValueError`` naming it.
    """
    return _build(verify_ssl, str(Path(ca_bundle).expanduser()) if ca_bundle else None)


@functools.cache
def _build(verify_ssl: bool, ca_bundle: str | None) -> ssl.SSLContext:
    if not verify_ssl:
        return httpx.create_ssl_context(verify=False)
    context = httpx.create_ssl_context(verify=True)  # certifi, or SSL_CERT_FILE / SSL_CERT_DIR
    context.load_default_certs()  # and the system's store, as aiohttp's default had
    if ca_bundle:
        try:
            context.load_verify_locations(cafile=ca_bundle)
        except FileNotFoundError:
            raise ValueError(f"ca_bundle: no such file: {ca_bundle}") from None
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"ca_bundle: {ca_bundle} is not a readable PEM file of CA certificates ({exc})"
            ) from None
    return context


def certificate_problem(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a transport error (httpx and aiohttp wrap
    it in their own connect errors), or None when the error is something else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "certificate_error", None)  # aiohttp's ClientConnectorCertificateError
        if isinstance(inner, ssl.SSLCertVerificationError):
            return inner
        if isinstance(current, ssl.SSLCertVerificationError) and inner is None:
            return current
        current = current.__cause__ or current.__context__
    return None


def certificate_error(host: str, problem: ssl.SSLCertVerificationError, what: str = "") -> CertificateError:
    """A ``CertificateError`` naming ``host``, what is wrong with its certificate, and the fix."""
    detail = problem.verify_message or problem.reason or str(problem)
    if "mismatch" in str(detail).lower() or "hostname" in str(detail).lower():
        fix = "use the host name the certificate was issued for in the endpoint"
    else:
        fix = (
            f"give the archive's CA certificate (a PEM file) as {CA_BUNDLE_SETTING} on "
            "HCPCredentials, or in SSL_CERT_FILE for the whole process"
        )
    target = f" ({what})" if what else ""
    return CertificateError(
        f"TLS certificate of {host} not trusted{target}: {detail}; {fix} "
        "(verify_ssl=False turns the check off)",
        host=host,
    )
