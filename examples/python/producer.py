"""Send a few greetings to the `greetings` topic with kafka-python, and wait for every ack.

python examples/python/producer.py [--bootstrap 127.0.0.1:9092] [--count 10]
"""

import argparse

from kafka import KafkaProducer

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--bootstrap", default="127.0.0.1:9092")
parser.add_argument("--topic", default="greetings")
parser.add_argument("--count", type=int, default=10)
args = parser.parse_args()

producer = KafkaProducer(
    bootstrap_servers=args.bootstrap,
    acks="all",  # wait until every in-sync replica has the record
    enable_idempotence=True,  # a retry never writes a record twice
)
for i in range(args.count):
    future = producer.send(
        args.topic,
        key=f"user-{i % 3}".encode(),
        value=f"hello {i}".encode(),
        headers=[("sent-by", b"examples/python/producer.py")],
    )
    metadata = future.get(timeout=30)
    print(f"sent hello {i} to {metadata.topic}/{metadata.partition} at offset {metadata.offset}")
producer.flush()
producer.close()
