/**
 * /metrics over every serving process: the kernel hands a scrape to any one of them, and each
 * counts only its own requests. The first process asks every other one for its registry over the
 * IPC channel it started them with, and sums (prom-client's AggregatorRegistry); another process
 * answering a scrape asks the first one for the sum.
 */
import { AggregatorRegistry, type Registry } from 'prom-client';

/** One end of an IPC channel: a forked child, or `process` in the child. */
export interface Channel {
  send?(message: unknown): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

type MetricsJson = object[];

export type MetricsMessage =
  | { type: 'metrics'; id: number; scope: 'own' | 'all' }
  | { type: 'metrics-reply'; id: number; metrics: MetricsJson[] };

const askTimeoutMs = 2_000;
let nextId = 0;

const isMetricsMessage = (m: unknown): m is MetricsMessage => typeof m === 'object' && m !== null && ((m as MetricsMessage).type === 'metrics' || (m as MetricsMessage).type === 'metrics-reply');

/** Asks the process at the other end of `channel`; an unanswered question counts as no answer. */
function ask(channel: Channel, scope: 'own' | 'all'): Promise<MetricsJson[]> {
  const id = nextId++;
  return new Promise((resolve) => {
    const done = (metrics: MetricsJson[]) => {
      clearTimeout(timer);
      channel.off('message', listener);
      resolve(metrics);
    };
    const listener = (m: unknown) => {
      if (isMetricsMessage(m) && m.type === 'metrics-reply' && m.id === id) done(m.metrics);
    };
    const timer = setTimeout(() => done([]), askTimeoutMs);
    channel.on('message', listener);
    try {
      channel.send?.({ type: 'metrics', id, scope } satisfies MetricsMessage);
    } catch {
      done([]);
    }
  });
}

/** Prometheus text of several processes' registries (as getMetricsAsJSON gives them), summed. */
export async function render(all: MetricsJson[]): Promise<{ contentType: string; body: string }> {
  const registry = AggregatorRegistry.aggregate(all);
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/** In the first process: its own registry and those of the `others`, which it answers for too. */
export function firstProcessMetrics(own: Registry, others: () => Channel[]) {
  const everyone = async (): Promise<MetricsJson[]> => [(await own.getMetricsAsJSON()) as MetricsJson, ...(await Promise.all(others().map((c) => ask(c, 'own')))).flat()];
  return {
    gather: everyone,
    /** Answers a question `from` another process. */
    answer: async (from: Channel, message: unknown) => {
      if (!isMetricsMessage(message) || message.type !== 'metrics') return;
      const metrics = message.scope === 'all' ? await everyone() : [(await own.getMetricsAsJSON()) as MetricsJson];
      from.send?.({ type: 'metrics-reply', id: message.id, metrics } satisfies MetricsMessage);
    },
  };
}

/** In another process: its own registry for the first process, and the sum from it for a scrape. */
export function replicaMetrics(own: Registry, parent: Channel) {
  parent.on('message', (message) => {
    if (!isMetricsMessage(message) || message.type !== 'metrics' || message.scope !== 'own') return;
    void own.getMetricsAsJSON().then((metrics) => parent.send?.({ type: 'metrics-reply', id: message.id, metrics: [metrics as MetricsJson] } satisfies MetricsMessage));
  });
  return { gather: async () => {
    const all = await ask(parent, 'all');
    // The first process did not answer (it is stopping): this process's own counts, at least.
    return all.length ? all : [(await own.getMetricsAsJSON()) as MetricsJson];
  } };
}
