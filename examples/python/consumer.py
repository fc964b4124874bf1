"""Read the `greetings` topic from the beginning as group `greeters`, with kafka-python.

It commits what it has read, so a second run starts where the first stopped.

    python examples/python/consumer.py [--bootstrap 127.0.0.1:9092] [--idle-s 5]
"""

import argparse

from kafka import KafkaConsumer

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--bootstrap", default="127.0.0.1:9092")
parser.add_argument("--topic", default="greetings")
parser.add_argument("--group", default="greeters")
parser.add_argument(
    "--idle-s", type=float, default=5.0, help="stop after this long with nothing new"
)
args = parser.parse_args()

consumer = KafkaConsumer(
    args.topic,
    bootstrap_servers=args.bootstrap,
    group_id=args.group,
    auto_offset_reset="earliest",  # a new group starts at the oldest record
    enable_auto_commit=False,  # commit by hand, after the records are printed
    consumer_timeout_ms=int(args.idle_s * 1000),
)
read = 0
for message in consumer:
    print(
        f"{message.topic}/{message.partition} offset {message.offset}:"
        f" {message.key.decode()} -> {message.value.decode()}"
    )
    read += 1
    consumer.commit()
print(f"read {read} records")
consumer.close()
