"""The real host: the reference broker's nodes served over TCP and the Kafka protocol.

See DESIGN.md, "One broker, two hosts". `wire` imports `impl` and `model` and
nothing else of the suite; `impl` never imports `wire`.
"""
