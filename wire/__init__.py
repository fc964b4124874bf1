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
"""
