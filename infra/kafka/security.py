"""One place that turns the Kafka settings (servers, TLS, SASL) into each client library's options:
kafka-python (the api's publisher, the feeders, admin), aiokafka (the sink, the duty-list follower)
and Faust (the workers)."""

from __future__ import annotations

import ssl

from infra.settings import Settings


def kafka_python_security(settings: Settings) -> dict:
    """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
    options: dict = {"security_protocol": settings.kafka_security_protocol}
    if "SSL" in settings.kafka_security_protocol:
        options |= {"ssl_cafile": _path(settings.kafka_ssl_cafile), "ssl_certfile": _path(settings.kafka_ssl_certfile),
                    "ssl_keyfile": _path(settings.kafka_ssl_keyfile), "ssl_check_hostname": True}
    return options | _sasl(settings)


def aiokafka_security(settings: Settings) -> dict:
    """Keyword arguments for aiokafka's AIOKafkaProducer and AIOKafkaConsumer."""
    options: dict = {"security_protocol": settings.kafka_security_protocol}
    if "SSL" in settings.kafka_security_protocol:
        options["ssl_context"] = ssl_context(settings)
    return options | _sasl(settings)


def faust_credentials(settings: Settings):
    """`broker_credentials` for faust.App, or None on a plaintext cluster."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username or "", mechanism=settings.kafka_sasl_mechanism,
            password=settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else "",
            ssl_context=ssl_context(settings) if protocol == "SASL_SSL" else None)
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    return None


def ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=_path(settings.kafka_ssl_cafile))
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, _path(settings.kafka_ssl_keyfile))
    return context


def _sasl(settings: Settings) -> dict:
    if not settings.kafka_security_protocol.startswith("SASL"):
        return {}
    return {"sasl_mechanism": settings.kafka_sasl_mechanism, "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password else None}


def _path(path) -> str | None:
    return str(path) if path else None
