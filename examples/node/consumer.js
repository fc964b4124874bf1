// Read the `greetings` topic from the beginning as group `node-greeters`, with kafkajs.
// It stops after a few seconds with nothing new, and commits what it read.
//
//     node examples/node/consumer.js [bootstrap] [idle seconds]
const { Kafka, logLevel } = require("kafkajs");

const bootstrap = process.argv[2] || "127.0.0.1:9092";
const idleMs = Number(process.argv[3] || 5) * 1000;

async function main() {
  const kafka = new Kafka({ clientId: "greeter", brokers: bootstrap.split(","), logLevel: logLevel.WARN });
  const consumer = kafka.consumer({ groupId: "node-greeters" });
  await consumer.connect();
  await consumer.subscribe({ topics: ["greetings"], fromBeginning: true });
  let read = 0;
  let last = Date.now();
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      console.log(`${topic}/${partition} offset ${message.offset}: ${message.key} -> ${message.value}`);
      read += 1;
      last = Date.now();
    },
  });
  while (Date.now() - last < idleMs) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  console.log(`read ${read} records`);
  await consumer.disconnect();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
