// One kafkajs consumer-group member against a kafka-verify cluster, for the Python group test.
// It prints JSON lines: {"owns": [partitions]} when its assignment changes (empty while the
// group rebalances), and {"partition", "offset", "value"} for each record it read (the value
// base64). Each record's offset is committed before the next is handed over. SIGTERM makes it
// leave the group (LeaveGroup) and exit. Arguments: bootstrap topic group clientId.
const { Kafka, logLevel } = require("kafkajs");

const [bootstrap, topic, groupId, clientId] = process.argv.slice(2);

function emit(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

async function main() {
  const kafka = new Kafka({ clientId, brokers: bootstrap.split(","), logLevel: logLevel.WARN });
  const consumer = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 1000 });
  consumer.on(consumer.events.REBALANCING, () => emit({ owns: [] }));
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    emit({ owns: event.payload.memberAssignment[topic] || [] });
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await consumer.disconnect(); // commits nothing more; leaves the group
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  await consumer.run({
    autoCommit: true,
    autoCommitThreshold: 1, // commit after every record, as the other clients' members do
    eachMessage: async ({ partition, message }) => {
      emit({ partition, offset: Number(message.offset), value: message.value.toString("base64") });
    },
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
