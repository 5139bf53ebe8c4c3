/**
 * Closing connections when Redis may be gone: a polite close (QUIT, pending
 * replies drained) waits for a Redis that answers, so it gets a few seconds,
 * after which the connection is dropped. Otherwise a stop while Redis is down
 * would hang in its cleanup.
 */

/** Something with a polite close and a forced one (BullMQ's classes, ioredis). */
export interface Closable {
  close?(): Promise<unknown>;
  quit?(): Promise<unknown>;
  disconnect(): unknown;
}

/** Closes `target` politely, or drops its connection after `ms`. Never rejects. */
export async function closeWithin(target: Closable | undefined, ms = 3000): Promise<void> {
  if (!target) return;
  let timer: NodeJS.Timeout | undefined;
  const polite = (target.close ? target.close() : target.quit!()).then(
    () => true,
    () => false,
  );
  const closed = await Promise.race([polite, new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  if (!closed) {
    // Not awaited: a forced disconnect's promise may wait for an 'end' that a dead server never sends.
    try {
      void Promise.resolve(target.disconnect()).catch(() => undefined);
    } catch {
      // Dropped either way.
    }
  }
}
