import { holdLabLock } from "../../tests/lab/lab-lock.ts";
import { labUp, type LabClass } from "../../tests/lab/lab.ts";
import { punchOnce, removeAppHomes, resetRestrictedConeSeen, startPunchNode, startWaiter } from "./punch-lab.ts";
const release = await holdLabLock();
labUp();
const node = await startPunchNode();
const pairs: [LabClass, LabClass][] = process.argv[2]!.split(",").map((p) => p.split(":") as [LabClass, LabClass]);
const runs = Number(process.argv[3] ?? 3);
const need = [...new Set(pairs.map((p) => p[1]))];
const waiters = new Map((await Promise.all(need.map((c) => startWaiter(c, { server: node.server })))).map((w) => [w.cls, w]));
for (const [from, to] of pairs) {
  const res: string[] = [];
  for (let i = 0; i < runs; i++) {
    resetRestrictedConeSeen();
    const r = await punchOnce(from, { server: node.server, targetId: waiters.get(to)!.id, name: `p-${from}-${i}` });
    res.push(r.result?.connected ? `ok ${Math.round(r.result.elapsedMs as number)} ${r.result.strategy} ${r.result.role}` : `FAIL ${String(r.result?.strategy)} ${String(r.result?.reason ?? r.stderr.slice(-300))}`);
  }
  console.log(`${from} → ${to}:\n  ${res.join("\n  ")}`);
}
await Promise.all([...waiters.values()].map((w) => w.stop()));
await node.stop();
removeAppHomes();
await release();
