from pathlib import Path

import pytest

from recommender.config import ConfigError, Settings, load_settings, setting_docs

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults_without_file_or_environment():
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.profile == "default" and settings.threads == 2


def test_environment_overrides_file_and_is_typed(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text('threads = 4\nrecency_weight = 0.2\nprofile = "fast"\n')
    settings = load_settings(config, environ={"RECOMMENDER_THREADS": "1"})
    assert settings.threads == 1  # environment wins over the file
    assert settings.recency_weight == 0.2 and settings.profile == "fast"


def test_explicit_overrides_win_and_none_is_ignored():
    settings = load_settings(environ={"RECOMMENDER_PORT": "9000"}, port=None, host="0.0.0.0")
    assert settings.port == 9000 and settings.host == "0.0.0.0"


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"RECOMMENDER_THREDS": "2"}, "unknown environment setting RECOMMENDER_THREDS"),
        ({"RECOMMENDER_THREADS": "two"}, "not a valid int"),
        ({"RECOMMENDER_THREADS": "0"}, "at least 1"),
        ({"RECOMMENDER_RECENCY_WEIGHT": "1.5"}, "between 0 and 1"),
    ],
)
def test_bad_settings_fail_clearly(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_unknown_key_in_file_fails(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text("treads = 3\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(config, environ={})


def test_missing_or_broken_file_fails(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("threads = = 2")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_every_setting_is_documented_in_the_readme():
    readme = README.read_text(encoding="utf-8")
    missing = [name for name, _default, _help in setting_docs() if f"`{name}`" not in readme]
    assert not missing, f"settings missing from README.md: {missing}"


def test_the_api_token_is_a_secret_read_from_its_documented_variable():
    settings = load_settings(environ={"RECOMMENDER_API_TOKEN": "s3cret-7"})
    assert settings.api_token == "s3cret-7"
    assert "s3cret-7" not in repr(settings) and "api_token='(set)'" in repr(settings)
    assert "api_token='(not set)'" in repr(settings.replace(api_token=""))
    name, shown, help_text = next(doc for doc in setting_docs() if doc[0] == "api_token")
    assert shown == "(not set)" and "environment" in help_text



def test_the_state_url_is_printed_with_its_password_masked_and_must_name_postgresql():
    url = "postgresql://editor:pa55@db.example:5432/news?sslmode=require&password=again"
    settings = load_settings(environ={"RECOMMENDER_STATE_URL": url})
    assert settings.state_url == url
    assert "pa55" not in repr(settings) and "again" not in repr(settings)
    assert "state_url='postgresql://editor:***@db.example:5432/news?sslmode=require&password=***'" in repr(settings)
    assert "state_url=''" in repr(load_settings(environ={}))
    with pytest.raises(ConfigError, match="postgresql://"):
        load_settings(environ={"RECOMMENDER_STATE_URL": "mysql://root:pw@db/news"})

def test_the_example_newsroom_configuration_loads_with_its_placements():
    from recommender.rank.placements import placements_from

    settings = load_settings(README.parent / "newsroom.example.toml", environ={})
    placements = placements_from(settings.placements, settings.max_k)
    assert {"article_bottom", "sidebar", "archive", "english_edition"} <= set(placements)
    assert placements["sidebar"].max_per_story == 1 and settings.section_half_life_days["Wissen"] == 180


@pytest.mark.parametrize("value, problem", [
    ("[" * 100_000, "nests deeper"), ('{"Politik": 3', "not a JSON object"), ("[1]", "expected a table"),
    ("{" + ", ".join(f'"s{i}": 1' for i in range(1001)) + "}", "more than 1000 entries"),
])
def test_a_table_setting_from_the_environment_fails_clearly(value, problem):
    with pytest.raises(ConfigError, match=problem):
        load_settings(environ={"RECOMMENDER_SECTION_HALF_LIFE_DAYS": value})


def test_table_settings_come_from_toml_and_json(tmp_path):
    config = tmp_path / "newsroom.toml"
    config.write_text('[section_half_life_days]\nPolitik = 3\n[placements.box]\nk = 2\n', encoding="utf-8")
    settings = load_settings(config, environ={"RECOMMENDER_PLACEMENTS": '{"teaser": {"k": 1}}'})
    assert settings.section_half_life_days == {"Politik": 3} and settings.placements == {"teaser": {"k": 1}}
    with pytest.raises(ConfigError, match="section_half_life_days"):
        load_settings(environ={"RECOMMENDER_SECTION_HALF_LIFE_DAYS": '{"Politik": 0}'})
