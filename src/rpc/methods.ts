// Wire names of the request methods, derived from the service descriptors of proto/services.proto by one
// rule: "<service>.<method>" in kebab case (Mesh.Peers → "mesh.peers", PunchLink.Ping → "punch-link.ping").
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { App, Mesh, Nat, NodeLink, Punch, PunchLink, Share } from "../wire/index.ts";

/** "SelfCheckEcho" → "self-check-echo". */
function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
}

/** The Envelope.method of `method`: the only place a wire name is made. */
export function methodName(method: DescMethod): string {
  return `${kebab(method.parent.name)}.${kebab(method.name)}`;
}

function namesOf<S extends DescService>(service: S): { readonly [K in keyof S["method"]]: string } {
  const out: Record<string, string> = {};
  for (const [key, m] of Object.entries(service.method)) out[key] = methodName(m as DescMethod);
  return out as { readonly [K in keyof S["method"]]: string };
}

/** Every method's wire name, e.g. METHOD.mesh.peers === "mesh.peers". */
export const METHOD = {
  mesh: namesOf(Mesh),
  nat: namesOf(Nat),
  app: namesOf(App),
  punch: namesOf(Punch),
  punchLink: namesOf(PunchLink),
  nodeLink: namesOf(NodeLink),
  share: namesOf(Share),
} as const;

/** All services, for listings (status pages, docs, tests). */
export const SERVICES: readonly DescService[] = [Mesh, Nat, App, Punch, PunchLink, NodeLink, Share];
