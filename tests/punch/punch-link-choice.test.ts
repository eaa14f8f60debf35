// Which of two live links to one peer a punch client keeps: the newer after a re-mapping or a restart of the
// peer, the same one at both ends when the two sides punched each other at once.
import { expect, test } from "bun:test";
import { newerLinkWins } from "../../src/punch/punch-result.ts";

const A = "a".repeat(64);
const B = "b".repeat(64);
const RUN1 = "1".repeat(64);
const RUN2 = "2".repeat(64);

test("a link that comes up well after the old one replaces it (the peer's mapping changed)", () => {
  expect(newerLinkWins({ role: "dial", at: 0, peerSpki: RUN1 }, { role: "listen", at: 60_000, peerSpki: RUN1 }, { self: A, peer: B })).toBe(true);
  expect(newerLinkWins({ role: "listen", at: 0, peerSpki: RUN1 }, { role: "dial", at: 60_000, peerSpki: RUN1 }, { self: B, peer: A })).toBe(true);
});

test("crossing punches: both ends keep the link the smaller id dialled, whichever finished first at each end", () => {
  // Link X: A dialled. Link Y: B dialled. At A, X came first; at B, Y came first.
  const atA = newerLinkWins({ role: "dial", at: 0, peerSpki: RUN1 }, { role: "listen", at: 300, peerSpki: RUN1 }, { self: A, peer: B });
  const atB = newerLinkWins({ role: "dial", at: 0, peerSpki: RUN2 }, { role: "listen", at: 200, peerSpki: RUN2 }, { self: B, peer: A });
  expect(atA).toBe(false); // A keeps X (A < B dialled it)
  expect(atB).toBe(true); // B takes X, which came second there
});

test("a peer that restarted (a new run certificate) wins at once: the old link is dead even if it looks open", () => {
  // Within the crossing window and with roles that would keep the old link in a crossing.
  expect(newerLinkWins({ role: "dial", at: 0, peerSpki: RUN1 }, { role: "listen", at: 300, peerSpki: RUN2 }, { self: A, peer: B })).toBe(true);
});
