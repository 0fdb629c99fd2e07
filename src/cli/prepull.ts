// `cache-io prepull render|reconcile|copy-noop`: placeholders until they land.
export async function render(_opts: Record<string, unknown>): Promise<void> {
  throw new Error("not implemented yet");
}
export async function reconcile(_opts: Record<string, unknown>): Promise<void> {
  throw new Error("not implemented yet");
}
export async function copyNoop(_opts: Record<string, unknown>): Promise<void> {
  throw new Error("not implemented yet");
}
