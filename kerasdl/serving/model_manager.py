"""Finds, loads, serves and unloads model versions, as TF Serving's manager does."""

import gc
import logging
import os
import threading

logger = logging.getLogger("kerasdl.serving")

# TF Serving's ModelVersionStatus.State names.
LOADING, AVAILABLE, UNLOADING, END = "LOADING", "AVAILABLE", "UNLOADING", "END"


class NotFoundError(Exception):
    """No such model, version or label: answered with HTTP 404."""


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


def list_versions(base_path):
    """Numeric sub-directories of `base_path`, skipping '.x' and 'tmp*' work dirs."""
    try:
        entries = os.listdir(base_path)
    except OSError:
        return {}
    versions = {}
    for entry in entries:
        if entry.startswith((".", "tmp")) or not entry.isdigit() or not entry.isascii():
            continue
        path = os.path.join(base_path, entry)
        if os.path.isdir(path):
            versions[int(entry)] = path
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
    """One configured model: the status of each version seen and the servables."""

    def __init__(self, config):
        self.config = config
        self.statuses = {}  # version -> VersionStatus
        self.servables = {}  # version -> Servable; replaced, never mutated in place

    def aspired(self, present):
        """Versions the policy wants among `present` (latest: see `ModelManager.poll`)."""
        policy = self.config.version_policy
        if policy == "all":
            return set(present)
        if policy == "specific":
            return set(present) & set(self.config.versions)
        return set(sorted(present)[-self.config.num_versions :])


class ModelManager:
    """Loads the versions each `ModelConfig` asks for and keeps them current.

    `poll()` lists every base path, loads aspired versions that are new (or whose
    directory changed since a failed load), and unloads versions that vanished or
    the policy no longer wants. Under the latest policy an older version keeps
    serving until a newer one is AVAILABLE, so a corrupt export never takes a model
    down. Servables are swapped by replacing a dict, so requests in flight keep
    the servable they resolved.

    Args:
        configs: the `ModelConfig`s to serve.
        poll_wait_seconds: seconds between polls; 0 polls once at start.
            Defaults to 1.
        loader: `(path, name, version) -> Servable`, raising `LoadError`. Defaults
            to `Servable.load`.
    """

    def __init__(self, configs, poll_wait_seconds=1.0, loader=None):
        if loader is None:
            from kerasdl.serving.servable import Servable

            loader = Servable.load
        self.models = {config.name: ManagedModel(config) for config in configs}
        self.poll_wait_seconds = poll_wait_seconds
        self.loader = loader
        self._lock = threading.Lock()
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
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:
                logger.exception("model poll failed")
            self.first_poll_done.set()
            if self.poll_wait_seconds <= 0:
                return
            self._stop.wait(self.poll_wait_seconds)

    # --- polling --------------------------------------------------------------------

    def poll(self):
        for model in self.models.values():
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

    def _poll_model(self, model):
        name = model.config.name
        present = list_versions(model.config.base_path)
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
        except LoadError as error:
            logger.error("%s version %d failed to load: %s", name, version, error)
            self._set_status(
                model,
                version,
                state=END,
                error_code=error.code,
                error_message=str(error),
            )
            return
        except Exception as error:
            logger.exception("%s version %d failed to load", name, version)
            self._set_status(
                model,
                version,
                state=END,
                error_code="UNKNOWN",
                error_message=f"cannot load {path}: {type(error).__name__}: {error}"[
                    :1000
                ],
            )
            return
        with self._lock:
            model.servables = {**model.servables, version: servable}
        _freeze_garbage_collector()
        self._set_status(model, version, state=AVAILABLE)
        logger.info("%s version %d is AVAILABLE", name, version)

    def _retire(self, model, present):
        """Unloads versions the policy no longer wants, keeping at least one serving."""
        config = model.config
        loaded = sorted(model.servables)
        if config.version_policy == "latest":
            keep = set(loaded[-config.num_versions :])
        else:
            keep = model.aspired(present) & set(loaded)
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
        """The version number a request means (404 if it cannot be served)."""
        model = self._model(name)
        if label is not None:
            if label not in model.config.version_labels:
                raise NotFoundError(f"Unrecognized servable version label: {label}")
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
