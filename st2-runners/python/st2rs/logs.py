"""Loggers that write to stderr, created on first use (``logging`` is slow to import)."""

import sys

_LOGGERS = {}


def action_logger(action_name, log_level="debug"):
    """The logger of a Python action: ``actions.python.<ClassName>`` on stderr."""
    name = "actions.python.%s" % (action_name,)
    logger = _LOGGERS.get(name)
    if logger is None:
        import logging

        level = getattr(logging, str(log_level).upper(), logging.DEBUG)
        if not isinstance(level, int):
            level = logging.DEBUG
        logger = logging.getLogger(name)
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter("%(name)-12s: %(levelname)-8s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level)
        _LOGGERS[name] = logger
    return logger


def sensor_logger(pack, class_name, name=None):
    """A logger under ``SensorWrapper.<pack>.<ClassName>`` on stderr."""
    import logging

    root_name = "SensorWrapper.%s.%s" % (pack, class_name)
    root = _LOGGERS.get(root_name)
    if root is None:
        root = logging.getLogger(root_name)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [-] %(message)s")
        )
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        _LOGGERS[root_name] = root
    if name is None:
        return root
    logger = logging.getLogger("%s.%s" % (root_name, name))
    logger.propagate = True
    return logger
