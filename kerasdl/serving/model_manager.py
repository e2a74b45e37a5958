"""Finds, loads, serves and unloads model versions, as TF Serving's manager does."""

import errno
import gc
import logging
import os
import threading
import time

logger = logging.getLogger("kerasdl.serving")

# TF Serving's ModelVersionStatus.State names.
LOADING, AVAILABLE, UNLOADING, END = "LOADING", "AVAILABLE", "UNLOADING", "END"


class NotFoundError(Exception):
    """No such model or version: answered with HTTP 404 (gRPC NOT_FOUND)."""


class UnknownLabelError(Exception):
    """A version label the model's config does not define: HTTP 400 (gRPC
    INVALID_ARGUMENT), as TF Serving answers "Unrecognized servable version label".
    """


class ReloadError(Exception):
    """A new config was applied but some models it added did not become AVAILABLE.

    TF Serving's `ReloadConfig` answers this as `UNKNOWN` ("Some models did not
    become available: ..."); the config stays applied and the poller keeps trying.
    """

    code = "UNKNOWN"


# Errors that say "not now" rather than "this version is broken": a load that
# fails with one is retried at the next poll instead of waiting for the
# directory to change.
_TRANSIENT_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN}
_TRANSIENT_TEXT = ("Too many open files", "Resource temporarily unavailable")


class VersionStatus:
    """What `/v1/models/{name}` reports for one version."""

    def __init__(
        self, version, state=LOADING, error_code="OK", error_message="", stamp=None
    ):
        self.version = version
        self.state = state
        self.error_code = error_code
        self.error_message = error_message
        self.stamp = stamp  # what the directory looked like when we last tried it

    def to_json(self):
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {
                "error_code": self.error_code,
                "error_message": self.error_message,
            },
        }


def _freeze_garbage_collector(collect=False):
    """Moves every object alive now out of the cyclic garbage collector's view.

    A TensorFlow process holds hundreds of thousands of tracked objects; a full
    collection walks them all (a third of a second for a LeNet server), and
    parsing JSON requests allocates enough lists to trigger one every few
    seconds, stalling every request in flight. Frozen objects are skipped. After
    an unload, `collect=True` first unfreezes and collects, so the old version's
    reference cycles are freed (one pause per unload).
    """
    if collect:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


class BasePathNotFound(FileNotFoundError):
    """A model's base path does not exist (ENOENT): nothing can be listed there."""


def list_versions(base_path):
    """Numeric sub-directories of `base_path`, skipping '.x' and 'tmp*' work dirs.

    Returns:
        `{version: path}`; empty when the base path exists but holds no version
        (its versions really are gone).

    Raises:
        BasePathNotFound: `base_path` does not exist (or is not a directory).
        OSError: the directory could not be listed (EACCES, EMFILE, ENFILE, EIO,
            ...). The caller must not read this as "no versions".
    """
    versions = {}
    try:
        with os.scandir(base_path) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith((".", "tmp")) or not name.isdigit():
                    continue
                if not name.isascii():
                    continue
                try:
                    is_directory = entry.is_dir()  # d_type: no stat, no descriptor
                except FileNotFoundError:
                    continue  # removed while we listed
                if is_directory:
                    versions[int(name)] = entry.path
    except (FileNotFoundError, NotADirectoryError) as error:
        raise BasePathNotFound(
            error.errno, f"Could not find base path {base_path}", base_path
        ) from error
    return versions


def _stamp(path):
    """Changes when a version directory is rewritten, so a failed one is retried."""
    parts = []
    for name in ("", "saved_model.pb", "variables", "fingerprint.pb"):
        try:
            info = os.stat(os.path.join(path, name))
            parts.append((name, info.st_mtime_ns, info.st_size, info.st_ino))
        except OSError:
            parts.append((name, None))
    return tuple(parts)


class ManagedModel:
    """One configured model: the status of each version seen and the servables.

    `config` is replaced (never mutated) when a new config changes the model;
    `removed` is set when a config drops it: its versions are unloaded and only
    their END statuses remain, for `/v1/models/{name}`.
    """

    def __init__(self, config):
        self.config = config
        self.statuses = {}  # version -> VersionStatus
        self.servables = {}  # version -> Servable; replaced, never mutated in place
        self.removed = False
        self.list_error = None  # why the base path could not be listed, last poll

    def aspired(self, present):
        """Versions the policy wants among `present` (latest: see `ModelManager.poll`)."""
        policy = self.config.version_policy
        if policy == "all":
            return set(present)
        if policy == "specific":
            return set(present) & set(self.config.versions)
        return set(sorted(present)[-self.config.num_versions :])


def _is_transient(error):
    """True when a load failed for lack of a resource (descriptors, memory)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS:
            return True
        if any(text in str(error) for text in _TRANSIENT_TEXT):
            return True
        error = error.__cause__ or error.__context__
    return False


class ModelManager:
    """Loads the versions each `ModelConfig` asks for and keeps them current.

    `poll()` lists every base path, loads aspired versions that are new (or whose
    directory changed since a failed load), and unloads versions that vanished or
    the policy no longer wants. Under the latest policy an older version keeps
    serving until a newer one is AVAILABLE, and under the others the newest
    loaded version keeps serving until an aspired one is (TF Serving's
    availability-preserving policy), so a corrupt export never takes a model down.
    A base path that cannot be listed (missing, EACCES, EMFILE, EIO, ...) changes
    nothing: what is loaded keeps serving and the next poll tries again; only a
    listing that succeeds without a version unloads it. Each version replays its
    `assets.extra/tf_serving_warmup_requests` before it becomes AVAILABLE.
    Servables are swapped by replacing a dict, so requests in flight keep the
    servable they resolved. Polls and `reload_config` are serialized.

    Args:
        configs: the `ModelConfig`s to serve.
        poll_wait_seconds: seconds between polls; 0 polls once at start.
            Defaults to 1.
        loader: `(path, name, version) -> Servable`, raising `LoadError`. Defaults
            to `Servable.load`.
        warmup: `(servable, path) -> int`, run after a load and before AVAILABLE,
            raising `LoadError` to fail the version; `False` disables it.
            Defaults to `None` (`kerasdl.serving.warmup.run_warmup`).
        config_file: the `--model_config_file` the configs came from; re-read
            every `config_file_poll_wait_seconds` and applied live when it
            changes. Defaults to `None`.
        config_file_poll_wait_seconds: TF Serving's
            `--model_config_file_poll_wait_seconds`; 0 never re-reads. Defaults
            to 0.
    """

    def __init__(
        self,
        configs,
        poll_wait_seconds=1.0,
        loader=None,
        warmup=None,
        config_file=None,
        config_file_poll_wait_seconds=0.0,
    ):
        if loader is None:
            from kerasdl.serving.servable import Servable

            loader = Servable.load
        if warmup is None:
            from kerasdl.serving.warmup import run_warmup

            warmup = run_warmup
        self._check_configs(configs)
        self.models = {config.name: ManagedModel(config) for config in configs}
        self.poll_wait_seconds = poll_wait_seconds
        self.loader = loader
        self.warmup = warmup or None
        self.config_file = config_file
        self.config_file_poll_wait_seconds = config_file_poll_wait_seconds
        self._lock = threading.Lock()  # status and servable swaps
        self._poll_lock = threading.RLock()  # one poll or reload at a time
        self._stop = threading.Event()
        self._thread = None
        self.first_poll_done = threading.Event()

    # --- lifecycle ------------------------------------------------------------------

    def start(self):
        """Polls in a background thread (loads happen there, off the event loop)."""
        self._thread = threading.Thread(
            target=self._run, name="kerasdl-model-poller", daemon=True
        )
        self._thread.start()

    def stop(self, timeout=10):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        config_wait = self.config_file_poll_wait_seconds if self.config_file else 0
        next_poll = next_config_read = time.monotonic()
        next_config_read += config_wait
        while not self._stop.is_set():
            now = time.monotonic()
            if config_wait > 0 and now >= next_config_read:
                self.reload_config_file()
                next_config_read = now + config_wait
            if next_poll is not None and now >= next_poll:
                try:
                    self.poll()
                except Exception:
                    logger.exception("model poll failed")
                self.first_poll_done.set()
                wait = self.poll_wait_seconds
                next_poll = now + wait if wait > 0 else None
            deadlines = [d for d in (next_poll,) if d is not None]
            if config_wait > 0:
                deadlines.append(next_config_read)
            if not deadlines:
                return
            self._stop.wait(max(0.0, min(deadlines) - time.monotonic()))

    # --- config ---------------------------------------------------------------------

    @staticmethod
    def _check_configs(configs):
        from kerasdl.serving.config import ConfigError, ModelConfig

        names = set()
        for config in configs:
            if not isinstance(config, ModelConfig):
                raise ConfigError(
                    f"expected ModelConfig objects, got {type(config).__name__}"
                )
            if config.name in names:
                raise ConfigError(
                    f"model {config.name!r} is listed more than once; "
                    "expected each name once in model_config_list"
                )
            names.add(config.name)

    def __contains__(self, name):
        """Whether `name` is a model of the current config (follows reloads)."""
        model = self.models.get(name)
        return model is not None and not model.removed

    def model_configs(self):
        """The `ModelConfig`s served now, in config order."""
        return [m.config for m in self.models.values() if not m.removed]

    def reload_config(self, model_configs):
        """Applies a new list of `ModelConfig`s live, as TF Serving's `ReloadConfig`.

        Models the list adds are loaded (this call returns once each has been
        tried), models it drops are unloaded, and changed policies and labels
        apply at once; a version that fails to load never replaces a working
        one. `None` (a config with nothing set) takes no action.

        Args:
            model_configs: the complete new list (`config.model_configs_from_proto`).

        Raises:
            ConfigError: the list is invalid (a duplicate name), or moves a label
                onto a version that is not AVAILABLE (`code` FAILED_PRECONDITION);
                nothing is changed.
            ReloadError: the config was applied, but a model it added has no
                AVAILABLE version yet.
        """
        from kerasdl.serving.config import ConfigError

        if model_configs is None:
            logger.info("taking no action for an empty model server config")
            return
        model_configs = list(model_configs)
        self._check_configs(model_configs)
        with self._poll_lock:
            current = self.models
            for config in model_configs:
                old = current.get(config.name)
                if old is None or old.removed:
                    continue
                for label, version in sorted(config.version_labels.items()):
                    before = old.config.version_labels.get(label)
                    if before not in (None, version) and version not in old.servables:
                        raise ConfigError(
                            f"Request to assign label {label!r} to version {version} "
                            f"of model {config.name!r}, which is not currently "
                            "available for inference; a label may only move to an "
                            "AVAILABLE version",
                            "FAILED_PRECONDITION",
                        )
            models, added = {}, []
            for config in model_configs:
                old = current.get(config.name)
                if old is None or old.removed:
                    old = ManagedModel(config)
                    added.append(old)
                elif old.config != config:
                    logger.info("model %s: new config %s", config.name, config)
                    old.config = config
                models[config.name] = old
            dropped = [
                m for n, m in current.items() if n not in models and not m.removed
            ]
            for name, model in current.items():
                models.setdefault(name, model)  # dropped ones keep their statuses
            self.models = models
            for model in dropped:
                model.removed = True
                for version in sorted(model.servables):
                    self._unload(model, version, "its model left the config")
            for model in models.values():
                if not model.removed:
                    self._poll_model(model)
        unavailable = [m for m in added if not m.servables]
        if unavailable:
            details = ", ".join(
                f"{m.config.name} (error: "
                + (
                    "; ".join(
                        s.error_message for s in m.statuses.values() if s.error_message
                    )
                    or f"no version found under {m.config.base_path}"
                )
                + ")"
                for m in unavailable
            )
            raise ReloadError(f"Some models did not become available: {{{details}}}")

    def reload_config_file(self):
        """Re-reads `config_file` and applies it if it changed; True if applied.

        A file that cannot be read or parsed, or a config that cannot be applied,
        is logged and changes nothing (TF Serving's `PollFilesystemAndReloadConfig`).
        """
        from kerasdl.serving.config import ConfigError, read_model_config_file

        if not self.config_file:
            return False
        try:
            configs = read_model_config_file(self.config_file)
        except ConfigError as error:
            logger.error("Failed to read ModelServerConfig file: %s", error)
            return False
        if configs is None or configs == self.model_configs():
            return False
        logger.info("%s changed: applying the new config", self.config_file)
        try:
            self.reload_config(configs)
        except ConfigError as error:
            logger.error("%s: cannot apply the new config: %s", self.config_file, error)
            return False
        except ReloadError as error:
            logger.error("%s: %s", self.config_file, error)
        return True

    # --- polling --------------------------------------------------------------------

    def poll(self):
        with self._poll_lock:
            for model in list(self.models.values()):
                if not model.removed:
                    self._poll_model(model)

    def _set_status(self, model, version, **fields):
        with self._lock:
            status = model.statuses.get(version) or VersionStatus(version)
            for key, value in fields.items():
                setattr(status, key, value)
            model.statuses = {**model.statuses, version: status}

    def _unload(self, model, version, reason):
        logger.info("unloading %s version %d (%s)", model.config.name, version, reason)
        self._set_status(model, version, state=UNLOADING)
        with self._lock:
            model.servables = {v: s for v, s in model.servables.items() if v != version}
        self._set_status(model, version, state=END)
        _freeze_garbage_collector(collect=True)

    def _list(self, model):
        """The versions present, or None when the base path could not be listed."""
        name, base = model.config.name, model.config.base_path
        try:
            present = list_versions(base)
        except OSError as error:
            if isinstance(error, BasePathNotFound):
                reason = f"could not find base path {base}"
            else:
                reason = f"could not list {base}: {error.strerror or error}"
            if reason != model.list_error:
                logger.warning(
                    "model %s: %s; keeping its %d loaded version(s), retrying at "
                    "the next poll",
                    name,
                    reason,
                    len(model.servables),
                )
            model.list_error = reason
            return None
        if model.list_error is not None:
            logger.info("model %s: %s can be listed again", name, base)
            model.list_error = None
        return present

    def _poll_model(self, model):
        name = model.config.name
        present = self._list(model)
        if present is None:
            return
        if not present and not model.statuses:
            logger.warning(
                "model %s: no versions found under %s", name, model.config.base_path
            )
        for version in list(model.servables):
            if version not in present:
                self._unload(model, version, "its directory is gone")
        for version, status in list(model.statuses.items()):
            if version not in present and status.state not in (END,):
                self._set_status(model, version, state=END)
        latest = model.config.version_policy == "latest"
        candidates = sorted(present if latest else model.aspired(present), reverse=True)
        serving = 0
        for version in candidates:
            if latest and serving >= model.config.num_versions:
                break  # newest versions that load win; older ones stand in until then
            stamp = _stamp(present[version])
            status = model.statuses.get(version)
            failed_unchanged = (
                status is not None
                and status.error_code != "OK"
                and status.stamp == stamp
            )
            if version not in model.servables and not failed_unchanged:
                self._load(model, version, present[version], stamp)
            serving += version in model.servables
        self._retire(model, present)

    def _load(self, model, version, path, stamp):
        from kerasdl.serving.servable import LoadError

        name = model.config.name
        logger.info("loading %s version %d from %s", name, version, path)
        self._set_status(
            model,
            version,
            state=LOADING,
            error_code="OK",
            error_message="",
            stamp=stamp,
        )
        try:
            servable = self.loader(path, name, version)
            if self.warmup is not None:
                self.warmup(servable, path)  # still LOADING: no request sees it yet
        except Exception as error:
            if isinstance(error, LoadError):
                logger.error("%s version %d failed to load: %s", name, version, error)
                code, message = error.code, str(error)
            else:
                logger.exception("%s version %d failed to load", name, version)
                code = "UNKNOWN"
                message = f"cannot load {path}: {type(error).__name__}: {error}"
            transient = _is_transient(error)
            if transient:
                logger.warning(
                    "%s version %d: the failure looks transient; retrying at the "
                    "next poll",
                    name,
                    version,
                )
            self._set_status(
                model,
                version,
                state=END,
                error_code=code,
                error_message=message[:1000],
                stamp=None if transient else stamp,
            )
            return
        with self._lock:
            model.servables = {**model.servables, version: servable}
        _freeze_garbage_collector()
        self._set_status(model, version, state=AVAILABLE)
        logger.info("%s version %d is AVAILABLE", name, version)

    def _retire(self, model, present):
        """Unloads versions the policy no longer wants, keeping one serving.

        Latest: the newest `num_versions` loaded versions stay. Otherwise, as TF
        Serving's AvailabilityPreservingPolicy: versions outside the policy are
        unloaded once an aspired version is AVAILABLE (or none is aspired);
        until then the newest of them keeps serving.
        """
        config = model.config
        loaded = sorted(model.servables)
        if config.version_policy == "latest":
            keep = set(loaded[-config.num_versions :])
        else:
            aspired = model.aspired(present)
            keep = aspired & set(loaded)
            if aspired and not keep and loaded:
                keep = {loaded[-1]}  # stands in until an aspired version loads
        for version in loaded:
            if version not in keep:
                self._unload(
                    model, version, f"not wanted by the {config.version_policy} policy"
                )

    # --- lookups --------------------------------------------------------------------

    def _model(self, name):
        model = self.models.get(name)
        if model is None:
            raise NotFoundError(f"Servable not found for request: Latest({name})")
        return model

    def resolve_version(self, name, version=None, label=None):
        """The version number a request means (404 if it cannot be served, 400 for
        an unknown label)."""
        model = self._model(name)
        if label is not None:
            if label not in model.config.version_labels:
                raise UnknownLabelError(f"Unrecognized servable version label: {label}")
            version = model.config.version_labels[label]
        if version is None:
            if not model.servables:
                raise NotFoundError(f"Servable not found for request: Latest({name})")
            return max(model.servables)
        return version

    def servable(self, name, version=None, label=None):
        """The servable for a request (404 when absent or not AVAILABLE)."""
        number = self.resolve_version(name, version, label)
        servable = self._model(name).servables.get(number)
        if servable is None:
            raise NotFoundError(
                f"Servable not found for request: Specific({name}, {number})"
            )
        return servable

    def status(self, name, version=None, label=None):
        """The `model_version_status` list TF Serving answers."""
        model = self._model(name)
        statuses = model.statuses
        if version is None and label is None:
            if not statuses:
                raise NotFoundError(f"Could not find any versions of model {name}")
            return [statuses[v].to_json() for v in sorted(statuses, reverse=True)]
        number = self.resolve_version(name, version, label)
        if number not in statuses:
            raise NotFoundError(f"Could not find version {number} of model {name}")
        return [statuses[number].to_json()]
