// Runs start() and stop() steps one at a time, in call order, so that a stop during a start waits for it.
// A failed step rejects its own caller only; the next step still runs.
export function createSerial(): (fn: () => Promise<void>) => Promise<void> {
  let chain: Promise<void> = Promise.resolve();
  return (fn) => {
    const p = chain.then(fn);
    chain = p.catch(() => {});
    return p;
  };
}
