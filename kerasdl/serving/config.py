"""Which models to serve: TF Serving's `--model_config_file`, read with its own proto.

The file is a `tensorflow.serving.ModelServerConfig` (the `.proto` ships with
`tensorflow-serving-api` as `model_server_config_pb2`), parsed with
`google.protobuf.text_format`, exactly as `tensorflow_model_server` reads it. The
protobuf's JSON mapping (`.json`, via `json_format`) and the same mapping written
as YAML (`.yaml`/`.yml`) are accepted too:

```
model_config_list {                      # {"model_config_list": {"config": [
  config {                               #   {"name": "lenet",
    name: 'lenet'                        #    "base_path": "/models/lenet",
    base_path: '/models/lenet'           #    "model_platform": "tensorflow",
    model_platform: 'tensorflow'         #    "model_version_policy":
    model_version_policy {               #        {"specific": {"versions": [1, 2]}},
      specific { versions: 1 versions: 2 }
    }                                    #    "version_labels": {"stable": 1}}]}}
    version_labels { key: 'stable' value: 1 }
  }
}
```

`model_configs_from_proto` maps the proto onto `ModelConfig`s (it is also what a
gRPC `HandleReloadConfigRequest` goes through); `load_model_config_file` reads a
file and names the file and line of anything wrong in one `ConfigError` line.
"""

import dataclasses
import json
import os
import re

POLICIES = ("latest", "all", "specific")
TENSORFLOW_PLATFORM = "tensorflow"


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
        model_platform: TF Serving's platform name; only `"tensorflow"` is
            served. Defaults to `"tensorflow"`.
    """

    name: str
    base_path: str
    version_policy: str = "latest"
    num_versions: int = 1
    versions: tuple = ()
    version_labels: dict = dataclasses.field(default_factory=dict)
    model_platform: str = TENSORFLOW_PLATFORM

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
        if self.model_platform != TENSORFLOW_PLATFORM:
            raise ValueError(
                f"Model {self.name!r} requests unsupported platform "
                f"{self.model_platform!r}; kerasdl serves only 'tensorflow'."
            )


class ConfigError(ValueError):
    """A model config that cannot be used; the message says where and what is expected.

    Args:
        message: one line naming the file, line and problem.
        code: the TF Serving error code a gRPC `HandleReloadConfigRequest`
            answers with: `"INVALID_ARGUMENT"` for a malformed config,
            `"FAILED_PRECONDITION"` for one that conflicts with what is served.
            Defaults to `"INVALID_ARGUMENT"`.
    """

    def __init__(self, message, code="INVALID_ARGUMENT"):
        super().__init__(message)
        self.code = code


def _proto_module():
    from tensorflow_serving.config import model_server_config_pb2

    return model_server_config_pb2


def _model_config(proto, index, relative_to):
    """One `tensorflow.serving.ModelConfig` message -> `ModelConfig`."""
    label = f"config #{index + 1}" + (f" (model {proto.name!r})" if proto.name else "")
    module = _proto_module()
    if proto.model_type != module.MODEL_TYPE_UNSPECIFIED:  # deprecated field
        if proto.model_platform:
            raise ConfigError(
                f"{label}: set model_platform or the deprecated model_type, not both"
            )
        if proto.model_type != module.TENSORFLOW:
            raise ConfigError(
                f"{label}: model_type {module.ModelType.Name(proto.model_type)} is "
                "not supported; expected model_platform: 'tensorflow'"
            )
    platform = proto.model_platform or TENSORFLOW_PLATFORM
    base_path = proto.base_path
    if base_path and not os.path.isabs(base_path) and "://" not in base_path:
        if relative_to is None:
            raise ConfigError(
                f"{label}: expected an absolute base_path, got {base_path!r}"
            )
        base_path = os.path.join(relative_to, base_path)
    kwargs = {
        "name": proto.name,
        "base_path": base_path,
        "model_platform": platform,
        "version_labels": {str(k): int(v) for k, v in proto.version_labels.items()},
    }
    policy = proto.model_version_policy
    kind = policy.WhichOneof("policy_choice") or "latest"
    kwargs["version_policy"] = kind
    if kind == "latest":
        kwargs["num_versions"] = max(policy.latest.num_versions, 1)  # as TF Serving
    elif kind == "specific":
        kwargs["versions"] = tuple(int(v) for v in policy.specific.versions)
    try:
        return ModelConfig(**kwargs)
    except ValueError as error:
        raise ConfigError(f"{label}: {error}") from error


def model_configs_from_proto(proto, relative_to=None):
    """Maps a `ModelServerConfig` proto onto `ModelConfig`s.

    Args:
        proto: a `tensorflow_serving.config.model_server_config_pb2.ModelServerConfig`
            (from a file, or a gRPC `ReloadConfigRequest.config`).
        relative_to: folder a relative `base_path` is joined to (the config file's).
            Defaults to `None`: relative paths are refused, as TF Serving does.

    Returns:
        The `ModelConfig`s in file order (`[]` for an empty `model_config_list`,
        which unloads every model), or `None` when neither `model_config_list`
        nor `custom_model_config` is set: TF Serving takes no action then.

    Raises:
        ConfigError: a `custom_model_config`, a duplicate name, a missing name or
            base_path, an unsupported platform, an empty specific policy.
    """
    which = proto.WhichOneof("config")
    if which is None:
        return None
    if which != "model_config_list":
        raise ConfigError(
            f"{which} is not supported; expected a model_config_list of configs"
        )
    configs = [
        _model_config(entry, index, relative_to)
        for index, entry in enumerate(proto.model_config_list.config)
    ]
    seen = set()
    for config in configs:
        if config.name in seen:
            raise ConfigError(
                f"model {config.name!r} is listed more than once; "
                "expected each name once in model_config_list"
            )
        seen.add(config.name)
    return configs


# --- files ---------------------------------------------------------------------------

_TEXT_POSITION = re.compile(r"^(\d+):(\d+) : ")
_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)"')
_MODEL_NAME = re.compile(r"\bmodel '((?:[^'\\]|\\.)+)'")
_CONFIG_INDEX = re.compile(r"^config #(\d+)")


def _line_of(text, pattern):
    """1-based line of the first match of `pattern` in `text`, or None."""
    match = re.search(pattern, text)
    return None if match is None else text.count("\n", 0, match.start()) + 1


def _guess_line(text, message):
    """The line a semantic error is about: its model's name, field or config entry."""
    name = _MODEL_NAME.search(message)
    if name:
        quoted = re.escape(name.group(1))
        line = _line_of(text, rf"""\bname["']?\s*:?\s*["']?{quoted}\b""")
        if line:
            return line
    field = _UNKNOWN_FIELD.search(message)
    if field:
        return _line_of(text, rf"""["']?\b{re.escape(field.group(1))}\b["']?\s*:""")
    index = _CONFIG_INDEX.search(message)
    if index:  # the n-th `config` entry of a text-format file
        entries = list(re.finditer(r"\bconfig\b\s*:?\s*[{<]", text))
        if len(entries) >= int(index.group(1)):
            return text.count("\n", 0, entries[int(index.group(1)) - 1].start()) + 1
    return None


def _where(path, line):
    return f"{path} line {line}" if line else str(path)


def _parse_text(text, path, proto):
    from google.protobuf import text_format

    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as error:
        message = str(error)
        position = _TEXT_POSITION.match(message)
        line = error.GetLine() or (int(position.group(1)) if position else None)
        if position:
            message = message[position.end() :]
        lines = text.splitlines()
        if line and line <= len(lines):  # protobuf echoes the line: drop it
            echo = f"'{lines[line - 1]}': "
            message = message.removeprefix(echo)
        raise ConfigError(
            f"{_where(path, line)}: {message} (expected TF Serving's "
            "ModelServerConfig text format)"
        ) from None


def _parse_mapping(text, path, proto, yaml_file):
    from google.protobuf import json_format

    if yaml_file:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ConfigError(
                f"{_where(path, line)}: not valid YAML: {problem}"
            ) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{_where(path, error.lineno)}: not valid JSON: {error.msg}"
            ) from None
    if data is None:
        return  # an empty file: no config set, as an empty text-format file
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected an object with a model_config_list, got "
            f"{type(data).__name__}"
        )
    try:
        json_format.ParseDict(data, proto)
    except json_format.ParseError as error:
        message = str(error).splitlines()[0].strip()
        raise ConfigError(
            f"{_where(path, _guess_line(text, message))}: {message} (expected the "
            "JSON mapping of TF Serving's ModelServerConfig)"
        ) from None


def parse_model_server_config(text, path="<config>"):
    """Parses a config file's text into a `ModelServerConfig` proto.

    Args:
        text: the file's contents.
        path: the file name; its extension picks the format (`.json`; `.yaml` or
            `.yml`; anything else is protobuf text format) and it starts every
            error message. Defaults to `"<config>"` (text format).

    Raises:
        ConfigError: the text does not parse, naming the line and the problem.
    """
    proto = _proto_module().ModelServerConfig()
    extension = os.path.splitext(str(path))[1].lower()
    if extension == ".json":
        _parse_mapping(text, path, proto, yaml_file=False)
    elif extension in (".yaml", ".yml"):
        _parse_mapping(text, path, proto, yaml_file=True)
    else:
        _parse_text(text, path, proto)
    return proto


def read_model_config_file(path):
    """Reads a config file into `ModelConfig`s, or `None` if it sets no config.

    A relative `base_path` is resolved against the file's folder. An empty file
    (no config set) gives `None`, which `ModelManager.reload_config` ignores, as
    TF Serving does.

    Raises:
        ConfigError: the file cannot be read, parsed or used.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"{path}: cannot read the model config file: {error}"
        ) from None
    proto = parse_model_server_config(text, path)
    try:
        return model_configs_from_proto(
            proto, relative_to=os.path.dirname(os.path.abspath(path))
        )
    except ConfigError as error:
        message = str(error)
        raise ConfigError(
            f"{_where(path, _guess_line(text, message))}: {message}", error.code
        ) from None


def load_model_config_file(path):
    """Reads a `--model_config_file` at start-up: the `ModelConfig`s to serve.

    Text format (TF Serving's), `.json` or `.yaml`/`.yml`; see the module
    docstring.

    Raises:
        ConfigError: the file cannot be read or parsed, or lists no model.
    """
    configs = read_model_config_file(path)
    if not configs:
        raise ConfigError(
            f"{path}: no models to serve; expected model_config_list "
            "{ config { name: ... base_path: ... } }"
        )
    return configs
