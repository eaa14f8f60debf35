// The birthday-paradox spray, both sides (punch-recipes.ts row sym-to-cone-spray; punch-strategy.ts for the odds).
// The symmetric dialer opens the plan's `sockets` fresh sockets, each sending openers to the cone (each gets its
// own mapping); the cone listener sends `probes` openers to distinct ports of the symmetric side's IP. The first
// probe that meets a mapping arrives on one spray socket: the dialer closes them all and dials from that socket's
// port, whose mapping the cone's filter now admits.
import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import type { TimerHandle } from "../contracts/index.ts";
import type { QuicLink } from "../transport/index.ts";
import { raceSignal } from "../transport/index.ts";
import { pause, sayHello, type AttemptRun, type OwnedSocket } from "./punch-attempt-io.ts";
import { isPunchPacketFrom, PUNCH_PACKET_TYPE } from "./punch-packet.ts";
import { sprayRoundPorts, type DialerRecipe, type SideOpeners } from "./punch-recipes.ts";

/** Symmetric side: many fresh sockets, each with its own mapping towards the cone side. */
export async function sprayDial(run: AttemptRun, recipe: DialerRecipe): Promise<{ link: QuicLink; owned: OwnedSocket }> {
  const { io, offer, signal, stats, clock } = run;
  if (recipe.sockets.kind !== "spray") throw new Error("a spray dialer needs spray sockets");
  const resendMs = recipe.sockets.resendMs;
  const plan = offer.spray!;
  const family = isIP(offer.ip) === 6 ? "udp6" : "udp4";
  const sockets = new Map<number, Socket>();
  let hit: ((port: number) => void) | undefined;
  const met = new Promise<number>((resolve) => (hit = resolve));
  let metPort: number | null = null;
  const closeOne = (s: Socket) =>
    new Promise<void>((r) => {
      try {
        s.close(() => r());
      } catch {
        r();
      }
    });
  const closeAll = () => Promise.all([...sockets.values()].map(closeOne)).then(() => sockets.clear());
  const sendFrom = (s: Socket) => {
    try {
      s.send(run.opener(PUNCH_PACKET_TYPE.open), offer.port, offer.ip);
      stats.sent++;
    } catch {
      // closing
    }
  };
  let resend: TimerHandle | undefined;
  let others: Promise<unknown> = Promise.resolve();
  try {
    // Each socket sends its first opener as soon as it is bound: its mapping exists from then on, so the cone
    // side's early probes have something to meet.
    const binding = Promise.all(
      Array.from({ length: plan.sockets }, async () => {
        const s = createSocket({ type: family });
        s.on("error", () => {});
        s.on("message", (buf) => {
          if (!isPunchPacketFrom(buf, { token: offer.peerToken, attemptId: offer.attemptId })) return;
          stats.received++;
          try {
            hit?.(s.address().port);
          } catch {
            // closed meanwhile: another socket met first
          }
        });
        await new Promise<void>((resolve, reject) => {
          s.once("error", reject);
          s.bind(0, io.bindHost === "::" && family === "udp4" ? "0.0.0.0" : io.bindHost, () => resolve());
        });
        if (metPort !== null || signal.aborted) return void (await closeOne(s));
        sockets.set(s.address().port, s);
        sendFrom(s);
      }),
    );
    binding.catch(() => {});
    resend = clock.setInterval(() => {
      for (const s of sockets.values()) sendFrom(s);
    }, resendMs);
    const port = await raceSignal(Promise.race([met, binding.then(() => met)]), signal);
    metPort = port;
    stats.hitPort = port;
    clock.clearInterval(resend);
    resend = undefined;
    // Free the port for the QUIC socket first; the NAT's mapping for (port → cone) stays, it is not tied to a
    // socket. The other sockets close meanwhile.
    const mine = sockets.get(port);
    sockets.delete(port);
    others = closeAll();
    if (mine) await closeOne(mine);
    const owned = await io.openSocket(port);
    try {
      const link = await owned.dial({ ip: offer.ip, port: offer.port }, { pinSpki: offer.peerSpki, timeoutMs: recipe.handshakeTimeoutMs, signal });
      await sayHello(io, link, offer, signal);
      return { link, owned };
    } catch (err) {
      await owned.release();
      throw err;
    }
  } finally {
    metPort ??= -1;
    clock.clearInterval(resend);
    await others;
    await closeAll();
  }
}

/** Cone side: openers to many ports of the symmetric side's IP, round after round, until its hello arrives. */
export async function sprayListen(run: AttemptRun, openers: Extract<SideOpeners, { kind: "to-spray-ports" }>): Promise<QuicLink> {
  const { io, offer, signal, stats, clock } = run;
  const plan = offer.spray!;
  const hello = raceSignal(io.waitHello(signal), signal);
  hello.catch(() => {});
  let done = false;
  void hello.finally(() => (done = true)).catch(() => {});
  const probing = (async () => {
    await pause(clock, openers.startDelayMs, signal);
    while (!done && !signal.aborted) {
      const order = sprayRoundPorts(plan);
      const t0 = clock.now();
      let i = 0;
      while (i < order.length && !done && !signal.aborted) {
        // Keep the pace by the clock, not by timer ticks (timers fire late under load).
        const due = Math.min(order.length, Math.floor((clock.now() - t0) / plan.probeIntervalMs) + 1);
        for (; i < due; i++) {
          try {
            io.main.sendRaw(run.opener(PUNCH_PACKET_TYPE.probe), order[i]!, offer.ip);
            stats.sent++;
            stats.probes++;
          } catch {
            // lost
          }
        }
        await pause(clock, Math.max(plan.probeIntervalMs, openers.minPauseMs), signal);
      }
    }
  })();
  try {
    return await hello;
  } finally {
    done = true;
    await probing.catch(() => {});
  }
}
