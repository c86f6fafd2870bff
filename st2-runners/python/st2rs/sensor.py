"""Runs one Python sensor: load the class, ``setup()``, ``run()``, ``cleanup()`` at the end."""

import signal
import sys

from st2rs.channel import Channel
from st2rs.datastore import DatastoreService, SYSTEM_SCOPE
from st2rs.loader import implements, load_failure, load_module
from st2rs.logs import sensor_logger


class SensorService(object):
    """``self.sensor_service`` of a sensor: dispatch, loggers, datastore access."""

    def __init__(self, channel, pack, class_name):
        self._channel = channel
        self._pack = pack
        self._class_name = class_name
        self._datastore_service = DatastoreService(
            channel, pack, class_name, lambda: sensor_logger(pack, class_name)
        )

    @property
    def datastore_service(self):
        return self._datastore_service

    def get_logger(self, name):
        return sensor_logger(self._pack, self._class_name, name)

    def get_user_info(self):
        return self._datastore_service.get_user_info()

    def dispatch(self, trigger, payload=None, trace_tag=None):
        try:
            self._channel.request(
                "dispatch", trigger=trigger, payload=payload, trace_tag=trace_tag
            )
        except Exception as e:
            sensor_logger(self._pack, self._class_name).error(
                'Failed to dispatch trigger "%s": %s', trigger, e
            )

    def dispatch_with_context(self, trigger, payload=None, trace_context=None):
        tag = getattr(trace_context, "trace_tag", None)
        if tag is None and isinstance(trace_context, dict):
            tag = trace_context.get("trace_tag")
        return self.dispatch(trigger, payload=payload, trace_tag=tag)

    def list_values(self, local=True, prefix=None, limit=None, offset=None):
        return self._datastore_service.list_values(
            local=local, prefix=prefix, limit=limit, offset=offset
        )

    def get_value(self, name, local=True, scope=SYSTEM_SCOPE, decrypt=False):
        return self._datastore_service.get_value(
            name=name, local=local, scope=scope, decrypt=decrypt
        )

    def set_value(
        self, name, value, ttl=None, local=True, scope=SYSTEM_SCOPE, encrypt=False
    ):
        return self._datastore_service.set_value(
            name=name, value=value, ttl=ttl, local=local, scope=scope, encrypt=encrypt
        )

    def delete_value(self, name, local=True, scope=SYSTEM_SCOPE):
        return self._datastore_service.delete_value(name=name, local=local, scope=scope)


def _stop(signum, frame):
    raise SystemExit(0)


def main():
    from st2reactor.sensor.base import BaseSensor, PollingSensor

    channel = Channel()
    job = channel.receive()
    pack, file_path, class_name = job["pack"], job["file"], job["class_name"]
    try:
        module = load_module(file_path)
    except Exception as e:
        raise load_failure("sensor", file_path, e)
    klass = getattr(module, class_name, None)
    if not isinstance(klass, type):
        raise ValueError(
            'Sensor file "%s" has no class named "%s"' % (file_path, class_name)
        )
    if not implements(klass, BaseSensor):
        raise TypeError(
            'Sensor class "%s" does not implement every method of its base class '
            "(setup, run, cleanup, add_trigger, update_trigger, remove_trigger%s)"
            % (class_name, ", poll" if issubclass(klass, PollingSensor) else "")
        )
    kwargs = {
        "sensor_service": SensorService(channel, pack, class_name),
        "config": job.get("config") or {},
    }
    poll_interval = job.get("poll_interval")
    if poll_interval and issubclass(klass, PollingSensor):
        kwargs["poll_interval"] = poll_interval
    sensor = klass(**kwargs)
    signal.signal(signal.SIGTERM, _stop)
    log = sensor_logger(pack, class_name)
    sensor.setup()
    try:
        sensor.run()
    except Exception as e:
        log.warning('Sensor "%s" run method raised an exception: %s', class_name, e)
        raise
    finally:
        try:
            sensor.cleanup()
        except Exception as e:
            log.warning('Sensor "%s" cleanup raised an exception: %s', class_name, e)
    sys.stdout.flush()
