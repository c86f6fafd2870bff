"""A polling sensor written against StackStorm's sensor API.

Every poll it dispatches `hello_st2.heartbeat` with a running count, and remembers the count in
the datastore so a restart continues where it stopped.
"""

from st2reactor.sensor.base import PollingSensor


class HeartbeatSensor(PollingSensor):
    def setup(self):
        stored = self.sensor_service.get_value("count")
        self._count = int(stored) if stored else 0

    def poll(self):
        self._count += 1
        self.sensor_service.set_value("count", str(self._count))
        self.sensor_service.dispatch(
            trigger="hello_st2.heartbeat", payload={"count": self._count}
        )

    def cleanup(self):
        pass

    def add_trigger(self, trigger):
        pass

    def update_trigger(self, trigger):
        pass

    def remove_trigger(self, trigger):
        pass
