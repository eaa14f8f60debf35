// The hosts a node's UDP socket talked to lately, which its own NAT probe must not take NewHost evidence from.
import { expect, test } from "bun:test";
import { RECENT_CONTACT_MS, RecentContacts } from "../../src/nat/recent-contacts.ts";

test("an open link's host is contacted for as long as the link lives, and for the window after it closes", () => {
  const c = new RecentContacts();
  c.linkUp("198.51.100.7", true);
  expect(c.list(0)).toEqual(["198.51.100.7"]);
  expect(c.list(10 * RECENT_CONTACT_MS)).toEqual(["198.51.100.7"]);
  c.linkDown("198.51.100.7", 10 * RECENT_CONTACT_MS);
  expect(c.list(11 * RECENT_CONTACT_MS)).toEqual(["198.51.100.7"]);
  expect(c.list(11 * RECENT_CONTACT_MS + 1)).toEqual([]);
});

test("two links to one host: it stays open until the last closes", () => {
  const c = new RecentContacts(1_000);
  c.linkUp("198.51.100.7", false);
  c.linkUp("198.51.100.7", false);
  c.linkDown("198.51.100.7", 0);
  expect(c.list(5_000)).toEqual(["198.51.100.7"]);
  c.linkDown("198.51.100.7", 5_000);
  expect(c.list(6_001)).toEqual([]);
});

test("raw sends count; hosts we dialled lead the list; IPv4-mapped and plain IPv4 are one host", () => {
  const c = new RecentContacts(1_000);
  c.touch("::ffff:192.0.2.1", 0);
  c.touch("192.0.2.2", 0);
  c.linkUp("198.51.100.7", true);
  c.touch("192.0.2.1", 100);
  expect(c.list(200)).toEqual(["198.51.100.7", "192.0.2.2", "192.0.2.1"]);
  expect(c.list(1_050)).toEqual(["198.51.100.7", "192.0.2.1"]);
});

test("sends to many strangers (probe clients) do not push a node we dialled out of memory", () => {
  const c = new RecentContacts(60_000);
  c.linkUp("198.51.100.7", true);
  c.linkDown("198.51.100.7", 0);
  for (let i = 0; i < 10_000; i++) c.touch(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1);
  const list = c.list(2);
  expect(list[0]).toBe("198.51.100.7");
  expect(list.length).toBeLessThanOrEqual(1 + 4096);
});
