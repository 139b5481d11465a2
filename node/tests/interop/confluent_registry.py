"""Confluent's own Python client against a Cairn node's schema registry.

Run by node/tests/schema_registry.rs (`confluent_python_client_interop`) with the registry URL of
one node of a running three-node cluster and a topic name; prints one JSON line with what the
Rust test checks further (the serializer's bytes, hex). Exits non-zero on the first surprise.
"""

import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

url, topic = sys.argv[1], sys.argv[2]
subject = f"{topic}-value"

V1 = {
    "type": "record",
    "name": "OrderPlaced",
    "namespace": "shop",
    "fields": [{"name": "order_id", "type": "string"}, {"name": "amount", "type": "long"}],
}
# Adds a field with a default: BACKWARD compatible.
V2 = dict(V1, fields=V1["fields"] + [{"name": "currency", "type": "string", "default": "EUR"}])
# Changes a field's type: not compatible.
BAD = dict(V1, fields=[{"name": "order_id", "type": "long"}, {"name": "amount", "type": "long"}])


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


client = SchemaRegistryClient({"url": url})

id1 = client.register_schema(subject, Schema(json.dumps(V1), "AVRO"))
check(isinstance(id1, int) and id1 > 0, f"register v1 gave id {id1!r}")
check(client.register_schema(subject, Schema(json.dumps(V1), "AVRO")) == id1, "registering v1 again gives its id")

# A fresh client (no cache) fetches by id and by version.
fresh = SchemaRegistryClient({"url": url})
got = fresh.get_schema(id1)
check(json.loads(got.schema_str) == V1, f"get_schema({id1}) gave {got.schema_str}")
check(got.schema_type == "AVRO", f"schema type {got.schema_type}")
latest = fresh.get_latest_version(subject)
check(latest.version == 1 and latest.schema_id == id1, f"latest version {latest}")
check(subject in fresh.get_subjects(), "get_subjects lists the subject")
check(fresh.get_versions(subject) == [1], "get_versions")

check(fresh.test_compatibility(subject, Schema(json.dumps(V2), "AVRO")) is True, "v2 is compatible")
check(fresh.test_compatibility(subject, Schema(json.dumps(BAD), "AVRO")) is False, "BAD is not compatible")

try:
    fresh.register_schema(subject, Schema(json.dumps(BAD), "AVRO"))
    check(False, "registering BAD should fail")
except SchemaRegistryError as e:
    check(e.http_status_code == 409, f"BAD: HTTP {e.http_status_code} {e}")
    incompatible = {"http_status": e.http_status_code, "error_code": e.error_code}
check(fresh.get_versions(subject) == [1], "the refused registration changed nothing")

id2 = fresh.register_schema(subject, Schema(json.dumps(V2), "AVRO"))
check(id2 != id1 and fresh.get_versions(subject) == [1, 2], "v2 registered as version 2")

try:
    fresh.get_latest_version("no-such-subject")
    check(False, "an unknown subject should fail")
except SchemaRegistryError as e:
    check(e.http_status_code == 404 and e.error_code == 40401, f"unknown subject: {e.http_status_code} {e.error_code}")

fresh.set_compatibility(subject_name=subject, level="FULL")
check(fresh.get_compatibility(subject_name=subject) == "FULL", "subject level FULL")

# The Avro serializer (auto-registering, TopicNameStrategy) frames its bytes with id2.
serializer = AvroSerializer(client, json.dumps(V2))
value = serializer({"order_id": "o-1", "amount": 1250, "currency": "USD"}, SerializationContext(topic, MessageField.VALUE))
check(value[0] == 0 and int.from_bytes(value[1:5], "big") == id2, f"wire format header {value[:5].hex()}")

print(json.dumps({"id1": id1, "id2": id2, "incompatible": incompatible, "value_hex": value.hex()}))
