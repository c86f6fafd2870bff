"""Datastore access for actions and sensors (StackStorm's ``*DatastoreService``)."""

SYSTEM_SCOPE = "system"
FULL_SYSTEM_SCOPE = "st2kv.system"
SEPARATOR = ":"


class KeyValuePair(object):
    """One key as ``list_values`` returns it."""

    def __init__(self, fields):
        self.id = fields.get("name")
        self.name = fields.get("name")
        self.value = fields.get("value")
        self.scope = fields.get("scope", FULL_SYSTEM_SCOPE)
        self.secret = fields.get("secret", False)
        self.encrypted = fields.get("encrypted", False)
        self.ttl = fields.get("ttl")
        self.expire_timestamp = fields.get("expire_timestamp")

    def __repr__(self):
        return "<KeyValuePair name=%s>" % (self.name,)


def _check_scope(scope):
    if scope not in (SYSTEM_SCOPE, FULL_SYSTEM_SCOPE):
        raise ValueError("Scope %s is unsupported." % scope)


class DatastoreService(object):
    """Keys of system scope; ``local`` names are ``<pack>.<ClassName>:<name>``."""

    def __init__(self, channel, pack_name, class_name, logger):
        self._channel = channel
        self._pack_name = pack_name
        self._class_name = class_name
        self._logger_source = logger

    @property
    def _logger(self):
        return self._logger_source()

    def _prefix(self):
        return "%s.%s%s" % (self._pack_name, self._class_name, SEPARATOR)

    def _full_name(self, name, local):
        return self._prefix() + name if local else name

    def get_user_info(self):
        raise NotImplementedError("get_user_info is not available in st2-rs")

    def list_values(self, local=True, prefix=None, limit=None, offset=0):
        key_prefix = self._prefix() + (prefix or "") if local else prefix
        items = self._channel.request(
            "list", prefix=key_prefix, limit=limit, offset=offset or 0
        )
        return [KeyValuePair(item) for item in items or []]

    def get_value(self, name, local=True, scope=SYSTEM_SCOPE, decrypt=False):
        _check_scope(scope)
        name = self._full_name(name, local)
        try:
            return self._channel.request("get", name=name, decrypt=bool(decrypt))
        except Exception as e:
            self._logger.exception(
                "Exception retrieving value from datastore (name=%s): %s", name, e
            )
            return None

    def set_value(
        self, name, value, ttl=None, local=True, scope=SYSTEM_SCOPE, encrypt=False
    ):
        _check_scope(scope)
        name = self._full_name(name, local)
        ttl = int(ttl) if ttl else None
        self._channel.request(
            "set", name=name, value=str(value), ttl=ttl, encrypt=bool(encrypt)
        )
        return True

    def delete_value(self, name, local=True, scope=SYSTEM_SCOPE):
        _check_scope(scope)
        name = self._full_name(name, local)
        try:
            return bool(self._channel.request("delete", name=name))
        except Exception as e:
            self._logger.exception(
                "Exception deleting value from datastore (name=%s): %s", name, e
            )
            return False
