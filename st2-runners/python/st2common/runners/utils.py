"""Helpers of Python actions: the action logger and the config dict."""

from st2rs.logs import action_logger


class PackConfigDict(dict):
    """A pack config whose missing keys raise an error naming the pack and its config file."""

    def __init__(self, pack_name, *args):
        super(PackConfigDict, self).__init__(*args)
        self._pack_name = pack_name

    def __getitem__(self, key):
        try:
            return super(PackConfigDict, self).__getitem__(key)
        except KeyError:
            raise ValueError(
                'The config of pack "%s" has no value for "%s": set it in the pack\'s config '
                "file (configs/%s.yaml) or give it a default in config.schema.yaml"
                % (self._pack_name, key, self._pack_name)
            )


def get_logger_for_python_runner_action(action_name, log_level="debug"):
    """The logger of a Python action (stderr, ``actions.python.<ClassName>``)."""
    return action_logger(action_name, log_level)
