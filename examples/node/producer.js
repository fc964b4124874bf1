// Send a few greetings to the `greetings` topic with kafkajs, and wait for every ack.
//
//     node examples/node/producer.js [bootstrap] [count]
const { Kafka, Partitioners, logLevel } = require("kafkajs");

const bootstrap = process.argv[2] || "127.0.0.1:9092";
const count = Number(process.argv[3] || 10);

async function main() {
  const kafka = new Kafka({ clientId: "greeter", brokers: bootstrap.split(","), logLevel: logLevel.WARN });
  // An idempotent producer: a retry never writes a record twice (kafkajs then sends acks=all).
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner, // murmur2, as the Java client
  });
  await producer.connect();
  for (let i = 0; i < count; i++) {
    const [result] = await producer.send({
      topic: "greetings",
      acks: -1,
      messages: [{ key: `user-${i % 3}`, value: `hello ${i}`, headers: { "sent-by": "examples/node/producer.js" } }],
    });
    console.log(`sent hello ${i} to ${result.topicName}/${result.partition} at offset ${result.baseOffset}`);
  }
  await producer.disconnect();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
