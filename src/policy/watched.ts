// A component's policy: a file that is hot-reloaded, or the embedded default. A file that
// is invalid (or unreadable) at start does not stop the component (webhook, node cache):
// it runs NOT READY, reports the errors, and retries until the file is fixed. A bad edit
// later keeps the last good policy (PolicyStore). Every load attempt is reported once.
import type { Logger } from "../shared/log.js";
import { defaultPolicy } from "./load.js";
import type { Policy } from "./schema.js";
import { PolicyStore } from "./store.js";

export interface PolicySourceEvents {
  /** Every load attempt, the first included (errors empty: success). */
  onLoad?(errors: string[]): void;
}

export class WatchedPolicy {
  #store: PolicyStore | undefined;
  #errors: string[] = [];
  #retry: NodeJS.Timeout | undefined;
  #lastError = "";
  #events: PolicySourceEvents = {};
  #history: string[][] = [];

  constructor(
    readonly path: string | undefined,
    private readonly log: Logger,
    private readonly pollMs = 2000,
    /** Logged when the file is invalid at start (says what the component does meanwhile). */
    private readonly notReady = "no valid policy; not ready until the file is fixed",
  ) {
    if (!path) {
      this.#store = PolicyStore.fromDefault();
      this.#record([]);
      return;
    }
    if (!this.#tryLoad()) this.#retry = setInterval(() => this.#tryLoad() && clearInterval(this.#retry), pollMs).unref();
  }

  /** The policy in force: the file's last good one (the embedded default without a file), or undefined while there is none. */
  last(): Policy | undefined {
    return this.#store?.current();
  }

  /** The policy in force, or the embedded default while the file has never been valid. */
  current(): Policy {
    return this.last() ?? defaultPolicy();
  }

  /** Why there is no valid policy yet (empty once one loaded). */
  errors(): string[] {
    return this.#errors;
  }

  /** Report load attempts (those made so far are replayed). */
  observe(events: PolicySourceEvents): void {
    this.#events = events;
    for (const e of this.#history) events.onLoad?.(e);
    this.#history = [];
  }

  stop(): void {
    clearInterval(this.#retry);
    this.#store?.stop();
  }

  #tryLoad(): boolean {
    const path = this.path!;
    try {
      this.#store = PolicyStore.fromFile(path, {
        onReload: () => {
          this.log.info({ policy: path }, "policy loaded");
          this.#record([]);
        },
        onError: (errors) => {
          this.log.error({ policy: path, errors }, "policy rejected; the last good policy stays in force");
          this.#record(errors);
        },
      });
      this.#store.watch(this.pollMs);
      this.#errors = [];
      this.log.info({ policy: path }, "policy loaded");
      this.#record([]);
      return true;
    } catch (err) {
      const message = (err as Error).message;
      this.#errors = [message];
      if (message !== this.#lastError) {
        // Each bad content is reported once, not on every retry.
        this.log.error({ policy: path, errors: [message] }, this.notReady);
        this.#record([message]);
      }
      this.#lastError = message;
      return false;
    }
  }

  #record(errors: string[]): void {
    if (this.#events.onLoad) this.#events.onLoad(errors);
    else this.#history.push(errors);
  }
}
