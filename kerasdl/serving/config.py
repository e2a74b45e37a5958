"""Which models to serve: TensorFlow Serving's `--model_config_file`, read by hand.

TF Serving's config is a `ModelServerConfig` protobuf in text format. Its `.proto`
ships with `tensorflow_serving`, not with TensorFlow, so `google.protobuf.text_format`
has no descriptor to parse it against. The format is small (fields, nested
`{ }` messages, quoted strings, numbers, `#` comments), so `parse_text_proto` reads
it into plain dicts, and `model_configs_from_dict` turns the result into
`ModelConfig`s. JSON and YAML files of the same shape (the protobuf's JSON mapping)
are accepted too:

```
model_config_list {                      # {"model_config_list": {"config": [
  config {                               #   {"name": "lenet",
    name: 'lenet'                        #    "base_path": "/models/lenet",
    base_path: '/models/lenet'           #    "model_version_policy":
    model_version_policy {               #        {"specific": {"versions": [1, 2]}},
      specific { versions: 1 versions: 2 }
    }                                    #    "version_labels": {"stable": 1}}]}}
    version_labels { key: 'stable' value: 1 }
  }
}
```
"""

import dataclasses
import json
import os
import re

_TOKEN = re.compile(
    r"""
    (?P<skip>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
  | (?P<ident>[A-Za-z_][\w.]*)
  | (?P<punct>[{}:;,\[\]<>])
    """,
    re.VERBOSE,
)
_CLOSING = {"{": "}", "<": ">"}
POLICIES = ("latest", "all", "specific")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One served model: a name and a base path holding numbered versions.

    Args:
        name: the `${MODEL_NAME}` of the REST URLs.
        base_path: folder whose numeric sub-folders are SavedModel versions.
        version_policy: `"latest"` serves the newest `num_versions` versions,
            `"all"` every version, `"specific"` only `versions`. Defaults to
            `"latest"`.
        num_versions: how many versions the latest policy keeps. Defaults to 1.
        versions: the versions the specific policy serves. Defaults to `()`.
        version_labels: label name to version number, for `/labels/{label}` URLs.
            Defaults to `{}`.
    """

    name: str
    base_path: str
    version_policy: str = "latest"
    num_versions: int = 1
    versions: tuple = ()
    version_labels: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.name or "/" in self.name:
            raise ValueError(
                f"A model needs a name without '/'. Received: name={self.name!r}"
            )
        if not self.base_path:
            raise ValueError(
                f"Model {self.name!r} needs a base_path. Received: base_path={self.base_path!r}"
            )
        if self.version_policy not in POLICIES:
            raise ValueError(
                f"version_policy must be one of {POLICIES}. Received: version_policy={self.version_policy!r}"
            )
        if self.num_versions < 1:
            raise ValueError(
                f"num_versions must be >= 1. Received: num_versions={self.num_versions}"
            )
        if self.version_policy == "specific" and not self.versions:
            raise ValueError(
                f"Model {self.name!r}: the specific policy needs at least one version."
            )


class ConfigError(ValueError):
    """A model config file that cannot be read; the message says where."""


def _tokenize(text):
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            line = text.count("\n", 0, position) + 1
            raise ConfigError(f"line {line}: unexpected character {text[position]!r}")
        position = match.end()
        if match.lastgroup != "skip":
            line = text.count("\n", 0, match.start()) + 1
            tokens.append((match.lastgroup, match.group(), line))
    return tokens


def _scalar(kind, value):
    if kind == "string":
        body = value[1:-1]
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape")
    if kind == "number":
        return float(value) if any(c in value for c in ".eE") else int(value)
    if kind == "ident":
        return {"true": True, "false": False}.get(
            value, value
        )  # enum names stay strings
    raise ConfigError(f"expected a value, got {value!r}")


def parse_text_proto(text):
    """Parses protobuf text format into dicts whose values are lists (fields repeat)."""
    tokens = _tokenize(text)
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else (None, None, None)

    def take(expected=None):
        nonlocal position
        kind, value, line = peek()
        if kind is None:
            raise ConfigError(f"unexpected end of file, expected {expected or 'more'}")
        if expected is not None and value != expected:
            raise ConfigError(f"line {line}: expected {expected!r}, got {value!r}")
        position += 1
        return kind, value, line

    def message(closing):
        fields = {}
        while True:
            kind, value, line = peek()
            if kind is None and closing is None:
                return fields
            if value == closing:
                take()
                return fields
            kind, name, line = take()
            if kind != "ident":
                raise ConfigError(f"line {line}: expected a field name, got {name!r}")
            if peek()[1] == ":":
                take()
            if peek()[1] in _CLOSING:
                opening = take()[1]
                values = [message(_CLOSING[opening])]
            elif peek()[1] == "[":
                take()
                values = []
                while peek()[1] != "]":
                    values.append(_scalar(*take()[:2]))
                    if peek()[1] == ",":
                        take()
                take("]")
            else:
                values = [_scalar(*take()[:2])]
            fields.setdefault(name, []).extend(values)
            if peek()[1] in (";", ","):
                take()

    return message(None)


def _single(fields, key, default=None):
    """Reads one field from a text-proto dict (lists) or a JSON dict (plain values)."""
    value = fields.get(key, default)
    if isinstance(value, list):
        if len(value) != 1:
            raise ConfigError(f"field {key!r} must appear once, got {len(value)}")
        return value[0]
    return value


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _model_config(entry):
    if not isinstance(entry, dict):
        raise ConfigError(f"each config must be a message, got {entry!r}")
    platform = _single(entry, "model_platform", "tensorflow")
    if platform != "tensorflow":
        raise ConfigError(
            f"only model_platform 'tensorflow' is served, got {platform!r}"
        )
    kwargs = {
        "name": _single(entry, "name", ""),
        "base_path": _single(entry, "base_path", ""),
    }
    policy = _single(entry, "model_version_policy")
    if policy:
        if not isinstance(policy, dict) or len(policy) != 1:
            raise ConfigError(
                f"model_version_policy needs exactly one of {POLICIES}, got {policy!r}"
            )
        ((kind, options),) = policy.items()
        options = _single({"o": options}, "o") or {}
        kwargs["version_policy"] = kind
        if kind == "latest":
            kwargs["num_versions"] = int(_single(options, "num_versions", 1))
        elif kind == "specific":
            kwargs["versions"] = tuple(
                int(v) for v in _as_list(options.get("versions"))
            )
    labels = entry.get("version_labels") or {}
    if isinstance(
        labels, list
    ):  # text format: repeated {key: .. value: ..} map entries
        labels = {_single(item, "key"): _single(item, "value") for item in labels}
    kwargs["version_labels"] = {str(k): int(v) for k, v in labels.items()}
    try:
        return ModelConfig(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from error


def model_configs_from_dict(data):
    """Turns a `ModelServerConfig` (text-proto dicts or its JSON mapping) into configs."""
    if not isinstance(data, dict) or "model_config_list" not in data:
        raise ConfigError("the config must have a top-level model_config_list")
    config_list = _single(data, "model_config_list") or {}
    configs = [_model_config(entry) for entry in _as_list(config_list.get("config"))]
    if not configs:
        raise ConfigError("model_config_list has no config entries")
    names = [config.name for config in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names must be unique, got {names}")
    return configs


def load_model_config_file(path):
    """Reads a `.json`, `.yaml`/`.yml` or TF Serving text-proto model config file."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension == ".json":
            data = json.loads(text)
        elif extension in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = parse_text_proto(text)
        configs = model_configs_from_dict(data)
    except (ValueError, ConfigError) as error:  # json/yaml errors are ValueErrors
        raise ConfigError(f"{path}: {error}") from error
    except Exception as error:  # yaml.YAMLError
        raise ConfigError(f"{path}: {error}") from error
    base = os.path.dirname(os.path.abspath(path))
    return [
        dataclasses.replace(c, base_path=os.path.join(base, c.base_path))
        for c in configs
    ]
