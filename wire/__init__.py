"""The real host: the reference broker's nodes served over TCP and the Kafka protocol.

See DESIGN.md, "One broker, two hosts". `wire` imports `impl` and `model` and
nothing else of the suite; `impl` never imports `wire`.

- `frames.py`: Kafka's length-prefixed frames and the request header (v0-v2).
- `apis.py`: the APIs served, their versions, and kio's codecs for their bodies.
- `schema_walk.py`: checks a body's lengths and counts before kio reads it.
- `batches.py`: record batches v2 by hand (CRC32C, offsets, records).
- `node_codec.py`: the nodes' own messages as tagged JSON in node frames.
- `server.py`: an asyncio server that answers ApiVersions and hands the rest on.
- `errors.py`: `FrameError`, the one exception of a malformed Kafka frame.
- `host.py`: one node on an asyncio loop (`ZkHost`, and `BrokerHost`, which is
  the front end's `NodePort`: what the front end sees of its broker).
- `frontend.py`: the Kafka APIs, translated into the broker's own messages and back.
- `storage.py`: `DurableLog`, a replica's log in segment files that survive kill -9.
- `zk_state.py`: the coordination node's state file.
- `node_client.py`: one request to a node's port, as a peer sends it.
- `node.py`: one node's process; `cluster_file.py`: the cluster's config.json.
- `cluster.py`: `kafka-verify serve`, one process per node.
"""
