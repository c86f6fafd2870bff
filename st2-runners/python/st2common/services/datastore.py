"""Datastore services of actions and sensors."""

from st2rs.datastore import DatastoreService, KeyValuePair  # noqa: F401

ActionDatastoreService = DatastoreService
SensorDatastoreService = DatastoreService
