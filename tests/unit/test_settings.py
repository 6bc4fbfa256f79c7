from infra.settings import Settings, redact_url


def test_printed_settings_hide_secrets_and_url_passwords():
    settings = Settings(CLICKHOUSE_URL="https://cityops:s3cret@ch.internal:8443", pii_salt="pepper")
    shown = settings.as_dict()
    assert "s3cret" not in str(shown) and "pepper" not in str(shown)
    assert shown["clickhouse_url"] == "https://***@ch.internal:8443"


def test_redact_url_leaves_urls_without_credentials_alone():
    assert redact_url("chdb:///var/clickhouse") == "chdb:///var/clickhouse"
