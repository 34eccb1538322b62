"""engine/config/loader.py: YAML to structs, every error at file:line:col with its field path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.config.loader import (
    LoadedChannel,
    load_all,
    load_channels,
    load_engine_config,
)
from engine.config.schema import EngineConfig
from engine.connectors.fhir import FhirDestinationConfig
from engine.connectors.mllp import MllpSourceConfig
from engine.errors import ConfigErrors
from engine.registry import DESTINATIONS, SOURCES

# the kinds every "known types" error lists, as the registry has them (sorted)
SOURCE_KINDS = ", ".join(sorted(SOURCES))
DESTINATION_KINDS = ", ".join(sorted(DESTINATIONS))

GOOD = """\
source:
  type: mllp
  port: 2575
destinations:
  - name: files
    type: file
    directory: out
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(call, *args) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        call(*args)
    return [str(e) for e in caught.value.errors]


def one_channel(root: Path, text: str, env: dict[str, str] | None = None) -> LoadedChannel:
    write(root, "channels/c.yaml", text)
    [loaded] = load_channels("channels", env or {})
    return loaded


def channel_errors(root: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    write(root, "channels/c.yaml", text)
    return errors_of(load_channels, "channels", env or {})


# --- a good channel --------------------------------------------------------------------


def test_good_channel_loads_with_name_from_file_and_positions(project: Path) -> None:
    loaded = one_channel(project, GOOD)
    assert loaded.file == "channels/c.yaml"
    assert loaded.config.name == "c"
    assert loaded.config.source == MllpSourceConfig(port=2575)
    assert loaded.disabled == {}
    assert loaded.locate("source.port") == (3, 9)
    assert loaded.locate("destinations[0].directory") == (7, 16)
    assert loaded.locate("destinations[0].timeout") == (5, 5)  # defaulted: its item
    assert loaded.locate("name") == (1, 1)
    err = loaded.error("port clash", "source.port")
    assert str(err) == "channels/c.yaml:3:9: source.port: port clash"


def test_validation_off_unquoted_is_the_word_not_yaml_false(project: Path) -> None:
    """YAML 1.1 reads a bare `off` as false; where the setting is one of some words, the
    word as written is what the analyst meant."""
    assert one_channel(project, GOOD + "validation: off\n").config.validation == "off"
    errors = channel_errors(project, GOOD + "validation: no\n")
    assert errors == ['channels/c.yaml:8:13: validation: expected one of off, lenient, '
                      'strict, got text "no"']


def test_channels_load_in_name_order_yaml_and_yml(project: Path) -> None:
    write(project, "channels/b.yml", GOOD)
    write(project, "channels/a.yaml", GOOD.replace("2575", "2576"))
    write(project, "channels/notes.txt", "not a channel")
    names = [c.config.name for c in load_channels("channels", {})]
    assert names == ["a", "b"]


def test_explicit_name_wins_over_file_name(project: Path) -> None:
    assert one_channel(project, "name: adt-in\n" + GOOD).config.name == "adt-in"


def test_file_name_that_is_not_a_valid_name_says_so(project: Path) -> None:
    write(project, "channels/ADT Feed.yaml", GOOD)
    assert errors_of(load_channels, "channels", {}) == [
        'channels/ADT Feed.yaml:1:1: name: expected a name of lowercase letters, digits, - and _,'
        ' got text "ADT Feed" (the name comes from the file name; rename the file or set'
        ' `name:`)'
    ]


def test_missing_channel_folder(project: Path) -> None:
    assert errors_of(load_channels, "nowhere", {}) == [
        "nowhere: channel folder does not exist; create it or set channels_dir in the engine "
        "configuration"
    ]


# --- values --------------------------------------------------------------------------


def test_unknown_key_with_suggestion_points_at_the_key(project: Path) -> None:
    assert channel_errors(project, GOOD.replace("  port: 2575", "  prot: 2575")) == [
        "channels/c.yaml:1:1: source: missing required setting `port` (TCP port to listen on)",
        "channels/c.yaml:3:3: source.prot: unknown setting `prot` (did you mean `port`?)",
    ]


def test_unknown_key_without_suggestion_lists_known_ones(project: Path) -> None:
    errors = channel_errors(project, GOOD + "colour: blue\n")
    assert errors == [
        "channels/c.yaml:8:1: colour: unknown setting `colour`; known settings here: "
        "description, destinations, duplicate_window, enabled, filter, format, mapping, "
        "name, order, respond, retention, retry, shadow, source, split, validation, x12"
    ]


def test_unknown_source_type(project: Path) -> None:
    assert channel_errors(project, GOOD.replace("type: mllp", "type: mlp")) == [
        "channels/c.yaml:2:9: source.type: unknown type `mlp`; known source types: "
        f"{SOURCE_KINDS}"
    ]


def test_missing_type_lists_the_known_ones(project: Path) -> None:
    assert channel_errors(project, GOOD.replace("    type: file\n", "")) == [
        "channels/c.yaml:5:5: destinations[0]: missing required setting `type`; known "
        f"destination types: {DESTINATION_KINDS}"
    ]


def test_wrong_types_and_bounds_in_plain_words(project: Path) -> None:
    text = """\
        source:
          type: mllp
          port: abc
          max_message_size: lots
        destinations:
          - name: h
            type: http
            url: fhir
            timeout: soon
            retry: {max_attempts: 0, jitter: 2}
          - name: m
            type: mllp
            host: x
            port: 70000
            optional: maybe
        enabled: sometimes
        format: edifact
        mapping: adt
        """
    assert channel_errors(project, text) == [
        'channels/c.yaml:3:9: source.port: expected a whole number, got text "abc" '
        "(TCP port to listen on)",
        'channels/c.yaml:4:21: source.max_message_size: expected a size such as 64KiB or 10MiB,'
        ' got text "lots"',
        'channels/c.yaml:8:10: destinations[0].url: expected an http:// or https:// URL, got '
        'text "fhir"',
        "channels/c.yaml:9:14: destinations[0].timeout: expected a duration such as 500ms, 30s,"
        ' 5m or 1h, got text "soon"',
        "channels/c.yaml:10:27: destinations[0].retry.max_attempts: expected a whole number of "
        "at least 1, got the number 0",
        "channels/c.yaml:10:38: destinations[0].retry.jitter: expected a number of at most 1.0,"
        " got the number 2",
        "channels/c.yaml:14:11: destinations[1].port: expected a whole number of at most 65535,"
        " got the number 70000",
        'channels/c.yaml:15:15: destinations[1].optional: expected true or false, got text '
        '"maybe"',
        'channels/c.yaml:16:10: enabled: expected true or false, got text "sometimes"',
        'channels/c.yaml:17:9: format: expected one of hl7v2, fhir, x12, ncpdp, got text "edifact"',
        "channels/c.yaml:18:10: mapping: expected a mapping pinned as name@version, such as "
        'adt-to-fhir@1, got text "adt"',
    ]


def test_empty_destination_list(project: Path) -> None:
    text = "source: {type: mllp, port: 1}\ndestinations: []\n"
    assert channel_errors(project, text) == [
        "channels/c.yaml:2:15: destinations: expected a list with at least 1 entry, got an "
        "empty list"
    ]


def test_section_that_is_not_a_mapping(project: Path) -> None:
    text = "source: mllp\ndestinations:\n"
    assert channel_errors(project, text) == [
        'channels/c.yaml:1:9: source: expected settings written as `name: value`, got text '
        '"mllp"',
        "channels/c.yaml:2:14: destinations: expected a list, got an empty value (where "
        "messages go)",
    ]


def test_text_settings_keep_the_spelling_yaml_would_turn_into_numbers(project: Path) -> None:
    text = GOOD + "filter:\n  - field: PV1-2\n    in: [01, 08, I]\n  - field: MSH-12\n" \
                  "    equals: 2.5\ndescription: 2024-01-01\n"
    config = one_channel(project, text).config
    assert config.filter[0].in_ == ["01", "08", "I"]
    assert config.filter[1].equals == "2.5"
    assert config.description == "2024-01-01"


def test_missing_required_in_list_item_points_at_the_item(project: Path) -> None:
    text = GOOD + "  - name: api\n    type: fhir\n"
    assert channel_errors(project, text) == [
        "channels/c.yaml:8:5: destinations[1]: missing required setting `url` "
        "(the FHIR server's base URL)"
    ]


# --- YAML problems ---------------------------------------------------------------------


def test_duplicate_keys_are_errors(project: Path) -> None:
    text = GOOD.replace("  port: 2575\n", "  port: 2575\n  port: 2576\n")
    assert channel_errors(project, text) == [
        "channels/c.yaml:4:3: source.port: `port` is given twice (first at line 3); YAML "
        "would silently keep only the last one"
    ]


def test_merge_keys_may_be_overridden(project: Path) -> None:
    text = """\
        x-defaults: &d
          type: file
          directory: out
        source: {type: mllp, port: 1}
        destinations:
          - <<: *d
            name: a
            directory: elsewhere
        """
    text = textwrap.dedent(text).replace("x-defaults", "description")
    errors = channel_errors(project, text)
    # merging works (no duplicate error) but `description` must be text
    assert errors == [
        "channels/c.yaml:1:14: description: expected text, got settings (`name: value`)"
    ]


def test_syntax_error_has_its_position(project: Path) -> None:
    text = "source:\n  type: mllp\n  port: 1\n destinations: []\n"
    [error] = channel_errors(project, text)
    assert error.startswith("channels/c.yaml:4:2: invalid YAML: ")


def test_tab_indentation_hint(project: Path) -> None:
    assert channel_errors(project, "source:\n\ttype: mllp\n") == [
        "channels/c.yaml:2:1: invalid YAML: found character '\\t' that cannot start any "
        "token; indent with spaces, not tabs"
    ]


def test_empty_and_comment_only_files(project: Path) -> None:
    assert channel_errors(project, "# nothing yet\n") == [
        "channels/c.yaml:1:1: the file is empty; a channel needs at least `source:` and "
        "`destinations:`"
    ]


def test_top_level_must_be_a_mapping(project: Path) -> None:
    assert channel_errors(project, "- source\n- destinations\n") == [
        "channels/c.yaml:1:1: the top level must be settings written as `name: value`, got a "
        "list"
    ]


# --- environment interpolation ---------------------------------------------------------

ENV_CHANNEL = """\
source:
  type: mllp
  host: ${HOST}
  port: ${PORT:-2575}
destinations:
  - name: api
    type: fhir
    url: http://${API_HOST}:${API_PORT:-8080}/fhir
    headers:
      X-Price: $$5 and $${NOT_A_VAR}
"""


def test_interpolation_set_default_and_mid_string(project: Path) -> None:
    config = one_channel(project, ENV_CHANNEL, {"HOST": "0.0.0.0", "API_HOST": "fhir.local"}
                         ).config
    assert config.source.host == "0.0.0.0"
    assert config.source.port == 2575
    [dest] = config.destinations
    assert isinstance(dest, FhirDestinationConfig)
    assert dest.url == "http://fhir.local:8080/fhir"
    assert dest.headers == {"X-Price": "$5 and ${NOT_A_VAR}"}


def test_set_value_wins_and_is_converted_from_text(project: Path) -> None:
    env = {"HOST": "h", "PORT": "2600", "API_HOST": "a", "API_PORT": "9"}
    config = one_channel(project, ENV_CHANNEL, env).config
    assert config.source.port == 2600
    assert config.destinations[0].url == "http://a:9/fhir"


def test_empty_variable_takes_the_default_but_plain_reference_stays_empty(
    project: Path,
) -> None:
    env = {"HOST": "", "PORT": "", "API_HOST": "a"}
    config = one_channel(project, ENV_CHANNEL, env).config
    assert config.source.host == ""
    assert config.source.port == 2575


def test_unset_variables_are_errors_at_the_reference(project: Path) -> None:
    assert channel_errors(project, ENV_CHANNEL, {}) == [
        "channels/c.yaml:3:9: source.host: environment variable HOST is not set (give it a "
        "value, or a default with ${HOST:-value})",
        "channels/c.yaml:8:17: destinations[0].url: environment variable API_HOST is not set "
        "(give it a value, or a default with ${API_HOST:-value})",
    ]


def test_bad_value_from_environment_is_named_not_shown(project: Path) -> None:
    env = {"HOST": "h", "PORT": "secret-ish", "API_HOST": "a"}
    assert channel_errors(project, ENV_CHANNEL, env) == [
        "channels/c.yaml:4:9: source.port: expected a whole number, got the value set through "
        "environment variable PORT (TCP port to listen on)"
    ]


def test_unset_type_is_reported_once(project: Path) -> None:
    assert channel_errors(project, GOOD.replace("type: mllp", "type: ${KIND}")) == [
        "channels/c.yaml:2:9: source.type: environment variable KIND is not set (give it a "
        "value, or a default with ${KIND:-value})"
    ]


def test_malformed_reference(project: Path) -> None:
    text = GOOD.replace("directory: out", "directory: ${OUT-dir}")
    assert channel_errors(project, text) == [
        "channels/c.yaml:7:16: destinations[0].directory: cannot read `${OUT-dir}`: write "
        "${NAME} or ${NAME:-default}, and $$ for a literal $"
    ]


def test_lone_dollar_is_kept(project: Path) -> None:
    text = GOOD + "filter:\n  - field: MSH-9.1\n    matches: ^ADT$\n"
    assert one_channel(project, text).config.filter[0].matches == "^ADT$"


# --- optional destinations -------------------------------------------------------------

OPTIONAL = """\
source: {type: mllp, port: 2575}
destinations:
  - name: files
    type: file
    directory: out
  - name: fhir
    type: fhir
    optional: ${FHIR_OPTIONAL:-true}
    url: ${CONDUIT_FHIR_URL}
    timeout: soon
  - name: tail
    type: file
    directory: ${TAIL_DIR:-tail}
"""


def test_optional_destination_with_unset_variable_is_disabled(project: Path) -> None:
    loaded = one_channel(project, OPTIONAL.replace("timeout: soon", "timeout: 5s"))
    assert [d.name for d in loaded.config.destinations] == ["files", "tail"]
    assert loaded.disabled == {"fhir": ["CONDUIT_FHIR_URL"]}
    # positions follow the destinations that remain
    assert loaded.locate("destinations[1].directory") == (13, 16)


def test_disabled_destination_still_has_its_written_settings_checked(project: Path) -> None:
    """A typo in a destination that is off here must not wait for production to show."""
    assert channel_errors(project, OPTIONAL) == [
        "channels/c.yaml:10:14: destinations[1].timeout: expected a duration such as 500ms, "
        '30s, 5m or 1h, got text "soon"'
    ]


def test_optional_destination_is_checked_when_its_variables_are_set(project: Path) -> None:
    env = {"CONDUIT_FHIR_URL": "https://fhir.example.org/r4"}
    assert channel_errors(project, OPTIONAL, env) == [
        "channels/c.yaml:10:14: destinations[1].timeout: expected a duration such as 500ms, "
        '30s, 5m or 1h, got text "soon"'
    ]


def test_optional_false_from_environment_makes_the_variable_required(project: Path) -> None:
    errors = channel_errors(project, OPTIONAL, {"FHIR_OPTIONAL": "false"})
    assert errors == [
        "channels/c.yaml:9:10: destinations[1].url: environment variable CONDUIT_FHIR_URL is "
        "not set (give it a value, or a default with ${CONDUIT_FHIR_URL:-value})",
        "channels/c.yaml:10:14: destinations[1].timeout: expected a duration such as 500ms, "
        '30s, 5m or 1h, got text "soon"',
    ]


def test_every_destination_disabled_is_an_error(project: Path) -> None:
    text = """\
        source: {type: mllp, port: 2575}
        destinations:
          - name: fhir
            type: fhir
            optional: true
            url: ${CONDUIT_FHIR_URL}
        """
    assert channel_errors(project, text) == [
        "channels/c.yaml:2:1: destinations: every destination is disabled because environment "
        "variables are unset: fhir (CONDUIT_FHIR_URL); set them, or make a destination "
        "non-optional"
    ]


# --- engine configuration and load_all -------------------------------------------------


def test_engine_defaults_without_a_file(project: Path) -> None:
    assert load_engine_config(None, {}) == EngineConfig()
    assert load_engine_config("conf/conduit.yaml", {}) == EngineConfig()  # default, absent


def test_engine_file_named_on_purpose_must_exist(project: Path) -> None:
    assert errors_of(load_engine_config, "conf/prod.yaml", {}) == [
        "conf/prod.yaml: engine configuration file not found; check the path given with "
        "--conf or CONDUIT_CONF"
    ]


def test_engine_file_with_comments_only_means_defaults(project: Path) -> None:
    write(project, "conf/conduit.yaml", "# web:\n#   port: 8080\n")
    assert load_engine_config("conf/conduit.yaml", {}) == EngineConfig()


def test_engine_file_values_and_interpolation(project: Path) -> None:
    write(project, "conf/conduit.yaml", "web:\n  port: ${WEB_PORT:-8080}\nlog:\n  level: debug\n")
    config = load_engine_config("conf/conduit.yaml", {"WEB_PORT": "0"})
    assert config.web.port == 0
    assert config.log.level == "debug"


def test_load_all_reports_every_error_in_every_file_at_once(project: Path) -> None:
    write(project, "conf/conduit.yaml", """\
        web:
          hots: 0.0.0.0
        log:
          level: warn
        """)
    write(project, "channels/a.yaml", GOOD.replace("port: 2575", "port: x"))
    write(project, "channels/b.yaml", GOOD + "  - name: api\n    type: http\n    url: ftp://x\n")
    write(project, "channels/c.yaml", GOOD.replace("type: file", "type: fil"))
    write(project, "channels/ok.yaml", GOOD)
    assert errors_of(load_all, "conf/conduit.yaml", {}) == [
        'channels/a.yaml:3:9: source.port: expected a whole number, got text "x" (TCP port '
        "to listen on)",
        'channels/b.yaml:10:10: destinations[1].url: expected an http:// or https:// URL, got '
        'text "ftp://x"',
        "channels/c.yaml:6:11: destinations[0].type: unknown type `fil`; known destination "
        f"types: {DESTINATION_KINDS}",
        "conf/conduit.yaml:2:3: web.hots: unknown setting `hots` (did you mean `host`?)",
        'conf/conduit.yaml:4:10: log.level: expected one of debug, info, warning, error, got '
        'text "warn" (did you mean `warning`?)',
    ]


def test_load_all_uses_channels_dir(project: Path) -> None:
    write(project, "conf/conduit.yaml", "channels_dir: ${CHANNELS:-elsewhere}\n")
    write(project, "elsewhere/x.yaml", GOOD)
    engine, channels = load_all("conf/conduit.yaml", {})
    assert engine.channels_dir == "elsewhere"
    assert [(c.file, c.config.name) for c in channels] == [("elsewhere/x.yaml", "x")]


def test_load_all_checks_channels_even_when_engine_file_is_broken(project: Path) -> None:
    write(project, "conf/conduit.yaml", "channels_dir: mine\napplication: [a]\n")
    write(project, "mine/x.yaml", "source: {}\n")
    assert errors_of(load_all, "conf/conduit.yaml", {}) == [
        "conf/conduit.yaml:2:14: application: expected text, got a list "
        "(this engine's name in acknowledgements (MSH-3))",
        "mine/x.yaml:1:1: source: missing required setting `type`; known source types: "
        f"{SOURCE_KINDS}",
        "mine/x.yaml:1:1: missing required setting `destinations` (where messages go)",
    ]
