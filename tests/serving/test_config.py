"""The model config file: TF Serving's ModelServerConfig, as text, JSON or YAML."""

import json

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from kerasdl.serving.config import (
    ConfigError,
    ModelConfig,
    load_model_config_file,
    model_configs_from_proto,
    parse_model_server_config,
    read_model_config_file,
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


def test_parsed_with_the_tf_serving_proto():
    proto = parse_model_server_config(TEXT, "models.config")
    assert isinstance(proto, model_server_config_pb2.ModelServerConfig)
    assert [c.name for c in proto.model_config_list.config] == ["lenet", "bert", "all"]


def test_model_configs_from_proto_defaults_as_tf_serving():
    proto = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(
        "model_config_list { config { name: 'a' base_path: '/a' }"
        " config { name: 'b' base_path: '/b' model_type: TENSORFLOW"
        " model_version_policy { latest {} } } }",
        proto,
    )
    a, b = model_configs_from_proto(proto)
    # No policy, or latest with num_versions 0: the newest version (TF Serving's max(n, 1)).
    assert (a.version_policy, a.num_versions) == ("latest", 1)
    assert (b.version_policy, b.num_versions, b.model_platform) == (
        "latest",
        1,
        "tensorflow",
    )


def test_model_configs_from_proto_empty_configs():
    # Nothing set: TF Serving takes no action. An empty list: every model unloads.
    assert model_configs_from_proto(model_server_config_pb2.ModelServerConfig()) is None
    proto = model_server_config_pb2.ModelServerConfig()
    proto.model_config_list.SetInParent()
    assert model_configs_from_proto(proto) == []


def test_relative_base_path_needs_a_folder():
    proto = model_server_config_pb2.ModelServerConfig()
    proto.model_config_list.config.add(name="a", base_path="models/a")
    with pytest.raises(ConfigError, match="expected an absolute base_path"):
        model_configs_from_proto(proto)
    (config,) = model_configs_from_proto(proto, relative_to="/srv")
    assert config.base_path == "/srv/models/a"


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
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


def test_json_accepts_the_camel_case_mapping(tmp_path):
    path = tmp_path / "models.json"
    path.write_text(
        '{"modelConfigList": {"config": [{"name": "a", "basePath": "/a",'
        ' "modelVersionPolicy": {"all": {}}, "versionLabels": {"x": "2"}}]}}'
    )
    (config,) = load_model_config_file(str(path))
    assert (config.version_policy, config.version_labels) == ("all", {"x": 2})


def test_empty_file_sets_no_config(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("# nothing yet\n")
    assert read_model_config_file(str(path)) is None
    with pytest.raises(ConfigError, match="no models to serve"):
        load_model_config_file(str(path))


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "model_config_list { config { name: 'a' } }",
            r"models.config line 1: .*model 'a'.*needs a base_path",
        ),
        (
            "model_config_list {\n config { name: 'a' base_path: '/x'",
            r'models.config line 2: Expected "}"',
        ),
        (
            "model_config_list {\n config {\n name: 'a' base_path: '/x' model_platform: 'onnx' } }",
            r"models.config line 3: .*unsupported platform 'onnx'",
        ),
        (
            (
                "model_config_list { config {\n name: 'a' base_path: '/x'\n"
                " model_version_policy { newest {} } } }"
            ),
            r'models.config line 3: .*has no field named "newest"',
        ),
        (
            (
                "model_config_list { config { name: 'a' base_path: '/x' }\n"
                " config { name: 'a' base_path: '/y' } }"
            ),
            r"model 'a' is listed more than once",
        ),
        (
            "model_config_list { config { name: @ } }",
            r"models.config line 1: Expected string but found: '@'",
        ),
        ("other {}", r'models.config line 1: .*has no field named "other"'),
        (
            (
                "model_config_list { config { name: 'a' base_path: '/x'"
                " model_version_policy { specific {} } } }"
            ),
            "specific policy needs at least one version",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/x' model_type: OTHER } }",
            "model_type OTHER is not supported",
        ),
        (
            (
                "model_config_list { config { name: 'a' base_path: '/x'"
                " model_type: TENSORFLOW model_platform: 'tensorflow' } }"
            ),
            "not both",
        ),
        (
            "custom_model_config { }",
            "custom_model_config is not supported",
        ),
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_model_config_file(str(path))
    assert "\n" not in str(caught.value)  # one line


@pytest.mark.parametrize(
    "suffix, text, message",
    [
        (".json", '{"model_config_list":\n {"config": [\n', r"line 3: not valid JSON"),
        (
            ".json",
            '{"model_config_list": {"config": [\n {"name": "a",\n  "wat": 1}]}}',
            r'line 3: .*has no field named "wat"',
        ),
        (".yaml", "model_config_list:\n  config: [\n", r"line 3: not valid YAML"),
        (".json", "[1, 2]", "expected an object with a model_config_list"),
    ],
)
def test_bad_json_and_yaml_say_where(tmp_path, suffix, text, message):
    path = tmp_path / f"models{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_model_config_file(str(path))
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the model config file"):
        load_model_config_file(str(tmp_path / "nope.config"))
