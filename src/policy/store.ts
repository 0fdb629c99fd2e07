// The one piece of global mutable state: the policy in force, swapped atomically.
// Reloaded when the file changes, including a ConfigMap's symlink swap; a bad edit
// keeps the last good policy and is reported.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { defaultPolicy, parsePolicy } from "./load.js";
import type { Policy } from "./schema.js";

export interface PolicyEvents {
  onReload?(policy: Policy): void;
  onError?(errors: string[]): void;
}

export class PolicyStore {
  #policy: Policy;
  #digest = "";
  #timer: NodeJS.Timeout | undefined;
  #reloading: Promise<boolean> | undefined;
  /** The errors of the last load attempt, empty when it succeeded. */
  lastErrors: string[] = [];

  private constructor(policy: Policy, readonly path: string | undefined, private readonly events: PolicyEvents) {
    this.#policy = policy;
  }

  /** A store on the embedded default policy. */
  static fromDefault(): PolicyStore {
    return new PolicyStore(defaultPolicy(), undefined, {});
  }

  /** A store on a fixed policy (tests, `inject`). */
  static of(policy: Policy): PolicyStore {
    return new PolicyStore(policy, undefined, {});
  }

  /** Load a file; throws with every bad field named when the first load fails. */
  static fromFile(path: string, events: PolicyEvents = {}): PolicyStore {
    const text = readFileSync(path, "utf8");
    const r = parsePolicy(text);
    if (!r.ok) throw new Error(`policy ${path} is invalid:\n  ${r.errors.join("\n  ")}`);
    const store = new PolicyStore(r.policy, path, events);
    store.#digest = digest(text);
    return store;
  }

  current(): Policy {
    return this.#policy;
  }

  /** Check the file every `intervalMs` (stat-free content hash: survives symlink swaps). */
  watch(intervalMs = 2000): void {
    if (!this.path || this.#timer) return;
    // A slow read must not be overtaken by the next tick: skip ticks while one runs.
    this.#timer = setInterval(() => {
      if (!this.#reloading) void this.reload();
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Re-read the file now; resolves to true when a new policy took effect. */
  reload(): Promise<boolean> {
    this.#reloading ??= this.#reload().finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  async #reload(): Promise<boolean> {
    if (!this.path) return false;
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      // Forget the last content: the same text read after a transient error is news.
      this.#digest = "";
      return this.#fail([`cannot read ${this.path}: ${(err as Error).message}`]);
    }
    const d = digest(text);
    if (d === this.#digest) return false;
    this.#digest = d;
    const r = parsePolicy(text);
    if (!r.ok) return this.#fail(r.errors);
    this.#policy = r.policy;
    this.lastErrors = [];
    this.events.onReload?.(r.policy);
    return true;
  }

  #fail(errors: string[]): false {
    this.lastErrors = errors;
    this.events.onError?.(errors);
    return false;
  }
}

function digest(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
