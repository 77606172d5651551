// fauxqs (an SQS emulator) on 127.0.0.1 only: its CLI and startFauxqs() bind 0.0.0.0.
// Usage: node server.mjs [PORT]   (0 or nothing: any free port). Prints {"address": ...}.
import { buildApp } from "fauxqs";

const app = buildApp({ logger: false });
const address = await app.listen({ port: Number(process.argv[2] ?? 0), host: "127.0.0.1" });
console.log(JSON.stringify({ address }));

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    await app.close();
    process.exit(0);
  });
}
