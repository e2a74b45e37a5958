"""The model config file: TF Serving's text format, and the JSON/YAML equivalent."""

import json

import pytest

from kerasdl.serving.config import (
    ConfigError,
    ModelConfig,
    load_model_config_file,
    parse_text_proto,
)

TEXT = """
# two models
model_config_list {
  config {
    name: 'lenet'
    base_path: "/models/lenet"
    model_platform: 'tensorflow'
    model_version_policy { specific { versions: 1 versions: 3 } }
    version_labels { key: 'stable' value: 1 }
    version_labels { key: 'canary' value: 3 }
  }
  config: { name: "bert" base_path: "/models/bert" model_version_policy: { latest { num_versions: 2 } } };
  config { name: "all" base_path: "rel" model_version_policy { all {} } }
}
"""


def test_parse_text_proto_repeats_fields():
    parsed = parse_text_proto("a: 1 b { c: 'x' } b { c: \"y\" } d: [1, 2]")
    assert parsed == {"a": [1], "b": [{"c": ["x"]}, {"c": ["y"]}], "d": [1, 2]}


def test_text_format_file(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(TEXT)
    lenet, bert, everything = load_model_config_file(str(path))
    assert lenet == ModelConfig(
        "lenet",
        "/models/lenet",
        "specific",
        versions=(1, 3),
        version_labels={"stable": 1, "canary": 3},
    )
    assert (bert.version_policy, bert.num_versions) == ("latest", 2)
    assert everything.version_policy == "all"
    assert everything.base_path == str(tmp_path / "rel")  # relative to the config file


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_json_and_yaml_equivalent(tmp_path, suffix):
    data = {
        "model_config_list": {
            "config": [
                {
                    "name": "lenet",
                    "base_path": "/models/lenet",
                    "model_version_policy": {"specific": {"versions": [1, 3]}},
                    "version_labels": {"stable": 1},
                }
            ]
        }
    }
    path = tmp_path / f"models{suffix}"
    path.write_text(json.dumps(data))  # JSON is valid YAML
    (config,) = load_model_config_file(str(path))
    assert config.versions == (1, 3) and config.version_labels == {"stable": 1}


@pytest.mark.parametrize(
    "text, message",
    [
        ("model_config_list { config { name: 'a' } }", "base_path"),
        ("model_config_list { config { name: 'a' base_path: '/x'", "end of file"),
        (
            "model_config_list { config { name: 'a' base_path: '/x' model_platform: 'onnx' } }",
            "onnx",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/x' model_version_policy { newest {} } } }",
            "version_policy",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/x' } config { name: 'a' base_path: '/y' } }",
            "unique",
        ),
        ("model_config_list { config { name: @ } }", "unexpected character"),
        ("other {}", "model_config_list"),
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_model_config_file(str(path))
