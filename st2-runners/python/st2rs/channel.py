"""The line-delimited JSON channel to the engine (see the package docstring)."""

import json
import os
import _thread


class ChannelError(Exception):
    """The engine refused a request or went away."""


class Channel(object):
    """Requests to the engine over the socket the engine passed as file descriptor 0."""

    def __init__(self):
        self._fd = os.dup(0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        self._reader = os.fdopen(os.dup(self._fd), "rb")
        self._lock = _thread.allocate_lock()
        self._next_id = 0

    def _write(self, message):
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _read(self):
        line = self._reader.readline()
        if not line:
            raise ChannelError("the engine closed the channel")
        return json.loads(line)

    def receive(self):
        """The next message from the engine (the first one says what to run)."""
        return self._read()

    def send(self, message):
        """Send a message that expects no answer."""
        with self._lock:
            self._write(message)

    def request(self, op, **fields):
        """Send request ``op`` and return the engine's answer; ``ChannelError`` on refusal."""
        with self._lock:
            self._next_id += 1
            message = dict(fields)
            message["op"] = op
            message["id"] = self._next_id
            self._write(message)
            answer = self._read()
        if "error" in answer:
            raise ChannelError(answer["error"])
        return answer.get("ok")
