import pytest
from typer.testing import CliRunner

from digital_id.cli import app
from digital_id.config import DEFAULT_DATABASE_URL, ConfigError, load_settings

STRONG = "a-passphrase-of-the-operator-s-own"


def test_development_defaults_need_no_configuration(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.env == "development"
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.issuer == "http://127.0.0.1:8000"
    assert str(settings.keys_dir) == "keys"
    assert settings.uses_development_passphrase


def test_settings_come_from_prefixed_environment_variables(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGITAL_ID_DATABASE_URL", "postgresql://db.example/idp")
    monkeypatch.setenv("DIGITAL_ID_KEYS_DIR", "/srv/keys")
    settings = load_settings()
    assert settings.database_url == "postgresql://db.example/idp"
    assert str(settings.keys_dir) == "/srv/keys"


def test_settings_come_from_a_dot_env_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DIGITAL_ID_ISSUER=https://id.example.go.id\n")
    assert load_settings().issuer == "https://id.example.go.id"


def test_production_refuses_the_development_passphrase_and_names_it():
    with pytest.raises(ConfigError) as error:
        load_settings(env="production", issuer="https://id.example.go.id")
    assert "DIGITAL_ID_KEYS_PASSPHRASE is the development default" in str(error.value)


def test_production_refuses_a_short_passphrase():
    with pytest.raises(
        ConfigError, match="DIGITAL_ID_KEYS_PASSPHRASE must be at least 16 characters"
    ):
        load_settings(env="production", issuer="https://id.example.go.id", keys_passphrase="short")


def test_production_refuses_a_plain_http_issuer():
    with pytest.raises(ConfigError, match="DIGITAL_ID_ISSUER must be an https URL in production"):
        load_settings(env="production", issuer="http://id.example.go.id", keys_passphrase=STRONG)


def test_production_starts_with_its_own_secrets():
    settings = load_settings(
        env="production", issuer="https://id.example.go.id", keys_passphrase=STRONG
    )
    assert settings.is_production
    assert STRONG not in repr(settings)


@pytest.mark.parametrize(
    "issuer", ["id.example.go.id", "https://id.example.go.id/?tenant=1", "ftp://x"]
)
def test_issuer_must_be_an_absolute_url_without_query(issuer):
    with pytest.raises(ConfigError, match="DIGITAL_ID_ISSUER"):
        load_settings(issuer=issuer)


def test_unknown_environment_name_is_refused():
    with pytest.raises(ConfigError, match="DIGITAL_ID_ENV"):
        load_settings(env="staging")


def test_cli_refuses_production_with_development_secrets_in_one_line(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGITAL_ID_ENV", "production")
    monkeypatch.setenv("DIGITAL_ID_ISSUER", "https://id.example.go.id")
    result = CliRunner().invoke(app, ["db", "current"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "DIGITAL_ID_KEYS_PASSPHRASE" in lines[0]


def test_production_refuses_argon2_parameters_below_owasp():
    with pytest.raises(
        ConfigError, match="DIGITAL_ID_PIN_ARGON2_MEMORY_KIB and DIGITAL_ID_PIN_ARGON2_TIME_COST"
    ):
        load_settings(
            env="production",
            issuer="https://id.example.go.id",
            keys_passphrase=STRONG,
            pin_argon2_memory_kib=1024,
        )
