"""Runs one Python action: load the class, call ``run(**parameters)``, report the result."""

import json
import sys

from st2rs.channel import Channel
from st2rs.datastore import DatastoreService, SYSTEM_SCOPE
from st2rs.loader import implements, load_failure, load_module
from st2rs.logs import action_logger
from st2common.runners.utils import PackConfigDict

# The exit code StackStorm uses for a status that is not a boolean.
INVALID_STATUS_EXIT_CODE = 220


class ActionService(object):
    """``self.action_service`` of an action: datastore access."""

    def __init__(self, wrapper):
        self._action_wrapper = wrapper
        self._datastore_service = None

    @property
    def datastore_service(self):
        if self._datastore_service is None:
            w = self._action_wrapper
            self._datastore_service = DatastoreService(
                w._channel,
                w._pack,
                w._class_name,
                lambda: action_logger(w._class_name, w._log_level),
            )
        return self._datastore_service

    def get_user_info(self):
        return self.datastore_service.get_user_info()

    def list_values(self, local=True, prefix=None, limit=None, offset=None):
        return self.datastore_service.list_values(
            local=local, prefix=prefix, limit=limit, offset=offset
        )

    def get_value(self, name, local=True, scope=SYSTEM_SCOPE, decrypt=False):
        return self.datastore_service.get_value(
            name=name, local=local, scope=scope, decrypt=decrypt
        )

    def set_value(
        self, name, value, ttl=None, local=True, scope=SYSTEM_SCOPE, encrypt=False
    ):
        return self.datastore_service.set_value(
            name=name, value=value, ttl=ttl, local=local, scope=scope, encrypt=encrypt
        )

    def delete_value(self, name, local=True, scope=SYSTEM_SCOPE):
        return self.datastore_service.delete_value(name=name, local=local, scope=scope)


class ActionWrapper(object):
    """What StackStorm's ``PythonActionWrapper`` holds; actions sometimes peek at it."""

    def __init__(self, channel, job):
        self._channel = channel
        self._pack = job["pack"]
        self._file_path = job["file"]
        self._parameters = job.get("parameters") or {}
        self._config = job.get("config") or {}
        self._user = job.get("user")
        self._log_level = job.get("log_level") or "debug"
        self._class_name = None

    def _action_class(self):
        from st2common.runners.base_action import Action

        try:
            module = load_module(self._file_path)
        except Exception as e:
            raise load_failure("action", self._file_path, e)
        classes = sorted(
            (name, value)
            for name, value in vars(module).items()
            if isinstance(value, type) and value.__module__ == module.__name__
        )
        for _, klass in classes:
            if implements(klass, Action):
                return klass
        raise Exception(
            'File "%s" has no action class (a class with a run() method).'
            % (self._file_path,)
        )

    def run(self):
        klass = self._action_class()
        self._class_name = klass.__name__
        service = ActionService(self)
        try:
            action = klass(config=self._config, action_service=service)
        except TypeError as e:
            if "action_service" not in str(e):
                raise
            action = klass(config=self._config)
            action.action_service = service
            if isinstance(action.config, PackConfigDict):
                action.config = PackConfigDict(self._pack, action.config)
        output = action.run(**self._parameters)
        status = None
        result = output
        if isinstance(output, tuple) and len(output) == 2:
            status, result = output
        if status is not None and not isinstance(status, bool):
            sys.stderr.write(
                "Status returned from the action run() method must either be True or False, "
                "got: %s\nReturn (True, result) or (False, result), or a list instead of a "
                "two-item tuple.\n" % (status,)
            )
            sys.stderr.flush()
            sys.exit(INVALID_STATUS_EXIT_CODE)
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            result = str(result)
        sys.stdout.flush()
        self._channel.send({"op": "result", "status": status, "result": result})


def main():
    channel = Channel()
    job = channel.receive()
    ActionWrapper(channel, job).run()
