"""The Kafka security settings become the same TLS / SASL options in each client library."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from infra.kafka.security import aiokafka_security, faust_credentials, kafka_python_security
from infra.settings import Settings

SYSTEM_CAS = Path("/etc/ssl/certs/ca-certificates.crt")


def test_plaintext_adds_nothing_but_the_protocol():
    settings = Settings()
    assert kafka_python_security(settings) == aiokafka_security(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None


@pytest.mark.skipif(not SYSTEM_CAS.exists(), reason="needs a CA bundle file")
def test_sasl_over_tls_reaches_every_client_with_the_same_secret():
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                        kafka_sasl_username="cityops", kafka_sasl_password=SecretStr("s3cret"),
                        kafka_ssl_cafile=SYSTEM_CAS)
    python_options = kafka_python_security(settings)
    assert python_options["sasl_mechanism"] == "SCRAM-SHA-512" and python_options["sasl_plain_password"] == "s3cret"
    assert python_options["ssl_cafile"] == str(SYSTEM_CAS) and python_options["ssl_check_hostname"] is True
    aio = aiokafka_security(settings)
    assert isinstance(aio["ssl_context"], ssl.SSLContext) and aio["sasl_plain_username"] == "cityops"
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials) and credentials.ssl_context is not None
    assert "s3cret" not in str(settings.as_dict())


def test_tls_without_sasl_gives_faust_ssl_credentials():
    credentials = faust_credentials(Settings(kafka_security_protocol="SSL"))
    assert isinstance(credentials, faust.SSLCredentials)
    assert "sasl_mechanism" not in kafka_python_security(Settings(kafka_security_protocol="SSL"))
