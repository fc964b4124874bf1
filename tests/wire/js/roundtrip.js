// kafkajs against a kafka-verify cluster: produce keyed records with headers (idempotent,
// acks=all), then read them back with a consumer group, and print what was read as JSON lines
// for the Python test to check byte for byte. Arguments: bootstrap topic count group.
const { Kafka, Partitioners, logLevel } = require("kafkajs");

const [bootstrap, topic, countText, groupId] = process.argv.slice(2);
const count = Number(countText);

// The same bytes as the Python test's value(i).
function value(i) {
  return Buffer.concat([Buffer.from(`value-${i}-`, "utf8"), Buffer.alloc(i % 50, i % 256)]);
}

async function main() {
  const kafka = new Kafka({ clientId: "kv-roundtrip", brokers: bootstrap.split(","), logLevel: logLevel.WARN });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner, // murmur2, as the Java client
  });
  await producer.connect();
  const batch = 500;
  for (let start = 0; start < count; start += batch) {
    const messages = [];
    for (let i = start; i < Math.min(count, start + batch); i++) {
      messages.push({ key: `key-${i % 17}`, value: value(i), headers: { index: String(i) } });
    }
    await producer.send({ topic, acks: -1, messages });
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let read = 0;
  const done = new Promise((resolve) => {
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        process.stdout.write(
          JSON.stringify({
            partition,
            offset: message.offset,
            key: message.key.toString("base64"),
            value: message.value.toString("base64"),
            index: message.headers.index.toString(),
          }) + "\n"
        );
        read += 1;
        if (read === count) resolve();
      },
    });
  });
  await done;
  await consumer.disconnect();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
