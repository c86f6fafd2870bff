"""st2-rs: the StackStorm API Python actions and sensors import, talking to the engine.

The engine starts ``python -u main.py action|sensor`` with file descriptor 0 connected to a
socket. Both sides exchange one JSON object per line on it:

* engine -> child, first line: what to run (``pack``, ``file``, ``parameters``/``config`` ...);
* child -> engine: ``{"id": n, "op": "get"|"set"|"delete"|"list"|"dispatch", ...}``, each
  answered by ``{"id": n, "ok": value}`` or ``{"id": n, "error": "message"}``;
* child -> engine, last: ``{"op": "result", "status": bool|null, "result": ...}`` (actions).

File descriptors 1 and 2 stay the action's own stdout and stderr, so output of processes the
action starts is captured too; fd 0 is replaced by /dev/null once the socket is taken.
"""
