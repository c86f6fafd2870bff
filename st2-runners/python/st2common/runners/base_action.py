"""The base class of Python actions."""

import abc

from st2common.runners.utils import PackConfigDict
from st2rs.logs import action_logger

__all__ = ["Action"]


class Action(object, metaclass=abc.ABCMeta):
    """Base class of Python actions: ``run(**parameters)`` does the work.

    ``self.config`` is the pack's config (schema defaults included), ``self.action_service``
    reads and writes datastore keys, ``self.logger`` logs to stderr.
    """

    description = None

    def __init__(self, config=None, action_service=None):
        self.action_service = action_service
        wrapper = getattr(action_service, "_action_wrapper", None)
        self._log_level = getattr(wrapper, "_log_level", "debug")
        pack_name = getattr(wrapper, "_pack", "unknown")
        self.config = PackConfigDict(pack_name, config or {})

    @property
    def logger(self):
        logger = self.__dict__.get("_logger")
        if logger is None:
            logger = action_logger(
                self.__class__.__name__, self.__dict__.get("_log_level", "debug")
            )
            self.__dict__["_logger"] = logger
        return logger

    @logger.setter
    def logger(self, value):
        self.__dict__["_logger"] = value

    @abc.abstractmethod
    def run(self, **kwargs):
        pass
